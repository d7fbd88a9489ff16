-- help: the API reference in the REPL and in scripts, printed from stdlib/apidoc.lua (the one
-- source the man page and README's API section are generated from too).
--
--   help()                  the modules and what each is for
--   help "smtp"             a module: its functions, one line each
--   help "smtp.connect"     one function: signature, summary, returns, errors, example
--   help "starttls"         a bare name: the first module's that has it, others named
--   help(smtp.connect)      the same from the value; help(s) for a session, help(dns) a module
--   help.text(topic)        -> the text, and whether the topic was found
--
-- The shell installs `help` as a global (shell/runner.cpp) and loads this module on first use.

local apidoc = require "smtpsh.apidoc"

local type, ipairs, pcall, require, getmetatable, setmetatable, tostring, select =
  type, ipairs, pcall, require, getmetatable, setmetatable, tostring, select
local string_format, string_lower, string_byte, string_find, string_match, string_rep, string_gmatch =
  string.format, string.lower, string.byte, string.find, string.match, string.rep, string.gmatch
local table_concat, table_sort, math_min, math_max = table.concat, table.sort, math.min, math.max
local io_write = io.write

local help = {}

local width = 80

-- Words of `text` in lines of at most `width` columns: the first starts with `first` (default
-- `indent`), the others with `indent`.
local function wrap(text, indent, first)
  first = first or indent
  local lines, line, start = {}, first, #first
  for word in string_gmatch(text, "%S+") do
    if #line > start and #line + 1 + #word > width then
      lines[#lines + 1] = line
      line, start = indent .. word, #indent
    else
      line = line .. (#line > start and " " or "") .. word
    end
  end
  lines[#lines + 1] = line
  return table_concat(lines, "\n")
end

-- Every documented entry once: { {full = "smtp.connect", module = doc, entry = e}, ... }, in
-- the order of apidoc.modules. Built on first use.
local index
local function entries()
  if index then return index end
  index = {}
  for _, doc in apidoc.each() do
    for _, entry in ipairs(doc.entries) do
      index[#index + 1] = { full = apidoc.full_name(doc, entry), module = doc, entry = entry }
    end
  end
  return index
end

local function entry_text(doc, entry)
  local lines = { entry.sig, wrap(entry.summary, "  ") }
  if not entry.field then
    lines[#lines + 1] = wrap(entry.returns, "           ", "  returns: ")
    lines[#lines + 1] = wrap(entry.errors, "           ", "  errors:  ")
  end
  if entry.example then lines[#lines + 1] = "  example: " .. entry.example end
  return table_concat(lines, "\n") .. "\n"
end

local function module_text(doc)
  local lines = { doc.name .. ": " .. doc.title, wrap(doc.summary, "  ") }
  if doc.require then
    lines[#lines + 1] = doc.global and "  (the global " .. doc.name .. ", also require \"" .. doc.require .. "\")"
                        or "  local " .. doc.name .. " = require \"" .. doc.require .. "\""
  elseif doc.object then
    lines[#lines + 1] = "  " .. doc.object
  end
  for _, note in ipairs(doc.notes or {}) do lines[#lines + 1] = wrap(note, "  ") end
  lines[#lines + 1] = ""
  local column = 0
  for _, entry in ipairs(doc.entries) do column = math_max(column, #entry.sig) end
  column = math_min(column, 36)
  for _, entry in ipairs(doc.entries) do
    local sig = entry.sig
    if #sig > column then
      lines[#lines + 1] = "  " .. sig
      sig = ""
    end
    lines[#lines + 1] = "  " .. sig .. string_rep(" ", column - #sig) .. "  " .. entry.summary
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "help \"" .. apidoc.full_name(doc, doc.entries[1]) .. "\" (or any other) for one of them"
  return table_concat(lines, "\n") .. "\n"
end

local function overview_text()
  local lines = { "smtpsh API: help \"NAME\" for a module, help \"smtp.connect\" or help(smtp.connect) for a",
                  "function, help(s) for a session.", "", "globals:" }
  local libraries = {}
  for _, doc in apidoc.each() do
    local line = wrap(doc.title .. ": " .. doc.summary, string_rep(" ", 15), string_format("  %-12s ", doc.name))
    if doc.global or doc.object then lines[#lines + 1] = line else libraries[#libraries + 1] = line end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "libraries (local NAME = require \"smtpsh.NAME\"):"
  for _, line in ipairs(libraries) do lines[#lines + 1] = line end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "subcommands (smtpsh NAME --help): " .. table_concat(apidoc.commands, ", ")
  return table_concat(lines, "\n") .. "\n"
end

-- Levenshtein distance, for "did you mean".
local function distance(a, b)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current = { [0] = i }
    for j = 1, #b do
      local cost = string_byte(a, i) == string_byte(b, j) and 0 or 1
      current[j] = math_min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
    end
    previous = current
  end
  return previous[#b]
end

-- The documented names closest to `topic`: near in spelling, or containing it.
local function close_matches(topic)
  local candidates, seen = {}, {}
  local function consider(name)
    if seen[name] then return end
    seen[name] = true
    local d = distance(string_lower(topic), string_lower(name))
    if string_find(string_lower(name), string_lower(topic), 1, true) then d = math_min(d, 1) end
    if d <= math_max(2, #topic // 3) then candidates[#candidates + 1] = { name = name, d = d } end
  end
  for _, doc in apidoc.each() do consider(doc.name) end
  for _, item in ipairs(entries()) do
    consider(item.full)
    consider(item.entry.name)
  end
  table_sort(candidates, function(x, y)
    if x.d ~= y.d then return x.d < y.d end
    return x.name < y.name
  end)
  local names = {}
  for i = 1, math_min(4, #candidates) do names[i] = candidates[i].name end
  return names
end

-- Aliases a reader may type for the object modules.
local aliases = { s = "session", sess = "session", c = "connection", conn = "connection" }

local function find_module(name)
  name = aliases[name] or name
  for _, doc in apidoc.each() do
    if doc.name == name then return doc end
  end
end

-- "session:ehlo", "s.ehlo", "smtp:connect" are read as the documented spelling.
local function normalise(topic)
  local left, right = string_match(topic, "^([%w_]+)[.:]([%w_]+)$")
  if not left then return nil end
  local doc = find_module(left)
  if not doc then return nil end
  for _, entry in ipairs(doc.entries) do
    if entry.name == right then return doc, entry end
  end
end

local function by_name(topic)
  topic = string_match(topic, "^%s*(.-)%s*$")
  if topic == "" then return overview_text(), true end
  local doc = find_module(topic)
  if doc then return module_text(doc), true end
  local found_doc, found = normalise(topic)
  if found then return entry_text(found_doc, found), true end
  local matches = {}
  for _, item in ipairs(entries()) do
    if item.full == topic or item.entry.name == topic then matches[#matches + 1] = item end
  end
  if #matches > 0 then
    local text = entry_text(matches[1].module, matches[1].entry)
    local others = {}
    for i = 2, #matches do others[#others + 1] = matches[i].full end
    if #others > 0 then text = text .. "see also: " .. table_concat(others, ", ") .. "\n" end
    return text, true
  end
  local near = close_matches(topic)
  local hint = #near > 0 and "; did you mean " .. table_concat(near, ", ") .. "?" or "; help() lists the modules"
  return "help: no topic '" .. topic .. "'" .. hint .. "\n", false
end

-- The documented module whose live table is `value`, or whose function it is.
local function by_value(value)
  for _, doc in apidoc.each() do
    if doc.require then
      local ok, module = pcall(require, doc.require)
      if ok and module == value then return module_text(doc), true end
      if ok and type(module) == "table" then
        for _, entry in ipairs(doc.entries) do
          if not entry.field and not entry.call and module[entry.name] == value then
            return entry_text(doc, entry), true
          end
        end
      end
    end
  end
  local meta = getmetatable(value)
  local kind = type(meta) == "table" and meta.__name
  if kind == "smtp.session" then return module_text(find_module("session")), true end
  if kind == "smtpsh.conn" then return module_text(find_module("connection")), true end
  return "help: no documentation for this " .. type(value) .. " (" .. tostring(value) .. "); help() lists the modules\n", false
end

-- help.text([topic]) -> text, found
function help.text(...)
  if select("#", ...) == 0 or (...) == nil then return overview_text(), true end
  local topic = ...
  if type(topic) == "string" then return by_name(topic) end
  return by_value(topic)
end

-- help(topic): prints help.text(topic).
setmetatable(help, { __call = function(_, ...) io_write((help.text(...))) end })

return help
