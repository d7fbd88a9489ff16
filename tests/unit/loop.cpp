#include "engine/loop/loop.hpp"

#include <doctest/doctest.h>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

using namespace smtpsh::engine;
using namespace std::chrono_literals;

TEST_CASE("seconds_to_duration rounds up to milliseconds and clamps nonsense") {
  CHECK(seconds_to_duration(1.5) == 1500ms);
  CHECK(seconds_to_duration(0.0001) == 1ms);
  CHECK(seconds_to_duration(0) == 0ms);
  CHECK(seconds_to_duration(-3) == 0ms);
  CHECK(seconds_to_duration(std::numeric_limits<double>::quiet_NaN()) == 0ms);
  CHECK(seconds_to_duration(1e300) == Duration(86400LL * 365 * 1000));
}

TEST_CASE("run_until stops as soon as the condition holds") {
  Loop loop;
  int steps = 0;
  for (int i = 0; i < 10; ++i)
    asio::post(loop.io(), [&] { ++steps; });
  CHECK(loop.run_until([&] { return steps == 3; }));
  CHECK(steps == 3);
  CHECK(loop.run_until([&] { return steps == 10; }));
}

TEST_CASE("run_until reports running out of work before the condition holds") {
  Loop loop;
  bool ran = false;
  asio::post(loop.io(), [&] { ran = true; });
  CHECK_FALSE(loop.run_until([] { return false; }));
  CHECK(ran);
  // The loop can be used again afterwards.
  bool again = false;
  asio::post(loop.io(), [&] { again = true; });
  CHECK(loop.run_until([&] { return again; }));
}

namespace {
struct Owner {};
}  // namespace

TEST_CASE("a deadline cancels the bound operation and says it expired") {
  Loop loop;
  Deadline deadline(loop.io());
  asio::steady_timer long_wait(loop.io(), 10s);
  std::error_code result;
  bool done = false;
  deadline.arm(20ms, std::make_shared<Owner>());
  auto started = Clock::now();
  long_wait.async_wait(asio::bind_cancellation_slot(deadline.slot(), [&](std::error_code ec) {
    result = ec;
    done = true;
  }));
  CHECK(loop.run_until([&] { return done; }));
  CHECK(result == asio::error::operation_aborted);
  CHECK(deadline.expired());
  CHECK(Clock::now() - started < 2s);
}

TEST_CASE("a disarmed deadline never fires, even for the next operation") {
  Loop loop;
  Deadline deadline(loop.io());
  deadline.arm(1ms, std::make_shared<Owner>());
  deadline.disarm();
  asio::steady_timer wait(loop.io(), 30ms);
  std::error_code result = asio::error::fault;
  bool done = false;
  wait.async_wait(asio::bind_cancellation_slot(deadline.slot(), [&](std::error_code ec) {
    result = ec;
    done = true;
  }));
  CHECK(loop.run_until([&] { return done; }));
  CHECK_FALSE(result);
  CHECK_FALSE(deadline.expired());
}

TEST_CASE("cancel_now cancels without marking expiry") {
  Loop loop;
  Deadline deadline(loop.io());
  deadline.arm(10s, std::make_shared<Owner>());
  asio::steady_timer wait(loop.io(), 10s);
  std::error_code result;
  bool done = false;
  wait.async_wait(asio::bind_cancellation_slot(deadline.slot(), [&](std::error_code ec) {
    result = ec;
    done = true;
  }));
  asio::post(loop.io(), [&] { deadline.cancel_now(); });
  CHECK(loop.run_until([&] { return done; }));
  CHECK(result == asio::error::operation_aborted);
  CHECK_FALSE(deadline.expired());
  deadline.disarm();
}
