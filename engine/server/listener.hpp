#pragma once
// A TCP listener for the scenario server: accepts connections and hands each over as a
// net::Connection, so a server reads and writes with the same line I/O (and deadlines, and
// TLS) as a client.

#include "engine/net/connection.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace smtpsh::server {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using OnAccept = void (*)(void* context, std::shared_ptr<net::Connection> connection);
  // Told (once per listener) when accepting fails for a reason of this process, such
  // as running out of descriptors: the message says what and that accepting pauses.
  using OnTrouble = void (*)(void* context, const std::string& message);

  // Binds host:port (port 0 picks a free one); `host` must be an address. Returns nullptr and
  // fills `error` (one sentence) when it cannot bind.
  static std::shared_ptr<Listener> open(asio::io_context& io, const std::string& host,
                                        std::uint16_t port, std::string& error);

  // Accepts until close(); each connection goes to on_accept(context, connection). Out of
  // descriptors (EMFILE, ENFILE, ENOBUFS), it pauses accepting, 10 ms at first and doubling
  // up to a second, instead of retrying at once: the pending connection would fail again
  // and again at full speed (nginx and Postfix back off the same way).
  void start(OnAccept on_accept, void* context, OnTrouble on_trouble = nullptr);
  void close();
  bool is_open() const { return acceptor_.is_open(); }
  std::string address() const;  // "127.0.0.1:2525"
  std::uint16_t port() const { return endpoint_.port(); }
  std::size_t accepted() const { return accepted_; }

  std::size_t pauses() const { return pauses_; }

  explicit Listener(asio::io_context& io) : io_(io), acceptor_(io), pause_(io) {}

 private:
  void accept_next();
  void pause_after(const std::error_code& ec);

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::endpoint endpoint_;
  asio::steady_timer pause_;
  OnAccept on_accept_ = nullptr;
  OnTrouble on_trouble_ = nullptr;
  void* context_ = nullptr;
  std::size_t accepted_ = 0;
  std::size_t pauses_ = 0;
  bool warned_ = false;
  engine::Duration backoff_{0};  // zero while accepting works
};

}  // namespace smtpsh::server
