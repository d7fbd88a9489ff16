#include "engine/dns/names.hpp"

#include <asio/ip/address.hpp>

#include <algorithm>

namespace smtpsh::dns {

std::optional<std::string> reversed_labels(std::string_view ip) {
  std::error_code ec;
  auto address = asio::ip::make_address(std::string(ip), ec);
  if (ec) return std::nullopt;
  std::string out;
  if (address.is_v4() || (address.is_v6() && address.to_v6().is_v4_mapped())) {
    auto bytes = address.is_v4()
                     ? address.to_v4().to_bytes()
                     : asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_bytes();
    for (int i = 3; i >= 0; --i) {
      out += std::to_string(bytes[static_cast<std::size_t>(i)]);
      if (i > 0) out += '.';
    }
    return out;
  }
  static constexpr char digits[] = "0123456789abcdef";
  auto bytes = address.to_v6().to_bytes();
  for (int i = 15; i >= 0; --i) {
    auto byte = bytes[static_cast<std::size_t>(i)];
    out += digits[byte & 15];
    out += '.';
    out += digits[byte >> 4];
    if (i > 0) out += '.';
  }
  return out;
}

std::optional<std::string> reverse_name(std::string_view ip) {
  auto labels = reversed_labels(ip);
  if (!labels) return std::nullopt;
  // Four labels for IPv4 (a v4-mapped IPv6 address included), 32 nibbles for IPv6.
  bool v4 = std::count(labels->begin(), labels->end(), '.') == 3;
  return *labels + (v4 ? ".in-addr.arpa" : ".ip6.arpa");
}

}  // namespace smtpsh::dns
