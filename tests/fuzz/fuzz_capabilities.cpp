// libFuzzer target for parse_capabilities: whatever an EHLO reply holds, the result keeps its
// promises (upper-cased keywords, unique mechanisms, no empty words, find() agreeing with list).

#include "engine/smtp/capabilities.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace smtpsh::smtp;

namespace {

void expect(bool condition) {
  if (!condition) std::abort();
}

bool has_lower_or_blank(std::string_view word) {
  for (char c : word) {
    if ((c >= 'a' && c <= 'z') || c == ' ' || c == '\t') return true;
  }
  return false;
}

void check(const Reply& reply) {
  Capabilities caps = parse_capabilities(reply);
  expect(caps.list.size() + 1 <= reply.lines.size() || caps.list.empty());
  expect(caps.domain.find(' ') == std::string::npos);
  for (const auto& capability : caps.list) {
    expect(!capability.keyword.empty() && !has_lower_or_blank(capability.keyword));
    for (const auto& param : capability.params) {
      expect(!param.empty() && param.find(' ') == std::string::npos);
    }
    const Capability* found = caps.find(capability.keyword);
    expect(found != nullptr && found->keyword == capability.keyword);
    expect(caps.has(capability.keyword));
  }
  for (std::size_t i = 0; i < caps.auth.size(); ++i) {
    expect(!caps.auth[i].empty() && !has_lower_or_blank(caps.auth[i]));
    for (std::size_t j = 0; j < i; ++j)
      expect(caps.auth[i] != caps.auth[j]);
  }
  if (caps.size) expect(caps.has("SIZE"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  // As the wire gives it: through the reply parser.
  ReplyParser parser;
  ReplyParser::Status status;
  parser.put(input, status);
  if (status == ReplyParser::Status::done) check(parser.reply());

  // As the Lua binding gives it: any lines at all, the parser's rules not applied.
  Reply loose;
  loose.code = 250;
  std::size_t start = 0;
  while (start <= input.size() && loose.lines.size() < 2000) {
    std::size_t lf = input.find('\n', start);
    if (lf == std::string_view::npos) lf = input.size();
    loose.lines.emplace_back(input.substr(start, lf - start));
    start = lf + 1;
  }
  check(loose);
  return 0;
}
