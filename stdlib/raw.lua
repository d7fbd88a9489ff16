-- Raw SMTP: lines typed by a person go to the server as they are; replies are printed as
-- they come. Used by `smtpsh raw` and the REPL's `:raw`.

local smtp = require "smtpsh.smtp"
local report = require "smtpsh.report"
local probe = require "smtpsh.probe"
local sys = require "smtpsh.sys"

local tostring, pairs, ipairs, type, load, pcall, error =
  tostring, pairs, ipairs, type, load, pcall, error
local string_upper, string_match, string_gmatch, string_find, string_sub, string_format, table_concat =
  string.upper, string.match, string.gmatch, string.find, string.sub, string.format, table.concat

local raw = {}

-- A reply as sent, one visible line per reply line (report.visible alone would show the line
-- breaks of a multi-line reply as \x0a).
local function reply_lines(reply)
  local shown = {}
  for line in string_gmatch(tostring(reply), "[^\n]+") do shown[#shown + 1] = report.visible(line) end
  return table_concat(shown, "\n")
end

-- Sends `line` and prints the reply that answers it. A failure is printed, not raised.
local function send_line(s, line, output)
  if string_find(line, "[\r\n%z]") then
    output:write("! not sent: a CR, LF or NUL inside the line would smuggle another command\n")
    return nil
  end
  local before = #s.core:transcript()
  local replies, err = s.core:exchange({ line }, nil, "raw")
  if not replies then
    -- The lines that came before the failure (a reply cut short by a reset) are shown too.
    local transcript = s.core:transcript()
    for i = before + 1, #transcript do
      if transcript[i].dir == "S" then output:write(report.visible(transcript[i].line), "\n") end
    end
    output:write("! ", report.visible(tostring(err)), "\n")
    return nil
  end
  output:write(reply_lines(replies[1]), "\n")
  return replies[1]
end

-- After a 220 to STARTTLS the connection really switches to TLS (what telnet and netcat cannot
-- do); what the handshake gave, or why it failed, is printed as a "!" line.
local function upgrade(s, output, tls_options)
  local options = {}
  for key, value in pairs(tls_options or {}) do options[key] = value end
  if options.sni == nil then options.sni = s.host end
  local info, err = s.core:starttls(options)
  if not info then
    output:write("! TLS handshake failed: ", tostring(err), "\n")
    return
  end
  local leaf = info.chain[1]
  output:write("! TLS started: ", info.version, " ", info.cipher,
    leaf and (", certificate " .. leaf.subject .. " (" .. report.days_left(leaf.days_left) .. ")") or "",
    ", verify: ", info.verify_result, "\n")
  output:write("! say EHLO again: the server forgets what was said before TLS\n")
end

-- What one typed line does: outside a message it goes to the server (a 354 to DATA starts the
-- message, a 220 to STARTTLS switches to TLS); inside one it is a message line, and a lone "."
-- sends the message and awaits the final reply.
local function take_line(s, state, line, output, tls_options)
  if state.in_message then
    if line == "." then
      local body = state.body
      local reply, merr = s.core:message(table_concat(body, "\r\n") .. (#body > 0 and "\r\n" or ""))
      output:write(reply and reply_lines(reply) or ("! " .. report.visible(tostring(merr))), "\n")
      state.in_message, state.body = false, {}
    else
      -- The person types the message as it goes on the wire; undo nothing, stuff nothing twice.
      state.body[#state.body + 1] = string_match(line, "^%.(%..*)$") or line
    end
    return
  end
  local reply = send_line(s, line, output)
  local verb = string_upper(line)
  if reply and reply.code == 354 and verb:match("^DATA") then state.in_message = true end
  if reply and reply.code == 220 and verb:match("^STARTTLS%s*$") then upgrade(s, output, tls_options) end
end

-- The server said something no command asked for (a 421 before it closes, a line out of step)
-- or closed: the session takes it as it would before the next command, now, and what arrived
-- is shown with what it means.
local function server_spoke(s, output)
  local before = #s.core:transcript()
  local replies, err = s.core:exchange({}, nil, "raw")
  local transcript = s.core:transcript()
  for i = before + 1, #transcript do
    if transcript[i].dir == "S" then output:write(report.visible(transcript[i].line), "\n") end
  end
  if not replies then
    output:write("! ", report.visible(tostring(err)), "\n")
  elseif s.closed then
    output:write("! the server closed the session\n")
  end
end

-- Output to the terminal goes above the prompt (term:print), a whole line at a time.
local function terminal_output(term)
  local pending = ""
  local out = {}
  function out:write(...)
    local text = pending .. table_concat({ ... })
    local lines = string_match(text, "^.*\n")
    if lines then
      term:print(lines)
      pending = string_sub(text, #lines + 1)
    else
      pending = text
    end
    return self
  end
  function out:flush()
    if pending ~= "" then term:print(pending) end
    pending = ""
    return self
  end
  return out
end

-- raw.terminal() -> the shell's live terminal (shell/live_terminal.hpp) when stdin and stdout
-- are terminals, else nil (a pipe, or the bindings loaded into a stock lua5.4).
function raw.terminal()
  local module = sys.host_module and sys.host_module("terminal")
  if not module then return nil end
  return (module.open())
end

-- On a terminal: typed lines and what the server says on its own are awaited together, so a
-- 421 on an idle timeout, or the server closing, shows at once above the prompt, in plain text
-- and under TLS alike. Under TLS any record wakes the prompt (a session ticket too), and the
-- session says whether it held data (input_waiting) before a reply is read. Ctrl-D leaves;
-- Ctrl-C interrupts (the prompt or a wait for a reply) and leaves too.
local function run_live(s, term, opts)
  local output = terminal_output(term)
  local state = { in_message = false, body = {} }
  local ok, err = pcall(function()
    while not s.closed do
      term:watch(s.core:descriptor(), s.tls ~= nil)
      local line = term:read(state.in_message and "data> " or "smtp> ")
      if line == nil then break end
      term:watch(nil)
      if line == false then
        if s.core:input_waiting() then server_spoke(s, output) end
      else
        if not state.in_message then term:add_history(line) end
        if not state.in_message and line == ":quit" then break end
        take_line(s, state, line, output, opts.tls)
      end
      output:flush()
    end
  end)
  output:flush()
  term:close()
  if not ok then
    if not string_find(tostring(err), "interrupted", 1, true) then error(err, 0) end
    opts.output:write("! interrupted\n")
  end
  opts.output:flush()
  return s
end

-- raw.target_of(text, env) -> "HOST[:PORT]" | nil, message: what `:raw TEXT` connects to. A Lua
-- expression evaluated in `env` that yields a string wins (`:raw demo.target`); one that yields
-- nil or fails leaves TEXT as a HOST[:PORT] literal (`:raw mx.example.com`, `:raw 127.0.0.1:25`).
function raw.target_of(text, env)
  local host, problem = smtp.parse_target(text, 25)
  local chunk = load("return " .. text, "=:raw", "t", env)
  if chunk then
    local ok, value = pcall(chunk)
    if ok and type(value) == "string" then
      local vhost, vproblem = smtp.parse_target(value, 25)
      if not vhost then return nil, string_format("%s is %q: %s", text, value, vproblem) end
      return value
    elseif ok and value ~= nil then
      return nil, string_format("%s is a %s, not a \"HOST[:PORT]\" string", text, type(value))
    elseif not ok and not host then
      return nil, string_format("%s: %s", text, tostring(value))
    end
  end
  if host then return text end
  return nil, string_format("%s is not HOST[:PORT] (%s), nor a Lua expression that yields one",
    text, problem)
end

-- raw.run(target, {timeout=, input=, output=, read_line=, live=, implicit=, tls = {ca_file=, ...}})
--   -> session | nil, err
-- Reads lines from input (or read_line()) until end of input or ":quit". With `live`, when
-- stdin and stdout are terminals, from the shell's line editor instead, showing what the
-- server sends on its own as it arrives (run_live). After a 354 the lines up to a lone "."
-- are the message: they are sent as typed (the caller dot-stuffs) and only the final reply is
-- awaited.
function raw.run(target, opts)
  local output = opts.output
  local host, port = smtp.parse_target(target, opts.implicit and 465 or 25)
  if not host then error(port, 2) end
  -- The one session opener: here only up to the greeting, the person types the rest.
  local s, _, err = probe.open(host, port, { timeout = opts.timeout, ehlo = false, implicit = opts.implicit,
                                             tls = opts.tls })
  if not s then
    -- What arrived of a broken greeting is shown before the error.
    for _, entry in ipairs(err.transcript or {}) do
      if entry.dir == "S" then output:write(report.visible(entry.line), "\n") end
    end
    output:flush()
    return nil, err
  end
  if opts.implicit and s.tls then
    output:write("! TLS (implicit): ", s.tls.version, " ", s.tls.cipher, ", verify: ", s.tls.verify_result, "\n")
  end
  output:write(reply_lines(s.banner), "\n")
  output:flush()
  local term = opts.live and raw.terminal()
  if term then return run_live(s, term, opts) end
  local state = { in_message = false, body = {} }
  while not s.closed do
    local line = opts.read_line and opts.read_line() or opts.input:read("l")
    if line == nil then break end
    -- Lines piped from a file or another program often end in CRLF: the CR is the line end.
    if string_sub(line, -1) == "\r" then line = string_sub(line, 1, -2) end
    if not state.in_message and line == ":quit" then break end
    take_line(s, state, line, output, opts.tls)
    output:flush()
  end
  return s
end

return raw
