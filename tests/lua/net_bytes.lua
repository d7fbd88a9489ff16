-- net_bytes.lua PORT: against `tcp_peer.py bytes` (sends exactly "0123456789", closes).
local port = assert(tonumber(arg[1]), "usage: net_bytes.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local function open()
  local c, err = net.connect("127.0.0.1", port)
  if not c then error("connect failed: " .. tostring(err), 2) end
  c:settimeout(5)
  return c
end

-- exact counts, then EOF
local c = open()
eq(c:receive(4), "0123", "receive(4)")
eq(c:receive(6), "456789", "receive(6)")
local data, err, partial = c:receive(1)
eq(data, nil, "receive(1) at EOF")
eq(err and err.kind, "closed", "err.kind after the last byte")
eq(partial, "", "partial after the last byte")
c:close()

-- asking for more than ever arrives: nil, closed, and everything that did arrive
c = open()
data, err, partial = c:receive(20)
eq(data, nil, "receive(20) of a 10-byte stream")
eq(err and err.kind, "closed", "err.kind for a short stream")
eq(partial, "0123456789", "partial of a short stream")
c:close()

-- a line that never ends
c = open()
data, err, partial = c:receive("l")
eq(data, nil, "receive('l') without newline")
eq(err and err.kind, "closed", "err.kind for an unterminated line")
eq(partial, "0123456789", "partial of an unterminated line")
c:close()

print("OK net_bytes")
