#pragma once
// What was said on a session, line by line, with its timing: the one place a live trace (and
// the recorder) observes SMTP traffic. Secrets never enter it: callers redact before adding.

#include "engine/loop/loop.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::smtp {

struct TranscriptEntry {
  double t = 0;    // seconds since the session started connecting, millisecond resolution
  char dir = '!';  // 'C' client, 'S' server, '!' an event (connected, closed, timeout...)
  std::string line;
};

class Transcript {
 public:
  using Observer = void (*)(void* context, const TranscriptEntry& entry);

  void start() { started_ = engine::Clock::now(); }
  void add(char dir, std::string_view line);
  const std::vector<TranscriptEntry>& entries() const { return entries_; }
  // Sees every entry as it is added (a live trace; a recorder).
  void set_observer(Observer observer, void* context) {
    observer_ = observer;
    observer_context_ = context;
  }

 private:
  engine::Clock::time_point started_ = engine::Clock::now();
  std::vector<TranscriptEntry> entries_;
  Observer observer_ = nullptr;
  void* observer_context_ = nullptr;
};

}  // namespace smtpsh::smtp
