#pragma once
// Every binding module, registered in one place, and how Lua files are found.

#include "bindings/embedded.hpp"

#include <lua.hpp>

#include <span>
#include <string>
#include <vector>

extern "C" {
int luaopen_smtpsh_task(lua_State* L);
int luaopen_smtpsh_net(lua_State* L);
int luaopen_smtpsh_smtpcore(lua_State* L);
int luaopen_smtpsh_dnscore(lua_State* L);
int luaopen_smtpsh_dnsseccore(lua_State* L);
int luaopen_smtpsh_sys(lua_State* L);
int luaopen_smtpsh_servercore(lua_State* L);
int luaopen_smtpsh_recordcore(lua_State* L);
int luaopen_smtpsh_sandboxcore(lua_State* L);
}

namespace smtpsh::lua {

// Directories searched for user Lua files before the embedded copies: each entry of
// SMTPSH_PATH (colon separated), then $XDG_CONFIG_HOME/smtpsh (else ~/.config/smtpsh). A
// directory mirrors the repository: stdlib/NAME.lua, scripts/NAME.lua.
std::vector<std::string> user_search_dirs();

// Makes "smtpsh.task", "smtpsh.net" requirable, and "smtpsh.NAME" find stdlib/NAME.lua in
// `dirs`, then in the embedded stdlib. Stores `dirs` for find_lua_file.  [-0, +0, e]
void open_modules(lua_State* L, const std::vector<std::string>& dirs);

// Requires the modules the shell offers as globals (task, net).  [-0, +0, e]
void open_globals(lua_State* L);

// The shell's subcommands (scripts/*.lua), so that `smtpsh.embedded.load` can run one in
// the same state (`smtpsh replay -- diagnose ...`). Call before open_modules.
void set_script_files(std::span<const EmbeddedFile> scripts);

// Loads `relative` ("scripts/banner.lua") from the search directories, else from `embedded`.
// Pushes the compiled chunk and returns LUA_OK; pushes an error message and returns the load
// status on a syntax error; pushes nothing and returns LUA_ERRFILE when there is no such file.
int load_lua_file(lua_State* L, const char* relative, std::span<const EmbeddedFile> embedded);

// Names NAME of every DIR/<folder>/NAME.lua and embedded <folder>/NAME.lua, sorted, unique.
std::vector<std::string> list_lua_files(lua_State* L, const std::string& folder,
                                        std::span<const EmbeddedFile> embedded);

}  // namespace smtpsh::lua
