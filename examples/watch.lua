-- A configuration for `smtpsh watch`: what to probe, how often, and with which options.
--   smtpsh watch examples/watch.lua --listen 127.0.0.1:9125
-- Prometheus then scrapes http://127.0.0.1:9125/metrics (examples/prometheus/ has a scrape
-- config and alerting rules); http://127.0.0.1:9125/ is the status page.
--
-- Each target is a string (a diagnosis every `every` seconds) or a table. A probe is
-- "diagnose" (a domain, an address or HOST[:PORT]), "tls" (one host's handshake and
-- certificate), "verify" (a canary address), the name of a function in `probes`, or a
-- function. A probe function returns {success = bool, verdict =, summary =, replies =, steps =};
-- one that raises counts as a failed probe, and the watcher goes on.
return {
  every = 300,           -- seconds between two probes of a target (each target may say its own)
  jitter = 0.1,          -- each start moves by up to 10% of the interval
  options = {            -- for every probe: the options of `smtpsh diagnose`
    timeout = 10,
    helo = nil,          -- this machine's name unless given; receivers check it against the PTR
  },
  targets = {
    "example.com",                                              -- the MX hosts of a domain, in order
    { target = "postmaster@example.org", every = 600 },        -- a domain and the recipient to try
    { target = "mx.example.net:25", probe = "tls", every = 3600 },  -- TLS version and certificate
    { target = "mx.example.net", probe = "banner_time", every = 60 },
  },
  probes = {
    -- A probe of one's own: how long the greeting takes, failing above 5 s.
    banner_time = function(target)
      local started = task.now()
      local s, err = smtp.connect(target, { timeout = 10 })
      if not s then return { success = false, summary = tostring(err) } end
      local seconds = task.now() - started
      local code = s.banner.code
      s:quit()
      return {
        success = code == 220 and seconds < 5,
        summary = string.format("greeting %d after %.2f s", code, seconds),
        steps = { { name = "banner", seconds = seconds } },
        replies = { { stage = "banner", code = tostring(code), enhanced = s.banner.enhanced or "" } },
      }
    end,
  },
}
