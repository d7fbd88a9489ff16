-- The API reference of smtpsh.watch (stdlib/watch.lua); format: stdlib/apidoc.lua.
return {
  name = "watch", require = "smtpsh.watch",
  title = "continuous probing",
  summary = "targets probed on a schedule (diagnose, tls, verify or a function of yours) with metrics and pages over HTTP: smtpsh watch",
  notes = {
    "A watcher w has w:start() (the schedules, in tasks of their own), w:listen(host, port) (HTTP: /metrics, /probe?target=, /last?target=, /targets, /), w:probe(t) (one probe of configured target t now, after any still running), w:metrics_text(), w:status_html(), w:schedule_report(), w:stop(). w.targets lists the configured targets.",
    "A probe function gets (target, {options, probe}) and returns {success = bool, verdict =, summary =, replies = {{stage, code, enhanced}}, steps = {{name, seconds}}, text =}; one that raises is a failed probe (result \"error\").",
  },
  entries = {
    { name = "new", sig = "watch.new(config)",
      summary = "a watcher: config {targets = {\"TARGET\" | {target, probe, every, jitter, options}}, every (60), jitter (0.1), probe (\"diagnose\"), options, probes = {NAME = fn}, max_in_flight (256), max_adhoc (8), on_result}",
      returns = "the watcher", errors = "nil, problem (one line) for a configuration that is wrong",
      example = 'local w = assert(watch.new{targets = {"example.com"}, every = 60}); w:listen("127.0.0.1", 9125); w:start()' },
    { name = "configure", sig = "watch.configure(config)", summary = "checks a configuration and fills in its defaults",
      returns = "targets, settings", errors = "nil, problem", example = 'watch.configure{targets = {"example.com"}}' },
    { name = "check_target", sig = "watch.check_target(probe, target)", summary = "whether probe (diagnose, tls, verify) can probe target",
      returns = "true", errors = "nil, problem", example = 'watch.check_target("tls", "mx.example.com:25")' },
    { name = "defaults", field = true, sig = "watch.defaults", summary = "every, jitter, probe, max_in_flight, max_adhoc, min_every",
      example = "watch.defaults.every" },
  },
}
