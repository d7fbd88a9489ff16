#pragma once
// Names derived from addresses: the reverse-DNS name of an IP (RFC 1035 in-addr.arpa, RFC
// 3596 ip6.arpa nibbles), and a DNSBL query name (the same labels under a list's zone).

#include <optional>
#include <string>
#include <string_view>

namespace smtpsh::dns {

// "127.0.0.2" -> "2.0.0.127", "::1" -> "1.0.0.0...0.0" (32 nibbles), or nullopt when `ip` is
// not an IPv4 or IPv6 address.
std::optional<std::string> reversed_labels(std::string_view ip);

// "2.0.0.127.in-addr.arpa", "1.0...0.ip6.arpa".
std::optional<std::string> reverse_name(std::string_view ip);

}  // namespace smtpsh::dns
