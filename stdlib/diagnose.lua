-- diagnose: the troubleshooting procedure for "why does mail to X fail", as a library. Runs
-- from this machine's own IP: MX look-up, every MX host's addresses, TCP connect in
-- preference order, the banner, EHLO, STARTTLS (each TLS version on its own when it fails),
-- MAIL and RCPT with a probe recipient, retries of transient answers, back-to-back sessions,
-- and the source address's PTR, forward confirmation and DNSBL listing. The result names one
-- verdict of the vocabulary of ARCHITECTURE.md, with the checks and the evidence that decided it.
--
--   local diagnose = require "smtpsh.diagnose"
--   local result = diagnose.run("user@example.com", {timeout = 10, retries = 1, backoff = 60})
--   result.verdict, result.transient, result.stage, result.checks, result.evidence, result.advice

local dns = require "smtpsh.dns"
local smtp = require "smtpsh.smtp"
local smtpcore = require "smtpsh.smtpcore"
local retry = require "smtpsh.retry"
local classify = require "smtpsh.classify"
local report = require "smtpsh.report"
local task = require "smtpsh.task"

local type, ipairs, tostring, tonumber, setmetatable = type, ipairs, tostring, tonumber, setmetatable
local string_format, string_match, string_lower, string_find, string_sub, string_gsub =
  string.format, string.match, string.lower, string.find, string.sub, string.gsub
local table_concat = table.concat

local diagnose = {}

-- Verdicts (ARCHITECTURE.md, "Diagnosis"): whether each is transient, and what to do.
diagnose.verdicts = {
  ok = { false, "Nothing to fix for this destination: an MX accepted the probe recipient." },
  no_mx = { false, "The domain publishes no MX and no address (or a null MX): it does not receive mail. Check the address's spelling, or ask the domain's owner to publish MX records." },
  dns_failure = { true, "The resolver failed for the domain or its MX hosts (SERVFAIL or timeout). Retry later; check the domain's DNS servers (and DNSSEC) with `smtpsh dns DOMAIN`, and your own resolver." },
  connect_refused = { false, "Every MX refused TCP on the port: nothing listens there. The MX hosts are down or misconfigured; tell the domain's postmaster." },
  connect_timeout = { false, "Every MX was silent on connect: a firewall, or your ISP blocking outbound port 25. Try from another network, or relay through your provider's smarthost on port 587." },
  dropped_before_banner = { true, "The server accepted TCP and closed before its greeting: it refuses your IP at connect time (a connection limit, a blocklist, a tarpit). Check the DNSBL results, slow down, and retry later." },
  server_busy = { true, "The server greeted with 421/4xx: overloaded or at its connection limit. Retry later with fewer parallel connections; a real MTA queues and retries." },
  dropped_mid_session = { true, "The server closed after the greeting without a reply, at the stage shown. Often a policy drop (rate, reputation) or a broken middlebox; retry later and check your IP's reputation." },
  tls_version_mismatch = { false, "STARTTLS fails with modern TLS versions but works with others: the server and your TLS library share no version. The server's admin must enable TLS 1.2+; until then senders requiring TLS cannot deliver." },
  tls_handshake_failed = { false, "STARTTLS failed for a reason other than the version (certificate, cipher, an abort, not TLS at all). See the TLS check; try `smtpsh tls HOST`. Opportunistic senders fall back to plain text; senders that require TLS do not." },
  greylisted = { true, "Greylisting: the first attempt is deferred with 4xx, a retry after a delay is accepted. Nothing to fix: retry from the same IP after a few minutes, as every MTA does." },
  rate_limited = { true, "Rate limiting: sessions succeed, then 421/4xx after a few. Send fewer messages and connections per minute to this destination, and warm up new IPs slowly." },
  dnsbl_listed = { false, "Your IP is listed on a DNS blocklist. Find out why (the TXT reason), fix the cause (open relay, compromised host, bad list hygiene), then request delisting; or send through another IP." },
  ptr_mismatch = { false, "Your IP's reverse DNS is missing, not forward-confirmed, or differs from your EHLO name. Set a PTR for your IP that resolves back to it, and say that name in EHLO (--helo)." },
  slow_server = { true, "The banner or a reply came later than the timeout allows. The server is slow (overloaded, or a deliberate greet pause); raise the timeout (RFC 5321 allows 5 minutes) and retry." },
  rejected = { false, "A permanent 5xx refusal that nothing above explains: read the reply text; it usually says what the receiver objects to." },
  protocol_error = { false, "The server broke the SMTP protocol at the stage shown: a malformed or oversized reply, too many reply lines, or replies no command asked for. Its software or a middlebox in the path is faulty; tell the domain's postmaster, with the evidence." },
}

-- The advice for a verdict, fitted to what was seen: the stage it was seen at, a null MX, a
-- receiver's own blocklist, a 4xx that never cleared.
local stage_words = { banner = "the greeting", ehlo = "EHLO", starttls = "STARTTLS", mail = "MAIL FROM",
                      rcpt = "RCPT TO", data = "DATA", auth = "AUTH", connect = "connect" }

function diagnose.advice(verdict, stage, seen)
  seen = seen or {}
  local words = stage_words[stage] or stage
  if verdict == "no_mx" and seen.null_mx then
    return "The domain publishes a null MX (RFC 7505): its owner says it takes no mail at all. Nothing to fix on your side; use another address for this recipient."
  end
  if verdict == "rejected" and seen.local_list then
    return "The receiver refused this IP by a list of its own (no public DNSBL lists it). Contact the receiver's postmaster with the reply text, or send through another IP."
  end
  if verdict == "greylisted" and seen.not_cleared then
    return "A 4xx at " .. words .. " that did not clear while probing: greylisting (the words or the code suggest it) or a temporary problem at the receiver. Retry from the same IP after 5-15 minutes (--retries 1 --backoff 300 tries it); if it persists, contact the postmaster."
  end
  if verdict == "server_busy" and stage and stage ~= "banner" then
    return "The server answered " .. words .. " with a 4xx speaking of load or a server-wide limit. Retry later with fewer parallel connections; a real MTA queues and retries."
  end
  if verdict == "rate_limited" and stage == "banner" then
    return "The greeting refused this client for its number of connections or its rate. Open fewer parallel sessions from this IP and send more slowly; a real MTA queues and retries."
  end
  local advice = diagnose.verdicts[verdict][2]
  if stage and stage ~= "banner" and stage ~= "dns" and stage ~= "connect" and verdict ~= "ok" then
    advice = "Seen at " .. words .. ". " .. advice
  end
  return advice
end

-- The well-known public blocklists checked by default.
diagnose.default_dnsbl = { "zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org" }

local function err_text(err)
  if err == nil then return "" end
  -- One value: gsub's count must never land in an evidence list.
  return (string_gsub(err.message or tostring(err), "\n", " | "))
end

local function one_line(reply) return (tostring(reply):gsub("\n", " | ")) end

local plural = report.plural

-- Evidence is for a person to read: a hostile server's 1,000-line reply or 64 KB line must not
-- become a 1,000-line report. The head and the tail of a transcript are kept (the tail is
-- where a session ends), each line cut to a readable length.
local evidence_head, evidence_tail, evidence_line = 12, 24, 300

local function evidence_line_of(e)
  local line = e.line
  if #line > evidence_line then
    line = string_sub(line, 1, evidence_line) .. " ... (" .. #line .. " bytes)"
  end
  return string_format("%s %s", e.dir, line)
end

-- The transcript lines of a session as evidence strings ("S 421 4.7.0 ..."), bounded.
local function lines_of(s, from)
  local out = {}
  if not s then return out end
  local transcript = s.transcript
  local first, last = from or 1, #transcript
  local count = last - first + 1
  for i = first, last do
    if count > evidence_head + evidence_tail and i == first + evidence_head then
      out[#out + 1] = string_format("! ... %d transcript lines not shown ...", count - evidence_head - evidence_tail)
    end
    if count <= evidence_head + evidence_tail or i < first + evidence_head or i > last - evidence_tail then
      out[#out + 1] = evidence_line_of(transcript[i])
    end
  end
  return out
end

local function ip_of(addr)
  if not addr then return nil end
  return string_match(addr, "^%[(.+)%]:%d+$") or string_match(addr, "^(.+):%d+$") or addr
end

-- Parses TARGET: "user@domain", "domain", "host:port", "[v6]:port", or an address literal.
function diagnose.parse_target(target, options)
  if type(target) ~= "string" or target == "" then return nil, "empty TARGET" end
  local local_part, domain = string_match(target, "^(.+)@([^@]+)$")
  if domain then
    return { kind = "address", domain = string_lower(domain), rcpt = target }
  end
  if smtpcore.is_address(target) then
    return { kind = "host", host = target, port = options.port or 25 }
  end
  -- With a port or brackets it is HOST[:PORT], read by the one parser every command uses.
  if string_find(target, "[:%[%]]") then
    local host, port = smtpcore.parse_target(target, options.port or 25)
    if not host then return nil, port .. "; expected a domain, an address, HOST:PORT or [IPV6]:PORT" end
    return { kind = "host", host = host, port = port }
  end
  local name, problem = require("smtpsh.dnscore").canonical(target)
  if not name then return nil, problem end
  return { kind = "domain", domain = name }
end

local Diagnosis = {}
Diagnosis.__index = Diagnosis

function Diagnosis:check(name, status, detail)
  return self.checks:add(name, status, detail)
end

local evidence_most = 60

function Diagnosis:evidence(lines)
  local evidence = self.result.evidence
  for _, line in ipairs(lines) do
    if #evidence >= evidence_most then break end
    line = tostring(line)
    if #line > evidence_line + 40 then line = string_sub(line, 1, evidence_line) .. " ... (" .. #line .. " bytes)" end
    evidence[#evidence + 1] = line
  end
end

function Diagnosis:decide(verdict, stage, evidence)
  if self.result.verdict then return end
  self.result.verdict = verdict
  self.result.stage = stage
  if evidence then self:evidence(evidence) end
end

-- One SMTP session as a sender makes it, up to RCPT. Returns a table describing how far it
-- got: {stage = where it stopped, err = ..., reply = ..., s = session, tls = ...}.
function Diagnosis:session(address, port, mx_host, opts)
  local o = self.options
  opts = opts or {}
  local outcome = { address = address }
  local started = task.now()
  local target = (string_find(address, ":", 1, true) and "[" .. address .. "]" or address) .. ":" .. port
  local s, err = smtp.connect(target, { timeout = o.timeout, source = o.source, helo = self.helo,
                                        trace = o.trace })
  outcome.connect_seconds = task.now() - started
  if not s then
    outcome.stage = err.stage or "connect"
    outcome.err = err
    if err.reply then outcome.reply = err.reply end
    -- Dropped before or at the greeting (the usual shape of an IP-reputation block): the
    -- address we connected from is in the transcript, and its PTR and DNSBL checks matter most.
    for _, e in ipairs(err.transcript or {}) do
      local from = e.dir == "!" and string_match(e.line, "^connected to %S+ from (%S+)$")
      if from then outcome.local_addr = from end
    end
    return outcome
  end
  outcome.s = s
  outcome.local_addr = s.local_addr
  outcome.banner = s.banner
  outcome.banner_seconds = task.now() - started
  if opts.before_ehlo then opts.before_ehlo(s) end
  local ehlo, eerr = s:ehlo(self.helo)
  if not ehlo then
    outcome.stage, outcome.err, outcome.reply = "ehlo", eerr, eerr.reply
    return outcome
  end
  outcome.caps = s.caps
  if s.caps.STARTTLS and opts.tls ~= false then
    local info, terr = s:starttls { timeout = o.timeout, sni = mx_host }
    if not info then
      outcome.stage, outcome.err, outcome.reply = "starttls", terr, terr.reply
      outcome.tls_failed = true
      return outcome
    end
    outcome.tls = info
  end
  if opts.stop_after == "ehlo" then
    outcome.stage = "done"
    return outcome
  end
  local mail, merr = s:mail(o.from)
  if not mail then
    outcome.stage, outcome.err, outcome.reply = "mail", merr, merr.reply
    return outcome
  end
  local rcpt, rerr = s:rcpt(self.rcpt)
  if not rcpt then
    outcome.stage, outcome.err, outcome.reply = "rcpt", rerr, rerr.reply
    return outcome
  end
  outcome.rcpt_reply = rcpt
  outcome.stage = "done"
  s:rset()
  return outcome
end

local function close(outcome)
  if outcome and outcome.s and not outcome.s.closed then outcome.s:quit() end
end

-- STARTTLS failed: try each version on its own to tell a version mismatch from the rest.
function Diagnosis:tls_versions(address, port, mx_host)
  local accepted, results = {}, {}
  for _, version in ipairs { "tls1", "tls1.1", "tls1.2", "tls1.3" } do
    local target = (string_find(address, ":", 1, true) and "[" .. address .. "]" or address) .. ":" .. port
    local s = smtp.connect(target, { timeout = self.options.timeout, source = self.options.source, helo = self.helo })
    local ok, why = false, "no session"
    if s and s:ehlo(self.helo) and s.caps.STARTTLS then
      local info, terr = s:starttls { min = version, max = version, sni = mx_host, ehlo = false }
      ok, why = info ~= nil, info and info.version or (terr.reason or "") .. ": " .. err_text(terr)
      if not s.closed then s:quit() end
    elseif s and not s.closed then
      s:quit()
    end
    results[#results + 1] = version .. (ok and " accepted" or (" refused (" .. why .. ")"))
    if ok then accepted[#accepted + 1] = version end
  end
  return accepted, results
end

-- A transient answer at MAIL/RCPT: retry with backoff in new sessions, as an MTA does.
function Diagnosis:retry_transient(first, address, port, mx_host)
  local o = self.options
  if (o.retries or 0) <= 0 then return nil end
  local attempts = {}
  local value, err, log = retry.run(function(attempt)
    if attempt == 1 then return nil, first.err end  -- the answer already seen
    local outcome = self:session(address, port, mx_host, { tls = first.tls ~= nil })
    attempts[#attempts + 1] = outcome
    close(outcome)
    if outcome.stage == "done" then return outcome end
    return nil, outcome.err
  end, { tries = (o.retries or 0) + 1, backoff = o.backoff or 60, jitter = 0.1 })
  return value, err, log, attempts
end

-- The source address: PTR, forward confirmation, match with the EHLO name, DNSBL.
function Diagnosis:source_checks(ip)
  local r = self.result
  r.source = { ip = ip, helo = self.helo }
  if not ip then return end
  local fc, ferr = dns.fcrdns(ip)
  local problem
  if not fc then
    self:check("source ptr", "warn", "PTR look-up for " .. ip .. " failed: " .. err_text(ferr))
  elseif #fc.names == 0 then
    problem = ip .. " has no PTR record"
  elseif not fc.ok then
    problem = fc.reason
  elseif not self.helo then
    -- The session ended before EHLO: there is no name to compare, only the PTR to confirm.
    self:check("source ptr", "ok", ip .. " -> " .. table_concat(fc.confirmed, ", ") ..
      " (forward-confirmed; no EHLO was sent)")
  else
    local matches = false
    for _, name in ipairs(fc.confirmed) do
      if string_lower(name) == string_lower(self.helo or "") then matches = true end
    end
    if not matches then
      problem = "the EHLO name " .. tostring(self.helo) .. " is not the PTR name of " .. ip .. " (" ..
        table_concat(fc.confirmed, ", ") .. ")"
    else
      self:check("source ptr", "ok", ip .. " -> " .. table_concat(fc.confirmed, ", ") ..
        " (forward-confirmed, matches EHLO)")
    end
  end
  if fc then r.source.ptr = fc.names end
  if problem then
    self.ptr_problem = problem
    self:check("source ptr", "fail", problem)
  end
  local zones = self.options.dnsbl or diagnose.default_dnsbl
  if #zones == 0 then
    self:check("dnsbl", "skip", "no DNSBL zones to check (--dnsbl none)")
    return
  end
  local listed, errors = {}, {}
  for _, entry in ipairs(dns.dnsbl(ip, zones)) do
    if entry.listed then
      listed[#listed + 1] = entry.zone .. " (" .. table_concat(entry.codes, ", ") ..
        (entry.reason and ("; " .. entry.reason) or "") .. ")"
    elseif entry.listed == nil then
      errors[#errors + 1] = entry.zone .. ": " .. tostring(entry.error)
    end
  end
  r.source.dnsbl = listed
  if #listed > 0 then
    self.dnsbl_problem = ip .. " is listed on " .. table_concat(listed, ", ")
    self:check("dnsbl", "fail", self.dnsbl_problem)
  elseif #errors > 0 then
    self:check("dnsbl", "warn", "not listed where checked; no answer from " .. table_concat(errors, "; "))
  else
    self:check("dnsbl", "ok", ip .. " is listed on none of " .. #zones .. " zones")
  end
end

-- The verdict for a session that stopped short, from what it saw.
function Diagnosis:judge(outcome, mx_host, address, port)
  local err, stage = outcome.err, outcome.stage
  local evidence = lines_of(outcome.s)
  if stage == "connect" or (stage == "banner" and not outcome.s) then
    -- No session: what arrived before the failure (a broken greeting) came with the error.
    local early = lines_of({ transcript = err.transcript or {} })
    early[#early + 1] = "! " .. err_text(err)
    if err.kind == "refused" then return "connect_refused", "connect", { err_text(err) } end
    if err.kind == "timeout" and stage == "connect" then return "connect_timeout", "connect", { err_text(err) } end
    if err.kind == "closed" then return "dropped_before_banner", "banner", early end
    if err.kind == "timeout" then return "slow_server", "banner", early end
    if err.kind == "protocol" then return "protocol_error", "banner", early end
    if err.kind == "reply" and err.reply then
      -- A 4xx greeting is overload or a connection limit, whatever its words; rate limiting
      -- needs the evidence of earlier sessions that succeeded (--sessions).
      local class = classify.reply(err.reply).class
      -- "Too many connections from your IP" is this client being throttled; without a word
      -- about the client, a 4xx greeting is load or a server-wide limit.
      if err.reply.transient and class == "rate_limit" then return "rate_limited", "banner", early end
      if err.reply.transient then return "server_busy", "banner", early end
      if class == "dnsbl" then return "dnsbl_listed", "banner", early end
      if class == "ptr" then return "ptr_mismatch", "banner", early end
      return "rejected", "banner", early
    end
    return "connect_timeout", "connect", { err_text(err) }
  end
  if err and err.kind == "closed" then return "dropped_mid_session", stage, evidence end
  if err and err.kind == "protocol" then return "protocol_error", stage, evidence end
  if err and err.kind == "timeout" and not outcome.tls_failed then
    return "slow_server", stage, evidence
  end
  if outcome.tls_failed then
    local accepted, results = self:tls_versions(address, port, mx_host)
    self.result.tls_versions = results
    if #accepted > 0 then
      self:check("tls versions", "fail", "STARTTLS works only with " .. table_concat(accepted, ", ") ..
        "; " .. table_concat(results, ", "))
      for _, line in ipairs(results) do evidence[#evidence + 1] = "! " .. line end
      return "tls_version_mismatch", "starttls", evidence
    end
    self:check("tls versions", "fail", "no TLS version works: " .. table_concat(results, ", "))
    return "tls_handshake_failed", "starttls", evidence
  end
  if err and err.kind == "reply" and err.reply then
    local class = classify.reply(err.reply)
    if err.reply.transient then
      if class.class == "rate_limit" then return "rate_limited", stage, evidence end
      if class.class == "overload" then return "server_busy", stage, evidence end
      if class.class == "dnsbl" then return "dnsbl_listed", stage, evidence end
      if class.class == "ptr" then return "ptr_mismatch", stage, evidence end
      -- "454 4.7.1 Relay access denied": this MX does not take mail for the domain; a retry
      -- gets the same answer.
      if class.class == "relay_denied" then return "rejected", stage, evidence end
      return "greylisted", stage, evidence  -- a 4xx that did not clear: the closest class
    end
    if class.class == "dnsbl" then return "dnsbl_listed", stage, evidence end
    if class.class == "ptr" then return "ptr_mismatch", stage, evidence end
    return "rejected", stage, evidence
  end
  return "dropped_mid_session", stage, evidence
end

-- Probes one MX address all the way; returns the outcome of the deciding session.
function Diagnosis:probe(mx_host, address, port)
  -- The EHLO name: --helo, else the confirmed PTR name of the address we connect from.
  local outcome = self:session(address, port, mx_host, { before_ehlo = function(s)
    if self.helo then return end
    local ip = self.options.source or ip_of(s.local_addr)
    local fc = ip and dns.fcrdns(ip)
    self.helo = fc and fc.ok and fc.confirmed[1] or smtpcore.hostname()
  end })
  if outcome.local_addr and not self.source_done then
    self.source_done = true
    self.source_ip = self.options.source or ip_of(outcome.local_addr)
  end
  return outcome
end

function diagnose.run(target, options)
  options = options or {}
  local parsed, perr = diagnose.parse_target(target, options)
  if not parsed then return nil, perr end
  local self = setmetatable({ options = options, checks = report.checklist(),
                              result = { target = target, evidence = {}, checks = nil } }, Diagnosis)
  local r = self.result
  options.timeout = options.timeout or 30
  local port = parsed.port or options.port or 25
  self.rcpt = options.rcpt or parsed.rcpt or ("postmaster@" .. (parsed.domain or parsed.host))
  self.helo = options.helo
  options.from = options.from or ("postmaster@" .. (options.helo or smtpcore.hostname()))

  -- 1. The MX set -------------------------------------------------------------------------
  local hosts = {}
  if parsed.kind == "host" then
    hosts[1] = { host = parsed.host, preference = 0 }
    self:check("mx", "skip", "probing " .. parsed.host .. ":" .. port .. " directly")
  else
    local mx, merr = dns.mx(parsed.domain)
    if not mx then
      if merr.rcode == "NXDOMAIN" then
        self:check("mx", "fail", parsed.domain .. " does not exist (NXDOMAIN)")
        self:decide("no_mx", "dns", { "dns " .. parsed.domain .. " MX: NXDOMAIN" })
      else
        self:check("mx", "fail", "MX look-up failed: " .. err_text(merr))
        self:decide("dns_failure", "dns", { "dns " .. parsed.domain .. " MX: " .. tostring(merr.rcode) .. ": " .. err_text(merr) })
      end
    elseif mx.null then
      self.null_mx = true
      self:check("mx", "fail", "null MX (MX 0 .): " .. parsed.domain .. " accepts no mail (RFC 7505)")
      self:decide("no_mx", "dns", { "dns " .. parsed.domain .. " MX 0 ." })
    elseif #mx == 0 then
      self:check("mx", "fail", "no MX record and no address to fall back to (RFC 5321 section 5.1)")
      self:decide("no_mx", "dns", { "dns " .. parsed.domain .. " MX: no records; A/AAAA: none" })
    else
      local listed = {}
      for _, entry in ipairs(mx) do listed[#listed + 1] = entry.preference .. " " .. entry.host end
      self:check("mx", mx.implicit and "warn" or "ok", mx.implicit and
        ("no MX record: the domain's own address stands in (implicit MX)") or table_concat(listed, ", "))
      hosts = mx
    end
  end
  r.mx = {}

  -- 2. Addresses of every MX host -----------------------------------------------------------
  local dns_failures, resolvable = {}, 0
  if not r.verdict then
    for _, entry in ipairs(hosts) do
      if parsed.kind == "host" then
        if smtpcore.is_address(entry.host) then
          entry.addresses = { entry.host }
        else
          local found, aerr = dns.addresses(entry.host)
          entry.addresses, entry.error = found or {}, aerr
        end
      end
      if entry.error and entry.error.rcode ~= "NXDOMAIN" then dns_failures[#dns_failures + 1] = entry end
      if #(entry.addresses or {}) > 0 then
        resolvable = resolvable + 1
        self:check("addresses " .. entry.host, "ok", table_concat(entry.addresses, ", "))
      else
        self:check("addresses " .. entry.host, "fail", entry.error and err_text(entry.error) or "no A or AAAA record")
      end
      r.mx[#r.mx + 1] = { host = entry.host, preference = entry.preference, addresses = entry.addresses or {} }
    end
    if resolvable == 0 then
      if #dns_failures > 0 then
        self:decide("dns_failure", "dns", { "dns " .. dns_failures[1].host .. ": " .. err_text(dns_failures[1].error) })
      else
        self:decide("no_mx", "dns", { "dns: no MX host has an address" })
      end
    end
  end

  -- 3. Connect to each MX in order (each address of a host until one answers TCP). The first
  -- MX that accepts the probe decides; when none does, the most preferred one that answered.
  local deciding, connect_failures, first_failure, answered = nil, {}, nil, {}
  if not r.verdict then
    for _, entry in ipairs(hosts) do
      for _, address in ipairs(entry.addresses or {}) do
        local outcome = self:probe(entry.host, address, port)
        if outcome.s or outcome.stage ~= "connect" then
          outcome.host = entry.host
          answered[#answered + 1] = outcome
          break
        end
        -- This machine could not try (the --source address, out of descriptors): no fact
        -- about the destination, so no verdict; the tool could not run.
        local kind = outcome.err and outcome.err.kind
        if kind == "source" or kind == "resource" then return nil, err_text(outcome.err) end
        connect_failures[#connect_failures + 1] = outcome
        first_failure = first_failure or outcome
        self:check("connect " .. address .. ":" .. port, "fail", err_text(outcome.err))
      end
      local last = answered[#answered]
      if last and last.stage == "done" then
        deciding = last
        break
      end
    end
    if not deciding and #answered > 0 then deciding = answered[1] end
    for _, outcome in ipairs(answered) do
      if outcome ~= deciding then
        self:check("mx " .. outcome.host, "warn", "stopped at " .. tostring(outcome.stage) .. ": " ..
          (outcome.reply and one_line(outcome.reply) or err_text(outcome.err)) ..
          (deciding and deciding.stage == "done" and "; a fallback MX accepted" or ""))
        if outcome ~= deciding then close(outcome) end
      end
    end
  end

  if not r.verdict and not deciding then
    local kinds = {}
    for _, f in ipairs(connect_failures) do kinds[f.err.kind] = (kinds[f.err.kind] or 0) + 1 end
    local evidence = {}
    for _, f in ipairs(connect_failures) do evidence[#evidence + 1] = "! " .. err_text(f.err) end
    if kinds.refused == #connect_failures then
      self:decide("connect_refused", "connect", evidence)
    elseif (kinds.timeout or 0) == #connect_failures then
      self:decide("connect_timeout", "connect", evidence)
    else
      local verdict = first_failure and first_failure.err.kind == "refused" and "connect_refused" or "connect_timeout"
      self:decide(verdict, "connect", evidence)
    end
  end

  -- 4. The deciding session: banner, EHLO, STARTTLS, MAIL, RCPT -----------------------------
  if deciding then
    local address = deciding.address
    r.probed = { host = deciding.host, address = address, port = port }
    if deciding.banner_seconds then
      local slow = deciding.banner_seconds > options.timeout / 2
      self:check("banner", slow and "warn" or "ok", string_format("%s after %.0f ms",
        one_line(deciding.banner), deciding.banner_seconds * 1000))
    end
    if deciding.caps and deciding.stage ~= "ehlo" then
      self:check("ehlo", "ok", (deciding.caps.STARTTLS or deciding.tls or deciding.tls_failed) and "ESMTP, STARTTLS offered" or "ESMTP")
      if not (deciding.caps.STARTTLS or deciding.tls or deciding.tls_failed) then
        self:check("starttls", "warn", "STARTTLS not offered: mail to this MX goes unencrypted")
      end
    end
    if deciding.tls then
      self:check("starttls", "ok", deciding.tls.version .. " " .. deciding.tls.cipher ..
        ", certificate verify: " .. deciding.tls.verify_result)
    elseif deciding.tls_failed then
      self:check("starttls", "fail", err_text(deciding.err))
    end

    if deciding.stage == "done" then
      self:check("rcpt", "ok", "RCPT TO:<" .. self.rcpt .. ">: " .. one_line(deciding.rcpt_reply))
    else
      local verdict, stage, evidence = self:judge(deciding, deciding.host, address, port)
      -- A transient refusal at MAIL/RCPT: retry after a delay, in new sessions.
      if (verdict == "greylisted" or verdict == "rate_limited" or verdict == "server_busy")
         and (deciding.stage == "rcpt" or deciding.stage == "mail") then
        close(deciding)
        local later, lerr, log, attempts = self:retry_transient(deciding, address, port, deciding.host)
        if later then
          self:check(deciding.stage, "warn", "4xx first (" .. one_line(deciding.reply) .. "), accepted on retry " ..
            #log .. string_format(" after %.1f s", log[#log].at))
          evidence[#evidence + 1] = string_format("! retry %d after %.1f s: S %s", #log, log[#log].at,
            one_line(later.rcpt_reply))
          -- Deferred, then accepted later: greylisting, unless the words said rate limit.
          if verdict ~= "rate_limited" then verdict = "greylisted" end
        elseif log then
          local retried = plural(#log - 1, "retry", "retries")
          local again = lerr and lerr.reply and one_line(lerr.reply) or err_text(lerr)
          self:check(deciding.stage, "fail", one_line(deciding.reply) .. "; still refused after " .. retried ..
            ": " .. again)
          evidence[#evidence + 1] = "! after " .. retried .. ": " .. again
          self.not_cleared = true
        else
          self:check(deciding.stage, "warn", one_line(deciding.reply) .. " (no retry: --retries 0)")
          self.not_cleared = true
        end
      elseif deciding.stage ~= "starttls" then
        self:check(deciding.stage, "fail", err_text(deciding.err))
      end
      if verdict == "tls_version_mismatch" or verdict == "tls_handshake_failed" then
        -- An opportunistic sender falls back to plain text: see whether that gets through.
        close(deciding)
        local plain = self:session(address, port, deciding.host, { tls = false })
        close(plain)
        local requires_tls = plain.err and plain.err.reply and
          classify.reply(plain.err.reply).class == "tls_required"
        if plain.stage == "done" then
          self:check("plain text", "ok", "without TLS the recipient is accepted (opportunistic senders get through)")
        elseif requires_tls then
          self:check("plain text", "fail", "plain-text senders are refused: the server requires STARTTLS (" ..
            one_line(plain.err.reply) .. "), so with this TLS failure nobody delivers")
        else
          self:check("plain text", "warn", "without TLS: stopped at " .. tostring(plain.stage) .. ": " .. err_text(plain.err))
        end
      end
      self:decide(verdict, stage, evidence)
    end

    -- 5. Back-to-back sessions: throttling shows after a few ----------------------------------
    -- Two by default: a server that allows one session per client IP shows it without a flag.
    local sessions = options.sessions or 2
    if sessions > 1 and deciding.stage == "done" then
      close(deciding)
      for n = 2, sessions do
        local again = self:session(address, port, deciding.host, { tls = deciding.tls ~= nil })
        close(again)
        if again.stage ~= "done" then
          local what = again.reply and ("S " .. one_line(again.reply)) or ("! " .. err_text(again.err))
          local before = n == 2 and "session 1 succeeded" or string_format("sessions 1-%d succeeded", n - 1)
          self:check("sessions", "fail", string_format("%s, session %d stopped at %s: %s",
            before, n, again.stage, what))
          self:decide("rate_limited", again.stage, { string_format("! session %d of %d", n, sessions), what })
          break
        end
        if n == sessions then
          self:check("sessions", "ok", sessions .. " back-to-back sessions all accepted")
        end
      end
    end
    close(deciding)
  end

  -- 6. The source address: PTR, EHLO match, DNSBL --------------------------------------------
  if self.source_ip or options.source then
    self:source_checks(self.source_ip or options.source)
  end
  -- A listing or a reverse-DNS problem explains a refusal (or a drop) better than the reply
  -- does, and is a problem even where this MX accepted.
  local explained = { ok = true, rejected = true, dropped_before_banner = true,
                      dropped_mid_session = true, server_busy = true }
  local current = r.verdict or "ok"
  if explained[current] and (self.dnsbl_problem or self.ptr_problem) then
    r.verdict = nil
    if self.dnsbl_problem then
      self:decide("dnsbl_listed", r.stage, { "dnsbl " .. self.dnsbl_problem })
    else
      self:decide("ptr_mismatch", r.stage, { "ptr " .. self.ptr_problem })
    end
  end
  -- A reply that speaks of a blocklist is a DNSBL listing only where a DNSBL check found one:
  -- "locally blacklisted" is the receiver's own list.
  local local_list = r.verdict == "dnsbl_listed" and not self.dnsbl_problem
  if local_list then r.verdict = "rejected" end
  r.verdict = r.verdict or "ok"
  if r.verdict == "ok" and deciding then
    r.evidence = { "S " .. one_line(deciding.rcpt_reply or deciding.banner or "") }
  end
  -- The probe recipient of a domain target is postmaster@, which greylisting daemons and many
  -- policies exempt: a clean pass for it says less about other addresses.
  if r.verdict == "ok" and parsed.kind == "domain" and not options.rcpt then
    self:check("recipient", "warn", "probed " .. self.rcpt .. ", which greylisting and many policies exempt; " ..
      "give a real address (diagnose user@" .. parsed.domain .. ") to see what other senders see")
  end
  local info = diagnose.verdicts[r.verdict]
  r.transient = info[1]
  r.advice = diagnose.advice(r.verdict, r.stage, { null_mx = self.null_mx, local_list = local_list,
                                                   not_cleared = self.not_cleared })
  r.checks = self.checks:list()
  r.summary = report.summary(self.checks)
  r.checklist = self.checks
  return r
end

return diagnose
