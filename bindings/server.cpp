// smtpsh.servercore: a TCP listener for Lua. Each accepted connection is handed, as a net.conn,
// to a new task running the listener's function; stdlib/server.lua speaks SMTP on it.
#include "bindings/conn.hpp"
#include "bindings/connect_hook_state.hpp"
#include "bindings/modules.hpp"
#include "bindings/scheduler.hpp"
#include "bindings/tls.hpp"
#include "engine/server/dns_replay.hpp"
#include "engine/server/listener.hpp"
#include "engine/server/redirect_map.hpp"

#include <cstring>

#include <cstdio>
#include <memory>
#include <new>

namespace smtpsh::lua {

namespace {

constexpr const char* listener_metatable = "smtpsh.listener";

struct LuaListener {
  std::shared_ptr<server::Listener> listener;
  lua_State* L = nullptr;   // the main thread, to spawn session tasks from the accept handler
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

// Out of descriptors: the listener pauses and says so once; a server has no caller to tell.
void on_listener_trouble(void*, const std::string& message) {
  std::fprintf(stderr, "smtpsh: scenario server: %s\n", message.c_str());
}

bool open_listener(LuaListener& wrapper, asio::io_context& io, const char* host, std::uint16_t port,
                   char* error, std::size_t size) {
  try {
    std::string problem;
    wrapper.listener = server::Listener::open(io, host, port, problem);
    if (!wrapper.listener)
      std::snprintf(error, size, "%s", problem.c_str());
    else
      wrapper.listener->start(&on_accept, &wrapper, &on_listener_trouble);
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

// --- replays: recorded DNS answers, and where connects go ----------------------------------

constexpr const char* replay_metatable = "smtpsh.dns_replay";
constexpr const char* connect_hook_key = "smtpsh.connect_hook_of_state";

struct LuaDnsReplay {
  std::shared_ptr<server::DnsReplay> server;
};

// The state's connect hook, in the registry (a userdata, so a Lua error frees it).
struct LuaConnectHook {
  std::shared_ptr<const net::ConnectHook> hook;
};

int replay_gc(lua_State* L) {
  auto* wrapper = static_cast<LuaDnsReplay*>(luaL_checkudata(L, 1, replay_metatable));
  if (wrapper->server) wrapper->server->close();
  wrapper->~LuaDnsReplay();
  return 0;
}

LuaDnsReplay& check_replay(lua_State* L) {
  auto* wrapper = static_cast<LuaDnsReplay*>(luaL_checkudata(L, 1, replay_metatable));
  if (!wrapper->server) luaL_error(L, "replay DNS server used after it was closed");
  return *wrapper;
}

int replay_port(lua_State* L) {
  lua_pushinteger(L, check_replay(L).server->port());
  return 1;
}

int replay_counts(lua_State* L) {
  auto& server = *check_replay(L).server;
  lua_pushinteger(L, static_cast<lua_Integer>(server.answered()));
  lua_pushinteger(L, static_cast<lua_Integer>(server.refused()));
  return 2;
}

int replay_close(lua_State* L) {
  check_replay(L).server->close();
  return 0;
}

bool decode_hex(const char* hex, std::size_t size, std::string& out) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (size % 2) return false;
  for (std::size_t i = 0; i < size; i += 2) {
    int high = nibble(hex[i]), low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return false;
    out.push_back(static_cast<char>((high << 4) | low));
  }
  return true;
}

// Adds the answers of the list at `index` ({name=, qtype=, wire=HEX}, ...); false when one is
// malformed.
bool add_answers(lua_State* L, int index, server::DnsReplay& server) {
  lua_Integer count = luaL_len(L, index);
  for (lua_Integer i = 1; i <= count; ++i) {
    lua_geti(L, index, i);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "qtype");
    lua_getfield(L, -3, "wire");
    std::size_t size = 0;
    const char* name = lua_tostring(L, -3);
    lua_Integer qtype = lua_tointeger(L, -2);
    const char* hex = lua_tolstring(L, -1, &size);
    bool ok = name && hex && qtype > 0 && qtype < 65536;
    if (ok) {
      try {
        std::string wire;
        ok = decode_hex(hex, size, wire);
        if (ok) server.add(name, static_cast<std::uint16_t>(qtype), std::move(wire));
      } catch (const std::exception&) {
        ok = false;
      }
    }
    lua_pop(L, 4);
    if (!ok) return false;
  }
  return true;
}

bool open_replay(LuaDnsReplay& wrapper, asio::io_context& io, char* error, std::size_t size) {
  try {
    std::string problem;
    wrapper.server = server::DnsReplay::open(io, problem);
    if (!wrapper.server) std::snprintf(error, size, "%s", problem.c_str());
    return wrapper.server != nullptr;
  } catch (const std::exception&) {
    std::snprintf(error, size, "out of memory");
    return false;
  }
}

// servercore.dns_replay{ {name=, qtype=, wire=HEX}, ... } -> server (:port(), :counts(), :close())
int server_dns_replay(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  asio::io_context& io = Scheduler::get(L).io();
  auto* wrapper = static_cast<LuaDnsReplay*>(lua_newuserdatauv(L, sizeof(LuaDnsReplay), 0));
  new (wrapper) LuaDnsReplay{};
  luaL_setmetatable(L, replay_metatable);
  char error[200];
  if (!open_replay(*wrapper, io, error, sizeof error))
    return luaL_error(L, "servercore.dns_replay: %s", error);
  if (!add_answers(L, 1, *wrapper->server))
    return luaL_error(L, "servercore.dns_replay: every answer needs name, qtype and wire (hex)");
  wrapper->server->start();
  return 1;
}

int connect_hook_gc(lua_State* L) {
  static_cast<LuaConnectHook*>(lua_touserdata(L, 1))->~LuaConnectHook();
  return 0;
}

enum class Added : std::uint8_t { yes, malformed, out_of_memory };

// One redirect into `map`, where nothing can raise.
Added add_redirect(server::RedirectMap& map, const char* from, const char* to) {
  try {
    return map.add(from, to) ? Added::yes : Added::malformed;
  } catch (const std::exception&) {
    return Added::out_of_memory;
  }
}

// The redirect at the top's `tls` list: each recorded session's TLS result in order (false
// for a session without one), which each connect to `from` takes in turn. Returns what is
// wrong, or nullptr.
const char* read_replayed_tls(lua_State* L, int entry, server::RedirectMap& map, const char* from) {
  if (lua_getfield(L, entry, "tls") != LUA_TTABLE) {
    lua_pop(L, 1);
    return nullptr;
  }
  const char* problem = nullptr;
  for (lua_Integer i = 1; !problem; ++i) {
    if (lua_geti(L, -1, i) == LUA_TNIL) {
      lua_pop(L, 1);
      break;
    }
    try {
      std::shared_ptr<tls::Info> info;
      if (lua_toboolean(L, -1)) {
        info = std::make_shared<tls::Info>();
        problem = read_tls_info(L, -1, *info);
      }
      if (!problem && !map.add_replayed_tls(from, std::move(info)))
        problem = "tls: no such redirect";
    } catch (const std::exception&) {
      problem = "out of memory";
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return problem;
}

// Fills `map` from the table at 1; returns what is wrong, or nullptr.
const char* read_redirects(lua_State* L, server::RedirectMap& map) {
  lua_Integer count = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= count; ++i) {
    lua_geti(L, 1, i);
    lua_getfield(L, -1, "from");
    lua_getfield(L, -2, "to");
    const char* from = lua_tostring(L, -2);
    const char* to = lua_tostring(L, -1);
    Added added = from && to ? add_redirect(map, from, to) : Added::malformed;
    if (added == Added::malformed)
      return "each redirect needs from = \"IP:PORT\" and to = \"IP:PORT\" | \"refuse\" | "
             "\"blackhole\"";
    if (added == Added::out_of_memory) return "out of memory";
    const char* problem = read_replayed_tls(L, lua_absindex(L, -3), map, from);
    lua_pop(L, 3);
    if (problem) return problem;
  }
  return nullptr;
}

// The map a hook userdata owns, made where nothing can raise; nullptr when out of memory.
server::RedirectMap* make_redirect_map(LuaConnectHook& wrapper, const char* otherwise) {
  std::shared_ptr<server::RedirectMap> map;
  try {
    map = std::make_shared<server::RedirectMap>();
  } catch (const std::exception&) {
    return nullptr;
  }
  if (otherwise) map->set_otherwise(otherwise);
  wrapper.hook = map;
  return map.get();
}

// servercore.redirect({ {from=, to=, tls=}, ... }, otherwise) sets where this state's connects go
// (`tls`: a replay's recorded TLS results, one a session in order, false for none)
// (a server::RedirectMap installed as the state's connect hook); `otherwise` ("refuse",
// "blackhole" or nil: as asked) for endpoints not listed. The map belongs to its userdata
// from the start, so a raise anywhere below (a bad entry, an entry whose metamethods raise)
// leaves it to the garbage collector.
// Pushes an empty holder of a connect hook, its __gc set: what goes in it from then on is
// freed with it, whatever raises.  [-0, +1, m]
LuaConnectHook& push_hook_holder(lua_State* L) {
  auto* wrapper = static_cast<LuaConnectHook*>(lua_newuserdatauv(L, sizeof(LuaConnectHook), 0));
  new (wrapper) LuaConnectHook{};
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, connect_hook_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  return *wrapper;
}

int server_redirect(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char* otherwise = luaL_optstring(L, 2, nullptr);
  lua_settop(L, 2);
  LuaConnectHook* wrapper = &push_hook_holder(L);
  server::RedirectMap* map = make_redirect_map(*wrapper, otherwise);
  if (!map) return luaL_error(L, "servercore.redirect: out of memory");
  if (const char* problem = read_redirects(L, *map))
    return luaL_error(L, "servercore.redirect: %s", problem);
  lua_setfield(L, LUA_REGISTRYINDEX, connect_hook_key);
  return 0;
}

const luaL_Reg replay_methods[] = {
    {"port", replay_port},
    {"counts", replay_counts},
    {"close", replay_close},
    {nullptr, nullptr},
};

const luaL_Reg listener_methods[] = {
    {"close", listener_close},       {"address", listener_address}, {"port", listener_port},
    {"accepted", listener_accepted}, {"is_open", listener_is_open}, {nullptr, nullptr},
};

const luaL_Reg server_functions[] = {
    {"listen", server_listen},
    {"dns_replay", server_dns_replay},
    {"redirect", server_redirect},
    {nullptr, nullptr},
};

}  // namespace

void set_connect_hook(lua_State* L, std::shared_ptr<const net::ConnectHook> hook) {
  push_hook_holder(L).hook = std::move(hook);
  lua_setfield(L, LUA_REGISTRYINDEX, connect_hook_key);
}

const std::shared_ptr<const net::ConnectHook>* connect_hook_of(lua_State* L) {
  const std::shared_ptr<const net::ConnectHook>* found = nullptr;
  if (lua_getfield(L, LUA_REGISTRYINDEX, connect_hook_key) == LUA_TUSERDATA)
    found = &static_cast<LuaConnectHook*>(lua_touserdata(L, -1))->hook;
  lua_pop(L, 1);
  return found;
}

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_servercore(lua_State* L) {
  using namespace smtpsh::lua;
  Scheduler::get(L);
  // Accepted connections are net.conn objects: their metatable must exist.
  luaL_requiref(L, "smtpsh.net", luaopen_smtpsh_net, 0);
  lua_pop(L, 1);
  if (luaL_newmetatable(L, listener_metatable)) {
    luaL_newlib(L, listener_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, listener_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, replay_metatable)) {
    luaL_newlib(L, replay_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, replay_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, server_functions);
  return 1;
}
