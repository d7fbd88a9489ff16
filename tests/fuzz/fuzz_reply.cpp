// libFuzzer target for ReplyParser: no crash, no limit broken, and the same answers however
// the bytes are split (the invariant engine/net relies on when reads end mid-line).

#include "engine/smtp/reply.hpp"
#include "engine/smtp/status_codes.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using smtpsh::smtp::Reply;
using smtpsh::smtp::ReplyParser;
using Status = ReplyParser::Status;

namespace {

// Stops the run with a finding libFuzzer reports and minimizes.
void expect(bool condition) {
  if (!condition) std::abort();
}

struct Outcome {
  Status status = Status::need_more;
  Reply reply;
  std::string error;
  std::size_t consumed = 0;
};

bool same(const Outcome& a, const Outcome& b) {
  return a.status == b.status && a.reply.code == b.reply.code &&
         a.reply.enhanced == b.reply.enhanced && a.reply.lines == b.reply.lines &&
         a.error == b.error && a.consumed == b.consumed;
}

// Bounds a stream of tiny replies ("250\n" repeated) so one input stays fast.
constexpr std::size_t max_replies = 256;

// Every reply of the stream as pipelined replies, in chunks ending at `cuts` (ascending).
std::vector<Outcome> parse_stream(std::string_view input, const std::vector<std::size_t>& cuts) {
  std::vector<Outcome> outcomes;
  ReplyParser parser;
  Outcome current;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    std::size_t end = i < cuts.size() ? cuts[i] : input.size();
    std::string_view chunk = input.substr(start, end - start);
    while (!chunk.empty()) {
      Status status = Status::need_more;
      std::size_t taken = parser.put(chunk, status);
      expect(taken <= chunk.size());
      current.consumed += taken;
      chunk.remove_prefix(taken);
      if (status == Status::need_more) {
        expect(chunk.empty());
        break;
      }
      expect(taken > 0);
      current.status = status;
      if (status == Status::done) current.reply = parser.reply();
      if (status == Status::error) current.error = parser.error();
      outcomes.push_back(std::move(current));
      current = Outcome{};
      if (status == Status::error || outcomes.size() == max_replies) return outcomes;
      parser.reset();
    }
    start = end;
  }
  return outcomes;
}

void check_reply(const Reply& reply) {
  expect(reply.code >= 200 && reply.code <= 599);
  expect(!reply.lines.empty() && reply.lines.size() <= ReplyParser::max_lines);
  for (const auto& line : reply.lines) {
    expect(line.size() + 4 <= ReplyParser::max_line + 1);
    expect(line.find('\n') == std::string::npos);
  }
  expect(reply.ok() + reply.transient() + reply.permanent() == 1);
  if (!reply.enhanced.empty()) {
    auto meaning = smtpsh::smtp::describe_enhanced(reply.enhanced);
    expect(meaning.has_value());
    expect(reply.enhanced[0] - '0' == reply.code / 100);
  }
  std::string text = reply.text();
  expect(text.size() <= reply.to_string().size());

  // The canonical form parses back to the same reply (LF turned into CRLF so a CR that ends
  // a line's text survives), unless a "250OK" line at the size limit grew past it.
  for (const auto& line : reply.lines) {
    if (line.size() + 4 > ReplyParser::max_line) return;
  }
  std::string wire;
  for (char c : reply.to_string()) {
    if (c == '\n') wire += '\r';
    wire += c;
  }
  wire += "\r\n";
  ReplyParser again;
  Status status;
  std::size_t taken = again.put(wire, status);
  expect(status == Status::done && taken == wire.size());
  expect(again.reply().code == reply.code && again.reply().enhanced == reply.enhanced &&
         again.reply().lines == reply.lines);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  std::vector<Outcome> whole = parse_stream(input, {});
  for (const auto& outcome : whole) {
    if (outcome.status == Status::done) check_reply(outcome.reply);
    if (outcome.status == Status::error) expect(!outcome.error.empty());
  }

  // The same stream split at an offset derived from the input, then in three pieces.
  std::size_t hash = 0;
  for (unsigned char c : input)
    hash = hash * 131 + c;
  std::size_t cut = size == 0 ? 0 : hash % (size + 1);
  std::vector<Outcome> split = parse_stream(input, {cut});
  expect(split.size() == whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i)
    expect(same(whole[i], split[i]));

  std::size_t second = size == 0 ? 0 : cut + (hash / 7) % (size - cut + 1);
  std::vector<Outcome> three = parse_stream(input, {cut, second});
  expect(three.size() == whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i)
    expect(same(whole[i], three[i]));

  // Small inputs byte by byte as well: the harshest split there is.
  if (size <= 512) {
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < size; ++i)
      every.push_back(i);
    std::vector<Outcome> bytes = parse_stream(input, every);
    expect(bytes.size() == whole.size());
    for (std::size_t i = 0; i < whole.size(); ++i)
      expect(same(whole[i], bytes[i]));
  }

  // Lines split beforehand, as engine/net delivers them, give the first reply's answer too.
  ReplyParser lines;
  Status status = Status::need_more;
  std::size_t start = 0;
  while (status == Status::need_more) {
    std::size_t lf = input.find('\n', start);
    if (lf == std::string_view::npos) break;
    std::string_view line = input.substr(start, lf - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    status = lines.feed_line(line);
    start = lf + 1;
  }
  if (status == Status::need_more) {
    // put() may refuse an overlong last line before its LF arrives; otherwise it waits too.
    expect(whole.empty() || (whole[0].status == Status::error &&
                             whole[0].error.find("is longer than") != std::string::npos));
  } else {
    expect(!whole.empty() && whole[0].status == status && whole[0].consumed == start);
    if (status == Status::done) expect(lines.reply().lines == whole[0].reply.lines);
    if (status == Status::error) expect(lines.error() == whole[0].error);
  }
  return 0;
}
