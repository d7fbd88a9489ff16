#pragma once
// SMTP replies (RFC 5321 section 4.2) and a sans-I/O parser for them: it takes bytes or lines
// and says need more / done / error; reading the socket is someone else's job.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::smtp {

struct Reply {
  int code = 0;                    // 421
  std::string enhanced;            // "4.4.2" (RFC 3463/2034), empty when the reply has none
  std::vector<std::string> lines;  // each line's text after "NNN-" / "NNN " (enhanced code kept)

  // The lines joined by "\n", each without a leading copy of `enhanced` (and the space after
  // it): what a person wants to read. Lines that carry another code keep it.
  std::string text() const;
  bool ok() const;         // 2xx or 3xx
  bool transient() const;  // 4xx
  bool permanent() const;  // 5xx
  // The reply in its canonical form, lines joined by "\n" without CRs: "250-a\n250 b". A last
  // line without text is the bare code ("250"), as RFC 5321 writes it; a missing space after
  // the code ("250OK") comes back with the space.
  std::string to_string() const;
};

// `line` without a leading `enhanced` code and the one space after it; unchanged when it does
// not start with that code (or `enhanced` is empty).
std::string_view without_enhanced(std::string_view line, std::string_view enhanced);

// Parses one reply at a time. Lenient where real servers are sloppy (bare LF, "250OK", a bare
// "250"), strict where guessing would hide a broken peer (no code, mixed codes, no bound).
class ReplyParser {
 public:
  static constexpr std::size_t max_line = 65536;  // without CRLF, as engine/net's line limit
  static constexpr std::size_t max_lines = 1000;
  enum class Status { need_more, done, error };

  // Feeds bytes; consumes up to and including the end of the reply when it completes, so the
  // bytes of a next, pipelined reply are left unconsumed. Returns how many bytes it took; after
  // done or error, 0 until reset(). An LF ends a line; one CR before it is dropped.
  std::size_t put(std::string_view bytes, Status& status);
  // Feeds one line already split (without its CRLF/LF): what engine/net delivers. After done or
  // error the line is ignored and the status repeated until reset().
  Status feed_line(std::string_view line);

  const Reply& reply() const { return reply_; }        // valid after done
  const std::string& error() const { return error_; }  // one sentence after error
  Status status() const { return status_; }
  void reset();  // ready for the next reply; keeps buffers' capacity

 private:
  Status fail(std::string message);

  Reply reply_;
  std::string partial_;  // an unfinished line put() has seen so far (CR included)
  std::string error_;
  std::size_t line_count_ = 0;  // lines of this reply seen, for limits and messages
  Status status_ = Status::need_more;
};

}  // namespace smtpsh::smtp
