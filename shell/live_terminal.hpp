#pragma once
// The terminal side of live raw mode: libedit's readline-compatible callback interface driven
// from the event loop, so one task can wait at once for a typed line and for the server to say
// something, and print what the server said above the prompt without losing the line being
// typed. Offered to Lua as `sys.host_module("terminal")` (bindings/host_modules.hpp):
//
//   local term = terminal.open()        -- nil, why when stdin or stdout is not a terminal
//   term:watch(s.core:local_addr())     -- also wake when that TCP socket has a line or EOF
//   term:watch(nil)                     -- stop watching
//   local line = term:read("smtp> ")    -- a line | nil at Ctrl-D | false, "server"
//   term:print("250 ok\n")              -- above the prompt while one is shown
//   term:add_history(line)
//   term:close()                        -- also by <close> and the garbage collector
//
// Ctrl-C interrupts the task waiting in read (the shell's interrupt, ARCHITECTURE.md); the
// terminal is given back to the shell before the task sees "interrupted".

#include <lua.hpp>

namespace smtpsh::shell {

// Registers the module with the bindings (idempotent; done at start-up too).
void register_live_terminal();

}  // namespace smtpsh::shell
