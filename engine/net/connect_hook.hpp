#pragma once
// The one hook between a connect and the network: what to do with each address before it is
// tried. Kept apart from connection.hpp so a policy (engine/server/redirect_map.hpp) and the
// bindings that hold one need no more than this.

#include <asio/ip/tcp.hpp>

#include <cstdint>

namespace smtpsh::net {

// Asked before each address of a connect is tried, after the host name resolved: it may
// send the connect to another endpoint, or nowhere. The connection still names the address
// asked for (remote_address(), messages). `smtpsh replay` installs one
// (engine/server/redirect_map.hpp); without a hook every connect goes where it was asked.
class ConnectHook {
 public:
  enum class Verdict : std::uint8_t {
    go,         // connect to `endpoint`, as the hook left it
    refuse,     // as if the peer refused: the next address is tried
    blackhole,  // nothing happens until the deadline, as behind a firewall that drops the SYN
  };
  virtual ~ConnectHook() = default;
  // Called on the loop's thread; must not throw.
  virtual Verdict before_connect(asio::ip::tcp::endpoint& endpoint) const = 0;
};

}  // namespace smtpsh::net
