#pragma once
// Where a replay's connects go (`smtpsh replay`, servercore.redirect): each recorded endpoint
// to the loopback listener that plays its sessions back, or nowhere (refused at once, or
// silent until the deadline), so a replay never reaches the network. Installed as the
// connect hook of net::Connection.

#include "engine/net/connect_hook.hpp"

#include <asio/ip/tcp.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

namespace smtpsh::server {

class RedirectMap final : public net::ConnectHook {
 public:
  enum class Action : std::uint8_t { to, refuse, blackhole };
  struct Entry {
    asio::ip::tcp::endpoint from;
    Action action = Action::to;
    asio::ip::tcp::endpoint to;
    // The recorded TLS result of each connect to `from`, in order (nullptr: that session had
    // no recorded handshake, so a real one runs); each connect takes the next.
    mutable std::deque<std::shared_ptr<const tls::Info>> replayed_tls;
  };

  // Sends connects to `from` ("IP:PORT", "[V6]:PORT") to `to`: another such endpoint, or
  // "refuse" or "blackhole". False, adding nothing, when either is not that. May throw
  // std::bad_alloc.
  bool add(std::string_view from, std::string_view to);
  // The recorded TLS result for the next connect to `from` that has none yet (call once per
  // recorded session, in order; nullptr for a session without one). False when `from` was
  // not added.
  bool add_replayed_tls(std::string_view from, std::shared_ptr<const tls::Info> info);
  // What happens to endpoints not listed: "refuse", "blackhole", anything else (the default)
  // lets them go as asked.
  void set_otherwise(std::string_view action);

  // The entry for `endpoint`, or nullptr.
  const Entry* find(const asio::ip::tcp::endpoint& endpoint) const;
  std::size_t size() const { return entries_.size(); }

  Verdict before_connect(asio::ip::tcp::endpoint& endpoint,
                         net::Admission& admission) const override;

 private:
  std::vector<Entry> entries_;
  Action otherwise_ = Action::to;  // `to` here: endpoints not listed go as asked
};

}  // namespace smtpsh::server
