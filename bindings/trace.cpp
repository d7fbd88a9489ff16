#include "bindings/trace.hpp"

#include <cstdio>

namespace smtpsh::lua {

namespace {

// Registry keys, by address: a light userdata key is read without allocating (nothing raises).
const int sink_key = 0;
const int thread_key = 0;

struct Emit {
  PushTraceEvent push;
  const void* event;
};

// In protected mode: the sink called with the event's table.  [-0, +0, e]
int call_sink(lua_State* L) {
  const auto* emit = static_cast<const Emit*>(lua_touserdata(L, 1));
  lua_rawgetp(L, LUA_REGISTRYINDEX, &sink_key);
  emit->push(L, emit->event);
  lua_call(L, 1, 0);
  return 0;
}

}  // namespace

lua_State* trace_thread(lua_State* L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &thread_key) == LUA_TTHREAD) {
    lua_State* thread = lua_tothread(L, -1);
    lua_pop(L, 1);
    return thread;
  }
  lua_pop(L, 1);
  lua_State* thread = lua_newthread(L);
  // A new thread inherits its creator's hook: an interrupt hook that Ctrl-C left on a task's
  // thread must not fire in a sink.
  lua_sethook(thread, nullptr, 0, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &thread_key);
  return thread;
}

void emit_trace(lua_State* thread, PushTraceEvent push, PrintTraceEvent print,
                const void* event) noexcept {
  if (thread == nullptr || lua_checkstack(thread, 3) == 0) return print(event);
  int top = lua_gettop(thread);
  bool has_sink = lua_rawgetp(thread, LUA_REGISTRYINDEX, &sink_key) == LUA_TFUNCTION;
  lua_settop(thread, top);
  if (!has_sink) return print(event);
  Emit emit{push, event};
  lua_pushcfunction(thread, call_sink);  // a light C function and a light userdata: no allocation
  lua_pushlightuserdata(thread, &emit);
  if (lua_pcall(thread, 1, 0, 0) != LUA_OK) {
    // Not the event as well: the sink may have changed what it points to (a session's
    // transcript) before it failed.
    const char* message = lua_type(thread, -1) == LUA_TSTRING ? lua_tostring(thread, -1)
                                                              : "(an error that is not a string)";
    std::fprintf(stderr, "the trace sink failed: %s\n", message);
  }
  lua_settop(thread, top);
}

int trace_sink(lua_State* L) {
  bool set = !lua_isnoneornil(L, 1);
  if (set && !lua_isfunction(L, 1) && !(lua_isboolean(L, 1) && !lua_toboolean(L, 1)))
    return luaL_typeerror(L, 1, "function or false");
  lua_settop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &sink_key);  // the sink before, returned
  if (set) {
    if (lua_isfunction(L, 1))
      lua_pushvalue(L, 1);
    else
      lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sink_key);
  }
  return 1;
}

void write_visible(const char* text, std::size_t length) {
  for (std::size_t i = 0; i < length; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f)
      std::fprintf(stderr, "\\x%02x", c);
    else
      std::fputc(c, stderr);
  }
}

}  // namespace smtpsh::lua
