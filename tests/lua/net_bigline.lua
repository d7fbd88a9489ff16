-- net_bigline.lua PORT N: against `tcp_peer.py lines <N times "y">`: a long line under
-- the 64 KiB limit arrives whole.
local port = assert(tonumber(arg[1]), "usage: net_bigline.lua PORT N")
local n = assert(tonumber(arg[2]), "usage: net_bigline.lua PORT N")
local c, err = net.connect("127.0.0.1", port)
if not c then error("connect failed: " .. tostring(err)) end
c:settimeout(5)
local line, rerr = c:receive("l")
if line ~= string.rep("y", n) then
  error(string.format("long line: got %s bytes (err %s), want %d",
        line and #line or "nil", tostring(rerr), n))
end
c:close()
print("OK net_bigline")
