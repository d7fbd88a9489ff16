-- cli: command-line parsing for subcommands, and the options every probing subcommand
-- honours (ARCHITECTURE.md, "Conventions").
--
--   local cli = require "smtpsh.cli"
--   local opts, words = cli.parse({...}, {
--     name = "dns", usage = "usage: smtpsh dns DOMAIN [--json]",
--     summary = "the mail DNS of a domain checked",          -- one line, for the man page
--     options = {
--       json = "flag",                                       -- a kind alone, as before
--       port = { "port", default = 25, help = "the SMTP port" },
--       dnsbl = { "list", arg = "ZONE[,ZONE...]", help = "the blocklists to ask" },
--       timeout = { default = 10 },                          -- a common option's default here
--     },
--     common = { "resolver", "timeout", "json" },            -- the common options to list
--     example = "smtpsh dns example.com --json",             -- or a list of them
--     min = 1, max = 1,
--     usage_status = 1,                                    -- exit status of a usage error (2)
--   })
--   cli.apply_resolver(opts)   -- --resolver, --timeout and --trust-anchor reach the DNS engine
--
-- Kinds: flag, string, list (repeatable, split at commas), repeat (repeatable, kept whole),
-- seconds, count, port. An option is a kind, or a table {kind, arg = "PLACEHOLDER",
-- default = value shown, help = "one line"}; --help prints the usage, then every option with
-- its help and default, then the example. Every option of cli.common is accepted by every
-- subcommand; `common` only says which of them --help lists (all when absent).
-- A bad command line prints one line naming what to fix on stderr and exits 2 (or the spec's
-- usage_status, for a command that keeps another tool's exit codes); --help prints
-- the help on stdout and exits 0.

local dns = require "smtpsh.dns"
local sys = require "smtpsh.sys"
local recordcore = require "smtpsh.recordcore"

local type, pairs, ipairs, tonumber, tostring, pcall, error, setmetatable, getmetatable =
  type, pairs, ipairs, tonumber, tostring, pcall, error, setmetatable, getmetatable
local string_match, string_gmatch, string_gsub, string_rep =
  string.match, string.gmatch, string.gsub, string.rep
local table_sort, table_concat = table.sort, table.concat
local math_type, io_stderr, io_stdout, os_exit, os_getenv =
  math.type, io.stderr, io.stdout, os.exit, os.getenv

local cli = {}

-- Options of every probing subcommand; a subcommand's own spec adds to them.
cli.common = {
  resolver = { "list", arg = "ADDR[:PORT][,...]", help = "DNS servers to ask instead of /etc/resolv.conf" },
  timeout = { "seconds", help = "the deadline of each network step" },
  json = { "flag", help = "one JSON object on stdout instead of text" },
  trace = { "flag", help = "SMTP sessions and DNS answers live on stderr" },
  ["no-color"] = { "flag", help = "no colours, even on a terminal (as NO_COLOR=1 does)" },
  record = { "string", arg = "FILE.jsonl", help = "every DNS answer and SMTP line to FILE, for smtpsh replay" },
  ["trust-anchor"] = { "string", arg = "FILE", default = "/usr/share/dns/root.ds (dns-root-data)",
                       help = "DS or DNSKEY records (as drill -k takes) that DNSSEC validation starts from" },
}

-- A usage error: one line, then exit 2 (or `status`: a command that keeps another tool's
-- exit codes, as `send --swaks-exit` does, passes spec.usage_status).
local function fail(name, message, status)
  -- One line, whatever the message holds (a configuration's error text, a name with a newline).
  message = string_gsub(tostring(message), "%s*[\r\n]+%s*", " ")
  io_stderr:write("smtpsh ", name, ": ", message, "\n")
  os_exit(status or 2)
end
cli.fail = fail

local converters = {
  flag = function() return true end,
  string = function(value) return value end,
  list = function(value) return value end,
  ["repeat"] = function(value) return value end,
  seconds = function(value)
    local n = tonumber(value)
    if not n or n <= 0 or n ~= n or n == 1 / 0 then return nil, "a number of seconds above 0" end
    return n
  end,
  count = function(value)
    local n = math_type(tonumber(value)) == "integer" and tonumber(value)
    if not n or n < 0 then return nil, "a whole number, 0 or more" end
    return n
  end,
  port = function(value)
    local n = math_type(tonumber(value)) == "integer" and tonumber(value)
    if not n or n < 1 or n > 65535 then return nil, "a port from 1 to 65535" end
    return n
  end,
}

-- The placeholder an option's value is shown with when its spec names none.
local placeholders = {
  string = "VALUE", list = "A[,B...]", ["repeat"] = "VALUE", seconds = "SECONDS", count = "N",
  port = "PORT",
}

-- An option's spec (a kind, or {kind, arg=, default=, help=}) over the common option of that
-- name, so a subcommand can give a common option its own default or words.
local function describe_option(name, own, common)
  own = type(own) == "string" and { own } or own or {}
  common = type(common) == "string" and { common } or common or {}
  local kind = own[1] or own.kind or common[1] or common.kind
  if not converters[kind] then
    error("cli: option --" .. name .. " has no known kind (flag, string, list, repeat, seconds, count, port)", 3)
  end
  local default = own.default
  if default == nil then default = common.default end
  return {
    name = name, kind = kind, default = default, help = own.help or common.help,
    arg = kind ~= "flag" and (own.arg or common.arg or placeholders[kind]) or nil,
  }
end

local function by_name(a, b) return a.name < b.name end

-- cli.options_of(spec [, all]) -> { {name, kind, arg, default, help}, ... }: the subcommand's
-- own options by name, then the common ones it lists (`all`: every common one, as parsing
-- accepts them).
function cli.options_of(spec, all)
  local own, out = spec.options or {}, {}
  for name, option in pairs(own) do out[#out + 1] = describe_option(name, option, cli.common[name]) end
  table_sort(out, by_name)
  local listed = {}
  if spec.common and not all then
    for _, name in ipairs(spec.common) do listed[name] = true end
  end
  local common = {}
  for name, option in pairs(cli.common) do
    if own[name] == nil and (all or not spec.common or listed[name]) then
      common[#common + 1] = describe_option(name, option)
    end
  end
  table_sort(common, by_name)
  for _, option in ipairs(common) do out[#out + 1] = option end
  return out
end

-- "--ca-file FILE" as the option is typed.
function cli.option_synopsis(option)
  return "--" .. option.name .. (option.arg and " " .. option.arg or "")
end

-- " [default: 10]" for an option with a default, else "".
local function default_note(option)
  if option.default == nil then return "" end
  return " [default: " .. tostring(option.default) .. "]"
end
cli.default_note = default_note

local help_column = 26  -- where option help starts; a longer synopsis gets a line of its own

-- The text --help prints: the usage, the options with their help and defaults, the example.
function cli.help_text(spec)
  local lines, options = { spec.usage }, cli.options_of(spec)
  if #options > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "options:"
  end
  for _, option in ipairs(options) do
    local synopsis = "  " .. cli.option_synopsis(option)
    local words = (option.help or "") .. default_note(option)
    if #synopsis + 2 > help_column then
      lines[#lines + 1] = synopsis
      synopsis = ""
    end
    lines[#lines + 1] = synopsis .. string_rep(" ", help_column - #synopsis) .. words
  end
  local examples = type(spec.example) == "string" and { spec.example } or spec.example or {}
  if #examples > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = #examples == 1 and "example:" or "examples:"
    for _, example in ipairs(examples) do lines[#lines + 1] = "  " .. example end
  end
  for i, line in ipairs(lines) do lines[i] = (string_gsub(line, "%s+$", "")) end
  return table_concat(lines, "\n") .. "\n"
end

-- While cli.spec_of runs a script, --help hands the spec back instead of printing it.
local capturing = false
local captured_meta = {}

-- Prints the help on stdout and exits 0 (a script that parses its own arguments calls this
-- on --help, so its help looks like every other's).
function cli.help(spec)
  if capturing then error(setmetatable({ spec = spec }, captured_meta), 0) end
  io_stdout:write(cli.help_text(spec))
  os_exit(0)
end

-- cli.spec_of(chunk) -> spec | nil, why: a subcommand's spec, read by running its chunk with
-- --help up to its cli.parse (or cli.help), without printing or exiting: what the man page
-- generator lists, from the very table the subcommand parses with.
function cli.spec_of(chunk)
  capturing = true
  local ok, err = pcall(chunk, "--help")
  capturing = false
  if not ok and getmetatable(err) == captured_meta then return err.spec end
  if ok then return nil, "it returned without calling cli.parse or cli.help on --help" end
  return nil, tostring(err)
end

-- Returns the options (by name; "list" options as lists, split at commas too) and the
-- positional words.
function cli.parse(args, spec)
  local function usage_error(message) fail(spec.name, message, spec.usage_status) end
  local kinds = {}
  for _, option in ipairs(cli.options_of(spec, true)) do kinds[option.name] = option.kind end
  local options, words = {}, {}
  local i = 1
  while i <= #args do
    local word = args[i]
    if word == "--help" or word == "-h" then cli.help(spec) end
    local name, inline = string_match(word, "^%-%-([%w-]+)=(.*)$")
    if not name then name = string_match(word, "^%-%-([%w-]+)$") end
    if name then
      local kind = kinds[name]
      if not kind then usage_error("unknown option '--" .. name .. "'; see --help") end
      local value = true
      if kind ~= "flag" then
        value = inline
        if value == nil then
          i = i + 1
          value = args[i]
        end
        if value == nil then usage_error("--" .. name .. " needs a value; see --help") end
        local converted, expected = converters[kind](value)
        if converted == nil then
          usage_error("--" .. name .. " must be " .. expected .. ", got '" .. value .. "'")
        end
        value = converted
      elseif inline then
        usage_error("--" .. name .. " takes no value")
      end
      if kind == "list" then
        options[name] = options[name] or {}
        for item in string_gmatch(value, "[^,%s]+") do options[name][#options[name] + 1] = item end
      elseif kind == "repeat" then
        options[name] = options[name] or {}
        options[name][#options[name] + 1] = value
      else
        options[name] = value
      end
    elseif word:sub(1, 1) == "-" and word ~= "-" then
      usage_error("unknown option '" .. word .. "'; see --help")
    else
      words[#words + 1] = word
    end
    i = i + 1
  end
  local min, max = spec.min or 0, spec.max
  if #words < min then usage_error(spec.missing or ("missing arguments; see --help")) end
  if max and #words > max then
    usage_error("unexpected argument '" .. words[max + 1] .. "'; see --help")
  end
  -- --trace: SMTP sessions and DNS answers live on stderr.
  if options.trace then
    require("smtpsh.smtp").defaults.trace = true
    dns.trace(true)
  end
  -- --record FILE: from here on, every DNS answer and SMTP line goes to FILE too.
  if options.record then
    local argv = { spec.name }
    for _, word in ipairs(args) do argv[#argv + 1] = word end
    local ok, err = recordcore.start(options.record, argv)
    if not ok then usage_error("--record: " .. err) end
  end
  return options, words
end

-- An error for a one-line report: its message with the stage first ("banner: connection
-- closed ..."), unless the message already starts with it ("rcpt refused: 550 ..."), and any
-- control byte a server sent shown as \xNN.
function cli.error_message(err, stage)
  local message = tostring(err)
  stage = type(err) == "table" and err.stage or stage
  if stage and message:sub(1, #stage) ~= stage then message = stage .. ": " .. message end
  return require("smtpsh.report").visible(message)
end

-- HOST[:PORT] as every subcommand takes it ("[v6]:port" for IPv6 with a port): host, port,
-- or exit 2 with one line naming what is wrong. One parser for every command (engine/net).
function cli.target(name, target, default_port)
  local host, port = require("smtpsh.smtpcore").parse_target(target, default_port or 25)
  if not host then fail(name, port .. "; expected HOST, HOST:PORT or [IPV6]:PORT") end
  return host, port
end

-- --source ADDR: an IP address this machine can send from, or exit 2 naming what is wrong.
-- Checked before anything is sent: a probe from an address this machine does not have would
-- otherwise fail in a way that looks like the network's fault.
function cli.source(name, source)
  if source == nil then return nil end
  local ok, problem = require("smtpsh.net").usable_source(source)
  if not ok then fail(name, "--source " .. source .. ": " .. problem) end
  return source
end

-- Points the DNS engine at --resolver (when given) with --timeout per try.
function cli.apply_resolver(options, name)
  if options["trust-anchor"] then
    local anchor, problem = dns.trust_anchor(options["trust-anchor"])
    if not anchor then fail(name, "--trust-anchor: " .. problem) end
  end
  local servers = {}
  for i, server in ipairs(options.resolver or {}) do servers[i] = server end
  if options.timeout then servers.timeout = options.timeout end
  if #servers == 0 and not servers.timeout then return end
  local ok, err = pcall(dns.servers, servers)
  if not ok then
    fail(name, (string_gsub(tostring(err), "^.-dns%.servers%b():%s*", "--resolver: ")))
  end
end

-- Whether output to `stream` ("stdout", "stderr") may be coloured: a terminal, no NO_COLOR
-- and no --no-color.
function cli.colour(options, stream)
  if options["no-color"] then return false end
  local no_color = os_getenv("NO_COLOR")
  if no_color and no_color ~= "" then return false end
  return sys.isatty(stream or "stdout")
end

return cli
