-- watch_probe: one probe of `smtpsh watch`, run and turned into a record: the plain facts the
-- metrics, the status page and /last are made from. A probe is a recipe:
--   "diagnose"  the diagnosis of a domain, an address or HOST[:PORT] (the default)
--   "tls"       one STARTTLS handshake (or implicit TLS) with this machine's defaults, and on
--               failure each TLS version alone, as `smtpsh tls` does
--   "verify"    a canary address: is it still deliverable (`smtpsh verify`)
--   a function  the user's: fn(target, context) returns a table {success = bool, verdict =,
--               summary =, ...} (a record's fields); context.options holds the target's options
-- A probe that raises is a failed probe (result "error"), never a dead watcher.
--
--   local record = watch_probe.run({target = "example.com", probe = "diagnose", options = {...}})
--   record.success, record.verdict, record.steps, record.replies, record.tls, record.text
--
-- A record: target, probe (its name), started (Unix time), duration (seconds), success,
-- result ("success" | "failure" | "error"), verdict, stage, summary (one line), error,
-- steps {{name, seconds}}, replies {{stage, code, enhanced}}, tls {version, not_after (Unix
-- time), failed}, dnsbl {ip, zones, listed = {zone = true}}, text (the report for people),
-- transcript {lines}, detail (a plain table for /last as JSON).

local diagnose = require "smtpsh.diagnose"
local report = require "smtpsh.report"
local tlsscan = require "smtpsh.tlsscan"
local task = require "smtpsh.task"

local type, pairs, ipairs, pcall, tostring, tonumber, os_time =
  type, pairs, ipairs, pcall, tostring, tonumber, os.time
local string_match, string_format, table_concat = string.match, string.format, table.concat

local watch_probe = {}

-- The steps whose durations are metrics, in the order a session takes them.
watch_probe.steps = { "dns", "connect", "banner", "ehlo", "starttls", "mail", "rcpt" }
local is_step = {}
for _, name in ipairs(watch_probe.steps) do is_step[name] = true end

-- "2026-01-31T12:00:00Z" -> Unix time (days from the civil date, as timegm does).
function watch_probe.utc_seconds(text)
  local y, m, d, hh, mm, ss = string_match(tostring(text), "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$")
  if not y then return nil end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m < 1 or m > 12 or d < 1 or d > 31 then return nil end
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

local function reply_fields(reply, stage)
  if type(reply) ~= "table" or not reply.code then return nil end
  local enhanced = reply.enhanced
  if type(enhanced) ~= "string" then enhanced = "" end
  return { stage = stage, code = tostring(reply.code), enhanced = enhanced }
end

-- "550 5.1.1 no such user" -> {stage, code, enhanced}
local function reply_of_line(line, stage)
  local code, rest = string_match(tostring(line or ""), "^(%d%d%d)[ -]?(.*)$")
  if not code then return nil end
  return { stage = stage, code = code, enhanced = string_match(rest, "^([245]%.%d%d?%d?%.%d%d?%d?)") or "" }
end

-- --- diagnose ---------------------------------------------------------------------------------

local function diagnose_record(record, target, options)
  local events = {}
  local settings = {}
  for key, value in pairs(options) do settings[key] = value end
  settings.on_event = function(event)
    if event.kind == "step" then events[#events + 1] = event end
  end
  local result, problem = diagnose.run(target, settings)
  if not result then
    record.result, record.error, record.summary = "error", problem, "could not run: " .. tostring(problem)
    return
  end
  for _, event in ipairs(events) do
    if is_step[event.name] and (event.purpose == nil or event.purpose == "probe") then
      record.steps[#record.steps + 1] = { name = event.name, seconds = event.finished - event.started }
    end
  end
  local facts = result.facts
  for _, session in ipairs(facts.sessions or {}) do
    for _, step in ipairs(session.steps or {}) do
      local reply = reply_fields(step.reply, step.stage)
      if reply then record.replies[#record.replies + 1] = reply end
    end
  end
  local deciding = facts.deciding and facts.sessions[facts.deciding]
  for _, session in ipairs(facts.sessions or {}) do
    if session.purpose == "probe" and session.tls_failed then record.tls.failed = true end
  end
  local tls = deciding and deciding.tls
  if tls then
    record.tls.version = tls.version
    record.tls.not_after = watch_probe.utc_seconds(tls.not_after)
  end
  local source = facts.source
  if source and source.dnsbl and source.dnsbl.zones then
    record.dnsbl = { ip = source.ip or source.local_ip, zones = source.dnsbl.zones, listed = {} }
    for _, listing in ipairs(source.dnsbl.listed or {}) do record.dnsbl.listed[listing.zone] = true end
  end
  record.verdict, record.stage = result.verdict, result.stage
  record.success = result.verdict == "ok"
  record.result = record.success and "success" or "failure"
  record.summary = string_format("%s%s%s", result.verdict, result.stage and (" (at " .. result.stage .. ")") or "",
    result.transient and ", transient" or "")
  local lines = { report.render(result.checklist, { colour = false }), "verdict: " .. record.summary }
  if result.advice then lines[#lines + 1] = "advice: " .. result.advice end
  for _, line in ipairs(result.evidence or {}) do lines[#lines + 1] = "evidence: " .. tostring(line) end
  for i, session in ipairs(facts.sessions or {}) do
    lines[#lines + 1] = string_format("session %d (%s) %s:%s", i, tostring(session.purpose),
      tostring(session.address or session.host), tostring(session.port))
    for _, line in ipairs(session.transcript or {}) do
      lines[#lines + 1] = "  " .. report.visible(line)
      record.transcript[#record.transcript + 1] = line
    end
  end
  record.text = table_concat(lines, "\n")
  record.detail = { verdict = result.verdict, stage = result.stage, transient = result.transient,
                    evidence = result.evidence, advice = result.advice, checks = result.checks, mx = result.mx }
end

-- --- tls --------------------------------------------------------------------------------------

local function tls_record(record, target, options)
  local scan = { timeout = options.timeout or 10, helo = options.helo, sni = options.sni, source = options.source,
                 implicit = options.implicit, ca_file = options.ca_file }
  local started = task.now()
  local info, err = tlsscan.handshake(target, scan, { verify = options.verify })
  local seconds = task.now() - started
  if info then
    record.steps[#record.steps + 1] = { name = "starttls", seconds = seconds }
    local leaf = info.chain and info.chain[1]
    record.tls.version = info.version
    record.tls.not_after = leaf and watch_probe.utc_seconds(leaf.not_after)
    local expired = record.tls.not_after and record.tls.not_after < os_time()
    record.success = not expired
    record.verdict = expired and "tls_handshake_failed" or "ok"
    record.summary = string_format("%s, %s%s", info.version, tostring(info.cipher),
      expired and ", the certificate has expired" or "")
    record.detail = { version = info.version, cipher = info.cipher, verify_result = info.verify_result,
                      not_after = leaf and leaf.not_after, subject = leaf and leaf.subject }
  else
    local kind = type(err) == "table" and err.kind or "error"
    local message = tostring(err)
    record.success = false
    if kind == "refused" then
      record.verdict = "connect_refused"
    elseif kind == "dns" then
      record.verdict = "dns_failure"
    elseif kind == "timeout" and type(err) == "table" and (err.stage == "connect" or err.stage == nil) then
      record.verdict = "connect_timeout"
    else
      record.tls.failed = kind == "tls"
      record.verdict = "tls_handshake_failed"
      if kind == "tls" then
        local versions = tlsscan.versions(target, scan)
        if versions.accepted and #versions.accepted > 0 then record.verdict = "tls_version_mismatch" end
        record.detail = { versions = versions.entries }
      end
    end
    record.summary = record.verdict .. ": " .. tostring(message)
  end
  record.result = record.success and "success" or "failure"
  record.text = "tls " .. target .. ": " .. record.summary
end

-- --- verify -----------------------------------------------------------------------------------

local function verify_record(record, target, options)
  local verify = require "smtpsh.verify"
  local got
  local settings = { timeout = options.timeout or 10, tries = 1, budget = (options.timeout or 10) * 4,
                     helo = options.helo, from = options.from, port = options.port, concurrency = 1,
                     per_domain = 1 }
  verify.run({ target }, settings, function(result) got = result end)
  if not got then
    record.result, record.summary = "error", "verify gave no result"
    return
  end
  record.success = got.is_reachable == "safe" or got.is_reachable == "risky"
  record.result = record.success and "success" or "failure"
  record.verdict = record.success and "ok" or nil
  local reply = type(got.reply) == "string" and reply_of_line(got.reply, "rcpt")
  if reply then record.replies[1] = reply end
  record.summary = string_format("%s (%s)%s", tostring(got.is_reachable), tostring(got.reason),
    type(got.reply) == "string" and (": " .. got.reply) or "")
  record.text = "verify " .. target .. ": " .. record.summary
  record.detail = { is_reachable = got.is_reachable, reason = got.reason, reply = got.reply, mx = got.mx }
end

-- --- a function of the user's -----------------------------------------------------------------

local function function_record(record, target, options, fn)
  local result = fn(target, { options = options, probe = record.probe })
  if type(result) ~= "table" then
    error(string_format("the probe function returned a %s, not a table {success = ...}", type(result)), 0)
  end
  record.success = result.success == true
  record.result = record.success and "success" or "failure"
  record.verdict = type(result.verdict) == "string" and result.verdict or nil
  record.summary = tostring(result.summary or (record.success and "ok" or "failed"))
  for _, reply in ipairs(type(result.replies) == "table" and result.replies or {}) do
    local r = reply_fields(reply, reply.stage or "unknown")
    if r then record.replies[#record.replies + 1] = r end
  end
  for _, step in ipairs(type(result.steps) == "table" and result.steps or {}) do
    if is_step[step.name] and type(step.seconds) == "number" then record.steps[#record.steps + 1] = step end
  end
  record.text = tostring(result.text or (record.probe .. " " .. target .. ": " .. record.summary))
  record.detail = {}
  for key, value in pairs(result) do
    if type(value) ~= "function" and type(value) ~= "userdata" and type(value) ~= "thread" then
      record.detail[key] = value
    end
  end
end

local kinds = { diagnose = diagnose_record, tls = tls_record, verify = verify_record }
watch_probe.kinds = { "diagnose", "tls", "verify" }

-- Whether `probe` names a probe: a kind, or a function.
function watch_probe.known(probe)
  return type(probe) == "function" or kinds[probe] ~= nil
end

-- watch_probe.run({target, probe = "diagnose" | "tls" | "verify" | function, name, options})
--   -> record. Never raises for what the probe does.
function watch_probe.run(spec)
  local probe_name = spec.name or (type(spec.probe) == "string" and spec.probe) or "custom"
  local record = { target = spec.target, probe = probe_name, started = os_time(), success = false,
                   steps = {}, replies = {}, tls = {}, transcript = {} }
  local started = task.now()
  local options = spec.options or {}
  local ok, err
  if type(spec.probe) == "function" then
    ok, err = pcall(function_record, record, spec.target, options, spec.probe)
  else
    ok, err = pcall(kinds[spec.probe or "diagnose"], record, spec.target, options)
  end
  record.duration = task.now() - started
  if not ok then
    -- An interruption (Ctrl-C, the watcher stopping) is no probe result: it goes on up.
    if type(err) == "string" and string_match(err, "interrupted") then error(err, 0) end
    record.success, record.result, record.verdict = false, "error", nil
    record.error = tostring(err)
    record.summary = "the probe raised: " .. record.error
    record.text = record.probe .. " " .. tostring(spec.target) .. ": " .. record.summary
  end
  record.detail = record.detail or {}
  return record
end

return watch_probe
