-- diagnose: the troubleshooting procedure for "why does mail to X fail", as a library. Runs
-- from this machine's own IP: MX look-up, every MX host's addresses, TCP connect in
-- preference order, the banner, EHLO, STARTTLS (each TLS version on its own when it fails),
-- MAIL and RCPT with a probe recipient, retries of transient answers, back-to-back sessions,
-- and the source address's PTR, forward confirmation and DNSBL listing. The result names one
-- verdict of the vocabulary of ARCHITECTURE.md, with the checks and the evidence that decided it.
--
-- Two halves: stdlib/gather.lua probes and returns plain facts; stdlib/judge.lua turns facts
-- into the verdict with no I/O. The result carries the facts, so diagnose.judge(result.facts)
-- gives the same verdict again, offline.
--
--   local diagnose = require "smtpsh.diagnose"
--   local result = diagnose.run("user@example.com", {timeout = 10, retries = 1, backoff = 60})
--   result.verdict, result.transient, result.stage, result.checks, result.evidence, result.advice,
--   result.facts
--
-- Live progress: options.on_event(event) hears each step as it ends and each retry's wait
-- (stdlib/gather.lua's header lists the events). diagnose.timing_bars(events) turns the events
-- of a run into the bars of stdlib/waterfall.lua: where the time went.

local gather = require "smtpsh.gather"
local judge = require "smtpsh.judge"
local report = require "smtpsh.report"
local smtp = require "smtpsh.smtp"
local smtpcore = require "smtpsh.smtpcore"
local dnscore = require "smtpsh.dnscore"

local type, ipairs = type, ipairs
local string_match, string_lower, string_find = string.match, string.lower, string.find

local diagnose = {}

diagnose.verdicts = judge.verdicts
diagnose.advice = judge.advice
diagnose.default_dnsbl = gather.default_dnsbl

-- Parses TARGET: "user@domain", "domain", "host:port", "[v6]:port", or an address literal.
function diagnose.parse_target(target, options)
  if type(target) ~= "string" or target == "" then return nil, "empty TARGET" end
  local local_part, domain = string_match(target, "^(.+)@([^@]+)$")
  if domain then
    return { kind = "address", domain = string_lower(domain), rcpt = target }
  end
  if smtp.is_address(target) then
    return { kind = "host", host = target, port = options.port or 25 }
  end
  -- With a port or brackets it is HOST[:PORT], read by the one parser every command uses.
  if string_find(target, "[:%[%]]") then
    local host, port = smtpcore.parse_target(target, options.port or 25)
    if not host then return nil, port .. "; expected a domain, an address, HOST:PORT or [IPV6]:PORT" end
    return { kind = "host", host = host, port = port }
  end
  local name, problem = dnscore.canonical(target)
  if not name then return nil, problem end
  return { kind = "domain", domain = name }
end

-- The result of a diagnosis from its facts, with no I/O: what `run` returns, and what a saved
-- --json's facts give again offline.
function diagnose.judge(facts)
  local decided = judge.verdict(facts)
  local checklist = judge.checks(facts, decided.verdict)
  local deciding = facts.deciding and facts.sessions[facts.deciding]
  local mx = {}
  for i, host in ipairs(facts.hosts or {}) do
    mx[i] = { host = host.host, preference = host.preference, addresses = host.addresses }
  end
  local source = facts.source and { ip = facts.source.ip, local_ip = facts.source.local_ip, helo = facts.helo,
                                    ptr = facts.source.ptr and facts.source.ptr.names,
                                    dnsbl = facts.source.dnsbl and facts.source.dnsbl.listed }
  return {
    target = facts.target, verdict = decided.verdict, stage = decided.stage, transient = decided.transient,
    evidence = decided.evidence, advice = decided.advice, checks = checklist:list(),
    summary = report.summary(checklist), checklist = checklist, mx = mx, source = source,
    probed = deciding and { host = deciding.host, address = deciding.address, port = facts.port } or nil,
    facts = facts,
  }
end

-- A step or wait longer than this many seconds is slow: the report then draws the waterfall
-- even without --timing. A healthy MX answers every step in well under a second; a greet
-- pause, a tarpit, a slow DNS server or a retry's wait is seconds long.
diagnose.slow_step = 1

-- What each later session is called on its waterfall row.
local session_names = { retry = "retry", again = "session", plain = "plain text" }

-- The progress events of a run -> waterfall bars {name, start, finish, wait}, in the order
-- they happened: each step of a probe session and each look-up its own row (dns, ptr, connect,
-- banner, ehlo, starttls, mail, rcpt, tls versions, dnsbl), each later session one row from
-- its connect to its last step ("retry 1", "session 2", "plain text"), each wait a dotted row.
function diagnose.timing_bars(events)
  local bars, row_of_session = {}, {}
  for _, event in ipairs(events) do
    if event.kind == "wait" and event.remaining == event.seconds then
      bars[#bars + 1] = { name = "wait", start = event.started, finish = event.started + event.seconds, wait = true }
    elseif event.kind == "step" and (event.purpose == nil or event.purpose == "probe") then
      bars[#bars + 1] = { name = event.name, start = event.started, finish = event.finished }
    elseif event.kind == "step" then
      local bar = row_of_session[event.session]
      if not bar then
        local name = session_names[event.purpose] or event.purpose
        bar = { name = event.round and (name .. " " .. event.round) or name, start = event.started }
        row_of_session[event.session] = bar
        bars[#bars + 1] = bar
      end
      bar.finish = event.finished
    end
  end
  return bars
end

-- Whether any bar took longer than diagnose.slow_step.
function diagnose.slow(bars)
  for _, bar in ipairs(bars) do
    if bar.finish - bar.start > diagnose.slow_step then return true end
  end
  return false
end

function diagnose.run(target, options)
  options = options or {}
  local parsed, perr = diagnose.parse_target(target, options)
  if not parsed then return nil, perr end
  options.target = target
  local facts, problem = gather.run(parsed, options)
  if not facts then return nil, problem end
  return diagnose.judge(facts)
end

return diagnose
