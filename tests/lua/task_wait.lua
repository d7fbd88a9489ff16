-- task_wait.lua: task.spawn arguments, task.wait results and failures.
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end

-- arguments reach the function, all return values come back
local t = task.spawn(function(a, b, c) task.sleep(0.05); return a + b, c, nil, "last" end, 2, 3, "x")
local r = table.pack(task.wait(t))
eq(r.n, 4, "number of values from task.wait")
eq(r[1], 5, "first value")
eq(r[2], "x", "second value")
eq(r[3], nil, "third value (nil)")
eq(r[4], "last", "fourth value")

-- a task that returns nothing
local none = task.spawn(function() end)
eq(select("#", task.wait(none)), 0, "values from a task that returns nothing")

-- waiting for a task that already finished
local early = task.spawn(function() return "early" end)
task.sleep(0.05)
eq(task.wait(early), "early", "wait on a finished task")

-- a task that raises: nil, err
local bad = task.spawn(function() task.sleep(0.01); error("boom-in-task") end)
local v, err = task.wait(bad)
eq(v, nil, "first value of a failed task")
if not tostring(err):find("boom-in-task", 1, true) then
  error("task.wait error should carry the message, got " .. tostring(err))
end

-- interleaving: shorter sleeps finish first
local order = {}
local ts = {}
for i, d in ipairs({0.3, 0.1, 0.2}) do
  ts[i] = task.spawn(function() task.sleep(d); order[#order + 1] = i end)
end
for i = 1, 3 do task.wait(ts[i]) end
eq(table.concat(order, ","), "2,3,1", "completion order")

print("OK task_wait")
