-- json: encode Lua values as JSON text (RFC 8259) for --json output.
-- Tables with only keys 1..n are arrays (an empty table is an object unless marked with
-- json.array); other keys must be strings or numbers. Strings are assumed to be UTF-8.

local type, pairs, ipairs, tostring, tonumber, error, setmetatable, getmetatable, math_type =
  type, pairs, ipairs, tostring, tonumber, error, setmetatable, getmetatable, math.type
local string_format, string_gsub, string_byte = string.format, string.gsub, string.byte
local table_concat, table_sort = table.concat, table.sort

local json = {}
local array_marker = {}

-- Marks a table to encode as an array even when empty.
function json.array(t) return setmetatable(t or {}, array_marker) end

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
  return '"' .. string_gsub(s, '[%c"\\]', function(c)
    return escapes[c] or string_format("\\u%04x", string_byte(c))
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == array_marker then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 then return false end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

local function encode(value, seen, out)
  local kind = type(value)
  if value == nil then out[#out + 1] = "null"
  elseif kind == "boolean" then out[#out + 1] = tostring(value)
  elseif kind == "number" then
    if value ~= value or value == 1 / 0 or value == -1 / 0 then
      error("json: cannot encode " .. tostring(value))
    end
    out[#out + 1] = math_type(value) == "integer" and tostring(value) or string_format("%.17g", value)
  elseif kind == "string" then out[#out + 1] = quote(value)
  elseif kind == "table" then
    if seen[value] then error("json: cannot encode a table that contains itself") end
    seen[value] = true
    if is_array(value) then
      out[#out + 1] = "["
      for i = 1, #value do
        if i > 1 then out[#out + 1] = "," end
        encode(value[i], seen, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for key in pairs(value) do
        if type(key) ~= "string" and type(key) ~= "number" then
          error("json: object keys must be strings or numbers, got " .. type(key))
        end
        keys[#keys + 1] = tostring(key)
      end
      table_sort(keys)
      out[#out + 1] = "{"
      for i, key in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = quote(key)
        out[#out + 1] = ":"
        local v = value[key]
        if v == nil then v = value[tonumber(key)] end
        encode(v, seen, out)
      end
      out[#out + 1] = "}"
    end
    seen[value] = nil
  else
    error("json: cannot encode a " .. kind .. " value")
  end
end

function json.encode(value)
  local out = {}
  encode(value, {}, out)
  return table_concat(out)
end

return json
