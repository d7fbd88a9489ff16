-- stdlib/prometheus.lua: the exposition text, byte for byte (the e2e tests also parse it with
-- python3-prometheus-client, an independent parser), escaping, histograms, and the errors.
local t = dofile("tests/lua/testing.lua")
local prometheus = require "smtpsh.prometheus"

t.test("gauges and counters render in the order they were made, series in first-use order", function()
  local r = prometheus.registry()
  local up = r:gauge("smtpsh_probe_success", "1 when it passed", { "target", "probe" })
  local replies = r:counter("smtpsh_replies_total", "replies seen", { "target", "code" })
  replies:inc({ "b.test", "421" })
  up:set({ "b.test", "diagnose" }, 0)
  up:set({ "a.test", "diagnose" }, 1)
  replies:inc({ "b.test", "421" }, 2)
  t.eq(r:render(), table.concat({
    "# HELP smtpsh_probe_success 1 when it passed",
    "# TYPE smtpsh_probe_success gauge",
    'smtpsh_probe_success{target="b.test",probe="diagnose"} 0',
    'smtpsh_probe_success{target="a.test",probe="diagnose"} 1',
    "# HELP smtpsh_replies_total replies seen",
    "# TYPE smtpsh_replies_total counter",
    'smtpsh_replies_total{target="b.test",code="421"} 3',
    "",
  }, "\n"))
end)

t.test("a family without series is left out; one without labels has no braces", function()
  local r = prometheus.registry()
  r:gauge("never_set", "nothing")
  r:gauge("in_flight", "probes running"):set(nil, 2)
  t.eq(r:render(), "# HELP in_flight probes running\n# TYPE in_flight gauge\nin_flight 2\n")
end)

t.test("label values are escaped: backslash, double quote, newline", function()
  local r = prometheus.registry()
  r:gauge("g", "help with a \\ and\na newline", { "v" }):set({ 'a\\b"c\nd' }, 1)
  local text = r:render()
  t.ok(text:find('g{v="a\\\\b\\"c\\nd"} 1', 1, true), text)
  t.ok(text:find("# HELP g help with a \\\\ and\\na newline\n", 1, true), text)
  t.eq(prometheus.escape('x"y'), 'x\\"y')
end)

t.test("numbers: integers plainly, the shortest exact decimal, infinities, NaN", function()
  t.eq(prometheus.number(3), "3")
  t.eq(prometheus.number(3.0), "3")
  t.eq(prometheus.number(0.005), "0.005")
  t.eq(prometheus.number(0.1 + 0.2), "0.30000000000000004")
  t.eq(prometheus.number(1796220599.076441), "1796220599.076441")
  t.eq(prometheus.number(math.huge), "+Inf")
  t.eq(prometheus.number(-math.huge), "-Inf")
  t.eq(prometheus.number(0 / 0), "NaN")
  for _, value in ipairs { 0.025, 1e-9, 123456.789, 2 ^ 60 + 0.0 } do
    t.eq(tonumber(prometheus.number(value)), value, "reads back the same: " .. prometheus.number(value))
  end
end)

t.test("a histogram: cumulative buckets, +Inf, _sum and _count", function()
  local r = prometheus.registry()
  local h = r:histogram("step_seconds", "step time", { "step" }, { 0.1, 1, 10 })
  for _, v in ipairs { 0.05, 0.1, 0.5, 2, 20 } do h:observe({ "rcpt" }, v) end
  t.eq(r:render(), table.concat({
    "# HELP step_seconds step time",
    "# TYPE step_seconds histogram",
    'step_seconds_bucket{step="rcpt",le="0.1"} 2',
    'step_seconds_bucket{step="rcpt",le="1"} 3',
    'step_seconds_bucket{step="rcpt",le="10"} 4',
    'step_seconds_bucket{step="rcpt",le="+Inf"} 5',
    'step_seconds_sum{step="rcpt"} 22.65',
    'step_seconds_count{step="rcpt"} 5',
    "",
  }, "\n"))
  t.eq(h:get({ "rcpt" }), 5)
end)

t.test("a histogram without labels", function()
  local r = prometheus.registry()
  r:histogram("lag", "lag", {}, { 1 }):observe({}, 0.5)
  t.eq(r:render(), '# HELP lag lag\n# TYPE lag histogram\nlag_bucket{le="1"} 1\nlag_bucket{le="+Inf"} 1\n' ..
    "lag_sum 0.5\nlag_count 1\n")
end)

t.test("remove forgets the series of one label value; clear forgets all", function()
  local r = prometheus.registry()
  local v = r:gauge("tls_version_info", "version", { "target", "version" })
  v:set({ "a", "TLSv1.2" }, 1)
  v:set({ "b", "TLSv1.3" }, 1)
  v:remove("target", "a")
  v:set({ "a", "TLSv1.3" }, 1)
  t.eq(r:render(), '# HELP tls_version_info version\n# TYPE tls_version_info gauge\n' ..
    'tls_version_info{target="b",version="TLSv1.3"} 1\ntls_version_info{target="a",version="TLSv1.3"} 1\n')
  t.eq(v:get({ "a", "TLSv1.2" }), nil)
  v:clear()
  t.eq(r:render(), "")
end)

t.test("a long render pauses between series when asked, and writes the same text", function()
  local r = prometheus.registry()
  local g = r:gauge("g", "x", { "n" })
  local h = r:histogram("h", "x", { "n" }, { 1 })
  for i = 1, 10 do
    g:set({ i }, i)
    h:observe({ i }, 0.5)
  end
  local plain = r:render()
  local pauses = 0
  local paced = r:render(function()
    pauses = pauses + 1
    g:remove("n", 10)  -- a series removed meanwhile is left out, never half-written
  end, 5)
  t.ok(pauses >= 6, "paused " .. pauses .. " times")
  t.eq(paced, plain:gsub('g{n="10"} 10\n', ""))
end)

t.test("mistakes raise with the reason", function()
  local r = prometheus.registry()
  t.raises(function() r:gauge("9bad", "x") end, "not a valid name")
  t.raises(function() r:gauge("ok_name", "x", { "bad-label" }) end, "not a valid name")
  r:gauge("twice", "x")
  t.raises(function() r:counter("twice", "x") end, "registered twice")
  local g = r:gauge("g2", "x", { "a", "b" })
  t.raises(function() g:set({ "only one" }, 1) end, "takes 2 label values, got 1")
  t.raises(function() g:set({ "a", "b" }, "1") end, "needs a number")
  local c = r:counter("c_total", "x")
  t.raises(function() c:inc(nil, -1) end, "0 or more")
  t.raises(function() r:histogram("h", "x", { "le" }) end, "le is the histogram's own label")
  t.raises(function() r:histogram("h2", "x", {}, { 1, 1 }) end, "increasing")
end)

t.run()
