-- judge: the second half of a diagnosis, a pure function from the facts that stdlib/gather.lua
-- collected to a verdict of the vocabulary in ARCHITECTURE.md ("Diagnosis"). No I/O: the same
-- facts give the same verdict, here, in a test, or offline from a bug report's --json.
--
--   local judge = require "smtpsh.judge"
--   local v = judge.verdict(facts)   -> {verdict, stage, transient, evidence, advice}
--   local checks = judge.checks(facts)   -> a report.checklist, one line per thing checked
--
-- How: each part of the facts yields findings ({kind, stage, evidence}): the DNS answers, the
-- connects, the deciding session, its retries and back-to-back sessions, the source address's
-- PTR and DNSBL results. `judge.precedence` says, in one ordered table, which finding wins.

local classify = require "smtpsh.classify"
local report = require "smtpsh.report"
local json = require "smtpsh.json"
local probe = require "smtpsh.probe"  -- for its pure helpers only (endpoint)

local ipairs, tostring = ipairs, tostring
local string_format, string_lower, string_sub = string.format, string.lower, string.sub
local table_concat = table.concat

local judge = {}
local plural = report.plural

-- Verdicts: whether each is transient, and what to do.
judge.verdicts = {
  ok = { false, "Nothing to fix for this destination: an MX accepted the probe recipient." },
  no_mx = { false, "The domain publishes no MX and no address: it does not receive mail. Check the address's spelling, or ask the domain's owner to publish MX records." },
  dns_failure = { true, "The resolver failed for the domain or its MX hosts (SERVFAIL or timeout). Retry later; check the domain's DNS servers (and DNSSEC) with `smtpsh dns DOMAIN`, and your own resolver." },
  connect_refused = { false, "Every MX refused TCP on the port: nothing listens there. The MX hosts are down or misconfigured; tell the domain's postmaster." },
  connect_timeout = { false, "Every MX was silent on connect: a firewall, or your ISP blocking outbound port 25. Try from another network, or relay through your provider's smarthost on port 587." },
  dropped_before_banner = { true, "The server accepted TCP and closed before its greeting: it refuses your IP at connect time (a connection limit, a blocklist, a tarpit). Check the DNSBL results, slow down, and retry later." },
  server_busy = { true, "The server greeted with 421/4xx: overloaded or at its connection limit. Retry later with fewer parallel connections; a real MTA queues and retries." },
  dropped_mid_session = { true, "The server closed after the greeting without a reply, at the stage shown. Often a policy drop (rate, reputation) or a broken middlebox; retry later and check your IP's reputation." },
  tls_version_mismatch = { false, "STARTTLS fails with this machine's default TLS settings but works with some versions alone: the server offers only versions that modern senders refuse. The server's admin must enable TLS 1.2 or newer." },
  tls_handshake_failed = { false, "STARTTLS failed for a reason other than the version (certificate, cipher, an abort, not TLS at all). See the TLS check; try `smtpsh tls HOST`. Opportunistic senders fall back to plain text; senders that require TLS do not." },
  greylisted = { true, "Greylisting: the first attempt is deferred with 4xx, a retry after a delay is accepted. Nothing to fix: retry from the same IP after a few minutes, as every MTA does." },
  rate_limited = { true, "Rate limiting: sessions succeed, then 421/4xx after a few. Send fewer messages and connections per minute to this destination, and warm up new IPs slowly." },
  dnsbl_listed = { false, "Your IP is listed on a DNS blocklist. Find out why (the TXT reason), fix the cause (open relay, compromised host, bad list hygiene), then request delisting; or send through another IP." },
  ptr_mismatch = { false, "Your IP's reverse DNS is missing, not forward-confirmed, or differs from your EHLO name. Set a PTR for your IP that resolves back to it, and say that name in EHLO (--helo)." },
  slow_server = { true, "The banner or a reply came later than the timeout allows. The server is slow (overloaded, or a deliberate greet pause); raise the timeout (RFC 5321 allows 5 minutes) and retry." },
  rejected = { false, "A permanent 5xx refusal that nothing above explains: read the reply text; it usually says what the receiver objects to." },
  protocol_error = { false, "The server broke the SMTP protocol at the stage shown: a malformed or oversized reply, too many reply lines, or replies no command asked for. Its software or a middlebox in the path is faulty; tell the domain's postmaster, with the evidence." },
}

-- Which finding decides when several are present: the first one in this list that was found.
-- Each row: the finding, the verdict it gives, and why it stands where it stands.
judge.precedence = {
  { "dns_no_mx", "no_mx", "nothing to connect to: no later fact can exist" },
  { "dns_failure", "dns_failure", "the MX set is unknown: nothing later was tried" },
  { "connect_refused", "connect_refused", "no MX answered TCP: no session, no reply" },
  { "connect_timeout", "connect_timeout", "no MX answered TCP: no session, no reply" },
  { "protocol_error", "protocol_error", "a broken server or middlebox makes every other reading unsafe" },
  { "tls_version_mismatch", "tls_version_mismatch", "the session ended in the handshake: TLS is what failed" },
  { "tls_handshake_failed", "tls_handshake_failed", "the session ended in the handshake: TLS is what failed" },
  { "slow_server", "slow_server", "a reply that never came says nothing of the client" },
  { "reply_ptr", "ptr_mismatch", "the receiver said in words that reverse DNS is why" },
  { "rate_limited", "rate_limited", "the receiver named this client's rate or connections" },
  { "greylisted", "greylisted", "deferred, then accepted (or the words say greylisting): a listing did not stop it" },
  { "dnsbl_listing", "dnsbl_listed", "a listing found by the DNSBL check explains load, drops and refusals better than their words, and is a problem even where the MX accepted" },
  { "ptr_check", "ptr_mismatch", "missing or unconfirmed reverse DNS explains them too, after a listing" },
  { "server_busy", "server_busy", "a 4xx of load or a server-wide limit, with no reputation problem found" },
  { "dropped_before_banner", "dropped_before_banner", "a silent drop at connect, with no reputation problem found" },
  { "dropped_mid_session", "dropped_mid_session", "a silent drop later, with no reputation problem found" },
  { "rejected", "rejected", "a refusal whose words name no cause above" },
  { "ok", "ok", "an MX accepted, and nothing above was found" },
}

-- The advice for a verdict, fitted to what was seen: the stage, a null MX, a receiver's own
-- list, a 4xx that never cleared, the TLS versions that work.
local stage_words = { banner = "the greeting", ehlo = "EHLO", starttls = "STARTTLS", mail = "MAIL FROM",
                      rcpt = "RCPT TO", data = "DATA", auth = "AUTH", connect = "connect" }
judge.stage_words = stage_words

local tls_labels = { tls1 = "TLS 1.0", ["tls1.1"] = "TLS 1.1", ["tls1.2"] = "TLS 1.2", ["tls1.3"] = "TLS 1.3" }

local function labels(versions)
  local out = {}
  for i, version in ipairs(versions or {}) do out[i] = tls_labels[version] or version end
  return table_concat(out, " and ")
end

function judge.advice(verdict, stage, seen)
  seen = seen or {}
  local words = stage_words[stage] or stage
  if verdict == "no_mx" and seen.null_mx then
    return "The domain publishes a null MX (RFC 7505): its owner says it takes no mail at all. Nothing to fix on your side; use another address for this recipient."
  end
  if verdict == "rejected" and seen.local_list then
    return "The receiver refused this IP by a list of its own (no public DNSBL lists it). Contact the receiver's postmaster with the reply text, or send through another IP."
  end
  if verdict == "rejected" and seen.relay_denied then
    return "Seen at " .. words .. ". This MX does not accept mail for the domain (relay access denied), the same on every try: the domain's MX records point to a host that does not host it, or its relay configuration (Postfix relay_domains, mydestination) lacks the domain. Tell the domain's postmaster."
  end
  if verdict == "greylisted" and seen.not_cleared then
    return "A 4xx at " .. words .. " whose words say greylisting, not cleared while probing (no retry was accepted). Retry from the same IP after 5-15 minutes (--retries 1 --backoff 300 tries it); if it persists, contact the postmaster."
  end
  if verdict == "server_busy" and seen.unexplained_4xx then
    return "The server answered " .. words .. " with a 4xx that did not clear" .. (seen.retried and " on retry" or "") ..
      " and does not say why: a temporary problem at the receiver (a full queue, a failing filter or policy service). Retry later; if it persists, contact the postmaster with the reply."
  end
  if verdict == "server_busy" and stage and stage ~= "banner" then
    return "The server answered " .. words .. " with a 4xx speaking of load or a server-wide limit. Retry later with fewer parallel connections; a real MTA queues and retries."
  end
  if verdict == "rate_limited" and stage == "banner" then
    return "The greeting refused this client for its number of connections or its rate. Open fewer parallel sessions from this IP and send more slowly; a real MTA queues and retries."
  end
  if verdict == "tls_version_mismatch" and seen.tls_accepted and #seen.tls_accepted > 0 then
    return "The server accepts only " .. labels(seen.tls_accepted) .. " (deprecated, RFC 8996). Senders that require TLS 1.2 or newer fail the handshake (OpenSSL 3 at its default security level refuses these handshakes' SHA-1 signatures: \"legacy sigalg disallowed\"); other senders still get through over the old version or in plain text. The server's admin must enable TLS 1.2 or newer."
  end
  local advice = judge.verdicts[verdict][2]
  if stage and stage ~= "banner" and stage ~= "dns" and stage ~= "connect" and verdict ~= "ok" then
    advice = "Seen at " .. words .. ". " .. advice
  end
  return advice
end

-- Helpers over facts -----------------------------------------------------------------------

local function copy(list)
  local out = {}
  for i, value in ipairs(list or {}) do out[i] = value end
  return out
end

local function message(err)
  if not err then return "" end
  return tostring(err.message or err.kind or "")
end

local function deciding_of(facts)
  return facts.deciding and facts.sessions[facts.deciding]
end

-- The MX hosts that have an address, and the look-ups that failed other than by NXDOMAIN.
local function resolvable(facts)
  local count, failures = 0, {}
  for _, host in ipairs(facts.hosts or {}) do
    if #(host.addresses or {}) > 0 then count = count + 1 end
    if host.error and host.error.rcode ~= "NXDOMAIN" then failures[#failures + 1] = host end
  end
  return count, failures
end

-- The PTR problem of the source address, or nil (also when no check could run).
function judge.ptr_problem(facts)
  local source = facts.source
  local ptr = source and source.ptr
  if not ptr or ptr.error then return nil end
  if #(ptr.names or {}) == 0 then return source.ip .. " has no PTR record" end
  if not ptr.ok then return ptr.reason or ("no PTR name of " .. source.ip .. " resolves back to it") end
  local helo = facts.helo
  if not helo then return nil end  -- no EHLO was sent: only the PTR to confirm
  for _, name in ipairs(ptr.confirmed or {}) do
    if string_lower(name) == string_lower(helo) then return nil end
  end
  return "the EHLO name " .. helo .. " is not the PTR name of " .. source.ip .. " (" ..
    table_concat(ptr.confirmed or {}, ", ") .. ")"
end

-- "1.2.3.4 is listed on zone (127.0.0.2; reason)", or nil.
function judge.dnsbl_problem(facts)
  local dnsbl = facts.source and facts.source.dnsbl
  if not dnsbl or #(dnsbl.listed or {}) == 0 then return nil end
  local listed = {}
  for _, entry in ipairs(dnsbl.listed) do
    listed[#listed + 1] = entry.zone .. " (" .. table_concat(entry.codes or {}, ", ") ..
      (entry.reason and ("; " .. entry.reason) or "") .. ")"
  end
  return facts.source.ip .. " is listed on " .. table_concat(listed, ", ")
end

-- Findings ------------------------------------------------------------------------------------

local function dns_finding(facts)
  local mx = facts.dns and facts.dns.mx
  if mx then
    if mx.error then
      if mx.rcode == "NXDOMAIN" then
        return { kind = "dns_no_mx", stage = "dns", evidence = { "dns " .. mx.name .. " MX: NXDOMAIN" } }
      end
      return { kind = "dns_failure", stage = "dns",
               evidence = { "dns " .. mx.name .. " MX: " .. tostring(mx.rcode) .. ": " .. message(mx.error) } }
    end
    if mx.null then
      return { kind = "dns_no_mx", stage = "dns", null_mx = true, evidence = { "dns " .. mx.name .. " MX 0 ." } }
    end
    if #(facts.hosts or {}) == 0 then
      return { kind = "dns_no_mx", stage = "dns", evidence = { "dns " .. mx.name .. " MX: no records; A/AAAA: none" } }
    end
  end
  local count, failures = resolvable(facts)
  if count == 0 then
    if #failures > 0 then
      return { kind = "dns_failure", stage = "dns",
               evidence = { "dns " .. failures[1].host .. ": " .. message(failures[1].error) } }
    end
    return { kind = "dns_no_mx", stage = "dns", evidence = { "dns: no MX host has an address" } }
  end
end

-- No MX answered TCP: refused everywhere, silent everywhere, or a mix (the first one decides).
local function connect_finding(facts)
  local failures = {}
  for _, record in ipairs(facts.sessions or {}) do
    if record.purpose == "probe" and record.stage == "connect" then failures[#failures + 1] = record end
  end
  if #failures == 0 then return nil end
  local refused, evidence = 0, {}
  for _, record in ipairs(failures) do
    if record.error.kind == "refused" then refused = refused + 1 end
    evidence[#evidence + 1] = "! " .. message(record.error)
  end
  local kind = (refused == #failures or (refused > 0 and failures[1].error.kind == "refused"))
    and "connect_refused" or "connect_timeout"
  return { kind = kind, stage = "connect", evidence = evidence }
end

-- What a refusal's words say (classify.lua's classes), for a reply at `stage`.
local function reply_finding(reply, stage, evidence)
  local class = classify.reply(reply).class
  local transient = reply.code >= 400 and reply.code < 500
  if class == "ptr" then return { kind = "reply_ptr", stage = stage, evidence = evidence } end
  -- "Blacklisted" words are a DNSBL listing only when the DNSBL check finds one: otherwise the
  -- receiver's own list ("sender IP address 127.0.0.1 is locally blacklisted here").
  if class == "dnsbl" then return { kind = "rejected", stage = stage, evidence = evidence, says_dnsbl = true } end
  if class == "relay_denied" then
    return { kind = "rejected", stage = stage, evidence = evidence, relay_denied = true }
  end
  if not transient then return { kind = "rejected", stage = stage, evidence = evidence } end
  -- "Too many connections from your IP" is this client being throttled; words of load, or none
  -- about the client, are the server's state.
  if class == "rate_limit" then return { kind = "rate_limited", stage = stage, evidence = evidence } end
  if stage == "banner" or class == "overload" then
    return { kind = "server_busy", stage = stage, evidence = evidence }
  end
  if class == "greylisting" then return { kind = "greylisted", stage = stage, evidence = evidence } end
  return { kind = "server_busy", stage = stage, evidence = evidence, unexplained_4xx = true }
end

-- The deciding session: where it stopped, and why.
local function session_finding(facts, record)
  local err, stage = record.error, record.stage
  if stage == "done" then
    return { kind = "ok", evidence = { "S " .. (record.rcpt_reply and record.rcpt_reply.line or "") } }
  end
  local evidence = copy(record.transcript)
  if stage == "banner" and not record.banner then
    -- No session came up: what arrived before the failure came with the error.
    evidence[#evidence + 1] = "! " .. message(err)
    if err.kind == "closed" then return { kind = "dropped_before_banner", stage = "banner", evidence = evidence } end
    if err.kind == "timeout" then return { kind = "slow_server", stage = "banner", evidence = evidence } end
    if err.kind == "protocol" then return { kind = "protocol_error", stage = "banner", evidence = evidence } end
    if err.kind == "reply" and err.reply then return reply_finding(err.reply, "banner", evidence) end
    return { kind = "dropped_before_banner", stage = "banner", evidence = evidence }
  end
  if err and err.kind == "closed" then return { kind = "dropped_mid_session", stage = stage, evidence = evidence } end
  if err and err.kind == "protocol" then return { kind = "protocol_error", stage = stage, evidence = evidence } end
  if record.tls_failed then
    local scan = facts.tls_versions
    local accepted = scan and scan.accepted or {}
    for _, entry in ipairs(scan and scan.entries or {}) do
      evidence[#evidence + 1] = "! " .. entry.version .. (entry.accepted and " accepted" or
        (" refused (" .. tostring(entry.reason) .. ": " .. tostring(entry.error) .. ")"))
    end
    if #accepted > 0 then
      return { kind = "tls_version_mismatch", stage = "starttls", evidence = evidence, tls_accepted = copy(accepted) }
    end
    return { kind = "tls_handshake_failed", stage = "starttls", evidence = evidence }
  end
  if err and err.kind == "timeout" then return { kind = "slow_server", stage = stage, evidence = evidence } end
  if err and err.kind == "reply" and err.reply then return reply_finding(err.reply, stage, evidence) end
  return { kind = "dropped_mid_session", stage = stage, evidence = evidence }
end

-- Retries of a 4xx at MAIL/RCPT: accepted later is greylisting (unless the words said rate
-- limit); never accepted keeps the first reading, marked as not cleared.
local function apply_retries(facts, finding)
  local retries = facts.retries
  if not retries then return end
  local tries = retries.tries or {}
  local last = tries[#tries] and facts.sessions[tries[#tries].session]
  finding.retried = #tries > 0
  if retries.cleared and last then
    finding.evidence[#finding.evidence + 1] = string_format("! retry %d after %.1f s: S %s", #tries,
      tries[#tries].at or 0, last.rcpt_reply and last.rcpt_reply.line or "")
    if finding.kind ~= "rate_limited" then
      finding.kind, finding.unexplained_4xx = "greylisted", nil
    end
    return
  end
  finding.not_cleared = true
  if last then
    local again = last.reply and last.reply.line or message(last.error)
    finding.evidence[#finding.evidence + 1] = "! after " .. plural(#tries, "retry", "retries") .. ": " .. again
  end
end

-- Back-to-back sessions after one that passed: the one that stopped shows the limit.
local function again_finding(facts)
  local again = facts.again
  if not again or not again.stopped then return nil end
  local record = facts.sessions[again.sessions[#again.sessions]]
  local what = record.reply and ("S " .. record.reply.line) or ("! " .. message(record.error))
  return { kind = "rate_limited", stage = record.stage,
           evidence = { string_format("! session %d of %d", again.stopped, again.planned), what } }
end

-- Every finding the facts support, in no particular order.
function judge.findings(facts)
  local found = {}
  local function add(finding) if finding then found[#found + 1] = finding end end
  local dns = dns_finding(facts)
  if dns then return { dns } end
  local deciding = deciding_of(facts)
  if not deciding then
    add(connect_finding(facts))
    if #found == 0 then add({ kind = "connect_timeout", stage = "connect", evidence = { "! no address was tried" } }) end
  else
    local finding = session_finding(facts, deciding)
    if deciding.stage == "mail" or deciding.stage == "rcpt" then apply_retries(facts, finding) end
    add(finding)
    add(again_finding(facts))
  end
  local listing = judge.dnsbl_problem(facts)
  if listing then add({ kind = "dnsbl_listing", evidence = { "dnsbl " .. listing } }) end
  local ptr = judge.ptr_problem(facts)
  if ptr then add({ kind = "ptr_check", evidence = { "ptr " .. ptr } }) end
  return found
end

local evidence_most = 60

local function bounded(lines)
  local out = json.array()
  for _, line in ipairs(lines or {}) do
    if #out >= evidence_most then break end
    line = tostring(line)
    if #line > 340 then line = string_sub(line, 1, 300) .. " ... (" .. #line .. " bytes)" end
    out[#out + 1] = line
  end
  return out
end

judge.reply_finding = reply_finding

-- facts -> {verdict, stage, transient, evidence, advice}. `reported`, when given, is a finding
-- that a log or a bounce told (stdlib/explain.lua): it weighs with the probe's own findings by
-- the same precedence, and when another finding decides, the reported one's evidence follows
-- it. Without facts (nil), the reported finding alone decides: what the text says, offline.
function judge.verdict(facts, reported)
  local found = facts and judge.findings(facts) or {}
  if reported then found[#found + 1] = reported end
  local by_kind = {}
  for _, finding in ipairs(found) do by_kind[finding.kind] = by_kind[finding.kind] or finding end
  local chosen, verdict
  for _, row in ipairs(judge.precedence) do
    if by_kind[row[1]] then
      chosen, verdict = by_kind[row[1]], row[2]
      break
    end
  end
  -- A reputation finding speaks of the stage where the session showed it.
  local primary = found[1]
  local stage = chosen.stage
  if not stage and primary and primary.kind ~= "ok" then stage = primary.stage end
  if not stage and reported and reported.kind ~= "ok" then stage = reported.stage end
  local seen = {
    null_mx = chosen.null_mx, relay_denied = chosen.relay_denied, unexplained_4xx = chosen.unexplained_4xx,
    local_list = chosen.says_dnsbl and not by_kind.dnsbl_listing, tls_accepted = chosen.tls_accepted,
    not_cleared = chosen.not_cleared, retried = chosen.retried,
  }
  local evidence = copy(chosen.evidence)
  if reported and chosen ~= reported then
    for _, line in ipairs(reported.evidence or {}) do evidence[#evidence + 1] = line end
  end
  return {
    verdict = verdict, stage = stage, transient = judge.verdicts[verdict][1],
    evidence = bounded(evidence), advice = judge.advice(verdict, stage, seen),
  }
end

-- The checklist ------------------------------------------------------------------------------

local function reply_or_error(record)
  return record.reply and record.reply.line or message(record.error)
end

local function step_seconds(record, stage)
  for _, step in ipairs(record.steps or {}) do
    if step.stage == stage then return step.seconds end
  end
end

local function dns_checks(facts, checks)
  local mx = facts.dns and facts.dns.mx
  if not mx then
    checks:add("mx", "skip", "probing " .. tostring(facts.host) .. ":" .. facts.port .. " directly")
  elseif mx.error then
    if mx.rcode == "NXDOMAIN" then
      checks:add("mx", "fail", mx.name .. " does not exist (NXDOMAIN)")
    else
      checks:add("mx", "fail", "MX look-up failed: " .. message(mx.error))
    end
    return
  elseif mx.null then
    checks:add("mx", "fail", "null MX (MX 0 .): " .. mx.name .. " accepts no mail (RFC 7505)")
    return
  elseif #(facts.hosts or {}) == 0 then
    checks:add("mx", "fail", "no MX record and no address to fall back to (RFC 5321 section 5.1)")
    return
  elseif mx.implicit then
    checks:add("mx", "warn", "no MX record: the domain's own address stands in (implicit MX)")
  else
    local listed = {}
    for _, entry in ipairs(mx.records or {}) do listed[#listed + 1] = entry.preference .. " " .. entry.host end
    checks:add("mx", "ok", table_concat(listed, ", "))
  end
  for _, host in ipairs(facts.hosts or {}) do
    if #(host.addresses or {}) > 0 then
      checks:add("addresses " .. host.host, "ok", table_concat(host.addresses, ", "))
    else
      checks:add("addresses " .. host.host, "fail", host.error and message(host.error) or "no A or AAAA record")
    end
  end
end

-- The step where the deciding session stopped, with its retries.
local function stop_check(facts, record, checks)
  local retries = facts.retries
  if retries then
    local tries = retries.tries or {}
    local last = tries[#tries] and facts.sessions[tries[#tries].session]
    if retries.cleared and last then
      checks:add(record.stage, "warn", string_format("4xx first (%s), accepted on retry %d after %.1f s",
        record.reply.line, #tries, tries[#tries].at or 0))
    elseif last then
      checks:add(record.stage, "fail", record.reply.line .. "; still refused after " ..
        plural(#tries, "retry", "retries") .. ": " .. reply_or_error(last))
    else
      checks:add(record.stage, "warn", record.reply.line .. " (no retry: --retries 0)")
    end
  elseif record.stage ~= "starttls" then
    checks:add(record.stage, "fail", message(record.error))
  end
end

local function session_checks(facts, record, checks)
  if record.banner then
    local seconds = step_seconds(record, "banner") or 0
    local slow = facts.settings and facts.settings.timeout and seconds > facts.settings.timeout / 2
    checks:add("banner", slow and "warn" or "ok", string_format("%s after %.0f ms", record.banner.line, seconds * 1000))
  end
  local starttls = record.starttls_offered or record.tls or record.tls_failed
  if record.caps and record.stage ~= "ehlo" then
    checks:add("ehlo", "ok", starttls and "ESMTP, STARTTLS offered" or "ESMTP")
    if not starttls then checks:add("starttls", "warn", "STARTTLS not offered: mail to this MX goes unencrypted") end
  end
  if record.tls then
    checks:add("starttls", "ok", record.tls.version .. " " .. record.tls.cipher .. ", certificate verify: " ..
      tostring(record.tls.verify_result))
  elseif record.tls_failed then
    checks:add("starttls", "fail", message(record.error))
  end
  if record.stage == "done" then
    checks:add("rcpt", "ok", "RCPT TO:<" .. facts.rcpt .. ">: " .. (record.rcpt_reply and record.rcpt_reply.line or ""))
  else
    stop_check(facts, record, checks)
  end
end

local function tls_checks(facts, checks)
  local scan = facts.tls_versions
  if scan then
    local results = {}
    for _, entry in ipairs(scan.entries or {}) do
      results[#results + 1] = entry.version .. (entry.accepted and " accepted" or (" refused (" ..
        tostring(entry.reason) .. ": " .. tostring(entry.error) .. ")"))
    end
    if scan.never_reached then
      checks:add("tls versions", "warn", "the per-version scan never reached TLS: " .. message(scan.never_reached))
    elseif #(scan.accepted or {}) > 0 then
      checks:add("tls versions", "fail", "STARTTLS works only with " .. table_concat(scan.accepted, ", ") ..
        "; " .. table_concat(results, ", "))
    else
      checks:add("tls versions", "fail", "no TLS version works: " .. table_concat(results, ", "))
    end
  end
  local plain = facts.plain and facts.sessions[facts.plain]
  if plain then
    local requires_tls = plain.reply and classify.reply(plain.reply).class == "tls_required"
    if plain.stage == "done" then
      checks:add("plain text", "ok", "without TLS the recipient is accepted (opportunistic senders get through)")
    elseif requires_tls then
      checks:add("plain text", "fail", "plain-text senders are refused: the server requires STARTTLS (" ..
        plain.reply.line .. "), so with this TLS failure nobody delivers")
    else
      checks:add("plain text", "warn", "without TLS: stopped at " .. tostring(plain.stage) .. ": " .. message(plain.error))
    end
  end
end

-- DANE of the deciding MX (RFC 7672): only TLSA records smtpsh found DNSSEC-secure count.
local function dane_check(facts, checks)
  local dane = facts.dane
  if not dane then return end
  local name = "_" .. facts.port .. "._tcp." .. tostring(dane.host)
  if dane.records == 0 then
    if dane.error then
      checks:add("dane", "warn", "TLSA look-up for " .. name .. " failed: " .. dane.error)
    else
      checks:add("dane", "skip", "no TLSA records for " .. name .. " (no DANE)")
    end
  elseif dane.dnssec == "bogus" then
    checks:add("dane", "fail", "the TLSA records of " .. name .. " are DNSSEC-bogus (" .. tostring(dane.reason) ..
      "): DANE senders will not deliver")
  elseif dane.dnssec ~= "secure" then
    checks:add("dane", "warn", "the TLSA records of " .. name .. " are " .. tostring(dane.dnssec) .. " (" ..
      tostring(dane.reason) .. "): DANE senders ignore them")
  elseif dane.usable == 0 then
    checks:add("dane", "warn", "none of the TLSA records of " .. name .. " is usable for SMTP (only DANE-TA(2) and " ..
      "DANE-EE(3) are, RFC 7672 section 3.1.3): DANE senders require TLS here but authenticate nothing")
  elseif dane.matched then
    checks:add("dane", "ok", "a DNSSEC-secure TLSA record matches the certificate (" .. tostring(dane.record) .. ")")
  else
    checks:add("dane", "fail", "no DNSSEC-secure TLSA record of " .. name .. " matches the certificate" ..
      (dane.error and (" (" .. dane.error .. ")") or "") .. ": DANE senders will not deliver")
  end
end

-- The MTA-STS record (its policy file is not fetched), with its DNSSEC state.
local function mta_sts_check(facts, checks)
  local sts = facts.mta_sts
  if not sts then return end
  local state = sts.dnssec and (", DNSSEC " .. sts.dnssec) or ""
  if sts.error then
    checks:add("mta-sts", "warn", "MTA-STS look-up failed: " .. sts.error)
  elseif sts.dnssec == "bogus" then
    checks:add("mta-sts", "fail", "the MTA-STS record's answer is DNSSEC-bogus (" .. tostring(sts.reason) .. ")")
  elseif sts.none then
    checks:add("mta-sts", "skip", "no MTA-STS record" .. state)
  else
    checks:add("mta-sts", sts.id and "ok" or "warn",
      (sts.id and ("policy id " .. sts.id) or "the record has no id= tag (RFC 8461 section 3.1)") .. state)
  end
end

local function again_check(facts, checks)
  local again = facts.again
  if not again or again.planned < 2 then return end
  if again.stopped then
    local record = facts.sessions[again.sessions[#again.sessions]]
    local n = again.stopped
    local before = n == 2 and "session 1 succeeded" or string_format("sessions 1-%d succeeded", n - 1)
    local what = record.reply and ("S " .. record.reply.line) or ("! " .. message(record.error))
    checks:add("sessions", "fail", string_format("%s, session %d stopped at %s: %s", before, n, record.stage, what))
  else
    checks:add("sessions", "ok", again.planned .. " back-to-back sessions all accepted")
  end
end

local function source_checks(facts, checks)
  local source = facts.source
  if not source then return end
  if not source.ip then
    if source.private then
      local unknown = "unknown: " .. source.local_ip .. " is a private address (NAT), and the address receivers " ..
        "see was not learnt (no server echoed it, no DNS echo service answered); give it with --public-ip ADDR"
      checks:add("source ptr", "warn", unknown)
      checks:add("dnsbl", "warn", unknown)
    end
    return
  end
  local ip, ptr = source.ip, source.ptr or {}
  local via = ({ option = " (public address from --public-ip)",
                 greeting = " (public address, as the server echoed it)",
                 dns = " (public address, from the DNS echo " .. tostring(source.echo_service) .. ")" })[source.ip_from] or ""
  local problem = judge.ptr_problem(facts)
  if ptr.error then
    checks:add("source ptr", "warn", "PTR look-up for " .. ip .. " failed: " .. message(ptr.error))
  elseif problem then
    checks:add("source ptr", "fail", problem .. via)
  elseif not facts.helo then
    -- The session ended before EHLO: there is no name to compare, only the PTR to confirm.
    checks:add("source ptr", "ok", ip .. " -> " .. table_concat(ptr.confirmed or {}, ", ") ..
      " (forward-confirmed; no EHLO was sent)" .. via)
  else
    checks:add("source ptr", "ok", ip .. " -> " .. table_concat(ptr.confirmed or {}, ", ") ..
      " (forward-confirmed, matches EHLO)" .. via)
  end
  local dnsbl = source.dnsbl
  if not dnsbl then return end
  if #(dnsbl.zones or {}) == 0 then
    checks:add("dnsbl", "skip", "no DNSBL zones to check (--dnsbl none)")
    return
  end
  local listing = judge.dnsbl_problem(facts)
  if listing then
    checks:add("dnsbl", "fail", listing)
  elseif #(dnsbl.errors or {}) > 0 then
    local errors = {}
    for _, entry in ipairs(dnsbl.errors) do errors[#errors + 1] = entry.zone .. ": " .. entry.error end
    checks:add("dnsbl", "warn", "not listed where checked; no answer from " .. table_concat(errors, "; "))
  else
    checks:add("dnsbl", "ok", ip .. " is listed on none of " .. plural(#dnsbl.zones, "zone"))
  end
end

-- facts [, verdict] -> a report.checklist: one line per thing checked, in the order probed.
function judge.checks(facts, verdict)
  local checks = report.checklist()
  dns_checks(facts, checks)
  local deciding = deciding_of(facts)
  for _, record in ipairs(facts.sessions or {}) do
    if record.purpose == "probe" and record.stage == "connect" then
      checks:add("connect " .. probe.endpoint(record.address, record.port), "fail", message(record.error))
    elseif record.purpose == "probe" and record ~= deciding then
      checks:add("mx " .. record.host, "warn", "stopped at " .. tostring(record.stage) .. ": " .. reply_or_error(record) ..
        (deciding and deciding.stage == "done" and "; a fallback MX accepted" or ""))
    end
  end
  if deciding then
    session_checks(facts, deciding, checks)
    tls_checks(facts, checks)
    dane_check(facts, checks)
    again_check(facts, checks)
  end
  mta_sts_check(facts, checks)
  source_checks(facts, checks)
  -- The probe recipient of a domain target is postmaster@, which greylisting daemons and many
  -- policies exempt: a clean pass for it says less about other addresses.
  verdict = verdict or judge.verdict(facts).verdict
  if verdict == "ok" and facts.kind == "domain" and not facts.rcpt_given then
    checks:add("recipient", "warn", "probed " .. facts.rcpt .. ", which greylisting and many policies exempt; " ..
      "give a real address (diagnose user@" .. facts.domain .. ") to see what other senders see")
  end
  return checks
end

return judge
