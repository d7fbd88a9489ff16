-- prometheus: metrics in the Prometheus text exposition format (version 0.0.4), what
-- `smtpsh watch` serves on /metrics. A registry holds metric families; a family has a fixed
-- list of label names, and each series is addressed by its label values in that order.
--
--   local prometheus = require "smtpsh.prometheus"
--   local metrics = prometheus.registry()
--   local up = metrics:gauge("smtpsh_probe_success", "1 when the last probe passed", {"target", "probe"})
--   up:set({"example.com", "diagnose"}, 1)
--   local replies = metrics:counter("smtpsh_replies_total", "SMTP replies seen", {"target", "code"})
--   replies:inc({"example.com", "421"})
--   local steps = metrics:histogram("smtpsh_step_duration_seconds", "step time", {"step"},
--                                   {0.1, 0.5, 1, 5})
--   steps:observe({"rcpt"}, 0.25)
--   io.write(metrics:render())
--
-- Families render in the order they were made, series in the order they first appeared, so
-- two scrapes of the same state are byte for byte the same. Label values are escaped (\\, \",
-- \n) as the format asks; a value that is not a string is made one.

local setmetatable, type, tostring, tonumber, ipairs, error = setmetatable, type, tostring, tonumber, ipairs, error
local math_type, math_huge = math.type, math.huge
local string_format, string_gsub, string_match, table_concat = string.format, string.gsub, string.match,
  table.concat

local prometheus = {}

-- The default buckets for durations in seconds: from a fast answer to a tarpit. Ten, not
-- more: each bucket is a line per series, and a watcher of a thousand targets has seven
-- step histograms each.
prometheus.duration_buckets = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60 }

local escapes = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }

-- A label value as the format writes it between quotes.
function prometheus.escape(value)
  return (string_gsub(tostring(value), '[\\"\n]', escapes))
end

-- A sample value: integers plainly, others with enough digits to read back the same number.
function prometheus.number(value)
  if math_type(value) == "integer" then return tostring(value) end
  if value ~= value then return "NaN" end
  if value == math_huge then return "+Inf" end
  if value == -math_huge then return "-Inf" end
  if math_type(value) == "integer" then return string_format("%d", value) end
  if value == math.floor(value) and value > -1e15 and value < 1e15 then return string_format("%d", value) end
  -- The shortest form that reads back as the same number (0.005, not 0.0050000000000000001).
  for digits = 15, 17 do
    local text = string_format("%." .. digits .. "g", value)
    if tonumber(text) == value then return text end
  end
  return string_format("%.17g", value)
end

local function check_name(name, what)
  if type(name) ~= "string" or not string_match(name, "^[%a_:][%w_:]*$") then
    error(string_format("prometheus: %s %q is not a valid name", what, tostring(name)), 3)
  end
end

local Family = {}
-- The objects' metatables are tables of their own: with Family.__index = Family, obj.__index
-- would hand a sandboxed recipe the class itself, writable (a __gc set there reaches every
-- object made after).
local family_meta = { __index = Family }

-- The series of `values` (its label values in the family's order): made on first use.
local function series_of(family, values)
  values = values or {}
  local count = #family.labels
  if #values ~= count then
    error(string_format("prometheus: %s takes %d label values, got %d", family.name, count, #values), 3)
  end
  local parts = {}
  for i = 1, count do parts[i] = tostring(values[i]) end
  local key = table_concat(parts, "\0")
  local series = family.index[key]
  if not series then
    local rendered = {}
    for i = 1, count do
      rendered[i] = family.labels[i] .. '="' .. prometheus.escape(parts[i]) .. '"'
    end
    -- Each line's text up to its value is made once, here: a scrape of a thousand targets
    -- writes over a hundred thousand lines, and only the values change between scrapes.
    local labels = table_concat(rendered, ",")
    local braces = labels == "" and "" or ("{" .. labels .. "}")
    series = { value = 0, prefix = family.name .. braces .. " " }
    if family.kind == "histogram" then
      local open = family.name .. "_bucket{" .. (labels == "" and "" or (labels .. ","))
      series.counts, series.sum, series.count, series.bucket_prefixes = {}, 0, 0, {}
      for i = 1, #family.buckets do
        series.counts[i] = 0
        series.bucket_prefixes[i] = open .. 'le="' .. family.bucket_labels[i] .. '"} '
      end
      series.inf_prefix = open .. 'le="+Inf"} '
      series.sum_prefix = family.name .. "_sum" .. braces .. " "
      series.count_prefix = family.name .. "_count" .. braces .. " "
    end
    family.index[key] = series
    family.order[#family.order + 1] = key
  end
  return series
end

-- gauge: family:set(values, number)
function Family:set(values, number)
  if type(number) ~= "number" then error("prometheus: " .. self.name .. ": set needs a number", 2) end
  series_of(self, values).value = number
end

-- counter (or gauge): family:inc(values [, by = 1]); a counter never goes down.
function Family:inc(values, by)
  by = by or 1
  if type(by) ~= "number" or (self.kind == "counter" and by < 0) then
    error("prometheus: " .. self.name .. ": inc needs a number of 0 or more", 2)
  end
  local series = series_of(self, values)
  series.value = series.value + by
end

-- histogram: family:observe(values, number)
function Family:observe(values, number)
  if type(number) ~= "number" or number ~= number then
    error("prometheus: " .. self.name .. ": observe needs a number", 2)
  end
  local series = series_of(self, values)
  for i, bound in ipairs(self.buckets) do
    if number <= bound then series.counts[i] = series.counts[i] + 1 end
  end
  series.sum, series.count = series.sum + number, series.count + 1
end

-- The value of one series (a histogram's count), or nil when it does not exist.
function Family:get(values)
  local parts = {}
  for i = 1, #(values or {}) do parts[i] = tostring(values[i]) end
  local series = self.index[table_concat(parts, "\0")]
  if not series then return nil end
  return self.kind == "histogram" and series.count or series.value
end

-- Forgets every series (a family whose series are all set anew at each scrape).
function Family:clear()
  self.index, self.order = {}, {}
end

-- Forgets the series whose label `name` has `value` (a target no longer watched).
function Family:remove(name, value)
  local at
  for i, label in ipairs(self.labels) do
    if label == name then at = i end
  end
  if not at then return end
  local kept = {}
  for _, key in ipairs(self.order) do
    local parts, i = {}, 0
    for part in (key .. "\0"):gmatch("(.-)%z") do
      i = i + 1
      parts[i] = part
    end
    if parts[at] == tostring(value) then self.index[key] = nil else kept[#kept + 1] = key end
  end
  self.order = kept
end

local function render_family(family, out, pacing)
  local n = #out
  local number = prometheus.number
  out[n + 1] = "# HELP " .. family.name .. " " .. string_gsub(family.help, "[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" })
  out[n + 2] = "# TYPE " .. family.name .. " " .. family.kind
  n = n + 2
  local histogram = family.kind == "histogram"
  for _, key in ipairs(family.order) do
    -- nil when removed during a pause: the list walked is the one the render began with.
    local series = family.index[key] or false
    if series and histogram then
      local prefixes, counts = series.bucket_prefixes, series.counts
      for i = 1, #prefixes do out[n + i] = prefixes[i] .. number(counts[i]) end
      n = n + #prefixes
      out[n + 1] = series.inf_prefix .. number(series.count)
      out[n + 2] = series.sum_prefix .. number(series.sum)
      out[n + 3] = series.count_prefix .. number(series.count)
      n = n + 3
    elseif series then
      n = n + 1
      out[n] = series.prefix .. number(series.value)
    end
    if pacing and n >= pacing.next then
      pacing.pause()
      pacing.next = n + pacing.every
    end
  end
end

local Registry = {}
local registry_meta = { __index = Registry }  -- a table of its own: see family_meta

local function add_family(registry, kind, name, help, labels, buckets)
  check_name(name, "metric name")
  if registry.families[name] then error("prometheus: " .. name .. " is registered twice", 3) end
  labels = labels or {}
  for _, label in ipairs(labels) do
    check_name(label, "label name")
    if label == "le" and kind == "histogram" then error("prometheus: le is the histogram's own label", 3) end
  end
  local family = setmetatable({ kind = kind, name = name, help = help or name, labels = labels,
                                buckets = buckets, index = {}, order = {} }, family_meta)
  if kind == "histogram" then
    family.bucket_labels = {}
    for i, bound in ipairs(buckets) do
      if type(bound) ~= "number" or (i > 1 and bound <= buckets[i - 1]) then
        error("prometheus: " .. name .. ": buckets must be increasing numbers", 3)
      end
      family.bucket_labels[i] = prometheus.number(bound)
    end
  end
  registry.families[name] = family
  registry.order[#registry.order + 1] = family
  return family
end

function Registry:gauge(name, help, labels) return add_family(self, "gauge", name, help, labels) end
function Registry:counter(name, help, labels) return add_family(self, "counter", name, help, labels) end
function Registry:histogram(name, help, labels, buckets)
  return add_family(self, "histogram", name, help, labels, buckets or prometheus.duration_buckets)
end

-- The registry's family called `name`, or nil.
function Registry:family(name) return self.families[name] end

-- The exposition text: every family, HELP and TYPE first; families without series are left out.
-- pause, when given, is called after a series once every `pause_lines` (10,000) lines have
-- been written, so that a long render (a scrape of thousands of series) lets other tasks run.
-- A series changed meanwhile shows its new value or its old one, never half of each.
function Registry:render(pause, pause_lines)
  local out = {}
  local every = pause_lines or 10000
  local pacing = pause and { pause = pause, every = every, next = every } or nil
  for _, family in ipairs(self.order) do
    if #family.order > 0 then render_family(family, out, pacing) end
  end
  out[#out + 1] = ""
  return table_concat(out, "\n")
end

-- A registry of metric families.
function prometheus.registry()
  return setmetatable({ families = {}, order = {} }, registry_meta)
end

-- The Content-Type of the exposition.
prometheus.content_type = "text/plain; version=0.0.4; charset=utf-8"

return prometheus
