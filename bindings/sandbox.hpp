#pragma once
// The limits of a sandboxed run (`smtpsh --sandbox FILE.lua`, recipes, replays): the Lua
// memory a state may hold (counted by its allocator), the instructions and CPU time it may
// spend (a count hook), its wall-clock time (a timer), the tasks it may run at once (asked by
// the scheduler), and where it may connect (a guard before every connect). The rules on what
// a recipe may call live in stdlib/sandbox.lua; this is what Lua code cannot enforce itself.
//
// A state made by new_state() counts its memory from the start; the limits apply once
// sandboxcore.start() is called. When one is crossed the run stops: the budget keeps the
// reason (one line naming what was tried and which limit stopped it), every task is
// interrupted with it, and the running code gets it raised again at its next instructions,
// so catching the error does not let it go on.

#include <lua.hpp>

#include <cstddef>

namespace smtpsh::lua {

// A Lua state whose allocator counts (and, in a sandbox, limits) its memory; nullptr when out
// of memory. Close it with lua_close.
lua_State* new_state();
// Closes a state made by new_state() (or any other) and frees its budget.
void close_state(lua_State* L);

// The bytes the state's allocator holds now, or 0 for a state not made by new_state().
std::size_t memory_in_use(lua_State* L);

// Asked by the scheduler before a task is spawned: raises the stop (and stops the run) when
// the sandbox's task limit is reached; does nothing outside a sandbox.  [-0, +0, v]
void check_task_limit(lua_State* L, std::size_t live_tasks);

// Inside a sandbox: stops the run, naming `what` the code tried ("it named a file for TLS"),
// and raises. Outside one: does nothing. For the bindings' checks of what only a trusted
// script may do (read a file, ask DNS servers of its own).  [-0, +0, v]
void refuse_in_sandbox(lua_State* L, const char* what);

// Memory held outside Lua on a sandboxed state's behalf (the lines of a session's transcript),
// counted against its memory limit like Lua's own: charged when taken, credited when freed.
// memory_account() is nullptr outside a running sandbox; the account lives as long as the
// state. Crossing the limit stops the run as Lua memory does. On the loop's thread only.
void* memory_account(lua_State* L);
void charge_memory(void* account, std::size_t bytes);
void credit_memory(void* account, std::size_t bytes);

// Raises the stop at once when the sandbox stopped the run (after a charge from a C function
// that the count hook would see only later); does nothing otherwise.  [-0, +0, v]
void raise_if_stopped(lua_State* L);

// Whether the state runs sandboxed, and why it stopped (nullptr while it has not).
bool sandboxed(lua_State* L);
const char* stop_reason(lua_State* L);

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_sandboxcore(lua_State* L);
