#pragma once
// The command line, parsed into what to do (ARCHITECTURE.md, "Conventions").

#include <string>
#include <vector>

namespace smtpsh::shell {

struct Invocation {
  enum class Mode { repl, script, command, chunks, stdin_script, help, version, usage_error };
  Mode mode = Mode::repl;
  std::vector<std::string> chunks;  // -e CODE, in order
  std::string target;               // the script path (script) or subcommand name (command)
  std::vector<std::string> args;    // what follows the script or subcommand
  int script_index = 0;             // argv index of the script or command (arg[0])
  bool interactive = false;         // -i: the REPL after the rest
  bool demo = false;                // --demo: start the in-process demo server
  bool trace = false;               // --trace: SMTP sessions print their transcript live
  std::string record;               // --record FILE: DNS answers and SMTP lines to FILE
  bool sandbox = false;             // --sandbox: FILE runs as `smtpsh sandbox [LIMITS] FILE`
  std::vector<std::string> sandbox_options;  // --max-memory 64, --allow HOST, ... in order
  std::string error;                         // usage_error: one line naming what to fix
};

// `stdin_is_terminal` decides what no arguments mean: the REPL, or running stdin as `lua -` does.
Invocation parse_command_line(const std::vector<std::string>& argv, bool stdin_is_terminal);

std::string usage_text();

}  // namespace smtpsh::shell
