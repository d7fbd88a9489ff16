-- The API reference of smtpsh.ratelimit (stdlib/ratelimit.lua); format: stdlib/apidoc.lua.
return {
  name = "ratelimit", require = "smtpsh.ratelimit",
  title = "token buckets",
  summary = "token buckets per key (domain, MX, IP), shared by many tasks",
  entries = {
    { name = "new", sig = "ratelimit.new{rate = R [, burst = B]}",
      summary = "a limiter: R tokens a second per key, up to B (1) at once",
      returns = "limiter: take(key [, n]) -> true | false, wait; wait(key [, n]) -> seconds waited; available(key); reset(key)",
      errors = "raises on a rate not above 0 or a burst below 1",
      example = 'local limiter = ratelimit.new{rate = 5, burst = 2}; limiter:wait("gmail.com")' },
  },
}
