// sys.host_module: the modules the embedding program adds (bindings/host_modules.hpp).
#include "bindings/host_modules.hpp"

#include <cstring>

namespace smtpsh::lua {

namespace {

struct HostModule {
  const char* name;
  lua_CFunction open;
};

constexpr int max_host_modules = 4;
HostModule host_modules[max_host_modules] = {};  // constant-initialized: safe at start-up

}  // namespace

void add_host_module(const char* name, lua_CFunction open) {
  for (HostModule& module : host_modules) {
    if (module.name == nullptr || std::strcmp(module.name, name) == 0) {
      module = {name, open};
      return;
    }
  }
}

int sys_host_module(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  for (const HostModule& module : host_modules) {
    if (module.name == nullptr) break;
    if (std::strcmp(module.name, name) != 0) continue;
    lua_pushcfunction(L, module.open);
    lua_call(L, 0, 1);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

}  // namespace smtpsh::lua
