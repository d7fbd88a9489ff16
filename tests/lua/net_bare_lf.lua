-- net_bare_lf.lua PORT: against `tcp_peer.py bare-lf` (sends "one\ntwo\r\nthree\n").
local port = assert(tonumber(arg[1]), "usage: net_bare_lf.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local c, err = net.connect("127.0.0.1", port)
if not c then error("connect failed: " .. tostring(err)) end
c:settimeout(5)
eq(c:receive("l"), "one", "line ended by a bare LF")
eq(c:receive("l"), "two", "line ended by CRLF")
eq(c:receive("l"), "three", "last line ended by a bare LF")
c:close()
print("OK net_bare_lf")
