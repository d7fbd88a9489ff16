#pragma once
// The one DNS resolver of a Lua state, shared by dns.*, net.connect and smtp.connect so a
// probe asks the same servers end to end. Created on first use from /etc/resolv.conf.

#include "engine/dns/resolver.hpp"
#include "engine/record/recorder.hpp"

#include <lua.hpp>

namespace smtpsh::lua {

// The state's resolver (kept alive by the registry).  [-0, +0, m]
dns::Resolver& resolver_of(lua_State* L);

// Every answer of the state's resolver goes to `recorder` too (nullptr: no more).  [-0, +0, m]
void set_dns_recorder(lua_State* L, record::Recorder* recorder);

// Every finished query of the state's resolver is shown to watch(context, query) too (the
// sandbox learns the addresses of the names it allows); nullptr: no more.  [-0, +0, m]
using DnsWatch = void (*)(void* context, const dns::Query& query);
void set_dns_watch(lua_State* L, DnsWatch watch, void* context);

}  // namespace smtpsh::lua
