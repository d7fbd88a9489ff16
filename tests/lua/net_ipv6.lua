-- net_ipv6.lua PORT: against `tcp_peer.py lines "v6 hello" --host ::1`.
local port = assert(tonumber(arg[1]), "usage: net_ipv6.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local c, err = net.connect("::1", port, {timeout = 5})
if not c then error("connect to ::1 failed: " .. tostring(err)) end
c:settimeout(5)
eq(c.remote_addr, "[::1]:" .. port, "remote_addr")
if not tostring(c.local_addr):match("^%[::1%]:%d+$") then
  error("local_addr should look like [::1]:PORT, got " .. tostring(c.local_addr))
end
eq(c:receive("l"), "v6 hello", "greeting over IPv6")
eq(c:send("six\r\n"), 5, "send over IPv6")
eq(c:receive("l"), "six", "echo over IPv6")
c:close()
print("OK net_ipv6")
