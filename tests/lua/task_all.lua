-- task_all.lua: task.all results, and the first failure by position.
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end

local results, err = task.all{
  task.spawn(function() task.sleep(0.1); return 1, "one" end),
  task.spawn(function() return end),
  task.spawn(function() task.sleep(0.05); return nil, 3 end),
}
if not results then error("task.all failed: " .. tostring(err)) end
eq(#results, 3, "number of result entries")
eq(results[1].n, 2, "results[1].n")
eq(results[1][1], 1, "results[1][1]")
eq(results[1][2], "one", "results[1][2]")
eq(results[2].n, 0, "results[2].n")
eq(results[3].n, 2, "results[3].n")
eq(results[3][1], nil, "results[3][1]")
eq(results[3][2], 3, "results[3][2]")

-- empty list
local empty, eerr = task.all{}
if type(empty) ~= "table" or #empty ~= 0 then error("task.all{} should be an empty list: " .. tostring(eerr)) end

-- failures: the first by position wins even if a later one failed earlier in time,
-- and task.all only returns after every task finished
local finished = false
local res2, err2 = task.all{
  task.spawn(function() return "fine" end),
  task.spawn(function() task.sleep(0.15); error("second-fails") end),
  task.spawn(function() error("third-fails-first") end),
  task.spawn(function() task.sleep(0.3); finished = true; return "slow" end),
}
eq(res2, nil, "task.all result with failures")
if not tostring(err2):find("second-fails", 1, true) then
  error("task.all should report the first failure by position, got " .. tostring(err2))
end
if not finished then error("task.all returned before every task finished") end

print("OK task_all")
