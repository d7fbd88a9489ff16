-- explain: from the line a user already has (a bounce, a Postfix or Exim log line, an Exchange
-- NDR, a provider's reply) to the diagnosis that explains it. Says what was understood and
-- what it means, then probes the same server from here (diagnose) and weighs both.
--
-- usage:  smtpsh explain [TEXT...] [--offline] [--json] [--timeout S] [--retries N]
--                        [--dnsbl ZONES|none] [--source ADDR] [--helo NAME] [--from ADDR]
--                        [--resolver ADDR]
--         without TEXT the text is read from stdin (a whole bounce message, several lines)
-- output: what was understood (recipient, remote host and IP, port, stage, reply, enhanced
--         code and its meaning, TLS), the meaning in words, the text's own verdict, then the
--         live probe's checks and the verdict of both together, with "reproduces from here";
--         --json: one object {understood, meaning, offline, live, verdict, reproduces}
-- exit:   0 the verdict is ok, 1 another verdict, 2 bad usage or a text not understood

local cli = require "smtpsh.cli"
local diagnose = require "smtpsh.diagnose"
local explain = require "smtpsh.explain"
local json = require "smtpsh.json"
local report = require "smtpsh.report"

local usage = [==[usage: smtpsh explain [TEXT...] [OPTIONS]
  TEXT: a bounce, a mail log line, an NDR or a reply, as pasted (or on stdin when not given).
  Says what it means, then probes the same server from here (unless --offline) and weighs both.
  Exit 0 verdict ok, 1 another verdict, 2 bad usage or a text not understood.]==]

local options, words = cli.parse({ ... }, {
  name = "explain", usage = usage, min = 0,
  summary = "from a bounce or a log line to the diagnosis that explains it",
  options = {
    offline = { "flag", help = "only explain the text: no probe" },
    source = { "string", arg = "ADDR", default = "the system's choice",
               help = "the local address to probe from: the sending MTA's, whose reputation is judged" },
    helo = { "string", arg = "NAME", default = "this machine's host name", help = "the EHLO name of the probe" },
    from = { "string", arg = "ADDR", default = "postmaster@HELO", help = "the MAIL FROM of the probe" },
    retries = { "count", default = "0", help = "how often a transient (4xx) answer is asked again" },
    backoff = { "seconds", default = "60", help = "the wait before a retry" },
    dnsbl = { "list", arg = "ZONE,...|none", default = "a few well-known zones",
              help = "the DNS blocklists this machine's address is looked up in" },
    timeout = { default = 10, help = "the deadline of each step of the probe" },
  },
  common = { "json", "timeout", "resolver", "no-color", "record" },
  example = { "smtpsh explain 'status=deferred (host mx.example.com[192.0.2.1] said: 421 4.7.0 Try again later (in reply to RCPT TO command))'",
              "smtpsh explain --offline < bounce.eml" },
})

local text
if #words > 0 then
  text = table.concat(words, " ")
else
  if require("smtpsh.sys").isatty("stdin") then cli.fail("explain", "give the text to explain, or pipe it in (smtpsh explain < bounce.eml)") end
  text = io.read("a") or ""
end
for _, name in ipairs { "helo", "from", "source" } do
  if options[name] and options[name]:find("[\r\n%s]") then cli.fail("explain", "--" .. name .. " must not hold spaces, CR or LF") end
end
cli.apply_resolver(options, "explain")
cli.source("explain", options.source)

local understood, parsed = explain.read(text)
if not understood then
  local answer = "smtpsh explain: could not understand this text: it names no delivery attempt smtpsh knows " ..
    "(recognised: " .. explain.recognised(parsed) .. "); paste the whole bounce or the log line with status="
  if options.json then
    io.write(json.encode({ understood = json.null, recognised = parsed.sources, lines = parsed.lines,
                           error = answer }), "\n")
  else
    io.stderr:write(answer, "\n")
  end
  os.exit(2)
end

local attempt = understood.attempt
local offline = explain.offline(understood)

-- The probe, as the sender saw it: the same server and port, the same recipient.
local live, verdict, reproduces
if not options.offline and understood.target then
  local zones = options.dnsbl
  if zones and #zones == 1 and zones[1] == "none" then zones = {} end
  local settings = {
    helo = options.helo, from = options.from, rcpt = understood.rcpt, source = options.source,
    timeout = options.timeout or 10,
    retries = options.retries or 0, backoff = options.backoff or 60, sessions = 1, dnsbl = zones,
  }
  local result, problem = diagnose.run(understood.target, settings)
  if not result then cli.fail("explain", "cannot probe " .. understood.target .. ": " .. tostring(problem)) end
  live = result
  verdict, reproduces = explain.weigh(understood, result.facts)
else
  verdict = offline
end

if options.json then
  local out = {
    understood = attempt, sources = json.array(understood.sources), meaning = understood.meaning,
    code_meaning = understood.code_meaning, undecided = understood.undecided,
    truncated = understood.truncated,
    offline = offline or json.null, verdict = verdict or json.null,
    reproduces = reproduces == nil and json.null or reproduces,
  }
  if live then
    local checklist = live.checklist
    live.checklist = nil
    live.checks = json.array(live.checks)
    live.evidence = json.array(live.evidence)
    out.live = live
    live.checklist = checklist
  end
  if verdict then verdict.evidence = json.array(verdict.evidence) end
  if offline then offline.evidence = json.array(offline.evidence) end
  io.write(json.encode(out), "\n")
  os.exit((verdict and verdict.verdict == "ok") and 0 or 1)
end

-- For people --------------------------------------------------------------------------------------

local colour = cli.colour(options)
local function row(name, value)
  if value ~= nil and value ~= "" then
    io.write(string.format("  %-14s %s\n", name, report.visible(tostring(value))))
  end
end
local function label_of(v)
  local label = v.verdict .. (v.stage and v.verdict ~= "ok" and (" (at " .. v.stage .. ")") or "") ..
    (v.transient and ", transient" or "")
  if colour then label = (v.verdict == "ok" and "\27[32m" or "\27[31m") .. label .. "\27[0m" end
  return label
end

if understood.truncated then
  io.write(string.format("(a long text: only its last %d MiB of %.1f MiB was read)\n",
    require("smtpsh.explain_parse").max_bytes >> 20, understood.truncated / 1048576))
end
io.write(string.format("understood (%s; %d of %d lines%s):\n", table.concat(understood.sources, ", "),
  understood.used, understood.lines,
  understood.others > 0 and (", " .. understood.others .. " more attempt(s); the last failure decides") or ""))
row("recipient", attempt.recipient and (attempt.recipient .. (attempt.domain and (" (domain " .. attempt.domain .. ")") or "")))
local remote = attempt.host and attempt.ip and attempt.host ~= attempt.ip and (attempt.host .. " [" .. attempt.ip .. "]")
  or attempt.host or attempt.ip
row("remote host", remote)
row("port", attempt.port)
row("stage", explain.stage_text(attempt.stage))
row("reply", attempt.reply)
row("enhanced code", attempt.enhanced and (attempt.enhanced .. ": " .. (understood.code_meaning or "?")))
row("TLS", attempt.tls and ("in use (" .. (attempt.tls_version or "?") .. ")") or (attempt.tls_reason and ("failed: " .. attempt.tls_reason)) or "not said")
row("status", attempt.status)
io.write("meaning: ", understood.meaning, "\n")
if offline then
  io.write("the text says: ", label_of(offline), "\n")
else
  io.write("the text says: no verdict; it does not say ", understood.undecided, "\n")
end

if live then
  io.write("\nsmtpsh diagnose ", understood.target, " (from here, now)\n")
  io.write(report.render(live.checklist, { colour = colour }))
  io.write("live verdict: ", label_of(live), "\n")
end
if verdict then
  io.write("\nverdict: ", label_of(verdict), "\n")
  if reproduces ~= nil then
    io.write("reproduces from here: ", reproduces and "yes" or ("no (the probe from here now says " .. live.verdict .. ")"), "\n")
  end
  if #verdict.evidence > 0 then
    io.write("evidence:\n")
    for _, line in ipairs(verdict.evidence) do io.write("  ", report.visible(line), "\n") end
  end
  io.write("advice: ", verdict.advice, "\n")
end
os.exit((verdict and verdict.verdict == "ok") and 0 or 1)
