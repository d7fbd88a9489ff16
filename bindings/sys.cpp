// smtpsh.sys: the few facts about the process scripts need and plain Lua lacks: whether a
// standard stream is a terminal (colour). The host name is smtpcore.hostname.
#include "bindings/host_modules.hpp"
#include "bindings/modules.hpp"

#include <unistd.h>

namespace smtpsh::lua {

namespace {

// sys.isatty("stdin" | "stdout" | "stderr") -> boolean
int sys_isatty(lua_State* L) {
  static const char* const names[] = {"stdin", "stdout", "stderr", nullptr};
  int fd = luaL_checkoption(L, 1, nullptr, names);
  lua_pushboolean(L, isatty(fd) == 1);
  return 1;
}

const luaL_Reg sys_functions[] = {
    {"isatty", sys_isatty},
    {"host_module", sys_host_module},  // bindings/host_modules.cpp
    {nullptr, nullptr},
};

}  // namespace

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_sys(lua_State* L) {
  luaL_newlib(L, smtpsh::lua::sys_functions);
  return 1;
}
