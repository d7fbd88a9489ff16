#include "shell/cli.hpp"

#include <doctest/doctest.h>

using smtpsh::shell::Invocation;
using smtpsh::shell::parse_command_line;
using Mode = Invocation::Mode;

TEST_CASE("no arguments: the REPL on a terminal, stdin as a script otherwise") {
  CHECK(parse_command_line({"smtpsh"}, true).mode == Mode::repl);
  CHECK(parse_command_line({"smtpsh"}, false).mode == Mode::stdin_script);
  CHECK(parse_command_line({"smtpsh", "--demo"}, false).mode == Mode::repl);
  CHECK(parse_command_line({"smtpsh", "-"}, true).mode == Mode::stdin_script);
}

TEST_CASE("scripts and subcommands are told apart by their shape") {
  auto script = parse_command_line({"smtpsh", "probe.lua", "a", "-e"}, true);
  CHECK(script.mode == Mode::script);
  CHECK(script.target == "probe.lua");
  CHECK(script.args == std::vector<std::string>{"a", "-e"});
  CHECK(script.script_index == 1);
  CHECK(parse_command_line({"smtpsh", "./probe"}, true).mode == Mode::script);
  auto command = parse_command_line({"smtpsh", "banner", "mx:25"}, true);
  CHECK(command.mode == Mode::command);
  CHECK(command.target == "banner");
  CHECK(command.args == std::vector<std::string>{"mx:25"});
}

TEST_CASE("-e chunks run in order, -i asks for the REPL afterwards") {
  auto chunks = parse_command_line({"smtpsh", "-e", "a=1", "-e", "print(a)"}, true);
  CHECK(chunks.mode == Mode::chunks);
  CHECK(chunks.chunks == std::vector<std::string>{"a=1", "print(a)"});
  auto interactive = parse_command_line({"smtpsh", "-i", "setup.lua"}, false);
  CHECK(interactive.mode == Mode::script);
  CHECK(interactive.interactive);
  CHECK(interactive.script_index == 2);
  CHECK(parse_command_line({"smtpsh", "--", "-weird.lua"}, true).target == "-weird.lua");
}

TEST_CASE("bad usage names what to fix") {
  auto unknown = parse_command_line({"smtpsh", "-x"}, true);
  CHECK(unknown.mode == Mode::usage_error);
  CHECK(unknown.error == "unknown option '-x'; see 'smtpsh --help'");
  // Found by fuzz_cli: a newline typed into an option made a two-line error.
  auto newline = parse_command_line({"smtpsh", "-\n"}, true);
  CHECK(newline.error == "unknown option '-\\x0a'; see 'smtpsh --help'");
  auto missing = parse_command_line({"smtpsh", "-e"}, true);
  CHECK(missing.mode == Mode::usage_error);
  CHECK(missing.error == "option '-e' needs an argument: smtpsh -e CODE");
  CHECK(parse_command_line({"smtpsh", "--help", "-x"}, true).mode == Mode::help);
  CHECK(parse_command_line({"smtpsh", "--version"}, true).mode == Mode::version);
}
