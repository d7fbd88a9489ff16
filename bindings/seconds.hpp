#pragma once
// Durations given from Lua: every timeout is a finite number of seconds above 0. NaN compares
// false with everything, so a `seconds <= 0` check alone lets it through (and a deadline of
// NaN never fires); these checks say what is wrong instead.

#include <lua.hpp>

#include <cmath>

namespace smtpsh::lua {

inline bool is_duration(double seconds) {
  return std::isfinite(seconds) && seconds > 0;
}

// The number at `index` as seconds, or a raised error naming `what` in `signature`.  [-0, +0, v]
inline double check_seconds(lua_State* L, int index, const char* signature, const char* what) {
  int is_number = 0;
  double seconds = lua_tonumberx(L, index, &is_number);
  if (!is_number || !is_duration(seconds))
    luaL_error(L, "%s: %s must be a finite number of seconds above 0, got %s", signature, what,
               luaL_tolstring(L, index, nullptr));
  return seconds;
}

// opts[field] as seconds: 0 when absent, a raised error when it is not a valid duration.
// `table` must be an absolute index.  [-0, +0, v]
inline double optional_seconds_field(lua_State* L, int table, const char* field,
                                     const char* signature) {
  double seconds = 0;
  if (lua_getfield(L, table, field) != LUA_TNIL) seconds = check_seconds(L, -1, signature, field);
  lua_pop(L, 1);
  return seconds;
}

}  // namespace smtpsh::lua
