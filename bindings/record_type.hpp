#pragma once
// A DNS record type as Lua callers give it, shared by smtpsh.dnscore and smtpsh.dnsseccore.

#include "engine/dns/message.hpp"

#include <lua.hpp>

#include <cstdint>
#include <exception>
#include <optional>

namespace smtpsh::lua {

// The record type at `index`: a name as DNS tools spell it ("MX", "TYPE65534") or a number
// 1..65535. Raises an error starting with `what` (the function's signature) otherwise.
inline std::uint16_t check_record_type(lua_State* L, int index, const char* what) {
  if (lua_type(L, index) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, index);
    luaL_argcheck(L, n >= 1 && n <= 65535, index, "record type number must be 1..65535");
    return static_cast<std::uint16_t>(n);
  }
  const char* name = luaL_checkstring(L, index);
  std::optional<std::uint16_t> number;
  try {
    number = dns::type_from_name(name);
  } catch (const std::exception&) {
  }
  if (!number)
    luaL_error(L, "%s: unknown record type '%s' (use a name such as \"MX\" or a number)", what,
               name);
  return *number;
}

}  // namespace smtpsh::lua
