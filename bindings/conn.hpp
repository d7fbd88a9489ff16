#pragma once
// net.conn objects for other bindings: the scenario server hands each accepted connection to
// Lua as the same object net.connect returns.

#include "engine/net/connection.hpp"

#include <lua.hpp>

#include <memory>

namespace smtpsh::lua {

// Pushes `connection` as a net.conn (the net module must be loaded).  [-0, +1, m]
void push_connection(lua_State* L, std::shared_ptr<net::Connection>* connection);

}  // namespace smtpsh::lua
