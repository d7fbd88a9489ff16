// libFuzzer target for the scenario server's command reader, stdlib/server_command.lua (what
// stdlib/server.lua does with each line a client sends): for any line, with any bytes,
// server_command.parse never raises; it returns a verb of upper-case ASCII letters only and
// a string argument that, after the verb and at most one whitespace byte, is the rest of
// the line; or nil and a 5xx reply, exactly when the line does not start with a letter.
// The input is split at "\n" into lines, as conn:receive("l") would deliver them.

#include "tests/fuzz/lua_harness.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

const char* check = R"lua(
local server_command = require "smtpsh.server_command"

local function fail(what, ...) error(string.format(what, ...), 0) end

local function check_line(line)
  local ok, verb, arg = pcall(server_command.parse, line)
  if not ok then fail("server_command.parse raised: %s", tostring(verb)) end
  local letter = line:find("^[A-Za-z]") ~= nil
  if verb == nil then
    if letter then fail("no verb in %q, which starts with a letter", line) end
    if type(arg) ~= "string" or not arg:find("^5%d%d [^\r\n]+$") then
      fail("no verb, and not a 5xx reply to send: %q", tostring(arg))
    end
    return
  end
  if not letter then fail("a verb in %q, which does not start with a letter", line) end
  if type(verb) ~= "string" or not verb:find("^[A-Z]+$") then fail("verb %q is not upper-case letters", tostring(verb)) end
  if type(arg) ~= "string" then fail("the argument is a %s", type(arg)) end
  local rest = #line - #verb - #arg
  if rest ~= 0 and rest ~= 1 then fail("verb %q and argument %q are not the line %q", verb, arg, line) end
  if line:sub(1, #verb):upper() ~= verb or line:sub(#line - #arg + 1) ~= arg then
    fail("verb %q and argument %q are not the line %q", verb, arg, line)
  end
  if rest == 1 and not line:sub(#verb + 1, #verb + 1):find("^%s$") then
    fail("verb %q and argument %q are split at a byte that is not whitespace", verb, arg)
  end
  if line:sub(#verb + 1, #verb + 1):find("^%a$") then fail("the verb %q stops before a letter", verb) end
end

return function(input)
  check_line(input)
  local n = 0
  for line in string.gmatch(input, "[^\n]*") do
    n = n + 1
    if n > 1000 then break end
    check_line(line)
  end
end
)lua";

}  // namespace

SMTPSH_LUA_FUZZ_TARGET(check, "fuzz_server_command")
