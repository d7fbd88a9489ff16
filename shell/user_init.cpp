#include "shell/user_init.hpp"

#include <unistd.h>

#include <cstdlib>

namespace smtpsh::shell {

std::string user_init_path() {
  if (const char* config = std::getenv("XDG_CONFIG_HOME"); config && *config)
    return std::string(config) + "/smtpsh/init.lua";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.config/smtpsh/init.lua";
  return {};
}

void run_user_init(Runtime& runtime) {
  std::string path = user_init_path();
  if (path.empty() || access(path.c_str(), F_OK) != 0) return;
  lua_State* L = runtime.state();
  std::string prefix = "smtpsh: " + path + ": ";
  if (luaL_loadfilex(L, path.c_str(), "t") != LUA_OK) {
    // luaL_loadfile's message names the file already.
    Runtime::print_error("smtpsh: ", lua_tostring(L, -1));
    lua_settop(L, 0);
    return;
  }
  runtime.run_task(0, prefix.c_str());
  lua_settop(L, 0);
}

}  // namespace smtpsh::shell
