-- recipe: a probe recipe that declares itself, so that whoever receives one can read what it
-- takes, get --help, and have its parameters checked before anything runs. A recipe file
-- returns a table:
--
--   return {
--     name = "banner_time",
--     description = "how long each MX host of a domain takes to greet",
--     params = {
--       { name = "domain", kind = "domain", help = "the domain whose MX hosts are greeted" },
--       { name = "timeout", kind = "seconds", default = 10, help = "the deadline of each step" },
--     },
--     needs = nil,   -- or a list of what it needs beyond the sandbox: {"any host"}, {"port 2525"}
--     run = function(p) ... return {...} end,   -- p.domain, p.timeout; the table is the result
--   }
--
-- Needs the sandbox can grant, each only when the person running it says so on the command
-- line: "any host" (--allow-any-host), "port N" (--allow-port N). Anything else (files,
-- processes) the sandbox never gives: such a recipe is refused.
--
-- Kinds: domain, host (HOST[:PORT]), address (user@domain), string, seconds, count, flag.
-- A parameter without a default is required. The hosts, domains and addresses given become
-- the destinations the sandbox allows.

local smtp = require "smtpsh.smtp"
local dnscore = require "smtpsh.dnscore"

local type, ipairs, tostring, tonumber, math_type = type, ipairs, tostring, tonumber, math.type
local string_format, string_match, string_rep, table_concat = string.format, string.match, string.rep,
  table.concat

local recipe = {}

recipe.kinds = { "domain", "host", "address", "string", "seconds", "count", "flag" }
local known_kind = {}
for _, kind in ipairs(recipe.kinds) do known_kind[kind] = true end

-- Whether `value` is a table that declares a recipe; nil, problem when it tries and fails.
function recipe.check(spec)
  if type(spec) ~= "table" or type(spec.run) ~= "function" then return nil end
  if type(spec.name) ~= "string" or not string_match(spec.name, "^[%w_%-]+$") then
    return nil, "a recipe needs a name of letters, digits, - and _"
  end
  if type(spec.description) ~= "string" or spec.description == "" then
    return nil, "recipe " .. spec.name .. " needs a one-line description"
  end
  local seen = {}
  for i, param in ipairs(spec.params or {}) do
    if type(param) ~= "table" or type(param.name) ~= "string" or not string_match(param.name, "^[%a][%w_%-]*$") then
      return nil, string_format("recipe %s: parameter %d needs a name", spec.name, i)
    end
    if not known_kind[param.kind] then
      return nil, string_format("recipe %s: parameter %s has kind %q; kinds: %s", spec.name, param.name,
        tostring(param.kind), table_concat(recipe.kinds, ", "))
    end
    if seen[param.name] then return nil, string_format("recipe %s: parameter %s twice", spec.name, param.name) end
    seen[param.name] = true
  end
  return true
end

-- A value of a kind, checked: the value, or nil and why not.
local checkers = {
  domain = function(text)
    local name, problem = dnscore.canonical(text)
    if not name or not string_match(name, "%.") then return nil, problem or "not a domain name (example.com)" end
    return name
  end,
  host = function(text)
    local host, problem = smtp.parse_target(text, 25)
    if not host then return nil, problem end
    return text
  end,
  address = function(text)
    local domain = string_match(text, "^[^@%s]+@([^@%s]+)$")
    if not domain or not dnscore.canonical(domain) then return nil, "not an address (user@example.com)" end
    return text
  end,
  string = function(text)
    if string_match(text, "[\r\n%z]") then return nil, "a CR, LF or NUL is not allowed" end
    return text
  end,
  seconds = function(text)
    local n = tonumber(text)
    if not n or n <= 0 or n ~= n or n == math.huge then return nil, "a number of seconds above 0" end
    return n
  end,
  count = function(text)
    local n = tonumber(text)
    if math_type(n) ~= "integer" or n < 0 then return nil, "a whole number, 0 or more" end
    return n
  end,
}

-- The recipe's --help.
-- What the recipe's `needs` ask that the person running it has not granted: nil when all is
-- granted, else one line saying what is missing and how to grant it (or that it cannot be).
-- `granted` = { any_host = bool, ports = { [port] = true } }.
function recipe.ungranted(spec, granted)
  local missing, refused = {}, {}
  for _, need in ipairs(spec.needs or {}) do
    local text = tostring(need)
    local port = math.tointeger(tonumber(string_match(text, "^port (%d+)$")))
    if text == "any host" then
      if not granted.any_host then missing[#missing + 1] = "any host (--allow-any-host)" end
    elseif port and port >= 1 and port <= 65535 then
      if not granted.ports[port] then missing[#missing + 1] = string_format("%s (--allow-port %d)", text, port) end
    else
      refused[#refused + 1] = text
    end
  end
  if #refused > 0 then
    return string_format("recipe %s needs %s beyond the sandbox, which the sandbox never grants: read it, " ..
      "then run its code as a script of your own", spec.name, table_concat(refused, ", "))
  end
  if #missing > 0 then
    return string_format("recipe %s needs %s: read it, then grant that on the command line", spec.name,
      table_concat(missing, ", "))
  end
  return nil
end

function recipe.help(spec)
  local words = {}
  for _, param in ipairs(spec.params or {}) do
    if param.default == nil and param.kind ~= "flag" then words[#words + 1] = "--" .. param.name .. " " .. param.kind:upper() end
  end
  local lines = {
    string_format("usage: smtpsh --sandbox RECIPE.lua %s[OPTIONS]", #words > 0 and (table_concat(words, " ") .. " ") or ""),
    "  " .. spec.name .. ": " .. spec.description,
  }
  if spec.needs and #spec.needs > 0 then
    lines[#lines + 1] = "  needs beyond the sandbox: " .. table_concat(spec.needs, ", ")
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "parameters:"
  for _, param in ipairs(spec.params or {}) do
    local left = "  --" .. param.name .. (param.kind == "flag" and "" or (" " .. param.kind:upper()))
    local note = param.default ~= nil and (" [default: " .. tostring(param.default) .. "]")
      or (param.kind == "flag" and "" or " (required)")
    lines[#lines + 1] = left .. string_rep(" ", math.max(2, 26 - #left)) .. tostring(param.help or "") .. note
  end
  lines[#lines + 1] = "  --json" .. string_rep(" ", 26 - 8) .. "the table the recipe returns, as JSON"
  lines[#lines + 1] = "  --help" .. string_rep(" ", 26 - 8) .. "this"
  return table_concat(lines, "\n") .. "\n"
end

-- Reads `args` ({"--domain", "example.com", "--json"}) against the declaration: the
-- parameters by name, the options of smtpsh's own (json, help); or nil and one line.
function recipe.parse(spec, args)
  local by_name = {}
  for _, param in ipairs(spec.params or {}) do by_name[param.name] = param end
  local values, own, given = {}, {}, {}
  local i = 1
  while i <= #args do
    local word = args[i]
    local name, inline = string_match(word, "^%-%-([%w_%-]+)=(.*)$")
    name = name or string_match(word, "^%-%-([%w_%-]+)$")
    if not name then return nil, string_format("unexpected argument %q: parameters are --NAME VALUE; see --help", word) end
    if name == "json" or name == "help" then
      own[name] = true
    else
      local param = by_name[name]
      if not param then return nil, string_format("unknown parameter --%s; see --help", name) end
      if param.kind == "flag" then
        values[name] = true
      else
        local text = inline
        if text == nil then
          i = i + 1
          text = args[i]
        end
        if text == nil then return nil, string_format("--%s needs a value (%s); see --help", name, param.kind) end
        local value, problem = checkers[param.kind](text)
        if value == nil then return nil, string_format("--%s %s: %s", name, text, tostring(problem)) end
        values[name] = value
        given[name] = true
      end
    end
    i = i + 1
  end
  own.given = given
  if own.help then return values, own end
  for _, param in ipairs(spec.params or {}) do
    if values[param.name] == nil then
      if param.default ~= nil then
        values[param.name] = param.default
      elseif param.kind == "flag" then
        values[param.name] = false
      else
        return nil, string_format("missing --%s %s (%s); see --help", param.name, param.kind:upper(), tostring(param.help or ""))
      end
    end
  end
  return values, own
end

-- The hosts, domains and addresses the user gave (`given`, from parse): where the sandbox lets
-- the recipe go. A default is the recipe author's choice, not the user's: never one.
function recipe.destinations(spec, values, given)
  local out = {}
  for _, param in ipairs(spec.params or {}) do
    local value = values[param.name]
    if given[param.name] and type(value) == "string" and
        (param.kind == "domain" or param.kind == "host" or param.kind == "address") then
      out[#out + 1] = value
    end
  end
  return out
end

return recipe
