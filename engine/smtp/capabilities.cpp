#include "engine/smtp/capabilities.hpp"

#include <charconv>

namespace smtpsh::smtp {

namespace {

char upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = upper(c);
  return out;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (upper(a[i]) != upper(b[i])) return false;
  }
  return true;
}

// Servers pad with extra spaces and, rarely, tabs; neither is part of a word.
bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// The next word of `text` from `at`, moving `at` past it; empty at the end.
std::string_view next_word(std::string_view text, std::size_t& at) {
  while (at < text.size() && is_blank(text[at]))
    ++at;
  std::size_t start = at;
  while (at < text.size() && !is_blank(text[at]))
    ++at;
  return text.substr(start, at - start);
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back()))
    text.remove_suffix(1);
  return text;
}

void add_mechanism(std::vector<std::string>& auth, std::string_view mechanism) {
  if (mechanism.empty()) return;
  std::string name = upper(mechanism);
  for (const auto& known : auth) {
    if (known == name) return;
  }
  auth.push_back(std::move(name));
}

std::optional<std::uint64_t> parse_size(const std::vector<std::string>& params) {
  if (params.empty()) return std::nullopt;
  const std::string& text = params.front();
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

const Capability* Capabilities::find(std::string_view keyword) const {
  for (const auto& capability : list) {
    if (equal_ignoring_case(capability.keyword, keyword)) return &capability;
  }
  return nullptr;
}

Capabilities parse_capabilities(const Reply& ehlo_reply) {
  Capabilities result;
  const auto& lines = ehlo_reply.lines;
  if (lines.empty()) return result;

  std::string_view first = without_enhanced(lines.front(), ehlo_reply.enhanced);
  std::size_t at = 0;
  result.domain = next_word(first, at);
  result.greeting = trim(first.substr(at));

  result.list.reserve(lines.size() - 1);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = without_enhanced(lines[i], ehlo_reply.enhanced);
    at = 0;
    std::string_view keyword = next_word(line, at);
    // smtp-sink ends its reply with an empty "250 " line: nothing is offered there.
    if (keyword.empty()) continue;
    Capability capability{upper(keyword), {}};
    for (auto word = next_word(line, at); !word.empty(); word = next_word(line, at))
      capability.params.emplace_back(word);

    if (capability.keyword == "SIZE" && !result.size) {
      result.size = parse_size(capability.params);
    } else if (capability.keyword == "AUTH") {
      for (const auto& mechanism : capability.params)
        add_mechanism(result.auth, mechanism);
    } else if (capability.keyword.starts_with("AUTH=")) {
      // The pre-RFC 2554 form some servers still send beside "AUTH", for old Outlook clients.
      add_mechanism(result.auth, std::string_view(capability.keyword).substr(5));
      for (const auto& mechanism : capability.params)
        add_mechanism(result.auth, mechanism);
    }
    result.list.push_back(std::move(capability));
  }
  return result;
}

}  // namespace smtpsh::smtp
