#pragma once
// The interactive loop: libedit line editing, history, completion, pretty-printed values.

#include "shell/runner.hpp"

namespace smtpsh::shell {

struct ReplOptions {
  const char* greeting = nullptr;  // printed once before the first prompt, when not empty
};

// Reads chunks until end of input (Ctrl-D); returns the process exit status.
int run_repl(Runtime& runtime, const ReplOptions& options);

}  // namespace smtpsh::shell
