#pragma once
// A Lua state with the smtpsh modules, and running chunks in it as tasks.

#include "bindings/embedded.hpp"
#include "shell/interrupt.hpp"

#include <lua.hpp>

#include <memory>
#include <span>
#include <string>

namespace smtpsh {
// scripts/*.lua: the subcommands built into the binary.
std::span<const EmbeddedFile> embedded_scripts();
}  // namespace smtpsh

namespace smtpsh::shell {

class Runtime {
 public:
  // `watch_interrupts`: Ctrl-C interrupts this state's tasks (not for a background server).
  explicit Runtime(bool watch_interrupts = true);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  lua_State* state() { return L_; }
  asio::io_context& io();

  // Runs the function below its `nargs` arguments on top of the stack as a task, and drives
  // the loop until it and every task it spawned have finished. On success leaves its results
  // on the stack and returns their count; on failure prints the error (with its traceback) to
  // stderr, prefixed by `prefix`, and returns -1. A spawned task that failed with nobody
  // waiting for it is reported the same way and fails the chunk too.
  int run_task(int nargs, const char* prefix);

  // Prints the values on top of the stack as the REPL shows them, and pops them.
  void print_values(int count);

  // Prints a one-line or traceback error message to stderr.
  static void print_error(const char* prefix, const char* message);

 private:
  bool report_unobserved_except(int handle, const char* prefix);

  lua_State* L_ = nullptr;
  std::unique_ptr<InterruptWatch> interrupts_;
};

}  // namespace smtpsh::shell
