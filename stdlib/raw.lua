-- Raw SMTP: lines typed by a person go to the server as they are; replies are printed as
-- they come. Used by `smtpsh raw` and the REPL's `:raw`.

local smtp = require "smtpsh.smtp"
local report = require "smtpsh.report"
local probe = require "smtpsh.probe"

local tostring, pairs, ipairs, string_upper, string_match, string_find, string_sub, table_concat =
  tostring, pairs, ipairs, string.upper, string.match, string.find, string.sub, table.concat

local raw = {}

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
  output:write(report.visible(tostring(replies[1])), "\n")
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

-- raw.run(target, {timeout=, input=, output=, implicit=, tls = {ca_file=, ...}}) -> session | nil, err
-- Reads lines from input until end of input or ":quit". After a 354 the lines up to a lone
-- "." are the message: they are sent as typed (the caller dot-stuffs) and only the final
-- reply is awaited.
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
  output:write(report.visible(tostring(s.banner)), "\n")
  output:flush()
  local in_message, body = false, {}
  while not s.closed do
    local line = opts.read_line and opts.read_line() or opts.input:read("l")
    if line == nil then break end
    -- Lines piped from a file or another program often end in CRLF: the CR is the line end.
    if string_sub(line, -1) == "\r" then line = string_sub(line, 1, -2) end
    if not in_message and line == ":quit" then break end
    if in_message then
      if line == "." then
        local reply, merr = s.core:message(table_concat(body, "\r\n") .. (#body > 0 and "\r\n" or ""))
        output:write(report.visible(reply and tostring(reply) or ("! " .. tostring(merr))), "\n")
        in_message, body = false, {}
      else
        -- The person types the message as it goes on the wire; undo nothing, stuff nothing twice.
        body[#body + 1] = string_match(line, "^%.(%..*)$") or line
      end
    else
      local reply = send_line(s, line, output)
      local verb = string_upper(line)
      if reply and reply.code == 354 and verb:match("^DATA") then in_message = true end
      if reply and reply.code == 220 and verb:match("^STARTTLS%s*$") then upgrade(s, output, opts.tls) end
    end
    output:flush()
  end
  return s
end

return raw
