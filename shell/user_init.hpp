#pragma once
// The user's init file, run when the REPL starts: $XDG_CONFIG_HOME/smtpsh/init.lua, else
// ~/.config/smtpsh/init.lua (the same directory the search path has).

#include "shell/runner.hpp"

#include <string>

namespace smtpsh::shell {

// The init file's path (whether or not it exists); empty when neither variable is set.
std::string user_init_path();

// Runs the init file as a task when it exists. An error in it is printed (with the file's
// name) and the REPL goes on.
void run_user_init(Runtime& runtime);

}  // namespace smtpsh::shell
