#include "shell/repl.hpp"

#include <editline/readline.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace smtpsh::shell {

namespace {

constexpr const char* prompt = "> ";
constexpr const char* continuation_prompt = ">> ";
constexpr int history_size = 1000;

// libedit calls completion through plain function pointers.
lua_State* completion_state = nullptr;
std::vector<std::string> completion_candidates;

std::string history_path() {
  std::filesystem::path dir;
  if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state)
    dir = state;
  else if (const char* home = std::getenv("HOME"); home && *home)
    dir = std::filesystem::path(home) / ".local" / "state";
  else
    return {};
  dir /= "smtpsh";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return (dir / "history").string();
}

// [-0, +0] candidates(line) from smtpsh.complete, protected.
int collect_candidates(lua_State* L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "smtpsh.complete");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "candidates");
  lua_pushvalue(L, 1);
  lua_pushglobaltable(L);
  lua_call(L, 2, 1);
  return 1;
}

char* next_candidate(const char* text, int state) {
  static std::size_t index = 0;
  if (state == 0) index = 0;
  std::size_t length = std::strlen(text);
  while (index < completion_candidates.size()) {
    const std::string& candidate = completion_candidates[index++];
    if (candidate.compare(0, length, text) == 0) return strdup(candidate.c_str());
  }
  return nullptr;
}

char** complete(const char* text, int, int end) {
  rl_attempted_completion_over = 1;
  completion_candidates.clear();
  lua_State* L = completion_state;
  lua_pushcfunction(L, collect_candidates);
  lua_pushlstring(L, rl_line_buffer, static_cast<std::size_t>(end));
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    lua_Integer count = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= count; ++i) {
      lua_geti(L, -1, i);
      if (const char* word = lua_tostring(L, -1)) completion_candidates.emplace_back(word);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return rl_completion_matches(text, next_candidate);
}

// Whether a load error means "the chunk is not finished yet", as lua.c decides.
bool is_incomplete(lua_State* L, int status) {
  if (status != LUA_ERRSYNTAX) return false;
  std::size_t length = 0;
  const char* message = lua_tolstring(L, -1, &length);
  constexpr std::string_view eof_mark = "<eof>";
  return length >= eof_mark.size() &&
         std::string_view(message + length - eof_mark.size(), eof_mark.size()) == eof_mark;
}

// Compiles `code` as an expression to print if it is one, else as statements. Pushes the
// function and returns LUA_OK, or pushes the error message.
int compile(lua_State* L, const std::string& code) {
  std::string as_expression = "return " + code + ";";
  if (luaL_loadbuffer(L, as_expression.data(), as_expression.size(), "=stdin") == LUA_OK)
    return LUA_OK;
  lua_pop(L, 1);
  return luaL_loadbuffer(L, code.data(), code.size(), "=stdin");
}

// Reads one complete chunk, asking for continuation lines while it is unfinished. Returns
// false at end of input. On success the compiled function (or an error message, with
// `compiled` false) is on the stack.
bool read_chunk(lua_State* L, std::string& code, bool& compiled) {
  char* line = readline(prompt);
  if (!line) return false;
  code = line;
  std::free(line);
  // lua.c's old convenience: "=expr" prints expr.
  if (!code.empty() && code[0] == '=') code = code.substr(1);
  for (;;) {
    int status = compile(L, code);
    if (status == LUA_OK) {
      compiled = true;
      return true;
    }
    if (!is_incomplete(L, status)) {
      compiled = false;
      return true;
    }
    lua_pop(L, 1);
    char* more = readline(continuation_prompt);
    if (!more) {  // end of input inside a chunk: show why it was incomplete
      compile(L, code);
      compiled = false;
      return true;
    }
    code += "\n";
    code += more;
    std::free(more);
  }
}

bool is_blank(const std::string& code) {
  return code.find_first_not_of(" \t\r\n") == std::string::npos;
}

// readline for Lua code the REPL runs (raw mode): (prompt) -> line | nil at end of input.
int read_line_for_lua(lua_State* L) {
  const char* prompt = luaL_optstring(L, 1, "smtp> ");
  char* line = readline(prompt);
  if (!line) return 0;
  if (*line) add_history(line);
  lua_pushstring(L, line);
  std::free(line);
  return 1;
}

// `:raw ARGUMENT`: ARGUMENT is HOST[:PORT], or a Lua expression that yields one
// (`:raw demo.target`), evaluated in the REPL's globals (stdlib/raw.lua, raw.target_of).
constexpr const char* raw_chunk = R"lua(
local argument, read_line = ...
local raw = require "smtpsh.raw"
local target, problem = raw.target_of(argument, _ENV)
if not target then
  io.stdout:flush()
  io.stderr:write(":raw: ", problem, "\n")
  return
end
local s, err = raw.run(target, {
  timeout = 30, output = io.stdout, live = true, read_line = function() return read_line("smtp> ") end,
})
if not s then
  io.stdout:write("! ", tostring(err), "\n")
  return
end
last = s
io.stdout:write("(the session is now `last`: last.transcript, last:noop(), ...)\n")
)lua";

constexpr const char* repl_help =
    ":raw HOST[:PORT]  type SMTP lines to a server (:quit leaves; the session becomes `last`);\n"
    "                  what the server says on its own shows at once. Also :raw EXPR, a Lua\n"
    "                  expression that yields HOST[:PORT] (:raw demo.target)\n"
    ":quit             leave smtpsh (as Ctrl-D does)\n"
    ":help             this list; help() lists the Lua API, help \"starttls\" explains one call\n";

enum class Command { none, handled, quit };

// Lines starting with ':' are the REPL's own commands: no Lua chunk starts with one.
Command run_command(Runtime& runtime, const std::string& line) {
  if (line.empty() || line[0] != ':') return Command::none;
  std::string_view rest(line);
  rest.remove_prefix(1);
  auto space = rest.find(' ');
  std::string name(rest.substr(0, space));
  std::string argument;
  if (space != std::string_view::npos) {
    std::string_view value = rest.substr(space + 1);
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ')
      value.remove_suffix(1);
    argument = value;
  }
  if (name == "quit" || name == "q") return Command::quit;
  if (name == "help" || name == "h") {
    std::fputs(repl_help, stdout);
    return Command::handled;
  }
  if (name == "raw") {
    if (argument.empty()) {
      Runtime::print_error(
          "", "usage: :raw HOST[:PORT] | :raw EXPR (a Lua expression that yields one)");
      return Command::handled;
    }
    lua_State* L = runtime.state();
    int base = lua_gettop(L);
    if (luaL_loadbuffer(L, raw_chunk, std::strlen(raw_chunk), "=:raw") != LUA_OK) {
      Runtime::print_error("", lua_tostring(L, -1));
    } else {
      lua_pushlstring(L, argument.data(), argument.size());
      lua_pushcfunction(L, read_line_for_lua);
      runtime.run_task(2, "");
    }
    lua_settop(L, base);
    return Command::handled;
  }
  Runtime::print_error("", ("unknown command '" + line + "'; :help lists them").c_str());
  return Command::handled;
}

}  // namespace

int run_repl(Runtime& runtime, const ReplOptions& options) {
  lua_State* L = runtime.state();
  completion_state = L;
  rl_readline_name = "smtpsh";
  rl_attempted_completion_function = complete;
  // Dots and colons belong to the word being completed: `net.con`, `c:rec`.
  static char word_breaks[] = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]";
  rl_completer_word_break_characters = word_breaks;
  rl_basic_word_break_characters = word_breaks;
  rl_completion_append_character = '\0';

  // Globals load on first use; completion reads them raw, so the REPL loads them up front.
  for (const char* name : {"task", "net", "smtp"}) {
    lua_getglobal(L, name);
    lua_pop(L, 1);
  }

  std::string history = history_path();
  using_history();
  stifle_history(history_size);
  if (!history.empty()) read_history(history.c_str());

  if (options.greeting && *options.greeting) {
    std::fputs(options.greeting, stdout);
    std::fflush(stdout);
  }

  std::string code;
  bool compiled = false;
  while (read_chunk(L, code, compiled)) {
    if (is_blank(code)) {
      lua_pop(L, 1);
      continue;
    }
    add_history(code.c_str());
    if (!history.empty()) write_history(history.c_str());
    if (Command command = run_command(runtime, code); command != Command::none) {
      lua_pop(L, 1);
      if (command == Command::quit) break;
      continue;
    }
    if (!compiled) {
      Runtime::print_error("", lua_tostring(L, -1));
      lua_pop(L, 1);
      continue;
    }
    int base = lua_gettop(L) - 1;
    int count = runtime.run_task(0, "");
    if (count > 0) runtime.print_values(count);
    lua_settop(L, base);
  }
  std::fputs("\n", stdout);
  completion_state = nullptr;
  return 0;
}

}  // namespace smtpsh::shell
