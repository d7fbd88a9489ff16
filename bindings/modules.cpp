#include "bindings/modules.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace smtpsh::lua {

namespace {

constexpr const char* dirs_key = "smtpsh.search_dirs";
std::span<const EmbeddedFile> script_files;

// [-0, +1, e] Loads DIR/relative for the first search directory that has it.
int load_from_dirs(lua_State* L, const char* relative) {
  lua_getfield(L, LUA_REGISTRYINDEX, dirs_key);
  int dirs = lua_gettop(L);
  if (!lua_istable(L, dirs)) {
    lua_pop(L, 1);
    return LUA_ERRFILE;
  }
  lua_Integer count = luaL_len(L, dirs);
  for (lua_Integer i = 1; i <= count; ++i) {
    lua_geti(L, dirs, i);
    const char* path = lua_pushfstring(L, "%s/%s", lua_tostring(L, -1), relative);
    lua_remove(L, -2);
    int status = luaL_loadfilex(L, path, "t");
    lua_remove(L, -2);  // the path
    if (status == LUA_ERRFILE && lua_type(L, -1) == LUA_TSTRING &&
        std::strstr(lua_tostring(L, -1), "cannot open") != nullptr) {
      lua_pop(L, 1);  // not in this directory
      continue;
    }
    lua_remove(L, dirs);
    return status;
  }
  lua_pop(L, 1);
  return LUA_ERRFILE;
}

// package.searchers entry for "smtpsh.NAME": stdlib/NAME.lua ("smtpsh.a.b" → stdlib/a/b.lua).
int search_stdlib(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  if (std::strncmp(name, "smtpsh.", 7) != 0) {
    lua_pushfstring(L, "no smtpsh module '%s'", name);
    return 1;
  }
  luaL_gsub(L, name + 7, ".", "/");
  const char* relative = lua_pushfstring(L, "stdlib/%s.lua", lua_tostring(L, -1));
  int status = load_lua_file(L, relative, embedded_stdlib());
  if (status == LUA_ERRFILE) {
    lua_pushfstring(L, "no file '%s' in SMTPSH_PATH, ~/.config/smtpsh or the embedded stdlib",
                    relative);
    return 1;
  }
  if (status != LUA_OK) return lua_error(L);
  lua_pushstring(L, relative);
  return 2;
}

// embedded.load("examples/servers/greylist.lua") -> chunk | nil, message: a file of the
// search path or the binary, for scenarios and other files that are not modules.
int embedded_load(lua_State* L) {
  const char* relative = luaL_checkstring(L, 1);
  int status = load_lua_file(L, relative, embedded_stdlib());
  if (status == LUA_ERRFILE) status = load_lua_file(L, relative, script_files);
  if (status == LUA_OK) return 1;
  lua_pushnil(L);
  if (status == LUA_ERRFILE)
    lua_pushfstring(L, "no file '%s' in SMTPSH_PATH, ~/.config/smtpsh or the binary", relative);
  else
    lua_insert(L, -2);  // the syntax error message
  return 2;
}

int open_embedded(lua_State* L) {
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, embedded_load);
  lua_setfield(L, -2, "load");
  return 1;
}

void add_preload(lua_State* L, const char* name, lua_CFunction open) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

}  // namespace

void set_script_files(std::span<const EmbeddedFile> scripts) {
  script_files = scripts;
}

std::vector<std::string> user_search_dirs() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("SMTPSH_PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      auto entry = rest.substr(0, colon);
      if (!entry.empty()) dirs.emplace_back(entry);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  if (const char* config = std::getenv("XDG_CONFIG_HOME"); config && *config)
    dirs.push_back(std::string(config) + "/smtpsh");
  else if (const char* home = std::getenv("HOME"); home && *home)
    dirs.push_back(std::string(home) + "/.config/smtpsh");
  return dirs;
}

void open_modules(lua_State* L, const std::vector<std::string>& dirs) {
  lua_createtable(L, static_cast<int>(dirs.size()), 0);
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    lua_pushlstring(L, dirs[i].data(), dirs[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, dirs_key);

  add_preload(L, "smtpsh.task", luaopen_smtpsh_task);
  add_preload(L, "smtpsh.net", luaopen_smtpsh_net);
  add_preload(L, "smtpsh.smtpcore", luaopen_smtpsh_smtpcore);
  add_preload(L, "smtpsh.dnscore", luaopen_smtpsh_dnscore);
  add_preload(L, "smtpsh.dnsseccore", luaopen_smtpsh_dnsseccore);
  add_preload(L, "smtpsh.sys", luaopen_smtpsh_sys);
  add_preload(L, "smtpsh.servercore", luaopen_smtpsh_servercore);
  add_preload(L, "smtpsh.embedded", open_embedded);
  add_preload(L, "smtpsh.recordcore", luaopen_smtpsh_recordcore);
  add_preload(L, "smtpsh.sandboxcore", luaopen_smtpsh_sandboxcore);

  // Our searcher goes right after the preload one, before package.path.
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_Integer count = luaL_len(L, -1);
  for (lua_Integer i = count; i >= 2; --i) {
    lua_geti(L, -1, i);
    lua_seti(L, -2, i + 1);
  }
  lua_pushcfunction(L, search_stdlib);
  lua_seti(L, -2, 2);
  lua_pop(L, 2);
}

namespace {
// The globals the shell offers, each `require "smtpsh.NAME"`d on first use: start-up then pays
// for none of them, and a script that never speaks SMTP never compiles stdlib/smtp.lua.
constexpr const char* lazy_globals[] = {"task", "net", "smtp", "dns", "server"};

int index_lazy_global(lua_State* L) {
  const char* key = lua_tostring(L, 2);
  if (!key) return 0;
  for (const char* name : lazy_globals) {
    if (std::strcmp(key, name) != 0) continue;
    lua_getglobal(L, "require");
    lua_pushfstring(L, "smtpsh.%s", name);
    lua_call(L, 1, 1);
    lua_pushstring(L, name);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);  // a plain global from now on
    return 1;
  }
  return 0;
}
}  // namespace

void open_globals(lua_State* L) {
  lua_pushglobaltable(L);
  if (lua_getmetatable(L, -1)) {
    // Someone else owns _G's metatable: load the modules now instead.
    lua_pop(L, 2);
    for (const char* name : lazy_globals) {
      lua_getglobal(L, "require");
      lua_pushfstring(L, "smtpsh.%s", name);
      lua_call(L, 1, 1);
      lua_setglobal(L, name);
    }
    return;
  }
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, index_lazy_global);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

int load_lua_file(lua_State* L, const char* relative, std::span<const EmbeddedFile> embedded) {
  int status = load_from_dirs(L, relative);
  if (status != LUA_ERRFILE) return status;
  for (const EmbeddedFile& file : embedded) {
    if (file.path != relative) continue;
    lua_pushfstring(L, "@embedded:%s", relative);
    status = luaL_loadbufferx(L, file.source.data(), file.source.size(), lua_tostring(L, -1), "t");
    lua_remove(L, -2);
    return status;
  }
  return LUA_ERRFILE;
}

std::vector<std::string> list_lua_files(lua_State* L, const std::string& folder,
                                        std::span<const EmbeddedFile> embedded) {
  std::vector<std::string> names;
  lua_getfield(L, LUA_REGISTRYINDEX, dirs_key);
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1; i <= luaL_len(L, -1); ++i) {
      lua_geti(L, -1, i);
      std::error_code ec;
      std::filesystem::directory_iterator it(std::filesystem::path(lua_tostring(L, -1)) / folder,
                                             ec);
      lua_pop(L, 1);
      for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        const auto& path = it->path();
        if (path.extension() == ".lua") names.push_back(path.stem().string());
      }
    }
  }
  lua_pop(L, 1);
  std::string prefix = folder + "/";
  for (const EmbeddedFile& file : embedded) {
    if (file.path.substr(0, prefix.size()) != prefix) continue;
    auto name = file.path.substr(prefix.size());
    if (name.size() > 4 && name.substr(name.size() - 4) == ".lua")
      names.emplace_back(name.substr(0, name.size() - 4));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace smtpsh::lua
