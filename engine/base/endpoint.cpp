#include "engine/base/endpoint.hpp"

#include <asio/ip/address.hpp>

#include <charconv>

namespace smtpsh::engine {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value == 0 || value > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

std::optional<HostPort> parse_host_port(std::string_view target, std::uint16_t default_port,
                                        std::string& error) {
  auto bad = [&](const std::string& why) -> std::optional<HostPort> {
    error = "bad target '" + std::string(target) + "': " + why;
    return std::nullopt;
  };
  if (target.empty()) return bad("empty; expected HOST, HOST:PORT or [IPV6]:PORT");

  HostPort result{std::string(), default_port};
  std::string_view port_text;
  if (target.front() == '[') {
    auto close = target.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after an IPv6 address");
    result.host = std::string(target.substr(1, close - 1));
    auto rest = target.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':PORT' after ']'");
      port_text = rest.substr(1);
      if (port_text.empty()) return bad("empty port after ':'");
    }
    std::error_code ec;
    asio::ip::make_address_v6(result.host, ec);
    if (ec) return bad("'" + result.host + "' is not an IPv6 address");
  } else {
    auto colon = target.find(':');
    if (colon != std::string_view::npos && target.find(':', colon + 1) != std::string_view::npos) {
      // Several colons: an IPv6 address without a port.
      std::error_code ec;
      asio::ip::make_address_v6(std::string(target), ec);
      if (ec) return bad("not an IPv6 address; write [ADDRESS]:PORT for IPv6 with a port");
      result.host = std::string(target);
    } else if (colon != std::string_view::npos) {
      result.host = std::string(target.substr(0, colon));
      port_text = target.substr(colon + 1);
      if (port_text.empty()) return bad("empty port after ':'");
    } else {
      result.host = std::string(target);
    }
  }
  if (result.host.empty()) return bad("empty host");
  for (char c : result.host) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return bad("control or space character in host");
    // "mx]:25", or an IPv6 zone holding one: no host has brackets inside.
    if (c == '[' || c == ']') return bad("'" + std::string(1, c) + "' inside the host");
  }
  if (!port_text.empty()) {
    auto port = parse_port(port_text);
    if (!port) return bad("port '" + std::string(port_text) + "' is not a number from 1 to 65535");
    result.port = *port;
  }
  return result;
}

// Only an IPv6 address has a ':' in it: names and IPv4 addresses never do.
std::string format_endpoint(std::string_view host, std::uint16_t port) {
  bool v6 = host.find(':') != std::string_view::npos;
  std::string text;
  text.reserve(host.size() + 8);
  if (v6) text += '[';
  text += host;
  if (v6) text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

std::string format_endpoint(const asio::ip::tcp::endpoint& endpoint) {
  return format_endpoint(endpoint.address().to_string(), endpoint.port());
}

}  // namespace smtpsh::engine
