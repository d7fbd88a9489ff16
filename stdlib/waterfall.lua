-- waterfall: where the time went, drawn as a browser's network waterfall in plain ASCII (it
-- must survive being pasted into a ticket): one row per bar, every bar on one time axis, its
-- duration at the right, and an axis line under the rows. Pure: no I/O, no clock.
--
--   local waterfall = require "smtpsh.waterfall"
--   for _, line in ipairs(waterfall.render({
--     { name = "connect", start = 0, finish = 0.02 },
--     { name = "rcpt", start = 0.06, finish = 0.07 },
--     { name = "wait", start = 0.07, finish = 58.1, wait = true },
--     { name = "retry 1", start = 58.1, finish = 61.2 },
--   }, 60)) do print(line) end
--
--   connect |#                                        |    20 ms
--   rcpt    |#                                        |    10 ms
--   wait    |.......................................  |   58.0 s
--   retry 1 |                                      ###|    3.1 s
--            0                                  61.2 s
--
-- waterfall.render(bars, width) -> lines (strings without newlines; {} for no bars)
--   bars: { {name = "text", start = seconds, finish = seconds, wait = bool}, ... }, any origin
--     (the earliest start is the axis's 0); a finish before its start counts as the start.
--   width: the columns of a line (default 80). The bar area is what the name and duration
--     columns leave, but never under waterfall.min_bar columns: a narrower width is exceeded.
-- Every bar is at least one column wide, so a step of 0 ms still shows where it happened.
-- waterfall.duration(seconds) -> "0 ms", "120 ms", "2.5 s", "61.2 s", "300 s"

local type, ipairs, error, tostring = type, ipairs, error, tostring
local string_format, string_rep, string_sub = string.format, string.rep, string.sub
local math_floor, math_ceil, math_max, math_min, math_huge = math.floor, math.ceil, math.max, math.min, math.huge

local waterfall = {}

waterfall.min_bar = 10       -- columns of the bar area, whatever the width
waterfall.max_name = 14      -- a longer name is cut: the bars matter more
local duration_width = 8     -- "61.2 s", "1234 ms" never wider

function waterfall.duration(seconds)
  if seconds < 0.9995 then return string_format("%.0f ms", seconds * 1000) end
  if seconds < 99.95 then return string_format("%.1f s", seconds) end
  return string_format("%.0f s", seconds)
end

local function is_time(value)
  return type(value) == "number" and value == value and value > -math_huge and value < math_huge
end

-- The bars checked, each finish at least its start; a malformed bar is a caller's bug.
local function checked(bars)
  if type(bars) ~= "table" then error("waterfall.render: bars must be a list, got " .. type(bars), 3) end
  local out = {}
  for i, bar in ipairs(bars) do
    if type(bar) ~= "table" or type(bar.name) ~= "string" or not is_time(bar.start) or not is_time(bar.finish) then
      error("waterfall.render: bar " .. i .. " needs a string name and number start and finish", 3)
    end
    out[i] = { name = bar.name, start = bar.start, finish = math_max(bar.start, bar.finish), wait = bar.wait }
  end
  return out
end

-- The first and last column (1-based) a bar covers in `columns`, on the axis origin..origin+span.
local function columns_of(bar, origin, span, columns)
  if span <= 0 then return 1, 1 end
  local first = math_floor((bar.start - origin) / span * columns) + 1
  local last = math_ceil((bar.finish - origin) / span * columns)
  first = math_min(math_max(first, 1), columns)
  return first, math_min(math_max(last, first), columns)
end

function waterfall.render(bars, width)
  bars = checked(bars)
  if #bars == 0 then return {} end
  width = width or 80
  if not is_time(width) then error("waterfall.render: width must be a number, got " .. tostring(width), 2) end
  local origin, last = bars[1].start, bars[1].finish
  local name_width = 0
  for _, bar in ipairs(bars) do
    origin, last = math_min(origin, bar.start), math_max(last, bar.finish)
    name_width = math_max(name_width, math_min(#bar.name, waterfall.max_name))
  end
  local span = last - origin
  -- "NAME |BARS| DURATION": the bar area is what is left of the width.
  local columns = math_max(waterfall.min_bar, math_floor(width) - name_width - 4 - duration_width)
  local lines = {}
  for i, bar in ipairs(bars) do
    local first, final = columns_of(bar, origin, span, columns)
    local name = string_sub(bar.name, 1, name_width)
    lines[i] = string_format("%-" .. name_width .. "s |%s%s%s| %" .. duration_width .. "s", name,
      string_rep(" ", first - 1), string_rep(bar.wait and "." or "#", final - first + 1),
      string_rep(" ", columns - final), waterfall.duration(bar.finish - bar.start))
  end
  -- The axis: 0 under the bars' left edge, the whole span under their right edge.
  local total = waterfall.duration(span)
  lines[#lines + 1] = string_rep(" ", name_width + 2) .. "0" ..
    string_rep(" ", math_max(1, columns - 1 - #total)) .. total
  return lines
end

return waterfall
