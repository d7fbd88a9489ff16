#pragma once
// What the fuzz targets for stdlib modules written in Lua share: a plain Lua 5.4 state (no
// engine) where `require "smtpsh.NAME"` loads stdlib/NAME.lua from the source tree
// (SMTPSH_SOURCE_DIR, compiled in), a memory limit, a fresh state every so often so that
// nothing grows from one input to the next, and coverage of the Lua code: liblua5.4 is not
// instrumented, so a line hook counts each step from one Lua line to the next in libFuzzer's
// extra counters, which guide it as the compiler's counters do for C++.
//
// A target gives a chunk that returns its check function; each input is passed to it as a
// string under lua_pcall. The check raises (a string) when an invariant is broken: the
// message and a traceback are printed and the run aborts, which libFuzzer reports as a
// crash (unless SMTPSH_FUZZ_IGNORE names it, tests/fuzz/expect.hpp). Running out of the
// memory limit is not a finding: the state is reopened.

#include "tests/fuzz/expect.hpp"

#include <lua.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_map>

#ifndef SMTPSH_SOURCE_DIR
#error "SMTPSH_SOURCE_DIR must name the source tree (-DSMTPSH_SOURCE_DIR=\"...\")"
#endif

namespace fuzz_lua {

// Read by libFuzzer as coverage, cleared by it before each input (Linux).
__attribute__((section("__libfuzzer_extra_counters"), used)) inline std::uint8_t lua_edges[1 << 16];

class Harness {
 public:
  // `name` names the target in messages and the check chunk in tracebacks.
  Harness(const char* check_chunk, const char* name)
      : chunk_(check_chunk), name_(name), chunk_name_(std::string("=") + name) {}
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;
  ~Harness() {
    if (L_) lua_close(L_);
  }

  // Opens the state and loads the check (from LLVMFuzzerInitialize: a broken module shows
  // at once); run() reopens it every so often.
  void start() { open(); }

  void run(std::string_view input) {
    if (!L_ || runs_ >= runs_per_state || budget_.used > grown_limit) open();
    ++runs_;
    previous_line_ = 0;
    lua_settop(L_, 0);
    lua_pushcfunction(L_, traceback);
    lua_rawgeti(L_, LUA_REGISTRYINDEX, check_);
    lua_pushlstring(L_, input.data(), input.size());
    int status = lua_pcall(L_, 1, 0, 1);
    if (status == LUA_OK) return;
    if (status == LUA_ERRMEM || budget_.refused) {
      // The limit, not a bug: start again with a fresh state.
      open();
      return;
    }
    const char* message = lua_tostring(L_, -1);
    if (!message) message = "(an error that is not a string)";
    if (fuzz::ignored(message)) return;
    std::fprintf(stderr, "%s: %s\n", name_, message);
    std::abort();
  }

 private:
  static constexpr std::size_t memory_limit = std::size_t{256} << 20;
  static constexpr std::size_t grown_limit = std::size_t{32} << 20;  // reopen past this
  static constexpr int runs_per_state = 2000;

  struct Budget {
    std::size_t used = 0;
    bool refused = false;
  };

  static void* allocate(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
    auto* budget = static_cast<Budget*>(ud);
    std::size_t old = ptr ? osize : 0;  // without ptr, osize is the kind of object
    if (nsize == 0) {
      std::free(ptr);
      budget->used -= old;
      return nullptr;
    }
    if (nsize > old && budget->used - old + nsize > memory_limit) {
      budget->refused = true;
      return nullptr;
    }
    void* block = std::realloc(ptr, nsize);
    if (block) budget->used = budget->used - old + nsize;
    return block;
  }

  // The line hook: (chunk, line) hashed, and the step from the previous one counted.
  static void count_line(lua_State* L, lua_Debug* ar) {
    if (!lua_getinfo(L, "S", ar)) return;
    auto [slot, added] = current_->chunks_.try_emplace(ar->source, 0u);
    if (added) {
      std::uint32_t hash = 2166136261u;  // FNV-1a of the chunk's name ("@path", "=name")
      for (const char* c = ar->source; *c; ++c)
        hash = (hash ^ static_cast<unsigned char>(*c)) * 16777619u;
      slot->second = hash;
    }
    std::uint32_t here = slot->second ^ (static_cast<std::uint32_t>(ar->currentline) * 2654435761u);
    std::uint8_t& counter = lua_edges[(here ^ current_->previous_line_) % sizeof lua_edges];
    if (counter != 255) ++counter;
    current_->previous_line_ = here >> 1;
  }

  static int traceback(lua_State* L) {
    const char* message = lua_tostring(L, 1);
    luaL_traceback(L, L, message ? message : "(an error that is not a string)", 1);
    return 1;
  }

  void open() {
    if (L_) lua_close(L_);
    budget_ = Budget{};
    runs_ = 0;
    L_ = lua_newstate(allocate, &budget_);
    if (!L_) fail("cannot create a Lua state");
    luaL_openlibs(L_);
    // require "smtpsh.NAME" -> SMTPSH_SOURCE_DIR/stdlib/NAME.lua, as the embedded copies are.
    static const char* searcher =
        "local dir = ...\n"
        "table.insert(package.searchers, 2, function(name)\n"
        "  local short = name:match('^smtpsh%.([%w_]+)$')\n"
        "  if not short then return nil end\n"
        "  local path = dir .. '/stdlib/' .. short .. '.lua'\n"
        "  local chunk, err = loadfile(path)\n"
        "  if not chunk then error(err, 0) end\n"
        "  return chunk, path\n"
        "end)\n";
    if (luaL_loadbuffer(L_, searcher, std::char_traits<char>::length(searcher), "=searcher") !=
        LUA_OK)
      fail(lua_tostring(L_, -1));
    lua_pushstring(L_, SMTPSH_SOURCE_DIR);
    if (lua_pcall(L_, 1, 0, 0) != LUA_OK) fail(lua_tostring(L_, -1));
    // The check chunk returns the function each input is given to.
    if (luaL_loadbuffer(L_, chunk_, std::char_traits<char>::length(chunk_), chunk_name_.c_str()) !=
        LUA_OK)
      fail(lua_tostring(L_, -1));
    if (lua_pcall(L_, 0, 1, 0) != LUA_OK) fail(lua_tostring(L_, -1));
    if (!lua_isfunction(L_, -1)) fail("the check chunk must return a function");
    check_ = luaL_ref(L_, LUA_REGISTRYINDEX);
    // Coverage from here on: the checks and the modules they call, not their loading.
    current_ = this;
    chunks_.clear();  // the names' addresses were the closed state's
    lua_sethook(L_, count_line, LUA_MASKLINE, 0);
  }

  [[noreturn]] void fail(const char* message) {
    std::fprintf(stderr, "%s: setting up the Lua state: %s\n", name_, message ? message : "?");
    std::exit(1);
  }

  const char* chunk_;
  const char* name_;
  std::string chunk_name_;
  lua_State* L_ = nullptr;
  int check_ = LUA_NOREF;
  int runs_ = 0;
  Budget budget_;
  std::unordered_map<const char*, std::uint32_t> chunks_;  // chunk name -> its hash
  std::uint32_t previous_line_ = 0;
  static inline Harness* current_ = nullptr;
};

}  // namespace fuzz_lua

// The libFuzzer entry points of a target that runs the Lua chunk CHECK (a string) on each
// input, under the name NAME: one line in each fuzz_*.cpp instead of the same two functions.
#define SMTPSH_LUA_FUZZ_TARGET(CHECK, NAME)                                           \
  namespace {                                                                         \
  fuzz_lua::Harness harness(CHECK, NAME);                                             \
  }                                                                                   \
  extern "C" int LLVMFuzzerInitialize(int*, char***) {                                \
    harness.start();                                                                  \
    return 0;                                                                         \
  }                                                                                   \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    harness.run(std::string_view(reinterpret_cast<const char*>(data), size));         \
    return 0;                                                                         \
  }
