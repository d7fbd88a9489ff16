-- The API reference of smtpsh.prometheus (stdlib/prometheus.lua); format: stdlib/apidoc.lua.
return {
  name = "prometheus", require = "smtpsh.prometheus",
  title = "Prometheus metrics",
  summary = "gauges, counters and histograms written in the Prometheus text exposition format (what smtpsh watch serves)",
  notes = {
    "A family has fixed label names; each series is addressed by its label values in that order: family:set(values, n) (gauge), family:inc(values [, by]) (counter), family:observe(values, n) (histogram), family:get(values), family:clear(), family:remove(label, value). registry:render() writes families in the order they were made, series in the order they appeared.",
  },
  entries = {
    { name = "registry", sig = "prometheus.registry()",
      summary = "a set of metric families: r:gauge(name, help, labels), r:counter(...), r:histogram(name, help, labels [, buckets]), r:family(name), r:render()",
      returns = "a registry", errors = "its methods raise on an invalid name, a name registered twice, or the wrong count of label values",
      example = 'local r = prometheus.registry(); r:gauge("up", "1 when up", {"target"}):set({"mx1"}, 1); io.write(r:render())' },
    { name = "escape", sig = "prometheus.escape(value)", summary = "a label value escaped for the format (\\\\, \\\", \\n)",
      returns = "the escaped text", errors = "none", example = 'prometheus.escape("a \\"b\\"")' },
    { name = "number", sig = "prometheus.number(value)", summary = "a sample value as the format writes it (+Inf, NaN, the shortest exact decimal)",
      returns = "text", errors = "none", example = "prometheus.number(0.005)" },
    { name = "duration_buckets", field = true, sig = "prometheus.duration_buckets",
      summary = "the default histogram buckets, in seconds, from 5 ms to 120 s", example = "prometheus.duration_buckets[1]" },
    { name = "content_type", field = true, sig = "prometheus.content_type",
      summary = "the exposition's Content-Type (text/plain; version=0.0.4)", example = "prometheus.content_type" },
  },
}
