#include "engine/server/listener.hpp"

#include "engine/base/endpoint.hpp"

#include <algorithm>

namespace smtpsh::server {

std::shared_ptr<Listener> Listener::open(asio::io_context& io, const std::string& host,
                                         std::uint16_t port, std::string& error) {
  std::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) {
    error = "cannot listen on '" + host + "': not an IP address";
    return nullptr;
  }
  auto listener = std::make_shared<Listener>(io);
  asio::ip::tcp::endpoint endpoint(address, port);
  listener->acceptor_.open(endpoint.protocol(), ec);
  if (!ec) listener->acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) listener->acceptor_.bind(endpoint, ec);
  if (!ec) listener->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on " + engine::format_endpoint(endpoint) + ": " + ec.message();
    return nullptr;
  }
  listener->endpoint_ = listener->acceptor_.local_endpoint(ec);
  return listener;
}

namespace {
constexpr engine::Duration first_pause = std::chrono::milliseconds(10);
constexpr engine::Duration longest_pause = std::chrono::seconds(1);
}  // namespace

void Listener::start(OnAccept on_accept, void* context, OnTrouble on_trouble) {
  on_accept_ = on_accept;
  on_trouble_ = on_trouble;
  context_ = context;
  accept_next();
}

void Listener::accept_next() {
  acceptor_.async_accept(
      [self = shared_from_this()](std::error_code ec, asio::ip::tcp::socket socket) {
        if (!self->acceptor_.is_open()) return;
        if (!ec) {
          ++self->accepted_;
          self->backoff_ = engine::Duration::zero();
          auto connection = net::Connection::adopt(self->io_, std::move(socket));
          if (self->on_accept_) self->on_accept_(self->context_, std::move(connection));
        } else if (net::is_resource_error(ec)) {
          return self->pause_after(ec);
        }
        // Any other failed accept (the client reset first, say) must not stop the server.
        self->accept_next();
      });
}

void Listener::pause_after(const std::error_code& ec) {
  bool first = backoff_ == engine::Duration::zero();
  backoff_ = first ? first_pause : std::min(backoff_ * 2, longest_pause);
  ++pauses_;
  if (first && !warned_ && on_trouble_) {
    warned_ = true;
    on_trouble_(context_, "cannot accept connections on " + address() + ": " +
                              net::describe_resource_error(ec) +
                              "; pausing accepts until descriptors free up (said once)");
  }
  pause_.expires_after(backoff_);
  pause_.async_wait([self = shared_from_this()](std::error_code wait_error) {
    if (wait_error || !self->acceptor_.is_open()) return;
    self->accept_next();
  });
}

void Listener::close() {
  on_accept_ = nullptr;
  on_trouble_ = nullptr;
  pause_.cancel();
  std::error_code ignored;
  acceptor_.close(ignored);
}

std::string Listener::address() const {
  return engine::format_endpoint(endpoint_);
}

}  // namespace smtpsh::server
