#pragma once
// Lua sources compiled into the binary (see cmake/EmbedLua.cmake).

#include <span>
#include <string_view>

namespace smtpsh {

struct EmbeddedFile {
  std::string_view path;  // relative to the repository root: "stdlib/pretty.lua"
  std::string_view source;
};

// stdlib/*.lua: the modules `require "smtpsh.NAME"` finds when no user copy overrides them.
std::span<const EmbeddedFile> embedded_stdlib();

}  // namespace smtpsh
