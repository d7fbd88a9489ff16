-- diagnose: names the cause of a failed delivery (a 421, a drop, a refusal) with evidence,
-- probing from this machine's own IP: DNS, every MX in order, banner, EHLO, STARTTLS (each
-- TLS version on its own when it fails), MAIL and RCPT, retries of transient answers,
-- back-to-back sessions, and the source address's PTR and DNSBL listings.
--
-- usage:  smtpsh diagnose TARGET... [--json] [--resolver ADDR[:PORT]] [--port N] [--source ADDR]
--                         [--helo NAME] [--from ADDR] [--rcpt ADDR] [--timeout SECONDS]
--                         [--retries N] [--backoff SECONDS] [--sessions N]
--                         [--dnsbl ZONE[,ZONE]|none] [--public-ip ADDR] [--trace] [--no-color]
--                         [--timing]
--         smtpsh diagnose --rejudge FILE.json   (the verdict again from a saved --json's facts)
--         TARGET: a domain, an address (its domain; the address is the probe recipient), or
--         HOST[:PORT]; several targets are diagnosed one after the other
-- output: a checklist and the verdict with advice; with --json one object (a line each for
--         several targets): {target, verdict,
--         transient, stage, checks = [{name, status, detail}], evidence, advice, facts, ...}
--         (facts: everything the probe saw, from which the verdict was judged)
--         On a terminal (and not --json) each step is shown as it ends, and a retry's wait
--         counts down on one rewritten line; otherwise the output is only the report.
--         With --timing, and on a terminal whenever a step took over diagnose.slow_step (1 s),
--         the report ends with a waterfall of where the time went (stdlib/waterfall.lua).
-- exit:   0 every verdict ok, 1 any other verdict, 2 the diagnosis could not run

local cli = require "smtpsh.cli"
local diagnose = require "smtpsh.diagnose"
local json = require "smtpsh.json"
local report = require "smtpsh.report"
local smtp = require "smtpsh.smtp"
local sys = require "smtpsh.sys"
local waterfall = require "smtpsh.waterfall"

local usage = [==[usage: smtpsh diagnose TARGET... [OPTIONS]
       smtpsh diagnose --rejudge FILE.json [--json]
  TARGET: a domain, an address (user@domain: also the probe recipient), or HOST[:PORT];
  several targets are diagnosed one after the other.
  On a terminal each step shows as it ends, and a retry's wait counts down (Ctrl-C stops it).
  Exit 0 verdict ok, 1 another verdict, 2 could not run.]==]

local options, words = cli.parse({ ... }, {
  name = "diagnose", usage = usage, min = 0, missing = "missing TARGET; see --help",
  summary = "names the cause of a failed delivery (a 421, a drop, a refusal) with evidence",
  options = {
    port = { "port", default = "25", help = "the SMTP port of a TARGET given without one" },
    source = { "string", arg = "ADDR", default = "the system's choice",
               help = "the local address to connect from (the one whose reputation is judged)" },
    helo = { "string", arg = "NAME", default = "this machine's host name", help = "the EHLO name" },
    from = { "string", arg = "ADDR", default = "postmaster@HELO", help = "the MAIL FROM of the probe" },
    rcpt = { "string", arg = "ADDR", default = "postmaster@DOMAIN (or the TARGET address)",
             help = "the RCPT TO of the probe" },
    retries = { "count", default = "1", help = "how often a transient (4xx) answer is asked again" },
    backoff = { "seconds", default = "60", help = "the wait before a retry (a reply's \"try again in N s\" wins)" },
    sessions = { "count", default = "2", help = "back-to-back sessions, to catch a limit of sessions per client" },
    dnsbl = { "list", arg = "ZONE,...|none", default = "a few well-known zones",
              help = "the DNS blocklists the source address is looked up in" },
    ["public-ip"] = { "string", arg = "ADDR|dns|dns@SERVER", default = "the greeting's echo, else DNS echo services",
                      help = "the address receivers see when this machine is behind NAT (for PTR and DNSBL)" },
    rejudge = { "string", arg = "FILE.json", help = "judge again, offline, the facts of a saved `diagnose --json`" },
    timing = { "flag", default = "off (on a terminal: on when a step took over 1 s)",
               help = "a waterfall of where the time went (DNS, connect, banner, EHLO, STARTTLS, MAIL, RCPT, waits), in plain ASCII" },
    timeout = { default = 10, help = "the deadline of each step" },
  },
  common = { "json", "timeout", "resolver", "trust-anchor", "trace", "no-color", "record" },
  example = { "smtpsh diagnose user@example.com --timing",
              "smtpsh diagnose mx.example.com:2525 --retries 1 --backoff 30" },
})
if not options.rejudge and #words == 0 then cli.fail("diagnose", "missing TARGET; see --help") end
if options.rejudge and #words > 0 then cli.fail("diagnose", "--rejudge FILE takes no TARGET") end
if options.timing and options.json then cli.fail("diagnose", "--timing draws for people: leave out --json") end
if options.timing and options.rejudge then
  cli.fail("diagnose", "--timing needs a live run: saved facts keep how long each step took, not when it began")
end
local public_ip = options["public-ip"]
if public_ip and public_ip ~= "dns" and not smtp.is_address(public_ip) then
  local server = public_ip:match("^dns@(.+)$")
  if not server or not smtp.parse_target(server, 53) then
    cli.fail("diagnose", "--public-ip " .. public_ip .. ": expected an IPv4 or IPv6 address, dns, or dns@SERVER[:PORT]")
  end
end
cli.apply_resolver(options, "diagnose")
if options.trace then smtp.defaults.trace = true end
for _, name in ipairs { "helo", "from", "rcpt", "source" } do
  if options[name] and options[name]:find("[\r\n%s]") then
    cli.fail("diagnose", "--" .. name .. " must not hold spaces, CR or LF")
  end
end
cli.source("diagnose", options.source)
local zones = options.dnsbl
if zones and #zones == 1 and zones[1] == "none" then zones = {} end

local settings = {
  port = options.port, source = options.source, helo = options.helo, from = options.from,
  rcpt = options.rcpt, timeout = options.timeout or 10,
  retries = options.retries == nil and 1 or options.retries, backoff = options.backoff or 60,
  sessions = options.sessions or 2, dnsbl = zones, trace = options.trace, public_ip = options["public-ip"],
}
for _, target in ipairs(words) do
  local ok, problem = diagnose.parse_target(target, settings)
  if not ok then cli.fail("diagnose", problem) end
end

-- The results to print: a diagnosis per TARGET, or the saved facts judged again.
local function results()
  if options.rejudge then
    local file = io.open(options.rejudge)
    if not file then cli.fail("diagnose", "cannot read --rejudge " .. options.rejudge) end
    local list = {}
    for line in file:lines() do
      if line:find("%S") then
        local saved, problem = json.decode(line)
        if not saved then cli.fail("diagnose", options.rejudge .. ": " .. problem) end
        local facts = saved.facts or saved
        if type(facts) ~= "table" or facts.version ~= 1 or type(facts.sessions) ~= "table" then
          cli.fail("diagnose", options.rejudge .. ": no facts (version 1) in it: save `diagnose --json` output")
        end
        list[#list + 1] = function() return diagnose.judge(facts) end
      end
    end
    file:close()
    return list
  end
  local list = {}
  for _, target in ipairs(words) do
    list[#list + 1] = function(on_event)
      local run = { on_event = on_event }
      for key, value in pairs(settings) do run[key] = value end
      local result, err = diagnose.run(target, run)
      if not result then cli.fail("diagnose", err) end
      return result
    end
  end
  return list
end

-- Live progress on a terminal --------------------------------------------------------------
-- The library only reports events (gather.lua's header); showing them is decided here.

local columns = math.max(40, tonumber(os.getenv("COLUMNS")) or 80)
local live = not options.json and not options.rejudge and sys.isatty("stdout")
local dim, reset = "\27[2m", "\27[0m"
local session_names = { retry = "retry", again = "session", plain = "plain" }
local waiting = false  -- a countdown is on the terminal's last line, without its newline

-- `text` cut to `room` columns, with "..." where it was cut.
local function fit(text, room)
  if #text <= room then return text end
  return text:sub(1, math.max(0, room - 3)) .. "..."
end

local function clear_wait()
  if waiting then io.write("\r\27[K") end
  waiting = false
end

-- "rcpt", or "retry 1: rcpt" for a step of a later session.
local function step_label(event)
  local session = session_names[event.purpose]
  if not session then return event.name end
  return session .. (event.round and (" " .. event.round) or "") .. ": " .. event.name
end

-- A step as one line: when it ended, what it was, what came back.
local function show_step(event, colour)
  local head = string.format("  %7.2f s  %-16s  ", event.finished, step_label(event))
  local line = head .. fit(report.visible(event.detail or ""), columns - 1 - #head)
  io.write(colour and (dim .. line .. reset) or line, "\n")
end

-- A wait over a second: what it waits for and the seconds left, rewritten in place.
local function show_wait(event)
  if event.remaining <= 0 or event.seconds <= 1 then return clear_wait() end
  local tail = string.format("; retrying in %d s (%d of %d), Ctrl-C to stop", math.ceil(event.remaining),
    event.attempt, event.of)
  io.write("\r\27[K", fit(report.visible(event.reason), columns - 1 - #tail), tail)
  waiting = true
end

-- The on_event hook of a run: every event kept (for the waterfall), and shown when live.
local function watcher(events, colour)
  return function(event)
    events[#events + 1] = event
    if not live then return end
    if event.kind == "wait" then
      show_wait(event)
    else
      clear_wait()
      show_step(event, colour)
    end
    io.stdout:flush()
  end
end

-- Where the time went: with --timing, and on a terminal when a step was slow.
local function write_waterfall(events)
  local bars = diagnose.timing_bars(events)
  if #bars == 0 or not (options.timing or (live and diagnose.slow(bars))) then return end
  io.write("timing:\n")
  for _, line in ipairs(waterfall.render(bars, 78)) do io.write("  ", line, "\n") end
end

-- A diagnosis watched live: the header first, each step as it ends, a blank line before the report.
local function run_live(next_result, target, events, colour)
  io.write("smtpsh diagnose ", target, "\n")
  io.stdout:flush()
  local ran, result = pcall(next_result, watcher(events, colour))
  clear_wait()  -- Ctrl-C in a wait must not leave the countdown under the error
  if not ran then error(result, 0) end
  io.write("\n")
  return result
end

-- Several targets: one after the other, a JSON line (or a report) each.
local all_ok = true
local colour = cli.colour(options)
for i, next_result in ipairs(results()) do
  -- Events are gathered only when something will show them: otherwise the run is as before.
  local events = (live or options.timing) and {} or nil
  local result
  if live then
    result = run_live(next_result, words[i], events, colour)
  else
    result = next_result(events and watcher(events, colour))
  end
  all_ok = all_ok and result.verdict == "ok"
  local checklist = result.checklist
  result.checklist = nil
  result.checks = json.array(result.checks)
  result.evidence = json.array(result.evidence)
  if options.json then
    io.write(json.encode(result), "\n")
  else
    if not live then io.write("smtpsh diagnose ", result.target or "", "\n") end
    io.write(report.render(checklist, { colour = colour }))
    local label = result.verdict .. (result.stage and result.verdict ~= "ok" and (" (at " .. result.stage .. ")") or "")
    if colour then label = (result.verdict == "ok" and "\27[32m" or "\27[31m") .. label .. "\27[0m" end
    io.write("verdict: ", label, result.transient and ", transient" or "", "\n")
    if #result.evidence > 0 then
      io.write("evidence:\n")
      for _, line in ipairs(result.evidence) do io.write("  ", report.visible(line), "\n") end
    end
    io.write("advice: ", result.advice, "\n")
    if events then write_waterfall(events) end
  end
  io.stdout:flush()
end
os.exit(all_ok and 0 or 1)
