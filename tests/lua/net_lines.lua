-- net_lines.lua PORT: against `tcp_peer.py lines "hello world" "second line"` (an echo server).
local port = assert(tonumber(arg[1]), "usage: net_lines.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end

local c, err = net.connect("127.0.0.1", port, {timeout = 5})
if not c then error("connect failed: " .. tostring(err)) end
c:settimeout(5)

eq(c:receive("l"), "hello world", "first greeting line")
eq(c:receive("l"), "second line", "second greeting line")

eq(c:send("ping\r\n"), 6, "send returns the number of bytes")
eq(c:receive("l"), "ping", "echoed line")

-- several lines in one send, bare LF from the client side too (the peer answers CRLF)
eq(c:send("a\r\nb\nc\r\n"), 8, "send of three lines")
eq(c:receive("l"), "a", "line a")
eq(c:receive("l"), "b", "line b")
eq(c:receive("l"), "c", "line c")

-- receive(n) returns exactly n bytes, CRLF included
eq(c:send("hello\r\n"), 7, "send hello")
eq(c:receive(3), "hel", "receive(3)")
eq(c:receive(4), "lo\r\n", "receive(4)")

-- mixing receive(n) and receive("l") on the same buffer
c:send("xyz\r\n")
eq(c:receive(1), "x", "receive(1) before a line")
eq(c:receive("l"), "yz", "rest of the line")

-- an empty line is an empty string, not nil
c:send("\r\n")
eq(c:receive("l"), "", "empty line")

c:close()
print("OK net_lines")
