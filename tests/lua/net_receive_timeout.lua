-- net_receive_timeout.lua PORT: against `tcp_peer.py silent` (never sends).
-- Two receives with a 0.5 s timeout each: about 1 s in all.
local port = assert(tonumber(arg[1]), "usage: net_receive_timeout.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local c, err = net.connect("127.0.0.1", port, {timeout = 5})
if not c then error("connect failed: " .. tostring(err)) end
c:settimeout(0.5)
-- timed here, not around the process (see net_connect_timeout.lua)
local started = task.now()
local line, rerr = c:receive("l")
eq(line, nil, "receive('l') from a silent peer")
eq(rerr and rerr.kind, "timeout", "err.kind of receive('l')")
local data, rerr2 = c:receive(5)
eq(data, nil, "receive(5) from a silent peer")
eq(rerr2 and rerr2.kind, "timeout", "err.kind of receive(5)")
local took = task.now() - started
-- a timeout does not break the connection
eq(c:send("still here\r\n"), 12, "send after a receive timeout")
c:close()
print(string.format("OK net_receive_timeout %.3f", took))
