#pragma once
// A small, well-behaved SMTP server that `smtpsh --demo` starts in-process, so that a newcomer
// can probe something real without a network or a mail server of their own.

#include <cstdint>
#include <memory>
#include <string>

namespace smtpsh::engine {

class DemoServer {
 public:
  // Binds host:port (port 0 picks a free port) and serves on a thread of its own with its own
  // asio::io_context. Throws std::system_error (with a clear what()) when it cannot bind.
  // `host` must be a numeric IPv4/IPv6 address or "localhost": the demo never resolves names,
  // so starting it can never touch the network.
  DemoServer(const std::string& host, std::uint16_t port);
  ~DemoServer();  // stops accepting, closes every session, joins the thread; never hangs
  DemoServer(const DemoServer&) = delete;
  DemoServer& operator=(const DemoServer&) = delete;

  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }

 private:
  // Keeps Asio out of this header: the shell's front end includes it and need not pay for it.
  struct Impl;

  std::string host_;
  std::uint16_t port_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace smtpsh::engine
