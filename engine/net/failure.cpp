#include "engine/net/failure.hpp"

#include <asio/error.hpp>
#include <asio/ssl/error.hpp>

#include <sys/resource.h>

#include <cerrno>

namespace smtpsh::net {

std::string_view failure_name(Failure failure) {
  switch (failure) {
    case Failure::none:
      return "none";
    case Failure::refused:
      return "refused";
    case Failure::timeout:
      return "timeout";
    case Failure::dns:
      return "dns";
    case Failure::unreachable:
      return "unreachable";
    case Failure::closed:
      return "closed";
    case Failure::protocol:
      return "protocol";
    case Failure::tls:
      return "tls";
    case Failure::interrupted:
      return "interrupted";
    case Failure::resource:
      return "resource";
    case Failure::source:
      return "source";
    case Failure::other:
      return "other";
  }
  return "other";
}

int errno_of(const std::error_code& ec) {
  // Asio reports errno values in a category of its own, which does not map them onto
  // std::errc: compare the numbers in any of the errno categories.
  if (ec.category() == asio::error::get_system_category() ||
      ec.category() == std::system_category() || ec.category() == std::generic_category())
    return ec.value();
  return 0;
}

Failure classify(const std::error_code& ec, bool timed_out) {
  if (!ec) return Failure::none;
  if (ec == asio::error::operation_aborted)
    return timed_out ? Failure::timeout : Failure::interrupted;
  if (is_resource_error(ec)) return Failure::resource;
  if (ec == asio::error::connection_refused) return Failure::refused;
  if (ec == asio::error::timed_out) return Failure::timeout;
  if (ec == asio::error::network_unreachable || ec == asio::error::host_unreachable ||
      ec == asio::error::network_down || ec == asio::error::address_family_not_supported ||
      errno_of(ec) == EADDRNOTAVAIL)
    return Failure::unreachable;
  // A TLS peer that closes without close_notify is a close like any other to a prober.
  if (ec == asio::ssl::error::stream_truncated) return Failure::closed;
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
      ec == asio::error::not_connected || ec == asio::error::bad_descriptor)
    return Failure::closed;
  if (ec.category() == asio::error::get_netdb_category() ||
      ec.category() == asio::error::get_addrinfo_category())
    return Failure::dns;
  return Failure::other;
}

bool is_resource_error(const std::error_code& ec) {
  int value = errno_of(ec);
  return value == EMFILE || value == ENFILE || value == ENOBUFS || value == ENOMEM;
}

std::string describe_resource_error(const std::error_code& ec) {
  int value = ec.value();
  if (value == EMFILE) {
    rlimit limit{};
    std::string text = "too many open files";
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
      text += " (this process may have " + std::to_string(limit.rlim_cur) + " descriptors";
    else
      text += " (this process hit its descriptor limit";
    return text + ": raise it with ulimit -n, or run fewer sessions at once)";
  }
  if (value == ENFILE)
    return "the system's table of open files is full (raise fs.file-max, or run fewer sessions)";
  return "out of buffer space or memory (" + ec.message() + "): run fewer sessions at once";
}

}  // namespace smtpsh::net
