-- json: JSON text (RFC 8259) to and from Lua values, for --json output and for reading
-- JSON (APIs, saved reports).
--
--   json.encode(value)   -> text; raises on what cannot be JSON (functions, NaN, cycles)
--   json.decode(text)    -> value | nil, "json: <what> at byte N"
--   json.array(t)        -> t, marked to encode as an array even when empty
--   json.null            -> the sentinel that stands for JSON null inside tables
--   json.quote(s)        -> s as a JSON string (for writers of a fixed shape)
--
-- Encoding: tables with only keys 1..n are arrays (an empty table is an object unless
-- marked with json.array); other keys must be strings or numbers; object keys are sorted.
-- Strings are assumed to be UTF-8. nil and json.null encode as null.
--
-- Decoding: objects become tables with string keys (a repeated key: the last one wins),
-- arrays become json.array tables (so [] encodes back as []), null becomes json.null (a
-- nil could not sit in a table), numbers without a fraction or exponent become integers
-- when they fit in one, other numbers floats. String escapes, \uXXXX and surrogate pairs
-- are decoded to UTF-8. The text must be valid UTF-8 (a leading byte order mark is
-- skipped), hold exactly one value (whitespace around it is fine, anything else is
-- "trailing garbage") and nest at most 200 arrays/objects deep. Errors are returned,
-- never raised, except for a non-string argument:
--
--   json.decode('{"a":[1,2.5,null,"\u00e9"]}')  -> {a = {1, 2.5, json.null, "é"}}
--   json.decode("[1,]")   -> nil, "json: unexpected character ']' at byte 4"

local type, pairs, ipairs, tostring, tonumber, error, setmetatable, getmetatable, math_type =
  type, pairs, ipairs, tostring, tonumber, error, setmetatable, getmetatable, math.type
local pcall = pcall
local string_format, string_gsub, string_byte, string_find, string_sub, string_match =
  string.format, string.gsub, string.byte, string.find, string.sub, string.match
local table_concat, table_sort = table.concat, table.sort
local utf8_char, utf8_len = utf8.char, utf8.len
local math_huge = math.huge

local json = {}
local array_marker = {}

-- JSON null where a value must exist (inside tables): a unique, read-only sentinel.
local null = setmetatable({}, {
  __tostring = function() return "json.null" end,
  __newindex = function() error("json.null is read-only", 2) end,
  __metatable = "json.null",
})
json.null = null

-- Marks a table to encode as an array even when empty.
function json.array(t) return setmetatable(t or {}, array_marker) end

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function escape(c) return escapes[c] or string_format("\\u%04x", string_byte(c)) end

local function quote(s)
  -- Most strings need no escape: one search instead of a substitution with a callback.
  if not string_find(s, '[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. string_gsub(s, '[%c"\\]', escape) .. '"'
end

-- json.quote(s) -> s as a JSON string, quotes included: for writers that put out a fixed shape
-- faster than encode can (bulk output, one object a line).
json.quote = quote

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
  if value == nil or value == null then out[#out + 1] = "null"
  elseif kind == "boolean" then out[#out + 1] = tostring(value)
  elseif kind == "number" then
    if value ~= value or value == 1 / 0 or value == -1 / 0 then
      error("json: cannot encode " .. tostring(value))
    end
    if math_type(value) == "integer" then
      out[#out + 1] = tostring(value)
    elseif value == 0 and 1 / value < 0 then
      out[#out + 1] = "-0.0"  -- "-0" would decode as the integer 0, losing the sign
    else
      out[#out + 1] = string_format("%.17g", value)
    end
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

-- Decoding. The parser raises a private failure table that json.decode turns into
-- nil, message; anything else raised is a bug and propagates.

local MAX_DEPTH = 200
local failure = {}

local function fail(what, pos)
  error(setmetatable({ message = "json: " .. what .. " at byte " .. pos }, failure), 0)
end

local function describe(text, pos)
  local c = string_sub(text, pos, pos)
  if c == "" then return "end of text" end
  local b = string_byte(c)
  if b >= 32 and b < 127 then return "character '" .. c .. "'" end
  return string_format("byte 0x%02x", b)
end

local function unexpected(text, pos)
  if pos > #text then fail("unexpected end of text", pos) end
  fail("unexpected " .. describe(text, pos), pos)
end

-- The position of the first byte that is not JSON whitespace.
local function skip(text, pos)
  return string_find(text, "[^ \t\n\r]", pos) or #text + 1
end

local simple_escapes = { [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f",
                         [110] = "\n", [114] = "\r", [116] = "\t" }

-- A string starting at the opening quote at pos -> the string, the position after it.
local function decode_string(text, pos)
  local parts, n = {}, 0
  local i = pos + 1
  while true do
    local j = string_find(text, '[\0-\31"\\]', i)
    if not j then fail("unterminated string", pos) end
    if j > i then
      n = n + 1
      parts[n] = string_sub(text, i, j - 1)
    end
    local c = string_byte(text, j)
    if c == 34 then -- "
      return table_concat(parts), j + 1
    elseif c == 92 then -- backslash
      local e = string_byte(text, j + 1)
      if e == nil then fail("unterminated string", pos) end
      local simple = simple_escapes[e]
      if simple then
        n = n + 1
        parts[n] = simple
        i = j + 2
      elseif e == 117 then -- u
        local hex = string_match(text, "^%x%x%x%x", j + 2)
        if not hex then fail("invalid \\u escape", j) end
        local cp = tonumber(hex, 16)
        i = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local low = string_match(text, "^\\u(%x%x%x%x)", i)
          local lc = low and tonumber(low, 16)
          if not lc or lc < 0xDC00 or lc > 0xDFFF then
            fail("high surrogate \\u" .. hex .. " not followed by a low surrogate", j)
          end
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lc - 0xDC00)
          i = i + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          fail("low surrogate \\u" .. hex .. " without a high surrogate", j)
        end
        n = n + 1
        parts[n] = utf8_char(cp)
      else
        fail("invalid escape '\\" .. string_sub(text, j + 1, j + 1) .. "'", j)
      end
    else
      fail(string_format("control character 0x%02x in string", c), j)
    end
  end
end

-- A number starting at pos -> the number, the position after it.
local function decode_number(text, pos)
  local _, e = string_find(text, "^-?%d+", pos)
  if not e or string_find(text, "^-?0%d", pos) then fail("invalid number", pos) end
  local p = e + 1
  local is_float = false
  if string_byte(text, p) == 46 then -- .
    _, e = string_find(text, "^%d+", p + 1)
    if not e then fail("invalid number", pos) end
    p, is_float = e + 1, true
  end
  local x = string_byte(text, p)
  if x == 101 or x == 69 then -- e E
    _, e = string_find(text, "^[-+]?%d+", p + 1)
    if not e then fail("invalid number", pos) end
    p, is_float = e + 1, true
  end
  local literal = string_sub(text, pos, p - 1)
  -- Without a fraction or exponent tonumber gives an integer when it fits, else a float.
  local value = tonumber(literal)
  if value == math_huge or value == -math_huge then fail("number out of range", pos) end
  return value, p
end

local decode_value

local function decode_array(text, pos, depth)
  local out, n = setmetatable({}, array_marker), 0
  local i = skip(text, pos + 1)
  if string_byte(text, i) == 93 then return out, i + 1 end -- ]
  while true do
    local value
    value, i = decode_value(text, i, depth)
    n = n + 1
    out[n] = value
    i = skip(text, i)
    local c = string_byte(text, i)
    if c == 93 then return out, i + 1 end
    if c ~= 44 then -- ,
      if c == nil then unexpected(text, i) end
      fail("expected ',' or ']' but found " .. describe(text, i), i)
    end
    i = skip(text, i + 1)
  end
end

local function decode_object(text, pos, depth)
  local out = {}
  local i = skip(text, pos + 1)
  if string_byte(text, i) == 125 then return out, i + 1 end -- }
  while true do
    if string_byte(text, i) ~= 34 then
      if i > #text then unexpected(text, i) end
      fail("expected a string key but found " .. describe(text, i), i)
    end
    local key
    key, i = decode_string(text, i)
    i = skip(text, i)
    if string_byte(text, i) ~= 58 then -- :
      if i > #text then unexpected(text, i) end
      fail("expected ':' but found " .. describe(text, i), i)
    end
    local value
    value, i = decode_value(text, skip(text, i + 1), depth)
    out[key] = value
    i = skip(text, i)
    local c = string_byte(text, i)
    if c == 125 then return out, i + 1 end
    if c ~= 44 then
      if c == nil then unexpected(text, i) end
      fail("expected ',' or '}' but found " .. describe(text, i), i)
    end
    i = skip(text, i + 1)
  end
end

local literals = { [116] = { "true", true }, [102] = { "false", false }, [110] = { "null", null } }

-- A value starting at pos (whitespace already skipped) -> the value, the position after it.
function decode_value(text, pos, depth)
  local c = string_byte(text, pos)
  if c == 34 then return decode_string(text, pos) end
  if c == 123 or c == 91 then -- { [
    if depth >= MAX_DEPTH then fail("nesting deeper than " .. MAX_DEPTH, pos) end
    if c == 123 then return decode_object(text, pos, depth + 1) end
    return decode_array(text, pos, depth + 1)
  end
  if c == 45 or (c and c >= 48 and c <= 57) then return decode_number(text, pos) end
  local literal = literals[c]
  if literal then
    local word = literal[1]
    if string_sub(text, pos, pos + #word - 1) ~= word then fail("invalid literal", pos) end
    return literal[2], pos + #word
  end
  unexpected(text, pos)
end

local function decode(text)
  local valid, bad = utf8_len(text)
  if not valid then fail("invalid UTF-8", bad) end
  local start = 1
  if string_sub(text, 1, 3) == "\239\187\191" then start = 4 end -- a UTF-8 byte order mark
  local value, pos = decode_value(text, skip(text, start), 0)
  pos = skip(text, pos)
  if pos <= #text then fail("trailing garbage", pos) end
  return value
end

function json.decode(text)
  if type(text) ~= "string" then
    error("json.decode: text must be a string, got " .. type(text), 2)
  end
  local ok, result = pcall(decode, text)
  if ok then return result end
  if getmetatable(result) == failure then return nil, result.message end
  error(result, 0)
end

return json
