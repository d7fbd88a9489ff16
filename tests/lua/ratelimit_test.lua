-- stdlib/ratelimit.lua: token buckets on a fake clock, then tasks sharing one in real time.
local t = dofile("tests/lua/testing.lua")
local ratelimit = require "smtpsh.ratelimit"
local task = require "smtpsh.task"

local function clock()
  local c = { t = 1000, slept = {} }
  function c.now() return c.t end
  function c.sleep(s) c.slept[#c.slept + 1] = s; c.t = c.t + s end
  return c
end

local function near(actual, expected, msg)
  t.ok(math.abs(actual - expected) < 1e-9, (msg and msg .. ": " or "") .. "expected " .. expected .. ", got " .. actual)
end

t.test("a new key starts with a full bucket", function()
  local c = clock()
  local l = ratelimit.new { rate = 1, burst = 3, now = c.now, sleep = c.sleep }
  t.eq(l:available("a"), 3)
  t.eq(l:take("a"), true)
  t.eq(l:take("a"), true)
  t.eq(l:take("a"), true)
  local ok, wait = l:take("a")
  t.eq(ok, false)
  near(wait, 1, "wait for one token at 1/s")
end)

t.test("refill at the rate", function()
  local c = clock()
  local l = ratelimit.new { rate = 4, burst = 2, now = c.now, sleep = c.sleep }
  t.ok(l:take("k", 2))
  local ok, wait = l:take("k")
  t.eq(ok, false)
  near(wait, 0.25)
  c.t = c.t + 0.1
  ok, wait = l:take("k")
  t.eq(ok, false)
  near(wait, 0.15, "0.4 of a token after 0.1 s")
  c.t = c.t + 0.15
  t.eq(l:take("k"), true)
  near(l:available("k"), 0)
  c.t = c.t + 0.375
  near(l:available("k"), 1.5)
  t.eq(l:take("k"), true)
  near(l:available("k"), 0.5)
end)

t.test("the bucket never holds more than the burst", function()
  local c = clock()
  local l = ratelimit.new { rate = 10, burst = 5, now = c.now, sleep = c.sleep }
  t.ok(l:take("k", 5))
  c.t = c.t + 3600
  t.eq(l:available("k"), 5)
  for _ = 1, 5 do t.eq(l:take("k"), true) end
  t.eq((l:take("k")), false)
end)

t.test("a failed take takes nothing", function()
  local c = clock()
  local l = ratelimit.new { rate = 1, burst = 4, now = c.now, sleep = c.sleep }
  t.ok(l:take("k", 3))
  local ok, wait = l:take("k", 2)
  t.eq(ok, false)
  near(wait, 1)
  near(l:available("k"), 1)
  t.eq(l:take("k", 1), true)
  t.eq(l:take("k", 0), true)
end)

t.test("keys are separate", function()
  local c = clock()
  local l = ratelimit.new { rate = 1, burst = 1, now = c.now, sleep = c.sleep }
  t.eq(l:take("gmail.com"), true)
  t.eq((l:take("gmail.com")), false)
  t.eq(l:take("outlook.com"), true)
  t.eq(l:take("192.0.2.1"), true)
  t.eq((l:take("outlook.com")), false)
  c.t = c.t + 1
  t.eq(l:take("gmail.com"), true)
  t.eq(l:take("outlook.com"), true)
end)

t.test("reset forgets a key", function()
  local c = clock()
  local l = ratelimit.new { rate = 0.1, burst = 2, now = c.now, sleep = c.sleep }
  t.ok(l:take("k", 2))
  t.ok(l:take("other", 2))
  l:reset("k")
  t.eq(l:available("k"), 2)
  near(l:available("other"), 0)
end)

t.test("wait sleeps exactly until the tokens are there", function()
  local c = clock()
  local l = ratelimit.new { rate = 2, burst = 1, now = c.now, sleep = c.sleep }
  t.eq(l:wait("k"), 0)
  t.eq(c.slept, {})
  near(l:wait("k"), 0.5)
  c.t = c.t + 0.2
  near(l:wait("k"), 0.3, "the 0.2 s that passed count")
  t.eq(#c.slept, 2)
  near(c.slept[2], 0.3)
  local l3 = ratelimit.new { rate = 10, burst = 3, now = c.now, sleep = c.sleep }
  t.ok(l3:take("k", 3))
  near(l3:wait("k", 3), 0.3)
end)

t.test("wait checks again after sleeping: someone else may have taken the token", function()
  local c = clock()
  local l
  local thief = 1
  local sleeps = 0
  l = ratelimit.new { rate = 1, burst = 1, now = c.now, sleep = function(s)
    sleeps = sleeps + 1
    c.t = c.t + s
    -- another task takes the token while this one sleeps, once
    if thief > 0 then thief = thief - 1; t.eq(l:take("k"), true) end
  end }
  t.ok(l:take("k"))
  near(l:wait("k"), 2)
  t.eq(sleeps, 2)
end)

t.test("bad arguments are errors", function()
  t.raises(function() ratelimit.new() end, "opts must be a table")
  t.raises(function() ratelimit.new { rate = 0 } end, "rate must be a finite number above 0")
  t.raises(function() ratelimit.new { rate = -1 } end, "rate must be")
  t.raises(function() ratelimit.new { rate = 1, burst = 0.5 } end, "burst must be")
  local l = ratelimit.new { rate = 1, burst = 2 }
  t.raises(function() l:take(42) end, "key must be a string")
  t.raises(function() l:take("k", 3) end, "n must be a number from 0 to the burst")
  t.raises(function() l:wait("k", -1) end, "n must be")
  t.raises(function() l:wait(nil) end, "key must be a string")
end)

t.test("real time: 5 tasks share a key at 20/s, burst 1: no overdraw", function()
  local l = ratelimit.new { rate = 20, burst = 1 }
  local times = {}
  local started = task.now()
  local tasks = {}
  for i = 1, 5 do
    tasks[i] = task.spawn(function()
      for _ = 1, 2 do
        l:wait("mx.example.net")
        times[#times + 1] = task.now()
      end
      return i
    end)
  end
  for i = 1, 5 do t.eq(task.wait(tasks[i]), i) end
  local elapsed = task.now() - started
  t.eq(#times, 10)
  t.ok(elapsed >= 0.35 and elapsed <= 1.5, "elapsed " .. elapsed)
  table.sort(times)
  for i = 2, #times do
    local gap = times[i] - times[i - 1]
    t.ok(gap >= 0.045, "take " .. i .. " only " .. gap .. " s after the one before")
  end
  -- the bucket is empty, not in debt
  t.ok(l:available("mx.example.net") >= 0)
end)

t.run()
