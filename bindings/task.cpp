// task: spawn, sleep, wait, all — coroutines on the event loop.
#include "bindings/modules.hpp"
#include "bindings/scheduler.hpp"

#include <asio/steady_timer.hpp>

#include <new>

namespace smtpsh::lua {

namespace {

constexpr const char* task_metatable = "smtpsh.task";
constexpr const char* sleeper_metatable = "smtpsh.sleeper";

Task& check_task(lua_State* L, int index) {
  return *static_cast<Task*>(luaL_checkudata(L, index, task_metatable));
}

Task* to_task(lua_State* L, int index) {
  return static_cast<Task*>(luaL_testudata(L, index, task_metatable));
}

// task.spawn(fn, ...) -> task
int task_spawn(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  Scheduler::get(L).spawn(L, lua_gettop(L) - 1);
  return 1;
}

// task.sleep(seconds)
struct Sleeper {
  asio::steady_timer timer;
  Task* task;
};

int sleeper_gc(lua_State* L) {
  static_cast<Sleeper*>(lua_touserdata(L, 1))->~Sleeper();
  return 0;
}

void cancel_sleep(Task&, void* sleeper) {
  static_cast<Sleeper*>(sleeper)->timer.cancel();
}

int sleep_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  return 0;
}

void start_sleep(Sleeper& sleeper, double seconds) {
  sleeper.timer.expires_after(engine::seconds_to_duration(seconds));
  sleeper.timer.async_wait([s = &sleeper](std::error_code) { Scheduler::wake_task(s->task); });
}

int task_sleep(lua_State* L) {
  lua_Number seconds = luaL_checknumber(L, 1);
  luaL_argcheck(L, seconds >= 0, 1, "task.sleep(seconds): seconds must be 0 or more");
  Task& task = Scheduler::require_current(L, "task.sleep");
  Scheduler& scheduler = Scheduler::get(L);
  auto* sleeper = static_cast<Sleeper*>(lua_newuserdatauv(L, sizeof(Sleeper), 0));
  new (sleeper) Sleeper{asio::steady_timer(scheduler.io()), &task};
  luaL_setmetatable(L, sleeper_metatable);
  start_sleep(*sleeper, seconds);
  return scheduler.suspend(L, task, sleep_done, 0, cancel_sleep, sleeper);
}

// task.wait(t) -> results... | nil, err
int wait_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  return Scheduler::push_results(L, 1);
}

int task_wait(lua_State* L) {
  Task& target = check_task(L, 1);
  lua_settop(L, 1);
  if (target.finished()) return Scheduler::push_results(L, 1);
  Task& self = Scheduler::require_current(L, "task.wait");
  if (&self == &target) return luaL_error(L, "task.wait: a task cannot wait for itself");
  return Scheduler::get(L).wait_for(L, self, target, wait_done, 0);
}

// task.all{t1, t2, ...} -> { {n=, ...}, ... } | nil, err
// Waits for every task, then returns each one's results packed, or the first failure by
// position (every failure counts as seen).
int all_continue(lua_State* L, int, lua_KContext next) {
  Scheduler::check_abort(L);
  lua_settop(L, 1);
  lua_Integer count = luaL_len(L, 1);
  for (lua_Integer i = next; i <= count; ++i) {
    lua_geti(L, 1, i);
    Task* target = to_task(L, -1);
    lua_pop(L, 1);  // the list keeps the handle alive
    if (target && !target->finished()) {
      Task& self = Scheduler::require_current(L, "task.all");
      return Scheduler::get(L).wait_for(L, self, *target, all_continue, i);
    }
  }
  lua_createtable(L, static_cast<int>(count), 0);
  int results = lua_gettop(L);
  lua_Integer failed_at = 0;
  for (lua_Integer i = 1; i <= count; ++i) {
    lua_geti(L, 1, i);
    int handle = lua_gettop(L);
    int n = Scheduler::push_results(L, handle);
    if (static_cast<Task*>(lua_touserdata(L, handle))->state == Task::State::failed) {
      if (failed_at == 0) failed_at = i;
      lua_settop(L, results);
      continue;
    }
    lua_createtable(L, n, 1);
    lua_insert(L, handle + 1);  // handle, pack, results...
    for (int k = n; k >= 1; --k)
      lua_rawseti(L, handle + 1, k);
    lua_pushinteger(L, n);
    lua_setfield(L, handle + 1, "n");
    lua_rawseti(L, results, i);
    lua_settop(L, results);
  }
  if (failed_at == 0) return 1;
  lua_geti(L, 1, failed_at);
  return Scheduler::push_results(L, -1);
}

int task_all(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer count = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= count; ++i) {
    lua_geti(L, 1, i);
    if (!to_task(L, -1))
      return luaL_error(L, "task.all{t1, t2, ...}: element %d is a %s, not a task",
                        static_cast<int>(i), luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  return all_continue(L, LUA_OK, 1);
}

// task.now() -> seconds on a monotonic clock, for timing steps
int task_now(lua_State* L) {
  auto since_epoch = engine::Clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(since_epoch).count());
  return 1;
}

// t:status() -> "ready" | "running" | "waiting" | "done" | "failed"
int task_status(lua_State* L) {
  static const char* const names[] = {"ready", "running", "waiting", "done", "failed"};
  lua_pushstring(L, names[static_cast<int>(check_task(L, 1).state)]);
  return 1;
}

int task_tostring(lua_State* L) {
  Task& task = check_task(L, 1);
  task_status(L);
  lua_pushfstring(L, "task (%s): %p", lua_tostring(L, -1), static_cast<void*>(&task));
  return 1;
}

const luaL_Reg task_functions[] = {
    {"spawn", task_spawn}, {"sleep", task_sleep}, {"wait", task_wait},
    {"all", task_all},     {"now", task_now},     {nullptr, nullptr},
};

const luaL_Reg task_methods[] = {
    {"wait", task_wait},
    {"status", task_status},
    {nullptr, nullptr},
};

}  // namespace

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_task(lua_State* L) {
  using namespace smtpsh::lua;
  Scheduler::get(L);
  if (luaL_newmetatable(L, task_metatable)) {
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, sleeper_metatable)) {
    lua_pushcfunction(L, sleeper_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, task_functions);
  return 1;
}
