#pragma once
// Targets as users type them ("host", "host:port", "[v6]:port", "v6") and endpoints as
// messages show them ("127.0.0.1:25", "[::1]:25"). The bottom of the engine: dns and net
// both use it, and it uses neither.

#include <asio/ip/tcp.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace smtpsh::engine {

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

// "mx.example.test:25", "127.0.0.1:25", "[::1]:25": a host (a name or an address, without
// brackets) and a port written as one target, an IPv6 address in brackets; what
// parse_host_port reads back. The one place an endpoint is written (Lua:
// smtpcore.format_endpoint).
std::string format_endpoint(std::string_view host, std::uint16_t port);
std::string format_endpoint(const asio::ip::tcp::endpoint& endpoint);

}  // namespace smtpsh::engine
