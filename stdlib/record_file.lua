-- record_file: reading a recording (`--record FILE.jsonl`, engine/record/recorder.hpp) into
-- what `smtpsh replay` serves. Pure: no files, no network, so it is tested and fuzzed on its
-- own (tests/fuzz/fuzz_record.cpp).
--
--   record_file.parse(text | line_iterator) -> recording | nil, message
--
-- The argument is the whole text (lines end at "\n") or an iterator of lines such as
-- file:lines(). JSON Lines, one object a line; blank lines are skipped, objects of another
-- type are ignored (later versions may add some):
--
--   {"type":"start","version":1,"smtpsh":"1.2.0","argv":[...],"time":1796000000}
--                                                                  the command that recorded, and when
--   {"type":"recipe","file":"probe.lua","args":[...],"source":"..."}  the script, whole
--   {"type":"value","name":"send.date","value":"..."}             a generated value
--   {"type":"tls","session":1,"info":{...}}                       a session's TLS result
--   {"type":"dns","name":"example.com","qtype":15,"wire":"<hex>",...}   an answer ("" when none)
--   {"type":"smtp","session":1,"st":0.012,"dir":"S","line":"220 mx ESMTP",...}
--
-- recording = {
--   start    = the start object (the last one, should there be several),
--   answers  = { {name=, qtype=, wire=HEX}, ... }   in file order, those with an answer,
--   sessions = { [id] = {id=, events = {smtp object, ...}} },
--   order    = { session, ... }                     in order of first appearance,
--   recipe   = {file=, args=, source=} | nil       the script that ran, when recorded,
--   values   = { {name=, value=}, ... }            generated values, in file order,
-- }
-- A session's TLS result is its `tls` field (the info table as s:starttls() returned it).
-- The message is one line: "line N: what is wrong" (a line that is not a JSON object, or one
-- whose fields replay could not use), or "not a recording: it has no start line".

local json = require "smtpsh.json"

local type, ipairs, pairs, tostring, error, getmetatable, math_type =
  type, ipairs, pairs, tostring, error, getmetatable, math.type
local string_find, string_gmatch, string_gsub = string.find, string.gmatch, string.gsub

local record_file = {}

local directions = { S = true, C = true, ["!"] = true }

-- What is wrong with a start line, or nil.
local function check_start(entry)
  if entry.time ~= nil and math.type(entry.time) ~= "integer" then return "start: time must be whole seconds" end
  local argv = entry.argv
  if argv == nil then return nil end
  if type(argv) ~= "table" or argv == json.null then return "start: argv must be a list of strings" end
  for _, word in ipairs(argv) do
    if type(word) ~= "string" then return "start: argv must be a list of strings" end
  end
  return nil
end

-- What is wrong with a DNS answer line that has a wire, or nil.
local function check_dns(entry)
  if type(entry.name) ~= "string" then return "dns: name must be a string" end
  local qtype = entry.qtype
  if math_type(qtype) ~= "integer" or qtype < 1 or qtype > 65535 then
    return "dns: qtype must be a number from 1 to 65535"
  end
  local wire = entry.wire
  if type(wire) ~= "string" or #wire % 2 ~= 0 or string_find(wire, "[^%x]") then
    return "dns: wire must be hexadecimal, two digits a byte"
  end
  return nil
end

-- What is wrong with a list of strings (a recipe's args), or nil.
local function check_strings(list, what)
  if type(list) ~= "table" or list == json.null then return what .. " must be a list of strings" end
  for _, word in ipairs(list) do
    if type(word) ~= "string" then return what .. " must be a list of strings" end
  end
  return nil
end

local function check_recipe(entry)
  if type(entry.file) ~= "string" or entry.file == "" then return "recipe: file must be a file name" end
  if type(entry.source) ~= "string" then return "recipe: source must be a string" end
  if entry.args ~= nil then return check_strings(entry.args, "recipe: args") end
  return nil
end

local function check_value(entry)
  if type(entry.name) ~= "string" or type(entry.value) ~= "string" then
    return "value: name and value must be strings"
  end
  return nil
end

local function check_tls(entry)
  if math_type(entry.session) ~= "integer" then return "tls: session must be an integer" end
  if type(entry.info) ~= "table" or getmetatable(entry.info) ~= nil then return "tls: info must be an object" end
  local chain = entry.info.chain
  if chain ~= nil and (type(chain) ~= "table" or chain == json.null) then return "tls: info.chain must be a list" end
  for _, cert in ipairs(chain or {}) do
    if type(cert) ~= "table" or getmetatable(cert) ~= nil then return "tls: info.chain must be a list of objects" end
  end
  return nil
end

-- What is wrong with an SMTP transcript line, or nil.
local function check_smtp(entry)
  if math_type(entry.session) ~= "integer" then return "smtp: session must be an integer" end
  if type(entry.dir) ~= "string" or not directions[entry.dir] then
    return "smtp: dir must be \"S\", \"C\" or \"!\""
  end
  if type(entry.line) ~= "string" then return "smtp: line must be a string" end
  if type(entry.st) ~= "number" then return "smtp: st must be a number of seconds" end
  return nil
end

-- The lines of a text, as file:lines() gives them.
local function lines_of(text)
  return string_gmatch(text, "([^\n]*)\n?")
end

-- One line of a message, however odd the bytes it quotes.
local function one_line(message)
  return (string_gsub(tostring(message), "[\r\n]", " "))
end

function record_file.parse(source)
  local next_line
  if type(source) == "string" then
    next_line = lines_of(source)
  elseif type(source) == "function" then
    next_line = source
  else
    error("record_file.parse: expected a text or a line iterator, got " .. type(source), 2)
  end
  local start, answers, sessions, order = nil, {}, {}, {}
  local recipe, values, results = nil, {}, {}
  local number = 0
  for line in next_line do
    number = number + 1
    if string_find(line, "%S") then
      local entry, jerr = json.decode(line)
      if entry == nil then return nil, one_line("line " .. number .. ": " .. jerr) end
      -- Objects are the tables without a metatable (arrays and json.null have one).
      if type(entry) ~= "table" or getmetatable(entry) ~= nil then
        return nil, "line " .. number .. ": expected a JSON object"
      end
      local kind, problem = entry.type, nil
      local answered = kind == "dns" and entry.wire ~= nil and entry.wire ~= ""
      if kind == "start" then
        problem = check_start(entry)
      elseif answered then
        problem = check_dns(entry)
      elseif kind == "smtp" then
        problem = check_smtp(entry)
      elseif kind == "recipe" then
        problem = check_recipe(entry)
      elseif kind == "value" then
        problem = check_value(entry)
      elseif kind == "tls" then
        problem = check_tls(entry)
      end
      if problem then return nil, "line " .. number .. ": " .. problem end
      if kind == "start" then
        start = entry
      elseif kind == "recipe" then
        recipe = { file = entry.file, args = entry.args or {}, source = entry.source }
      elseif kind == "value" then
        values[#values + 1] = { name = entry.name, value = entry.value }
      elseif kind == "tls" then
        results[entry.session] = entry.info
      elseif answered then
        answers[#answers + 1] = { name = entry.name, qtype = entry.qtype, wire = entry.wire }
      elseif kind == "smtp" then
        local session = sessions[entry.session]
        if not session then
          session = { id = entry.session, events = {} }
          sessions[entry.session] = session
          order[#order + 1] = session
        end
        session.events[#session.events + 1] = entry
      end
    end
  end
  if not start then return nil, "not a recording: it has no start line" end
  for id, info in pairs(results) do
    if sessions[id] then sessions[id].tls = info end
  end
  return { start = start, answers = answers, sessions = sessions, order = order, recipe = recipe,
           values = values }
end

return record_file
