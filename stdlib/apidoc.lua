-- apidoc: the one API reference of smtpsh, as data. Each module's entries are in
-- stdlib/apidoc/NAME.lua; this index says which modules there are, in what order, and what
-- the shell itself offers. `help` (stdlib/help.lua) prints from it, `doc/generate.lua` writes
-- the man page and README's API section from it, and tests/lua/help_test.lua checks it
-- against the live module tables, so none of them can drift.
--
-- A module file returns {name, title, summary, require = "smtpsh.NAME" | nil, global = bool,
-- object = "how to get one" (for the values modules hand out: sessions, connections),
-- notes = {paragraph, ...}, entries = { {name, sig, summary, returns, errors, example}, ...}};
-- an entry with field = true is a value, not a function.

local require = require

local apidoc = {}

-- In the order help(), the man page and README show them: the globals first, then the
-- libraries scripts `require`.
apidoc.modules = {
  "smtp", "session", "dns", "net", "connection", "task", "server", "help",
  "json", "retry", "classify", "ratelimit", "diagnose", "tlsscan", "address", "mime", "cli", "report",
  "waterfall", "prometheus", "watch",
}

-- stdlib modules with no entry of their own, and why: the machinery behind the documented
-- ones. help_test fails on a stdlib module that is in neither list.
apidoc.internal = {
  apidoc = "this reference",
  complete = "the REPL's tab completion",
  gather = "the first half of diagnose: probing into facts",
  judge = "the second half of diagnose: facts into a verdict",
  pretty = "how the REPL prints values",
  probe = "the session opener and MX walk the probing commands share",
  raw = "raw mode (smtpsh raw, :raw)",
  record_file = "reading a recording for smtpsh replay",
  replay_show = "a recording as text, for smtpsh replay --show",
  replayable = "generated values and a recipe's text, kept by --record and given back by smtpsh replay",
  server_command = "how the scenario server splits a received line",
  trace = "the --trace sink",
  verify = "the engine of smtpsh verify",
  http_server = "the small HTTP server of smtpsh watch",
  sandbox = "the rules of smtpsh --sandbox (documented with the command)",
  recipe = "a recipe's declaration read and checked by smtpsh --sandbox (documented in examples/README.md)",
  watch_probe = "one probe of smtpsh watch, turned into a record",
  watch_metrics = "the metric families of smtpsh watch",
  watch_page = "the status page and /last of smtpsh watch",
  explain = "smtpsh explain's reading of a bounce or log line into a finding (documented with the command)",
  explain_parse = "the parsers of smtpsh explain: bounces, DSNs, Postfix, Exim and Exchange text into facts",
  enhanced_status = "RFC 3463 enhanced status codes in words, for smtpsh explain",
  dnssec = "smtpsh's own DNSSEC validator, behind dns.query's validate option (documented with dns)",
}

-- The subcommands (scripts/NAME.lua), in the order the man page lists them.
apidoc.commands = { "diagnose", "explain", "verify", "watch", "dns", "blacklist", "tls", "banner", "raw", "send", "serve",
                    "replay", "sandbox" }

-- The executable's own command line (shell/cli.cpp); help_test checks it against `smtpsh --help`.
apidoc.shell = {
  synopsis = {
    "smtpsh [-e CODE]... [-i] [--demo] [--trace] [--record FILE]",
    "smtpsh [OPTIONS] FILE.lua [ARGS...]",
    "smtpsh --sandbox [LIMITS] FILE.lua [ARGS...]",
    "smtpsh [OPTIONS] COMMAND [ARGS...]",
    "smtpsh --help | --version",
  },
  description = {
    "smtpsh is a scriptable, interactive SMTP shell: Lua 5.4 on a native engine, where every network call reads as blocking but runs as a coroutine on one event loop, so a probe is a few lines and thousands of them run at once.",
    "Without arguments it opens the REPL (line editing, history, tab completion; help() lists the API). With standard input not a terminal and no arguments, it runs standard input as a script. A COMMAND runs the subcommand scripts/COMMAND.lua; a FILE.lua runs that script with its arguments in arg and ... as lua does.",
  },
  options = {
    { "-e CODE", "run CODE (may be repeated)" },
    { "-i", "enter the REPL after running the script or -e chunks" },
    { "--demo", "start an in-process demo SMTP server on loopback, then the REPL" },
    { "--trace", "SMTP sessions and DNS answers print live on stderr" },
    { "--record FILE", "write every DNS answer and SMTP line to FILE (JSON Lines; smtpsh replay FILE)" },
    { "--sandbox", "run FILE.lua without trusting it: no files or processes, network only to the hosts its arguments name, limits of memory, CPU, time, tasks and connections (smtpsh sandbox --help lists them: --max-memory, --max-cpu, --max-time, --allow, ...)" },
    { "--help", "show the usage" },
    { "--version", "show the version" },
  },
  exit = {
    { "0", "success; for diagnosing commands: healthy" },
    { "1", "a script error, or a problem found" },
    { "2", "bad usage, an unreadable file, or the tool could not run, with one line saying what to fix" },
    { "3", "--sandbox (smtpsh sandbox): the sandbox stopped the file, with one line naming what it tried and which rule or limit stopped it" },
  },
  environment = {
    { "SMTPSH_PATH", "colon-separated directories searched first for DIR/scripts/NAME.lua and DIR/stdlib/NAME.lua" },
    { "XDG_CONFIG_HOME", "where smtpsh/ is looked for instead of ~/.config" },
    { "XDG_STATE_HOME", "where the REPL history is kept instead of ~/.local/state" },
    { "NO_COLOR", "no colours on a terminal when set and not empty" },
  },
  files = {
    { "~/.config/smtpsh/init.lua", "start-up code for the REPL and scripts: the place is reserved, this version does not run it yet" },
    { "~/.config/smtpsh/scripts/NAME.lua", "a subcommand of the user's: smtpsh NAME runs it (overrides a built-in one)" },
    { "~/.config/smtpsh/stdlib/NAME.lua", "a module for require \"smtpsh.NAME\" (overrides a built-in one)" },
    { "~/.local/state/smtpsh/history", "the REPL history" },
  },
  examples = {
    { "smtpsh --demo", "the REPL with a demo server to probe" },
    { "smtpsh diagnose user@example.com", "why mail to example.com fails, with evidence" },
    { "smtpsh tls mx.example.com --json", "the TLS versions and certificate as JSON" },
    { "smtpsh -e 's = smtp.connect(\"mx.example.com\") print(s.banner)'", "a one-liner" },
    { "smtpsh --record probe.jsonl diagnose example.com && smtpsh replay probe.jsonl", "record, then replay offline" },
  },
}

-- apidoc.module(name) -> the module's reference table (stdlib/apidoc/NAME.lua).
function apidoc.module(name)
  return require("smtpsh.apidoc." .. name)
end

-- apidoc.each() -> iterator over (index, module reference) in apidoc.modules order.
function apidoc.each()
  local i = 0
  return function()
    i = i + 1
    local name = apidoc.modules[i]
    if name then return i, apidoc.module(name) end
  end
end

-- The entry's full name as a reader types it: "smtp.connect", "s:ehlo", "help".
function apidoc.full_name(module, entry)
  if entry.call then return module.name end
  local prefix = module.prefix or module.name .. "."
  -- An object's fields are read with a dot: s.banner, not s:banner.
  if entry.field then prefix = prefix:gsub(":$", ".") end
  return prefix .. entry.name
end

return apidoc
