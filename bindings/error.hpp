#pragma once
// Network failures as Lua values: `nil, err` where err is a table with `kind`, `stage`,
// `message` and, where the server said something, `reply`, readable through __tostring
// (ARCHITECTURE.md, "Conventions").

#include "engine/net/failure.hpp"

#include <lua.hpp>

namespace smtpsh::lua {

// Pushes an error object.  [-0, +1, m]
void push_error(lua_State* L, const char* kind, const char* stage, const char* message);
void push_error(lua_State* L, const net::Outcome& outcome, const char* stage);

// Registers the "smtpsh.error" metatable.  [-0, +0, m]
void register_error_metatable(lua_State* L);

}  // namespace smtpsh::lua
