-- Tab completion for the REPL. It only inspects values with raw reads: a
-- keypress must never run user code (__index functions, proxies) nor raise.

local type, next, rawget, pcall = type, next, rawget, pcall
local string_find, string_match, string_sub, string_gmatch =
  string.find, string.match, string.sub, string.gmatch
local table_sort = table.sort
-- Completion is introspection, so look past __metatable protection.
local getmetatable = debug and debug.getmetatable or getmetatable

local complete = {}

-- Lua follows __index tables further, but a few levels covers class-style
-- objects without walking arbitrarily long chains on every keypress.
local MAX_INDEX_LEVELS = 3

local KEYWORDS = {}
for word in string_gmatch([[
  and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]], "%a+") do
  KEYWORDS[#KEYWORDS + 1] = word
  KEYWORDS[word] = true
end

-- Marks names from __fields, whose values are computed and so unknown.
local UNKNOWN = {}

local function is_identifier(s)
  return type(s) == "string" and string_find(s, "^[A-Za-z_][A-Za-z0-9_]*$") ~= nil
    and not KEYWORDS[s]
end

local function index_table(v)
  local mt = getmetatable(v)
  if type(mt) ~= "table" then return nil, nil end
  local index = rawget(mt, "__index")
  return type(index) == "table" and index or nil, mt
end

local function lookup(v, name)
  if type(v) == "table" then
    local found = rawget(v, name)
    if found ~= nil then return found end
  end
  for _ = 1, MAX_INDEX_LEVELS do
    v = index_table(v)
    if not v then return nil end
    local found = rawget(v, name)
    if found ~= nil then return found end
  end
  return nil
end

-- name -> value (or UNKNOWN) as `v.name` would see it: earlier sources shadow later ones.
local function members(v)
  local found = {}
  local function add_keys(t)
    for k, value in next, t do
      if is_identifier(k) and found[k] == nil then found[k] = value end
    end
  end
  local function add_fields(mt)
    local fields = type(mt) == "table" and rawget(mt, "__fields")
    if type(fields) ~= "table" then return end
    -- Accept both a set ({ subject = true }) and a list ({ "subject" }) of names.
    for k, value in next, fields do
      local name = type(k) == "string" and k or value
      if is_identifier(name) and found[name] == nil then found[name] = UNKNOWN end
    end
  end
  if type(v) == "table" then add_keys(v) end
  for _ = 1, MAX_INDEX_LEVELS do
    local index, mt = index_table(v)
    add_fields(mt)
    if not index then break end
    add_keys(index)
    v = index
  end
  return found
end

local function candidates(line, env)
  if type(line) ~= "string" or type(env) ~= "table" then return {} end
  local word = string_match(line, "[A-Za-z0-9_.:]*$")
  -- Everything up to the last separator is the path; the rest is the partial name.
  local head, sep, partial = string_match(word, "^(.*)([.:])([A-Za-z0-9_]*)$")
  if not head then head, sep, partial = "", "", word end
  if partial ~= "" and not string_find(partial, "^[A-Za-z_]") then return {} end

  local value = env
  if sep ~= "" then
    -- A method call can only be the last step: "a:b.c" is not a path.
    for segment in string_gmatch(head .. ".", "([^.]*)%.") do
      if not is_identifier(segment) then return {} end
      value = lookup(value, segment)
      if value == nil then return {} end
    end
  end

  local methods_only = sep == ":"
  -- Class tables usually double as metatables: keep __index, __gc... out of
  -- sight unless asked for.
  local show_meta = string_sub(partial, 1, 2) == "__"
  local result, seen = {}, {}
  local function offer(name)
    if not seen[name] and string_sub(name, 1, #partial) == partial
      and (show_meta or string_sub(name, 1, 2) ~= "__") then
      seen[name] = true
      result[#result + 1] = head .. sep .. name
    end
  end
  for name, v in next, members(value) do
    if not methods_only or v == UNKNOWN or type(v) == "function" then offer(name) end
  end
  if sep == "" then
    for i = 1, #KEYWORDS do offer(KEYWORDS[i]) end
  end
  table_sort(result)
  return result
end

function complete.candidates(line, env)
  local ok, result = pcall(candidates, line, env)
  return ok and result or {}
end

return complete
