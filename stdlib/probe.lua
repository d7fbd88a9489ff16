-- probe: the pieces every probing command shares, written once: the session opener (connect,
-- greeting, EHLO, STARTTLS, each step timed), the MX set of a domain as plain data, and the
-- walk over that set in preference order with fallback. What a probe saw is kept as plain
-- tables (replies and errors copied out of the engine's objects), so it can be judged,
-- stored as JSON and judged again offline.
--
--   local probe = require "smtpsh.probe"
--   local s, record = probe.open("192.0.2.1", 25, {timeout = 10, helo = "me.example", starttls = true})
--   record.stage  -> "open" when the session is ready for MAIL, else where it stopped
--   record.steps  -> { {stage = "banner", seconds = 0.01, reply = {...}}, ... }
--   probe.finish(s, record)   -- QUIT, and the transcript kept in record.transcript

local smtp = require "smtpsh.smtp"
local dns = require "smtpsh.dns"
local json = require "smtpsh.json"
local task = require "smtpsh.task"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local string_format, string_gsub, string_match, string_sub =
  string.format, string.gsub, string.match, string.sub
local table_sort = table.sort

local probe = {}

-- "host:port", with brackets around an IPv6 address.
probe.endpoint = smtp.endpoint

-- The IP of "1.2.3.4:25" or "[::1]:25".
function probe.ip_of(endpoint)
  if not endpoint then return nil end
  return string_match(endpoint, "^%[(.+)%]:%d+$") or string_match(endpoint, "^(.+):%d+$") or endpoint
end

function probe.one_line(reply) return (string_gsub(tostring(reply), "\n", " | ")) end

-- A reply as plain data: code, enhanced status, text (the lines joined by \n) and the reply as
-- one line ("421 4.7.0 go away"), which is how reports quote it.
function probe.reply(reply)
  if reply == nil then return nil end
  return { code = reply.code, enhanced = reply.enhanced, text = reply.text, line = probe.one_line(reply) }
end

-- An error as plain data. The message is one line: a multi-line reply inside it is joined by " | ".
function probe.error(err)
  if err == nil then return nil end
  if type(err) ~= "table" then return { kind = "error", message = tostring(err) } end
  return { kind = err.kind, stage = err.stage, reason = err.reason, rcode = err.rcode,
           message = (string_gsub(err.message or tostring(err), "\n", " | ")),
           reply = probe.reply(err.reply) }
end

-- Evidence is for a person to read: a hostile server's 1,000-line reply or 64 KB line must not
-- become a 1,000-line report. The head and the tail of a transcript are kept (the tail is where
-- a session ends), each line cut to a readable length.
local evidence_head, evidence_tail = 12, 24
probe.longest_line = 300

function probe.cut(line)
  line = tostring(line)
  if #line > probe.longest_line then
    return string_sub(line, 1, probe.longest_line) .. " ... (" .. #line .. " bytes)"
  end
  return line
end

-- A transcript ({ {dir =, line =}, ... }) as bounded evidence lines ("S 421 4.7.0 ...").
function probe.transcript_lines(transcript)
  local out = json.array()
  if not transcript then return out end
  local count = #transcript
  local long = count > evidence_head + evidence_tail
  for i, entry in ipairs(transcript) do
    if long and i == evidence_head + 1 then
      out[#out + 1] = string_format("! ... %d transcript lines not shown ...", count - evidence_head - evidence_tail)
    end
    if not long or i <= evidence_head or i > count - evidence_tail then
      out[#out + 1] = entry.dir .. " " .. probe.cut(entry.line)
    end
  end
  return out
end

-- What a handshake gave, as plain data.
function probe.tls(info)
  local leaf = info.chain and info.chain[1]
  return { version = info.version, cipher = info.cipher, verify_result = info.verify_result,
           verified = info.verified, not_after = leaf and leaf.not_after or nil }
end

-- When the connection was up: the transcript's "connected to" event, in seconds after `started`.
local function connected_after(transcript)
  for _, entry in ipairs(transcript or {}) do
    if entry.dir == "!" and string_match(entry.line, "^connected to ") then return entry.t end
  end
end

-- Tells the opener's on_step hook (opts.on_step) about a step just kept, with when it began
-- and ended on task.now()'s clock. The greeting's step also covers the TCP connect; given the
-- transcript (fetched only for a hook: it is a copy), the hook hears "connect" and "banner"
-- apart, as a waterfall shows them. The kept steps are the same with or without a hook.
local function tell(record, entry, started, finished, err, transcript)
  local on_step = record.live.on_step
  if not on_step then return end
  local connected = entry.stage ~= "connect" and connected_after(transcript)
  if connected then
    on_step({ stage = "connect", seconds = connected }, started, started + connected)
    started = started + connected
  end
  on_step(entry, started, finished, err)
end

local function step(record, stage, started, reply, err, transcript)
  local finished = task.now()
  local entry = { stage = stage, seconds = finished - started, reply = probe.reply(reply or (err and err.reply)),
                  error = err and err.kind or nil }
  record.steps[#record.steps + 1] = entry
  if record.live then tell(record, entry, started, finished, err, transcript) end
end

-- The session stopped at `stage`: what was said and why, kept in the record.
local function stopped(s, record, stage, err, started, transcript)
  step(record, stage, started, nil, err, transcript)
  record.stage, record.error = stage, probe.error(err)
  record.reply = record.error.reply
  record.live.err = err
  return s, record, err
end

-- Opens a session as a sender does: connect (with implicit TLS when opts.implicit), the
-- greeting, EHLO (with its HELO fallback) unless opts.ehlo is false, and, when opts.starttls
-- is true and the server offers it, STARTTLS. Returns s, record, err: s is nil when no session
-- came up (record.stage "connect" or "banner"); otherwise the session, which may have been
-- closed by the server (record.stage names the step that failed, err says why). record.stage
-- is "open" when the session is ready for its next command.
-- opts: timeout, source, trace, helo (a name, or a function(s) -> name called after the
-- greeting, so a name can be chosen from the local address), ehlo, starttls, implicit, tls
-- (TLS options for STARTTLS or implicit TLS: min, max, ca_file, verify, ...), sni, on_step (a
-- progress hook: function(step, started, finished, err) after each step kept, probe.step's
-- too, with task.now() times; the connect is told apart from the greeting).
function probe.open(host, port, opts)
  opts = opts or {}
  local record = { address = host, port = port, steps = json.array(), live = { on_step = opts.on_step } }
  local started = task.now()
  local connect = { timeout = opts.timeout, source = opts.source, trace = opts.trace,
                    helo = type(opts.helo) == "string" and opts.helo or nil }
  if opts.implicit then
    connect.tls, connect.sni = "implicit", opts.sni
    for key, value in pairs(opts.tls or {}) do connect[key] = value end
  end
  local s, err = smtp.connect(probe.endpoint(host, port), connect)
  if not s then
    -- Dropped before or at the greeting (the usual shape of an IP-reputation block): the
    -- address we connected from is in the transcript, and its reputation matters most.
    for _, entry in ipairs(err.transcript or {}) do
      local from = entry.dir == "!" and string_match(entry.line, "^connected to %S+ from (%S+)$")
      if from then record.local_addr = from end
    end
    record.transcript = probe.transcript_lines(err.transcript)
    return stopped(nil, record, err.stage or "connect", err, started, err.transcript)
  end
  record.live.s = s
  record.local_addr = s.local_addr
  record.banner = probe.reply(s.banner)
  step(record, "banner", started, s.banner, nil, opts.on_step and s.transcript)
  if opts.implicit then
    record.live.tls_info = s.tls
    record.tls = probe.tls(s.tls)
  end
  if opts.ehlo == false then
    record.stage = "open"
    return s, record
  end
  local helo = opts.helo
  if type(helo) == "function" then helo = helo(s) end
  record.helo = helo
  local at = task.now()
  local ehlo, eerr = s:ehlo(helo)
  if not ehlo then return stopped(s, record, "ehlo", eerr, at) end
  step(record, "ehlo", at, ehlo)
  record.ehlo = probe.reply(ehlo)
  local caps = json.array()
  for name in pairs(s.caps) do caps[#caps + 1] = name end
  table_sort(caps)
  record.caps = caps
  record.starttls_offered = s.caps.STARTTLS ~= nil
  if opts.starttls and record.starttls_offered then
    local tls = { timeout = opts.timeout, sni = opts.sni }
    for key, value in pairs(opts.tls or {}) do tls[key] = value end
    at = task.now()
    local info, terr = s:starttls(tls)
    if not info then
      record.tls_failed = true
      return stopped(s, record, "starttls", terr, at)
    end
    step(record, "starttls", at)
    record.live.tls_info = info  -- whole, with the chain, for who needs it before finish
    record.tls = probe.tls(info)
  end
  record.stage = "open"
  return s, record
end

-- One more step on an open session: `fn(s)` returns the reply or nil, err. Timed and kept.
function probe.step(s, record, stage, fn)
  local at = task.now()
  local reply, err = fn(s)
  if not reply then
    stopped(s, record, stage, err, at)
    return nil, err
  end
  step(record, stage, at, reply)
  return reply
end

-- Ends the session politely (QUIT when it is still open) and keeps its transcript; the record
-- is plain data afterwards.
function probe.finish(s, record)
  s = s or record.live.s
  if s then
    if not s.closed then s:quit() end
    record.transcript = probe.transcript_lines(s.transcript)
  end
  record.live = nil
  return record
end

-- The MX set of a domain as plain data: what DNS said ({name, rcode, error, null, implicit,
-- records}) and the hosts to try in order, each with its addresses (or the look-up's error).
function probe.mx_hosts(domain)
  local mx, err = dns.mx(domain)
  local said = { name = domain, records = json.array() }
  local hosts = {}
  if not mx then
    said.rcode, said.error = err.rcode, probe.error(err)
    return said, hosts
  end
  said.null, said.implicit, said.mixed_null = mx.null or nil, mx.implicit or nil, mx.mixed_null or nil
  for _, entry in ipairs(mx) do
    said.records[#said.records + 1] = { preference = entry.preference, host = entry.host }
    local addresses = json.array()
    for i, address in ipairs(entry.addresses or {}) do addresses[i] = address end
    hosts[#hosts + 1] = { host = entry.host, preference = entry.preference, addresses = addresses,
                          error = probe.error(entry.error) }
  end
  return said, hosts
end

-- One host named directly (an address literal, or a name whose addresses are looked up).
function probe.direct_host(host)
  local entry = { host = host, preference = 0, addresses = json.array() }
  if smtp.is_address(host) then
    entry.addresses[1] = host
    return entry
  end
  local found, err = dns.addresses(host)
  for i, address in ipairs(found or {}) do entry.addresses[i] = address end
  entry.error = probe.error(err)
  return entry
end

-- Walks the MX hosts in preference order: visit(entry, address) -> record. A record whose
-- stage is "connect" (TCP never answered) moves on to the same host's next address; any
-- other ends that host. The walk stops after the first host whose record `done(record)`
-- accepts (the fallback MX that delivers), or when a record says this machine could not try
-- at all (record.abort: no descriptors, an unusable --source).
-- Returns answered (one record per host that answered TCP), failed (the connects that did not).
function probe.each_mx(hosts, visit, done)
  local answered, failed = {}, {}
  for _, entry in ipairs(hosts) do
    local this_host
    for _, address in ipairs(entry.addresses or {}) do
      local record = visit(entry, address)
      if record.stage ~= "connect" then
        answered[#answered + 1], this_host = record, record
        break
      end
      failed[#failed + 1] = record
      local kind = record.error and record.error.kind
      if kind == "source" or kind == "resource" then return answered, failed, record end
    end
    if this_host and done(this_host) then break end
  end
  return answered, failed
end

return probe
