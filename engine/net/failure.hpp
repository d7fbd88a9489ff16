#pragma once
// How a network step failed, in the stable words of the Lua API (ARCHITECTURE.md, "Conventions").

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace smtpsh::net {

enum class Failure : std::uint8_t {
  none,
  refused,      // the peer answered the SYN with a reset
  timeout,      // the step's deadline passed
  dns,          // the host name did not resolve
  unreachable,  // no route, or the source address cannot be used
  closed,       // the peer closed (or reset) the connection
  protocol,     // the peer sent something we refuse to take (a line over the limit)
  tls,          // the TLS handshake failed
  interrupted,  // cancelled on request (Ctrl-C, task cancellation)
  resource,     // this process ran out of descriptors or memory (EMFILE, ENFILE, ENOBUFS)
  source,       // the source address asked for cannot be used on this machine
  other,
};

std::string_view failure_name(Failure failure);

// Maps an error from a connect or an I/O step to its kind. `timed_out` says whether our own
// deadline fired: Asio then reports operation_aborted, which alone means "cancelled".
Failure classify(const std::error_code& ec, bool timed_out);

// The errno value `ec` carries, or 0 when it is not an operating-system error.
int errno_of(const std::error_code& ec);

// Whether `ec` says this process (or the system) ran out of descriptors or buffers: a local
// limit, never a fact about the peer.
bool is_resource_error(const std::error_code& ec);

// "too many open files (the limit is 1024 descriptors: raise it with ulimit -n)": the
// sentence for a resource error, naming the limit that was hit.
std::string describe_resource_error(const std::error_code& ec);

// What an operation ended with: a kind, and a sentence for humans when it failed. The one
// outcome type: a connection's reads and writes and an SMTP session's operations report it.
struct Outcome {
  Failure failure = Failure::none;
  std::string message;

  bool ok() const { return failure == Failure::none; }
  void succeed() {
    failure = Failure::none;
    message.clear();
  }
  void fail(Failure kind, std::string text) {
    failure = kind;
    message = std::move(text);
  }
};

}  // namespace smtpsh::net
