-- smtp: SMTP client sessions for scripts and the REPL.
--
--   local s, err = smtp.connect("mx.example:25", {helo = "probe.example", timeout = 10, trace = true})
--   s:ehlo(); s:mail("a@example"); s:rcpt("b@example"); s:data("Subject: hi\n\nbody\n"); s:quit()
--
-- Every method returns the reply, or nil, err (err.kind "reply" when the server said 4xx/5xx,
-- with err.reply; "closed", "timeout", "protocol" otherwise; err.stage names the step). The
-- engine (smtpsh.smtpcore) frames commands, reads replies and keeps the transcript; this
-- module decides what to send: EHLO with its HELO fallback, AUTH exchanges, DATA.

local core = require "smtpsh.smtpcore"
local dns = require "smtpsh.dns"
local trace = require "smtpsh.trace"

local type, tostring, pairs, ipairs, error, setmetatable, rawget =
  type, tostring, pairs, ipairs, error, setmetatable, rawget
local string_find, string_match, string_upper, string_gsub, string_format =
  string.find, string.match, string.upper, string.gsub, string.format
local table_concat, table_sort = table.concat, table.sort

local smtp = {}
local Session = {}

-- What connect uses when its options do not say: the shell's --trace sets trace.
smtp.defaults = { trace = false }

-- Computed on access (the transcript is copied out of the engine each time).
local computed = {
  transcript = function(s) return s.core:transcript() end,
  tls = function(s) return s.core:tls() end,
  closed = function(s) return s.core:closed() end,
  local_addr = function(s) return s.core:local_addr() end,
  remote_addr = function(s) return s.core:remote_addr() end,
}

local session_meta = {
  __index = function(s, key)
    local get = computed[key]
    if get then return get(s) end
    return Session[key]
  end,
  __tostring = function(s)
    return string_format("smtp.session (%s -> %s%s)", tostring(s.core:local_addr()),
      tostring(s.core:remote_addr()), s.core:closed() and ", closed" or "")
  end,
  __close = function(s) s.core:close() end,
  __name = "smtp.session",
}
-- For the REPL's completion: the methods and computed fields of a session.
session_meta.__fields = {}
for name in pairs(computed) do session_meta.__fields[name] = true end

-- Refuses a CR or LF in anything that goes into a command line (command injection).
local function checked(what, value)
  if type(value) ~= "string" then
    error(what .. " must be a string, got " .. type(value), 3)
  end
  if string_find(value, "[\r\n%z]") then
    error("refusing " .. what .. " with a CR or LF (or NUL) inside: it would smuggle another SMTP command", 3)
  end
  return value
end

local function format_params(params)
  if params == nil then return "" end
  if type(params) == "string" then
    checked("params", params)
    return params == "" and "" or " " .. params
  end
  if type(params) ~= "table" then error("params must be a string or a table", 3) end
  local keys = {}
  for key in pairs(params) do keys[#keys + 1] = tostring(key) end
  table_sort(keys)
  local words = {}
  for _, key in ipairs(keys) do
    local value = params[key]
    checked("params", key)
    if value == true then
      words[#words + 1] = string_upper(key)
    elseif value ~= false then
      words[#words + 1] = string_upper(key) .. "=" .. checked("params", tostring(value))
    end
  end
  return #words > 0 and " " .. table_concat(words, " ") or ""
end

local function path(address, what)
  checked(what, address)
  if string_match(address, "^<.*>$") then return address end
  return "<" .. address .. ">"
end

local function one_line(reply)
  return (string_gsub(tostring(reply), "\n", " | "))
end

-- The replies each command may get on success (RFC 5321 section 4.3.2; RFC 3207 for STARTTLS,
-- RFC 4954 for AUTH): "intermediate" is AUTH's 334 while the exchange goes on. A 4xx/5xx is
-- an answer too (nil, err of kind "reply"); any other code is the server out of step with
-- the commands sent (a 334 to MAIL, a 250 to DATA), a protocol error that ends the session.
local accepted = {
  ehlo = { [250] = true }, helo = { [250] = true },
  mail = { [250] = true }, rcpt = { [250] = true, [251] = true },
  data = { [354] = true }, rset = { [250] = true }, noop = { [250] = true },
  vrfy = { [250] = true, [251] = true, [252] = true }, expn = { [250] = true, [252] = true },
  -- HELP: 211/214 by the RFC; 250 from servers such as aiosmtpd. Harmless either way.
  help = { [211] = true, [214] = true, [250] = true }, quit = { [221] = true }, starttls = { [220] = true },
  -- AUTH: 334 asks for the next step; after the last step only 235 (or 4xx/5xx) may come.
  auth = { [235] = true }, intermediate = { [334] = true },
}

local function out_of_step(s, stage, reply, expected)
  s.core:note("reply " .. reply.code .. " is not an answer to " .. stage .. ": closing the session")
  s.core:close()
  return core.error("protocol", stage, stage .. " answered " .. one_line(reply) ..
    ", which it does not allow (expected " .. expected .. ", or 4xx/5xx)", reply)
end

-- Sends one command; a 4xx/5xx reply becomes nil, err (kind "reply"), a code the command does
-- not allow nil, err (kind "protocol"). `expect` names the row of `accepted` (default: the
-- stage); false accepts every code below 400 (s:cmd, whose command is the caller's own).
local function command(s, stage, line, shown, expect)
  local replies, err = s.core:exchange({ line }, shown and { shown }, stage)
  if not replies then
    err.stage = stage
    return nil, err
  end
  local reply = replies[1]
  if reply.code >= 400 then
    return nil, core.error("reply", stage, stage .. " refused: " .. one_line(reply), reply)
  end
  local allowed = expect ~= false and accepted[expect or stage]
  if allowed and not allowed[reply.code] then
    local codes = {}
    for code in pairs(allowed) do codes[#codes + 1] = tostring(code) end
    table_sort(codes)
    return nil, out_of_step(s, stage, reply, table_concat(codes, " or "))
  end
  return reply
end

-- smtp.describe(421) / smtp.describe("4.7.1") -> meaning in words, severity
smtp.describe = core.describe
smtp.is_address = core.is_address
-- This machine's host name (the EHLO name when none is given).
smtp.hostname = core.hostname
-- smtp.parse_target("host:port", default_port) -> host, port | nil, message (one parser for all)
smtp.parse_target = core.parse_target
-- smtp.endpoint(host, port) -> "host:port", "[v6]:port" (what parse_target reads back)
smtp.endpoint = core.format_endpoint

-- smtp.record(FILE.jsonl) -> true | nil, message: from now on every DNS answer and SMTP
-- transcript line of this state is written to FILE (for `smtpsh replay`); smtp.record(false)
-- stops. `argv` ({"diagnose", "example.com"}) says what ran, for the replay to run again;
-- `script`, the file of Lua that runs (argv[1]), goes into the recording whole, so that its
-- replay needs nothing else: `source` when given (the text the runner read and runs), else
-- the file's text now.
function smtp.record(path, argv, script, source)
  local recordcore = require "smtpsh.recordcore"
  if path == false or path == nil then return recordcore.stop() end
  local started, problem = recordcore.start(checked("recording path", path), argv or { "script" })
  if started and script then
    if source == nil then
      local file, open_problem = io.open(script, "rb")
      if not file then
        recordcore.stop()
        return nil, "cannot read " .. script .. " to keep it in the recording: " .. tostring(open_problem)
      end
      source = file:read("a")
      file:close()
    end
    require("smtpsh.replayable").keep(script, source or "", { table.unpack(argv or {}, 2) })
  end
  return started, problem
end

-- The TLS options of a handshake with `host`: the caller's, with SNI defaulting to the host
-- name connected to (never an address it resolved to), and for verify = "dane" the TLSA
-- records of _PORT._tcp.HOST, validated by smtpsh's own DNSSEC validator. RFC 7672 section
-- 2.2: only secure TLSA records are used. Bogus ones are an error (a DANE sender would not
-- deliver); insecure or indeterminate ones are ignored, as a DANE sender ignores them: the
-- handshake then authenticates nothing, and the second result says why (it becomes
-- info.dane = {usable = false, dnssec, reason, records, ad}).
local tls_keys = { "min", "max", "ciphers", "ciphersuites", "sni", "verify", "ca_file", "ca_path", "tlsa",
                   "dnssec" }
local function tls_options(opts, host, port)
  local out = {}
  for _, key in ipairs(tls_keys) do out[key] = opts[key] end
  -- An address is not sent as SNI (the engine checks it against the certificate's IP names).
  if out.sni == nil then out.sni = host end
  if out.sni == false then out.sni = nil end
  if out.verify == "dane" and out.tlsa == nil then
    local name = "_" .. port .. "._tcp." .. host
    local records, err = dns.tlsa(host, port, { validate = true })
    if not records then
      return nil, core.error("dns", "starttls", "DANE: no TLSA records for " .. host .. ": " .. tostring(err))
    end
    if #records == 0 then
      return nil, core.error("dns", "starttls", "DANE: " .. host .. " publishes no TLSA record for port " .. port)
    end
    if records.dnssec == "bogus" then
      local e = core.error("dns", "starttls", "DANE: the TLSA records of " .. name .. " are bogus (" ..
        tostring(records.bogus_reason) .. "): a DANE sender would not deliver")
      e.dnssec, e.bogus_reason = "bogus", records.bogus_reason
      return nil, e
    end
    if records.dnssec ~= "secure" then
      out.verify, out.tlsa = "none", nil
      return out, { usable = false, dnssec = records.dnssec, reason = records.dnssec_reason,
                    records = #records, ad = records.ad }
    end
    out.tlsa, out.dnssec = records, true
  end
  return out
end

-- smtp.connect(target [, opts]) -> session | nil, err (err.transcript: what was said before it
-- failed, such as a broken greeting)
-- opts.tls = "implicit" speaks TLS from the first byte (port 465), with the TLS options of
-- s:starttls beside it.
function smtp.connect(target, opts)
  checked("target", target)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("smtp.connect(target [, {helo=, timeout=, source=, trace=, tls=\"implicit\", ...}])", 2)
  end
  local host, port = core.parse_target(target, opts.tls == "implicit" and 465 or 25)
  if not host then error(port, 2) end
  if opts.helo ~= nil then checked("helo name", opts.helo) end
  if opts.tls ~= nil and opts.tls ~= "implicit" then
    error("smtp.connect: tls must be \"implicit\" (use s:starttls() for STARTTLS)", 2)
  end
  local implicit, dane_ignored
  if opts.tls == "implicit" then
    implicit, dane_ignored = tls_options(opts, host, port)
    if not implicit then return nil, dane_ignored end
    core.check_tls_options(implicit, "smtp.connect")
  end

  local traced = opts.trace == nil and smtp.defaults.trace or opts.trace
  if traced then trace.install(core) end
  local engine, banner = core.connect(host, port, {
    timeout = opts.timeout, source = opts.source, tls = implicit, trace = traced,
  })
  if not engine then return nil, banner end
  local s = setmetatable({ core = engine, banner = banner, caps = {}, helo_name = opts.helo,
                           host = host, port = port, dane = dane_ignored }, session_meta)
  if banner.code >= 400 then
    engine:close()
    local err = core.error("reply", "banner", "greeting refused: " .. one_line(banner), banner)
    err.transcript = engine:transcript()
    return nil, err
  end
  return s
end

function Session:ehlo(name)
  name = checked("EHLO name", name or self.helo_name or core.hostname())
  self.helo_name = self.helo_name or name
  local reply, err = command(self, "ehlo", "EHLO " .. name)
  if not reply and err.kind == "reply" and err.reply.permanent then
    -- RFC 5321 section 3.2: a server without ESMTP refuses EHLO; HELO still works.
    self.core:note("EHLO refused; falling back to HELO")
    return self:helo(name)
  end
  if not reply then return nil, err end
  self.caps = core.capabilities(reply)
  self.ehlo_reply = reply
  return reply
end

function Session:helo(name)
  name = checked("HELO name", name or self.helo_name or core.hostname())
  local reply, err = command(self, "helo", "HELO " .. name)
  if reply then self.caps = {} end
  return reply, err
end

function Session:mail(from, params)
  return command(self, "mail", "MAIL FROM:" .. path(from, "sender") .. format_params(params))
end

function Session:rcpt(to, params)
  return command(self, "rcpt", "RCPT TO:" .. path(to, "recipient") .. format_params(params))
end

function Session:data(message)
  if type(message) ~= "string" then error("s:data(message): message must be a string", 2) end
  local reply, err = command(self, "data", "DATA")
  if not reply then return nil, err end
  return self:message(message)
end

-- s:message(text) -> reply | nil, err: the message itself, once DATA got its 354. s:data uses
-- it; so does a client that sent DATA at the end of a pipelined group (RFC 2920 section 3.1:
-- s:pipeline{MAIL, RCPT, DATA}). Line ends become CRLF and leading dots are doubled.
function Session:message(message)
  if type(message) ~= "string" then error("s:message(text): text must be a string", 2) end
  local final, ferr = self.core:message(message)
  if not final then
    ferr.stage = "data"
    return nil, ferr
  end
  if final.code >= 400 then
    return nil, core.error("reply", "data", "message refused: " .. one_line(final), final)
  end
  if final.code ~= 250 then return nil, out_of_step(self, "data", final, "250") end
  return final
end

function Session:bdat(message)
  if type(message) ~= "string" then error("s:bdat(message): message must be a string", 2) end
  if not rawget(self.caps, "CHUNKING") then
    return nil, core.error("protocol", "bdat", "the server does not offer CHUNKING (say EHLO first)")
  end
  local reply, err = self.core:chunk(message)
  if not reply then
    err.stage = "bdat"
    return nil, err
  end
  if reply.code >= 400 then
    return nil, core.error("reply", "bdat", "message refused: " .. one_line(reply), reply)
  end
  if reply.code ~= 250 then return nil, out_of_step(self, "bdat", reply, "250") end
  return reply
end

function Session:rset() return command(self, "rset", "RSET") end
function Session:noop() return command(self, "noop", "NOOP") end
function Session:vrfy(who) return command(self, "vrfy", "VRFY " .. checked("VRFY argument", who)) end
function Session:expn(list) return command(self, "expn", "EXPN " .. checked("EXPN argument", list)) end

function Session:help(topic)
  if topic == nil then return command(self, "help", "HELP") end
  return command(self, "help", "HELP " .. checked("HELP topic", topic))
end

function Session:quit()
  local reply, err = command(self, "quit", "QUIT")
  self.core:close()
  return reply, err
end

function Session:cmd(line)
  return command(self, "cmd", checked("command", line), nil, false)
end

-- s:starttls([opts]) -> tls info | nil, err. Sends STARTTLS; after the 220, the handshake with
-- opts {min, max, ciphers, ciphersuites, sni, verify = "none"|"peer"|"dane", ca_file, ca_path, tlsa};
-- then EHLO again (RFC 3207 section 4.2: what was said before TLS is forgotten), unless
-- opts.ehlo == false. err.kind is "reply" when STARTTLS was refused, "tls" when the
-- handshake failed (err.reason: alert, closed, timeout, not_tls, version, verify, local).
function Session:starttls(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("s:starttls([{min=, max=, ciphers=, sni=, verify=, ...}])", 2) end
  -- The second result is the error when there are no options, else a note on DANE.
  local options, note = tls_options(opts, self.host or "", self.port or 25)
  if not options then return nil, note end
  core.check_tls_options(options)
  local reply, err = command(self, "starttls", "STARTTLS")
  if not reply then return nil, err end
  local info, terr = self.core:starttls(options)
  if not info then return nil, terr end
  if note then info.dane = note end  -- TLSA records that were not secure, and why
  self.caps, self.ehlo_reply = {}, nil
  if opts.ehlo ~= false then
    local again, eerr = self:ehlo()
    if not again then return nil, eerr end
  end
  return info
end

-- s:auth(mech, user, secret): PLAIN, LOGIN or CRAM-MD5. The secret, and anything derived from
-- it, is shown as *** in the transcript.
function Session:auth(mech, user, secret)
  mech = string_upper(checked("mechanism", mech))
  checked("user", user)
  checked("secret", secret)
  -- A server may echo what it got (535 ... <blob>): the secret is hidden there too.
  self.core:secret(secret)
  if mech == "PLAIN" then
    local prefix = "AUTH PLAIN "
    return command(self, "auth", prefix .. core.plain(user, secret), #prefix)
  elseif mech == "LOGIN" then
    local reply, err = command(self, "auth", "AUTH LOGIN", nil, "intermediate")
    if not reply then return nil, err end
    reply, err = command(self, "auth", core.b64encode(user), nil, "intermediate")
    if not reply then return nil, err end
    return command(self, "auth", core.b64encode(secret), 0)
  elseif mech == "CRAM-MD5" then
    local reply, err = command(self, "auth", "AUTH CRAM-MD5", nil, "intermediate")
    if not reply then return nil, err end
    local answer = core.cram_md5(user, secret, reply.text)
    if not answer then
      return nil, core.error("protocol", "auth", "the CRAM-MD5 challenge is not base64: " .. one_line(reply), reply)
    end
    return command(self, "auth", answer, 0)
  end
  error("s:auth(mech, user, secret): mechanism must be PLAIN, LOGIN or CRAM-MD5, got " .. mech, 2)
end

-- s:pipeline{line, ...} -> {reply, ...} | nil, err. One write when PIPELINING is offered,
-- one command at a time otherwise; a 4xx/5xx is just a reply in the list.
function Session:pipeline(lines)
  if type(lines) ~= "table" then error("s:pipeline{line, ...}: expected a list of command lines", 2) end
  for i, line in ipairs(lines) do
    -- The message names the command only when one is wrong (bulk RCPT batches pass here).
    if type(line) ~= "string" or string_find(line, "[\r\n%z]") then checked("pipelined command " .. i, line) end
  end
  if rawget(self.caps, "PIPELINING") then
    local replies, err = self.core:exchange(lines, nil, "pipeline")
    if not replies then err.stage = "pipeline" end
    return replies, err
  end
  local replies = {}
  for _, line in ipairs(lines) do
    local got, err = self.core:exchange({ line }, nil, "pipeline")
    if not got then
      err.stage = "pipeline"
      return nil, err
    end
    replies[#replies + 1] = got[1]
  end
  return replies
end

for name in pairs(Session) do session_meta.__fields[name] = Session[name] end

return smtp
