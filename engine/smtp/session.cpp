#include "engine/smtp/session.hpp"

#include "engine/base/endpoint.hpp"
#include "engine/smtp/message.hpp"

#include <asio/ip/address.hpp>
#include <asio/post.hpp>

namespace smtpsh::smtp {

namespace {
// A long message is not worth a transcript line per line: the head shows what was sent.
constexpr std::size_t body_lines_in_transcript = 50;
// Lines no command asked for: how many are shown, in the transcript and in the message.
constexpr std::size_t unsolicited_lines_shown = 20;
constexpr std::size_t unsolicited_lines_named = 3;
constexpr std::size_t unsolicited_excerpt = 80;
}  // namespace

std::shared_ptr<Session> Session::create(asio::io_context& io) {
  return std::make_shared<Session>(io);
}

Session::Session(asio::io_context& io) : io_(io), connection_(net::Connection::create(io)) {}

void Session::begin(Notify notify, void* context) {
  notify_ = notify;
  context_ = context;
  self_while_busy_ = shared_from_this();
  outcome_.succeed();
  replies_.clear();
}

void Session::complete() {
  Notify notify = notify_;
  notify_ = nullptr;
  auto keep_alive = std::move(self_while_busy_);
  if (notify) notify(context_);
}

void Session::fail(net::Failure failure, const std::string& message) {
  outcome_.fail(failure, redacted(message));
  transcript_.add('!', outcome_.message);
  // Whatever comes next on this connection can no longer be matched to a command.
  if (!closed_) {
    closed_ = true;
    connection_->close();
  }
  complete();
}

void Session::fail_soon(net::Failure failure, std::string message) {
  outcome_.fail(failure, std::move(message));
  asio::post(io_, [self = shared_from_this()] { self->complete(); });
}

// --- connect and the greeting ----------------------------------------------------------------

void Session::connect(std::string_view host, std::uint16_t port, const net::ConnectOptions& options,
                      Notify notify, void* context, const tls::Options* implicit_tls) {
  begin(notify, context);
  implicit_tls_ = implicit_tls ? std::make_unique<tls::Options>(*implicit_tls) : nullptr;
  transcript_.start();
  transcript_.add('!', "connecting to " + engine::format_endpoint(host, port));
  connection_->connect(host, port, options, &Session::on_connected, this);
}

void Session::on_connected(void* self_pointer) {
  auto* self = static_cast<Session*>(self_pointer);
  const net::Outcome& result = self->connection_->write_outcome();
  if (!result.ok()) return self->fail(result.failure, result.message);
  self->transcript_.add('!', "connected to " + self->connection_->remote_address() + " from " +
                                 self->connection_->local_address());
  if (self->implicit_tls_) {
    auto options = std::move(self->implicit_tls_);
    self->transcript_.add('!', "TLS handshake (implicit TLS)");
    return self->connection_->start_tls(*options, &Session::on_implicit_tls, self);
  }
  self->replies_wanted_ = 1;
  self->parser_.reset();
  self->read_next_reply();
}

// --- TLS -------------------------------------------------------------------------------------

// Puts the handshake's outcome in the transcript; false (and the session failed) when it failed.
bool Session::note_tls_result() {
  const net::Outcome& result = connection_->write_outcome();
  if (!result.ok()) {
    fail(result.failure, result.message);
    return false;
  }
  const tls::Info& info = *connection_->tls_info();
  std::string line = "TLS " + info.version + " " + info.cipher;
  if (!info.group.empty()) line += " (" + info.group + ")";
  if (!info.chain.empty()) line += ", certificate " + info.chain.front().subject;
  line += ", verify: " + info.verify_result;
  if (info.dane) line += info.dane_matched ? ", DANE: matched" : ", DANE: no match";
  transcript_.add('!', line);
  return true;
}

void Session::on_implicit_tls(void* self_pointer) {
  auto* self = static_cast<Session*>(self_pointer);
  if (!self->note_tls_result()) return;
  self->replies_wanted_ = 1;
  self->parser_.reset();
  self->read_next_reply();
}

void Session::start_tls(const tls::Options& options, Notify notify, void* context) {
  begin(notify, context);
  if (closed_) return fail_soon(net::Failure::closed, "the session is closed");
  // An address is checked against the certificate but never sent as SNI (RFC 6066 section 3).
  std::error_code not_an_address;
  asio::ip::make_address(options.sni, not_an_address);
  bool sends_sni = !options.sni.empty() && not_an_address;
  transcript_.add('!',
                  "TLS handshake" + (sends_sni ? " (SNI " + options.sni + ")" : std::string()));
  parser_.reset();
  connection_->start_tls(options, &Session::on_tls, this);
}

void Session::on_tls(void* self_pointer) {
  auto* self = static_cast<Session*>(self_pointer);
  if (self->note_tls_result()) self->complete();
}

// --- commands and replies --------------------------------------------------------------------

void Session::exchange(std::vector<std::string> lines, std::vector<std::size_t> shown_prefix,
                       Notify notify, void* context) {
  begin(notify, context);
  if (closed_) return fail_soon(net::Failure::closed, "the session is closed");
  outgoing_.clear();
  for (const std::string& line : lines) {
    if (has_line_break(line))
      return fail_soon(net::Failure::protocol, "refused to send a command with a CR or LF inside");
    outgoing_ += line;
    outgoing_ += "\r\n";
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i < shown_prefix.size() && shown_prefix[i] < lines[i].size())
      add_secret(std::string_view(lines[i]).substr(shown_prefix[i]));
  }
  if (refuse_unsolicited_input()) return;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i < shown_prefix.size() && shown_prefix[i] < lines[i].size())
      transcript_.add('C', lines[i].substr(0, shown_prefix[i]) + "***");
    else
      transcript_.add('C', lines[i]);
  }
  write_then_read(lines.size());
}

void Session::add_secret(std::string_view secret) {
  if (secret.size() < min_secret) return;
  for (const std::string& known : secrets_)
    if (known == secret) return;
  secrets_.emplace_back(secret);
}

std::string Session::redacted(std::string_view line) const {
  std::string out(line);
  for (const std::string& secret : secrets_) {
    for (std::size_t at = out.find(secret); at != std::string::npos; at = out.find(secret, at + 3))
      out.replace(at, secret.size(), "***");
  }
  return out;
}

// Before a command goes out, nothing may be waiting from the server: a reply read now would
// be taken for this command's (a desync that makes MAIL read the answer to EHLO). What is
// waiting was sent when no command asked for it, or is a reply beyond the commands sent.
// A 421 that came early is the server closing, and is reported as that; anything else fails
// the session as a protocol error naming the lines. Returns true when it failed the session.
bool Session::refuse_unsolicited_input() {
  std::vector<std::string> lines;
  bool more = false;
  if (!connection_->take_waiting_lines(lines, unsolicited_lines_shown, more)) return false;
  for (std::string& line : lines) {
    line = redacted(line);
    transcript_.add('S', line);
  }
  if (more) transcript_.add('!', "more unsolicited lines not shown");
  ReplyParser early;
  ReplyParser::Status status = ReplyParser::Status::need_more;
  for (const std::string& line : lines)
    if (status == ReplyParser::Status::need_more) status = early.feed_line(line);
  if (status == ReplyParser::Status::done && early.reply().code == 421) {
    replies_.push_back(early.reply());
    transcript_.add('!', "421 before the command was sent: the server closes the session");
    close_then_complete_soon();
    return true;
  }
  std::string named;
  for (std::size_t i = 0; i < lines.size() && i < unsolicited_lines_named; ++i) {
    if (!named.empty()) named += " | ";
    named += lines[i].substr(0, unsolicited_excerpt);
  }
  if (lines.size() > unsolicited_lines_named || more) named += " | ...";
  std::string count = more
                          ? "more than " + std::to_string(lines.size()) + " lines"
                          : std::to_string(lines.size()) + (lines.size() == 1 ? " line" : " lines");
  outcome_.fail(net::Failure::protocol, "the server sent " + count +
                                            " that no command asked for (out of step with the "
                                            "commands sent): " +
                                            named);
  transcript_.add('!', outcome_.message);
  close_then_complete_soon();
  return true;
}

// The session can no longer be matched to its commands: nothing more goes out, and the
// operation (which may not complete inside the call that started it) ends from the loop.
void Session::close_then_complete_soon() {
  closed_ = true;
  connection_->close();
  asio::post(io_, [self = shared_from_this()] { self->complete(); });
}

void Session::send_message(std::string_view message, Notify notify, void* context) {
  begin(notify, context);
  if (closed_) return fail_soon(net::Failure::closed, "the session is closed");
  if (refuse_unsolicited_input()) return;
  outgoing_ = frame_for_data(message);
  add_body_to_transcript(outgoing_);
  write_then_read(1);
}

void Session::send_chunk(std::string_view message, Notify notify, void* context) {
  begin(notify, context);
  if (closed_) return fail_soon(net::Failure::closed, "the session is closed");
  if (refuse_unsolicited_input()) return;
  std::string body = normalise_line_ends(message);
  std::string command = "BDAT " + std::to_string(body.size()) + " LAST";
  transcript_.add('C', command);
  add_body_to_transcript(body);
  outgoing_ = command + "\r\n" + body;
  write_then_read(1);
}

void Session::add_body_to_transcript(std::string_view framed) {
  std::size_t shown = 0;
  std::size_t start = 0;
  while (start < framed.size()) {
    std::size_t end = framed.find("\r\n", start);
    if (end == std::string_view::npos) end = framed.size();
    if (shown < body_lines_in_transcript) transcript_.add('C', framed.substr(start, end - start));
    ++shown;
    start = end + 2;
  }
  if (shown > body_lines_in_transcript)
    transcript_.add(
        '!', std::to_string(shown - body_lines_in_transcript) + " more message lines not shown");
}

void Session::write_then_read(std::size_t replies_wanted) {
  replies_wanted_ = replies_wanted;
  parser_.reset();
  connection_->send(outgoing_, &Session::on_written, this);
}

void Session::on_written(void* self_pointer) {
  auto* self = static_cast<Session*>(self_pointer);
  self->outgoing_.clear();
  const net::Outcome& result = self->connection_->write_outcome();
  if (!result.ok()) return self->fail(result.failure, result.message);
  self->read_next_reply();
}

void Session::read_next_reply() {
  while (connection_->take_buffered_line()) {
    if (!take_line()) return;
  }
  connection_->read_line(&Session::on_line_read, this);
}

void Session::on_line_read(void* self_pointer) {
  auto* self = static_cast<Session*>(self_pointer);
  if (self->take_line()) self->read_next_reply();
}

// Takes the line the connection just delivered. Returns true while more lines are wanted.
bool Session::take_line() {
  const net::Outcome& read = connection_->read_outcome();
  if (!read.ok()) {
    std::string_view partial = connection_->data();
    if (!partial.empty()) transcript_.add('S', redacted(partial));
    std::string message = read.message;
    if (read.failure == net::Failure::closed)
      message = "connection closed by " + connection_->remote_address() + " without a reply";
    fail(read.failure, message);
    return false;
  }
  std::string_view line = connection_->data();
  std::string hidden;
  if (!secrets_.empty()) {
    hidden = redacted(line);
    line = hidden;
  }
  transcript_.add('S', line);
  ReplyParser::Status status = parser_.feed_line(line);
  if (status == ReplyParser::Status::error) {
    fail(net::Failure::protocol, "malformed reply: " + parser_.error());
    return false;
  }
  if (status == ReplyParser::Status::need_more) return true;
  replies_.push_back(parser_.reply());
  parser_.reset();
  if (replies_.back().code == 421) {
    // RFC 5321 section 3.8: the server is closing the transmission channel.
    transcript_.add('!', "421: the server closes the session");
    closed_ = true;
    connection_->close();
    complete();
    return false;
  }
  if (replies_.size() >= replies_wanted_) {
    complete();
    return false;
  }
  return true;
}

void Session::close() {
  if (!closed_) {
    closed_ = true;
    transcript_.add('!', "closed");
  }
  connection_->close();
}

// The owner is gone: nobody is told about the operation in flight, which the close ends.
void Session::detach() {
  notify_ = nullptr;
  close();
}

}  // namespace smtpsh::smtp
