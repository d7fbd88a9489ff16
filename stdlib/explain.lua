-- explain: from a bounce or a log line to the diagnosis that explains it. The text is read by
-- stdlib/explain_parse.lua into attempts; here the one that decides is chosen, said in plain
-- words, and turned into a finding of the judge (stdlib/judge.lua), which weighs it alone
-- (offline) or with a live probe's facts from this machine. No I/O: the live probe is the
-- caller's (scripts/explain.lua runs diagnose).
--
--   local explain = require "smtpsh.explain"
--   local understood, why = explain.read(text)
--   understood = {
--     attempt,          the deciding attempt (explain_parse's shape), others = N more
--     sources, lines, used,
--     meaning,          what happened, in plain words
--     code_meaning,     the enhanced code in words (RFC 3463), when there is one
--     finding,          {kind, stage, evidence} for the judge, or nil when the text does not
--     undecided,        say enough: then `undecided` says what is missing
--     target,           what a live probe should reach: "IP:PORT", "HOST:PORT" or the domain
--     rcpt,             the recipient to probe with, when the text names one
--   }
--   explain.offline(understood) -> verdict {verdict, stage, transient, evidence, advice} | nil
--   explain.weigh(understood, facts) -> verdict, reproduces (true | false | nil)

local classify = require "smtpsh.classify"
local enhanced_status = require "smtpsh.enhanced_status"
local explain_parse = require "smtpsh.explain_parse"
local judge = require "smtpsh.judge"
local smtp = require "smtpsh.smtp"

local ipairs = ipairs
local string_find, string_lower, string_match = string.find, string.lower, string.match

local explain = {}

local stage_words = judge.stage_words

-- The attempt that explains the failure: the last failure the text tells (a line saying the
-- sender did not try, or a delay with no cause, only when nothing says more), else the last
-- delivery.
local weak = { not_tried = true, delayed = true, unknown = true }

local function deciding(attempts)
  local failure, weak_failure, delivered
  for _, attempt in ipairs(attempts) do
    if attempt.event == "delivered" then
      delivered = attempt
    elseif weak[attempt.event] then
      weak_failure = attempt
    else
      failure = attempt
    end
  end
  return failure or weak_failure or delivered
end

local function at(stage)
  return stage and (" at " .. (stage_words[stage] or stage)) or ""
end

-- A TLS failure is a version mismatch only when the library's words say so; "wrong version
-- number" is no version at all (the peer did not speak TLS).
local version_words = { "alert protocol version", "unsupported protocol", "no protocols available",
                        "version too low", "legacy sigalg", "protocol version" }

local function is_version_problem(reason)
  reason = string_lower(reason or "")
  if string_find(reason, "wrong version number", 1, true) then return false end
  for _, words in ipairs(version_words) do
    if string_find(reason, words, 1, true) then return true end
  end
  return false
end

-- The reply as the judge's reply_finding takes it: {code, enhanced, text, line}.
local function reply_table(attempt)
  local text = string_match(attempt.reply, "^%d%d%d[ %-](.*)$") or attempt.reply
  return { code = attempt.code, enhanced = attempt.enhanced, text = text, line = attempt.reply }
end

-- What the attempt means, in words, and the finding it gives (or why it gives none).
local function read_attempt(attempt)
  local event, stage = attempt.event, attempt.stage
  local evidence = { "log: " .. attempt.line }
  if event == "reply" then
    local reply = reply_table(attempt)
    local class = classify.reply(reply)
    if attempt.code < 400 then
      return class.meaning, { kind = "ok", stage = stage, evidence = evidence }
    end
    return class.meaning, judge.reply_finding(reply, stage, evidence)
  elseif event == "refused" then
    return "The server's port refused the TCP connection: nothing listens there, or a firewall rejects it.",
      { kind = "connect_refused", stage = "connect", evidence = evidence }
  elseif event == "connect_timeout" or event == "unreachable" then
    return (event == "unreachable" and "There was no route to the server" or "The connection got no answer") ..
      ": the host is down, or a firewall drops the packets (an ISP that blocks outbound port 25 does this).",
      { kind = "connect_timeout", stage = "connect", evidence = evidence }
  elseif event == "lost" then
    if stage == "banner" then
      return "The server accepted the TCP connection and closed it before its greeting: it turns this client away at connect time (a connection limit, a blocklist, a tarpit).",
        { kind = "dropped_before_banner", stage = "banner", evidence = evidence }
    elseif stage then
      return "The server closed the connection" .. at(stage) .. " without a reply.",
        { kind = "dropped_mid_session", stage = stage, evidence = evidence }
    end
    return "The connection dropped, and the text does not say at which step.", nil,
      "the step where the connection dropped (before the greeting, or later): the live probe tells"
  elseif event == "timeout" then
    return "The server stopped answering" .. at(stage) .. ": the sender's deadline passed first.",
      { kind = "slow_server", stage = stage, evidence = evidence }
  elseif event == "protocol" then
    return "The server's replies broke the SMTP protocol" .. at(stage) .. " (the sender could not read them).",
      { kind = "protocol_error", stage = stage, evidence = evidence }
  elseif event == "tls_failed" then
    local why = attempt.tls_reason and (" (" .. attempt.tls_reason .. ")") or ""
    if is_version_problem(attempt.tls_reason) then
      return "The TLS handshake after STARTTLS failed: the two sides share no TLS version" .. why .. ".",
        { kind = "tls_version_mismatch", stage = "starttls", evidence = evidence }
    end
    return "The TLS handshake after STARTTLS failed" .. why .. ".",
      { kind = "tls_handshake_failed", stage = "starttls", evidence = evidence }
  elseif event == "tls_not_offered" then
    return "The sender requires TLS, and the server did not offer STARTTLS: the sender would not send in plain text.", nil,
      "a verdict for a server that offers no STARTTLS to a sender that requires it (smtpsh's verdicts judge the server, which is within the protocol): the live probe shows whether STARTTLS is offered"
  elseif event == "dns" then
    if attempt.rcode == "NXDOMAIN" then
      return "The name does not exist in DNS: the domain or its MX host is not there.",
        { kind = "dns_no_mx", stage = "dns", evidence = evidence }
    end
    return "The DNS look-up failed for a while (SERVFAIL or a timeout): nothing was tried.",
      { kind = "dns_failure", stage = "dns", evidence = evidence }
  elseif event == "not_tried" then
    return "The sender did not try this time: an earlier failure set a retry time, and an earlier line says why.", nil,
      "the failure itself: this line only says that the sender waits"
  elseif event == "delayed" then
    return "The message is delayed: the sender keeps retrying. This text does not say why.", nil,
      "the cause of the delay: the sender's log (or the NDR's details) says it"
  elseif event == "delivered" then
    return "Delivered: the server accepted the message.", { kind = "ok", evidence = evidence }
  end
  return "A delivery status whose words smtpsh does not know" ..
    (attempt.why and (": " .. attempt.why) or "") .. ".", nil, "words smtpsh understands"
end

-- Where a live probe should go: the address the sender reached (with its port), else its host
-- name, else the recipient's domain (its MX hosts, as the sender would).
local function live_target(attempt)
  local port = attempt.port or 25
  if attempt.ip and smtp.is_address(attempt.ip) then return smtp.endpoint(attempt.ip, port) end
  if attempt.host and attempt.host ~= "" then return smtp.endpoint(attempt.host, port) end
  return attempt.domain
end

function explain.read(text)
  local parsed = explain_parse.parse(text)
  local attempt = deciding(parsed.attempts)
  if not attempt then
    return nil, parsed
  end
  local meaning, finding, undecided = read_attempt(attempt)
  local understood = {
    attempt = attempt, others = #parsed.attempts - 1, sources = parsed.sources, lines = parsed.lines,
    used = parsed.used, truncated = parsed.truncated, meaning = meaning, finding = finding, undecided = undecided,
    code_meaning = attempt.enhanced and enhanced_status.describe(attempt.enhanced) or nil,
    target = live_target(attempt), rcpt = attempt.recipient,
  }
  return understood
end

-- What the text alone says, as the judge's verdict; nil when it does not say enough.
function explain.offline(understood)
  if not understood.finding then return nil end
  return judge.verdict(nil, understood.finding)
end

-- The text's finding and the live probe's facts, weighed together; and whether the probe saw
-- the same thing on its own: a finding of the same kind among its own (a drop at the greeting
-- seen again reproduces, even where a listing then decides the verdict). nil when the text
-- alone gave no finding.
function explain.weigh(understood, facts)
  local combined = judge.verdict(facts, understood.finding)
  if not understood.finding then return combined, nil end
  for _, finding in ipairs(judge.findings(facts)) do
    if finding.kind == understood.finding.kind then return combined, true end
  end
  return combined, false
end

-- One line of what was recognised in a text that explained nothing.
function explain.recognised(parsed)
  if #parsed.sources == 0 then
    return "nothing: no delivery status, log line or SMTP reply smtpsh knows (" .. parsed.lines .. " lines read)"
  end
  return table.concat(parsed.sources, ", ") .. " text, but no delivery attempt in it"
end

-- The stage in words, for the report.
function explain.stage_text(stage)
  if not stage then return "not said" end
  return stage .. (stage_words[stage] and stage_words[stage] ~= stage and (" (" .. stage_words[stage] .. ")") or "")
end

return explain
