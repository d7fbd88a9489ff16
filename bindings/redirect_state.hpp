#pragma once
// Where this Lua state's connects go instead (set by `smtpsh replay`), for net.connect and
// smtp.connect. Empty unless a replay set it.

#include "engine/net/connection.hpp"

#include <lua.hpp>

#include <memory>

namespace smtpsh::lua {

// The state's redirect map, or nullptr.  [-0, +0, -]
const std::shared_ptr<const net::RedirectMap>* redirect_of(lua_State* L);

}  // namespace smtpsh::lua
