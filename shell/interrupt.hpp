#pragma once
// Ctrl-C: interrupts the running chunk (its Lua code and its I/O), never the shell itself.

#include <asio/posix/stream_descriptor.hpp>

namespace smtpsh::lua {
class Scheduler;
}

namespace smtpsh::shell {

// While armed, SIGINT asks `target` (the scheduler of the state the shell runs chunks in, and
// no other) to interrupt every task: a busy Lua loop is stopped by a hook, and the loop is woken
// through a pipe so waiting operations are cancelled at once. While disarmed (at the prompt),
// SIGINT is left to line editing. One watch at a time.
class InterruptWatch {
 public:
  explicit InterruptWatch(lua::Scheduler& target);
  ~InterruptWatch();
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

  void arm();
  void disarm();

 private:
  void wait();

  lua::Scheduler& target_;
  asio::posix::stream_descriptor wakeup_;
  char byte_ = 0;
};

}  // namespace smtpsh::shell
