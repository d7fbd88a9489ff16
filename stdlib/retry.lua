-- retry: run a step again after transient failures, with exponential backoff and jitter.
--
--   local retry = require "smtpsh.retry"
--   local reply, err, log = retry.run(function(attempt)
--     return smtp.connect("mx.example.com")          -- value, or nil, err
--   end, {tries = 5, backoff = 2, budget = 60})
--
-- retry.run(fn, opts) -> value, extra, log   on the first success
--                     -> nil, err, log       when the last attempt failed, an error was not
--                                            transient, or the budget would be overrun
--   fn is called as fn(attempt) (1, 2, ...) and answers in the LuaSocket convention: a value
--   (not nil, not false) is a success, nil/false plus err a failure. On success run returns
--   fn's first two results (the second is normally nil) and the log. Errors raised by fn are
--   not caught: they are bugs, not failures.
--   log is a list, one entry per attempt:
--     {attempt = n, at = seconds since run started (when the attempt began),
--      took = seconds the attempt took, ok = bool, err = err (failures only),
--      delay = seconds slept after it (0 for the last),
--      stopped = "permanent" | "tries" | "budget" (on the last failure: why it gave up)}
--
-- opts (all optional):
--   tries      maximum attempts, default 3
--   backoff    first delay in seconds, default 1
--   factor     each delay is the previous one times factor, default 2
--   max_delay  cap on a delay before jitter, default 300
--   jitter     fraction 0..1, default 0.2: each delay is multiplied by a random factor in
--              [1 - jitter, 1 + jitter], so many clients do not retry in lockstep
--   budget     total seconds: no retry is started whose delay would end past the budget
--   transient  predicate(err, value) -> bool, default retry.transient: false stops at once
--   on_retry   callback(attempt, err, delay), called before sleeping
--   sleep, now, random  default task.sleep, task.now, math.random (replaceable for tests)
--
-- retry.transient(err) -> bool: worth retrying? True for a dropped connection (kind "closed"),
--   a timeout, a 4xx reply (kind "reply", err.reply.code 400..499) and a DNS SERVFAIL or
--   timeout (kind "dns", err.rcode "SERVFAIL"/"timeout"); false for everything else (5xx,
--   refused, tls, NXDOMAIN, invalid input, strings, nil).
--
-- retry.delays(opts) -> {d1, d2, ...}: the delays run would sleep, without jitter (tries - 1
--   of them, fewer when the budget runs out), for showing a schedule:
--   retry.delays{tries = 5}  -> {1, 2, 4, 8}

local task = require "smtpsh.task"

local type, error, tostring, tonumber = type, error, tostring, tonumber
local math_min, math_random, math_type, math_huge = math.min, math.random, math.type, math.huge
local task_sleep, task_now = task.sleep, task.now

local retry = {}

function retry.transient(err)
  if type(err) ~= "table" then return false end
  local kind = err.kind
  if kind == "closed" or kind == "timeout" then return true end
  if kind == "reply" then
    local reply = err.reply
    local code = type(reply) == "table" and tonumber(reply.code) or nil
    return code ~= nil and code >= 400 and code <= 499
  end
  if kind == "dns" then return err.rcode == "SERVFAIL" or err.rcode == "timeout" end
  return false
end

local function check_number(name, value, low, high)
  if type(value) ~= "number" or value ~= value or value < low or (high and value > high) then
    local range = high and (low .. ".." .. high) or (low .. " or more")
    error("retry: " .. name .. " must be a number " .. range .. ", got " .. tostring(value), 4)
  end
  return value
end

local function check_function(name, value)
  if type(value) ~= "function" then
    error("retry: " .. name .. " must be a function, got " .. type(value), 4)
  end
  return value
end

local function options(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("retry: opts must be a table, got " .. type(opts), 3) end
  local o = {
    tries = check_number("tries", opts.tries or 3, 1),
    backoff = check_number("backoff", opts.backoff or 1, 0),
    factor = check_number("factor", opts.factor or 2, 0),
    max_delay = check_number("max_delay", opts.max_delay or 300, 0),
    jitter = check_number("jitter", opts.jitter or 0.2, 0, 1),
    budget = opts.budget ~= nil and check_number("budget", opts.budget, 0) or nil,
    transient = check_function("transient", opts.transient or retry.transient),
    sleep = check_function("sleep", opts.sleep or task_sleep),
    now = check_function("now", opts.now or task_now),
    random = check_function("random", opts.random or math_random),
    on_retry = opts.on_retry ~= nil and check_function("on_retry", opts.on_retry) or nil,
  }
  if math_type(o.tries) ~= "integer" and o.tries ~= math_huge and o.tries % 1 ~= 0 then
    error("retry: tries must be a whole number, got " .. tostring(o.tries), 3)
  end
  return o
end

-- The delay after failure number n, before jitter.
local function base_delay(o, n)
  return math_min(o.backoff * o.factor ^ (n - 1), o.max_delay)
end

function retry.delays(opts)
  local o = options(opts)
  local out, total = {}, 0
  for n = 1, o.tries - 1 do
    local delay = base_delay(o, n)
    total = total + delay
    if o.budget and total > o.budget then break end
    out[n] = delay
  end
  return out
end

function retry.run(fn, opts)
  if type(fn) ~= "function" then error("retry.run: fn must be a function, got " .. type(fn), 2) end
  local o = options(opts)
  local now, start = o.now, o.now()
  local log = {}
  local attempt = 0
  while true do
    attempt = attempt + 1
    local began = now() - start
    local value, err = fn(attempt)
    local entry = { attempt = attempt, at = began, took = now() - start - began,
                    ok = value ~= nil and value ~= false, delay = 0 }
    log[attempt] = entry
    if entry.ok then return value, err, log end
    entry.err = err
    if not o.transient(err, value) then
      entry.stopped = "permanent"
      return nil, err, log
    end
    if attempt >= o.tries then
      entry.stopped = "tries"
      return nil, err, log
    end
    local jitter = o.jitter
    local delay = base_delay(o, attempt) * (1 + jitter * (2 * o.random() - 1))
    if o.budget and now() - start + delay > o.budget then
      entry.stopped = "budget"
      return nil, err, log
    end
    entry.delay = delay
    if o.on_retry then o.on_retry(attempt, err, delay) end
    o.sleep(delay)
  end
end

return retry
