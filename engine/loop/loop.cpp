#include "engine/loop/loop.hpp"

#include <cmath>

namespace smtpsh::engine {

std::string describe_duration(Duration duration) {
  auto ms = duration.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  std::string text = std::to_string(ms / 1000) + "." + std::to_string(1000 + ms % 1000).substr(1);
  while (text.back() == '0')
    text.pop_back();
  return text + " s";
}

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
