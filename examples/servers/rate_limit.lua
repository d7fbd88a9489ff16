-- rate_limit: the first `sessions` sessions (default 2) are served; after that every new
-- session gets "421 4.7.0 Too many connections", as a provider throttling one IP does.
--   smtpsh serve rate_limit --set sessions=5
local params = ... or {}
local allowed = tonumber(params.sessions) or 2
return {
  hostname = "mx.ratelimit.test",
  on_connect = function(s)
    if s.n > allowed then
      return "421 4.7.0 mx.ratelimit.test Error: too many connections from your IP, slow down"
    end
  end,
}
