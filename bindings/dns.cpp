// smtpsh.dnscore: DNS queries for Lua on the engine's resolver. stdlib/dns.lua builds the
// user-facing `dns` module (mx, ptr, fcrdns, dnsbl, spf, ...) on top of query().
#include "bindings/error.hpp"
#include "bindings/modules.hpp"
#include "bindings/record_type.hpp"
#include "bindings/resolver_state.hpp"
#include "bindings/sandbox.hpp"
#include "bindings/scheduler.hpp"
#include "bindings/seconds.hpp"
#include "bindings/trace.hpp"
#include "engine/dns/names.hpp"
#include "engine/record/recorder.hpp"

#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>

namespace smtpsh::lua {

namespace {

constexpr const char* resolver_key = "smtpsh.resolver_of_state";  // not the metatable's name
constexpr const char* resolver_metatable = "smtpsh.resolver";
constexpr const char* query_metatable = "smtpsh.dns_query";
constexpr const char* query_signature =
    "dns.query(name [, type [, {servers = {\"ADDR[:PORT]\", ...}}]])";
constexpr const char* servers_signature =
    "dns.servers([{\"ADDR[:PORT]\", ... [, timeout = SECONDS] [, attempts = N]}])";

// The resolver and who watches its answers: the live trace (--trace) and the recorder.
struct LuaResolver {
  std::shared_ptr<dns::Resolver> resolver;
  lua_State* trace = nullptr;  // while tracing: the state's trace thread (bindings/trace.hpp)
  record::Recorder* recorder = nullptr;
  DnsWatch watch = nullptr;  // the sandbox's (bindings/sandbox.cpp)
  void* watch_context = nullptr;
};

// An answer for the live trace: the query, and the line that tells it
// ("MX example.com: 3 records, 127.0.0.1:53").
struct AnswerEvent {
  const dns::Query& query;
  std::string type;
  std::string line;
};

// [-0, +1, m] {source = "dns", dir = "==", line =, type =, name =, records = N | rcode =,
// cached =, server =, tcp =, seconds =}
void push_answer_event(lua_State* L, const void* event) {
  const auto& answer = *static_cast<const AnswerEvent*>(event);
  const dns::Result& result = answer.query.result();
  lua_createtable(L, 0, 10);
  lua_pushliteral(L, "dns");
  lua_setfield(L, -2, "source");
  lua_pushliteral(L, "==");
  lua_setfield(L, -2, "dir");
  lua_pushlstring(L, answer.line.data(), answer.line.size());
  lua_setfield(L, -2, "line");
  lua_pushlstring(L, answer.type.data(), answer.type.size());
  lua_setfield(L, -2, "type");
  lua_pushlstring(L, answer.query.name().data(), answer.query.name().size());
  lua_setfield(L, -2, "name");
  if (result.ok()) {
    lua_pushinteger(L, static_cast<lua_Integer>(result.records.size()));
    lua_setfield(L, -2, "records");
  } else {
    lua_pushlstring(L, result.rcode.data(), result.rcode.size());
    lua_setfield(L, -2, "rcode");
  }
  lua_pushboolean(L, result.from_cache);
  lua_setfield(L, -2, "cached");
  if (!result.server.empty()) {
    lua_pushlstring(L, result.server.data(), result.server.size());
    lua_setfield(L, -2, "server");
  }
  lua_pushboolean(L, result.tcp);
  lua_setfield(L, -2, "tcp");
  lua_pushnumber(L, result.seconds);
  lua_setfield(L, -2, "seconds");
}

void print_answer_event(const void* event) {
  const auto& answer = *static_cast<const AnswerEvent*>(event);
  std::fputs("[     dns] == ", stderr);
  write_visible(answer.line.data(), answer.line.size());
  std::fputc('\n', stderr);
}

void trace_answer(lua_State* trace, const dns::Query& query) {
  try {
    const dns::Result& result = query.result();
    AnswerEvent answer{query, dns::type_name(query.qtype()), {}};
    answer.line = answer.type + " " + query.name() + ": ";
    if (!result.ok())
      answer.line += result.rcode;
    else if (result.records.empty())
      answer.line += "NODATA";
    else
      answer.line += std::to_string(result.records.size()) + " records";
    if (result.from_cache) answer.line += " (cached)";
    if (!result.server.empty())
      answer.line += ", " + result.server + (result.tcp ? " over TCP" : "");
    emit_trace(trace, push_answer_event, print_answer_event, &answer);
  } catch (const std::exception&) {
    std::fputs("[     dns] == (out of memory)\n", stderr);
  }
}

void observe_answer(void* context, const dns::Query& query, std::string_view wire) {
  auto* wrapper = static_cast<LuaResolver*>(context);
  if (wrapper->recorder && wrapper->recorder->is_open()) wrapper->recorder->dns(query, wire);
  if (wrapper->trace) trace_answer(wrapper->trace, query);
  if (wrapper->watch) wrapper->watch(wrapper->watch_context, query);
}

struct LuaQuery {
  std::shared_ptr<dns::Query> query;
};

// Names and types copied into plain storage, so a Lua error cannot skip a destructor.
struct NameText {
  char text[256];
  char error[200];
  bool ok;
};

NameText canonical_text(const char* name) {
  NameText out{};
  try {
    std::string problem;
    auto canonical = dns::canonical_name(name, problem);
    if (canonical) {
      std::snprintf(out.text, sizeof out.text, "%s", canonical->c_str());
      out.ok = true;
    } else {
      std::snprintf(out.error, sizeof out.error, "%s", problem.c_str());
    }
  } catch (const std::exception&) {
    std::snprintf(out.error, sizeof out.error, "out of memory");
  }
  return out;
}

int resolver_gc(lua_State* L) {
  auto* wrapper = static_cast<LuaResolver*>(luaL_checkudata(L, 1, resolver_metatable));
  wrapper->~LuaResolver();
  return 0;
}

int query_gc(lua_State* L) {
  auto* wrapper = static_cast<LuaQuery*>(luaL_checkudata(L, 1, query_metatable));
  if (wrapper->query) wrapper->query->detach();
  wrapper->~LuaQuery();
  return 0;
}

void cancel_query(Task&, void* query) {
  static_cast<dns::Query*>(query)->interrupt();
}

void push_string(lua_State* L, const std::string& text) {
  lua_pushlstring(L, text.data(), text.size());
}

void set_string(lua_State* L, const char* key, const std::string& value) {
  push_string(L, value);
  lua_setfield(L, -2, key);
}

void set_integer(lua_State* L, const char* key, const std::string& value) {
  lua_Integer number = 0;
  if (lua_stringtonumber(L, value.c_str()) != 0) {
    number = lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  lua_pushinteger(L, number);
  lua_setfield(L, -2, key);
}

// The typed fields of a record, named after the RFC that defines its type.  [-0, +0, m]
void set_typed_fields(lua_State* L, const dns::Record& record) {
  const auto& f = record.fields;
  auto has = [&](std::size_t n) { return f.size() >= n; };
  switch (record.type) {
    case dns::type::A:
    case dns::type::AAAA:
      if (has(1)) set_string(L, "address", f[0]);
      break;
    case dns::type::MX:
      if (has(2)) {
        set_integer(L, "preference", f[0]);
        set_string(L, "host", f[1]);
      }
      break;
    case dns::type::NS:
    case dns::type::PTR:
      if (has(1)) set_string(L, "host", f[0]);
      break;
    case dns::type::CNAME:
      if (has(1)) set_string(L, "target", f[0]);
      break;
    case dns::type::TXT:
    case 99: {  // SPF
      lua_createtable(L, static_cast<int>(f.size()), 0);
      luaL_Buffer joined;
      for (std::size_t i = 0; i < f.size(); ++i) {
        push_string(L, f[i]);
        lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
      }
      lua_setfield(L, -2, "strings");
      // RFC 7208 section 3.3: the strings of one record are joined without spaces.
      luaL_buffinit(L, &joined);
      for (const std::string& piece : f)
        luaL_addlstring(&joined, piece.data(), piece.size());
      luaL_pushresult(&joined);
      lua_setfield(L, -2, "text");
      break;
    }
    case dns::type::SOA:
      if (has(7)) {
        set_string(L, "mname", f[0]);
        set_string(L, "rname", f[1]);
        const char* numbers[] = {"serial", "refresh", "retry", "expire", "minimum"};
        for (std::size_t i = 0; i < 5; ++i)
          set_integer(L, numbers[i], f[i + 2]);
      }
      break;
    case dns::type::SRV:
      if (has(4)) {
        set_integer(L, "priority", f[0]);
        set_integer(L, "weight", f[1]);
        set_integer(L, "port", f[2]);
        set_string(L, "target", f[3]);
      }
      break;
    case dns::type::TLSA:
      if (has(4)) {
        set_integer(L, "usage", f[0]);
        set_integer(L, "selector", f[1]);
        set_integer(L, "matching_type", f[2]);
        set_string(L, "data", f[3]);
      }
      break;
    default:
      break;
  }
}

// [-0, +1, m]
void push_record(lua_State* L, const dns::Record& record) {
  lua_createtable(L, 0, 6);
  set_string(L, "name", record.name);
  set_string(L, "type", dns::type_name(record.type));
  lua_pushinteger(L, record.ttl);
  lua_setfield(L, -2, "ttl");
  set_string(L, "rdata", record.presentation);
  set_typed_fields(L, record);
}

// The records, with what the answer says about itself as fields of the list.  [-0, +1, m]
void push_records(lua_State* L, const dns::Result& result) {
  lua_createtable(L, static_cast<int>(result.records.size()), 5);
  for (std::size_t i = 0; i < result.records.size(); ++i) {
    push_record(L, result.records[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  lua_pushboolean(L, result.authenticated);
  lua_setfield(L, -2, "ad");
  if (!result.aliases.empty()) {
    set_string(L, "canonical", result.canonical);
    lua_createtable(L, static_cast<int>(result.aliases.size()), 0);
    for (std::size_t i = 0; i < result.aliases.size(); ++i) {
      push_record(L, result.aliases[i]);
      lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
    }
    lua_setfield(L, -2, "aliases");
  }
  if (!result.server.empty()) set_string(L, "server", result.server);
  lua_pushboolean(L, result.tcp);
  lua_setfield(L, -2, "tcp");
  lua_pushboolean(L, result.from_cache);
  lua_setfield(L, -2, "cached");
  lua_pushnumber(L, result.seconds);
  lua_setfield(L, -2, "seconds");
  if (!result.wire.empty()) set_string(L, "wire", result.wire);
}

// [-0, +1, m]
void push_dns_error(lua_State* L, const char* rcode, const char* message, const char* name,
                    const char* qtype) {
  push_error(L, "dns", "dns", message);
  lua_pushstring(L, rcode);
  lua_setfield(L, -2, "rcode");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, qtype);
  lua_setfield(L, -2, "type");
}

int query_done(lua_State* L, int, lua_KContext) {
  Scheduler::check_abort(L);
  auto* wrapper = static_cast<LuaQuery*>(luaL_checkudata(L, 3, query_metatable));
  const dns::Result& result = wrapper->query->result();
  if (result.ok()) {
    push_records(L, result);
    return 1;
  }
  lua_pushnil(L);
  push_dns_error(L, result.rcode.c_str(), result.message.c_str(), wrapper->query->name().c_str(),
                 lua_tostring(L, 2));
  if (result.status == dns::Status::nxdomain) {
    lua_pushboolean(L, result.authenticated);  // a validating resolver's proven NXDOMAIN
    lua_setfield(L, -2, "ad");
  }
  // A DNSSEC query's NXDOMAIN holds the NSEC or NSEC3 records that prove it.
  if (!result.wire.empty()) set_string(L, "wire", result.wire);
  return 2;
}

lua_Integer read_server_strings(lua_State* L, int table, const char* what);
const char* parse_servers(lua_State* L, int servers, lua_Integer count, dns::ServerSet& set,
                          char* error, std::size_t error_size);

// The servers of dnscore.query's options (argument 3) copied into a fresh table of strings,
// pushed (nil when the options name none); returns how many. Raises on a mistake, while no
// C++ object is alive.  [-0, +1, e]
lua_Integer read_query_servers(lua_State* L) {
  if (lua_isnoneornil(L, 3)) {
    lua_pushnil(L);
    return 0;
  }
  luaL_argexpected(L, lua_type(L, 3) == LUA_TTABLE, 3, "table of options");
  if (lua_getfield(L, 3, "servers") == LUA_TNIL) return 0;  // that nil is the result
  refuse_in_sandbox(L,
                    "it asked DNS servers of its own (dns.query's servers): the sandbox asks "
                    "only the configured resolvers");
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_error(L, "dns.query: servers: must be a list of \"ADDR[:PORT]\" strings, got %s",
               luaL_typename(L, -1));
  lua_Integer count = read_server_strings(L, lua_gettop(L), "dns.query: servers");
  lua_remove(L, -2);  // the caller's list: the fresh copy stays
  if (count < 1)
    luaL_error(L, "dns.query: servers: the list is empty (give at least one \"ADDR[:PORT]\")");
  return count;
}

// Whether the server strings of the fresh table at `servers` all parse, as dns.servers parses
// them; the problem goes to `error` when not.
bool check_query_servers(lua_State* L, int servers, lua_Integer count, char* error,
                         std::size_t error_size) {
  try {
    dns::ServerSet set;
    return parse_servers(L, servers, count, set, error, error_size) == nullptr;
  } catch (const std::exception&) {
    std::snprintf(error, error_size, "out of memory");
    return false;
  }
}

// Starts the query: on the resolver's servers, or (when `count` > 0) on the checked server
// strings of the fresh table at `servers`, with the resolver's timeout and attempts.
bool start_query(lua_State* L, LuaQuery& wrapper, dns::Resolver& resolver, const char* name,
                 std::uint16_t qtype, std::uint8_t flags, int servers, lua_Integer count,
                 Task& task) {
  try {
    if (count == 0) {
      wrapper.query = resolver.query(name, qtype, &Scheduler::wake_task, &task, flags);
      return true;
    }
    dns::ServerSet set;
    set.timeout = resolver.servers().timeout;
    set.attempts = resolver.servers().attempts;
    char error[240];
    if (parse_servers(L, servers, count, set, error, sizeof error)) return false;
    wrapper.query =
        resolver.query(name, qtype, std::move(set), &Scheduler::wake_task, &task, flags);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

struct TypeText {
  std::uint16_t number;
  char name[32];
};

TypeText check_type(lua_State* L, int index) {
  TypeText out{dns::type::A, "A"};
  if (lua_isnoneornil(L, index)) return out;
  out.number = smtpsh::lua::check_record_type(L, index, query_signature);
  try {
    std::snprintf(out.name, sizeof out.name, "%s", dns::type_name(out.number).c_str());
  } catch (const std::exception&) {
  }
  return out;
}

// The flags of dnscore.query's options (argument 3): dnssec (the DO bit: the answer's bytes
// come back as `wire`) and checking_disabled (the CD bit).  [-0, +0, e]
std::uint8_t read_query_flags(lua_State* L) {
  if (lua_type(L, 3) != LUA_TTABLE) return 0;
  std::uint8_t flags = 0;
  lua_getfield(L, 3, "dnssec");
  if (lua_toboolean(L, -1)) flags |= dns::Query::dnssec_ok;
  lua_getfield(L, 3, "checking_disabled");
  if (lua_toboolean(L, -1)) flags |= dns::Query::checking_disabled;
  lua_pop(L, 2);
  return flags;
}

// dnscore.query(name [, type [, {servers = {"ADDR[:PORT]", ...}, dnssec, checking_disabled}]])
//   -> records | nil, err
// With servers, this query asks them instead of the configured ones, and the cache is neither
// read nor filled for it.
int dns_query(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  TypeText qtype = check_type(L, 2);
  lua_settop(L, 3);
  std::uint8_t flags = read_query_flags(L);
  lua_Integer own_servers = read_query_servers(L);  // index 4: their fresh list, or nil
  char problem[240];
  if (own_servers > 0 && !check_query_servers(L, 4, own_servers, problem, sizeof problem))
    return luaL_error(L, "dns.query: servers: %s", problem);
  lua_pushstring(L, qtype.name);
  lua_replace(L, 2);  // index 2: the type's name, for the results
  lua_remove(L, 3);   // the options: the list of servers moves to 3
  NameText canonical = canonical_text(name);
  if (!canonical.ok) {
    lua_pushnil(L);
    push_dns_error(L, "invalid_name", canonical.error, name, qtype.name);
    return 2;
  }
  Task& task = Scheduler::require_current(L, "dns.query");
  dns::Resolver& resolver = resolver_of(L);
  auto* wrapper = static_cast<LuaQuery*>(lua_newuserdatauv(L, sizeof(LuaQuery), 0));
  new (wrapper) LuaQuery{};
  luaL_setmetatable(L, query_metatable);
  lua_insert(L, 3);  // index 3: the query; the list of servers (or nil) at 4
  if (!start_query(L, *wrapper, resolver, canonical.text, qtype.number, flags, 4, own_servers,
                   task))
    return luaL_error(L, "dns.query: out of memory");
  return Scheduler::get(L).suspend(L, task, query_done, 0, cancel_query, wrapper->query.get());
}

// [-0, +1, m]
void push_server_set(lua_State* L, const dns::ServerSet& set) {
  lua_createtable(L, static_cast<int>(set.servers.size()), 2);
  for (std::size_t i = 0; i < set.servers.size(); ++i) {
    push_string(L, dns::format_server(set.servers[i]));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  lua_pushnumber(L, static_cast<double>(set.timeout.count()) / 1000.0);
  lua_setfield(L, -2, "timeout");
  lua_pushinteger(L, set.attempts);
  lua_setfield(L, -2, "attempts");
}

// dns.servers' argument as plain values, read in one step that may raise (the table's
// metamethods run here, while no C++ object is alive): the server strings go into a fresh
// table at `servers`, which the next step reads raw.
struct ServerArguments {
  lua_Integer count = 0;
  double timeout = 0;  // 0: unchanged
  lua_Integer attempts = 0;
  bool timeout_given = false;
  bool attempts_given = false;
};

// The list of server strings at `table` copied into a fresh table, pushed; returns its length.
// `what` starts the error messages.  [-0, +1, e]
lua_Integer read_server_strings(lua_State* L, int table, const char* what) {
  lua_Integer count = luaL_len(L, table);
  lua_createtable(L, static_cast<int>(count > 0 && count < 64 ? count : 0), 0);
  int servers = lua_gettop(L);
  for (lua_Integer i = 1; i <= count; ++i) {
    if (lua_geti(L, table, i) != LUA_TSTRING)
      luaL_error(L, "%s: server %d is not a string", what, static_cast<int>(i));
    lua_rawseti(L, servers, i);
  }
  return count;
}

// [-0, +1, e] pushes the fresh table of server strings.
ServerArguments read_server_arguments(lua_State* L, int table) {
  ServerArguments args;
  args.count = read_server_strings(L, table, servers_signature);
  if (lua_getfield(L, table, "timeout") != LUA_TNIL) {
    args.timeout_given = true;
    args.timeout = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : -1;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, table, "attempts") != LUA_TNIL) {
    args.attempts_given = true;
    args.attempts = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
  }
  lua_pop(L, 1);
  return args;
}

// Parses the server strings of the fresh table at `servers` (read raw: nothing here raises) into
// `set`; returns an error message, or nullptr. May throw std::bad_alloc.
const char* parse_servers(lua_State* L, int servers, lua_Integer count, dns::ServerSet& set,
                          char* error, std::size_t error_size) {
  for (lua_Integer i = 1; i <= count; ++i) {
    lua_rawgeti(L, servers, i);
    const char* text = lua_tostring(L, -1);  // a string already: no conversion, no raise
    lua_pop(L, 1);
    std::string problem;
    auto server = dns::parse_server(text, problem);
    if (!server) {
      std::snprintf(error, error_size, "%s", problem.c_str());
      return error;
    }
    set.servers.push_back(*server);
  }
  return nullptr;
}

// Applies the servers read by read_server_arguments (the fresh table at `servers`, read raw:
// nothing here can raise); returns an error message, or nullptr.
const char* apply_servers(lua_State* L, dns::Resolver& resolver, int servers,
                          const ServerArguments& args, char* error, std::size_t error_size) {
  if (args.timeout_given && !is_duration(args.timeout)) {
    std::snprintf(error, error_size, "timeout must be a finite number of seconds above 0");
    return error;
  }
  if (args.attempts_given && (args.attempts < 1 || args.attempts > 10)) {
    std::snprintf(error, error_size, "attempts must be an integer from 1 to 10");
    return error;
  }
  try {
    dns::ServerSet set;
    set.timeout = resolver.servers().timeout;
    set.attempts = resolver.servers().attempts;
    if (parse_servers(L, servers, args.count, set, error, error_size)) return error;
    if (args.timeout_given) set.timeout = engine::seconds_to_duration(args.timeout);
    if (args.attempts_given) set.attempts = static_cast<int>(args.attempts);
    if (set.servers.empty()) set.servers = resolver.servers().servers;
    resolver.set_servers(std::move(set));
    return nullptr;
  } catch (const std::exception&) {
    std::snprintf(error, error_size, "out of memory");
    return error;
  }
}

// dnscore.servers([{...}]) -> the servers in use (after applying the argument)
int dns_servers(lua_State* L) {
  dns::Resolver& resolver = resolver_of(L);
  lua_settop(L, 1);
  if (!lua_isnoneornil(L, 1)) {
    if (lua_type(L, 1) == LUA_TSTRING) {
      // dns.servers("127.0.0.1:5353"): one server.
      lua_createtable(L, 1, 0);
      lua_pushvalue(L, 1);
      lua_rawseti(L, -2, 1);
      lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    ServerArguments args = read_server_arguments(L, 1);  // the fresh table at 2
    char error[240];
    if (apply_servers(L, resolver, 2, args, error, sizeof error))
      return luaL_error(L, "%s: %s", servers_signature, error);
  }
  push_server_set(L, resolver.servers());
  return 1;
}

// dnscore.cache([enabled]) -> whether answers are cached; dnscore.cache("clear") empties it
int dns_cache(lua_State* L) {
  dns::Resolver& resolver = resolver_of(L);
  if (lua_type(L, 1) == LUA_TSTRING && std::strcmp(lua_tostring(L, 1), "clear") == 0)
    resolver.clear_cache();
  else if (!lua_isnoneornil(L, 1))
    resolver.set_cache(lua_toboolean(L, 1));
  lua_pushboolean(L, resolver.cache_enabled());
  return 1;
}

struct ReverseText {
  char text[128];
  bool ok;
};

ReverseText reverse_text(const char* ip, bool full) {
  ReverseText out{};
  try {
    auto name = full ? dns::reverse_name(ip) : dns::reversed_labels(ip);
    if (name) {
      std::snprintf(out.text, sizeof out.text, "%s", name->c_str());
      out.ok = true;
    }
  } catch (const std::exception&) {
  }
  return out;
}

// dnscore.reverse_name(ip [, labels_only]) -> "2.0.0.127.in-addr.arpa" | nil
int dns_reverse_name(lua_State* L) {
  const char* ip = luaL_checkstring(L, 1);
  ReverseText name = reverse_text(ip, !lua_toboolean(L, 2));
  if (!name.ok) {
    lua_pushnil(L);
    lua_pushfstring(L, "'%s' is not an IPv4 or IPv6 address", ip);
    return 2;
  }
  lua_pushstring(L, name.text);
  return 1;
}

// dnscore.canonical(name) -> "example.com" | nil, message
int dns_canonical(lua_State* L) {
  NameText name = canonical_text(luaL_checkstring(L, 1));
  if (!name.ok) {
    lua_pushnil(L);
    lua_pushstring(L, name.error);
    return 2;
  }
  lua_pushstring(L, name.text);
  return 1;
}

// dnscore.trace([on]) -> whether every answer goes to the trace sink as it comes
int dns_trace(lua_State* L);

const luaL_Reg dns_functions[] = {
    {"query", dns_query},         {"servers", dns_servers},
    {"cache", dns_cache},         {"reverse_name", dns_reverse_name},
    {"canonical", dns_canonical}, {"trace", dns_trace},
    {"trace_sink", trace_sink},   {nullptr, nullptr},
};

bool create_resolver(LuaResolver& wrapper, asio::io_context& io) {
  try {
    new (&wrapper) LuaResolver{dns::Resolver::create(io, dns::system_servers())};
    wrapper.resolver->set_observer(&observe_answer, &wrapper);
    return true;
  } catch (const std::exception&) {
    new (&wrapper) LuaResolver{};
    return false;
  }
}

}  // namespace

namespace {
LuaResolver& wrapper_of(lua_State* L) {
  resolver_of(L);
  lua_getfield(L, LUA_REGISTRYINDEX, resolver_key);
  auto* wrapper = static_cast<LuaResolver*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return *wrapper;
}

int dns_trace(lua_State* L) {
  LuaResolver& wrapper = wrapper_of(L);
  if (!lua_isnoneornil(L, 1)) wrapper.trace = lua_toboolean(L, 1) ? trace_thread(L) : nullptr;
  lua_pushboolean(L, wrapper.trace != nullptr);
  return 1;
}
}  // namespace

void set_dns_recorder(lua_State* L, record::Recorder* recorder) {
  wrapper_of(L).recorder = recorder;
}

void set_dns_watch(lua_State* L, DnsWatch watch, void* context) {
  LuaResolver& wrapper = wrapper_of(L);
  wrapper.watch = watch;
  wrapper.watch_context = context;
}

dns::Resolver& resolver_of(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, resolver_key) == LUA_TUSERDATA) {
    auto* wrapper = static_cast<LuaResolver*>(lua_touserdata(L, -1));
    lua_pop(L, 1);
    return *wrapper->resolver;
  }
  lua_pop(L, 1);
  asio::io_context& io = Scheduler::get(L).io();
  auto* wrapper = static_cast<LuaResolver*>(lua_newuserdatauv(L, sizeof(LuaResolver), 0));
  bool created = create_resolver(*wrapper, io);
  if (luaL_newmetatable(L, resolver_metatable)) {
    lua_pushcfunction(L, resolver_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (!created) luaL_error(L, "cannot create the DNS resolver: out of memory");
  lua_setfield(L, LUA_REGISTRYINDEX, resolver_key);
  lua_getfield(L, LUA_REGISTRYINDEX, resolver_key);
  auto* stored = static_cast<LuaResolver*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return *stored->resolver;
}

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_dnscore(lua_State* L) {
  using namespace smtpsh::lua;
  Scheduler::get(L);
  register_error_metatable(L);
  if (luaL_newmetatable(L, query_metatable)) {
    lua_pushcfunction(L, query_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, dns_functions);
  return 1;
}
