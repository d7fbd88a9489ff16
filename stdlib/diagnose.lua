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
