// smtpsh.recordcore: start and stop recording every DNS answer and SMTP transcript line of
// this Lua state to a JSON Lines file (replayed by `smtpsh replay`).
#include "bindings/record.hpp"

#include "bindings/modules.hpp"
#include "bindings/resolver_state.hpp"

#include <cstdio>
#include <new>
#include <string>
#include <vector>

namespace smtpsh::lua {

namespace {

constexpr const char* recorder_key = "smtpsh.recorder_of_state";
constexpr const char* recorder_metatable = "smtpsh.recorder";

struct LuaRecorder {
  record::Recorder recorder;
};

int recorder_gc(lua_State* L) {
  static_cast<LuaRecorder*>(lua_touserdata(L, 1))->~LuaRecorder();
  return 0;
}

LuaRecorder& recorder_object(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, recorder_key) == LUA_TUSERDATA) {
    auto* wrapper = static_cast<LuaRecorder*>(lua_touserdata(L, -1));
    lua_pop(L, 1);
    return *wrapper;
  }
  lua_pop(L, 1);
  auto* wrapper = static_cast<LuaRecorder*>(lua_newuserdatauv(L, sizeof(LuaRecorder), 0));
  new (wrapper) LuaRecorder{};
  if (luaL_newmetatable(L, recorder_metatable)) {
    lua_pushcfunction(L, recorder_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, recorder_key);
  return recorder_object(L);
}

bool open_recording(record::Recorder& recorder, const char* path, lua_State* L, int argv,
                    char* error, std::size_t size) {
  try {
    std::vector<std::string> words;
    if (argv > 0) {
      lua_Integer count = luaL_len(L, argv);
      for (lua_Integer i = 1; i <= count; ++i) {
        lua_geti(L, argv, i);
        if (const char* word = lua_tostring(L, -1)) words.emplace_back(word);
        lua_pop(L, 1);
      }
    }
    std::string problem;
    if (recorder.open(path, words, SMTPSH_VERSION, problem)) return true;
    std::snprintf(error, size, "%s", problem.c_str());
  } catch (const std::exception&) {
    std::snprintf(error, size, "out of memory");
  }
  return false;
}

// recordcore.start(path [, argv]) -> true | nil, message
int record_start(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  int argv = lua_istable(L, 2) ? 2 : 0;
  LuaRecorder& wrapper = recorder_object(L);
  dns::Resolver& resolver = resolver_of(L);
  char error[300];
  if (!open_recording(wrapper.recorder, path, L, argv, error, sizeof error)) {
    lua_pushnil(L);
    lua_pushstring(L, error);
    return 2;
  }
  (void)resolver;
  set_dns_recorder(L, &wrapper.recorder);
  lua_pushboolean(L, 1);
  return 1;
}

// recordcore.stop()
int record_stop(lua_State* L) {
  LuaRecorder& wrapper = recorder_object(L);
  wrapper.recorder.close();
  set_dns_recorder(L, nullptr);
  return 0;
}

// The strings of a list (a table), for the recording.
std::vector<std::string> string_list(lua_State* L, int index) {
  std::vector<std::string> words;
  if (!lua_istable(L, index)) return words;
  lua_Integer count = luaL_len(L, index);
  for (lua_Integer i = 1; i <= count; ++i) {
    lua_geti(L, index, i);
    std::size_t size = 0;
    if (const char* word = lua_tolstring(L, -1, &size)) words.emplace_back(word, size);
    lua_pop(L, 1);
  }
  return words;
}

// recordcore.recipe(file, source, args): the script that runs, whole, so that the recording
// replays without it. Nothing while not recording.
int record_recipe(lua_State* L) {
  std::size_t file_size = 0, source_size = 0;
  const char* file = luaL_checklstring(L, 1, &file_size);
  const char* source = luaL_checklstring(L, 2, &source_size);
  record::Recorder* recorder = recorder_of(L);
  if (!recorder) return 0;
  try {
    recorder->recipe({file, file_size}, {source, source_size}, string_list(L, 3));
  } catch (const std::exception&) {
    return luaL_error(L, "recordcore.recipe: out of memory");
  }
  return 0;
}

// recordcore.value(name, value): a generated value (a Date, a Message-Id) a replay must
// generate the same. Nothing while not recording.
int record_value(lua_State* L) {
  std::size_t name_size = 0, value_size = 0;
  const char* name = luaL_checklstring(L, 1, &name_size);
  const char* value = luaL_checklstring(L, 2, &value_size);
  if (record::Recorder* recorder = recorder_of(L)) {
    try {
      recorder->value({name, name_size}, {value, value_size});
    } catch (const std::exception&) {
      return luaL_error(L, "recordcore.value: out of memory");
    }
  }
  return 0;
}

int record_active(lua_State* L) {
  lua_pushboolean(L, recorder_of(L) != nullptr);
  return 1;
}

const luaL_Reg record_functions[] = {
    {"start", record_start},   {"stop", record_stop},   {"active", record_active},
    {"recipe", record_recipe}, {"value", record_value}, {nullptr, nullptr},
};

}  // namespace

record::Recorder* recorder_of(lua_State* L) {
  record::Recorder* found = nullptr;
  if (lua_getfield(L, LUA_REGISTRYINDEX, recorder_key) == LUA_TUSERDATA) {
    auto* wrapper = static_cast<LuaRecorder*>(lua_touserdata(L, -1));
    if (wrapper->recorder.is_open()) found = &wrapper->recorder;
  }
  lua_pop(L, 1);
  return found;
}

}  // namespace smtpsh::lua

extern "C" int luaopen_smtpsh_recordcore(lua_State* L) {
  luaL_newlib(L, smtpsh::lua::record_functions);
  return 1;
}
