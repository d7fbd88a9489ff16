// smtpsh.sandboxcore: the limits of a sandboxed run that Lua code cannot enforce itself
// (bindings/sandbox.hpp): memory through the state's allocator, instructions and CPU time
// through a count hook, wall-clock time through the scheduler's watchdog, tasks through the
// scheduler, and destinations through a guard before every connect that learns, from the
// resolver's answers, the addresses of the names the run may reach.
#include "bindings/sandbox.hpp"

#include "bindings/connect_hook_state.hpp"
#include "bindings/resolver_state.hpp"
#include "bindings/scheduler.hpp"
#include "engine/net/connect_hook.hpp"

#include <asio/ip/address.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace smtpsh::lua {

namespace {

// How many instructions between two looks at the budget.
constexpr int hook_every = 1000;
// Once the memory limit stopped a run, this much more is allowed, so the error can be
// raised, reported and unwound.
constexpr std::size_t stop_headroom = std::size_t{4} << 20;

struct Destinations;

struct Budget {
  std::size_t used = 0;
  std::size_t memory_limit = 0;  // 0: none
  bool active = false;           // sandboxcore.start was called
  bool stopped = false;
  bool interrupted = false;  // every task was told
  std::string reason;        // why it stopped, one line
  lua_Integer instructions = 0;
  lua_Integer max_instructions = 0;
  double cpu_started = 0;
  double max_cpu = 0;
  double max_seconds = 0;
  std::chrono::steady_clock::time_point wall_started;
  std::size_t max_tasks = 0;
  lua_State* main = nullptr;
  std::shared_ptr<Destinations> destinations;
};

double cpu_seconds() {
  return static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
}

// --- memory --------------------------------------------------------------------------------

std::string memory_stop_reason(const Budget& budget) {
  return "the sandbox stopped the recipe: it used more than " +
         std::to_string(budget.memory_limit >> 20) + " MiB of Lua memory (--max-memory MIB)";
}

void* budget_alloc(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
  auto* budget = static_cast<Budget*>(ud);
  std::size_t old = ptr != nullptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    budget->used -= old;
    return nullptr;
  }
  if (budget->memory_limit != 0 && nsize > old) {
    std::size_t allowed = budget->memory_limit + (budget->stopped ? stop_headroom : 0);
    if (budget->used + (nsize - old) > allowed) {
      if (!budget->stopped) {
        budget->stopped = true;
        budget->reason = memory_stop_reason(*budget);
      }
      return nullptr;  // Lua raises "not enough memory"; the hook then stops the run
    }
  }
  void* out = std::realloc(ptr, nsize);
  if (out != nullptr) budget->used = budget->used - old + nsize;
  return out;
}

Budget* budget_of(lua_State* L) {
  void* ud = nullptr;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  return alloc == budget_alloc ? static_cast<Budget*>(ud) : nullptr;
}

// --- stopping ------------------------------------------------------------------------------

// Tells every task (on the loop's turn: this may run inside one) and keeps the reason.
void stop_run(Budget& budget, std::string reason) {
  if (!budget.stopped) {
    budget.stopped = true;
    budget.reason = std::move(reason);
  }
  if (budget.interrupted || budget.main == nullptr) return;
  budget.interrupted = true;
  Scheduler& scheduler = Scheduler::get(budget.main);
  asio::post(scheduler.io(),
             [&scheduler, &budget] { scheduler.interrupt_all(budget.reason.c_str()); });
}

[[noreturn]] void raise_stop(lua_State* L, Budget& budget) {
  // Every few instructions from now on, whoever catches it: the run cannot go on.
  lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
  lua_pushstring(L, budget.reason.c_str());
  lua_error(L);
  std::abort();  // not reached: lua_error does not return
}

void watchdog_fired(void* context);

void count_hook(lua_State* L, lua_Debug*) {
  Budget* budget = budget_of(L);
  if (budget == nullptr || !budget->active) return;
  if (!budget->stopped) {
    budget->instructions += hook_every;
    if (budget->max_instructions != 0 && budget->instructions > budget->max_instructions) {
      stop_run(*budget, "the sandbox stopped the recipe: it ran more than " +
                            std::to_string(budget->max_instructions) +
                            " Lua instructions (--max-instructions N)");
    } else if (budget->max_seconds != 0 &&
               std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             budget->wall_started)
                       .count() > budget->max_seconds) {
      // A busy loop never lets the watchdog's timer run: the hook looks at the clock too.
      watchdog_fired(budget);
    } else if (budget->max_cpu != 0 && cpu_seconds() - budget->cpu_started > budget->max_cpu) {
      char text[160];
      std::snprintf(text, sizeof text,
                    "the sandbox stopped the recipe: it used more than %g s of CPU time "
                    "(--max-cpu SECONDS)",
                    budget->max_cpu);
      stop_run(*budget, text);
    }
  }
  if (budget->stopped) {
    stop_run(*budget, budget->reason);  // memory stops are found here: tell every task
    raise_stop(L, *budget);
  }
}

// The backstop for what neither the hook nor the watchdog can see: one C call that never
// comes back to Lua, such as a backtracking pattern (string.find(("a"):rep(60),
// ("a*"):rep(12) .. "b") runs for hours inside one call, with the loop blocked). A thread of
// its own looks at the clocks; half a second past a limit, with the process still here, it
// ends the process with the limit's line, as the hook would have.
constexpr double backstop_grace = 0.5;

[[noreturn]] void end_from_backstop(const char* text) {
  // The main thread may hold stdout's lock forever: flush it only when it is free.
  if (ftrylockfile(stdout) == 0) {
    fflush_unlocked(stdout);
    funlockfile(stdout);
  }
  // write(2), which takes no lock, and _exit: no destructor may run beside the stuck thread.
  ssize_t ignored = write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
  _exit(3);
}

void start_backstop(const Budget& budget) {
  double max_seconds = budget.max_seconds, max_cpu = budget.max_cpu;
  if (max_seconds <= 0 && max_cpu <= 0) return;
  auto wall_started = budget.wall_started;
  double cpu_started = budget.cpu_started;
  char wall_text[200], cpu_text[200];
  std::snprintf(wall_text, sizeof wall_text,
                "smtpsh: the sandbox stopped the recipe: it ran longer than %g s "
                "(--max-time SECONDS)\n",
                max_seconds);
  std::snprintf(cpu_text, sizeof cpu_text,
                "smtpsh: the sandbox stopped the recipe: it used more than %g s of CPU time "
                "(--max-cpu SECONDS)\n",
                max_cpu);
  std::string wall_line = wall_text, cpu_line = cpu_text;
  std::thread([=] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      double wall =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_started).count();
      if (max_seconds > 0 && wall > max_seconds + backstop_grace)
        end_from_backstop(wall_line.c_str());
      if (max_cpu > 0 && cpu_seconds() - cpu_started > max_cpu + backstop_grace)
        end_from_backstop(cpu_line.c_str());
    }
  }).detach();
}

void watchdog_fired(void* context) {
  auto* budget = static_cast<Budget*>(context);
  char text[160];
  std::snprintf(text, sizeof text,
                "the sandbox stopped the recipe: it ran longer than %g s (--max-time SECONDS)",
                budget->max_seconds);
  stop_run(*budget, text);
}

// --- memory held outside Lua ------------------------------------------------------------------

}  // namespace

void* memory_account(lua_State* L) {
  Budget* budget = budget_of(L);
  return budget != nullptr && budget->active ? budget : nullptr;
}

void charge_memory(void* account, std::size_t bytes) {
  auto* budget = static_cast<Budget*>(account);
  if (budget == nullptr) return;
  budget->used += bytes;
  if (budget->memory_limit != 0 && budget->used > budget->memory_limit && !budget->stopped) {
    try {
      stop_run(*budget, memory_stop_reason(*budget));
    } catch (const std::exception&) {
      budget->stopped = true;  // the reason stays empty; the stop itself must not be lost
    }
  }
}

void raise_if_stopped(lua_State* L) {
  Budget* budget = budget_of(L);
  if (budget != nullptr && budget->active && budget->stopped) raise_stop(L, *budget);
}

void credit_memory(void* account, std::size_t bytes) {
  auto* budget = static_cast<Budget*>(account);
  if (budget != nullptr) budget->used -= std::min(bytes, budget->used);
}

namespace {

// --- destinations ----------------------------------------------------------------------------

std::string canonical(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  while (!name.empty() && name.back() == '.')
    name.pop_back();
  return name;
}

// Where a sandboxed run may connect: the names it was given (their MX hosts and CNAME targets
// join as the resolver answers for them), the addresses those names resolved to, addresses
// given as such, and the ports allowed. Shared by the guard (on the loop) and the resolver's
// watch (on the loop too).
struct Destinations {
  std::set<std::string> names;
  std::set<asio::ip::address> addresses;
  std::set<std::uint16_t> ports;  // for every allowed address
  // A port given with one host (HOST:PORT) is that host's only: its name's, then the
  // addresses the name resolves to.
  std::map<std::string, std::set<std::uint16_t>> name_ports;
  std::map<asio::ip::address, std::set<std::uint16_t>> address_ports;
  bool any_address = false;
  std::size_t max_total = 0;  // 0: no limit
  mutable std::size_t total = 0;
  std::size_t max_open = 0;  // connections open at once; 0: no limit
  std::size_t open = 0;      // leases held by open connections (net::Admission::lease)
  Budget* budget = nullptr;
};

void learn_from_answer(void* context, const dns::Query& query) {
  auto& destinations = *static_cast<Destinations*>(context);
  const dns::Result& result = query.result();
  if (result.status != dns::Status::ok) return;
  std::string name = canonical(query.name());
  if (destinations.names.count(name) == 0) return;
  try {
    auto own_ports = destinations.name_ports.find(name);
    std::set<std::uint16_t> ports;
    if (own_ports != destinations.name_ports.end()) ports = own_ports->second;
    for (const dns::Record& alias : result.aliases) {
      if (alias.fields.empty()) continue;
      std::string target = canonical(alias.fields.back());
      destinations.names.insert(target);
      if (!ports.empty()) destinations.name_ports[target].insert(ports.begin(), ports.end());
    }
    for (const dns::Record& record : result.records) {
      if (record.fields.empty()) continue;
      if (query.qtype() == 1 || query.qtype() == 28) {  // A, AAAA
        std::error_code ec;
        auto address = asio::ip::make_address(record.fields.front(), ec);
        if (ec) continue;
        destinations.addresses.insert(address);
        if (!ports.empty()) destinations.address_ports[address].insert(ports.begin(), ports.end());
      } else if (query.qtype() == 15) {  // MX: its hosts may be reached (on the domain's port)
        std::string host = canonical(record.fields.back());
        destinations.names.insert(host);
        if (!ports.empty()) destinations.name_ports[host].insert(ports.begin(), ports.end());
      }
    }
  } catch (const std::exception&) {
    // Out of memory: the name stays unreachable, which is the safe side.
  }
}

std::string endpoint_text(const asio::ip::tcp::endpoint& endpoint) {
  std::string address = endpoint.address().to_string();
  if (endpoint.address().is_v6()) address = "[" + address + "]";
  return address + ":" + std::to_string(endpoint.port());
}

class Guard : public net::ConnectHook {
 public:
  Guard(std::shared_ptr<Destinations> destinations, std::shared_ptr<const net::ConnectHook> next)
      : destinations_(std::move(destinations)), next_(std::move(next)) {}

  Verdict before_connect(asio::ip::tcp::endpoint& endpoint,
                         net::Admission& admission) const override {
    Destinations& d = *destinations_;
    std::string refused;
    try {
      if (d.budget->stopped) return Verdict::refuse;
      auto own_ports = d.address_ports.find(endpoint.address());
      bool port_allowed =
          d.ports.count(endpoint.port()) != 0 ||
          (own_ports != d.address_ports.end() && own_ports->second.count(endpoint.port()) != 0);
      // The address first: of a host it may not reach at all, the port says nothing.
      if (!d.any_address && d.addresses.count(endpoint.address()) == 0) {
        refused = "the sandbox stopped the recipe: it tried to connect to " +
                  endpoint_text(endpoint) +
                  ", which is none of the hosts it was given, their MX hosts or their "
                  "addresses (--allow HOST)";
      } else if (!port_allowed) {
        refused = "the sandbox stopped the recipe: it tried to connect to " +
                  endpoint_text(endpoint) + ", a port it may not use (--allow-port PORT)";
      } else if (d.max_total != 0 && ++d.total > d.max_total) {
        refused = "the sandbox stopped the recipe: it opened more than " +
                  std::to_string(d.max_total) + " connections (--max-connections N)";
      } else if (d.max_open != 0 && d.open >= d.max_open) {
        refused = "the sandbox stopped the recipe: it had more than " + std::to_string(d.max_open) +
                  " connections open at once (--max-open N)";
      } else {
        // Counted open until the connection closes (or its connect fails).
        ++d.open;
        admission.lease = std::shared_ptr<void>(destinations_.get(),
                                                [keep = destinations_](void*) { --keep->open; });
      }
    } catch (const std::exception&) {
      refused = "the sandbox stopped the recipe: out of memory";
    }
    if (!refused.empty()) {
      stop_run(*d.budget, std::move(refused));
      return Verdict::refuse;
    }
    return next_ ? next_->before_connect(endpoint, admission) : Verdict::go;
  }

 private:
  std::shared_ptr<Destinations> destinations_;
  std::shared_ptr<const net::ConnectHook> next_;
};

// --- the module -------------------------------------------------------------------------------

Budget& check_budget(lua_State* L) {
  Budget* budget = budget_of(L);
  if (budget == nullptr) {
    luaL_error(L, "sandboxcore: this Lua state cannot be sandboxed");
    std::abort();  // not reached: luaL_error does not return
  }
  return *budget;
}

double number_field(lua_State* L, int table, const char* name) {
  lua_getfield(L, table, name);
  double value = luaL_optnumber(L, -1, 0);
  lua_pop(L, 1);
  if (value < 0 || value != value) luaL_error(L, "sandboxcore.start: %s must be 0 or more", name);
  return value;
}

// sandboxcore.start{memory = BYTES, instructions = N, cpu = SECONDS, seconds = SECONDS,
//   tasks = N, connections = N, open_connections = N, ports = {25, ...}, names = {...}, addresses =
//   {...}, any_address = bool}: the limits from now on (0 or absent: none).
int sandbox_start(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  Budget& budget = check_budget(L);
  if (budget.active) return luaL_error(L, "sandboxcore.start: the sandbox is set already");
  auto destinations = std::make_shared<Destinations>();
  destinations->budget = &budget;
  destinations->any_address = (lua_getfield(L, 1, "any_address"), lua_toboolean(L, -1) != 0);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "ports") == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_geti(L, -1, i) != LUA_TNIL; ++i) {
      lua_Integer port = luaL_checkinteger(L, -1);
      if (port < 1 || port > 65535) return luaL_error(L, "sandboxcore.start: a bad port");
      destinations->ports.insert(static_cast<std::uint16_t>(port));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "names") == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_geti(L, -1, i) != LUA_TNIL; ++i) {
      destinations->names.insert(canonical(luaL_checkstring(L, -1)));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "addresses") == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_geti(L, -1, i) != LUA_TNIL; ++i) {
      std::error_code ec;
      auto address = asio::ip::make_address(luaL_checkstring(L, -1), ec);
      if (ec) return luaL_error(L, "sandboxcore.start: %s is no address", lua_tostring(L, -1));
      destinations->addresses.insert(address);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  destinations->max_total = static_cast<std::size_t>(number_field(L, 1, "connections"));
  destinations->max_open = static_cast<std::size_t>(number_field(L, 1, "open_connections"));
  // Names the hosts file lists (localhost) resolve without a DNS answer to learn from.
  for (const std::string& name : destinations->names)
    for (const auto& address : resolver_of(L).hosts().lookup(name))
      destinations->addresses.insert(address);

  budget.memory_limit = static_cast<std::size_t>(number_field(L, 1, "memory"));
  budget.max_instructions = static_cast<lua_Integer>(number_field(L, 1, "instructions"));
  budget.max_cpu = number_field(L, 1, "cpu");
  budget.max_seconds = number_field(L, 1, "seconds");
  budget.max_tasks = static_cast<std::size_t>(number_field(L, 1, "tasks"));
  budget.cpu_started = cpu_seconds();
  budget.wall_started = std::chrono::steady_clock::now();
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  budget.main = lua_tothread(L, -1);
  lua_pop(L, 1);
  budget.destinations = destinations;

  const std::shared_ptr<const net::ConnectHook>* previous = connect_hook_of(L);
  set_connect_hook(L, std::make_shared<Guard>(destinations, previous ? *previous : nullptr));
  set_dns_watch(L, learn_from_answer, destinations.get());
  Scheduler& scheduler = Scheduler::get(L);
  scheduler.set_task_limit(budget.max_tasks);
  if (budget.max_seconds > 0)
    scheduler.arm_watchdog(std::chrono::duration_cast<engine::Duration>(
                               std::chrono::duration<double>(budget.max_seconds)),
                           watchdog_fired, &budget);
  start_backstop(budget);
  // Threads made from now on copy the hook of the thread that makes them: the main thread's
  // and this one's cover every task and coroutine the run will have.
  lua_sethook(budget.main, count_hook, LUA_MASKCOUNT, hook_every);
  lua_sethook(L, count_hook, LUA_MASKCOUNT, hook_every);
  // The scheduler formats errors on a thread of its own (a __tostring of the code's runs there).
  if (lua_State* aux = scheduler.aux_thread())
    lua_sethook(aux, count_hook, LUA_MASKCOUNT, hook_every);
  budget.active = true;
  return 0;
}

// sandboxcore.stopped() -> the reason the run stopped | nil
int sandbox_stopped(lua_State* L) {
  Budget* budget = budget_of(L);
  if (budget == nullptr || !budget->stopped) return 0;
  lua_pushstring(L, budget->reason.c_str());
  return 1;
}

// sandboxcore.stop(reason): stops the run (a rule of stdlib/sandbox.lua was broken) and
// raises the reason.
int sandbox_stop(lua_State* L) {
  Budget& budget = check_budget(L);
  stop_run(budget, luaL_checkstring(L, 1));
  raise_stop(L, budget);
}

// After the chunk: a run the sandbox stopped ends the process here, in C, with its one line
// (exit 3): no Lua code may run after it, as the stopped budget raises in every instruction.
int after_run(lua_State* L, int status, lua_KContext) {
  Budget* budget = budget_of(L);
  if (budget != nullptr && budget->stopped) {
    std::fflush(stdout);
    std::fprintf(stderr, "smtpsh: %s\n", budget->reason.c_str());
    std::fflush(stderr);
    std::exit(3);
  }
  lua_pushboolean(L, status == LUA_OK || status == LUA_YIELD);
  lua_insert(L, 1);
  return lua_gettop(L);
}

// sandboxcore.run(fn, ...) -> true, results... | false, error. Calls fn protected; when the
// sandbox stopped it, prints why on stderr and exits 3 instead of returning.
int sandbox_run(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int status = lua_pcallk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, 0, after_run);
  return after_run(L, status, 0);
}

// sandboxcore.memory() -> bytes the state holds now
int sandbox_memory(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(memory_in_use(L)));
  return 1;
}

// sandboxcore.allow(name [, port]): another name or address the run may reach (a parameter's
// host or domain), on the allowed ports and, when given, on `port` too (that host's only).
int sandbox_allow(lua_State* L) {
  Budget& budget = check_budget(L);
  if (!budget.destinations) return luaL_error(L, "sandboxcore.allow: the sandbox is not set");
  const char* text = luaL_checkstring(L, 1);
  lua_Integer port = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "a port from 1 to 65535");
  Destinations& d = *budget.destinations;
  auto allow_address = [&](const asio::ip::address& address) {
    d.addresses.insert(address);
    if (port != 0) d.address_ports[address].insert(static_cast<std::uint16_t>(port));
  };
  std::error_code ec;
  auto address = asio::ip::make_address(text, ec);
  if (!ec) {
    allow_address(address);
  } else {
    std::string name = canonical(text);
    d.names.insert(name);
    if (port != 0) d.name_ports[name].insert(static_cast<std::uint16_t>(port));
    for (const auto& listed : resolver_of(L).hosts().lookup(text))
      allow_address(listed);
  }
  return 0;
}

const luaL_Reg sandbox_functions[] = {
    {"start", sandbox_start},   {"stopped", sandbox_stopped}, {"stop", sandbox_stop},
    {"memory", sandbox_memory}, {"allow", sandbox_allow},     {"run", sandbox_run},
    {nullptr, nullptr},
};

}  // namespace

lua_State* new_state() {
  auto* budget = new (std::nothrow) Budget();
  if (budget == nullptr) return nullptr;
  lua_State* L = lua_newstate(budget_alloc, budget);
  if (L == nullptr) {
    delete budget;
    return nullptr;
  }
  lua_atpanic(L, [](lua_State* P) -> int {
    std::fprintf(stderr, "smtpsh: Lua panic: %s\n", lua_tostring(P, -1));
    return 0;
  });
  return L;
}

void close_state(lua_State* L) {
  Budget* budget = budget_of(L);
  lua_close(L);
  delete budget;
}

std::size_t memory_in_use(lua_State* L) {
  Budget* budget = budget_of(L);
  return budget != nullptr ? budget->used : 0;
}

void check_task_limit(lua_State* L, std::size_t live_tasks) {
  Budget* budget = budget_of(L);
  if (budget == nullptr || !budget->active || budget->max_tasks == 0) return;
  if (live_tasks < budget->max_tasks) return;
  stop_run(*budget, "the sandbox stopped the recipe: it tried to run more than " +
                        std::to_string(budget->max_tasks) + " tasks at once (--max-tasks N)");
  raise_stop(L, *budget);
}

void refuse_in_sandbox(lua_State* L, const char* what) {
  Budget* budget = budget_of(L);
  if (budget == nullptr || !budget->active) return;
  stop_run(*budget, std::string("the sandbox stopped the recipe: ") + what);
  raise_stop(L, *budget);
}

bool sandboxed(lua_State* L) {
  Budget* budget = budget_of(L);
  return budget != nullptr && budget->active;
}

const char* stop_reason(lua_State* L) {
  Budget* budget = budget_of(L);
  return budget != nullptr && budget->stopped ? budget->reason.c_str() : nullptr;
}

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_sandboxcore(lua_State* L) {
  luaL_newlib(L, smtpsh::lua::sandbox_functions);
  return 1;
}
