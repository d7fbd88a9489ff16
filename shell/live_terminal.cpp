#include "shell/live_terminal.hpp"

#include "bindings/host_modules.hpp"
#include "bindings/scheduler.hpp"

#include <editline/readline.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <asio/posix/stream_descriptor.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>

namespace smtpsh::shell {

namespace {

constexpr const char* metatable = "smtpsh.terminal";

enum class Event : unsigned char { none, line, eof, server };

// Lives on the heap, shared with the completion handlers of its waits, so a handler that runs
// after close() (with operation_aborted) still finds it.
struct Terminal : std::enable_shared_from_this<Terminal> {
  explicit Terminal(asio::io_context& io) : tty(io), socket(io) {}

  // A second open of the terminal, only to wait on: async_wait makes its descriptor
  // non-blocking, which must not reach stdin's file description (libedit reads stdin, and the
  // shell that started smtpsh shares it).
  asio::posix::stream_descriptor tty;
  // A duplicate of the watched session's socket (the session's own descriptor is registered
  // with the loop already; a duplicate may be registered beside it).
  asio::posix::stream_descriptor socket;
  bool open = true;
  // Wake on any byte from the socket, not only a whole line: under TLS the bytes are records,
  // and whether they hold data is for the session to say (input_waiting).
  bool any_input = false;
  bool installed = false;  // libedit's callback handler: the prompt is shown, the tty is raw
  bool tty_armed = false;
  bool socket_armed = false;
  Event event = Event::none;
  std::string line;
  lua::Task* task = nullptr;  // the task suspended in read
};

struct Holder {
  std::shared_ptr<Terminal> terminal;
};

// libedit is process-wide and its line handler takes no context: the one open terminal.
Terminal* active = nullptr;
rl_completion_func_t* saved_completion = nullptr;

// Tab inserts nothing and completes nothing: SMTP lines are not Lua.
char** no_completion(const char*, int, int) {
  rl_attempted_completion_over = 1;
  return nullptr;
}

void on_line(char* text) {
  Terminal* t = active;
  if (text == nullptr) {
    if (t) t->event = Event::eof;
    return;
  }
  if (t) {
    try {
      t->line.assign(text);
      t->event = Event::line;
    } catch (const std::exception&) {
      t->event = Event::eof;
    }
  }
  std::free(text);
}

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Whether typed input waits; a terminal that hung up (its window closed) counts as the end of
// input, which libedit would not report: it would be asked again and again.
bool typed_now(Terminal& t) {
  pollfd p{t.tty.native_handle(), POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
    t.event = Event::eof;
    return false;
  }
  return true;
}

// Whether the watched socket holds something the session can take now: a whole line, the
// end of the connection, or an error. A part of a line waits for the rest.
bool server_ready(Terminal& t) {
  if (!t.socket.is_open()) return false;
  int fd = t.socket.native_handle();
  if (!readable_now(fd)) return false;
  if (t.any_input) return true;
  char peek[4096];
  ssize_t got = ::recv(fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
  if (got < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  if (got == 0) return true;
  return std::memchr(peek, '\n', static_cast<std::size_t>(got)) != nullptr ||
         static_cast<std::size_t>(got) == sizeof peek;
}

// Gives the terminal back to the shell (cooked mode, no prompt).
void uninstall(Terminal& t) {
  if (!t.installed) return;
  t.installed = false;
  rl_callback_handler_remove();
}

// Takes whatever is ready now, without waiting: keys typed (one line at most), then the server.
void pump(Terminal& t) {
  // Each call takes at least one byte; the bound only guards against a libedit that would not.
  for (int keys = 0; t.event == Event::none && t.installed && t.tty.is_open() && typed_now(t);
       ++keys) {
    if (keys == 1 << 20) {
      t.event = Event::eof;
      break;
    }
    rl_callback_read_char();
  }
  if (t.event == Event::line) uninstall(t);
  if (t.event == Event::eof) {
    uninstall(t);
    std::fputs("\n", stdout);
    std::fflush(stdout);
  }
  if (t.event == Event::none && server_ready(t)) t.event = Event::server;
}

void wake(Terminal& t) {
  lua::Task* task = t.task;
  t.task = nullptr;
  std::error_code ignored;
  t.socket.cancel(ignored);
  t.tty.cancel(ignored);
  if (task) task->scheduler->wake(*task);
}

void arm(const std::shared_ptr<Terminal>& self);

void step(const std::shared_ptr<Terminal>& self) {
  pump(*self);
  if (self->event != Event::none) return wake(*self);
  arm(self);
}

// Edge-triggered underneath (asio's epoll), so every wait is preceded by pump(), which looks
// at what is there already.
void arm(const std::shared_ptr<Terminal>& self) {
  if (!self->tty_armed && self->installed && self->tty.is_open()) {
    self->tty_armed = true;
    self->tty.async_wait(asio::posix::descriptor_base::wait_read,
                         [self](const std::error_code& ec) {
                           self->tty_armed = false;
                           if (ec || !self->open || !self->task) return;
                           step(self);
                         });
  }
  if (!self->socket_armed && self->socket.is_open()) {
    self->socket_armed = true;
    self->socket.async_wait(asio::posix::descriptor_base::wait_read,
                            [self](const std::error_code& ec) {
                              self->socket_armed = false;
                              if (ec || !self->open || !self->task) return;
                              step(self);
                            });
  }
}

void shut(Terminal& t) {
  if (!t.open) return;
  t.open = false;
  if (t.installed) {
    // The session ended under a half-typed line (the server closed it): the line stays on
    // the screen, and what comes next starts below it.
    uninstall(t);
    std::fputs("\n", stdout);
    std::fflush(stdout);
  }
  std::error_code ignored;
  t.tty.close(ignored);
  t.socket.close(ignored);
  if (active == &t) {
    active = nullptr;
    rl_attempted_completion_function = saved_completion;
  }
  if (t.task) wake(t);  // a read in another task ends ("the terminal is closed")
}

Holder& check_holder(lua_State* L) {
  return *static_cast<Holder*>(luaL_checkudata(L, 1, metatable));
}

Terminal& check_open(lua_State* L) {
  Holder& holder = check_holder(L);
  if (!holder.terminal || !holder.terminal->open) luaL_error(L, "the terminal is closed");
  return *holder.terminal;
}

// [-0, +1..2]
int push_event(lua_State* L, Terminal& t) {
  Event event = t.event;
  t.event = Event::none;
  switch (event) {
    case Event::line:
      lua_pushlstring(L, t.line.data(), t.line.size());
      return 1;
    case Event::server:
      lua_pushboolean(L, 0);
      lua_pushliteral(L, "server");
      return 2;
    case Event::eof:
    case Event::none:
      break;
  }
  lua_pushnil(L);
  return 1;
}

// Shows the prompt (once per line) and looks at what is ready; arms the waits when nothing
// is. Kept apart from terminal_read: no C++ object may be alive when Lua yields or raises.
bool begin_read(Terminal& t, const char* prompt) {
  try {
    if (!t.installed) {
      active = &t;
      rl_callback_handler_install(prompt, on_line);
      t.installed = true;
    }
    pump(t);
    if (t.event == Event::none) arm(t.shared_from_this());
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

int read_done(lua_State* L, int, lua_KContext) {
  lua::Scheduler::check_abort(L);
  return push_event(L, check_open(L));
}

// Ctrl-C: the terminal goes back to the shell first, then the task sees "interrupted".
void cancel_read(lua::Task&, void* context) {
  auto* t = static_cast<Terminal*>(context);
  if (t->installed) {
    uninstall(*t);
    std::fputs("\n", stdout);
    std::fflush(stdout);
  }
  wake(*t);
}

// term:read([prompt]) -> line | nil (end of input) | false, "server"
int terminal_read(lua_State* L) {
  Terminal& t = check_open(L);
  const char* prompt = luaL_optstring(L, 2, "> ");
  lua::Task& task = lua::Scheduler::require_current(L, "terminal:read");
  if (t.task) return luaL_error(L, "terminal:read: another task is reading the terminal");
  if (!begin_read(t, prompt)) return luaL_error(L, "terminal:read: out of memory");
  lua_settop(L, 1);
  if (t.event != Event::none) return push_event(L, t);
  t.task = &task;
  return lua::Scheduler::get(L).suspend(L, task, read_done, 0, cancel_read, &t);
}

// Watches a duplicate of the session's descriptor (`fd`), or nothing when fd < 0: the loop
// has the session's own descriptor registered, and a duplicate may be registered beside it.
bool watch_socket(Terminal& t, int fd, bool any_input) {
  std::error_code ignored;
  t.socket.close(ignored);
  t.any_input = any_input;
  if (fd < 0) return true;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return false;
  t.socket.assign(copy, ignored);
  if (ignored) {
    ::close(copy);
    return false;
  }
  return true;
}

// term:watch(DESCRIPTOR | nil [, any_input]) -> true | false (it could not be watched).
// DESCRIPTOR is the session's, from s.core:descriptor(). Without any_input the server wakes
// read() with a whole line (or the end); with it, with any byte (TLS records).
int terminal_watch(lua_State* L) {
  Terminal& t = check_open(L);
  lua_Integer fd = luaL_optinteger(L, 2, -1);
  if (t.task) return luaL_error(L, "terminal:watch: a task is reading the terminal");
  lua_pushboolean(
      L, watch_socket(t, fd < 0 || fd > std::numeric_limits<int>::max() ? -1 : static_cast<int>(fd),
                      lua_toboolean(L, 3) != 0));
  return 1;
}

// term:print(text): above the prompt while one is shown, else plainly.
int terminal_print(lua_State* L) {
  Holder& holder = check_holder(L);
  std::size_t length = 0;
  const char* text = luaL_checklstring(L, 2, &length);
  Terminal* t = holder.terminal.get();
  if (t && t->open && t->installed) {
    std::fputs("\r\33[K", stdout);
    std::fwrite(text, 1, length, stdout);
    std::fflush(stdout);
    rl_forced_update_display();
  } else {
    std::fwrite(text, 1, length, stdout);
  }
  std::fflush(stdout);
  return 0;
}

int terminal_add_history(lua_State* L) {
  check_open(L);
  const char* line = luaL_checkstring(L, 2);
  if (*line) add_history(line);
  return 0;
}

int terminal_close(lua_State* L) {
  Holder& holder = check_holder(L);
  if (holder.terminal) shut(*holder.terminal);
  return 0;
}

int terminal_gc(lua_State* L) {
  Holder& holder = check_holder(L);
  if (holder.terminal) shut(*holder.terminal);
  holder.~Holder();
  return 0;
}

// Opens the terminal into `holder`; returns nullptr, or why not.
const char* open_terminal(Holder& holder, asio::io_context& io) {
  const char* name = ttyname(STDIN_FILENO);
  if (!name) return "stdin is not a terminal";
  int fd = ::open(name, O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return "cannot open the terminal";
  try {
    auto terminal = std::make_shared<Terminal>(io);
    std::error_code ec;
    terminal->tty.assign(fd, ec);
    if (ec) {
      ::close(fd);
      return "cannot wait on the terminal";
    }
    holder.terminal = std::move(terminal);
  } catch (const std::exception&) {
    ::close(fd);
    return "out of memory";
  }
  saved_completion = rl_attempted_completion_function;
  rl_attempted_completion_function = no_completion;
  active = holder.terminal.get();
  return nullptr;
}

// terminal.open() -> term | nil, why
int terminal_open(lua_State* L) {
  const char* problem = nullptr;
  if (isatty(STDIN_FILENO) != 1 || isatty(STDOUT_FILENO) != 1)
    problem = "stdin or stdout is not a terminal";
  else if (active)
    problem = "the terminal is open already";
  if (problem) {
    lua_pushnil(L);
    lua_pushstring(L, problem);
    return 2;
  }
  asio::io_context& io = lua::Scheduler::get(L).io();
  auto* holder = static_cast<Holder*>(lua_newuserdatauv(L, sizeof(Holder), 0));
  new (holder) Holder{};
  luaL_setmetatable(L, metatable);
  if (const char* why = open_terminal(*holder, io)) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  return 1;
}

const luaL_Reg terminal_methods[] = {
    {"read", terminal_read},   {"watch", terminal_watch},
    {"print", terminal_print}, {"add_history", terminal_add_history},
    {"close", terminal_close}, {nullptr, nullptr},
};

int open_module(lua_State* L) {
  if (luaL_newmetatable(L, metatable)) {
    luaL_newlib(L, terminal_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, terminal_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, terminal_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, terminal_open);
  lua_setfield(L, -2, "open");
  return 1;
}

}  // namespace

void register_live_terminal() {
  lua::add_host_module("terminal", open_module);
}

}  // namespace smtpsh::shell
