-- server: a scriptable SMTP server on the same engine, for simulating what remote servers do
-- (greylisting, rate limits, TLS limits, drops, slow or busy servers) and for replaying
-- recorded sessions. Many sessions at once, each a task.
--
--   local srv = server.listen{
--     host = "127.0.0.1", port = 2525, hostname = "mx.scenario.test",
--     tls = {self_signed = "mx.scenario.test", min = "tls1", max = "tls1.1"},  -- or cert=, key=
--     on_connect = function(s) return "220 mx.scenario.test ESMTP" end,
--     on_rcpt = function(s, address) return {reply = "450 4.7.1 Greylisted", delay = 0.5} end,
--   }
--   srv.port; srv:close(); srv:wait()
--
-- A handler gets the session `s` ({id, peer, n, helo, from, rcpts, tls, state = {}, server})
-- and the command's argument, and returns what to do:
--   nil                          the default reply
--   "250 OK" / 250               that reply (lines split at "\n" become a multi-line reply)
--   {reply = ..., delay = SECONDS, close = true, raw = BYTES, await = N}   wait, answer, send
--                                raw bytes (after the client's next N bytes arrived, with await:
--                                an answer to a TLS ClientHello), then maybe close
--   "close" or {drop = true}     close at once, without a reply
--   "silent"                     never answer (the client times out)
-- Handlers: on_connect, on_ehlo, on_helo, on_mail, on_rcpt, on_data (before 354), on_message
-- (the message; before the final reply), on_starttls ("454 ..." refuses TLS), on_rset,
-- on_noop, on_quit, on_command (anything else, with the whole line).

local servercore = require "smtpsh.servercore"
local server_command = require "smtpsh.server_command"
local task = require "smtpsh.task"
require "smtpsh.net"  -- connections arrive as net.conn objects

local type, tostring, tonumber, pairs, ipairs, error, setmetatable, pcall =
  type, tostring, tonumber, pairs, ipairs, error, setmetatable, pcall
local string_match, string_upper, string_gmatch, string_format, string_find, string_sub =
  string.match, string.upper, string.gmatch, string.format, string.find, string.sub
local table_concat = table.concat
local io_stderr = io.stderr

local server = {}

-- A received line -> VERB, argument | nil, the reply for a line without one (smtpsh.server_command).
local parse_command = server_command.parse
server.parse_command = parse_command

local idle_timeout = 300  -- RFC 5321 section 4.5.3.2.7: at least five minutes

-- A queue ID no other run of any server repeats (Postfix's long IDs are time-based too): the
-- time of the first message to the microsecond, the listening port and a random part (two
-- runs started in one second can share a random seed), then the session and its message.
local function queue_id(s)
  local srv = s.server
  if not srv.queue_prefix then
    local micro = math.floor(task.now() * 1e6) % 0x100000
    srv.queue_prefix = string_format("%X%05X%04X%04X", os.time(), micro, (srv.port or 0) % 0x10000,
      math.random(0, 0xFFFF))
  end
  return string_format("%s%05X%02X", srv.queue_prefix, s.id, s.messages or 0)
end

-- "250 a\nb" -> "250-a\r\n250 b\r\n"; a bare code gets a default text.
local function format_reply(reply)
  if type(reply) == "number" then reply = tostring(reply) .. " OK" end
  local code, rest = string_match(reply, "^(%d%d%d)[ %-]?(.*)$")
  if not code then error("server: a reply must start with a 3-digit code, got '" .. reply .. "'", 0) end
  local lines = {}
  for line in string_gmatch(rest .. "\n", "(.-)\r?\n") do lines[#lines + 1] = line end
  local out = {}
  for i, line in ipairs(lines) do
    -- Later lines may repeat the code ("250-SIZE"); keep only the text.
    line = string_match(line, "^" .. code .. "[ %-](.*)$") or line
    out[#out + 1] = code .. (i < #lines and "-" or " ") .. line
  end
  return table_concat(out, "\r\n") .. "\r\n", tonumber(code)
end
server.format_reply = format_reply

local Session = {}
Session.__index = Session

-- Carries out a handler's answer; returns false when the session is over.
function Session:answer(action, default)
  if action == nil then action = default end
  if action == "close" then
    self.conn:close()
    return false
  end
  if action == "silent" then
    -- Read on without answering until the client gives up.
    while self.conn:receive("l") do end
    self.conn:close()
    return false
  end
  local reply, delay, close, raw, await = action, nil, false, nil, nil
  if type(action) == "table" then
    if action.drop then
      if action.delay then task.sleep(action.delay) end
      self.conn:close()
      return false
    end
    reply, delay, close, raw, await = action.reply or default, action.delay, action.close, action.raw, action.await
  end
  if delay and delay > 0 then task.sleep(delay) end
  if reply ~= nil then
    local text, code = format_reply(reply)
    if not self.conn:send(text) then return false end
    self.last_code = code
    if code == 421 then close = true end
  end
  -- Bytes as they are, after the reply (and after what the client sends next, with await):
  -- what a broken server sends.
  if await and not self.conn:receive(await) then
    self.conn:close()
    return false
  end
  if raw and not self.conn:send(raw) then return false end
  if close then
    self.conn:close()
    return false
  end
  return true
end

function Session:call(name, ...)
  local handler = self.handlers[name]
  if not handler then return nil end
  return handler(self, ...)
end

function Session:ehlo_reply()
  local lines = { "250-" .. self.server.hostname }
  lines[#lines + 1] = "250-PIPELINING"
  lines[#lines + 1] = "250-SIZE 36700160"
  lines[#lines + 1] = "250-8BITMIME"
  lines[#lines + 1] = "250-ENHANCEDSTATUSCODES"
  if self.server.tls and not self.tls then lines[#lines + 1] = "250-STARTTLS" end
  lines[#lines + 1] = "250 CHUNKING"
  return table_concat(lines, "\n")
end

-- The message after DATA: lines up to ".", dot-unstuffed, CRLF-joined.
function Session:read_message()
  local lines, size = {}, 0
  while true do
    local line = self.conn:receive("l")
    if not line then return nil end
    if line == "." then break end
    if string_sub(line, 1, 1) == "." then line = string_sub(line, 2) end
    lines[#lines + 1] = line
    size = size + #line + 2
  end
  return table_concat(lines, "\r\n") .. (#lines > 0 and "\r\n" or ""), size
end

function Session:reset()
  self.from, self.rcpts = nil, {}
end

local verbs = {}

function verbs.EHLO(s, arg)
  s.helo, s.esmtp = arg, true
  s:reset()
  return s:answer(s:call("on_ehlo", arg), s:ehlo_reply())
end

function verbs.HELO(s, arg)
  s.helo, s.esmtp = arg, false
  s:reset()
  return s:answer(s:call("on_helo", arg), "250 " .. s.server.hostname)
end

-- Whether a handler's answer accepts the command (nil is the default 2xx).
local function accepts(action)
  if action == nil then return true end
  local reply = type(action) == "table" and not action.drop and action.reply or action
  if type(reply) == "number" then return reply >= 200 and reply < 300 end
  return type(reply) == "string" and string_match(reply, "^2%d%d") ~= nil
end

function verbs.MAIL(s, arg)
  local from = string_match(arg, "^[Ff][Rr][Oo][Mm]:%s*<?([^>%s]*)>?")
  if not from then return s:answer(nil, "501 5.5.4 Syntax: MAIL FROM:<address>") end
  if not s.helo then return s:answer(nil, "503 5.5.1 Error: send HELO/EHLO first") end
  local action = s:call("on_mail", from, arg)
  if accepts(action) then s.from = from end
  return s:answer(action, "250 2.1.0 Ok")
end

function verbs.RCPT(s, arg)
  local to = string_match(arg, "^[Tt][Oo]:%s*<?([^>%s]*)>?")
  if not to then return s:answer(nil, "501 5.5.4 Syntax: RCPT TO:<address>") end
  if not s.from then return s:answer(nil, "503 5.5.1 Error: need MAIL command") end
  local action = s:call("on_rcpt", to, arg)
  if accepts(action) then s.rcpts[#s.rcpts + 1] = to end
  return s:answer(action, "250 2.1.5 Ok")
end

function verbs.DATA(s)
  if #s.rcpts == 0 then return s:answer(nil, "503 5.5.1 Error: need RCPT command") end
  local action = s:call("on_data")
  if action ~= nil then return s:answer(action) end
  if not s:answer(nil, "354 End data with <CR><LF>.<CR><LF>") then return false end
  local message = s:read_message()
  if not message then return false end
  s.messages = (s.messages or 0) + 1
  local final = s:call("on_message", message)
  s:reset()
  return s:answer(final, "250 2.0.0 Ok: queued as " .. queue_id(s))
end

function verbs.BDAT(s, arg)
  local size, last = string_match(arg, "^(%d+)%s*(%a*)")
  size = tonumber(size)
  if not size then return s:answer(nil, "501 5.5.4 Syntax: BDAT size [LAST]") end
  local chunk = size > 0 and s.conn:receive(size) or ""
  if not chunk then return false end
  s.chunks = (s.chunks or "") .. chunk
  if string_upper(last) ~= "LAST" then return s:answer(nil, "250 2.0.0 " .. size .. " octets received") end
  local message = s.chunks
  s.chunks = nil
  s.messages = (s.messages or 0) + 1
  local final = s:call("on_message", message)
  s:reset()
  return s:answer(final, string_format("250 2.0.0 Ok: %d octets, queued as %s", #message, queue_id(s)))
end

function verbs.RSET(s)
  s:reset()
  return s:answer(s:call("on_rset"), "250 2.0.0 Ok")
end

function verbs.NOOP(s) return s:answer(s:call("on_noop"), "250 2.0.0 Ok") end
function verbs.VRFY(s) return s:answer(s:call("on_command", "VRFY"), "252 2.0.0 Cannot VRFY user") end

function verbs.QUIT(s)
  s:answer(s:call("on_quit"), "221 2.0.0 Bye")
  s.conn:close()
  return false
end

function verbs.STARTTLS(s)
  local tls = s.server.tls
  if not tls or s.tls then return s:answer(nil, "502 5.5.1 STARTTLS not offered") end
  local action = s:call("on_starttls")
  if action ~= nil then return s:answer(action) end
  if not s:answer(nil, "220 2.0.0 Ready to start TLS") then return false end
  local info, err = s.conn:accept_tls(tls)
  if not info then
    s.tls_error = err
    s.conn:close()
    return false
  end
  s.tls = info
  s.helo = nil
  s:reset()
  return true
end

-- One session, in its own task: the greeting, then one command at a time.
local function serve_session(srv, conn)
  srv.sessions = srv.sessions + 1
  local s = setmetatable({ conn = conn, server = srv, handlers = srv.handlers, id = srv.sessions,
                           n = srv.sessions, peer = conn.remote_addr, state = {}, rcpts = {} }, Session)
  srv.active = srv.active + 1
  conn:settimeout(srv.idle_timeout)
  local ok, err = pcall(function()
    if not s:answer(s:call("on_connect"), "220 " .. srv.hostname .. " ESMTP smtpsh scenario server") then return end
    while true do
      local line = conn:receive("l")
      if not line then return end
      local verb, arg = parse_command(line)
      local handler = verb and verbs[verb]
      local go
      if handler then
        go = handler(s, arg)
      else
        go = s:answer(s:call("on_command", line), server_command.unrecognized)
      end
      if not go then return end
    end
  end)
  srv.active = srv.active - 1
  conn:close()
  -- A handler's error ends its session, not the server: it is reported and serving goes on.
  -- An interruption (Ctrl-C, the server stopping) is no error of the session's.
  if not ok and not tostring(err):match("interrupted$") then
    io_stderr:write("smtpsh server: session ", s.id, " from ", tostring(s.peer), ": ", tostring(err), "\n")
  end
end

-- server.listen(opts) -> server | nil, message
function server.listen(opts)
  if type(opts) ~= "table" then error("server.listen{host=, port=, tls=, on_connect=, on_rcpt=, ...}", 2) end
  local handlers = {}
  for key, value in pairs(opts) do
    if type(key) == "string" and key:match("^on_") then
      if type(value) ~= "function" then error("server.listen: " .. key .. " must be a function", 2) end
      handlers[key] = value
    end
  end
  if opts.tls ~= nil and type(opts.tls) ~= "table" then
    error("server.listen: tls must be a table {cert=, key=} or {self_signed = NAME}", 2)
  end
  local srv = { handlers = handlers, hostname = opts.hostname or "mx.scenario.test", tls = opts.tls,
                sessions = 0, active = 0, idle_timeout = opts.idle_timeout or idle_timeout,
                state = opts.state or {} }
  if srv.tls and not srv.tls.cert and not srv.tls.self_signed then srv.tls.self_signed = srv.hostname end
  local listener, err = servercore.listen(opts.host or "127.0.0.1", opts.port or 0, function(conn)
    serve_session(srv, conn)
  end)
  if not listener then return nil, err end
  srv.listener = listener
  srv.port = listener:port()
  srv.host = opts.host or "127.0.0.1"
  srv.address = listener:address()
  function srv:close() self.listener:close() end
  -- Waits until the server is closed (a scenario's main task calls it to keep serving).
  function srv:wait()
    while self.listener:is_open() do task.sleep(0.2) end
  end
  return srv
end

-- What replay builds on, public so subcommands need no binding module:
-- server.accept(host, port, fn(conn)) -> listener | nil, err: a bare listener whose fn gets each
--   connection (no SMTP dialogue of its own);
-- server.redirect({{from = "HOST:PORT", to = "HOST:PORT" | "refuse" | "blackhole"}, ...} [, default]):
--   this state's outgoing connects to `from` go to `to` instead (the engine's connect hook);
--   an entry's `tls = {info | false, ...}` gives each connect to `from` in turn a recorded TLS
--   result (a table as s:starttls() returns) that its handshake then reports without running;
-- server.dns_replay(answers) -> a DNS server on loopback that answers the recorded questions.
server.accept = servercore.listen
server.redirect = servercore.redirect
server.dns_replay = servercore.dns_replay

return server
