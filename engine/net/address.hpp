#pragma once
// Targets as users type them: "host", "host:port", "[v6]:port", "v6".

#include <asio/ip/tcp.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace smtpsh::net {

struct HostPort {
  std::string host;  // a name or an address, without brackets
  std::uint16_t port = 0;
};

// Splits a target into host and port, using `default_port` when none is given. A bare IPv6
// address ("::1") is taken whole; with a port it must be bracketed ("[::1]:25").
// Returns nullopt and fills `error` (one sentence) when the target is malformed.
std::optional<HostPort> parse_host_port(std::string_view target, std::uint16_t default_port,
                                        std::string& error);

// Parses a decimal port 1..65535.
std::optional<std::uint16_t> parse_port(std::string_view text);

// "127.0.0.1:25", "[::1]:25".
std::string format_endpoint(const asio::ip::tcp::endpoint& endpoint);

}  // namespace smtpsh::net
