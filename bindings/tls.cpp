// TLS options and results between Lua and engine/tls.
#include "bindings/tls.hpp"

#include "bindings/sandbox.hpp"

#include <cstring>
#include <new>
#include <string>

namespace smtpsh::lua {

namespace {

constexpr const char* options_metatable = "smtpsh.tls_options";

constexpr const char* server_options_metatable = "smtpsh.tls_server_options";

struct LuaTlsOptions {
  tls::Options options;
};

struct LuaServerOptions {
  tls::ServerOptions options;
};

int options_gc(lua_State* L) {
  static_cast<LuaTlsOptions*>(luaL_checkudata(L, 1, options_metatable))->~LuaTlsOptions();
  return 0;
}

int server_options_gc(lua_State* L) {
  static_cast<LuaServerOptions*>(luaL_checkudata(L, 1, server_options_metatable))
      ->~LuaServerOptions();
  return 0;
}

// Copies a string field into `out`; false when it is there but not a string.
bool string_field(lua_State* L, int table, const char* key, std::string& out, bool& ok) {
  int type = lua_getfield(L, table, key);
  bool present = type != LUA_TNIL;
  if (present && type != LUA_TSTRING) ok = false;
  if (present && ok) {
    std::size_t size = 0;
    const char* text = lua_tolstring(L, -1, &size);
    try {
      out.assign(text, size);
    } catch (const std::exception&) {
      ok = false;
    }
  }
  lua_pop(L, 1);
  return present;
}

tls::Version version_field(lua_State* L, int table, const char* key, const char* signature) {
  if (lua_getfield(L, table, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return tls::Version::any;
  }
  const char* name = lua_tostring(L, -1);
  auto version = name ? tls::parse_version(name) : std::nullopt;
  if (!version)
    luaL_error(L, "%s: %s must be \"tls1\", \"tls1.1\", \"tls1.2\" or \"tls1.3\", got %s",
               signature, key, name ? name : luaL_typename(L, -1));
  lua_pop(L, 1);
  return *version;
}

void set_string(lua_State* L, const char* key, const std::string& value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, key);
}

void set_bool(lua_State* L, const char* key, bool value) {
  lua_pushboolean(L, value);
  lua_setfield(L, -2, key);
}

void push_certificate(lua_State* L, const tls::Certificate& cert) {
  lua_createtable(L, 0, 10);
  set_string(L, "subject", cert.subject);
  set_string(L, "issuer", cert.issuer);
  lua_createtable(L, static_cast<int>(cert.names.size()), 0);
  for (std::size_t i = 0; i < cert.names.size(); ++i) {
    lua_pushlstring(L, cert.names[i].data(), cert.names[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  lua_setfield(L, -2, "names");
  set_string(L, "not_before", cert.not_before);
  set_string(L, "not_after", cert.not_after);
  lua_pushinteger(L, cert.days_left);
  lua_setfield(L, -2, "days_left");
  set_string(L, "sha256", cert.sha256);
  set_string(L, "spki_sha256", cert.spki_sha256);
  set_string(L, "key", cert.key);
  set_string(L, "serial", cert.serial);
}

// Adds the TLSA record at the top of the stack (a table as dns.tlsa returns it); returns what is
// wrong with it, or nullptr. Raises nothing, so the record under construction is always freed.
const char* add_tlsa(lua_State* L, tls::Options& options) {
  if (!lua_istable(L, -1)) return "must be a TLSA record (a table)";
  lua_getfield(L, -1, "usage");
  lua_getfield(L, -2, "selector");
  lua_getfield(L, -3, "matching_type");
  lua_getfield(L, -4, "data");
  std::size_t size = 0;
  const char* hex = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &size) : nullptr;
  bool numbers = lua_isinteger(L, -4) && lua_isinteger(L, -3) && lua_isinteger(L, -2);
  const char* problem = nullptr;
  if (!hex || !numbers)
    problem = "needs usage, selector, matching_type and data";
  else if (size % 2 != 0)
    problem = "data must be hex digits";
  if (!problem) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    try {
      tls::Tlsa record;
      record.usage = static_cast<std::uint8_t>(lua_tointeger(L, -4));
      record.selector = static_cast<std::uint8_t>(lua_tointeger(L, -3));
      record.matching_type = static_cast<std::uint8_t>(lua_tointeger(L, -2));
      for (std::size_t j = 0; j + 1 < size && !problem; j += 2) {
        int high = nibble(hex[j]), low = nibble(hex[j + 1]);
        if (high < 0 || low < 0) problem = "data must be hex digits";
        record.data.push_back(static_cast<char>((high << 4) | (low & 15)));
      }
      if (!problem) options.tlsa.push_back(std::move(record));
    } catch (const std::exception&) {
      problem = "does not fit in memory";
    }
  }
  lua_pop(L, 4);
  return problem;
}

}  // namespace

tls::Options& check_tls_options(lua_State* L, int table, const char* signature) {
  table = lua_absindex(L, table);
  auto* wrapper = static_cast<LuaTlsOptions*>(lua_newuserdatauv(L, sizeof(LuaTlsOptions), 0));
  new (wrapper) LuaTlsOptions{};
  if (luaL_newmetatable(L, options_metatable)) {
    lua_pushcfunction(L, options_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (lua_isnoneornil(L, table)) return wrapper->options;
  luaL_checktype(L, table, LUA_TTABLE);
  tls::Options& options = wrapper->options;
  options.min = version_field(L, table, "min", signature);
  options.max = version_field(L, table, "max", signature);
  bool ok = true;
  for (auto [key, field] :
       {std::pair{"ciphers", &options.ciphers}, std::pair{"ciphersuites", &options.ciphersuites},
        std::pair{"sni", &options.sni}, std::pair{"ca_file", &options.ca_file},
        std::pair{"ca_path", &options.ca_path}}) {
    string_field(L, table, key, *field, ok);
    if (!ok) luaL_error(L, "%s: %s must be a string", signature, key);
  }
  if (!options.ca_file.empty() || !options.ca_path.empty())
    refuse_in_sandbox(L, "it named a file for TLS (ca_file, ca_path): the sandbox reads no files");
  if (lua_getfield(L, table, "verify") != LUA_TNIL) {
    const char* verify = lua_tostring(L, -1);
    if (verify && std::strcmp(verify, "none") == 0)
      options.verify = tls::Verify::none;
    else if (verify && std::strcmp(verify, "peer") == 0)
      options.verify = tls::Verify::peer;
    else if (verify && std::strcmp(verify, "dane") == 0)
      options.verify = tls::Verify::dane;
    else
      luaL_error(L, "%s: verify must be \"none\", \"peer\" or \"dane\"", signature);
  }
  lua_pop(L, 1);
  lua_getfield(L, table, "dnssec");
  options.dnssec = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, table, "tlsa") == LUA_TTABLE) {
    int records = lua_gettop(L);
    lua_Integer count = luaL_len(L, records);
    for (lua_Integer i = 1; i <= count; ++i) {
      lua_geti(L, records, i);
      const char* problem = add_tlsa(L, options);
      lua_pop(L, 1);
      if (problem) luaL_error(L, "%s: tlsa[%d] %s", signature, (int)i, problem);
    }
  }
  lua_pop(L, 1);
  if (options.verify == tls::Verify::dane && options.tlsa.empty())
    luaL_error(L, "%s: verify = \"dane\" needs TLSA records (tlsa = dns.tlsa(host, port))",
               signature);
  return options;
}

tls::ServerOptions& check_server_tls_options(lua_State* L, int table, const char* signature) {
  table = lua_absindex(L, table);
  luaL_checktype(L, table, LUA_TTABLE);
  auto* wrapper = static_cast<LuaServerOptions*>(lua_newuserdatauv(L, sizeof(LuaServerOptions), 0));
  new (wrapper) LuaServerOptions{};
  if (luaL_newmetatable(L, server_options_metatable)) {
    lua_pushcfunction(L, server_options_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  tls::ServerOptions& options = wrapper->options;
  options.min = version_field(L, table, "min", signature);
  options.max = version_field(L, table, "max", signature);
  bool ok = true;
  for (auto [key, field] :
       {std::pair{"cert", &options.cert_file}, std::pair{"key", &options.key_file},
        std::pair{"self_signed", &options.self_signed}, std::pair{"ciphers", &options.ciphers}}) {
    string_field(L, table, key, *field, ok);
    if (!ok) luaL_error(L, "%s: %s must be a string", signature, key);
  }
  if (!options.cert_file.empty() || !options.key_file.empty())
    refuse_in_sandbox(L,
                      "it named a certificate or key file (cert, key): the sandbox reads no files");
  return options;
}

void push_tls_info(lua_State* L, const tls::Info& info) {
  lua_createtable(L, 0, 16);
  set_string(L, "version", info.version);
  set_string(L, "cipher", info.cipher);
  if (!info.group.empty()) set_string(L, "group", info.group);
  lua_createtable(L, static_cast<int>(info.chain.size()), 0);
  for (std::size_t i = 0; i < info.chain.size(); ++i) {
    push_certificate(L, info.chain[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  lua_setfield(L, -2, "chain");
  set_bool(L, "verified", info.verified);
  set_string(L, "verify_result", info.verify_result);
  lua_pushinteger(L, info.verify_code);
  lua_setfield(L, -2, "verify_code");
  if (info.name_checked) {
    set_string(L, "name", info.checked_name);
    set_bool(L, "name_matches", info.name_matches);
  }
  if (info.dane) {
    lua_createtable(L, 0, 4);
    set_bool(L, "matched", info.dane_matched);
    set_bool(L, "dnssec", info.dnssec);
    if (info.dane_matched) {
      lua_pushinteger(L, info.dane_depth);
      lua_setfield(L, -2, "depth");
      set_string(L, "record", info.dane_record);
    }
    lua_setfield(L, -2, "dane");
  }
}

namespace {

// The field `key` of the table at the top, as these values; absent or another type: as they were.
void read_string(lua_State* L, const char* key, std::string& out) {
  if (lua_getfield(L, -1, key) == LUA_TSTRING) {
    std::size_t size = 0;
    const char* text = lua_tolstring(L, -1, &size);
    out.assign(text, size);
  }
  lua_pop(L, 1);
}

void read_bool(lua_State* L, const char* key, bool& out) {
  if (lua_getfield(L, -1, key) == LUA_TBOOLEAN) out = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
}

template <typename Integer>
void read_integer(lua_State* L, const char* key, Integer& out) {
  if (lua_getfield(L, -1, key) == LUA_TNUMBER && lua_isinteger(L, -1))
    out = static_cast<Integer>(lua_tointeger(L, -1));
  lua_pop(L, 1);
}

// The certificate table at the top of the stack.
void read_certificate(lua_State* L, tls::Certificate& cert) {
  read_string(L, "subject", cert.subject);
  read_string(L, "issuer", cert.issuer);
  if (lua_getfield(L, -1, "names") == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_geti(L, -1, i) == LUA_TSTRING; ++i) {
      cert.names.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  read_string(L, "not_before", cert.not_before);
  read_string(L, "not_after", cert.not_after);
  read_integer(L, "days_left", cert.days_left);
  read_string(L, "sha256", cert.sha256);
  read_string(L, "spki_sha256", cert.spki_sha256);
  read_string(L, "key", cert.key);
  read_string(L, "serial", cert.serial);
}

}  // namespace

const char* read_tls_info(lua_State* L, int table, tls::Info& info) {
  table = lua_absindex(L, table);
  if (!lua_istable(L, table)) return "a TLS result must be a table";
  lua_pushvalue(L, table);
  try {
    read_string(L, "version", info.version);
    read_string(L, "cipher", info.cipher);
    read_string(L, "group", info.group);
    if (lua_getfield(L, -1, "chain") == LUA_TTABLE) {
      for (lua_Integer i = 1;; ++i) {
        int type = lua_geti(L, -1, i);
        if (type == LUA_TNIL) {
          lua_pop(L, 1);
          break;
        }
        if (type != LUA_TTABLE) {
          lua_pop(L, 3);
          return "a TLS result's chain must be a list of certificates (tables)";
        }
        info.chain.emplace_back();
        read_certificate(L, info.chain.back());
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
    read_bool(L, "verified", info.verified);
    read_integer(L, "verify_code", info.verify_code);
    read_string(L, "verify_result", info.verify_result);
    if (lua_getfield(L, -1, "name") == LUA_TSTRING) {
      info.name_checked = true;
      info.checked_name = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    read_bool(L, "name_matches", info.name_matches);
    if (lua_getfield(L, -1, "dane") == LUA_TTABLE) {
      info.dane = true;
      read_bool(L, "matched", info.dane_matched);
      read_bool(L, "dnssec", info.dnssec);
      read_integer(L, "depth", info.dane_depth);
      read_string(L, "record", info.dane_record);
    }
    lua_pop(L, 1);
  } catch (const std::exception&) {
    lua_settop(L, table);
    return "out of memory";
  }
  lua_pop(L, 1);
  return nullptr;
}

}  // namespace smtpsh::lua
