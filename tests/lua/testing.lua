-- A minimal test runner for Lua tests: local t = dofile("tests/lua/testing.lua").
-- Self-contained on purpose, so a broken stdlib module cannot break its own tests' reporting.

local type, next, rawget, pcall, xpcall, tostring, error, tonumber =
  type, next, rawget, pcall, xpcall, tostring, error, tonumber
local string_format, string_find, string_gsub, string_gmatch =
  string.format, string.find, string.gsub, string.gmatch
local table_concat, table_sort = table.concat, table.sort
local io_write, os_exit, traceback, getinfo = io.write, os.exit, debug.traceback, debug.getinfo
local math_type = math.type

local t = {}
local tests = {}

local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  return ok and type(s) == "string" and s or "<" .. type(v) .. ">"
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return safe_tostring(a) < safe_tostring(b)
end

local function is_name(k)
  return type(k) == "string" and string_find(k, "^[%a_][%w_]*$") ~= nil
end

-- Shows values unambiguously: 1 vs 1.0 vs "1" must look different in a failure.
local function show(v, seen)
  local tv = type(v)
  if tv == "string" then return string_format("%q", v) end
  if tv == "number" then
    if math_type(v) == "integer" then return string_format("%d", v) end
    local s = string_format("%.14g", v)
    if tonumber(s) ~= v then s = string_format("%.17g", v) end
    return string_find(s, "^%-?%d+$") and s .. ".0" or s
  end
  if tv ~= "table" then return safe_tostring(v) end
  seen = seen or {}
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local keys = {}
  for k in next, v do keys[#keys + 1] = k end
  table_sort(keys, key_order)
  local parts = {}
  for i = 1, #keys do
    local k = keys[i]
    local key = is_name(k) and k or "[" .. show(k, seen) .. "]"
    parts[i] = key .. " = " .. show(rawget(v, k), seen)
  end
  seen[v] = nil
  return "{" .. table_concat(parts, ", ") .. "}"
end

local function step(k)
  return is_name(k) and "." .. k or "[" .. show(k) .. "]"
end

-- Returns nil when equal, else the path to the first difference.
local function diff(a, b, path, seen)
  if a == b then return nil end
  if a ~= a and b ~= b then return nil end -- NaN equals NaN for testing purposes
  if type(a) ~= "table" or type(b) ~= "table" then return path end
  -- Guards against cycles: a pair already under comparison is assumed equal.
  seen[a] = seen[a] or {}
  if seen[a][b] then return nil end
  seen[a][b] = true
  for k, v in next, a do
    local d = diff(v, rawget(b, k), path .. step(k), seen)
    if d then return d end
  end
  for k in next, b do
    if rawget(a, k) == nil then return path .. step(k) end
  end
  return nil
end

local function fail(msg, default)
  error((msg and msg .. ": " or "") .. default, 3)
end

function t.test(name, fn)
  tests[#tests + 1] = { name = name, fn = fn }
end

function t.eq(actual, expected, msg)
  local where = diff(actual, expected, "", {})
  if where == nil then return end
  local text = "expected " .. show(expected) .. "\n     got " .. show(actual)
  if where ~= "" then text = text .. "\n  first difference at " .. where end
  fail(msg, text)
end

function t.ok(v, msg)
  if not v then fail(msg, "expected a true value, got " .. show(v)) end
end

function t.raises(fn, pattern, msg)
  local ok, err = pcall(fn)
  if ok then fail(msg, "expected an error, none was raised") end
  local text = safe_tostring(err)
  if pattern and not string_find(text, pattern) then
    fail(msg, "error " .. show(text) .. " does not match " .. show(pattern))
  end
  return err
end

local HERE = getinfo(1, "S").short_src

-- Keeps only the frames of the test itself: the runner's and assertions' own
-- frames are the same in every failure.
local function handler(e)
  local lines = {}
  for line in string_gmatch(traceback(safe_tostring(e), 2), "[^\n]+") do
    if string_find(line, "in function 'xpcall'", 1, true) then break end
    local noise = string_find(line, HERE, 1, true) or string_find(line, "in function 'error'", 1, true)
    if not noise then
      lines[#lines + 1] = line
    end
  end
  return table_concat(lines, "\n")
end

function t.run()
  local passed, failed = 0, 0
  for i = 1, #tests do
    local case = tests[i]
    local ok, err = xpcall(case.fn, handler)
    if ok then
      passed = passed + 1
      io_write("ok   ", case.name, "\n")
    else
      failed = failed + 1
      io_write("FAIL ", case.name, "\n  ", (string_gsub(err, "\n", "\n  ")), "\n")
    end
  end
  io_write(passed, " passed, ", failed, " failed\n")
  os_exit(failed == 0 and 0 or 1)
end

return t
