// smtpsh.sys: the few facts about the process scripts need and plain Lua lacks: whether a
// standard stream is a terminal (colour), and the host name (a default EHLO name).
#include "bindings/modules.hpp"

#include <unistd.h>

#include <climits>
#include <cstring>

namespace smtpsh::lua {

namespace {

// sys.isatty("stdin" | "stdout" | "stderr") -> boolean
int sys_isatty(lua_State* L) {
  static const char* const names[] = {"stdin", "stdout", "stderr", nullptr};
  int fd = luaL_checkoption(L, 1, nullptr, names);
  lua_pushboolean(L, isatty(fd) == 1);
  return 1;
}

// sys.hostname() -> the host name, or nil
int sys_hostname(lua_State* L) {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
    lua_pushnil(L);
    return 1;
  }
  lua_pushstring(L, name);
  return 1;
}

const luaL_Reg sys_functions[] = {
    {"isatty", sys_isatty},
    {"hostname", sys_hostname},
    {nullptr, nullptr},
};

}  // namespace

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_sys(lua_State* L) {
  luaL_newlib(L, smtpsh::lua::sys_functions);
  return 1;
}
