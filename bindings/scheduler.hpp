#pragma once
// Lua tasks on the engine's event loop (ARCHITECTURE.md, "The coroutine bridge").
//
// Every task is a Lua thread. A binding that must wait starts an engine operation whose
// completion calls Scheduler::wake, then returns Scheduler::suspend(...), which yields the
// thread; wake resumes it, and the binding's continuation builds the results. Nothing here
// blocks the loop, and a task that raises never takes the process down: its error is kept for
// whoever waits for it (or reported by the shell when nobody does).
//
// Errors raised by Lua unwind with longjmp, so no function in this file or in a binding may
// have a C++ object with a destructor alive when it calls into Lua in a way that can raise or
// yield: such work lives in separate functions that return first.

#include "engine/loop/loop.hpp"

#include <lua.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace smtpsh::lua {

class Scheduler;
struct Task;

// Makes a suspended task's operation complete soon (it then sees task.abort_reason).
using CancelFn = void (*)(Task& task, void* context);

// The state of one task, stored inside its handle userdata ("smtpsh.task"). Trivially
// destructible on purpose: Lua frees it without running C++ code.
struct Task {
  enum class State : std::uint8_t { ready, running, waiting, done, failed };

  lua_State* thread = nullptr;
  Scheduler* scheduler = nullptr;
  int anchor = LUA_NOREF;  // registry reference to the handle while the task is alive
  State state = State::ready;
  bool started = false;
  int start_nargs = 0;
  // Why the task must stop at its next suspension point ("interrupted"), or nullptr.
  const char* abort_reason = nullptr;

  CancelFn cancel = nullptr;
  void* cancel_context = nullptr;

  Task* first_waiter = nullptr;  // tasks blocked in task.wait on this one
  Task* next_waiter = nullptr;
  Task* prev_live = nullptr;  // the scheduler's list of tasks not yet finished
  Task* next_live = nullptr;

  bool finished() const { return state == State::done || state == State::failed; }
};

class Scheduler {
 public:
  // The scheduler of L's state, created (with its event loop) on first use.  [-0, +0, m]
  static Scheduler& get(lua_State* L);
  // The task whose thread is L, or nullptr for the main thread and for coroutines a task made.
  static Task* current(lua_State* L);
  // Like current(), but raises "NAME must be called from a task" when there is none.
  static Task& require_current(lua_State* L, const char* name);

  asio::io_context& io() { return loop_.io(); }
  engine::Loop& loop() { return loop_; }

  // Pops a function and its nargs arguments, pushes the new task's handle. The task starts
  // on the next turn of the loop.  [-(nargs+1), +1, m]
  Task& spawn(lua_State* L, int nargs);

  // Yields the calling task until wake(task). `k` runs when it resumes (and must first call
  // check_abort); `cancel` makes the operation end early on interrupt. Use as
  // `return scheduler.suspend(...)` from a lua_CFunction.
  int suspend(lua_State* L, Task& task, lua_KFunction k, lua_KContext ctx, CancelFn cancel,
              void* cancel_context);
  // Resumes a suspended task; safe to call from any completion handler.
  void wake(Task& task);
  // A Notify callback for engine operations whose context is a Task*.
  static void wake_task(void* task);
  // In a continuation: raises the task's abort reason ("interrupted") if it has one.  [-0, +0, v]
  static void check_abort(lua_State* L);

  // Makes `waiter` wait for `target`; returns like suspend().
  int wait_for(lua_State* L, Task& waiter, Task& target, lua_KFunction k, lua_KContext ctx);
  // Pushes a finished task's results and returns their count, or pushes nil and its error
  // and returns 2. Marks the failure as seen.  [-0, +n, m]
  static int push_results(lua_State* L, int handle_index);
  // Pushes the traceback of a failed task (a string), or nil.  [-0, +1, -]
  static void push_traceback(lua_State* L, int handle_index);

  // Runs the loop until every task has finished. Tasks still waiting when nothing can ever
  // wake them are failed with "deadlock" rather than left hanging.
  void drive();
  std::size_t live_tasks() const { return live_count_; }
  // A waiter left a task's list of waiters (see wait_for).
  void unblock() { --blocked_on_tasks_; }

  // Interrupt handling (Ctrl-C), per scheduler: request_interrupt() is async-signal-safe (the
  // shell's SIGINT handler calls it for the scheduler Ctrl-C targets); it stops this state's
  // busy Lua loop through a hook, and the next turn of its loop cancels every waiting operation.
  // Another state (the demo server's, on its own thread) is not touched.
  void request_interrupt() noexcept;
  void interrupt_all(const char* reason = "interrupted");

  // Limits of a sandboxed run (bindings/sandbox.hpp): spawning beyond `limit` live tasks
  // asks the sandbox to stop (0: no limit); fire(context) runs on the loop's thread once
  // `after` has passed (the wall-clock limit), unless the state is closed first.
  void set_task_limit(std::size_t limit) { task_limit_ = limit; }
  // The scheduler's own thread (it formats errors there: a sandbox hooks it too).
  lua_State* aux_thread() const { return aux_; }
  void arm_watchdog(engine::Duration after, void (*fire)(void*), void* context);

  // Calls report(traceback) for each failed task nobody waited for, then forgets them.
  template <class Report>
  void report_unobserved(lua_State* L, Report report);

  explicit Scheduler(lua_State* L);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

 private:
  void resume(Task& task, int nargs);
  void finish(Task& task, int status, int nresults);
  void fail_unstarted(Task& task);
  void abandon(Task& task, const char* reason);
  void link_live(Task& task);
  void unlink_live(Task& task);
  void wake_waiters(Task& task);
  void push_unobserved_table(lua_State* L);

  engine::Loop loop_;
  std::unique_ptr<asio::steady_timer> watchdog_;  // after loop_: destroyed before it
  std::size_t task_limit_ = 0;
  lua_State* aux_ = nullptr;  // a thread of our own for bookkeeping on the Lua side
  Task* live_head_ = nullptr;
  std::size_t live_count_ = 0;
  std::size_t blocked_on_tasks_ = 0;  // live tasks linked into another task's waiters
  Task* running_ = nullptr;
  bool interrupting_ = false;

  // Set by request_interrupt (a signal handler), taken by the loop's thread.
  std::atomic<bool> interrupt_requested_{false};
  // The task thread being resumed right now, for request_interrupt to hook.
  std::atomic<lua_State*> running_thread_{nullptr};
  static_assert(std::atomic<bool>::is_always_lock_free &&
                    std::atomic<lua_State*>::is_always_lock_free,
                "a signal handler may only touch lock-free atomics");
};

template <class Report>
void Scheduler::report_unobserved(lua_State* L, Report report) {
  push_unobserved_table(L);
  int table = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {
    lua_pop(L, 1);
    push_traceback(L, -1);
    report(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "smtpsh.unobserved");
}

}  // namespace smtpsh::lua
