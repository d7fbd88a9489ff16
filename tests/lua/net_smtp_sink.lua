-- net_smtp_sink.lua PORT: a plain SMTP exchange with postfix's smtp-sink.
local port = assert(tonumber(arg[1]), "usage: net_smtp_sink.lua PORT")
local function fail(fmt, ...) error(string.format(fmt, ...), 2) end
local c, err = net.connect("127.0.0.1", port, {timeout = 5})
if not c then fail("connect failed: %s", tostring(err)) end
c:settimeout(5)

local banner, berr = c:receive("l")
if not banner or not banner:match("^220[ -]") then
  fail("banner: got %q (%s)", tostring(banner), tostring(berr))
end

if c:send("EHLO x\r\n") ~= 8 then fail("send EHLO") end
local lines = {}
for _ = 1, 50 do
  local line, lerr = c:receive("l")
  if not line then fail("EHLO reply cut short after %d lines: %s", #lines, tostring(lerr)) end
  lines[#lines + 1] = line
  if not line:match("^250%-") then break end
end
if #lines < 2 then fail("EHLO reply should be multi-line, got %d line(s)", #lines) end
if not lines[#lines]:match("^250 ") then fail("last EHLO line: %q", lines[#lines]) end
for i = 1, #lines - 1 do
  if not lines[i]:match("^250%-") then fail("EHLO line %d: %q", i, lines[i]) end
end

c:send("QUIT\r\n")
local bye = c:receive("l")
if not bye or not bye:match("^221") then fail("QUIT reply: %q", tostring(bye)) end
c:close()
print("OK net_smtp_sink " .. #lines)
