// smtpsh.servercore: a TCP listener for Lua. Each accepted connection is handed, as a net.conn,
// to a new task running the listener's function; stdlib/server.lua speaks SMTP on it.
#include "bindings/conn.hpp"
#include "bindings/modules.hpp"
#include "bindings/scheduler.hpp"
#include "engine/server/listener.hpp"

#include <cstdio>
#include <memory>
#include <new>

namespace smtpsh::lua {

namespace {

constexpr const char* listener_metatable = "smtpsh.listener";

struct LuaListener {
  std::shared_ptr<server::Listener> listener;
  lua_State* L = nullptr;  // the main thread, to spawn session tasks from the accept handler
  int handler = LUA_NOREF;  // registry reference to the function each connection runs
};

LuaListener& check_listener(lua_State* L, int index) {
  return *static_cast<LuaListener*>(luaL_checkudata(L, index, listener_metatable));
}

// Run protected from the accept handler: [function, connection] -> a task.
int spawn_session(lua_State* L) {
  auto* wrapper = static_cast<LuaListener*>(lua_touserdata(L, 1));
  auto* connection = static_cast<std::shared_ptr<net::Connection>*>(lua_touserdata(L, 2));
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, wrapper->handler);
  push_connection(L, connection);
  Scheduler::get(L).spawn(L, 1);
  return 0;
}

void on_accept(void* context, std::shared_ptr<net::Connection> connection) {
  auto* wrapper = static_cast<LuaListener*>(context);
  lua_State* L = wrapper->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 4)) return connection->close();
  lua_pushcfunction(L, spawn_session);
  lua_pushlightuserdata(L, wrapper);
  lua_pushlightuserdata(L, &connection);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    std::fprintf(stderr, "smtpsh: scenario server: %s\n", lua_tostring(L, -1));
    connection->close();
  }
  lua_settop(L, top);
}

bool open_listener(LuaListener& wrapper, asio::io_context& io, const char* host, std::uint16_t port,
                   char* error, std::size_t size) {
  try {
    std::string problem;
    wrapper.listener = server::Listener::open(io, host, port, problem);
    if (!wrapper.listener) std::snprintf(error, size, "%s", problem.c_str());
    else wrapper.listener->start(&on_accept, &wrapper);
    return wrapper.listener != nullptr;
  } catch (const std::exception&) {
    std::snprintf(error, size, "out of memory");
    return false;
  }
}

// servercore.listen(host, port, fn) -> listener | nil, message
int server_listen(lua_State* L) {
  const char* host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port must be 0..65535 (0: any free port)");
  luaL_checktype(L, 3, LUA_TFUNCTION);
  asio::io_context& io = Scheduler::get(L).io();
  auto* wrapper = static_cast<LuaListener*>(lua_newuserdatauv(L, sizeof(LuaListener), 0));
  new (wrapper) LuaListener{};
  luaL_setmetatable(L, listener_metatable);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  wrapper->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 3);
  wrapper->handler = luaL_ref(L, LUA_REGISTRYINDEX);
  char error[240];
  if (!open_listener(*wrapper, io, host, static_cast<std::uint16_t>(port), error, sizeof error)) {
    lua_pushnil(L);
    lua_pushstring(L, error);
    return 2;
  }
  return 1;
}

int listener_close(lua_State* L) {
  LuaListener& wrapper = check_listener(L, 1);
  if (wrapper.listener) wrapper.listener->close();
  return 0;
}

int listener_gc(lua_State* L) {
  LuaListener& wrapper = check_listener(L, 1);
  if (wrapper.listener) wrapper.listener->close();
  luaL_unref(L, LUA_REGISTRYINDEX, wrapper.handler);
  wrapper.~LuaListener();
  return 0;
}

struct Text {
  char text[80];
};

Text address_of(const server::Listener& listener) {
  Text out{};
  try {
    std::snprintf(out.text, sizeof out.text, "%s", listener.address().c_str());
  } catch (const std::exception&) {
  }
  return out;
}

int listener_address(lua_State* L) {
  LuaListener& wrapper = check_listener(L, 1);
  lua_pushstring(L, address_of(*wrapper.listener).text);
  return 1;
}

int listener_port(lua_State* L) {
  lua_pushinteger(L, check_listener(L, 1).listener->port());
  return 1;
}

int listener_accepted(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_listener(L, 1).listener->accepted()));
  return 1;
}

int listener_is_open(lua_State* L) {
  lua_pushboolean(L, check_listener(L, 1).listener->is_open());
  return 1;
}

const luaL_Reg listener_methods[] = {
    {"close", listener_close},     {"address", listener_address}, {"port", listener_port},
    {"accepted", listener_accepted}, {"is_open", listener_is_open}, {nullptr, nullptr},
};

const luaL_Reg server_functions[] = {
    {"listen", server_listen},
    {nullptr, nullptr},
};

}  // namespace

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_servercore(lua_State* L) {
  using namespace smtpsh::lua;
  Scheduler::get(L);
  if (luaL_newmetatable(L, listener_metatable)) {
    luaL_newlib(L, listener_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, listener_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, server_functions);
  return 1;
}
