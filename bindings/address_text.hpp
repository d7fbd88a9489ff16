#pragma once
// Addresses ("127.0.0.1:25") copied out of std::string into plain storage, so that pushing
// them to Lua (which may raise) leaves no C++ object to unwind.

#include <lua.hpp>

#include <algorithm>
#include <cstring>
#include <string>

namespace smtpsh::lua {

struct AddressText {
  char text[80];
  std::size_t size;
};

inline AddressText address_text(const std::string& address) {
  AddressText result{};
  result.size = std::min(address.size(), sizeof result.text);
  std::memcpy(result.text, address.data(), result.size);
  return result;
}

// Pushes the address, or nil when there is none (not connected).  [-0, +1, m]
inline int push_address(lua_State* L, const AddressText& address) {
  if (address.size == 0)
    lua_pushnil(L);
  else
    lua_pushlstring(L, address.text, address.size);
  return 1;
}

}  // namespace smtpsh::lua
