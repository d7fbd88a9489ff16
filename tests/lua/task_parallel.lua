-- task_parallel.lua: five tasks sleeping 0.3 s each run concurrently.
local ts = {}
for i = 1, 5 do
  ts[i] = task.spawn(function() task.sleep(0.3); return i * 10 end)
end
local results, err = task.all(ts)
if not results then error("task.all failed: " .. tostring(err)) end
for i = 1, 5 do
  if results[i][1] ~= i * 10 then error("task " .. i .. " returned " .. tostring(results[i][1])) end
end
print("OK task_parallel")
