// libFuzzer target for parse_command_line: the input split at NUL bytes is argv (argv[0]
// first). Whatever the words, with standard input a terminal or not: nothing is thrown; a
// usage error carries a non-empty, one-line error (it is printed as one line before exit 2);
// every other mode has no error, and what it names lies within argv.

#include "shell/cli.hpp"
#include "tests/fuzz/expect.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

using fuzz::expect;
using smtpsh::shell::Invocation;
using smtpsh::shell::parse_command_line;

namespace {

void check(const std::vector<std::string>& argv, bool stdin_is_terminal) {
  Invocation result;
  try {
    result = parse_command_line(argv, stdin_is_terminal);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parse_command_line threw: %s\n", e.what());
    std::abort();
  }
  using Mode = Invocation::Mode;
  if (result.mode == Mode::usage_error) {
    expect(!result.error.empty(), "a usage error says what to fix");
    expect(result.error.find('\n') == std::string::npos, "a usage error is one line");
    return;
  }
  expect(result.error.empty(), "only a usage error carries an error");
  if (result.mode == Mode::script || result.mode == Mode::command ||
      (result.mode == Mode::stdin_script && result.script_index > 0)) {
    auto index = static_cast<std::size_t>(result.script_index);
    expect(index >= 1 && index < argv.size(), "the script or command is a word of argv");
    if (result.sandbox) {
      // --sandbox FILE ARGS becomes the sandbox command: its limits, "--", FILE, ARGS.
      expect(result.target == "sandbox", "--sandbox runs the sandbox command");
      std::vector<std::string> expected = result.sandbox_options;
      expected.emplace_back("--");
      expected.insert(expected.end(), argv.begin() + static_cast<std::ptrdiff_t>(index),
                      argv.end());
      expect(result.args == expected,
             "the sandbox gets its limits, --, the file and its arguments");
    } else {
      expect(result.args.size() == argv.size() - index - 1, "its arguments are the words after it");
      if (result.mode != Mode::stdin_script)
        expect(result.target == argv[index], "the target is that word");
    }
  }
  if (result.mode == Mode::chunks) expect(!result.chunks.empty(), "chunks mode has chunks");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> argv;
  std::size_t start = 0;
  while (start <= input.size() && argv.size() < 4096) {
    std::size_t nul = input.find('\0', start);
    if (nul == std::string_view::npos) nul = input.size();
    argv.emplace_back(input.substr(start, nul - start));
    start = nul + 1;
  }
  check(argv, true);
  check(argv, false);
  return 0;
}
