// libFuzzer target for the recording loader, stdlib/record_file.lua (what `smtpsh replay`
// reads): for any text, given whole or as an iterator of lines (as file:lines() gives them),
// record_file.parse never raises and returns either a recording whose every field has the
// type replay uses, or nil and a one-line message ("line N: ..." with N a line of the text,
// or the missing start line); both ways of giving the text answer the same.

#include "tests/fuzz/lua_harness.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

const char* check = R"lua(
local record_file = require "smtpsh.record_file"

local function fail(what, ...) error(string.format(what, ...), 0) end

-- The lines of the text as file:lines() gives them ("\n" ends a line; no empty last line).
local function file_lines(text)
  local pos = 1
  return function()
    if pos > #text then return nil end
    local nl = string.find(text, "\n", pos, true)
    local line = string.sub(text, pos, (nl or #text + 1) - 1)
    pos = (nl or #text) + 1
    return line
  end
end

local function count_lines(text)
  local n = 0
  for _ in file_lines(text) do n = n + 1 end
  return n
end

local function check_recording(r)
  if type(r) ~= "table" then fail("a recording that is a %s", type(r)) end
  if type(r.start) ~= "table" then fail("start is not a table") end
  if r.start.type ~= "start" then fail("start is not the start line") end
  if r.start.argv ~= nil then
    for i, word in ipairs(r.start.argv) do
      if type(word) ~= "string" then fail("argv[%d] is a %s", i, type(word)) end
    end
  end
  for i, a in ipairs(r.answers) do
    if type(a.name) ~= "string" then fail("answer %d: name", i) end
    if math.type(a.qtype) ~= "integer" or a.qtype < 1 or a.qtype > 65535 then fail("answer %d: qtype", i) end
    if type(a.wire) ~= "string" or #a.wire == 0 or #a.wire % 2 ~= 0 or a.wire:find("%X") then
      fail("answer %d: wire", i)
    end
  end
  local listed = 0
  for _ in pairs(r.sessions) do listed = listed + 1 end
  if listed ~= #r.order then fail("%d sessions but %d in order", listed, #r.order) end
  for i, s in ipairs(r.order) do
    if r.sessions[s.id] ~= s then fail("order[%d] is not sessions[its id]", i) end
    if math.type(s.id) ~= "integer" then fail("session %d: id", i) end
    if #s.events == 0 then fail("session %d has no events", i) end
    for j, e in ipairs(s.events) do
      if e.type ~= "smtp" or e.session ~= s.id then fail("session %d event %d: not its own", i, j) end
      if e.dir ~= "S" and e.dir ~= "C" and e.dir ~= "!" then fail("session %d event %d: dir", i, j) end
      if type(e.line) ~= "string" then fail("session %d event %d: line", i, j) end
      if type(e.st) ~= "number" then fail("session %d event %d: st", i, j) end
    end
  end
end

local function outcome(text, source)
  local ok, r, err = pcall(record_file.parse, source)
  if not ok then fail("record_file.parse raised: %s", tostring(r)) end
  if r == nil then
    if type(err) ~= "string" or err == "" then fail("a failure without a message") end
    if err:find("\n", 1, true) then fail("a message of more than one line: %q", err) end
    local n = tonumber(err:match("^line (%d+): ."))
    if n then
      if n < 1 or n > count_lines(text) then fail("line %d of a text of %d lines", n, count_lines(text)) end
    elseif err ~= "not a recording: it has no start line" then
      fail("a message that names no line: %q", err)
    end
    return err
  end
  check_recording(r)
  return string.format("%d answers, %d sessions", #r.answers, #r.order)
end

return function(input)
  local whole = outcome(input, input)
  local lines = outcome(input, file_lines(input))
  if whole ~= lines then fail("the text and its lines differ: %q, %q", whole, lines) end
end
)lua";

}  // namespace

SMTPSH_LUA_FUZZ_TARGET(check, "fuzz_record")
