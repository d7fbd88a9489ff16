#include "shell/runner.hpp"

#include "bindings/modules.hpp"
#include "bindings/sandbox.hpp"
#include "bindings/scheduler.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace smtpsh::shell {

namespace {

// The `help` global of the REPL and of scripts: calls require("smtpsh.help")(...), so
// stdlib/help.lua and the API reference are compiled only when someone asks for help.
int call_help(lua_State* L) {
  int count = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "smtpsh.help");
  lua_call(L, 1, 1);
  lua_insert(L, 1);
  lua_call(L, count, LUA_MULTRET);
  return lua_gettop(L);
}

// Everything that may raise while the state is set up runs protected.
int open_everything(lua_State* L) {
  luaL_openlibs(L);
  lua::set_script_files(embedded_scripts());
  auto* dirs = static_cast<const std::vector<std::string>*>(lua_touserdata(L, 1));
  lua::open_modules(L, *dirs);
  lua::open_globals(L);
  lua_pushcfunction(L, call_help);
  lua_setglobal(L, "help");
  return 0;
}

int print_values_protected(lua_State* L) {
  int count = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "smtpsh.pretty");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "print_values");
  lua_getglobal(L, "io");
  lua_getfield(L, -1, "write");
  lua_remove(L, -2);  // io
  for (int i = 1; i <= count; ++i)
    lua_pushvalue(L, i);
  lua_call(L, count + 1, 0);
  return 0;
}

}  // namespace

Runtime::Runtime(bool watch_interrupts) {
  L_ = lua::new_state();  // its allocator counts memory, for a sandbox's limit
  if (!L_) throw std::runtime_error("cannot create a Lua state: out of memory");
  std::vector<std::string> dirs = lua::user_search_dirs();
  lua_pushcfunction(L_, open_everything);
  lua_pushlightuserdata(L_, &dirs);
  if (lua_pcall(L_, 1, 0, 0) != LUA_OK) {
    std::string message = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "unknown error";
    lua::close_state(L_);
    throw std::runtime_error("cannot set up Lua: " + message);
  }
  // Ctrl-C targets this state's scheduler only.
  if (watch_interrupts) interrupts_ = std::make_unique<InterruptWatch>(lua::Scheduler::get(L_));
}

Runtime::~Runtime() {
  interrupts_.reset();
  lua::close_state(L_);
}

asio::io_context& Runtime::io() {
  return lua::Scheduler::get(L_).io();
}

void Runtime::print_error(const char* prefix, const char* message) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s%s\n", prefix, message);
  std::fflush(stderr);
}

int Runtime::run_task(int nargs, const char* prefix) {
  lua::Scheduler& scheduler = lua::Scheduler::get(L_);
  scheduler.spawn(L_, nargs);
  int handle = lua_gettop(L_);
  if (interrupts_) interrupts_->arm();
  scheduler.drive();
  if (interrupts_) interrupts_->disarm();
  // A sandbox that stopped the run (a task the recipe left running crossed a limit): its one
  // line, and nothing of the stopped code runs again.
  if (const char* reason = lua::stop_reason(L_)) {
    print_error(prefix, reason);
    std::exit(3);
  }
  bool others_failed = report_unobserved_except(handle, prefix);

  int count = lua::Scheduler::push_results(L_, handle);
  if (static_cast<lua::Task*>(lua_touserdata(L_, handle))->state == lua::Task::State::failed) {
    lua::Scheduler::push_traceback(L_, handle);
    print_error(prefix, lua_tostring(L_, -1));
    lua_settop(L_, handle - 1);
    return -1;
  }
  lua_remove(L_, handle);
  if (others_failed) {
    lua_pop(L_, count);
    return -1;
  }
  return count;
}

bool Runtime::report_unobserved_except(int handle, const char* prefix) {
  // The chunk's own failure is reported by the caller; every other task that failed without
  // anybody waiting for it is reported here, so no error is silently lost.
  lua::Scheduler::push_results(L_, handle);  // marks the chunk's failure as seen
  lua_settop(L_, handle);
  bool any = false;
  lua::Scheduler::get(L_).report_unobserved(L_, [prefix, &any](const char* traceback) {
    std::string text = std::string("error in a task nobody waited for: ") + traceback;
    print_error(prefix, text.c_str());
    any = true;
  });
  return any;
}

void Runtime::print_values(int count) {
  lua_pushcfunction(L_, print_values_protected);
  lua_insert(L_, -(count + 1));
  if (lua_pcall(L_, count, 0, 0) != LUA_OK) {
    print_error("", lua_tostring(L_, -1));
    lua_pop(L_, 1);
  }
  std::fflush(stdout);
}

}  // namespace smtpsh::shell
