-- The REPL's value printer: renders any value as readable Lua-like text.
-- It must never raise, since it runs on whatever a user expression returns.

local type, next, rawget, select, pcall, tostring = type, next, rawget, select, pcall, tostring
local string_format, string_rep, string_gsub, string_find, string_byte, string_gmatch =
  string.format, string.rep, string.gsub, string.find, string.byte, string.gmatch
local table_concat, table_sort = table.concat, table.sort
local math_type, math_huge = math.type, math.huge
-- The real metatable is what tostring() consults, even behind __metatable.
local getmetatable = debug and debug.getmetatable or getmetatable

local pretty = {}

local DEFAULT_DEPTH, DEFAULT_WIDTH = 4, 80

local KEYWORDS = {}
for word in string_gmatch([[
  and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]], "%a+") do
  KEYWORDS[word] = true
end

local ESCAPES = {
  ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\v"] = "\\v", ['"'] = '\\"', ["\\"] = "\\\\",
}

local function quote(s)
  -- The captured digit matters: "\1" followed by "2" must become "\0012", not "\12".
  local body = string_gsub(s, '([\0-\31\127"\\])(%d?)', function(c, digit)
    local e = ESCAPES[c]
    if e then return e .. digit end
    return string_format(digit == "" and "\\%d" or "\\%03d", string_byte(c)) .. digit
  end)
  return '"' .. body .. '"'
end

-- Formatted by hand rather than with tostring so a metatable set on numbers
-- through the debug library cannot run here.
local function number(n)
  if math_type(n) == "integer" then return string_format("%d", n) end
  local s = string_format("%.14g", n)
  if string_find(s, "^%-?%d+$") then s = s .. ".0" end
  return s
end

local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  local msg = s
  if type(msg) ~= "string" then
    local ok2, m = pcall(tostring, msg)
    msg = (ok2 and type(m) == "string") and m or type(msg)
  end
  return "<__tostring error: " .. msg .. ">"
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

local function is_identifier(s)
  return string_find(s, "^[A-Za-z_][A-Za-z0-9_]*$") ~= nil and not KEYWORDS[s]
end

local function by_repr(a, b) return a[2] < b[2] end

-- Numbers, then strings, then anything else by its tostring. Each group is
-- sorted on its own so the common cases use the fast built-in comparison.
local function sort_keys(keys)
  local numbers, strings, others = {}, {}, {}
  for i = 1, #keys do
    local k = keys[i]
    local tk = type(k)
    if tk == "number" then numbers[#numbers + 1] = k
    elseif tk == "string" then strings[#strings + 1] = k
    else others[#others + 1] = { k, safe_tostring(k) } end
  end
  table_sort(numbers)
  table_sort(strings)
  table_sort(others, by_repr)
  local n = 0
  for i = 1, #numbers do n = n + 1; keys[n] = numbers[i] end
  for i = 1, #strings do n = n + 1; keys[n] = strings[i] end
  for i = 1, #others do n = n + 1; keys[n] = others[i][1] end
end

local NO_KEYS = {}

-- Returns the length of the 1..n run (printed without keys) and the other keys in order.
local function entries(t, ctx)
  local keys = ctx.keys[t]
  if keys then return ctx.counts[t], keys end
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  keys = NO_KEYS
  for k in next, t do
    if not (math_type(k) == "integer" and k >= 1 and k <= n) then
      if keys == NO_KEYS then keys = {} end
      keys[#keys + 1] = k
    end
  end
  if keys ~= NO_KEYS then sort_keys(keys) end
  ctx.counts[t], ctx.keys[t] = n, keys
  return n, keys
end

-- True when v prints as a table body rather than as a single token.
local function expandable(v, level, ctx)
  return type(v) == "table" and not has_tostring(v) and level <= ctx.depth and not ctx.path[v]
end

local inline

local function key_prefix(k, level, ctx)
  if type(k) == "string" and is_identifier(k) then return k .. " = " end
  return "[" .. inline(k, level, ctx, math_huge) .. "] = "
end

local function scalar(v, level, ctx)
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv == "number" then return number(v) end
  if tv == "boolean" then return v and "true" or "false" end
  if tv == "nil" then return "nil" end
  if tv == "table" and not has_tostring(v) then
    if ctx.path[v] then return "<cycle>" end
    if level > ctx.depth then return "{...}" end
  end
  return safe_tostring(v)
end

-- One-line form, or nil as soon as it outgrows budget: the attempt is made at
-- every nesting level, so it must stay cheap for tables that get split anyway.
function inline(v, level, ctx, budget)
  if not expandable(v, level, ctx) then return scalar(v, level, ctx) end
  local n, keys = entries(v, ctx)
  local count = n + #keys
  if count == 0 then return "{}" end
  ctx.path[v] = true
  local parts, used = {}, 2
  for i = 1, count do
    local prefix, value = "", nil
    if i <= n then
      value = rawget(v, i)
    else
      local k = keys[i - n]
      prefix, value = key_prefix(k, level + 1, ctx), rawget(v, k)
    end
    used = used + #prefix + 2
    local s = inline(value, level + 1, ctx, budget - used)
    if s == nil or used + #s > budget then
      ctx.path[v] = nil
      return nil
    end
    used = used + #s
    parts[i] = prefix .. s
  end
  ctx.path[v] = nil
  return "{ " .. table_concat(parts, ", ") .. " }"
end

-- avail is the room left on the current line, indent the column of the closing brace.
local function block(v, level, ctx, indent, avail)
  local one = inline(v, level, ctx, avail)
  if one and #one <= avail or not expandable(v, level, ctx) then
    return one or scalar(v, level, ctx)
  end
  local n, keys = entries(v, ctx)
  if n + #keys == 0 then return "{}" end
  ctx.path[v] = true
  local pad = string_rep(" ", indent + 2)
  local lines = { "{" }
  local count = n + #keys
  for i = 1, count do
    local prefix, value = "", nil
    if i <= n then
      value = rawget(v, i)
    else
      local k = keys[i - n]
      prefix, value = key_prefix(k, level + 1, ctx), rawget(v, k)
    end
    -- The trailing comma takes one column.
    local room = ctx.width - indent - 2 - #prefix - 1
    lines[i + 1] = pad .. prefix .. block(value, level + 1, ctx, indent + 2, room) .. ","
  end
  lines[count + 2] = string_rep(" ", indent) .. "}"
  ctx.path[v] = nil
  return table_concat(lines, "\n")
end

local function option(opts, name, default)
  local v = rawget(opts, name)
  if type(v) == "number" and v == v and v >= 0 then return v end
  return default
end

local function format(value, opts)
  if type(opts) ~= "table" then opts = {} end
  local indent = option(opts, "indent", 0)
  local ctx = {
    depth = option(opts, "depth", DEFAULT_DEPTH),
    width = option(opts, "width", DEFAULT_WIDTH),
    path = {},
    -- entries() per table, since each table is measured before it is laid out
    counts = {},
    keys = {},
  }
  local ok, s = pcall(block, value, 1, ctx, indent, ctx.width - indent)
  if ok then return s end
  -- Only reachable on pathological input, e.g. nesting deeper than the C stack.
  return "<pretty error: " .. (type(s) == "string" and s or type(s)) .. ">"
end

function pretty.format(value, opts)
  return format(value, opts)
end

function pretty.print_values(write, ...)
  local n = select("#", ...)
  local args = { ... }
  local parts = {}
  for i = 1, n do parts[i] = format(args[i]) end
  write(table_concat(parts, "\t") .. "\n")
end

return pretty
