-- net_concurrent.lua PORT: against `tcp_peer.py silent`. Three tasks each wait 0.5 s for a
-- line that never comes; run concurrently that takes ~0.5 s, not 1.5 s.
local port = assert(tonumber(arg[1]), "usage: net_concurrent.lua PORT")
local function probe(i)
  local c, err = net.connect("127.0.0.1", port, {timeout = 5})
  if not c then error("connect " .. i .. " failed: " .. tostring(err)) end
  c:settimeout(0.5)
  local line, rerr = c:receive("l")
  c:close()
  if line ~= nil then error("task " .. i .. " got a line from a silent peer") end
  return rerr.kind
end
local ts = {}
for i = 1, 3 do ts[i] = task.spawn(probe, i) end
local results, err = task.all(ts)
if not results then error("task.all failed: " .. tostring(err)) end
for i = 1, 3 do
  if results[i][1] ~= "timeout" then
    error("task " .. i .. ": err.kind " .. tostring(results[i][1]) .. ", want timeout")
  end
end
print("OK net_concurrent")
