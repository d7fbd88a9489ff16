-- replayable: what a replay must give back exactly as the recorded run had it, so that a
-- replay needs nothing but the recording (`smtpsh replay FILE.jsonl`):
--   * values a script generates from the clock or at random (send's Date and Message-Id):
--     recorded as they are made, served back in the same order by the replay;
--   * the recipe's own text: recorded whole, handed to the sandbox by the replay instead of
--     a file that may be gone or changed.
--
--   replayable.value(name, make) -> string   make() now (and recorded), or the recorded one
--   replayable.serve(values)                  replay: { {name=, value=}, ... } in file order
--   replayable.keep(file, source, args)       while recording: the recipe's text and arguments
--   replayable.provide(file, source)          replay: the recorded text of recipe `file`
--   replayable.source(file) -> text | nil     what was provided for `file`

local recordcore = require "smtpsh.recordcore"

local type, tostring, table_remove = type, tostring, table.remove

local replayable = {}

local queued = {}    -- name -> { value, ... } still to serve, while a replay runs
local provided = {}  -- recipe file -> its recorded text

function replayable.value(name, make)
  local waiting = queued[name]
  if waiting and #waiting > 0 then return table_remove(waiting, 1) end
  local value = tostring(make())
  recordcore.value(name, value)  -- nothing unless recording
  return value
end

function replayable.serve(values)
  queued = {}
  for _, entry in ipairs(values or {}) do
    local list = queued[entry.name]
    if not list then
      list = {}
      queued[entry.name] = list
    end
    list[#list + 1] = entry.value
  end
end

function replayable.keep(file, source, args)
  recordcore.recipe(file, source, args or {})  -- nothing unless recording
end

function replayable.provide(file, source)
  if type(file) ~= "string" or type(source) ~= "string" then
    error("replayable.provide: expected a file name and its text", 2)
  end
  provided[file] = source
end

function replayable.source(file)
  return provided[file]
end

return replayable
