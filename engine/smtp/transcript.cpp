#include "engine/smtp/transcript.hpp"

#include <cmath>

namespace smtpsh::smtp {

void Transcript::add(char dir, std::string_view line) {
  auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(engine::Clock::now() - started_);
  entries_.push_back({static_cast<double>(elapsed.count()) / 1000.0, dir, std::string(line)});
  if (observer_) observer_(observer_context_, entries_.back());
}

}  // namespace smtpsh::smtp
