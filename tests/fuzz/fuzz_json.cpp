// libFuzzer target for the JSON decoder, stdlib/json.lua (pure Lua, run on liblua5.4): for
// any text json.decode never raises; it returns a value, or nil and "json: ... at byte N"
// with N within the text (one past its end at most). A value encodes with json.encode, and
// that text decodes again to a value whose encoding is the same text (the round trip).

#include "tests/fuzz/lua_harness.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

const char* check = R"lua(
local json = require "smtpsh.json"

return function(input)
  local ok, value, err = pcall(json.decode, input)
  if not ok then error("json.decode raised: " .. tostring(value), 0) end
  if value == nil then
    if type(err) ~= "string" then error("json.decode failed without a message", 0) end
    local at = tonumber(err:match("^json: .+ at byte (%d+)$"))
    if not at then error("json.decode's message is not 'json: ... at byte N': " .. err, 0) end
    if at < 1 or at > #input + 1 then error("json.decode's byte is outside the text: " .. err, 0) end
    return
  end
  local encoded_ok, text = pcall(json.encode, value)
  if not encoded_ok then error("json.encode of a decoded value raised: " .. tostring(text), 0) end
  local again, err2 = json.decode(text)
  if again == nil then error("json.encode gave text json.decode refuses: " .. err2 .. "\n" .. text, 0) end
  local text2 = json.encode(again)
  if text2 ~= text then
    -- Named apart, so that SMTPSH_FUZZ_IGNORE can look past it alone while it is not fixed.
    local only_zero = string.gsub(text, "%-0%f[^%d%.eE]", "0") == text2
    error("the round trip changed the encoding" .. (only_zero and " (-0 became 0)" or "")
          .. ":\n  " .. text .. "\n  " .. text2, 0)
  end
end
)lua";

}  // namespace

SMTPSH_LUA_FUZZ_TARGET(check, "fuzz_json")
