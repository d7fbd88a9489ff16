// libFuzzer target for the bounce and mail log reader, stdlib/explain_parse.lua (what
// `smtpsh explain` reads): for any text, explain_parse.parse never raises and returns attempts
// of the shape explain.lua relies on (a known source and event; a reply with its code and
// text; an enhanced code that enhanced_status describes; a port, a stage, names and the
// evidence line without line breaks, the line bounded); parsing is deterministic, and the
// text with CRLF line ends reads as with LF. (explain.lua itself needs smtpsh.smtp, whose
// C binding smtpsh.smtpcore this harness does not have: the parser and enhanced_status are
// the pure part.)

#include "tests/fuzz/lua_harness.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

const char* check = R"lua(
local explain_parse = require "smtpsh.explain_parse"
local enhanced_status = require "smtpsh.enhanced_status"

local function fail(what, ...) error(string.format(what, ...), 0) end

local function set(...)
  local s = {}
  for _, v in ipairs({ ... }) do s[v] = true end
  return s
end

local sources = set("dsn", "postfix", "exim", "exchange", "reply")
local events = set("reply", "refused", "connect_timeout", "unreachable", "lost", "timeout", "protocol", "tls_failed",
                   "tls_not_offered", "dns", "not_tried", "delayed", "delivered", "unknown")
local stages = set("connect", "banner", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "dot", "quit", "dns")

local function is_integer(v) return math.type(v) == "integer" end

-- The length of a list, failing on anything else than 1..n.
local function list_length(t, what)
  if type(t) ~= "table" then fail("%s is a %s", what, type(t)) end
  local n = 0
  for _ in ipairs(t) do n = n + 1 end
  local all = 0
  for _ in pairs(t) do all = all + 1 end
  if all ~= n or #t ~= n then fail("%s is not a list (%d entries, %d in sequence)", what, all, n) end
  return n
end

local function one_line(attempt, i, field)
  local v = attempt[field]
  if v == nil then return end
  if type(v) ~= "string" then fail("attempt %d: %s is a %s", i, field, type(v)) end
  if v:find("[\r\n]") then fail("attempt %d: %s has a line break: %q", i, field, v) end
end

local function check_attempt(a, i)
  if type(a) ~= "table" then fail("attempt %d is a %s", i, type(a)) end
  if not sources[a.source] then fail("attempt %d: source %q", i, tostring(a.source)) end
  if not events[a.event] then fail("attempt %d: event %q", i, tostring(a.event)) end
  if type(a.line) ~= "string" then fail("attempt %d: line is a %s", i, type(a.line)) end
  if a.line:find("%c") then fail("attempt %d: a control byte in its line: %q", i, a.line) end
  if #a.line > explain_parse.max_line + 4 then fail("attempt %d: a line of %d bytes", i, #a.line) end
  if a.event == "reply" then
    if not is_integer(a.code) or a.code < 200 or a.code > 599 then
      fail("attempt %d: a reply with code %s: %q", i, tostring(a.code), tostring(a.reply))
    end
    if type(a.reply) ~= "string" or a.reply:sub(1, 3) ~= tostring(a.code) then
      fail("attempt %d: reply %q does not start with its code %d", i, tostring(a.reply), a.code)
    end
  end
  if a.enhanced ~= nil then
    if type(a.enhanced) ~= "string" or not a.enhanced:find("^[245]%.%d+%.%d+$") then
      fail("attempt %d: enhanced %q", i, tostring(a.enhanced))
    end
    local ok, words = pcall(enhanced_status.describe, a.enhanced)
    if not ok then fail("enhanced_status.describe(%q) raised: %s", a.enhanced, tostring(words)) end
    if type(words) ~= "string" then fail("enhanced_status.describe(%q) gave a %s", a.enhanced, type(words)) end
  end
  if a.port ~= nil and (not is_integer(a.port) or a.port < 1 or a.port > 65535) then
    fail("attempt %d: port %s", i, tostring(a.port))
  end
  if a.stage ~= nil and not stages[a.stage] then fail("attempt %d: stage %q", i, tostring(a.stage)) end
  for _, field in ipairs({ "recipient", "domain", "host", "ip" }) do one_line(a, i, field) end
end

local function parse(text, what)
  local ok, r = pcall(explain_parse.parse, text)
  if not ok then fail("explain_parse.parse raised (%s): %s", what, tostring(r)) end
  if type(r) ~= "table" then fail("explain_parse.parse gave a %s (%s)", type(r), what) end
  return r
end

local function check_result(r)
  local n = list_length(r.attempts, "attempts")
  list_length(r.sources, "sources")
  local seen = {}
  for _, name in ipairs(r.sources) do
    if type(name) ~= "string" or not sources[name] then fail("source %q", tostring(name)) end
    if seen[name] then fail("source %q twice", name) end
    seen[name] = true
  end
  if not is_integer(r.lines) or r.lines < 0 then fail("lines %s", tostring(r.lines)) end
  if not is_integer(r.used) or r.used < 0 then fail("used %s", tostring(r.used)) end
  for i, a in ipairs(r.attempts) do check_attempt(a, i) end
  return n
end

local function event_list(r)
  local list = {}
  for i, a in ipairs(r.attempts) do list[i] = a.event end
  return table.concat(list, ",")
end

return function(input)
  local first = parse(input, "the text")
  local n = check_result(first)
  local again = parse(input, "the text again")
  if #again.attempts ~= n then fail("%d attempts, then %d from the same text", n, #again.attempts) end
  -- Every line end as CRLF ("\n" that already follows "\r" is one, and stays).
  local crlf = string.gsub(input, "\r?\n", "\r\n")
  local other = parse(crlf, "the text with CRLF")
  if event_list(other) ~= event_list(first) then
    fail("with CRLF line ends, events %q instead of %q", event_list(other), event_list(first))
  end
end
)lua";

}  // namespace

SMTPSH_LUA_FUZZ_TARGET(check, "fuzz_explain")
