-- ratelimit: token buckets per key, to pace connections or messages per domain, MX or IP.
--
--   local ratelimit = require "smtpsh.ratelimit"
--   local limiter = ratelimit.new{rate = 2, burst = 5}   -- 2 per second, up to 5 at once
--   if limiter:take("gmail.com") then ... end            -- non-blocking
--   limiter:wait("mx1.example.net")                       -- sleeps until a token is free
--
-- ratelimit.new{rate = R, burst = B [, now = fn, sleep = fn]} -> limiter
--   rate   tokens added per second (> 0)
--   burst  bucket size (>= 1, default 1): the most that can be taken at once after a pause.
--          A key's bucket starts full.
--   now, sleep  default task.now and task.sleep (replaceable for tests)
--
-- limiter:take(key [, n = 1]) -> true                       when n tokens are there (taken)
--                             -> false, seconds_until_available   otherwise (nothing taken)
-- limiter:wait(key [, n = 1]) -> seconds waited: sleeps until n tokens can be taken, takes
--   them. Safe from many tasks at once: a take is atomic (tasks only switch at yields) and
--   a waiter checks again after every sleep, so waiters that wake together never overdraw;
--   the ones that lose sleep again. Waiters are not served in strict FIFO order.
-- limiter:available(key) -> tokens in the key's bucket now (a float, up to burst)
-- limiter:reset(key)     -> forgets the key: its bucket is full again
--
-- Keys are strings (a domain, an MX host, an IP). n must be between 0 and burst: a take
-- larger than the bucket could never succeed, so it is an error.

local task = require "smtpsh.task"

local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local math_min = math.min
local task_sleep, task_now = task.sleep, task.now

local ratelimit = {}

local Limiter = {}
-- Its objects' metatable is a table of its own: with Limiter.__index = Limiter, obj.__index
-- would hand a sandboxed recipe the class itself, writable.
local limiter_meta = { __index = Limiter }

-- Float arithmetic may leave a refilled bucket a hair short of a whole token.
local EPSILON = 1e-9

local function check_positive(name, value, minimum)
  if type(value) ~= "number" or value ~= value or value < minimum or value == 1 / 0 then
    error("ratelimit.new: " .. name .. " must be a finite number, " .. minimum .. " or more, got "
          .. tostring(value), 3)
  end
  return value
end

function ratelimit.new(opts)
  if type(opts) ~= "table" then error("ratelimit.new: opts must be a table, got " .. type(opts), 2) end
  if type(opts.rate) ~= "number" or not (opts.rate > 0) or opts.rate == 1 / 0 then
    error("ratelimit.new: rate must be a finite number above 0, got " .. tostring(opts.rate), 2)
  end
  local now, sleep = opts.now or task_now, opts.sleep or task_sleep
  if type(now) ~= "function" then error("ratelimit.new: now must be a function", 2) end
  if type(sleep) ~= "function" then error("ratelimit.new: sleep must be a function", 2) end
  return setmetatable({
    rate = opts.rate,
    burst = check_positive("burst", opts.burst or 1, 1),
    now = now,
    sleep = sleep,
    buckets = {},
  }, limiter_meta)
end

-- The key's bucket, refilled up to now.
local function bucket(self, key)
  if type(key) ~= "string" then error("ratelimit: key must be a string, got " .. type(key), 3) end
  local t = self.now()
  local b = self.buckets[key]
  if not b then
    b = { tokens = self.burst, t = t }
    self.buckets[key] = b
  elseif t > b.t then
    b.tokens = math_min(self.burst, b.tokens + (t - b.t) * self.rate)
    b.t = t
  end
  return b
end

local function count(self, n)
  if n == nil then return 1 end
  if type(n) ~= "number" or n ~= n or n < 0 or n > self.burst then
    error("ratelimit: n must be a number from 0 to the burst (" .. tostring(self.burst)
          .. "), got " .. tostring(n), 3)
  end
  return n
end

function Limiter:take(key, n)
  n = count(self, n)
  local b = bucket(self, key)
  if b.tokens + EPSILON >= n then
    b.tokens = b.tokens - n
    if b.tokens < 0 then b.tokens = 0 end
    return true
  end
  return false, (n - b.tokens) / self.rate
end

function Limiter:wait(key, n)
  n = count(self, n)
  if type(key) ~= "string" then error("ratelimit: key must be a string, got " .. type(key), 2) end
  local started = self.now()
  while true do
    local ok, delay = self:take(key, n)
    if ok then return self.now() - started end
    self.sleep(delay)
  end
end

function Limiter:available(key)
  return bucket(self, key).tokens
end

function Limiter:reset(key)
  if type(key) ~= "string" then error("ratelimit: key must be a string, got " .. type(key), 2) end
  self.buckets[key] = nil
end

return ratelimit
