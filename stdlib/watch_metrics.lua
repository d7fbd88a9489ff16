-- watch_metrics: the Prometheus metrics of `smtpsh watch`, made from probe records
-- (stdlib/watch_probe.lua). Every label set is bounded: targets come from the configuration,
-- verdicts from the fixed vocabulary, steps and stages from fixed lists, and a target's distinct
-- (stage, code, enhanced) reply series are capped (the rest count under enhanced="other").
--
--   local metrics = watch_metrics.new()       -- a registry with every family
--   metrics:observe(record)                   -- after each probe
--   metrics:render(health)                    -- the exposition text; health = the watcher's own
--
-- The names, for dashboards and alerts (examples/prometheus/):
--   smtpsh_probe_success{target,probe}, smtpsh_probe_duration_seconds{target,probe},
--   smtpsh_probe_timestamp_seconds{target,probe}, smtpsh_probes_total{target,probe,result},
--   smtpsh_step_duration_seconds{target,step} (histogram), smtpsh_verdict{target,verdict},
--   smtpsh_replies_total{target,stage,code,enhanced}, smtpsh_tls_version_info{target,version},
--   smtpsh_tls_handshake_failures_total{target}, smtpsh_cert_expiry_timestamp_seconds{target},
--   smtpsh_dnsbl_listed{ip,zone}, smtpsh_watch_probes_in_flight, smtpsh_watch_targets,
--   smtpsh_watch_overruns_total{target}, smtpsh_watch_probe_errors_total{target},
--   smtpsh_watch_schedule_lag_seconds (histogram), smtpsh_build_info{version}, process_*.

local prometheus = require "smtpsh.prometheus"
local judge = require "smtpsh.judge"
local sys = require "smtpsh.sys"

local setmetatable, ipairs, pairs, tostring, type = setmetatable, ipairs, pairs, tostring, type
local table_sort, collectgarbage = table.sort, collectgarbage

local watch_metrics = {}

-- The verdict vocabulary in a fixed order: ok first, then the rest by name.
watch_metrics.verdicts = { "ok" }
do
  local names = {}
  for name in pairs(judge.verdicts) do
    if name ~= "ok" then names[#names + 1] = name end
  end
  table_sort(names)
  for _, name in ipairs(names) do watch_metrics.verdicts[#watch_metrics.verdicts + 1] = name end
end

-- How many distinct reply series one target may have before the rest count as "other".
watch_metrics.max_reply_series = 64

local Metrics = {}
Metrics.__index = Metrics

function watch_metrics.new(version)
  local r = prometheus.registry()
  local m = setmetatable({ registry = r, reply_series = {}, version = version or "unknown" }, Metrics)
  m.success = r:gauge("smtpsh_probe_success", "1 when the last probe found nothing wrong, else 0", { "target", "probe" })
  m.duration = r:gauge("smtpsh_probe_duration_seconds", "How long the last probe took", { "target", "probe" })
  m.timestamp = r:gauge("smtpsh_probe_timestamp_seconds", "When the last probe ended (Unix time)", { "target", "probe" })
  m.probes = r:counter("smtpsh_probes_total", "Probes run, by result (success, failure, error: the probe raised)",
    { "target", "probe", "result" })
  m.steps = r:histogram("smtpsh_step_duration_seconds",
    "Time of each step of the probe session: dns, connect, banner, ehlo, starttls, mail, rcpt", { "target", "step" })
  m.verdict = r:gauge("smtpsh_verdict", "1 for the last probe's verdict, 0 for every other verdict of the vocabulary",
    { "target", "verdict" })
  m.replies = r:counter("smtpsh_replies_total", "SMTP replies seen, by stage, code and enhanced status code",
    { "target", "stage", "code", "enhanced" })
  m.tls_version = r:gauge("smtpsh_tls_version_info", "The TLS version the last handshake negotiated", { "target", "version" })
  m.tls_failures = r:counter("smtpsh_tls_handshake_failures_total", "STARTTLS handshakes that failed", { "target" })
  m.cert_expiry = r:gauge("smtpsh_cert_expiry_timestamp_seconds",
    "When the server's certificate (the leaf) expires (Unix time)", { "target" })
  m.dnsbl = r:gauge("smtpsh_dnsbl_listed", "1 when this watcher's source address is listed on the DNS blocklist zone",
    { "ip", "zone" })
  m.in_flight = r:gauge("smtpsh_watch_probes_in_flight", "Probes running now")
  m.targets = r:gauge("smtpsh_watch_targets", "Targets watched on a schedule")
  m.overruns = r:counter("smtpsh_watch_overruns_total",
    "Scheduled probes skipped because the previous probe of the target was still running", { "target" })
  m.errors = r:counter("smtpsh_watch_probe_errors_total", "Probes that raised an error (a failed probe, not a dead watcher)",
    { "target" })
  m.lag = r:histogram("smtpsh_watch_schedule_lag_seconds", "How late each scheduled probe started",
    {}, { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10 })
  m.build = r:gauge("smtpsh_build_info", "The smtpsh version serving these metrics", { "version" })
  m.cpu = r:counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds")
  m.resident = r:gauge("process_resident_memory_bytes", "Resident memory size in bytes")
  m.open_fds = r:gauge("process_open_fds", "Number of open file descriptors")
  m.max_fds = r:gauge("process_max_fds", "Maximum number of open file descriptors")
  m.start_time = r:gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds")
  m.lua_memory = r:gauge("smtpsh_lua_memory_bytes", "Memory the Lua state holds")
  return m
end

-- The reply's enhanced label, capped per target.
local function enhanced_label(m, target, reply)
  local seen = m.reply_series[target]
  if not seen then
    seen = { count = 0 }
    m.reply_series[target] = seen
  end
  local key = reply.stage .. " " .. reply.code .. " " .. reply.enhanced
  if seen[key] then return reply.enhanced end
  if seen.count >= watch_metrics.max_reply_series then return "other" end
  seen[key], seen.count = true, seen.count + 1
  return reply.enhanced
end

-- After each probe: the record's facts into the families.
function Metrics:observe(record)
  local target, probe = tostring(record.target), tostring(record.probe)
  self.success:set({ target, probe }, record.success and 1 or 0)
  self.duration:set({ target, probe }, record.duration or 0)
  self.timestamp:set({ target, probe }, record.started + (record.duration or 0))
  self.probes:inc({ target, probe, record.result or "failure" })
  if record.result == "error" then self.errors:inc({ target }) end
  for _, step in ipairs(record.steps or {}) do self.steps:observe({ target, step.name }, step.seconds) end
  -- Every probe sets them all: one without a verdict (it raised, or a probe function or a
  -- canary failed without naming one) leaves every verdict at 0, never the last one's 1.
  for _, verdict in ipairs(watch_metrics.verdicts) do
    self.verdict:set({ target, verdict }, verdict == record.verdict and 1 or 0)
  end
  for _, reply in ipairs(record.replies or {}) do
    self.replies:inc({ target, reply.stage, reply.code, enhanced_label(self, target, reply) })
  end
  local tls = record.tls or {}
  if tls.version and not self.tls_version:get({ target, tls.version }) then
    self.tls_version:remove("target", target)  -- the version changed: the old one goes
    self.tls_version:set({ target, tls.version }, 1)
  end
  if tls.failed then self.tls_failures:inc({ target }) end
  if tls.not_after then self.cert_expiry:set({ target }, tls.not_after) end
  local dnsbl = record.dnsbl
  if dnsbl and dnsbl.ip then
    for _, zone in ipairs(dnsbl.zones or {}) do
      self.dnsbl:set({ dnsbl.ip, zone }, dnsbl.listed[zone] and 1 or 0)
    end
  end
end

-- A scheduled probe was skipped (the last one still ran), or started `lag` seconds late.
function Metrics:overrun(target) self.overruns:inc({ tostring(target) }) end
function Metrics:started_late(lag) self.lag:observe({}, lag > 0 and lag or 0) end

-- Makes the counters of a target show from the start (0), so a rate is defined before the
-- first failure.
function Metrics:announce(target, probe)
  target = tostring(target)
  for _, result in ipairs { "success", "failure", "error" } do self.probes:inc({ target, tostring(probe), result }, 0) end
  self.overruns:inc({ target }, 0)
  self.errors:inc({ target }, 0)
  self.tls_failures:inc({ target }, 0)
end

-- The exposition text; health = {in_flight, targets} from the watcher.
function Metrics:render(health)
  health = health or {}
  self.in_flight:set({}, health.in_flight or 0)
  self.targets:set({}, health.targets or 0)
  self.build:set({ self.version }, 1)
  local process = sys.process and sys.process() or {}
  if (process.cpu_seconds or -1) >= 0 then self.cpu:set({}, process.cpu_seconds) end
  if (process.resident_bytes or -1) >= 0 then self.resident:set({}, process.resident_bytes) end
  if (process.open_fds or -1) >= 0 then self.open_fds:set({}, process.open_fds) end
  if (process.max_fds or -1) >= 0 then self.max_fds:set({}, process.max_fds) end
  if process.start_time then self.start_time:set({}, process.start_time) end
  self.lua_memory:set({}, collectgarbage("count") * 1024)
  -- A scrape of a thousand targets is over a hundred thousand lines: the probes due meanwhile
  -- start between families, not after the whole text.
  return self.registry:render(health.pause)
end

return watch_metrics
