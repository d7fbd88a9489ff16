#pragma once
// Waiting for one callback-shaped engine operation in a test, bounded in time.

#include "engine/loop/loop.hpp"

#include <doctest/doctest.h>
#include <asio/steady_timer.hpp>

namespace smtpsh::test {

// The context an engine operation notifies; pass &Operation::notify and &op.
struct Operation {
  bool done = false;
  static void notify(void* op) { static_cast<Operation*>(op)->done = true; }
};

// Runs the loop until the operation notifies; fails the test after 10 s.
inline void wait(engine::Loop& loop, Operation& op) {
  using namespace std::chrono_literals;
  auto deadline = engine::Clock::now() + 10s;
  asio::steady_timer guard(loop.io(), deadline);  // keeps the loop from running out of work
  guard.async_wait([](std::error_code) {});
  loop.run_until([&] { return op.done || engine::Clock::now() >= deadline; });
  REQUIRE(op.done);
  guard.cancel();
}

}  // namespace smtpsh::test
