// smtpsh.smtpcore: the SMTP session engine for Lua. It frames commands and reads replies;
// stdlib/smtp.lua builds the user-facing session (EHLO fallback, AUTH, DATA) on top of it.
#include "bindings/address_text.hpp"
#include "bindings/connect_hook_state.hpp"
#include "bindings/error.hpp"
#include "bindings/modules.hpp"
#include "bindings/record.hpp"
#include "bindings/resolver_state.hpp"
#include "bindings/sandbox.hpp"
#include "bindings/scheduler.hpp"
#include "bindings/seconds.hpp"
#include "bindings/tls.hpp"
#include "bindings/trace.hpp"
#include "engine/base/endpoint.hpp"
#include "engine/smtp/auth.hpp"
#include "engine/smtp/capabilities.hpp"
#include "engine/smtp/session.hpp"
#include "engine/smtp/status_codes.hpp"
#include "engine/tls/context.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>

namespace smtpsh::lua {

namespace {

constexpr const char* session_metatable = "smtpsh.smtp_session";
constexpr const char* reply_metatable = "smtpsh.reply";

struct LuaSession {
  std::shared_ptr<smtp::Session> session;
  lua_State* trace = nullptr;  // while tracing: the state's trace thread (bindings/trace.hpp)
  record::Recorder* recorder = nullptr;  // while recording: this session's lines go there too
  int record_id = 0;
  void* account = nullptr;  // in a sandbox: its transcript's bytes count as the recipe's memory
  std::size_t charged = 0;
  char operation[16] = {};  // the step in flight ("ehlo"), for the error a second caller gets
};

LuaSession& check_wrapper(lua_State* L, int index) {
  auto* wrapper = static_cast<LuaSession*>(luaL_checkudata(L, index, session_metatable));
  if (!wrapper->session) luaL_error(L, "SMTP session used after it was collected");
  return *wrapper;
}

smtp::Session& check_session(lua_State* L, int index) {
  return *check_wrapper(L, index).session;
}

// The session for a new operation: one at a time. A second task that tries gets a clear
// error (a programming mistake, so it raises), never a second read racing the first.
smtp::Session& claim_session(lua_State* L, int index, const char* operation) {
  LuaSession& wrapper = check_wrapper(L, index);
  if (wrapper.session->busy())
    luaL_error(L, "the session is busy with %s in another task: wait for it (task.wait) first",
               wrapper.operation[0] ? wrapper.operation : "a command");
  std::snprintf(wrapper.operation, sizeof wrapper.operation, "%s", operation);
  return *wrapper.session;
}

void cancel_session(Task&, void* session) {
  static_cast<smtp::Session*>(session)->interrupt();
}

// --- replies as Lua values -------------------------------------------------------------------

// The reply table at index 1 rebuilt as the engine's Reply (raw reads only: nothing may raise
// while the C++ value lives). The code is the table's, or `code` when it has none.
void read_reply(lua_State* L, smtp::Reply& reply, int code) {
  lua_pushstring(L, "code");
  lua_rawget(L, 1);
  reply.code = lua_isinteger(L, -1) ? static_cast<int>(lua_tointeger(L, -1)) : code;
  lua_pop(L, 1);
  lua_pushstring(L, "lines");
  lua_rawget(L, 1);
  if (lua_istable(L, -1)) {
    auto count = static_cast<lua_Integer>(lua_rawlen(L, -1));
    for (lua_Integer i = 1; i <= count; ++i) {
      lua_rawgeti(L, -1, i);
      std::size_t length = 0;
      const char* line = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &length) : nullptr;
      reply.lines.emplace_back(line ? line : "", line ? length : 0);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

// The reply written as the engine writes it: one way to show a reply.
bool reply_text(lua_State* L, std::string& out) {
  try {
    smtp::Reply reply;
    read_reply(L, reply, 0);
    out = reply.to_string();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

int reply_tostring(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  std::string text;
  if (!reply_text(L, text)) return luaL_error(L, "tostring(reply): out of memory");
  lua_pushlstring(L, text.data(), text.size());  // raises only when out of memory
  return 1;
}

void push_string(lua_State* L, const std::string& text) {
  lua_pushlstring(L, text.data(), text.size());
}

// [-0, +1, m]
void push_reply(lua_State* L, const smtp::Reply& reply) {
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, reply.code);
  lua_setfield(L, -2, "code");
  if (!reply.enhanced.empty()) {
    push_string(L, reply.enhanced);
    lua_setfield(L, -2, "enhanced");
  }
  push_string(L, reply.text());
  lua_setfield(L, -2, "text");
  lua_createtable(L, static_cast<int>(reply.lines.size()), 0);
  for (std::size_t i = 0; i < reply.lines.size(); ++i) {
    push_string(L, reply.lines[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  lua_setfield(L, -2, "lines");
  // What the code means in words: the enhanced code is the more precise when known.
  std::optional<smtp::CodeMeaning> meaning;
  if (!reply.enhanced.empty()) meaning = smtp::describe_enhanced(reply.enhanced);
  if (!meaning) meaning = smtp::describe_reply_code(reply.code);
  if (meaning) {
    lua_pushlstring(L, meaning->meaning.data(), meaning->meaning.size());
    lua_setfield(L, -2, "meaning");
  }
  lua_pushboolean(L, reply.ok());
  lua_setfield(L, -2, "ok");
  lua_pushboolean(L, reply.transient());
  lua_setfield(L, -2, "transient");
  lua_pushboolean(L, reply.permanent());
  lua_setfield(L, -2, "permanent");
  luaL_setmetatable(L, reply_metatable);
}

// [-0, +2, m] nil, err for a transport failure of the last operation.
int push_failure(lua_State* L, const smtp::Session& session) {
  lua_pushnil(L);
  push_error(L, session.outcome(), nullptr);
  return 2;
}

// --- the live trace --------------------------------------------------------------------------

// [-0, +1, m] {source = "smtp", t =, dir = "C"|"S"|"!", line =}
void push_trace_event(lua_State* L, const void* event) {
  const auto& entry = *static_cast<const smtp::TranscriptEntry*>(event);
  lua_createtable(L, 0, 4);
  lua_pushliteral(L, "smtp");
  lua_setfield(L, -2, "source");
  lua_pushnumber(L, entry.t);
  lua_setfield(L, -2, "t");
  lua_pushlstring(L, &entry.dir, 1);
  lua_setfield(L, -2, "dir");
  lua_pushlstring(L, entry.line.data(), entry.line.size());
  lua_setfield(L, -2, "line");
}

void print_trace_event(const void* event) {
  const auto& entry = *static_cast<const smtp::TranscriptEntry*>(event);
  const char* arrow = entry.dir == 'C' ? "->" : entry.dir == 'S' ? "<-" : "==";
  std::fprintf(stderr, "[%8.3f] %s ", entry.t, arrow);
  write_visible(entry.line.data(), entry.line.size());
  std::fputc('\n', stderr);
}

// Every transcript line of a session: to the recording and to the live trace, as asked. The
// trace comes last: its sink runs Lua, whose garbage collector may finalize the wrapper.
void observe_session(void* context, const smtp::TranscriptEntry& entry) {
  auto* wrapper = static_cast<LuaSession*>(context);
  lua_State* trace = wrapper->trace;
  if (wrapper->recorder && wrapper->recorder->is_open())
    wrapper->recorder->transcript(wrapper->record_id, entry);
  if (wrapper->account) {
    std::size_t bytes = sizeof entry + entry.line.capacity();
    charge_memory(wrapper->account, bytes);
    wrapper->charged += bytes;
  }
  if (trace) emit_trace(trace, push_trace_event, print_trace_event, &entry);
}

// --- operations ------------------------------------------------------------------------------

int push_tls_failure(lua_State* L, const smtp::Session& session, const char* stage);
void push_transcript(lua_State* L, const smtp::Session& session);

// A finished handshake's result into the recording, where a replay finds it again.
void record_tls(const LuaSession& wrapper) {
  const tls::Info* info = wrapper.session->tls_info();
  if (!info || !wrapper.recorder || !wrapper.recorder->is_open()) return;
  try {
    wrapper.recorder->tls(wrapper.record_id, *info);
  } catch (const std::exception&) {
    // Out of memory: the recording lacks this result, and its replay runs a real handshake.
  }
}

int connect_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  smtp::Session& session = check_session(L, 4);
  record_tls(check_wrapper(L, 4));
  if (!session.outcome().ok()) {
    // Connected but no greeting: the failure belongs to the banner stage.
    bool connected = !session.connection().remote_address().empty();
    // An implicit-TLS handshake that failed belongs to the connect stage, with its reason.
    const char* tls_reason = session.tls_failure_reason();
    if (*tls_reason != '\0') {
      push_tls_failure(L, session, "connect");
    } else {
      lua_pushnil(L);
      push_error(L, session.outcome(), connected ? "banner" : "connect");
    }
    // No session comes back, so what arrived (a broken greeting) travels with the error.
    push_transcript(L, session);
    lua_setfield(L, -2, "transcript");
    return 2;
  }
  lua_pushvalue(L, 4);
  push_reply(L, session.replies().front());
  return 2;
}

bool start_connect(LuaSession& wrapper, Task& task, const char* host, std::uint16_t port,
                   const char* source, double timeout, dns::Resolver& resolver,
                   const tls::Options* implicit_tls,
                   const std::shared_ptr<const net::ConnectHook>* hook) {
  try {
    net::ConnectOptions options;
    options.resolver = resolver.shared_from_this();
    if (hook) options.hook = *hook;
    if (source) options.source = source;
    if (timeout > 0) options.timeout = engine::seconds_to_duration(timeout);
    if (wrapper.trace || wrapper.recorder || wrapper.account)
      wrapper.session->transcript().set_observer(observe_session, &wrapper);
    wrapper.session->connect(host, port, options, &Scheduler::wake_task, &task, implicit_tls);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// core.connect(host, port, {timeout=, source=, trace=, tls=}) -> session, banner | nil, err
int core_connect(lua_State* L) {
  const char* host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port must be 1..65535");
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  double timeout = optional_seconds_field(L, 3, "timeout", "smtp.connect");
  lua_getfield(L, 3, "source");
  const char* source = luaL_optstring(L, -1, nullptr);
  lua_getfield(L, 3, "trace");
  lua_State* trace = lua_toboolean(L, -1) ? trace_thread(L) : nullptr;
  lua_settop(L, 3);
  Task& task = Scheduler::require_current(L, "smtp.connect");
  dns::Resolver& resolver = resolver_of(L);
  auto* wrapper = static_cast<LuaSession*>(lua_newuserdatauv(L, sizeof(LuaSession), 0));
  new (wrapper) LuaSession{smtp::Session::create(Scheduler::get(L).io()), trace};
  if ((wrapper->recorder = recorder_of(L))) wrapper->record_id = wrapper->recorder->next_session();
  wrapper->account = memory_account(L);
  luaL_setmetatable(L, session_metatable);
  // opts.tls: implicit TLS with these options (index 5 the table, 6 the parsed options).
  const tls::Options* implicit_tls = nullptr;
  if (lua_getfield(L, 3, "tls") == LUA_TTABLE)
    implicit_tls = &check_tls_options(L, 5, "smtp.connect");
  // `source` points into the options table at index 3, which stays on this stack.
  if (!start_connect(*wrapper, task, host, static_cast<std::uint16_t>(port), source, timeout,
                     resolver, implicit_tls, connect_hook_of(L)))
    return luaL_error(L, "smtp.connect: out of memory");
  return Scheduler::get(L).suspend(L, task, connect_done, 0, cancel_session,
                                   wrapper->session.get());
}

int exchange_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  smtp::Session& session = check_session(L, 1);
  if (!session.outcome().ok()) return push_failure(L, session);
  const auto& replies = session.replies();
  lua_createtable(L, static_cast<int>(replies.size()), 0);
  for (std::size_t i = 0; i < replies.size(); ++i) {
    push_reply(L, replies[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  return 1;
}

bool start_exchange(lua_State* L, smtp::Session& session, Task& task) {
  try {
    std::vector<std::string> lines;
    // Raw access only: the tables were checked by the caller, and no metamethod may run
    // (and raise) while C++ objects are alive here.
    auto count = static_cast<lua_Integer>(lua_rawlen(L, 2));
    std::vector<std::size_t> shown(static_cast<std::size_t>(count), std::string::npos);
    for (lua_Integer i = 1; i <= count; ++i) {
      lua_rawgeti(L, 2, i);
      std::size_t length = 0;
      const char* line = lua_tolstring(L, -1, &length);
      lines.emplace_back(line ? line : "", line ? length : 0);
      lua_pop(L, 1);
      if (lua_istable(L, 3)) {
        lua_rawgeti(L, 3, i);
        if (lua_isinteger(L, -1))
          shown[static_cast<std::size_t>(i - 1)] = static_cast<std::size_t>(lua_tointeger(L, -1));
        lua_pop(L, 1);
      }
    }
    session.exchange(std::move(lines), std::move(shown), &Scheduler::wake_task, &task);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// session:exchange({line, ...} [, {shown_prefix, ...} [, stage]]) -> {reply, ...} | nil, err
int session_exchange(lua_State* L) {
  check_session(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char* stage = luaL_optstring(L, 4, "a command");
  lua_settop(L, 3);
  for (lua_Integer i = 1; i <= static_cast<lua_Integer>(lua_rawlen(L, 2)); ++i) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
      return luaL_error(L, "session:exchange: command %d is not a string", static_cast<int>(i));
    if (std::strpbrk(lua_tostring(L, -1), "\r\n") ||
        lua_rawlen(L, -1) != std::strlen(lua_tostring(L, -1)))
      return luaL_error(L, "refusing to send a command with a CR or LF (or NUL) inside: %s",
                        "split it into separate commands");
    lua_pop(L, 1);
  }
  Task& task = Scheduler::require_current(L, "SMTP commands");
  smtp::Session& session = claim_session(L, 1, stage);
  if (!start_exchange(L, session, task)) return luaL_error(L, "session:exchange: out of memory");
  return Scheduler::get(L).suspend(L, task, exchange_done, 0, cancel_session, &session);
}

int message_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  smtp::Session& session = check_session(L, 1);
  if (!session.outcome().ok()) return push_failure(L, session);
  push_reply(L, session.replies().front());
  return 1;
}

bool start_message(smtp::Session& session, Task& task, const char* body, std::size_t length,
                   bool chunk) {
  try {
    if (chunk)
      session.send_chunk(std::string_view(body, length), &Scheduler::wake_task, &task);
    else
      session.send_message(std::string_view(body, length), &Scheduler::wake_task, &task);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

int send_body(lua_State* L, bool chunk) {
  check_session(L, 1);
  std::size_t length = 0;
  const char* body = luaL_checklstring(L, 2, &length);
  lua_settop(L, 2);
  Task& task = Scheduler::require_current(L, "SMTP commands");
  smtp::Session& session = claim_session(L, 1, chunk ? "bdat" : "data");
  if (!start_message(session, task, body, length, chunk))
    return luaL_error(L, "session: out of memory");
  return Scheduler::get(L).suspend(L, task, message_done, 0, cancel_session, &session);
}

// session:message(text) -> reply | nil, err   (after a 354)
int session_message(lua_State* L) {
  return send_body(L, false);
}
// session:chunk(text) -> reply | nil, err     (BDAT n LAST)
int session_chunk(lua_State* L) {
  return send_body(L, true);
}

// [-0, +1, m] the session's transcript as { {t=, dir=, line=}, ... }
void push_transcript(lua_State* L, const smtp::Session& session) {
  const auto& entries = session.transcript().entries();
  lua_createtable(L, static_cast<int>(entries.size()), 0);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, entries[i].t);
    lua_setfield(L, -2, "t");
    lua_pushlstring(L, &entries[i].dir, 1);
    lua_setfield(L, -2, "dir");
    push_string(L, entries[i].line);
    lua_setfield(L, -2, "line");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
}

// session:transcript() -> { {t=, dir=, line=}, ... }
int session_transcript(lua_State* L) {
  push_transcript(L, check_session(L, 1));
  return 1;
}

// session:note(text): an event line in the transcript ("!"), e.g. "falling back to HELO".
int session_note(lua_State* L) {
  smtp::Session& session = check_session(L, 1);
  std::size_t length = 0;
  const char* text = luaL_checklstring(L, 2, &length);
  session.transcript().add('!', std::string_view(text, length));
  if (check_wrapper(L, 1).account) {
    raise_if_stopped(L);  // the line counts as the recipe's memory: a limit crossed stops here
    // Lua's collector sees only Lua's allocations: told of these bytes too, it collects the
    // sessions no longer used, and their transcripts are given back.
    lua_gc(L, LUA_GCSTEP, static_cast<int>(std::min<std::size_t>(length >> 10, 1 << 20)));
  }
  return 0;
}

// session:secret(text): text shows as *** wherever the server echoes it from now on.
bool add_secret(smtp::Session& session, const char* text, std::size_t length) {
  try {
    session.add_secret(std::string_view(text, length));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

int session_secret(lua_State* L) {
  smtp::Session& session = check_session(L, 1);
  std::size_t length = 0;
  const char* text = luaL_checklstring(L, 2, &length);
  if (!add_secret(session, text, length)) return luaL_error(L, "session:secret: out of memory");
  return 0;
}

int session_closed(lua_State* L) {
  lua_pushboolean(L, check_session(L, 1).closed());
  return 1;
}

int session_close(lua_State* L) {
  check_session(L, 1).close();
  return 0;
}

int push_address_of(lua_State* L, bool local) {
  smtp::Session& session = check_session(L, 1);
  net::Connection& connection = session.connection();
  AddressText text = address_text(local ? connection.local_address() : connection.remote_address());
  return push_address(L, text);  // the std::string is gone before Lua may raise
}

// session:descriptor() -> the socket's descriptor | nil when closed: for waiting until the
// server says something on its own (raw mode), never for reading or closing.
int session_descriptor(lua_State* L) {
  int fd = check_session(L, 1).connection().descriptor();
  if (fd < 0) return 0;
  lua_pushinteger(L, fd);
  return 1;
}

// session:input_waiting() -> boolean: the server sent something that can be read now without
// waiting (a line, the end of the connection); under TLS, records that are no data, such as
// session tickets, are taken and do not count. False while an operation is in flight.
int session_input_waiting(lua_State* L) {
  smtp::Session& session = check_session(L, 1);
  lua_pushboolean(L, !session.closed() && session.connection().input_waiting());
  return 1;
}

int session_local_addr(lua_State* L) {
  return push_address_of(L, true);
}
int session_remote_addr(lua_State* L) {
  return push_address_of(L, false);
}

// --- TLS -------------------------------------------------------------------------------------

// [-0, +2, m] nil, err for a failed handshake: kind "tls" (or "timeout", "closed"), stage
// "starttls", and `reason`, one stable word for what happened.
int push_tls_failure(lua_State* L, const smtp::Session& session, const char* stage) {
  lua_pushnil(L);
  push_error(L, session.outcome(), stage);
  lua_pushstring(L, session.tls_failure_reason());
  lua_setfield(L, -2, "reason");
  return 2;
}

int starttls_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  smtp::Session& session = check_session(L, 1);
  if (!session.outcome().ok() || !session.tls_info())
    return push_tls_failure(L, session, "starttls");
  record_tls(check_wrapper(L, 1));
  push_tls_info(L, *session.tls_info());
  return 1;
}

bool start_tls(smtp::Session& session, const tls::Options& options, Task& task) {
  try {
    session.start_tls(options, &Scheduler::wake_task, &task);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// session:starttls(opts) -> tls info | nil, err: the handshake only (after the 220).
int session_starttls(lua_State* L) {
  check_session(L, 1);
  lua_settop(L, 2);
  const tls::Options& options = check_tls_options(L, 2, "s:starttls");  // index 3
  Task& task = Scheduler::require_current(L, "s:starttls");
  smtp::Session& session = claim_session(L, 1, "starttls");
  if (!start_tls(session, options, task)) return luaL_error(L, "s:starttls: out of memory");
  return Scheduler::get(L).suspend(L, task, starttls_done, 0, cancel_session, &session);
}

// core.check_tls_options(opts): raises what is wrong with TLS options, before anything is sent.
// The context made here is the one the handshake then uses (tls::shared_context). Running
// out of descriptors is no mistake in the options: the handshake reports it (kind "resource").
bool tls_context_error(const tls::Options& options, char* error, std::size_t size) {
  try {
    tls::ContextError problem;
    if (tls::shared_context(options, problem) || problem.out_of_resources) return false;
    std::snprintf(error, size, "%s", problem.message.c_str());
  } catch (const std::exception&) {
    std::snprintf(error, size, "out of memory");
  }
  return true;
}

int core_check_tls_options(lua_State* L) {
  const char* signature = luaL_optstring(L, 2, "s:starttls");
  const tls::Options& options = check_tls_options(L, 1, signature);
  char error[300];
  if (tls_context_error(options, error, sizeof error))
    return luaL_error(L, "%s: %s", signature, error);
  return 0;
}

// session:tls() -> the TLS info of the connection, or nil before TLS
int session_tls(lua_State* L) {
  smtp::Session& session = check_session(L, 1);
  if (!session.tls_info()) {
    lua_pushnil(L);
    return 1;
  }
  push_tls_info(L, *session.tls_info());
  return 1;
}

int session_gc(lua_State* L) {
  auto* wrapper = static_cast<LuaSession*>(luaL_checkudata(L, 1, session_metatable));
  if (wrapper->session) {
    wrapper->session->detach();
    wrapper->session->transcript().set_observer(nullptr, nullptr);  // it pointed at *wrapper
  }
  credit_memory(wrapper->account, wrapper->charged);
  wrapper->~LuaSession();
  return 0;
}

int session_close_scope(lua_State* L) {
  auto* wrapper = static_cast<LuaSession*>(luaL_checkudata(L, 1, session_metatable));
  if (wrapper->session) wrapper->session->close();
  return 0;
}

// --- SASL helpers ----------------------------------------------------------------------------

int push_optional(lua_State* L, const std::optional<std::string>& text) {
  if (!text)
    lua_pushnil(L);
  else
    push_string(L, *text);
  return 1;
}

int core_b64encode(lua_State* L) {
  std::size_t length = 0;
  const char* bytes = luaL_checklstring(L, 1, &length);
  return push_optional(L, smtp::base64_encode(std::string_view(bytes, length)));
}

int core_b64decode(lua_State* L) {
  std::size_t length = 0;
  const char* text = luaL_checklstring(L, 1, &length);
  return push_optional(L, smtp::base64_decode(std::string_view(text, length)));
}

int core_plain(lua_State* L) {
  std::size_t user_length = 0, secret_length = 0;
  const char* user = luaL_checklstring(L, 1, &user_length);
  const char* secret = luaL_checklstring(L, 2, &secret_length);
  return push_optional(L, smtp::plain_response(std::string_view(user, user_length),
                                               std::string_view(secret, secret_length)));
}

int core_cram_md5(lua_State* L) {
  std::size_t user_length = 0, secret_length = 0, challenge_length = 0;
  const char* user = luaL_checklstring(L, 1, &user_length);
  const char* secret = luaL_checklstring(L, 2, &secret_length);
  const char* challenge = luaL_checklstring(L, 3, &challenge_length);
  return push_optional(L, smtp::cram_md5_response(std::string_view(user, user_length),
                                                  std::string_view(secret, secret_length),
                                                  std::string_view(challenge, challenge_length)));
}

// core.hostname() -> this machine's name, the EHLO default when nothing better is known
int core_hostname(lua_State* L) {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') std::strcpy(name, "localhost");
  lua_pushstring(L, name);
  return 1;
}

// core.capabilities(ehlo_reply) -> { KEYWORD = {param, ...}, ... } (the AUTH= form merged)
smtp::Capabilities parse_ehlo_lines(lua_State* L) {
  smtp::Reply reply;
  read_reply(L, reply, 250);
  return smtp::parse_capabilities(reply);
}

int push_capabilities(lua_State* L, const smtp::Capabilities& capabilities) {
  lua_createtable(L, 0, static_cast<int>(capabilities.list.size()));
  for (const auto& capability : capabilities.list) {
    if (capability.keyword == "AUTH" || capability.keyword.rfind("AUTH=", 0) == 0) continue;
    lua_createtable(L, static_cast<int>(capability.params.size()), 0);
    for (std::size_t i = 0; i < capability.params.size(); ++i) {
      push_string(L, capability.params[i]);
      lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
    }
    lua_setfield(L, -2, capability.keyword.c_str());
  }
  if (!capabilities.auth.empty()) {
    lua_createtable(L, static_cast<int>(capabilities.auth.size()), 0);
    for (std::size_t i = 0; i < capabilities.auth.size(); ++i) {
      push_string(L, capabilities.auth[i]);
      lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
    }
    lua_setfield(L, -2, "AUTH");
  }
  return 1;
}

// Kept apart so the parsed C++ value is gone before the caller returns into Lua.
int capabilities_to_lua(lua_State* L) {
  smtp::Capabilities capabilities = parse_ehlo_lines(L);
  return push_capabilities(L, capabilities);
}

int core_capabilities(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  return capabilities_to_lua(L);
}

// core.describe(code | "x.y.z") -> meaning, "positive"|"intermediate"|"transient"|"permanent"
int core_describe(lua_State* L) {
  std::optional<smtp::CodeMeaning> meaning;
  if (lua_type(L, 1) == LUA_TNUMBER) {
    meaning = smtp::describe_reply_code(static_cast<int>(luaL_checkinteger(L, 1)));
  } else {
    std::size_t length = 0;
    const char* code = luaL_checklstring(L, 1, &length);
    meaning = smtp::describe_enhanced(std::string_view(code, length));
  }
  if (!meaning) return 0;
  static const char* const severities[] = {"positive", "intermediate", "transient", "permanent"};
  lua_pushlstring(L, meaning->meaning.data(), meaning->meaning.size());
  lua_pushstring(L, severities[static_cast<int>(meaning->severity)]);
  return 2;
}

bool is_ip_address(const char* text) {
  std::error_code ec;
  try {
    asio::ip::make_address(text, ec);
  } catch (const std::exception&) {
    return false;
  }
  return !ec;
}

// core.is_address(text) -> whether text is an IPv4 or IPv6 address (not a host name)
int core_is_address(lua_State* L) {
  lua_pushboolean(L, is_ip_address(luaL_checkstring(L, 1)));
  return 1;
}

// core.parse_target("host[:port]" | "[v6]:port" [, default_port]) -> host, port | nil, message
bool parse_target(const char* target, std::size_t length, lua_Integer default_port,
                  char (&host)[256], std::uint16_t& port, char (&error)[256]) {
  std::string why;
  auto parsed = engine::parse_host_port(std::string_view(target, length),
                                        static_cast<std::uint16_t>(default_port), why);
  const std::string& out = parsed ? parsed->host : why;
  std::size_t size = std::min(out.size(), sizeof host - 1);
  std::memcpy(parsed ? host : error, out.data(), size);
  (parsed ? host : error)[size] = '\0';
  if (parsed) port = parsed->port;
  return parsed.has_value();
}

int core_parse_target(lua_State* L) {
  std::size_t length = 0;
  const char* target = luaL_checklstring(L, 1, &length);
  lua_Integer default_port = luaL_optinteger(L, 2, 25);
  luaL_argcheck(L, default_port >= 1 && default_port <= 65535, 2, "port must be 1..65535");
  char host[256];
  char error[256];
  std::uint16_t port = 0;
  if (!parse_target(target, length, default_port, host, port, error)) {
    lua_pushnil(L);
    lua_pushstring(L, error);
    return 2;
  }
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

// core.format_endpoint(host, port) -> "host:port", "[v6]:port": the engine's one formatter
// (engine/base/endpoint.hpp), what parse_target reads back. Returns the length written to
// `out`, 0 when out of memory.
constexpr std::size_t max_format_host = 255;
std::size_t write_endpoint(const char* host, std::size_t length, std::uint16_t port,
                           char (&out)[max_format_host + 8]) {
  try {
    std::string text = engine::format_endpoint(std::string_view(host, length), port);
    std::size_t size = std::min(text.size(), sizeof out);
    std::memcpy(out, text.data(), size);
    return size;
  } catch (const std::exception&) {
    return 0;
  }
}

int core_format_endpoint(lua_State* L) {
  std::size_t length = 0;
  const char* host = luaL_checklstring(L, 1, &length);
  luaL_argcheck(L, length <= max_format_host, 1, "host longer than 255 bytes");
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port must be 1..65535");
  char text[max_format_host + 8];
  std::size_t size = write_endpoint(host, length, static_cast<std::uint16_t>(port), text);
  if (size == 0) return luaL_error(L, "smtpcore.format_endpoint: out of memory");
  lua_pushlstring(L, text, size);
  return 1;
}

// core.error(kind, stage, message [, reply]) -> an error value like every other module's
int core_error(lua_State* L) {
  lua_settop(L, 4);  // the reply, or nil, stays at 4 below the error pushed next
  const char* kind = luaL_checkstring(L, 1);
  const char* stage = luaL_optstring(L, 2, nullptr);
  const char* message = luaL_checkstring(L, 3);
  push_error(L, kind, stage, message);
  if (!lua_isnil(L, 4)) {
    lua_pushvalue(L, 4);
    lua_setfield(L, -2, "reply");
  }
  return 1;
}

const luaL_Reg session_methods[] = {
    {"exchange", session_exchange},
    {"starttls", session_starttls},
    {"tls", session_tls},
    {"message", session_message},
    {"chunk", session_chunk},
    {"transcript", session_transcript},
    {"note", session_note},
    {"secret", session_secret},
    {"closed", session_closed},
    {"close", session_close},
    {"local_addr", session_local_addr},
    {"remote_addr", session_remote_addr},
    {"descriptor", session_descriptor},
    {"input_waiting", session_input_waiting},
    {nullptr, nullptr},
};

const luaL_Reg core_functions[] = {
    {"connect", core_connect},
    {"b64encode", core_b64encode},
    {"b64decode", core_b64decode},
    {"plain", core_plain},
    {"cram_md5", core_cram_md5},
    {"error", core_error},
    {"hostname", core_hostname},
    {"capabilities", core_capabilities},
    {"describe", core_describe},
    {"parse_target", core_parse_target},
    {"format_endpoint", core_format_endpoint},
    {"is_address", core_is_address},
    {"check_tls_options", core_check_tls_options},
    {"trace_sink", trace_sink},
    {nullptr, nullptr},
};

}  // namespace

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_smtpcore(lua_State* L) {
  using namespace smtpsh::lua;
  Scheduler::get(L);
  register_error_metatable(L);
  if (luaL_newmetatable(L, session_metatable)) {
    luaL_newlib(L, session_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, session_close_scope);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, reply_metatable)) {
    lua_pushcfunction(L, reply_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, core_functions);
  return 1;
}
