-- net_longline.lua PORT: against `tcp_peer.py longline 70000` (no newline, then waits).
local port = assert(tonumber(arg[1]), "usage: net_longline.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local c, err = net.connect("127.0.0.1", port)
if not c then error("connect failed: " .. tostring(err)) end
c:settimeout(5)
local line, rerr = c:receive("l")
eq(line, nil, "receive('l') of a 70000-byte line")
if rerr == nil then error("no error for an overlong line") end
eq(rerr.kind, "protocol", "err.kind")
local s = tostring(rerr)
if not s:find("line too long", 1, true) then
  error("tostring(err) should mention 'line too long': " .. s)
end
c:close()
print("OK net_longline")
