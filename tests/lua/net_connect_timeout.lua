-- net_connect_timeout.lua PORT: against `tcp_peer.py backlog` (connects stall).
local port = assert(tonumber(arg[1]), "usage: net_connect_timeout.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
-- The deadline is timed here, not by the test around the process: a slowed-down binary
-- (valgrind) takes seconds to start, and that is not the deadline's doing.
local started = task.now()
local c, err = net.connect("127.0.0.1", port, {timeout = 0.5})
local took = task.now() - started
eq(c, nil, "net.connect to a stalled listener")
if err == nil then error("net.connect returned neither a connection nor an error") end
eq(err.kind, "timeout", "err.kind")
if type(err.stage) ~= "string" or #err.stage == 0 then
  error("err.stage should be a non-empty string, got " .. tostring(err.stage))
end
local s = tostring(err)
if #s < 10 or s:match("^table: ") then error("tostring(err) is not readable: " .. s) end
print(string.format("OK net_connect_timeout %.3f", took))
