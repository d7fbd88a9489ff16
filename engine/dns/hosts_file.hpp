#pragma once
// /etc/hosts, for connecting by name as the C library would: "localhost" and local names
// resolve without asking DNS, so a probe through our resolver still reaches them.

#include <asio/ip/address.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::dns {

class HostsFile {
 public:
  // Lines "ADDRESS NAME [ALIAS...]"; comments and malformed lines are skipped.
  static HostsFile parse(std::string_view text);
  static HostsFile load(const char* path = "/etc/hosts");

  // The addresses listed for `name` (compared without case, a final dot ignored), in order.
  std::vector<asio::ip::address> lookup(std::string_view name) const;

 private:
  struct Entry {
    std::string name;  // lower case, no final dot
    asio::ip::address address;
  };
  std::vector<Entry> entries_;
};

}  // namespace smtpsh::dns
