-- stdlib/retry.lua: backoff, budget, jitter and the transient predicate, on a fake clock.
local t = dofile("tests/lua/testing.lua")
local retry = require "smtpsh.retry"
local task = require "smtpsh.task"

-- A fake clock: sleep advances it, nothing really waits. `cost` is what each call of the
-- step function adds (how long an attempt takes).
local function clock()
  local c = { t = 100, slept = {} }
  function c.now() return c.t end
  function c.sleep(s) c.slept[#c.slept + 1] = s; c.t = c.t + s end
  return c
end

local timeout = { kind = "timeout", stage = "connect", message = "timed out" }
local closed = { kind = "closed", stage = "data", message = "connection closed" }
local function reply_err(code) return { kind = "reply", stage = "rcpt", reply = { code = code } } end

-- A step that fails with the given errors in turn, then succeeds with "done".
local function failing(c, errors, cost)
  local calls = {}
  return function(attempt)
    calls[#calls + 1] = attempt
    c.t = c.t + (cost or 0)
    local err = errors[attempt]
    if err then return nil, err end
    return "done"
  end, calls
end

t.test("success on the third try", function()
  local c = clock()
  local fn, calls = failing(c, { timeout, closed })
  local value, err, log = retry.run(fn, { sleep = c.sleep, now = c.now, jitter = 0 })
  t.eq(value, "done")
  t.eq(err, nil)
  t.eq(calls, { 1, 2, 3 })
  t.eq(c.slept, { 1, 2 })
  t.eq(#log, 3)
  t.eq(log[1], { attempt = 1, at = 0, took = 0, ok = false, err = timeout, delay = 1 })
  t.eq(log[2], { attempt = 2, at = 1, took = 0, ok = false, err = closed, delay = 2 })
  t.eq(log[3], { attempt = 3, at = 3, took = 0, ok = true, delay = 0 })
end)

t.test("all of fn's results on success, attempts' durations in the log", function()
  local c = clock()
  local value, extra, log = retry.run(function(attempt)
    c.t = c.t + 0.5
    if attempt == 1 then return false, timeout end
    return { code = 250 }, "note"
  end, { sleep = c.sleep, now = c.now, jitter = 0, backoff = 2 })
  t.eq(value, { code = 250 })
  t.eq(extra, "note")
  t.eq(log[1].took, 0.5)
  t.eq(log[1].ok, false)
  t.eq(log[2].at, 2.5)
end)

t.test("a permanent error stops at once", function()
  local c = clock()
  local fn, calls = failing(c, { reply_err(550), timeout })
  local value, err, log = retry.run(fn, { sleep = c.sleep, now = c.now, tries = 5 })
  t.eq(value, nil)
  t.eq(err, reply_err(550))
  t.eq(calls, { 1 })
  t.eq(c.slept, {})
  t.eq(log[1].stopped, "permanent")
  t.eq(log[1].delay, 0)
end)

t.test("tries exhausted: the last error", function()
  local c = clock()
  local errs = { timeout, closed, reply_err(451), reply_err(421) }
  local fn, calls = failing(c, errs)
  local value, err, log = retry.run(fn, { sleep = c.sleep, now = c.now, tries = 4, jitter = 0 })
  t.eq(value, nil)
  t.eq(err, reply_err(421))
  t.eq(calls, { 1, 2, 3, 4 })
  t.eq(c.slept, { 1, 2, 4 })
  t.eq(#log, 4)
  t.eq(log[4].stopped, "tries")
  t.eq(log[4].delay, 0)
  t.eq(log[3].stopped, nil)
end)

t.test("one try: no retry at all", function()
  local c = clock()
  local fn, calls = failing(c, { timeout })
  local _, err = retry.run(fn, { sleep = c.sleep, now = c.now, tries = 1 })
  t.eq(err, timeout)
  t.eq(calls, { 1 })
  t.eq(c.slept, {})
end)

t.test("budget: no retry whose delay would end past it", function()
  local c = clock()
  local fn, calls = failing(c, { timeout, timeout, timeout, timeout, timeout, timeout }, 1)
  -- attempts take 1 s: 1 fails at 1, sleeps 1 -> 2; fails at 3, sleeps 2 -> 5; fails at 6,
  -- a 4 s delay would end at 10 > 9
  local value, err, log = retry.run(fn, { sleep = c.sleep, now = c.now, tries = 10, jitter = 0,
                                          budget = 9 })
  t.eq(value, nil)
  t.eq(err, timeout)
  t.eq(calls, { 1, 2, 3 })
  t.eq(c.slept, { 1, 2 })
  t.eq(log[3].stopped, "budget")
  t.eq(log[3].delay, 0)
  -- delays that end exactly at the budget are fine
  c = clock()
  fn, calls = failing(c, { timeout, timeout })
  t.eq(retry.run(fn, { sleep = c.sleep, now = c.now, tries = 10, jitter = 0, budget = 3 }), "done")
  t.eq(calls, { 1, 2, 3 })
  t.eq(c.slept, { 1, 2 })
end)

t.test("a budget of zero: a single attempt", function()
  local c = clock()
  local fn, calls = failing(c, { timeout, timeout })
  local _, _, log = retry.run(fn, { sleep = c.sleep, now = c.now, budget = 0 })
  t.eq(calls, { 1 })
  t.eq(log[1].stopped, "budget")
end)

t.test("backoff doubles up to max_delay", function()
  local c = clock()
  local errs = {}
  for i = 1, 9 do errs[i] = timeout end
  local fn = failing(c, errs)
  retry.run(fn, { sleep = c.sleep, now = c.now, tries = 10, jitter = 0, backoff = 0.5,
                  max_delay = 10 })
  t.eq(c.slept, { 0.5, 1, 2, 4, 8, 10, 10, 10, 10 })
end)

t.test("a custom factor", function()
  local c = clock()
  local fn = failing(c, { timeout, timeout, timeout })
  retry.run(fn, { sleep = c.sleep, now = c.now, tries = 4, jitter = 0, backoff = 2, factor = 3 })
  t.eq(c.slept, { 2, 6, 18 })
  c = clock()
  fn = failing(c, { timeout, timeout, timeout })
  retry.run(fn, { sleep = c.sleep, now = c.now, tries = 4, jitter = 0, factor = 1, backoff = 5 })
  t.eq(c.slept, { 5, 5, 5 })
end)

t.test("retry.delays: the schedule without jitter", function()
  t.eq(retry.delays(), { 1, 2 })
  t.eq(retry.delays { tries = 5 }, { 1, 2, 4, 8 })
  t.eq(retry.delays { tries = 8, backoff = 60, max_delay = 600 }, { 60, 120, 240, 480, 600, 600, 600 })
  t.eq(retry.delays { tries = 1 }, {})
  t.eq(retry.delays { tries = 10, budget = 10 }, { 1, 2, 4 })
  -- jitter does not change the schedule shown
  t.eq(retry.delays { tries = 3, jitter = 1 }, { 1, 2 })
end)

t.test("jitter: over 200 runs every delay is within [1-j, 1+j] of its base", function()
  local low, high = math.huge, -math.huge
  local distinct = {}
  for _ = 1, 200 do
    local c = clock()
    local fn = failing(c, { timeout, timeout, timeout, timeout })
    retry.run(fn, { sleep = c.sleep, now = c.now, tries = 5, jitter = 0.25, backoff = 2 })
    t.eq(#c.slept, 4)
    local base = 2
    for _, d in ipairs(c.slept) do
      local ratio = d / base
      t.ok(ratio >= 0.75 - 1e-12 and ratio <= 1.25 + 1e-12, "delay " .. d .. " for base " .. base)
      low, high = math.min(low, ratio), math.max(high, ratio)
      distinct[d] = true
      base = base * 2
    end
  end
  -- it really varies, and spreads over most of the range
  t.ok(low < 0.8 and high > 1.2, "ratios from " .. low .. " to " .. high)
  local n = 0
  for _ in pairs(distinct) do n = n + 1 end
  t.ok(n > 100, n .. " distinct delays")
end)

t.test("jitter uses the random source: its extremes are the bounds", function()
  for _, r in ipairs { 0, 0.5, 1 } do
    local c = clock()
    local fn = failing(c, { timeout })
    retry.run(fn, { sleep = c.sleep, now = c.now, jitter = 0.2, backoff = 10,
                    random = function() return r end })
    t.ok(math.abs(c.slept[1] - 10 * (0.8 + 0.4 * r)) < 1e-9, "random " .. r .. ": " .. c.slept[1])
  end
end)

t.test("a custom predicate sees err and value", function()
  local c = clock()
  local seen = {}
  local value, err = retry.run(function(attempt)
    if attempt < 3 then return false, "busy" end
    return nil, "gone"
  end, {
    sleep = c.sleep, now = c.now, tries = 10,
    transient = function(e, v) seen[#seen + 1] = { e, v }; return e == "busy" end,
  })
  t.eq(value, nil)
  t.eq(err, "gone")
  t.eq(seen, { { "busy", false }, { "busy", false }, { "gone" } })
  -- a predicate that retries everything, even a 5xx
  local fn, calls = failing(c, { reply_err(550), reply_err(554) })
  t.eq(retry.run(fn, { sleep = c.sleep, now = c.now, transient = function() return true end }), "done")
  t.eq(calls, { 1, 2, 3 })
end)

t.test("on_retry is called before each sleep", function()
  local c = clock()
  local calls = {}
  local fn = failing(c, { timeout, closed, reply_err(550) })
  retry.run(fn, {
    sleep = c.sleep, now = c.now, tries = 5, jitter = 0, backoff = 3,
    on_retry = function(attempt, err, delay)
      calls[#calls + 1] = { attempt, err.kind, delay, #c.slept }
    end,
  })
  t.eq(calls, { { 1, "timeout", 3, 0 }, { 2, "closed", 6, 1 } })
end)

t.test("retry.transient", function()
  t.eq(retry.transient(timeout), true)
  t.eq(retry.transient(closed), true)
  t.eq(retry.transient(reply_err(421)), true)
  t.eq(retry.transient(reply_err(450)), true)
  t.eq(retry.transient(reply_err(499)), true)
  t.eq(retry.transient(reply_err(500)), false)
  t.eq(retry.transient(reply_err(550)), false)
  t.eq(retry.transient(reply_err(399)), false)
  t.eq(retry.transient({ kind = "reply" }), false)
  t.eq(retry.transient({ kind = "dns", rcode = "SERVFAIL" }), true)
  t.eq(retry.transient({ kind = "dns", rcode = "timeout" }), true)
  t.eq(retry.transient({ kind = "dns", rcode = "NXDOMAIN" }), false)
  t.eq(retry.transient({ kind = "dns", rcode = "REFUSED" }), false)
  t.eq(retry.transient({ kind = "refused" }), false)
  t.eq(retry.transient({ kind = "tls" }), false)
  t.eq(retry.transient({ kind = "protocol" }), false)
  t.eq(retry.transient("timeout"), false)
  t.eq(retry.transient(nil), false)
end)

t.test("bad options are errors", function()
  t.raises(function() retry.run("x") end, "fn must be a function")
  t.raises(function() retry.run(print, { tries = 0 }) end, "tries must be a number 1 or more")
  t.raises(function() retry.run(print, { tries = 2.5 }) end, "tries must be a whole number")
  t.raises(function() retry.run(print, { jitter = 1.5 }) end, "jitter must be a number 0..1")
  t.raises(function() retry.run(print, { backoff = -1 }) end, "backoff must be a number 0 or more")
  t.raises(function() retry.run(print, { sleep = 5 }) end, "sleep must be a function")
  t.raises(function() retry.delays("x") end, "opts must be a table")
end)

t.test("real sleeping: backoff 0.05, 0.1, 0.2 takes about 0.35 s", function()
  local started = task.now()
  local fn, calls = failing({ t = 0 }, { timeout, timeout, timeout })
  local value, _, log = retry.run(fn, { tries = 4, backoff = 0.05, jitter = 0.1 })
  local elapsed = task.now() - started
  t.eq(value, "done")
  t.eq(calls, { 1, 2, 3, 4 })
  t.ok(elapsed >= 0.315 - 0.005 and elapsed < 2.0, "elapsed " .. elapsed)
  t.ok(log[4].at >= 0.31 and log[4].at < 2.0, "last attempt at " .. log[4].at)
  t.ok(log[2].at - log[1].at >= log[1].delay - 0.005, "slept the first delay")
end)

t.run()
