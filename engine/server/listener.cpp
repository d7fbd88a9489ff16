#include "engine/server/listener.hpp"

#include "engine/net/address.hpp"

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
    error = "cannot listen on " + net::format_endpoint(endpoint) + ": " + ec.message();
    return nullptr;
  }
  listener->endpoint_ = listener->acceptor_.local_endpoint(ec);
  return listener;
}

void Listener::start(OnAccept on_accept, void* context) {
  on_accept_ = on_accept;
  context_ = context;
  accept_next();
}

void Listener::accept_next() {
  acceptor_.async_accept(
      [self = shared_from_this()](std::error_code ec, asio::ip::tcp::socket socket) {
        if (!self->acceptor_.is_open()) return;
        if (!ec) {
          ++self->accepted_;
          auto connection = net::Connection::adopt(self->io_, std::move(socket));
          if (self->on_accept_) self->on_accept_(self->context_, std::move(connection));
        }
        // A failed accept (out of descriptors, say) must not stop the server.
        self->accept_next();
      });
}

void Listener::close() {
  on_accept_ = nullptr;
  std::error_code ignored;
  acceptor_.close(ignored);
}

std::string Listener::address() const {
  return net::format_endpoint(endpoint_);
}

}  // namespace smtpsh::server
