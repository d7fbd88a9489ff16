#pragma once
// How the newer fuzz targets report a broken invariant: what broke on stderr, then abort(),
// which libFuzzer reports as a crash (and saves the input, which it then minimizes).
//
// SMTPSH_FUZZ_IGNORE="TEXT|TEXT..." lets a run look past findings already known and not yet
// fixed: a broken invariant whose message contains one of the TEXTs is noted once on stderr
// and the input counts as passing. For long runs by hand (tests/fuzz/run_long.sh); ctest
// never sets it.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace fuzz {

inline bool ignored(std::string_view message) {
  static const char* list = std::getenv("SMTPSH_FUZZ_IGNORE");
  if (!list || !*list) return false;
  std::string_view rest(list);
  while (!rest.empty()) {
    auto bar = rest.find('|');
    std::string_view text = rest.substr(0, bar);
    if (!text.empty() && message.find(text) != std::string_view::npos) {
      static bool noted = false;
      if (!noted) {
        std::fprintf(stderr, "SMTPSH_FUZZ_IGNORE: looking past known findings such as: %.*s\n",
                     static_cast<int>(message.size()), message.data());
        noted = true;
      }
      return true;
    }
    if (bar == std::string_view::npos) break;
    rest.remove_prefix(bar + 1);
  }
  return false;
}

// A finding unless ignored: returns only when `condition` holds or the finding is ignored.
inline bool expect(bool condition, const char* what) {
  if (condition) return true;
  if (ignored(what)) return false;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

}  // namespace fuzz
