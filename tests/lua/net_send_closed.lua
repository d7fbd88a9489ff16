-- net_send_closed.lua PORT: against `tcp_peer.py partial` (sends "abc", then closes).
-- Sending to a peer that closed ends in nil, err with err.kind == "closed", within a
-- bounded number of sends; so does sending on a connection closed locally.
local port = assert(tonumber(arg[1]), "usage: net_send_closed.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local c, err = net.connect("127.0.0.1", port)
if not c then error("connect failed: " .. tostring(err)) end
c:settimeout(5)
local _, rerr, partial = c:receive("l")   -- wait until the peer has closed
eq(rerr and rerr.kind, "closed", "receive before the sends")
eq(partial, "abc", "partial before the sends")

local block = string.rep("z", 1024)
local failed_at, serr
for i = 1, 50 do
  local n, e = c:send(block)
  if n == nil then failed_at, serr = i, e; break end
  eq(n, #block, "bytes sent while the peer's close is not yet known")
  task.sleep(0.02)
end
if not failed_at then error("50 sends to a closed peer all succeeded") end
eq(serr.kind, "closed", "err.kind of a send to a closed peer")
if type(serr.stage) ~= "string" or #serr.stage == 0 then error("err.stage missing") end
if #tostring(serr) < 10 then error("tostring(err) too short: " .. tostring(serr)) end
c:close()

local ok, n, e = pcall(c.send, c, "after close\r\n")
if not ok then error("send after close raised instead of returning nil, err: " .. tostring(n)) end
eq(n, nil, "send after close")
eq(e and e.kind, "closed", "err.kind of a send after close")
print("OK net_send_closed")
