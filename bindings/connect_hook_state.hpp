#pragma once
// The connect hook of a Lua state (net::ConnectHook), handed to every net.connect and
// smtp.connect. None unless one was installed: servercore.redirect installs the replay's
// redirect map (engine/server/redirect_map.hpp).

#include "engine/net/connect_hook.hpp"

#include <lua.hpp>

#include <memory>

namespace smtpsh::lua {

// The state's connect hook, or nullptr.  [-0, +0, -]
const std::shared_ptr<const net::ConnectHook>* connect_hook_of(lua_State* L);

// Makes `hook` the state's connect hook (the sandbox's guard, which passes what it allows on
// to the hook it replaced).  [-0, +0, m]
void set_connect_hook(lua_State* L, std::shared_ptr<const net::ConnectHook> hook);

}  // namespace smtpsh::lua
