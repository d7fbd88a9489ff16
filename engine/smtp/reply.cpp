#include "engine/smtp/reply.hpp"

#include <algorithm>
#include <cstdio>

namespace smtpsh::smtp {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The reply code at the start of `line`, or 0 when there is none: three digits, the first 2-5,
// and no fourth digit ("2500 ok" is no 250 with the text "0 ok").
int leading_code(std::string_view line) {
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2]))
    return 0;
  if (line.size() > 3 && is_digit(line[3])) return 0;
  return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

// Length of 1-3 digits at `at`, or 0.
std::size_t digit_run(std::string_view text, std::size_t at) {
  std::size_t n = 0;
  while (at + n < text.size() && n < 4 && is_digit(text[at + n]))
    ++n;
  return n <= 3 ? n : 0;
}

// The RFC 3463 code ("class.subject.detail") at the start of a line's text, or empty. Its class
// must agree with the reply code, or it is ordinary text that happens to look like one.
std::string_view leading_enhanced(std::string_view text, int code) {
  if (text.size() < 5) return {};
  char cls = text[0];
  if ((cls != '2' && cls != '4' && cls != '5') || cls - '0' != code / 100 || text[1] != '.')
    return {};
  std::size_t subject = digit_run(text, 2);
  if (subject == 0) return {};
  std::size_t dot = 2 + subject;
  if (dot >= text.size() || text[dot] != '.') return {};
  std::size_t detail = digit_run(text, dot + 1);
  if (detail == 0) return {};
  std::size_t end = dot + 1 + detail;
  if (end < text.size() && text[end] != ' ') return {};
  return text.substr(0, end);
}

// A short, printable excerpt of a peer's bytes for an error message.
std::string excerpt(std::string_view bytes) {
  constexpr std::size_t shown = 32;
  std::string out = "\"";
  for (std::size_t i = 0; i < bytes.size() && i < shown; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > shown) out += "...";
  out += '"';
  return out;
}

}  // namespace

std::string_view without_enhanced(std::string_view line, std::string_view enhanced) {
  if (enhanced.empty() || line.substr(0, enhanced.size()) != enhanced) return line;
  if (line.size() == enhanced.size()) return {};
  // "2.0.00" must not lose "2.0.0": the code has to end where a space begins.
  if (line[enhanced.size()] != ' ') return line;
  return line.substr(enhanced.size() + 1);
}

std::string Reply::text() const {
  std::size_t size = 0;
  for (const auto& line : lines)
    size += line.size() + 1;
  std::string out;
  out.reserve(size);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    out += without_enhanced(lines[i], enhanced);
  }
  return out;
}

bool Reply::ok() const {
  return code >= 200 && code < 400;
}
bool Reply::transient() const {
  return code >= 400 && code < 500;
}
bool Reply::permanent() const {
  return code >= 500 && code < 600;
}

std::string Reply::to_string() const {
  std::string number = std::to_string(code);
  std::size_t size = 0;
  for (const auto& line : lines)
    size += number.size() + 2 + line.size();
  std::string out;
  out.reserve(size);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    bool last = i + 1 == lines.size();
    if (i > 0) out += '\n';
    out += number;
    if (last && lines[i].empty()) break;
    out += last ? ' ' : '-';
    out += lines[i];
  }
  return out;
}

ReplyParser::Status ReplyParser::fail(std::string message) {
  error_ = std::move(message);
  status_ = Status::error;
  return status_;
}

ReplyParser::Status ReplyParser::feed_line(std::string_view line) {
  if (status_ != Status::need_more) return status_;
  ++line_count_;
  const std::string number = std::to_string(line_count_);
  if (line.size() > max_line)
    return fail("reply line " + number + " is longer than " + std::to_string(max_line) + " bytes");
  if (line_count_ > max_lines)
    return fail("reply has more than " + std::to_string(max_lines) + " lines");
  int code = leading_code(line);
  if (code == 0)
    return fail("reply line " + number +
                " does not start with a three-digit code from 200 to 599: " + excerpt(line));
  if (line_count_ > 1 && code != reply_.code)
    return fail("reply line " + number + " has code " + std::to_string(code) +
                ", the reply began with " + std::to_string(reply_.code));

  // "250-" announces more lines; "250 ", a bare "250" and a sloppy "250OK" end the reply.
  bool last = true;
  std::size_t text_at = 3;
  if (line.size() > 3 && (line[3] == '-' || line[3] == ' ')) {
    last = line[3] == ' ';
    text_at = 4;
  }
  std::string_view text = line.substr(text_at);
  if (line_count_ == 1) {
    reply_.code = code;
    reply_.enhanced.assign(leading_enhanced(text, code));
  }
  reply_.lines.emplace_back(text);
  if (last) status_ = Status::done;
  return status_;
}

std::size_t ReplyParser::put(std::string_view bytes, Status& status) {
  std::size_t taken = 0;
  while (status_ == Status::need_more && taken < bytes.size()) {
    std::string_view rest = bytes.substr(taken);
    std::size_t lf = rest.find('\n');
    std::string_view segment = lf == std::string_view::npos ? rest : rest.substr(0, lf);

    // Refuse an overlong line at the byte that makes it too long, not after buffering it to
    // its end: that end may never come. Index max_line may only hold the CR of a CRLF.
    std::size_t have = partial_.size();
    if (have + segment.size() > max_line) {
      std::size_t bad = 0;  // a CR already buffered at index max_line: any next byte is bad
      if (have <= max_line) {
        bad = max_line - have;
        if (segment[bad] == '\r') ++bad;
      }
      if (bad < segment.size()) {
        taken += bad + 1;
        ++line_count_;
        fail("reply line " + std::to_string(line_count_) + " is longer than " +
             std::to_string(max_line) + " bytes");
        break;
      }
    }

    if (lf == std::string_view::npos) {
      partial_.append(segment);
      taken = bytes.size();
      break;
    }
    taken += lf + 1;
    std::string_view line = segment;
    if (!partial_.empty()) {
      partial_.append(segment);
      line = partial_;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    feed_line(line);
    partial_.clear();
  }
  status = status_;
  return taken;
}

void ReplyParser::reset() {
  reply_.code = 0;
  reply_.enhanced.clear();
  reply_.lines.clear();
  partial_.clear();
  error_.clear();
  line_count_ = 0;
  status_ = Status::need_more;
}

}  // namespace smtpsh::smtp
