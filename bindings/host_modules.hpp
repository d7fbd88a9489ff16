#pragma once
// Lua modules the program that embeds the bindings adds to them: the smtpsh executable adds
// its terminal line editor (shell/live_terminal.cpp), which lives in shell/ because it knows
// the terminal. Scripts reach one through `sys.host_module(NAME)`, which returns nil in a
// program that added none (a stock lua5.4 loading the bindings), so they can fall back.

#include <lua.hpp>

namespace smtpsh::lua {

// Makes `sys.host_module(name)` return what `open` returns. `name` must outlive the process
// (a string literal). At most a few: the table is fixed. Not thread-safe: call it before any
// state runs (at start-up).
void add_host_module(const char* name, lua_CFunction open);

// sys.host_module(NAME) -> the module | nil
int sys_host_module(lua_State* L);

}  // namespace smtpsh::lua
