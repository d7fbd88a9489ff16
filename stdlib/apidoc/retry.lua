-- The API reference of smtpsh.retry (stdlib/retry.lua); format: stdlib/apidoc.lua.
return {
  name = "retry", require = "smtpsh.retry",
  title = "retries with backoff",
  summary = "runs a step again after transient failures: exponential backoff, jitter, a try limit, a time budget",
  entries = {
    { name = "run", sig = "retry.run(fn [, opts])",
      summary = "calls fn(attempt) until it returns a value, an error is not transient, or tries (3) or budget run out; opts: tries, backoff (1), factor (2), max_delay (300), jitter (0.2), budget, transient, on_retry",
      returns = "value, extra, log on success; log has one {attempt, at, took, ok, err, delay, stopped} per attempt",
      errors = "nil, err, log when it gave up; errors fn raises are not caught",
      example = 'retry.run(function() return smtp.connect("mx.example.com") end, {tries = 5, backoff = 2})' },
    { name = "transient", sig = "retry.transient(err)",
      summary = "whether err is worth retrying: closed, timeout, a 4xx reply, DNS SERVFAIL or timeout",
      returns = "true or false", errors = "none", example = "retry.transient(err)" },
    { name = "delays", sig = "retry.delays([opts])", summary = "the delays run would sleep, without jitter",
      returns = "{d1, d2, ...}", errors = "raises on bad options", example = "retry.delays{tries = 5}  --> {1, 2, 4, 8}" },
  },
}
