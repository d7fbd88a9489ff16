#pragma once
// The one event loop of a process, and the deadline every network step carries.

#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace smtpsh::engine {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::milliseconds;

// Converts seconds given by a user (Lua numbers, --timeout) into the loop's resolution,
// clamped so that absurd values cannot overflow a timer.
Duration seconds_to_duration(double seconds);

// "30 s", "0.5 s": durations in messages.
std::string describe_duration(Duration duration);

class Loop {
 public:
  Loop() = default;
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  asio::io_context& io() { return io_; }

  // Runs handlers one at a time until `done()` holds. Returns false when the loop ran out
  // of work while `done()` still did not hold: whatever it waits for can never happen.
  template <class Done>
  bool run_until(Done done) {
    if (io_.stopped()) io_.restart();
    while (!done()) {
      if (io_.run_one() == 0) {
        io_.restart();
        return done();
      }
    }
    return true;
  }

 private:
  asio::io_context io_;
};

// A deadline for one asynchronous operation at a time. When it expires it emits a terminal
// cancellation on the signal that the operation was bound to, and remembers that it did, so
// the operation's handler can tell "timed out" from "cancelled by someone". Terminal, the
// strongest kind: composed operations such as a TLS handshake pass only that one down to
// their socket, and an operation cut off by a deadline is not meant to resume anyway.
//
// `disarm()` (or the next `arm()`) bumps a generation number, so a late expiry can never
// cancel the next operation. The timer's handler keeps `owner` (the object the deadline lives
// in) alive: an expiry already queued when the owner is dropped must not touch freed memory.
class Deadline {
 public:
  explicit Deadline(asio::io_context& io) : timer_(io) {}

  asio::cancellation_slot slot() { return signal_.slot(); }
  void arm(Duration timeout, std::shared_ptr<const void> owner);
  void disarm();
  bool expired() const { return expired_; }
  // Cancels the bound operation now, as a user interrupt would.
  void cancel_now() { signal_.emit(asio::cancellation_type::terminal); }

 private:
  asio::steady_timer timer_;
  asio::cancellation_signal signal_;
  std::uint32_t generation_ = 0;
  bool expired_ = false;
};

}  // namespace smtpsh::engine
