#include "engine/smtp/message.hpp"

namespace smtpsh::smtp {

namespace {
std::string normalise(std::string_view message, bool stuff_dots) {
  std::string out;
  out.reserve(message.size() + message.size() / 32 + 8);
  bool at_line_start = true;
  for (std::size_t i = 0; i < message.size(); ++i) {
    char c = message[i];
    if (c == '\r' || c == '\n') {
      out += "\r\n";
      if (c == '\r' && i + 1 < message.size() && message[i + 1] == '\n') ++i;
      at_line_start = true;
      continue;
    }
    if (at_line_start && stuff_dots && c == '.') out += '.';
    out += c;
    at_line_start = false;
  }
  if (!at_line_start) out += "\r\n";
  return out;
}
}  // namespace

std::string frame_for_data(std::string_view message) {
  std::string out = normalise(message, true);
  out += ".\r\n";
  return out;
}

std::string normalise_line_ends(std::string_view message) {
  return normalise(message, false);
}

bool has_line_break(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

}  // namespace smtpsh::smtp
