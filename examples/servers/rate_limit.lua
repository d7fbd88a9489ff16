-- rate_limit: a throttle per client IP, as providers run them: an IP may start `sessions`
-- sessions (default 2) within `window` seconds (default 60); a session beyond that gets
-- "421 4.7.0 ... too many sessions from your IP" at the greeting, until the oldest of the
-- window's sessions is `window` seconds old: then it opens again, so "deferred, then delivered
-- later" can be reproduced. It counts sessions started, not connections open at once.
--   smtpsh serve rate_limit --set sessions=5 --set window=30
local params = ... or {}
local allowed = tonumber(params.sessions) or 2
local window = tonumber(params.window) or 60
local started = {}  -- client IP -> the start times of its sessions within the window
return {
  hostname = "mx.ratelimit.test",
  on_connect = function(s)
    local ip = (s.peer or ""):match("^%[?([^%]]*)%]?:%d+$") or s.peer or "?"
    local now = task.now()
    local times = started[ip] or {}
    local kept = {}
    for _, at in ipairs(times) do
      if now - at < window then kept[#kept + 1] = at end
    end
    started[ip] = kept
    if #kept >= allowed then
      local wait = math.ceil(kept[1] and window - (now - kept[1]) or window)  -- sessions=0: always
      return string.format("421 4.7.0 mx.ratelimit.test Error: too many sessions from your IP (%d in %g s), " ..
        "try again in %d seconds", allowed, window, wait)
    end
    kept[#kept + 1] = now
  end,
}
