#include "engine/net/source_address.hpp"

#include "engine/net/failure.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <cerrno>

namespace smtpsh::net {

std::optional<std::string> source_address_problem(std::string_view address) {
  std::error_code ec;
  auto ip = asio::ip::make_address(std::string(address), ec);
  if (ec) return "'" + std::string(address) + "' is not an IP address";
  // Binding port 0 asks the kernel exactly what a connect from there would ask, and
  // sends nothing.
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.open(ip.is_v4() ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), ec);
  if (!ec) socket.bind(asio::ip::tcp::endpoint(ip, 0), ec);
  if (!ec) return std::nullopt;
  if (errno_of(ec) == EADDRNOTAVAIL)
    return "it is not an address of this machine (see `ip address`)";
  if (is_resource_error(ec)) return describe_resource_error(ec);
  return "cannot send from it: " + ec.message();
}

}  // namespace smtpsh::net
