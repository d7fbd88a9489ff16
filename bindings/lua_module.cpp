// smtpsh as a Lua C module for a stock lua5.4: `local smtpsh = require "smtpsh"`.
//
// The module table offers every "smtpsh.NAME" module as a field, loaded on first use
// (smtpsh.smtp, smtpsh.dns, smtpsh.net, smtpsh.task, smtpsh.server, smtpsh.retry, ...), and
// installs the same searcher the shell has, so `require "smtpsh.retry"` finds SMTPSH_PATH,
// ~/.config/smtpsh and the embedded stdlib. The event loop is driven by:
//
//   smtpsh.run(fn, ...)  runs fn as a task and drives the loop until fn and every task finished
//                        (as the shell runs a chunk); returns fn's results, raises its error,
//                        and raises when another task failed with nobody waiting for it.
//   a blocking call outside any task (`smtpsh.dns.mx("example.com")` at the top level) runs as
//                        a task of its own, the loop driven until that call finished.
//
// For the second, the functions of a module reached through the smtpsh table, and the methods
// of the objects they return (sessions, connections, servers, task handles: the metatable of a
// table or userdata a wrapped function returns gets a wrapping __index), are wrapped: inside
// a task a wrapper calls straight through (yields pass, through a continuation); outside one it
// spawns the call and drives the loop. Nothing here knows about the shell; Ctrl-C is left to
// the host (lua.c's default).
#include "bindings/modules.hpp"
#include "bindings/scheduler.hpp"

#include <lua.hpp>

#include <cstring>
#include <new>

namespace {

using smtpsh::lua::Scheduler;
using smtpsh::lua::Task;

// Per Lua state, a userdata in the registry; trivially destructible on purpose.
struct ModuleState {
  int driving = 0;  // > 0 while a call of this module drives the loop
};

constexpr const char* state_key = "smtpsh.module.state";
constexpr const char* wrappers_key = "smtpsh.module.wrappers";  // original -> wrapper (weak)
constexpr const char* patched_key = "smtpsh.module.patched";    // metatables done (weak)

// Functions that never wait and must not drive the loop (task.spawn only schedules): their
// wrappers always call straight through, adopting what they return (the task handle).
bool never_drives(const char* module, const char* name) {
  return std::strcmp(module, "task") == 0 &&
         (std::strcmp(name, "spawn") == 0 || std::strcmp(name, "now") == 0);
}

ModuleState& state_of(lua_State* L) {
  return *static_cast<ModuleState*>(lua_touserdata(L, lua_upvalueindex(2)));
}

bool in_task(lua_State* L) {
  Task* task = Scheduler::current(L);
  return task != nullptr && task->thread == L;
}

// [-0, +0, e] Creates (once) a weak-keyed table in the registry.
void ensure_weak_table(lua_State* L, const char* key) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, key);
}

int call_wrapper(lua_State* L);
int index_wrapper(lua_State* L);
void adopt(lua_State* L, int index, ModuleState* state);

// [-1, +1, e] Replaces the function on top by its wrapper (made once per function).
void wrap_function(lua_State* L, ModuleState* state, bool direct = false) {
  if (lua_tocfunction(L, -1) == call_wrapper) return;
  lua_getfield(L, LUA_REGISTRYINDEX, wrappers_key);
  lua_pushvalue(L, -2);
  if (lua_rawget(L, -2) == LUA_TFUNCTION) {
    lua_remove(L, -2);  // the cache
    lua_remove(L, -2);  // the original
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, state);
  lua_pushboolean(L, direct);
  lua_pushcclosure(L, call_wrapper, 3);
  lua_pushvalue(L, -3);  // original
  lua_pushvalue(L, -2);  // wrapper
  lua_rawset(L, -4);
  lua_remove(L, -2);  // the cache
  lua_remove(L, -2);  // the original
}

// [-0, +0, e] Makes the methods of the object at `index` wrapped too: its metatable's __index
// (a table or a function) is replaced, once per metatable, by one that wraps what it finds.
void adopt(lua_State* L, int index, ModuleState* state) {
  int type = lua_type(L, index);
  if (type != LUA_TTABLE && type != LUA_TUSERDATA) return;
  if (!lua_getmetatable(L, index)) return;
  int meta = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, patched_key);
  lua_pushvalue(L, meta);
  if (lua_rawget(L, -2) != LUA_TNIL) {
    lua_settop(L, meta - 1);
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, meta);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_pushliteral(L, "__index");
  int index_type = lua_rawget(L, meta);
  if (index_type == LUA_TTABLE || index_type == LUA_TFUNCTION) {
    lua_pushlightuserdata(L, state);
    lua_pushcclosure(L, index_wrapper, 2);
    lua_setfield(L, meta, "__index");
  }
  lua_settop(L, meta - 1);
}

// [-0, +0, e] Wraps or adopts each value from `first` to the top, in place.
void adopt_results(lua_State* L, int first, ModuleState* state) {
  for (int i = first; i <= lua_gettop(L); ++i) {
    if (lua_type(L, i) == LUA_TFUNCTION) {
      lua_pushvalue(L, i);
      wrap_function(L, state);
      lua_replace(L, i);
    } else {
      adopt(L, i, state);
    }
  }
}

// obj[key] through the original __index (upvalue 1), the value wrapped.
int index_done(lua_State* L, int, lua_KContext) {
  lua_settop(L, 3);
  adopt_results(L, 3, static_cast<ModuleState*>(lua_touserdata(L, lua_upvalueindex(2))));
  return 1;
}

int index_wrapper(lua_State* L) {
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  if (lua_type(L, 3) == LUA_TTABLE) {
    lua_pushvalue(L, 2);
    lua_gettable(L, 3);
    lua_replace(L, 3);
    return index_done(L, LUA_OK, 0);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_callk(L, 2, 1, 0, index_done);
  return index_done(L, LUA_OK, 0);
}

// Inside a task: the original function, its results adopted.
int direct_done(lua_State* L, int, lua_KContext) {
  adopt_results(L, 1, static_cast<ModuleState*>(lua_touserdata(L, lua_upvalueindex(2))));
  return lua_gettop(L);
}

// Runs the loop until `task` finished. When the loop runs out of work first, whatever the
// task waits for can never happen: drive() then fails every task left (deadlock).
void run_until_finished(Scheduler& scheduler, Task& task) {
  if (!scheduler.loop().run_until([&task] { return task.finished(); })) scheduler.drive();
}

int call_wrapper(lua_State* L) {
  ModuleState& state = state_of(L);
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (in_task(L) || state.driving > 0 || lua_toboolean(L, lua_upvalueindex(3))) {
    // In a task, or in a coroutine of a task that runs right now (where the binding raises
    // its own error), or a function that never waits: call straight through.
    lua_callk(L, nargs, LUA_MULTRET, 0, direct_done);
    return direct_done(L, LUA_OK, 0);
  }
  // Outside any task: this call becomes a task, and the loop runs until it finished.
  Scheduler& scheduler = Scheduler::get(L);
  Task& task = scheduler.spawn(L, nargs);  // the handle is now at 1
  ++state.driving;
  run_until_finished(scheduler, task);
  --state.driving;
  int count = Scheduler::push_results(L, 1);
  if (task.state == Task::State::failed) return lua_error(L);  // its error value, as raised
  adopt_results(L, 2, &state);
  return count;
}

int run_done(lua_State* L, int, lua_KContext) {
  return lua_gettop(L);
}

// smtpsh.run(fn, ...) -> fn's results
int module_run(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  ModuleState& state = state_of(L);
  int nargs = lua_gettop(L) - 1;
  if (in_task(L)) {
    // Already in a task: the loop is driven by whoever runs it.
    lua_callk(L, nargs, LUA_MULTRET, 0, run_done);
    return run_done(L, LUA_OK, 0);
  }
  if (state.driving > 0)
    return luaL_error(L,
                      "smtpsh.run cannot run inside a coroutine of a running task: call the "
                      "function directly from the task, or task.spawn it");
  Scheduler& scheduler = Scheduler::get(L);
  Task& task = scheduler.spawn(L, nargs);  // the handle is now at 1
  ++state.driving;
  scheduler.drive();
  --state.driving;

  // Every other task that failed with nobody waiting for it fails the run, as in the shell.
  Scheduler::push_results(L, 1);  // marks fn's own failure as seen
  lua_settop(L, 1);
  lua_newtable(L);
  int failures = 0;
  scheduler.report_unobserved(L, [L, &failures](const char* traceback) {
    lua_pushstring(L, traceback);
    lua_rawseti(L, 2, ++failures);
  });
  if (task.state == Task::State::failed) {
    Scheduler::push_results(L, 1);
    return lua_error(L);  // fn's error value, as raised
  }
  if (failures > 0) {
    lua_rawgeti(L, 2, 1);
    return luaL_error(L, "error in a task nobody waited for%s: %s",
                      failures > 1 ? " (and others)" : "", lua_tostring(L, -1));
  }
  lua_settop(L, 1);
  return Scheduler::push_results(L, 1);
}

// smtpsh.NAME: require "smtpsh.NAME" on first use, its functions wrapped; nil when there is no
// such module.
int module_index(lua_State* L) {
  const char* key = lua_tostring(L, 2);
  if (lua_type(L, 2) != LUA_TSTRING || std::strchr(key, '.') || std::strchr(key, '/')) return 0;
  const char* name = lua_pushfstring(L, "smtpsh.%s", key);  // 3
  bool known = false;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  known = lua_getfield(L, -1, name) != LUA_TNIL;
  lua_pop(L, 2);
  if (!known) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    known = lua_getfield(L, -1, name) != LUA_TNIL;
    lua_pop(L, 2);
  }
  if (!known) {
    const char* relative = lua_pushfstring(L, "stdlib/%s.lua", key);
    int status = smtpsh::lua::load_lua_file(L, relative, smtpsh::embedded_stdlib());
    if (status == LUA_ERRFILE) return 0;
    lua_pop(L, 2);  // the chunk (or syntax error, which require reports) and the path
  }
  lua_getglobal(L, "require");
  lua_pushvalue(L, 3);
  lua_call(L, 1, 1);  // 4
  if (lua_type(L, 4) == LUA_TTABLE) {
    auto* state = static_cast<ModuleState*>(lua_touserdata(L, lua_upvalueindex(1)));
    lua_pushnil(L);
    while (lua_next(L, 4) != 0) {
      if (lua_type(L, -1) == LUA_TFUNCTION && lua_type(L, -2) == LUA_TSTRING) {
        wrap_function(L, state, never_drives(key, lua_tostring(L, -2)));
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 4);  // replacing an existing key keeps the traversal valid
      } else {
        lua_pop(L, 1);
      }
    }
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 4);
  lua_rawset(L, 1);  // a plain field from now on
  return 1;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int luaopen_smtpsh(lua_State* L) {
  // Inside the smtpsh shell the modules are there already (its own copy of this code):
  // loading a second copy into the same state would mix two schedulers' code.
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_getfield(L, -1, "smtpsh.task");
  lua_CFunction preload = lua_tocfunction(L, -1);
  lua_pop(L, 2);
  if (preload != nullptr && preload != luaopen_smtpsh_task)
    return luaL_error(L,
                      "require \"smtpsh\": this Lua state already has smtpsh's modules (the "
                      "smtpsh shell): use its globals (smtp, dns, net, task, server)");

  if (preload == nullptr) smtpsh::lua::open_modules(L, smtpsh::lua::user_search_dirs());
  Scheduler::get(L);
  ensure_weak_table(L, wrappers_key);
  ensure_weak_table(L, patched_key);
  if (lua_getfield(L, LUA_REGISTRYINDEX, state_key) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    new (lua_newuserdatauv(L, sizeof(ModuleState), 0)) ModuleState();
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, state_key);
  }
  void* state = lua_touserdata(L, -1);

  lua_createtable(L, 0, 3);
  lua_pushlightuserdata(L, state);
  lua_pushlightuserdata(L, state);  // upvalue 2, as the wrappers have it
  lua_pushcclosure(L, module_run, 2);
  lua_setfield(L, -2, "run");
  lua_pushliteral(L, "smtpsh " SMTPSH_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_createtable(L, 0, 1);
  lua_pushlightuserdata(L, state);
  lua_pushcclosure(L, module_index, 1);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_remove(L, -2);  // the state userdata
  return 1;
}
