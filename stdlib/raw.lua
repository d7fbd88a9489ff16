-- Raw SMTP: lines typed by a person go to the server as they are; replies are printed as
-- they come. Used by `smtpsh raw` and the REPL's `:raw`.

local smtp = require "smtpsh.smtp"

local tostring, string_upper, string_match, table_concat = tostring, string.upper, string.match, table.concat

local raw = {}

-- Sends `line` and prints the reply that answers it. A failure is printed, not raised.
local function send_line(s, line, output)
  local replies, err = s.core:exchange({ line })
  if not replies then
    output:write("! ", tostring(err), "\n")
    return nil
  end
  output:write(tostring(replies[1]), "\n")
  return replies[1]
end

-- raw.run(target, {timeout=, input=, output=}) -> session | nil, err
-- Reads lines from input until end of input or ":quit". After a 354 the lines up to a lone
-- "." are the message: they are sent as typed (the caller dot-stuffs) and only the final
-- reply is awaited.
function raw.run(target, opts)
  local output = opts.output
  local s, err = smtp.connect(target, { timeout = opts.timeout })
  if not s then return nil, err end
  output:write(tostring(s.banner), "\n")
  output:flush()
  local in_message, body = false, {}
  while not s.closed do
    local line = opts.read_line and opts.read_line() or opts.input:read("l")
    if line == nil or (not in_message and line == ":quit") then break end
    if in_message then
      if line == "." then
        local reply, merr = s.core:message(table_concat(body, "\r\n") .. (#body > 0 and "\r\n" or ""))
        output:write(reply and tostring(reply) or ("! " .. tostring(merr)), "\n")
        in_message, body = false, {}
      else
        -- The person types the message as it goes on the wire; undo nothing, stuff nothing twice.
        body[#body + 1] = string_match(line, "^%.(%..*)$") or line
      end
    else
      local reply = send_line(s, line, output)
      if reply and reply.code == 354 and string_upper(line):match("^DATA") then in_message = true end
    end
    output:flush()
  end
  return s
end

return raw
