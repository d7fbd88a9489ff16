#pragma once
// TLS options from Lua tables and TLS results as Lua tables, for the SMTP bindings
// (s:starttls, smtp.connect with tls = "implicit").

#include "engine/tls/info.hpp"
#include "engine/tls/options.hpp"

#include <lua.hpp>

namespace smtpsh::lua {

// Reads {min=, max=, ciphers=, ciphersuites=, sni=, verify=, ca_file=, tlsa=, dnssec=} at
// `table` into a new userdata (so no C++ object outlives a Lua error), pushed on the stack.
// Raises an error naming the bad field.  [-0, +1, v]
tls::Options& check_tls_options(lua_State* L, int table, const char* signature);

// Reads the server side's {cert=, key= | self_signed = NAME, min=, max=, ciphers=} at `table`
// into a new userdata, pushed on the stack. Raises an error naming the bad field.  [-0, +1, v]
tls::ServerOptions& check_server_tls_options(lua_State* L, int table, const char* signature);

// [-0, +1, m]
void push_tls_info(lua_State* L, const tls::Info& info);

// The reverse of push_tls_info: a table of that shape (a recording's TLS result) at `table`
// into `info`. Fields that are absent or of another type stay empty; a chain that is not a
// list of tables is refused. Returns what is wrong, or nullptr.  [-0, +0, e]
const char* read_tls_info(lua_State* L, int table, tls::Info& info);

}  // namespace smtpsh::lua
