#pragma once
// The one hook between a connect and the network: what to do with each address before it is
// tried. Kept apart from connection.hpp so a policy (engine/server/redirect_map.hpp) and the
// bindings that hold one need no more than this.

#include "engine/tls/info.hpp"

#include <asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>

namespace smtpsh::net {

// Asked before each address of a connect is tried, after the host name resolved: it may
// send the connect to another endpoint, or nowhere. The connection still names the address
// asked for (remote_address(), messages). `smtpsh replay` installs one
// (engine/server/redirect_map.hpp); without a hook every connect goes where it was asked.
// What a hook attaches to a connect it lets through, held by the connection while it lives.
struct Admission {
  // A replay's: the recorded result of this connection's TLS handshake. The handshake is then
  // not run (the replay server has no such certificate) and tls_info() gives the recorded one.
  std::shared_ptr<const tls::Info> replayed_tls;
  // Held while the connection is open, released when it closes (the sandbox counts open
  // connections with it).
  std::shared_ptr<void> lease;
};

class ConnectHook {
 public:
  enum class Verdict : std::uint8_t {
    go,         // connect to `endpoint`, as the hook left it
    refuse,     // as if the peer refused: the next address is tried
    blackhole,  // nothing happens until the deadline, as behind a firewall that drops the SYN
  };
  virtual ~ConnectHook() = default;
  // Called on the loop's thread; must not throw. `admission` starts empty; what the hook puts
  // there goes with the connection when the verdict is `go`.
  virtual Verdict before_connect(asio::ip::tcp::endpoint& endpoint, Admission& admission) const = 0;
};

}  // namespace smtpsh::net
