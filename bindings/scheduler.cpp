#include "bindings/scheduler.hpp"

#include "bindings/sandbox.hpp"

#include <asio/post.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

namespace smtpsh::lua {

namespace {

constexpr const char* scheduler_key = "smtpsh.scheduler";
constexpr const char* unobserved_key = "smtpsh.unobserved";
constexpr const char* task_metatable = "smtpsh.task";

// Uservalue slots of a task handle.
constexpr int slot_thread = 1;     // the coroutine, while the task runs
constexpr int slot_outcome = 2;    // a table of results, or the error value
constexpr int slot_traceback = 3;  // the traceback string of a failure

Task*& task_of(lua_State* L) {
  return *static_cast<Task**>(lua_getextraspace(L));
}

void interrupt_hook(lua_State* L, lua_Debug*) {
  lua_sethook(L, nullptr, 0, 0);
  luaL_error(L, "interrupted");
}

// [-0, +1, e] The error value at 1 as a string, the way lua.c shows an uncaught error.
int describe_error(lua_State* L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    lua_settop(L, 1);
  } else if (!luaL_callmeta(L, 1, "__tostring") || lua_type(L, -1) != LUA_TSTRING) {
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  return 1;
}

int scheduler_gc(lua_State* L) {
  static_cast<Scheduler*>(lua_touserdata(L, 1))->~Scheduler();
  return 0;
}

}  // namespace

Scheduler::Scheduler(lua_State* L) {
  aux_ = lua_newthread(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "smtpsh.scheduler.aux");
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, unobserved_key);
}

Scheduler& Scheduler::get(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, scheduler_key) == LUA_TUSERDATA) {
    auto* scheduler = static_cast<Scheduler*>(lua_touserdata(L, -1));
    lua_pop(L, 1);
    return *scheduler;
  }
  lua_pop(L, 1);
  // Threads copy the main thread's extra space when created: keep it empty so that only
  // task threads ever carry a Task pointer.
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  task_of(lua_tothread(L, -1)) = nullptr;
  lua_pop(L, 1);

  void* memory = lua_newuserdatauv(L, sizeof(Scheduler), 0);
  auto* scheduler = new (memory) Scheduler(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, scheduler_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, scheduler_key);
  return *scheduler;
}

Task* Scheduler::current(lua_State* L) {
  return task_of(L);
}

Task& Scheduler::require_current(lua_State* L, const char* name) {
  Task* task = task_of(L);
  if (task == nullptr || task->thread != L) {
    luaL_error(L,
               "%s must be called from a task, not from the main thread or a coroutine it made "
               "(wrap the code in task.spawn)",
               name);
    std::abort();  // not reached: luaL_error does not return
  }
  return *task;
}

// --- spawning --------------------------------------------------------------------------------

Task& Scheduler::spawn(lua_State* L, int nargs) {
  if (task_limit_ != 0 && live_count_ >= task_limit_) check_task_limit(L, live_count_);
  int function_index = lua_absindex(L, -(nargs + 1));
  luaL_checkstack(L, 4, "spawning a task");
  auto* task = static_cast<Task*>(lua_newuserdatauv(L, sizeof(Task), 3));
  new (task) Task();
  luaL_setmetatable(L, task_metatable);
  int handle = lua_gettop(L);

  lua_State* thread = lua_newthread(L);
  lua_setiuservalue(L, handle, slot_thread);
  // The function and its arguments move to the new thread, whose stack starts small.
  if (lua_checkstack(thread, nargs + 1 + LUA_MINSTACK) == 0)
    luaL_error(L, "too many arguments for a task (%d)", nargs);
  task_of(thread) = task;
  task->thread = thread;
  task->scheduler = this;
  task->start_nargs = nargs;

  // Move the function and its arguments onto the new thread, keeping the handle on L.
  lua_rotate(L, function_index, -(nargs + 1));  // handle first, then function and args
  lua_xmove(L, thread, nargs + 1);

  lua_pushvalue(L, -1);
  task->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  link_live(*task);
  asio::post(io(), [this, task] { resume(*task, task->start_nargs); });
  return *task;
}

void Scheduler::link_live(Task& task) {
  task.next_live = live_head_;
  if (live_head_) live_head_->prev_live = &task;
  live_head_ = &task;
  ++live_count_;
}

void Scheduler::unlink_live(Task& task) {
  if (task.prev_live)
    task.prev_live->next_live = task.next_live;
  else
    live_head_ = task.next_live;
  if (task.next_live) task.next_live->prev_live = task.prev_live;
  task.prev_live = task.next_live = nullptr;
  --live_count_;
}

// --- suspending and resuming -----------------------------------------------------------------

int Scheduler::suspend(lua_State* L, Task& task, lua_KFunction k, lua_KContext ctx, CancelFn cancel,
                       void* cancel_context) {
  task.state = Task::State::waiting;
  task.cancel = cancel;
  task.cancel_context = cancel_context;
  if (task.abort_reason && cancel) {
    // Interrupted already: let the operation just started end at once.
    task.cancel = nullptr;
    cancel(task, cancel_context);
  }
  return lua_yieldk(L, 0, ctx, k);
}

void Scheduler::wake(Task& task) {
  task.cancel = nullptr;
  if (running_ != nullptr || interrupting_) {
    // Never resume a thread from inside another one: take the next turn of the loop.
    asio::post(io(), [this, t = &task] { resume(*t, 0); });
    return;
  }
  resume(task, 0);
}

void Scheduler::wake_task(void* task) {
  auto* t = static_cast<Task*>(task);
  t->scheduler->wake(*t);
}

void Scheduler::check_abort(lua_State* L) {
  Task* task = task_of(L);
  if (task && task->abort_reason) {
    // The interrupt is delivered here. A hook Ctrl-C armed on this thread while it was about
    // to yield must not raise it a second time later: on the return from the code's own
    // pcall, outside its protection (seen in raw mode: "raw.lua: interrupted" at the top).
    if (lua_gethook(L) == interrupt_hook) lua_sethook(L, nullptr, 0, 0);
    luaL_error(L, "%s", task->abort_reason);
  }
}

void Scheduler::resume(Task& task, int nargs) {
  if (interrupt_requested_.load()) interrupt_all();
  if (task.finished()) return;
  if (task.abort_reason && task.state == Task::State::ready) return fail_unstarted(task);

  task.state = Task::State::running;
  task.started = true;
  running_ = &task;
  running_thread_.store(task.thread);
  int nresults = 0;
  int status = lua_resume(task.thread, nullptr, nargs, &nresults);
  running_thread_.store(nullptr);
  running_ = nullptr;

  if (status == LUA_YIELD) {
    if (task.state == Task::State::waiting) return;
    // A plain coroutine.yield() in the task's own body: give the others a turn.
    lua_pop(task.thread, nresults);
    task.state = Task::State::ready;
    asio::post(io(), [this, t = &task] { resume(*t, 0); });
    return;
  }
  finish(task, status, nresults);
}

// Fails a task that is not running: never started, or suspended where it cannot go on.
// finish() resets the thread, which closes the `<close>` variables a suspended body holds.
void Scheduler::fail_unstarted(Task& task) {
  lua_settop(task.thread, 0);
  lua_pushstring(task.thread, task.abort_reason);
  finish(task, LUA_ERRRUN, 0);
}

void Scheduler::finish(Task& task, int status, int nresults) {
  lua_State* co = task.thread;
  lua_rawgeti(aux_, LUA_REGISTRYINDEX, task.anchor);
  int handle = lua_gettop(aux_);

  if (status == LUA_OK) {
    task.state = Task::State::done;
    lua_createtable(aux_, nresults, 1);
    int results = lua_gettop(aux_);
    lua_xmove(co, aux_, nresults);
    for (int i = nresults; i >= 1; --i)
      lua_rawseti(aux_, results, i);
    lua_pushinteger(aux_, nresults);
    lua_setfield(aux_, results, "n");
    lua_setiuservalue(aux_, handle, slot_outcome);
  } else {
    task.state = Task::State::failed;
    lua_xmove(co, aux_, 1);  // the error value
    // The message is made in protected mode: an error object's __tostring may itself raise.
    lua_pushcfunction(aux_, describe_error);
    lua_pushvalue(aux_, -2);
    if (lua_pcall(aux_, 1, 1, 0) != LUA_OK || lua_type(aux_, -1) != LUA_TSTRING) {
      lua_pop(aux_, 1);
      lua_pushliteral(aux_, "(error object cannot be shown: its __tostring failed)");
    }
    lua_insert(aux_, -2);  // keep the message below the error value
    const char* message = lua_tostring(aux_, -2);
    bool interrupted = task.abort_reason != nullptr;
    if (interrupted)
      lua_pushstring(aux_, message);  // a traceback of an interrupt is noise
    else
      luaL_traceback(aux_, co, message, 0);
    lua_setiuservalue(aux_, handle, slot_traceback);
    lua_setiuservalue(aux_, handle, slot_outcome);
    lua_settop(aux_, handle);
    // Close the to-be-closed variables the error skipped (a `local c <close>` connection).
    // An interrupt hook the signal handler left on this thread would fire inside them. Not
    // after a sandbox stopped the run: its __close handlers are the stopped code's own, and
    // would run without the hook that limits them.
    if (stop_reason(co) == nullptr) {
      lua_sethook(co, nullptr, 0, 0);
      lua_resetthread(co);
    }

    lua_getfield(aux_, LUA_REGISTRYINDEX, unobserved_key);
    lua_pushvalue(aux_, handle);
    lua_pushboolean(aux_, 1);
    lua_rawset(aux_, -3);
    lua_pop(aux_, 1);
  }
  // The coroutine is no longer needed; let it be collected even while the handle lives on.
  lua_pushnil(aux_);
  lua_setiuservalue(aux_, handle, slot_thread);
  task.thread = nullptr;
  lua_settop(aux_, 0);

  unlink_live(task);
  luaL_unref(aux_, LUA_REGISTRYINDEX, task.anchor);
  task.anchor = LUA_NOREF;
  wake_waiters(task);
}

void Scheduler::wake_waiters(Task& task) {
  Task* waiter = task.first_waiter;
  task.first_waiter = nullptr;
  while (waiter) {
    Task* next = waiter->next_waiter;
    waiter->next_waiter = nullptr;
    waiter->cancel = nullptr;
    --blocked_on_tasks_;
    asio::post(io(), [this, waiter] { resume(*waiter, 0); });
    waiter = next;
  }
}

// --- waiting for other tasks -----------------------------------------------------------------

namespace {
void cancel_wait(Task& waiter, void* context) {
  auto* target = static_cast<Task*>(context);
  for (Task** link = &target->first_waiter; *link; link = &(*link)->next_waiter) {
    if (*link == &waiter) {
      *link = waiter.next_waiter;
      break;
    }
  }
  waiter.next_waiter = nullptr;
  Scheduler* scheduler = waiter.scheduler;
  scheduler->unblock();
  asio::post(scheduler->io(), [scheduler, w = &waiter] { scheduler->wake(*w); });
}
}  // namespace

int Scheduler::wait_for(lua_State* L, Task& waiter, Task& target, lua_KFunction k,
                        lua_KContext ctx) {
  waiter.next_waiter = target.first_waiter;
  target.first_waiter = &waiter;
  ++blocked_on_tasks_;
  return suspend(L, waiter, k, ctx, cancel_wait, &target);
}

int Scheduler::push_results(lua_State* L, int handle_index) {
  handle_index = lua_absindex(L, handle_index);
  auto* task = static_cast<Task*>(lua_touserdata(L, handle_index));
  lua_getiuservalue(L, handle_index, slot_outcome);
  if (task->state == Task::State::failed) {
    lua_getfield(L, LUA_REGISTRYINDEX, unobserved_key);
    lua_pushvalue(L, handle_index);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  int results = lua_gettop(L);
  lua_getfield(L, results, "n");
  auto n = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results to return from a task");
  for (int i = 1; i <= n; ++i)
    lua_rawgeti(L, results, i);
  lua_remove(L, results);
  return n;
}

void Scheduler::push_traceback(lua_State* L, int handle_index) {
  lua_getiuservalue(L, handle_index, slot_traceback);
}

void Scheduler::push_unobserved_table(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, unobserved_key);
}

// --- driving and interrupting ----------------------------------------------------------------

void Scheduler::drive() {
  constexpr const char* deadlock = "deadlock: every remaining task waits for another task";
  // Done when no task is left, or when every one left waits for another: then nothing can
  // ever wake them (other work on the loop, such as a listening server, does not count).
  auto settled = [this] { return live_count_ == 0 || live_count_ == blocked_on_tasks_; };
  for (int attempt = 0; !loop_.run_until(settled) || live_count_ > 0; ++attempt) {
    if (attempt == 0) {
      interrupt_all(deadlock);
    } else {
      while (live_head_)
        abandon(*live_head_, deadlock);
    }
  }
  interrupt_requested_.store(false);
}

void Scheduler::abandon(Task& task, const char* reason) {
  if (task.cancel == cancel_wait) {
    // Leave the other task's list of waiters: nothing may resume this one later.
    auto* target = static_cast<Task*>(task.cancel_context);
    for (Task** link = &target->first_waiter; *link; link = &(*link)->next_waiter) {
      if (*link == &task) {
        *link = task.next_waiter;
        --blocked_on_tasks_;
        break;
      }
    }
  }
  task.cancel = nullptr;
  task.abort_reason = reason;
  fail_unstarted(task);
}

void Scheduler::arm_watchdog(engine::Duration after, void (*fire)(void*), void* context) {
  watchdog_ = std::make_unique<asio::steady_timer>(io());
  watchdog_->expires_after(after);
  watchdog_->async_wait([fire, context](const std::error_code& ec) {
    if (!ec) fire(context);
  });
}

void Scheduler::request_interrupt() noexcept {
  interrupt_requested_.store(true);
  if (lua_State* L = running_thread_.load())
    lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void Scheduler::interrupt_all(const char* reason) {
  interrupt_requested_.store(false);
  interrupting_ = true;  // cancellations must not resume anyone while the list is walked
  for (Task* task = live_head_; task; task = task->next_live) {
    if (!task->abort_reason) task->abort_reason = reason;
    if (task->state == Task::State::waiting && task->cancel) {
      CancelFn cancel = task->cancel;
      task->cancel = nullptr;
      cancel(*task, task->cancel_context);
    }
  }
  interrupting_ = false;
}

}  // namespace smtpsh::lua
