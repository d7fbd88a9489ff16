// smtpsh: the command line, dispatched to the REPL, a script, -e chunks or a subcommand.
#include "bindings/modules.hpp"
#include "engine/base/endpoint.hpp"
#include "shell/cli.hpp"
#include "shell/demo.hpp"
#include "shell/live_terminal.hpp"
#include "shell/repl.hpp"
#include "shell/runner.hpp"
#include "shell/user_init.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using smtpsh::shell::Invocation;
using smtpsh::shell::Runtime;

constexpr int exit_ok = 0;
constexpr int exit_script_error = 1;
constexpr int exit_usage = 2;

int usage_error(const std::string& message) {
  std::fprintf(stderr, "smtpsh: %s\n", message.c_str());
  return exit_usage;
}

// arg as lua.c sets it: arg[0] the script, arg[1..] its arguments, negative indices before.
void set_arg_table(lua_State* L, const std::vector<std::string>& argv, int script_index) {
  lua_createtable(L, static_cast<int>(argv.size()), script_index + 1);
  for (std::size_t i = 0; i < argv.size(); ++i) {
    lua_pushlstring(L, argv[i].data(), argv[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) - script_index);
  }
  lua_setglobal(L, "arg");
}

// A script's text, read once: what runs and what a recording keeps are then the same bytes,
// even should the file change while smtpsh starts. Fills `error` as luaL_loadfile words it
// ("cannot open NAME: reason") when the file cannot be read.
bool read_script(const std::string& path, std::string& text, std::string& error) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  char buffer[65536];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    text.append(buffer, got);
  bool failed = std::ferror(file) != 0;
  int saved = errno;
  std::fclose(file);
  if (failed) error = "cannot read " + path + ": " + std::strerror(saved);
  return !failed;
}

// Loads a script's text as luaL_loadfile would load its file: a UTF-8 byte order mark and a
// first line starting with '#' (#!/usr/bin/env smtpsh) are skipped, the line's end kept so
// that line numbers stay right; text only, never bytecode.
int load_script_text(lua_State* L, const std::string& path, std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  if (!text.empty() && text.front() == '#') {
    std::size_t end = text.find('\n');
    text.remove_prefix(end == std::string_view::npos ? text.size() : end);
  }
  std::string chunkname = "@" + path;
  return luaL_loadbufferx(L, text.data(), text.size(), chunkname.c_str(), "t");
}

// Loads the main chunk of a script or subcommand; returns an exit status when it cannot.
int load_main_chunk(lua_State* L, const Invocation& invocation, const std::string& script_text) {
  using Mode = Invocation::Mode;
  int status = LUA_OK;
  if (invocation.mode == Mode::script) {
    status = load_script_text(L, invocation.target, script_text);
  } else if (invocation.mode == Mode::stdin_script) {
    status = luaL_loadfilex(L, nullptr, "t");
  } else {
    std::string relative = "scripts/" + invocation.target + ".lua";
    status = smtpsh::lua::load_lua_file(L, relative.c_str(), smtpsh::embedded_scripts());
    if (status == LUA_ERRFILE) {
      std::string names;
      for (const auto& name : smtpsh::lua::list_lua_files(L, "scripts", smtpsh::embedded_scripts()))
        names += (names.empty() ? "" : ", ") + name;
      return usage_error("unknown command '" + invocation.target + "'; available: " + names +
                         " (or give a FILE.lua)");
    }
  }
  if (status != LUA_OK) {
    Runtime::print_error("smtpsh: ", lua_tostring(L, -1));
    lua_pop(L, 1);
    return exit_script_error;
  }
  return -1;
}

std::string demo_greeting(const smtpsh::shell::DemoServer& demo) {
  std::string target = smtpsh::engine::format_endpoint(demo.host(), demo.port());
  return "smtpsh " SMTPSH_VERSION " (" LUA_RELEASE ") with a demo SMTP server on " + target +
         " (the table `demo`).\n"
         "Probe it by typing these three lines:\n"
         "  s = smtp.connect(demo.target, {trace = true})\n"
         "  s:ehlo()\n"
         "  s:mail(\"me@example.test\") print(s:rcpt(\"greylist@example.test\"))\n"
         "(the last one shows how a refusal looks: nil and the error, with its reply)\n"
         "Ctrl-D leaves, Ctrl-C interrupts what runs.\n";
}

int run(const std::vector<std::string>& argv) {
  using Mode = Invocation::Mode;
  // Raw mode's line editor (`smtpsh raw`, `:raw`), reached through sys.host_module.
  smtpsh::shell::register_live_terminal();
  Invocation invocation = smtpsh::shell::parse_command_line(argv, isatty(STDIN_FILENO) == 1);
  switch (invocation.mode) {
    case Mode::usage_error:
      return usage_error(invocation.error);
    case Mode::help:
      std::fputs(smtpsh::shell::usage_text().c_str(), stdout);
      return exit_ok;
    case Mode::version:
      std::puts("smtpsh " SMTPSH_VERSION " (" LUA_RELEASE ")");
      return exit_ok;
    default:
      break;
  }

  std::string script_text;
  if (invocation.mode == Mode::script) {
    std::string problem;
    if (!read_script(invocation.target, script_text, problem)) return usage_error(problem);
  }

  Runtime runtime;
  lua_State* L = runtime.state();
  set_arg_table(L, argv, invocation.script_index);
  if (!invocation.record.empty()) {
    // Through smtp.record, in a protected call: the file may not be writable.
    lua_getglobal(L, "smtp");
    lua_getfield(L, -1, "record");
    lua_remove(L, -2);
    lua_pushstring(L, invocation.record.c_str());
    // What ran, so that `smtpsh replay FILE` can run it again: the script or subcommand and
    // its arguments.
    lua_createtable(L, static_cast<int>(invocation.args.size()) + 1, 0);
    if (!invocation.target.empty()) {
      lua_pushstring(L, invocation.target.c_str());
      lua_rawseti(L, -2, 1);
      for (std::size_t i = 0; i < invocation.args.size(); ++i) {
        lua_pushstring(L, invocation.args[i].c_str());
        lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 2);
      }
    }
    // A script's text goes into the recording too (the text that runs): its replay needs
    // nothing else.
    if (invocation.mode == Mode::script) {
      lua_pushstring(L, invocation.target.c_str());
      lua_pushlstring(L, script_text.data(), script_text.size());
    } else {
      lua_pushnil(L);
      lua_pushnil(L);
    }
    if (lua_pcall(L, 4, 2, 0) != LUA_OK || lua_isnil(L, -2)) {
      Runtime::print_error("smtpsh: --record: ", lua_tostring(L, -1));
      return exit_usage;
    }
    lua_pop(L, 2);
  }
  if (invocation.trace) {
    lua_getglobal(L, "smtp");
    lua_getfield(L, -1, "defaults");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "trace");
    lua_pop(L, 2);
    lua_getglobal(L, "dns");
    lua_getfield(L, -1, "trace");
    lua_pushboolean(L, 1);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
  }

  for (const std::string& chunk : invocation.chunks) {
    if (luaL_loadbuffer(L, chunk.data(), chunk.size(), "=(command line)") != LUA_OK) {
      Runtime::print_error("smtpsh: ", lua_tostring(L, -1));
      return exit_script_error;
    }
    if (runtime.run_task(0, "smtpsh: ") < 0) return exit_script_error;
    lua_settop(L, 0);
  }

  if (invocation.mode == Mode::script || invocation.mode == Mode::command ||
      invocation.mode == Mode::stdin_script) {
    if (int status = load_main_chunk(L, invocation, script_text); status >= 0) return status;
    // Room for every argument: `smtpsh verify $(cat list)` may pass thousands.
    if (lua_checkstack(L, static_cast<int>(invocation.args.size()) + LUA_MINSTACK) == 0) {
      std::fprintf(stderr, "smtpsh: too many arguments (%zu); give them in a file instead\n",
                   invocation.args.size());
      return exit_usage;
    }
    for (const std::string& word : invocation.args)
      lua_pushlstring(L, word.data(), word.size());
    if (runtime.run_task(static_cast<int>(invocation.args.size()), "smtpsh: ") < 0)
      return exit_script_error;
    lua_settop(L, 0);
  }

  if (invocation.mode != Mode::repl && !invocation.interactive) return exit_ok;

  std::unique_ptr<smtpsh::shell::DemoServer> demo;
  std::string greeting;
  if (invocation.demo) {
    demo = std::make_unique<smtpsh::shell::DemoServer>();
    std::string target = smtpsh::engine::format_endpoint(demo->host(), demo->port());
    lua_createtable(L, 0, 3);
    lua_pushstring(L, demo->host().c_str());
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, demo->port());
    lua_setfield(L, -2, "port");
    lua_pushstring(L, target.c_str());
    lua_setfield(L, -2, "target");
    lua_setglobal(L, "demo");
    greeting = demo_greeting(*demo);
  } else if (isatty(STDIN_FILENO)) {
    greeting = "smtpsh " SMTPSH_VERSION " (" LUA_RELEASE
               "): Lua with the smtp, dns, net and task globals. "
               "Ctrl-D leaves, Ctrl-C interrupts what runs.\n";
  }
  // ~/.config/smtpsh/init.lua, once the REPL's globals (and `demo`) are there.
  smtpsh::shell::run_user_init(runtime);
  smtpsh::shell::ReplOptions options;
  options.greeting = greeting.c_str();
  return smtpsh::shell::run_repl(runtime, options);
}

// Thousands of probes at once need thousands of sockets (each DNS try has its own): take the
// whole hard limit on open files, which the soft default (often 1024) keeps from us.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  raise_open_file_limit();
  try {
    return run(std::vector<std::string>(argv, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "smtpsh: %s\n", e.what());
    return exit_usage;
  }
}
