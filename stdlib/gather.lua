-- gather: the first half of a diagnosis. It runs the probe and returns what it saw as a plain
-- facts table, with no verdict in it: the DNS answers used, every session (connect attempts
-- included) with its steps, replies and timing, the retries, the per-version TLS results, and
-- the source address's PTR and DNSBL results. What extra probing is needed (each TLS version
-- alone, a plain-text session, retries, back-to-back sessions) is decided here, from what was
-- seen. The second half, stdlib/judge.lua, turns facts into a verdict without any I/O, so a
-- verdict can be judged again offline from the facts that `diagnose --json` prints.
--
--   local facts, problem = gather.run(parsed_target, options)
--
-- The facts (every list a JSON array, every reply {code, enhanced, text, line}):
--   version, target, kind ("domain"|"address"|"host"), domain, host, port, rcpt, rcpt_given,
--   from, helo, helo_from ("option"|"ptr"|"hostname"), settings {timeout, retries, backoff,
--   sessions, dnsbl},
--   dns = {mx = {name, rcode, error, null, implicit, records = {{preference, host}}}},
--   hosts = {{host, preference, addresses, error}},
--   sessions = {{purpose ("probe"|"retry"|"again"|"plain"), host, address, port, at, stage
--     ("done" or where it stopped), error, reply, banner, ehlo, caps, starttls_offered, tls,
--     tls_failed, rcpt_reply, local_addr, steps = {{stage, seconds, reply, error}},
--     transcript = {"S 220 ...", ...}}},
--   deciding = index into sessions,
--   retries = {stage, planned, cleared, tries = {{attempt, at, session}}},
--   tls_versions = {entries = {{version, label, accepted, negotiated, cipher, reason, error}},
--     accepted, never_reached},
--   plain = index of the plain-text session, again = {planned, sessions, stopped},
--   source = {local_ip, private, ip, ip_from ("local"|"option"|"greeting"|"dns"), echo_service, helo,
--     ptr = {names, confirmed, ok, reason} | {error}, dnsbl = {zones, listed = {{zone, codes,
--     reason}}, errors = {{zone, error}}}}
--
-- Progress: options.on_event, when given, is called as each step ends and while a retry waits,
-- so a caller can show the diagnosis live and draw where the time went. No output here: the
-- caller decides what to show. Times are seconds since the diagnosis began.
--   {kind = "step", name = "dns"|"ptr"|"connect"|"banner"|"ehlo"|"starttls"|"mail"|"rcpt"|
--     "tls versions"|"dnsbl", started, finished, ok = bool, detail = "one line",
--     and for a session's steps: session (its index in facts.sessions), purpose, round
--     (the retry's or back-to-back session's number), host, address}
--   {kind = "wait", reason = "rcpt: 450 4.7.1 ...", seconds (the whole wait), remaining,
--     started, attempt (the retry it waits for), of (retries planned)}: when the wait begins,
--     about once a second during it, and with remaining = 0 when it ends. Without on_event a
--     wait is one plain sleep.

local dns = require "smtpsh.dns"
local smtp = require "smtpsh.smtp"
local retry = require "smtpsh.retry"
local classify = require "smtpsh.classify"
local json = require "smtpsh.json"
local probe = require "smtpsh.probe"
local task = require "smtpsh.task"
local tlsscan = require "smtpsh.tlsscan"

local type, ipairs, setmetatable, tostring, tonumber = type, ipairs, setmetatable, tostring, tonumber
local string_match, string_lower, string_find = string.match, string.lower, string.find
local table_concat, math_ceil = table.concat, math.ceil

local gather = {}

-- Private and shared address space (RFC 1918, RFC 6598, RFC 4193, link-local): behind NAT,
-- the address a receiver sees is another one, and only that one's reputation matters.
function gather.is_private(ip)
  if type(ip) ~= "string" then return false end
  local a, b = string_match(ip, "^(%d+)%.(%d+)%.%d+%.%d+$")
  if a then
    a, b = tonumber(a), tonumber(b)
    return a == 10 or (a == 172 and b >= 16 and b <= 31) or (a == 192 and b == 168)
      or (a == 100 and b >= 64 and b <= 127) or (a == 169 and b == 254)
  end
  local lower = string_lower(ip)
  return string_find(lower, "^f[cd]%x%x:") ~= nil or string_find(lower, "^fe[89ab]%x:") ~= nil
end

-- The client address a server echoes in its greeting or EHLO reply, as Exim, Sendmail and
-- Exchange do ("250-mx.example Hello [203.0.113.5]").
function gather.echoed_address(record)
  for _, reply in ipairs { record.ehlo, record.banner } do
    local text = reply and reply.text
    if text then
      local ip = string_match(text, "%[(%d+%.%d+%.%d+%.%d+)%]") or string_match(text, "%[[Ii][Pp][Vv]6:([%x:%.]+)%]")
      if ip and smtp.is_address(ip) and not gather.is_private(ip) then return ip end
    end
  end
end

-- DNS echo services: names whose answer is the address the query came from, asked of the
-- service's own servers (a recursive resolver would ask from its own address).
gather.echo_services = {
  { name = "myip.opendns.com", type = "A", servers = { "208.67.222.222", "208.67.220.220" } },
  { name = "o-o.myaddr.l.google.com", type = "TXT", servers = { "216.239.32.10", "216.239.34.10" } },
}

-- The public address from the DNS echo services (`servers`, when given, replaces theirs), and
-- which service said it; nil when none answered with a public address.
function gather.dns_echo(servers)
  for _, service in ipairs(gather.echo_services) do
    local records = dns.query(service.name, service.type, { servers = servers or service.servers })
    for _, record in ipairs(records or {}) do
      local ip = record.address or (record.text and string_match(record.text, "^[%x:%.]+$") and record.text)
      if ip and smtp.is_address(ip) and not gather.is_private(ip) then return ip, service.name end
    end
  end
end

local Gatherer = {}
-- Its objects' metatable is a table of its own: with Gatherer.__index = Gatherer, obj.__index
-- would hand out the class itself, writable (a __gc set on it would reach every object).
local gatherer_meta = { __index = Gatherer }

-- Progress for options.on_event (see the header); `started` and `finished` are task.now() times.
function Gatherer:tell_step(name, started, finished, ok, detail, fields)
  local on_event = self.options.on_event
  if not on_event then return end
  local event = fields or {}
  event.kind, event.name, event.ok, event.detail = "step", name, ok, detail
  event.started, event.finished = started - self.started, finished - self.started
  on_event(event)
end

-- Runs fn() as one step of the progress ("dns", "dnsbl", ...): describe(results...) -> ok, detail.
function Gatherer:timed(name, describe, fn, ...)
  if not self.options.on_event then return fn(...) end
  local started = task.now()
  local a, b, c = fn(...)
  self:tell_step(name, started, task.now(), describe(a, b, c))
  return a, b, c
end

local function ptr_progress(ip, fc, err)
  if not fc then return false, ip .. ": " .. probe.error(err).message end
  if not fc.ok then return false, ip .. ": " .. (fc.reason or "not forward-confirmed") end
  return true, ip .. " -> " .. table_concat(fc.confirmed or {}, ", ") .. " (forward-confirmed)"
end

function Gatherer:fcrdns(ip)
  local cached = self.fcrdns_cache[ip]
  if not cached then
    local fc, err = self:timed("ptr", function(...) return ptr_progress(ip, ...) end, dns.fcrdns, ip)
    cached = { fc = fc, err = err }
    self.fcrdns_cache[ip] = cached
  end
  return cached.fc, cached.err
end

-- The EHLO name: --helo, else the forward-confirmed PTR name of the address we connect from,
-- else this machine's host name. Chosen once, after the first greeting.
function Gatherer:choose_helo(s)
  if self.helo then return self.helo end
  local ip = self.options.source or probe.ip_of(s.local_addr)
  local fc = ip and self:fcrdns(ip)
  if fc and fc.ok then
    self.helo, self.facts.helo_from = fc.confirmed[1], "ptr"
  else
    self.helo, self.facts.helo_from = smtp.hostname(), "hostname"
  end
  self.facts.helo = self.helo
  return self.helo
end

-- The name to send in SNI: the MX host name; none for an address (RFC 6066 section 3).
local function sni_of(host)
  if smtp.is_address(host) then return false end
  return host
end

-- A session's step as progress: the probe's on_step hook, with which session it is.
function Gatherer:step_hook(purpose, round, host, address)
  if not self.options.on_event then return nil end
  local index = #self.facts.sessions + 1  -- where session() will keep this one
  return function(entry, started, finished, err)
    local reply = entry.reply
    local ok = entry.error == nil and (reply == nil or reply.code < 400)
    local detail = reply and reply.line or (err and probe.error(err).message)
      or (entry.stage == "connect" and probe.endpoint(address, self.facts.port)) or "done"
    self:tell_step(entry.stage, started, finished, ok, detail, {
      session = index, purpose = purpose, round = round, host = host, address = address })
  end
end

-- DANE (RFC 7672) of the MX that decided, when it spoke TLS: its TLSA records, validated by
-- smtpsh's own DNSSEC validator, and whether the certificate matches them (one more
-- STARTTLS handshake, with the records, outside the probe sessions). facts.dane = {host,
-- records, dnssec, reason, ad, matched, record, error}.
function Gatherer:dane(deciding)
  local o, facts = self.options, self.facts
  local host = deciding.host
  if not host or smtp.is_address(host) then return end
  local tlsa, err = dns.tlsa(host, facts.port, { validate = true })
  local dane = { host = host, records = tlsa and #tlsa or 0 }
  local found = tlsa or err
  dane.dnssec, dane.reason, dane.ad = found.dnssec, found.dnssec_reason, found.ad or false
  facts.dane = dane
  if not tlsa then
    if err.rcode ~= "NXDOMAIN" then dane.error = probe.error(err).message end
    return
  end
  if #tlsa == 0 then return end
  dane.usable = 0
  for _, tlsa_record in ipairs(tlsa) do
    if tlsa_record.usage == 2 or tlsa_record.usage == 3 then dane.usable = dane.usable + 1 end
  end
  if dane.usable == 0 then return end  -- nothing a handshake could match (RFC 7672 section 3.1.3)
  local s, record = probe.open(deciding.address, facts.port, {
    timeout = o.timeout, source = o.source, sni = host, starttls = true, helo = self.helo,
    tls = { verify = "dane", tlsa = tlsa, dnssec = tlsa.dnssec == "secure" },
  })
  local info = record.live and record.live.tls_info
  dane.matched = (info and info.dane and info.dane.matched) or false
  dane.record = info and info.dane and info.dane.record or nil
  if not info and record.error then dane.error = probe.error(record.error).message end
  probe.finish(s, record)
end

-- The domain's MTA-STS record (RFC 8461 section 3.1; the HTTPS policy is not fetched), its
-- answer validated by smtpsh's DNSSEC validator: facts.mta_sts = {record, id, dnssec,
-- reason} or {none = true, dnssec, reason} or {error}.
function Gatherer:mta_sts(domain)
  local policy, err = dns.mta_sts(domain, { validate = true })
  if policy then
    self.facts.mta_sts = { record = policy.record, id = policy.tags.id, dnssec = policy.dnssec,
                           reason = policy.dnssec_reason }
  elseif err.rcode == "none" then
    self.facts.mta_sts = { none = true, dnssec = err.dnssec, reason = err.dnssec_reason }
  else
    self.facts.mta_sts = { error = probe.error(err).message, dnssec = err.dnssec, reason = err.dnssec_reason }
  end
end

-- One SMTP session as a sender makes it, up to RCPT (then RSET and QUIT). Kept in the facts.
-- `round`: which retry or back-to-back session it is, for progress.
function Gatherer:session(purpose, host, address, tls, round)
  local o, facts = self.options, self.facts
  local s, record = probe.open(address, facts.port, {
    timeout = o.timeout, source = o.source, trace = o.trace, sni = sni_of(host), starttls = tls ~= false,
    helo = self.helo or function(session) return self:choose_helo(session) end,
    on_step = self:step_hook(purpose, round, host, address),
  })
  record.purpose, record.host = purpose, host
  record.at = task.now() - self.started
  if s and record.stage == "open" then
    if probe.step(s, record, "mail", function(session) return session:mail(facts.from) end) then
      local rcpt = probe.step(s, record, "rcpt", function(session) return session:rcpt(facts.rcpt) end)
      if rcpt then
        record.stage, record.rcpt_reply = "done", probe.reply(rcpt)
        s:rset()
      end
    end
  end
  probe.finish(s, record)
  facts.sessions[#facts.sessions + 1] = record
  return record, #facts.sessions
end

-- A 4xx at MAIL or RCPT that another try may clear. Words that name this MX not taking the
-- domain (relay denied) or the client's reputation (DNSBL, PTR) get the same answer again.
local not_worth_retrying = { relay_denied = true, dnsbl = true, ptr = true }

local function worth_retrying(record)
  local reply = record.reply
  if not reply or reply.code < 400 or reply.code >= 500 then return false end
  if record.stage ~= "mail" and record.stage ~= "rcpt" then return false end
  return not not_worth_retrying[classify.reply(reply).class]
end

-- What a wait is for: "rcpt: 450 4.7.1 ..." (the answer that asked for it).
local function wait_reason(err)
  local what = err and (err.reply and err.reply.line or err.message) or "no answer"
  return (err and err.stage or "retry") .. ": " .. what
end

-- Sleeps `seconds` before retry number `attempt`, in steps that end on whole seconds left, each
-- told to options.on_event as a "wait" event, so a display can count down. (Without a hook,
-- retry.run sleeps as it always did.)
function Gatherer:wait(seconds, err, attempt, of)
  local on_event = self.options.on_event
  local began = task.now()
  local ends = began + seconds
  local function tell(remaining)
    on_event { kind = "wait", reason = wait_reason(err), seconds = seconds, remaining = remaining,
               started = began - self.started, attempt = attempt, of = of }
  end
  local left = seconds
  while left > 0 do
    tell(left)
    -- To the next whole second left (3.4 -> 3.0), so a countdown ticks on whole numbers.
    task.sleep(left - (math_ceil(left) - 1))
    left = ends - task.now()
  end
  tell(0)
end

-- A transient answer at MAIL/RCPT: retry with backoff in new sessions, as an MTA does.
function Gatherer:retry(first)
  local o, facts = self.options, self.facts
  local planned = o.retries or 0
  local tries = json.array()
  facts.retries = { stage = first.stage, planned = planned, cleared = false, tries = tries }
  if planned <= 0 then return end
  -- With a progress hook each wait counts down (Gatherer:wait); retry.run's on_retry says,
  -- just before the sleep, which answer the wait is for. Without one, nothing changes.
  local failed_with
  local on_retry = o.on_event and function(attempt, err) failed_with = { err = err, attempt = attempt } end
  local sleep = o.on_event and function(seconds)
    self:wait(seconds, failed_with.err, failed_with.attempt, planned)
  end
  local _, _, log = retry.run(function(attempt)
    if attempt == 1 then return nil, first.error end  -- the answer already seen
    local record, index = self:session("retry", first.host, first.address, first.tls ~= nil, attempt - 1)
    tries[#tries + 1] = { attempt = attempt - 1, session = index }
    if record.stage == "done" then return record end
    return nil, record.error
  end, { tries = planned + 1, backoff = o.backoff or 60, jitter = 0.1, on_retry = on_retry, sleep = sleep })
  for i, try in ipairs(tries) do
    try.at = log[i + 1] and log[i + 1].at
    if facts.sessions[try.session].stage == "done" then facts.retries.cleared = true end
  end
end

-- Back-to-back sessions after one that passed: a per-IP limit or a rate limit shows after a
-- few. Two by default, so a server that allows one session per client IP shows it.
function Gatherer:again(first)
  local facts = self.facts
  local planned = self.options.sessions or 2
  facts.again = { planned = planned, sessions = json.array() }
  for n = 2, planned do
    local record, index = self:session("again", first.host, first.address, first.tls ~= nil, n)
    facts.again.sessions[#facts.again.sessions + 1] = index
    if record.stage ~= "done" then
      facts.again.stopped = n
      return
    end
  end
end

local function scan_progress(scan)
  local accepted = scan.accepted or {}
  return #accepted > 0, #accepted > 0 and "accepted: " .. table_concat(accepted, ", ") or "no version accepted"
end

-- STARTTLS failed: each TLS version on its own tells a version mismatch from the rest, and a
-- plain-text session shows what an opportunistic sender gets.
function Gatherer:tls_followups(first)
  local o = self.options
  local scan = self:timed("tls versions", scan_progress, tlsscan.versions,
    probe.endpoint(first.address, self.facts.port),
    { timeout = o.timeout, helo = self.helo, sni = sni_of(first.host), source = o.source })
  local entries = json.array()
  for i, entry in ipairs(scan.entries or {}) do
    entries[i] = { version = entry.version, label = entry.label, accepted = entry.accepted,
                   negotiated = entry.negotiated, cipher = entry.cipher, reason = entry.reason,
                   error = entry.error }
  end
  local accepted = json.array()
  for i, version in ipairs(scan.accepted or {}) do accepted[i] = version end
  self.facts.tls_versions = { entries = entries, accepted = accepted, never_reached = scan.never_reached }
  local _, index = self:session("plain", first.host, first.address, false)
  self.facts.plain = index
end

local function dnsbl_progress(entries)
  local listed = {}
  for _, entry in ipairs(entries) do
    if entry.listed then listed[#listed + 1] = entry.zone end
  end
  if #listed > 0 then return false, "listed on " .. table_concat(listed, ", ") end
  return true, "listed on none of " .. #entries
end

-- The source address: which one receivers see (behind NAT, not ours), its PTR and forward
-- confirmation, and its DNSBL listings.
function Gatherer:source(local_addr)
  local o, facts = self.options, self.facts
  local local_ip = o.source or probe.ip_of(local_addr)
  local source = { local_ip = local_ip, helo = self.helo }
  facts.source = source
  if not local_ip and not o.public_ip then return end
  source.private = gather.is_private(local_ip) or nil
  -- --public-ip ADDR, or "dns" (ask the DNS echo services; "dns@SERVER" asks that server).
  local public = o.public_ip
  local ask_dns = public and string_match(public, "^dns") ~= nil
  if public and not ask_dns then
    source.ip, source.ip_from = public, "option"
  elseif source.private or ask_dns then
    -- Behind NAT, learnt the way mail engineers do: the address a server echoes in its
    -- greeting or EHLO reply, else a DNS echo service.
    for _, record in ipairs(facts.sessions) do
      local echoed = not ask_dns and gather.echoed_address(record)
      if echoed then
        source.ip, source.ip_from = echoed, "greeting"
        break
      end
    end
    if not source.ip then
      local server = ask_dns and string_match(public, "^dns@(.+)$")
      local ip, service = gather.dns_echo(server and { server } or nil)
      source.ip, source.ip_from, source.echo_service = ip, ip and "dns" or nil, service
    end
    -- Unknown: the checks of a private address would say nothing about its reputation.
    if not source.ip then return end
  else
    source.ip, source.ip_from = local_ip, "local"
  end
  local ip = source.ip
  local fc, ferr = self:fcrdns(ip)
  if fc then
    source.ptr = { names = json.array(fc.names), confirmed = json.array(fc.confirmed), ok = fc.ok,
                   reason = fc.reason }
  else
    source.ptr = { error = probe.error(ferr) }
  end
  local zones = o.dnsbl or gather.default_dnsbl
  local dnsbl = { zones = json.array(zones), listed = json.array(), errors = json.array() }
  source.dnsbl = dnsbl
  if #zones == 0 then return end
  for _, entry in ipairs(self:timed("dnsbl", dnsbl_progress, dns.dnsbl, ip, zones)) do
    if entry.listed then
      dnsbl.listed[#dnsbl.listed + 1] = { zone = entry.zone, codes = json.array(entry.codes), reason = entry.reason }
    elseif entry.listed == nil then
      dnsbl.errors[#dnsbl.errors + 1] = { zone = entry.zone, error = tostring(entry.error) }
    end
  end
end

local function hosts_progress(host)
  if #host.addresses == 0 then return false, host.error and host.error.message or "no A or AAAA record" end
  return true, host.host .. ": " .. table_concat(host.addresses, ", ")
end

local function mx_progress(said, hosts)
  if said.error then return false, "MX " .. said.name .. ": " .. said.error.message end
  local listed = {}
  for _, host in ipairs(hosts) do
    local addresses = #host.addresses > 0 and table_concat(host.addresses, ", ") or "no address"
    listed[#listed + 1] = host.preference .. " " .. host.host .. " (" .. addresses .. ")"
  end
  if #listed == 0 then return false, "MX " .. said.name .. ": nothing to connect to" end
  return true, "MX " .. said.name .. ": " .. table_concat(listed, ", ")
end

-- The well-known public blocklists checked by default.
gather.default_dnsbl = { "zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org" }

-- Runs the probe of `parsed` (diagnose.parse_target's table). Returns the facts, or nil and a
-- message when this machine could not probe at all (an unusable --source, no descriptors).
function gather.run(parsed, options)
  local o = options or {}
  o.timeout = o.timeout or 30
  local port = parsed.port or o.port or 25
  local facts = {
    version = 1, target = o.target, kind = parsed.kind, domain = parsed.domain, host = parsed.host,
    port = port, rcpt = o.rcpt or parsed.rcpt or ("postmaster@" .. (parsed.domain or parsed.host)),
    rcpt_given = o.rcpt ~= nil or parsed.rcpt ~= nil,
    from = o.from or ("postmaster@" .. (o.helo or smtp.hostname())),
    helo = o.helo, helo_from = o.helo and "option" or nil,
    settings = { timeout = o.timeout, retries = o.retries or 0, backoff = o.backoff or 60,
                 sessions = o.sessions or 2, dnsbl = json.array(o.dnsbl or gather.default_dnsbl) },
    hosts = json.array(), sessions = json.array(),
  }
  local self = setmetatable({ options = o, facts = facts, helo = o.helo, fcrdns_cache = {},
                              started = task.now() }, gatherer_meta)

  -- 1. The MX set, and every MX host's addresses ---------------------------------------------
  local hosts
  if parsed.kind == "host" then
    local direct = smtp.is_address(parsed.host) and probe.direct_host or function(host)
      return self:timed("dns", hosts_progress, probe.direct_host, host)
    end
    hosts = { direct(parsed.host) }
  else
    facts.dns = {}
    facts.dns.mx, hosts = self:timed("dns", mx_progress, probe.mx_hosts, parsed.domain)
  end
  for i, host in ipairs(hosts) do facts.hosts[i] = host end
  if parsed.kind ~= "host" and parsed.domain then self:mta_sts(parsed.domain) end

  -- 2. Each MX in order, each address of a host until one answers TCP. The first MX that
  -- accepts the probe recipient decides; when none does, the most preferred one that answered.
  local answered, failed, abort = probe.each_mx(hosts, function(entry, address)
    return (self:session("probe", entry.host, address))
  end, function(record) return record.stage == "done" end)
  if abort then return nil, abort.error.message end
  local deciding
  for _, record in ipairs(answered) do
    if record.stage == "done" then deciding = record end
  end
  deciding = deciding or answered[1]
  for index, record in ipairs(facts.sessions) do
    if record == deciding then facts.deciding = index end
  end

  -- 3. More probing, as what was seen asks for -------------------------------------------------
  if deciding then
    if deciding.tls_failed then
      self:tls_followups(deciding)
    elseif worth_retrying(deciding) then
      self:retry(deciding)
    elseif deciding.stage == "done" then
      self:again(deciding)
    end
  end

  if deciding and deciding.tls then self:dane(deciding) end

  -- 4. The source address (also after a drop at the greeting: the shape of a reputation block)
  local local_addr = deciding and deciding.local_addr
  for _, record in ipairs(facts.sessions) do local_addr = local_addr or record.local_addr end
  if failed[1] or deciding or o.source or o.public_ip then self:source(local_addr) end
  facts.helo = self.helo
  facts.elapsed = task.now() - self.started
  return facts
end

return gather
