-- watch: continuous probing for Prometheus, the library behind `smtpsh watch`. Each target is
-- probed on its own interval, with jitter, all on the one event loop; a target is never
-- probed twice at once (a scheduled probe that finds the last one still running is skipped
-- and counted as an overrun); a probe that raises is a failed probe, never a dead watcher.
-- The results feed the metrics (stdlib/watch_metrics.lua) and the pages (stdlib/watch_page.lua)
-- served over a small, strict HTTP server (stdlib/http_server.lua):
--   GET /metrics                       every target's metrics, and the watcher's own
--   GET /probe?target=T[&probe=P]      one probe now, answered with its metrics only (the
--                                      blackbox exporter's multi-target pattern)
--   GET /last?target=T[&probe=P]       the last probe's checklist and transcript (text, or JSON
--                                      with Accept: application/json or &format=json)
--   GET /targets                       each target's schedule as JSON: runs, mean interval, lag
--   GET /                              the status page
--
--   local watch = require "smtpsh.watch"
--   local w = assert(watch.new{targets = {"example.com", {target = "mx.example.com", probe = "tls",
--                                every = 300}}, every = 60, options = {timeout = 10}})
--   assert(w:listen("127.0.0.1", 9125))
--   w:start()                 -- the schedule runs in tasks of its own
--
-- Configuration (a CONFIG.lua returns this table; every field optional but targets):
--   targets = { "TARGET" | {target =, probe = "diagnose"|"tls"|"verify"|NAME|function, every =,
--               jitter =, options = {...}} ... },
--   every = 60, jitter = 0.1 (a fraction of the interval), probe = "diagnose",
--   options = {timeout =, helo =, from =, dnsbl =, resolver = ...: the probes' options},
--   probes = {NAME = function(target, context) ... end}: probes of the user's, by name,
--   max_in_flight = 256 (probes at once), max_adhoc = 8 (/probe requests at once),
--   on_result = function(record) (each scheduled or /probe result: the command logs them)

local http_server = require "smtpsh.http_server"
local task = require "smtpsh.task"
local watch_probe = require "smtpsh.watch_probe"
local watch_metrics = require "smtpsh.watch_metrics"
local watch_page = require "smtpsh.watch_page"
local diagnose = require "smtpsh.diagnose"
local smtp = require "smtpsh.smtp"
local address = require "smtpsh.address"
local json = require "smtpsh.json"
local sys = require "smtpsh.sys"
local report = require "smtpsh.report"

local type, pairs, ipairs, tostring, error, setmetatable, pcall = type, pairs, ipairs, tostring, error,
  setmetatable, pcall
local math_random, math_floor, math_min, math_max = math.random, math.floor, math.min, math.max
local string_format, string_find, string_lower = string.format, string.find, string.lower

local watch = {}

-- A name from a configuration or a request, quoted for a one-line message: its control bytes
-- (a newline too) shown as \xNN.
local function quoted(text) return '"' .. report.visible(text) .. '"' end

watch.defaults = { every = 60, jitter = 0.1, probe = "diagnose", max_in_flight = 256, max_adhoc = 8,
                   min_every = 1 }

-- Whether `target` is something probe `kind` can probe; nil, problem when not.
function watch.check_target(kind, target)
  if type(target) ~= "string" or target == "" then return nil, "a target must be a non-empty string" end
  if string_find(target, "[%c%s]") then return nil, string_format("target %s holds a space or a control character", quoted(target)) end
  if kind == "diagnose" then
    local ok, problem = diagnose.parse_target(target, {})
    if not ok then return nil, string_format("target %s: %s", target, problem) end
  elseif kind == "tls" then
    local host, problem = smtp.parse_target(target, 25)
    if not host then return nil, string_format("target %s: %s", target, problem) end
  elseif kind == "verify" then
    local local_part, problem = address.parts(target)
    if not local_part then return nil, string_format("target %s is no address to verify: %s", target, tostring(problem)) end
  end
  return true
end

local function copy(t)
  local out = {}
  for key, value in pairs(t or {}) do out[key] = value end
  return out
end

-- The configuration checked and filled in: the targets as {target, probe (a name), fn (nil for
-- a built-in kind), kind, every, jitter, options}; nil, problem (one line) when it is wrong.
function watch.configure(config)
  if type(config) ~= "table" then return nil, "the configuration must be a table" end
  local settings = {}
  for key, value in pairs(watch.defaults) do settings[key] = config[key] == nil and value or config[key] end
  for _, name in ipairs { "every", "jitter", "max_in_flight", "max_adhoc" } do
    if type(settings[name]) ~= "number" or settings[name] ~= settings[name] or settings[name] < 0 then
      return nil, string_format("%s must be a number, 0 or more", name)
    end
  end
  if settings.jitter >= 1 then return nil, "jitter is a fraction of the interval: below 1 (0.1 is 10%)" end
  if settings.max_in_flight < 1 or settings.max_adhoc < 0 then
    return nil, "max_in_flight must be 1 or more and max_adhoc 0 or more"
  end
  local probes = {}
  for name, fn in pairs(config.probes or {}) do
    if type(name) ~= "string" or type(fn) ~= "function" then
      return nil, "probes must map names to functions: probes = {name = function(target, context) ... end}"
    end
    if watch_probe.known(name) then return nil, string_format("probe name %s is a built-in probe's", quoted(name)) end
    probes[name] = fn
  end
  settings.probes = probes
  settings.options = copy(config.options)
  settings.on_result = config.on_result
  if type(config.targets) ~= "table" or #config.targets == 0 then
    return nil, "no targets: targets = {\"example.com\", {target = \"mx.example.com\", probe = \"tls\"}}"
  end
  local targets, seen = {}, {}
  for i, entry in ipairs(config.targets) do
    if type(entry) == "string" then entry = { target = entry } end
    if type(entry) ~= "table" then return nil, string_format("target %d must be a string or a table", i) end
    local probe = entry.probe or settings.probe
    local t = { target = entry.target, every = entry.every or settings.every,
                jitter = entry.jitter or settings.jitter, options = copy(settings.options) }
    for key, value in pairs(entry.options or {}) do t.options[key] = value end
    if type(probe) == "function" then
      t.probe, t.fn, t.kind = entry.name or "custom", probe, "function"
    elseif probes[probe] then
      t.probe, t.fn, t.kind = probe, probes[probe], "function"
    elseif watch_probe.known(probe) then
      t.probe, t.kind = probe, probe
    else
      return nil, string_format("target %d: unknown probe %s (diagnose, tls, verify, or a name in probes)", i,
        quoted(probe))
    end
    if t.kind ~= "function" then
      local ok, problem = watch.check_target(t.kind, t.target)
      if not ok then return nil, problem end
    elseif type(t.target) ~= "string" or t.target == "" then
      return nil, string_format("target %d: a target must be a non-empty string", i)
    elseif string_find(t.target, "%c") then
      return nil, string_format("target %s holds a control character", quoted(t.target))
    end
    if type(t.every) ~= "number" or t.every < settings.min_every then
      return nil, string_format("target %s: every must be %g s or more", t.target, settings.min_every)
    end
    if type(t.jitter) ~= "number" or t.jitter < 0 or t.jitter >= 1 then
      return nil, string_format("target %s: jitter must be from 0 to below 1", t.target)
    end
    local key = t.target .. "\0" .. t.probe
    if seen[key] then return nil, string_format("target %s with probe %s is listed twice", t.target, t.probe) end
    seen[key] = true
    t.stats = { runs = 0, overruns = 0, max_lag = 0, lag_sum = 0 }
    targets[#targets + 1] = t
  end
  return targets, settings
end

local Watcher = {}
Watcher.__index = Watcher

-- watch.new(config) -> watcher | nil, problem
function watch.new(config)
  local targets, settings = watch.configure(config)
  if not targets then return nil, settings end
  local w = setmetatable({ targets = targets, settings = settings, by_key = {}, in_flight = 0, adhoc = 0,
                           metrics = watch_metrics.new(sys.version), stopped = false, loops = {} }, Watcher)
  for _, t in ipairs(targets) do
    w.by_key[t.target .. "\0" .. t.probe] = t
    w.metrics:announce(t.target, t.probe)
  end
  return w
end

-- Runs probe `t` now, after any probe of it still running (never two at once). Returns the record.
function Watcher:probe(t)
  while t.running do
    -- The task that started it clears it when it resumes; a waiter resumed first does, as a
    -- wait on a finished task returns at once and would otherwise spin here.
    local running = t.running
    task.wait(running)
    if t.running == running then t.running = nil end
  end
  local handle = task.spawn(function()
    self.in_flight = self.in_flight + 1
    local ok, record = pcall(watch_probe.run, { target = t.target, probe = t.fn or t.kind, name = t.probe,
                                                options = t.options })
    self.in_flight = self.in_flight - 1
    if not ok then error(record, 0) end
    return record
  end)
  t.running = handle
  local record, err = task.wait(handle)
  if t.running == handle then t.running = nil end
  if not record then error(err, 0) end
  t.last = record
  self.metrics:observe(record)
  if self.settings.on_result then pcall(self.settings.on_result, record) end
  return record
end

-- One target's schedule: the first probe within the first interval (within 10 s when there
-- are 100 targets or fewer), then every `every` seconds, each start moved by up to
-- +-jitter of the interval so that many watchers do not probe one server in step.
local schedule_loop

-- Ctrl-C (or SIGTERM) interrupts every task: a schedule then ends quietly, as a stopped one.
local function schedule(w, t, first)
  local ok, err = pcall(schedule_loop, w, t, first)
  if not ok and not string_find(tostring(err), "interrupted", 1, true) then error(err, 0) end
end

schedule_loop = function(w, t, first)
  local base = task.now() + first
  local due = base
  local stats = t.stats
  while not w.stopped do
    local now = task.now()
    if due > now then task.sleep(due - now) end
    if w.stopped then break end
    while w.in_flight >= w.settings.max_in_flight and not w.stopped do task.sleep(0.05) end
    local started = task.now()
    local lag = math_max(0, started - due)
    w.metrics:started_late(lag)
    stats.runs, stats.lag_sum, stats.max_lag = stats.runs + 1, stats.lag_sum + lag, math_max(stats.max_lag, lag)
    stats.first_start = stats.first_start or started
    stats.last_start = started
    w:probe(t)
    base = base + t.every
    now = task.now()
    if base <= now then
      -- The probe outlasted its interval: the starts it missed are skipped, not run late in a row.
      local missed = math_floor((now - base) / t.every) + 1
      for _ = 1, missed do w.metrics:overrun(t.target) end
      stats.overruns = stats.overruns + missed
      base = base + missed * t.every
    end
    due = base + t.every * t.jitter * (2 * math_random() - 1)
  end
end

-- Starts every target's schedule.
function Watcher:start()
  local spread = #self.targets <= 100 and 10 or math.huge
  for i, t in ipairs(self.targets) do
    local first = math_random() * math_min(t.every, spread)
    self.loops[i] = task.spawn(schedule, self, t, first)
  end
  return self
end

-- Stops the schedules (a probe running finishes) and the HTTP server.
function Watcher:stop()
  self.stopped = true
  if self.http then self.http:close() end
end

-- The targets' schedules, for /targets and the benchmark.
function Watcher:schedule_report()
  local out = json.array()
  for _, t in ipairs(self.targets) do
    local s = t.stats
    out[#out + 1] = {
      target = t.target, probe = t.probe, every = t.every, runs = s.runs, overruns = s.overruns,
      mean_interval = s.runs > 1 and (s.last_start - s.first_start) / (s.runs - 1) or json.null,
      mean_lag = s.runs > 0 and s.lag_sum / s.runs or json.null, max_lag = s.max_lag,
      verdict = t.last and t.last.verdict or json.null, result = t.last and t.last.result or json.null,
    }
  end
  return out
end

local function let_others_run() task.sleep(0) end

function Watcher:metrics_text()
  return self.metrics:render({ in_flight = self.in_flight, targets = #self.targets, pause = let_others_run })
end

function Watcher:status_html()
  local rows = {}
  for i, t in ipairs(self.targets) do
    rows[i] = { target = t.target, probe = t.probe, every = t.every, record = t.last }
  end
  return watch_page.status(rows, { in_flight = self.in_flight })
end

-- The configured target for (target, probe): probe may be nil when the target has one probe.
function Watcher:find(target, probe)
  if probe then return self.by_key[target .. "\0" .. probe] end
  local found
  for _, t in ipairs(self.targets) do
    if t.target == target then
      if found then return nil, "ambiguous" end
      found = t
    end
  end
  return found
end

-- --- HTTP ---------------------------------------------------------------------------------------

local text = { ["Content-Type"] = "text/plain; charset=utf-8" }
local exposition = { ["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8" }
local function plain(status, body) return status, body, text end

-- /probe's answer: the one record's metrics, nothing of the watcher's.
local function metrics_of(record)
  local one = watch_metrics.new(sys.version)
  one:observe(record)
  return 200, one.registry:render(), exposition
end

local function wants_json(request)
  if request.query.format == "json" then return true end
  local accept = string_lower(request.headers.accept or "")
  return string_find(accept, "application/json", 1, true) ~= nil
end

-- GET /probe?target=T[&probe=P]: a configured target is probed in turn with its schedule; any
-- other target with the global options, at most max_adhoc at once.
local function probe_page(w, request)
  local target, probe = request.query.target, request.query.probe
  if not target or target == "" then return plain(400, "/probe needs ?target=TARGET[&probe=diagnose|tls|verify]\n") end
  local t = w:find(target, probe)
  if t then
    return metrics_of(w:probe(t))
  end
  probe = probe or w.settings.probe
  local fn = w.settings.probes[probe]
  if not fn and not watch_probe.known(probe) then
    return plain(400, string_format("unknown probe %s: diagnose, tls, verify or one of the configuration's probes\n",
      quoted(probe)))
  end
  if not fn then
    local ok, problem = watch.check_target(probe, target)
    if not ok then return plain(400, problem .. "\n") end
  end
  if w.adhoc >= w.settings.max_adhoc then
    return plain(503, string_format("%d probes asked by /probe are running already; try again\n", w.adhoc))
  end
  w.adhoc = w.adhoc + 1
  w.in_flight = w.in_flight + 1
  local ok, record = pcall(watch_probe.run, { target = target, probe = fn or probe, name = probe,
                                              options = w.settings.options })
  w.adhoc, w.in_flight = w.adhoc - 1, w.in_flight - 1
  if not ok then error(record, 0) end
  if w.settings.on_result then pcall(w.settings.on_result, record) end
  return metrics_of(record)
end

local function last_page(w, request)
  local target = request.query.target
  if not target or target == "" then return plain(400, "/last needs ?target=TARGET[&probe=PROBE]\n") end
  local t, problem = w:find(target, request.query.probe)
  if not t then
    if problem == "ambiguous" then
      return plain(400, string_format("%s has several probes: add &probe=NAME\n", target))
    end
    return plain(404, string_format("%s is not a watched target\n", target))
  end
  if not t.last then return plain(404, string_format("%s has not been probed yet\n", target)) end
  if wants_json(request) then return 200, watch_page.last_json(t.last), { ["Content-Type"] = "application/json" } end
  return plain(200, watch_page.last_text(t.last))
end

local routes = {
  ["/metrics"] = function(w) return 200, w:metrics_text(), exposition end,
  ["/probe"] = probe_page,
  ["/last"] = last_page,
  ["/targets"] = function(w) return 200, json.encode(w:schedule_report()) .. "\n", { ["Content-Type"] = "application/json" } end,
  ["/"] = function(w) return 200, w:status_html(), { ["Content-Type"] = "text/html; charset=utf-8" } end,
  ["/-/healthy"] = function() return plain(200, "ok\n") end,
  ["/favicon.ico"] = function() return 204, "", {} end,
}

-- The HTTP handler: a route, or 404 naming the ones there are.
function Watcher:handle(request)
  local route = routes[request.path]
  if not route then
    return plain(404, request.path .. " is not here: /, /metrics, /probe?target=, /last?target=, /targets\n")
  end
  return route(self, request)
end

-- Serves HTTP on host:port (port 0: a free one). Returns the address "HOST:PORT" | nil, err.
function Watcher:listen(host, port, on_error)
  local srv, err = http_server.listen(host, port, function(request) return self:handle(request) end,
                                      { on_error = on_error })
  if not srv then return nil, err end
  self.http = srv
  return srv.address
end

return watch
