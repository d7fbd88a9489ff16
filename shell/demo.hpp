#pragma once
// The server `smtpsh --demo` runs beside the REPL: the scenario examples/servers/demo.lua on
// a thread of its own, with its own Lua state and event loop, so the REPL's Ctrl-C and
// blocking line editing never stall it.

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace smtpsh::shell {

class Runtime;

class DemoServer {
 public:
  // Starts the scenario on 127.0.0.1 (a free port) and waits until it listens. Throws
  // std::runtime_error saying why when it cannot start.
  DemoServer();
  ~DemoServer();  // stops the server and joins its thread
  DemoServer(const DemoServer&) = delete;
  DemoServer& operator=(const DemoServer&) = delete;

  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }

  struct Shared;  // between this thread and the server's

 private:
  std::string host_ = "127.0.0.1";
  std::uint16_t port_ = 0;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace smtpsh::shell
