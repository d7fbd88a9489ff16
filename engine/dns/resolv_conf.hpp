#pragma once
// Which DNS servers to ask, and how patiently: /etc/resolv.conf as the C library reads it
// (nameserver, options timeout: and attempts:), or servers the user names ("127.0.0.1:5353").

#include "engine/loop/loop.hpp"

#include <asio/ip/udp.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::dns {

struct ServerSet {
  std::vector<asio::ip::udp::endpoint> servers;
  engine::Duration timeout = std::chrono::seconds(5);  // per try, as resolv.conf's timeout:
  int attempts = 2;                                    // rounds over all servers
};

// Parses resolv.conf text. Unknown lines are ignored, as the C library does; without any
// usable nameserver the set holds 127.0.0.1:53 (the C library's default too). Values are
// clamped as glibc clamps them (timeout 1..30 s, attempts 1..5).
ServerSet parse_resolv_conf(std::string_view text);

// Reads /etc/resolv.conf (or `path`); a missing file gives the defaults.
ServerSet system_servers(const char* path = "/etc/resolv.conf");

// "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353": an address, not a name (the resolver
// cannot resolve its own servers). Returns nullopt and fills `error` otherwise.
std::optional<asio::ip::udp::endpoint> parse_server(std::string_view text, std::string& error);

// "127.0.0.1:5353", "[::1]:53".
std::string format_server(const asio::ip::udp::endpoint& server);

}  // namespace smtpsh::dns
