#pragma once
// The EHLO reply (RFC 5321 section 4.1.1.1) read as a list of service extensions.

#include "engine/smtp/reply.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::smtp {

struct Capability {
  std::string keyword;              // upper-cased: "SIZE", "AUTH", "AUTH=LOGIN" (the old form)
  std::vector<std::string> params;  // as sent
};

struct Capabilities {
  std::string domain;            // first word of the first line
  std::string greeting;          // rest of the first line
  std::vector<Capability> list;  // every later non-empty line, in order, unknown ones kept

  // Case-insensitive, on the keyword as listed: the old "AUTH=LOGIN" form is not "AUTH" (its
  // mechanisms are in `auth` all the same).
  bool has(std::string_view keyword) const { return find(keyword) != nullptr; }
  const Capability* find(std::string_view keyword) const;  // the first one, or nullptr

  // RFC 1870: "SIZE n"; nullopt when SIZE is absent or has no number, 0 (no fixed limit) kept.
  std::optional<std::uint64_t> size;
  // RFC 4954 mechanisms from "AUTH" and the old "AUTH=" form, upper-cased, unique, in order.
  std::vector<std::string> auth;
};

// Reads a 250 reply to EHLO. Never fails: what it cannot read it keeps as listed.
Capabilities parse_capabilities(const Reply& ehlo_reply);

}  // namespace smtpsh::smtp
