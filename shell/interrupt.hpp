#pragma once
// Ctrl-C: interrupts the running chunk (its Lua code and its I/O), never the shell itself.

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include <functional>

namespace smtpsh::shell {

// While armed, SIGINT asks the scheduler to interrupt every task: a busy Lua loop is stopped
// by a hook, and the loop is woken through a pipe so waiting operations are cancelled at once.
// While disarmed (at the prompt), SIGINT is left to line editing.
class InterruptWatch {
 public:
  InterruptWatch(asio::io_context& io, std::function<void()> on_interrupt);
  ~InterruptWatch();
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

  void arm();
  void disarm();

 private:
  void wait();

  asio::posix::stream_descriptor wakeup_;
  std::function<void()> on_interrupt_;
  char byte_ = 0;
};

}  // namespace smtpsh::shell
