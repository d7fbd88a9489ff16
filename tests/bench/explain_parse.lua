-- How fast smtpsh explain reads a mail log: a Postfix log of a deferral and a TLS failure (the
-- samples of tests/explain/corpus/) repeated to COUNT lines, read by explain_parse.parse,
-- which keeps the last explain_parse.max_bytes of a longer text.
--   build/smtpsh tests/bench/explain_parse.lua [COUNT]      (default 100000 lines)
local explain_parse = require "smtpsh.explain_parse"

local count = math.tointeger(tonumber(arg and arg[1] or "")) or 100000
local function read(name)
  local file = assert(io.open("tests/explain/corpus/" .. name))
  local text = file:read("a")
  file:close()
  return text
end
local block = read("postfix_greylist_rcpt.log") .. read("postfix_tls_version.log")  -- 4 lines
local text = string.rep(block, count // 4)
local started = os.clock()
local parsed = explain_parse.parse(text)
local seconds = os.clock() - started
print(string.format("explain_parse: %d lines given (%.1f MiB), %d read (the last %d MiB), %d attempts, " ..
  "%.2f s CPU: %.0f lines/s, %.1f MiB/s", count, #text / 1048576, parsed.lines, explain_parse.max_bytes >> 20,
  #parsed.attempts, seconds, parsed.lines / seconds, math.min(#text, explain_parse.max_bytes) / 1048576 / seconds))
