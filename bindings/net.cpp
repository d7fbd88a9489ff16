// net: TCP connections for scripts — net.connect, conn:send, conn:receive, conn:close.
#include "bindings/address_text.hpp"
#include "bindings/conn.hpp"
#include "bindings/connect_hook_state.hpp"
#include "bindings/error.hpp"
#include "bindings/modules.hpp"
#include "bindings/resolver_state.hpp"
#include "bindings/scheduler.hpp"
#include "bindings/seconds.hpp"
#include "bindings/tls.hpp"
#include "engine/net/connection.hpp"
#include "engine/net/source_address.hpp"

#include <cstdio>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

namespace smtpsh::lua {

namespace {

constexpr const char* conn_metatable = "smtpsh.conn";
constexpr const char* connect_signature = "net.connect(host, port [, {timeout=, source=}])";

struct LuaConn {
  std::shared_ptr<net::Connection> conn;
};

net::Connection& check_conn(lua_State* L, int index) {
  auto* wrapper = static_cast<LuaConn*>(luaL_checkudata(L, index, conn_metatable));
  if (!wrapper->conn) luaL_error(L, "connection used after it was collected");
  return *wrapper->conn;
}

void cancel_io(Task&, void* connection) {
  static_cast<net::Connection*>(connection)->interrupt();
}

// --- net.connect -----------------------------------------------------------------------------

int connect_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  net::Connection& conn = check_conn(L, 4);
  if (!conn.write_outcome().ok()) {
    lua_pushnil(L);
    push_error(L, conn.write_outcome(), "connect");
    return 2;
  }
  lua_settop(L, 4);
  return 1;
}

// Kept apart from net_connect so its C++ temporaries are gone before Lua may yield or raise.
bool start_connect(lua_State* L, LuaConn& wrapper, Task& task, const char* host, std::uint16_t port,
                   const char* source, double timeout, dns::Resolver& resolver,
                   const std::shared_ptr<const net::ConnectHook>* hook) {
  try {
    net::ConnectOptions options;
    options.resolver = resolver.shared_from_this();
    if (hook) options.hook = *hook;
    if (source) options.source = source;
    if (timeout > 0) options.timeout = engine::seconds_to_duration(timeout);
    wrapper.conn->connect(host, port, options, &Scheduler::wake_task, &task);
    return true;
  } catch (const std::exception&) {
    (void)L;
    return false;
  }
}

int net_connect(lua_State* L) {
  const char* host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port must be 1..65535");
  const char* source = nullptr;
  double timeout = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    timeout = optional_seconds_field(L, 3, "timeout", connect_signature);
    if (lua_getfield(L, 3, "source") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "%s: source must be an IP address string", connect_signature);
      source = lua_tostring(L, -1);  // stays alive in the options table
    }
  }
  lua_settop(L, 3);
  Task& task = Scheduler::require_current(L, "net.connect");
  dns::Resolver& resolver = resolver_of(L);

  auto* wrapper = static_cast<LuaConn*>(lua_newuserdatauv(L, sizeof(LuaConn), 0));
  new (wrapper) LuaConn{net::Connection::create(Scheduler::get(L).io())};
  luaL_setmetatable(L, conn_metatable);
  if (!start_connect(L, *wrapper, task, host, static_cast<std::uint16_t>(port), source, timeout,
                     resolver, connect_hook_of(L)))
    return luaL_error(L, "net.connect: out of memory");
  return Scheduler::get(L).suspend(L, task, connect_done, 0, cancel_io, wrapper->conn.get());
}

// --- conn:send -------------------------------------------------------------------------------

int send_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  net::Connection& conn = check_conn(L, 1);
  if (!conn.write_outcome().ok()) {
    lua_pushnil(L);
    push_error(L, conn.write_outcome(), "send");
    return 2;
  }
  lua_pushinteger(L, static_cast<lua_Integer>(conn.bytes_sent()));
  return 1;
}

int push_closed(lua_State* L, const char* stage) {
  lua_pushnil(L);
  push_error(L, "closed", stage, "connection is closed");
  return 2;
}

int conn_send(lua_State* L) {
  net::Connection& conn = check_conn(L, 1);
  size_t length = 0;
  const char* bytes = luaL_checklstring(L, 2, &length);
  lua_settop(L, 2);  // the string stays on this stack, alive until the write ends
  if (conn.writing())
    return luaL_error(L, "conn:send: another task is already sending on this connection");
  if (!conn.is_open()) return push_closed(L, "send");
  if (length == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  Task& task = Scheduler::require_current(L, "conn:send");
  conn.send(std::string_view(bytes, length), &Scheduler::wake_task, &task);
  return Scheduler::get(L).suspend(L, task, send_done, 0, cancel_io, &conn);
}

// --- conn:receive ----------------------------------------------------------------------------

int push_read_outcome(lua_State* L, net::Connection& conn) {
  std::string_view data = conn.data();
  if (conn.read_outcome().ok()) {
    lua_pushlstring(L, data.data(), data.size());
    return 1;
  }
  lua_pushnil(L);
  push_error(L, conn.read_outcome(), "receive");
  lua_pushlstring(L, data.data(), data.size());
  return 3;
}

int receive_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  return push_read_outcome(L, check_conn(L, 1));
}

int conn_receive(lua_State* L) {
  net::Connection& conn = check_conn(L, 1);
  bool line = true;
  std::size_t count = 0;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && static_cast<std::size_t>(n) <= net::Connection::max_read, 2,
                  "byte count must be 0..16777216");
    line = false;
    count = static_cast<std::size_t>(n);
  } else if (!lua_isnoneornil(L, 2)) {
    const char* pattern = luaL_checkstring(L, 2);
    if (std::strcmp(pattern, "l") != 0 && std::strcmp(pattern, "*l") != 0)
      return luaL_argerror(L, 2, "conn:receive([\"l\" | n]): expected \"l\" or a byte count");
  }
  lua_settop(L, 2);
  if (conn.reading())
    return luaL_error(L, "conn:receive: another task is already reading from this connection");
  if (line ? conn.take_buffered_line() : conn.take_buffered(count))
    return push_read_outcome(L, conn);
  if (!conn.is_open()) {
    lua_pushnil(L);
    push_error(L, "closed", "receive", "connection is closed");
    lua_pushliteral(L, "");
    return 3;
  }
  Task& task = Scheduler::require_current(L, "conn:receive");
  if (line)
    conn.read_line(&Scheduler::wake_task, &task);
  else
    conn.read_exactly(count, &Scheduler::wake_task, &task);
  return Scheduler::get(L).suspend(L, task, receive_done, 0, cancel_io, &conn);
}

// --- the rest --------------------------------------------------------------------------------

int conn_settimeout(lua_State* L) {
  net::Connection& conn = check_conn(L, 1);
  lua_Number seconds = check_seconds(L, 2, "conn:settimeout(seconds)", "seconds");
  conn.set_timeout(engine::seconds_to_duration(seconds));
  return 0;
}

int conn_close(lua_State* L) {
  check_conn(L, 1).close();
  lua_pushboolean(L, 1);
  return 1;
}

int conn_gc(lua_State* L) {
  auto* wrapper = static_cast<LuaConn*>(luaL_checkudata(L, 1, conn_metatable));
  if (wrapper->conn) {
    wrapper->conn->detach();
    wrapper->conn->close();
  }
  wrapper->~LuaConn();
  return 0;
}

// `local c <close> = net.connect(...)`: closed at the end of the scope, collected later.
int conn_close_scope(lua_State* L) {
  auto* wrapper = static_cast<LuaConn*>(luaL_checkudata(L, 1, conn_metatable));
  if (wrapper->conn) wrapper->conn->close();
  return 0;
}

int conn_tostring(lua_State* L) {
  net::Connection& conn = check_conn(L, 1);
  if (!conn.is_open()) {
    lua_pushliteral(L, "net.conn (closed)");
    return 1;
  }
  AddressText local = address_text(conn.local_address());
  AddressText remote = address_text(conn.remote_address());
  lua_pushfstring(L, "net.conn (%s -> %s)", lua_pushlstring(L, local.text, local.size),
                  lua_pushlstring(L, remote.text, remote.size));
  return 1;
}

// --- TLS on a plain connection ----------------------------------------------------------------

int tls_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  net::Connection& conn = check_conn(L, 1);
  if (!conn.write_outcome().ok() || !conn.tls_info()) {
    lua_pushnil(L);
    push_error(L, conn.write_outcome(), "starttls");
    lua_pushstring(L, conn.tls_failure_reason());
    lua_setfield(L, -2, "reason");
    return 2;
  }
  push_tls_info(L, *conn.tls_info());
  return 1;
}

// conn:accept_tls{cert=, key= | self_signed = NAME, min=, max=, ciphers=} -> tls info | nil, err
// The server side of a handshake (the scenario server after its 220 to STARTTLS).
int conn_accept_tls(lua_State* L) {
  net::Connection& conn = check_conn(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  const tls::ServerOptions& options = check_server_tls_options(L, 2, "conn:accept_tls");
  if (conn.writing() || conn.reading())
    return luaL_error(L, "conn:accept_tls: the connection is busy reading or writing");
  Task& task = Scheduler::require_current(L, "conn:accept_tls");
  conn.accept_tls(options, &Scheduler::wake_task, &task);
  return Scheduler::get(L).suspend(L, task, tls_done, 0, cancel_io, &conn);
}

// conn:starttls(opts) -> tls info | nil, err: the client side, for scripts that speak a
// protocol by hand (the options of s:starttls).
int conn_starttls(lua_State* L) {
  net::Connection& conn = check_conn(L, 1);
  lua_settop(L, 2);
  const tls::Options& options = check_tls_options(L, 2, "conn:starttls");
  if (conn.writing() || conn.reading())
    return luaL_error(L, "conn:starttls: the connection is busy reading or writing");
  Task& task = Scheduler::require_current(L, "conn:starttls");
  conn.start_tls(options, &Scheduler::wake_task, &task);
  return Scheduler::get(L).suspend(L, task, tls_done, 0, cancel_io, &conn);
}

// Fields computed on access, then the methods.
int conn_index(lua_State* L) {
  net::Connection& conn = check_conn(L, 1);
  const char* key = luaL_checkstring(L, 2);
  if (std::strcmp(key, "local_addr") == 0) {
    AddressText local = address_text(conn.local_address());  // the std::string dies here
    return push_address(L, local);
  }
  if (std::strcmp(key, "remote_addr") == 0) {
    AddressText remote = address_text(conn.remote_address());
    return push_address(L, remote);
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__fields");
  lua_getfield(L, -1, key);
  if (lua_type(L, -1) != LUA_TFUNCTION) lua_pushnil(L);
  return 1;
}

const luaL_Reg conn_methods[] = {
    {"send", conn_send},
    {"receive", conn_receive},
    {"close", conn_close},
    {"settimeout", conn_settimeout},
    {"accept_tls", conn_accept_tls},
    {"starttls", conn_starttls},
    {nullptr, nullptr},
};

// net.usable_source(address) -> true | nil, why: whether this machine can send from address
bool source_problem(const char* address, char* problem, std::size_t size) {
  try {
    auto why = net::source_address_problem(address);
    if (why) std::snprintf(problem, size, "%s", why->c_str());
    return why.has_value();
  } catch (const std::exception&) {
    std::snprintf(problem, size, "out of memory");
    return true;
  }
}

int net_usable_source(lua_State* L) {
  const char* address = luaL_checkstring(L, 1);
  char problem[256];
  if (source_problem(address, problem, sizeof problem)) {
    lua_pushnil(L);
    lua_pushstring(L, problem);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

const luaL_Reg net_functions[] = {
    {"connect", net_connect},
    {"usable_source", net_usable_source},
    {nullptr, nullptr},
};

}  // namespace

void push_connection(lua_State* L, std::shared_ptr<net::Connection>* connection) {
  auto* wrapper = static_cast<LuaConn*>(lua_newuserdatauv(L, sizeof(LuaConn), 0));
  new (wrapper) LuaConn{std::move(*connection)};
  luaL_setmetatable(L, conn_metatable);
}

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_net(lua_State* L) {
  using namespace smtpsh::lua;
  Scheduler::get(L);
  register_error_metatable(L);
  if (luaL_newmetatable(L, conn_metatable)) {
    luaL_newlib(L, conn_methods);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "local_addr");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "remote_addr");
    lua_setfield(L, -2, "__fields");  // methods and computed fields, for completion too
    lua_pushcfunction(L, conn_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, conn_close_scope);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, conn_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, net_functions);
  return 1;
}
