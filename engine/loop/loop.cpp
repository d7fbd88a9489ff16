#include "engine/loop/loop.hpp"

#include <cmath>

namespace smtpsh::engine {

Duration seconds_to_duration(double seconds) {
  constexpr double max_seconds = 86400.0 * 365;  // a year is "forever" for a probe
  if (!(seconds > 0)) return Duration::zero();   // also catches NaN
  if (seconds > max_seconds) seconds = max_seconds;
  return Duration(static_cast<Duration::rep>(std::ceil(seconds * 1000.0)));
}

void Deadline::arm(Duration timeout, std::shared_ptr<const void> owner) {
  ++generation_;
  expired_ = false;
  timer_.expires_after(timeout);
  timer_.async_wait([this, generation = generation_, owner = std::move(owner)](std::error_code ec) {
    if (ec || generation != generation_) return;
    expired_ = true;
    signal_.emit(asio::cancellation_type::terminal);
  });
}

void Deadline::disarm() {
  ++generation_;
  timer_.cancel();
}

}  // namespace smtpsh::engine
