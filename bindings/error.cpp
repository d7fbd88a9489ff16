#include "bindings/error.hpp"

namespace smtpsh::lua {

namespace {
constexpr const char* error_metatable = "smtpsh.error";

int error_tostring(lua_State* L) {
  lua_getfield(L, 1, "message");
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_getfield(L, 1, "kind");
    lua_pushfstring(L, "%s error", luaL_optstring(L, -1, "unknown"));
  }
  return 1;
}
}  // namespace

void register_error_metatable(lua_State* L) {
  if (luaL_newmetatable(L, error_metatable)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

void push_error(lua_State* L, const char* kind, const char* stage, const char* message) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  if (stage) {
    lua_pushstring(L, stage);
    lua_setfield(L, -2, "stage");
  }
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  register_error_metatable(L);
  luaL_setmetatable(L, error_metatable);
}

void push_error(lua_State* L, const net::Outcome& outcome, const char* stage) {
  push_error(L, net::failure_name(outcome.failure).data(), stage, outcome.message.c_str());
}

}  // namespace smtpsh::lua
