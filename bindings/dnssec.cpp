// smtpsh.dnsseccore: the DNSSEC validation steps of engine/dns/dnssec.hpp for Lua. They are
// pure (answers in, findings out); stdlib/dnssec.lua asks the questions and walks the chain.
//
//   dnsseccore.anchor(text)                           -> {zone, records} | nil, problem
//   dnsseccore.rrset(wire, owner, type)               -> RR list (a string, "" when none)
//   dnsseccore.trust_keys(wire, zone, trust, now)     -> keys, matched | nil, reason, unsupported
//   dnsseccore.verify(wire, section, owner, type, zone, keys, now)
//       -> true, wildcard_labels | false, reason, missing, unsupported
//   dnsseccore.denial(wire, qname, qtype, rcode, zone, keys, now [, wildcard_labels])
//       -> proof ("nxdomain"|"nodata"|"delegation"|"opt_out"|"wildcard"|"none"), reason
//   dnsseccore.signer(wire, section, owner, type)     -> zone | nil
//
// `wire` is a DNS answer's bytes (dns.query's `wire` with {dnssec = true}); `section` is
// "answer" or "authority"; types are names ("DS") or numbers; `now` is seconds since the epoch.

#include "engine/dns/dnssec.hpp"
#include "bindings/record_type.hpp"

#include <lua.hpp>

#include <cstdio>
#include <ctime>
#include <exception>
#include <string>
#include <string_view>

namespace dnssec = smtpsh::dns::dnssec;

namespace {

std::string_view check_bytes(lua_State* L, int index) {
  std::size_t size = 0;
  const char* data = luaL_checklstring(L, index, &size);
  return {data, size};
}

std::uint16_t check_type(lua_State* L, int index) {
  return smtpsh::lua::check_record_type(L, index, "dnsseccore");
}

dnssec::Section check_section(lua_State* L, int index) {
  static const char* const names[] = {"answer", "authority", nullptr};
  return luaL_checkoption(L, index, nullptr, names) == 0 ? dnssec::Section::answer
                                                         : dnssec::Section::authority;
}

// Whole seconds: a float would be cut (and a NaN or an infinity has no time at all).
std::time_t check_time(lua_State* L, int index) {
  return static_cast<std::time_t>(luaL_checkinteger(L, index));
}

void push_string(lua_State* L, const std::string& text) {
  lua_pushlstring(L, text.data(), text.size());
}

// Runs `body`, turning a C++ exception (out of memory) into a Lua error after the C++
// objects are gone.
template <class Body>
int guarded(lua_State* L, Body body) {
  char problem[160] = {};
  int results = -1;
  try {
    results = body();
  } catch (const std::exception& e) {
    std::snprintf(problem, sizeof problem, "%s", e.what());
  }
  if (results < 0) return luaL_error(L, "dnssec: %s", problem);
  return results;
}

int dnssec_anchor(lua_State* L) {
  std::string_view text = check_bytes(L, 1);
  return guarded(L, [&] {
    std::string error;
    auto anchor = dnssec::parse_anchor(text, error);
    if (!anchor) {
      lua_pushnil(L);
      push_string(L, error);
      return 2;
    }
    lua_createtable(L, 0, 2);
    push_string(L, anchor->zone);
    lua_setfield(L, -2, "zone");
    push_string(L, anchor->records);
    lua_setfield(L, -2, "records");
    return 1;
  });
}

int dnssec_rrset(lua_State* L) {
  std::string_view wire = check_bytes(L, 1);
  std::string_view owner = check_bytes(L, 2);
  std::uint16_t type = check_type(L, 3);
  return guarded(L, [&] {
    push_string(L, dnssec::rrset(wire, owner, type));
    return 1;
  });
}

int dnssec_trust_keys(lua_State* L) {
  std::string_view wire = check_bytes(L, 1);
  std::string_view zone = check_bytes(L, 2);
  std::string_view trust = check_bytes(L, 3);
  std::time_t now = check_time(L, 4);
  return guarded(L, [&] {
    std::string keys;
    dnssec::Check check = dnssec::trust_keys(wire, zone, trust, now, keys);
    if (check.ok) {
      push_string(L, keys);
      push_string(L, check.detail);
      return 2;
    }
    lua_pushnil(L);
    push_string(L, check.reason);
    lua_pushboolean(L, check.unsupported);
    return 3;
  });
}

int dnssec_verify(lua_State* L) {
  std::string_view wire = check_bytes(L, 1);
  dnssec::Section section = check_section(L, 2);
  std::string_view owner = check_bytes(L, 3);
  std::uint16_t type = check_type(L, 4);
  std::string_view zone = check_bytes(L, 5);
  std::string_view keys = check_bytes(L, 6);
  std::time_t now = check_time(L, 7);
  return guarded(L, [&] {
    dnssec::Signature found = dnssec::verify(wire, section, owner, type, zone, keys, now);
    if (found.ok) {
      lua_pushboolean(L, 1);
      if (found.wildcard_labels >= 0)
        lua_pushinteger(L, found.wildcard_labels);
      else
        lua_pushnil(L);
      return 2;
    }
    lua_pushboolean(L, 0);
    push_string(L, found.reason);
    lua_pushboolean(L, found.missing);
    lua_pushboolean(L, found.unsupported);
    return 4;
  });
}

const char* proof_name(dnssec::Proof proof) {
  switch (proof) {
    case dnssec::Proof::nxdomain:
      return "nxdomain";
    case dnssec::Proof::nodata:
      return "nodata";
    case dnssec::Proof::delegation:
      return "delegation";
    case dnssec::Proof::opt_out:
      return "opt_out";
    case dnssec::Proof::wildcard:
      return "wildcard";
    case dnssec::Proof::none:
      break;
  }
  return "none";
}

int dnssec_denial(lua_State* L) {
  std::string_view wire = check_bytes(L, 1);
  std::string_view qname = check_bytes(L, 2);
  std::uint16_t qtype = check_type(L, 3);
  auto rcode = static_cast<int>(luaL_checkinteger(L, 4));
  std::string_view zone = check_bytes(L, 5);
  std::string_view keys = check_bytes(L, 6);
  std::time_t now = check_time(L, 7);
  auto wildcard_labels = static_cast<int>(luaL_optinteger(L, 8, -1));
  return guarded(L, [&] {
    dnssec::Denial denial =
        dnssec::prove_denial(wire, qname, qtype, rcode, zone, keys, now, wildcard_labels);
    lua_pushstring(L, proof_name(denial.proof));
    push_string(L, denial.reason);
    return 2;
  });
}

int dnssec_signer(lua_State* L) {
  std::string_view wire = check_bytes(L, 1);
  dnssec::Section section = check_section(L, 2);
  std::string_view owner = check_bytes(L, 3);
  std::uint16_t type = check_type(L, 4);
  return guarded(L, [&] {
    std::string zone = dnssec::signer(wire, section, owner, type);
    if (zone.empty())
      lua_pushnil(L);
    else
      push_string(L, zone);
    return 1;
  });
}

const luaL_Reg functions[] = {
    {"anchor", dnssec_anchor}, {"rrset", dnssec_rrset},   {"trust_keys", dnssec_trust_keys},
    {"verify", dnssec_verify}, {"denial", dnssec_denial}, {"signer", dnssec_signer},
    {nullptr, nullptr},
};

}  // namespace

extern "C" int luaopen_smtpsh_dnsseccore(lua_State* L) {
  luaL_newlib(L, functions);
  return 1;
}
