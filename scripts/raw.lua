-- raw: type SMTP lines to a server and see its replies, like telnet, but nothing you type is
-- swallowed as a command of the tool (unlike `openssl s_client`, where a line starting with R
-- renegotiates). `:quit` leaves. The session is the transcript-keeping smtp session.
--
-- usage:  smtpsh raw HOST[:PORT] [--timeout SECONDS] [--trace]
-- input:  SMTP lines on stdin (a terminal or a pipe); after DATA's 354, message lines until "."
-- exit:   0 when the session ran, 1 when it could not connect, 2 on bad usage

local usage = "usage: smtpsh raw HOST[:PORT] [--timeout SECONDS]"
local target, timeout = nil, 30
local args = { ... }
local i = 1
while i <= #args do
  local word = args[i]
  if word == "--timeout" then
    i = i + 1
    timeout = tonumber(args[i])
    if not timeout or timeout <= 0 then
      io.stderr:write("smtpsh raw: --timeout needs a number of seconds above 0\n", usage, "\n")
      os.exit(2)
    end
  elseif word == "--help" then
    print(usage)
    os.exit(0)
  elseif word:sub(1, 1) == "-" or target then
    io.stderr:write("smtpsh raw: unexpected '", word, "'\n", usage, "\n")
    os.exit(2)
  else
    target = word
  end
  i = i + 1
end
if not target then
  io.stderr:write("smtpsh raw: missing HOST[:PORT]\n", usage, "\n")
  os.exit(2)
end

local raw = require "smtpsh.raw"
local ok, err = raw.run(target, { timeout = timeout, input = io.stdin, output = io.stdout })
if not ok then
  io.stderr:write("smtpsh raw: ", tostring(err), "\n")
  os.exit(1)
end
