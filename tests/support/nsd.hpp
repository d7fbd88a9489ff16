#pragma once
// Test support: a DNS server on a free loopback port, tests/peers/dns_peer.py run as a child
// process: a real NSD serving tests/peers/zones/ ("nsd"), or a scripted peer ("silent",
// "mismatch", "wrongq"; see the script's docstring).

#include "tests/support/subprocess.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace smtpsh::test {

class DnsPeer {
 public:
  // Runs `/usr/bin/python3 <repo>/tests/peers/dns_peer.py mode_args...`, e.g. {"nsd"},
  // {"nsd", "--no-rrl"}, {"silent"}, and waits up to 15 s for its `PORT n` line. Throws
  // std::runtime_error with what the peer printed if it does not come up. It is a Child:
  // stopped (with NSD, which runs in its process group) when this object goes.
  explicit DnsPeer(const std::vector<std::string>& mode_args);

  std::uint16_t port() const { return port_; }  // on 127.0.0.1

  static std::string script_path();  // <repo>/tests/peers/dns_peer.py

 private:
  Child child_;
  std::uint16_t port_ = 0;
};

}  // namespace smtpsh::test
