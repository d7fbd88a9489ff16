#pragma once
// An SMTP client session on engine/net: commands out, replies in, every line in the
// transcript. It frames and reads; which commands to send, and what a reply means for the
// caller, is decided above it (stdlib/smtp.lua through bindings/smtp.cpp).
//
// Callback-shaped like net::Connection: an operation takes a Notify and a context, never
// completes inside the call that started it, and leaves its result in outcome()/replies().

#include "engine/net/connection.hpp"
#include "engine/smtp/reply.hpp"
#include "engine/smtp/transcript.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::smtp {

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Notify = net::Connection::Notify;

  static std::shared_ptr<Session> create(asio::io_context& io);
  explicit Session(asio::io_context& io);

  // Connects, then reads the greeting into replies()[0]. With `implicit_tls`, the TLS
  // handshake comes between the two (port 465, RFC 8314).
  void connect(std::string_view host, std::uint16_t port, const net::ConnectOptions& options,
               Notify notify, void* context, const tls::Options* implicit_tls = nullptr);

  // The TLS handshake after the server's 220 to STARTTLS (the caller sends STARTTLS and
  // reads that reply with exchange()). A failed handshake closes the session.
  void start_tls(const tls::Options& options, Notify notify, void* context);
  const tls::Info* tls_info() const { return connection_->tls_info(); }
  const char* tls_failure_reason() const { return connection_->tls_failure_reason(); }

  // Sends every line (each followed by CRLF) in one write, then reads one reply per line.
  // A line must hold no CR or LF (the caller checks; this refuses too). In the transcript,
  // line i is shown up to shown_prefix[i] characters followed by "***" when shown_prefix has
  // an entry for it that is shorter than the line: secrets never reach the transcript.
  void exchange(std::vector<std::string> lines, std::vector<std::size_t> shown_prefix,
                Notify notify, void* context);

  // Sends a message after a 354 (framed by frame_for_data), or a BDAT chunk (with its
  // command), and reads the one reply that follows.
  void send_message(std::string_view message, Notify notify, void* context);
  void send_chunk(std::string_view message, Notify notify, void* context);

  // How the last operation ended, in net's kinds; `protocol` also covers a reply that does
  // not parse. Replies themselves (even 5xx) are not failures here.
  const net::Outcome& outcome() const { return outcome_; }
  const std::vector<Reply>& replies() const { return replies_; }

  // Whether an operation is in flight: a second one must wait (the caller checks).
  bool busy() const { return notify_ != nullptr; }

  // From now on `secret` shows as "***" wherever it appears in what the server sends (a
  // server may echo the AUTH blob in its 535): in the transcript, replies and messages.
  // Lines sent with a shown_prefix add their hidden part here themselves. Secrets shorter
  // than min_secret are not searched for: redacting every "a" would garble the transcript.
  void add_secret(std::string_view secret);
  static constexpr std::size_t min_secret = 4;

  // After a 421, an error or close(): nothing more can be sent.
  bool closed() const { return closed_; }
  void close();
  void interrupt() { connection_->interrupt(); }
  void detach();

  Transcript& transcript() { return transcript_; }
  const Transcript& transcript() const { return transcript_; }
  net::Connection& connection() { return *connection_; }

 private:
  void begin(Notify notify, void* context);
  void write_then_read(std::size_t replies_wanted);
  void read_next_reply();
  bool take_line();
  bool refuse_unsolicited_input();
  void close_then_complete_soon();
  std::string redacted(std::string_view line) const;
  void add_body_to_transcript(std::string_view framed);
  void fail(net::Failure failure, const std::string& message);
  void fail_soon(net::Failure failure, std::string message);
  void complete();
  static void on_connected(void* self);
  static void on_implicit_tls(void* self);
  static void on_tls(void* self);
  bool note_tls_result();
  static void on_written(void* self);
  static void on_line_read(void* self);

  asio::io_context& io_;
  std::shared_ptr<net::Connection> connection_;
  Transcript transcript_;
  ReplyParser parser_;
  std::vector<Reply> replies_;
  std::size_t replies_wanted_ = 0;
  std::string outgoing_;  // what the current operation writes
  net::Outcome outcome_;
  Notify notify_ = nullptr;
  void* context_ = nullptr;
  bool closed_ = false;
  std::vector<std::string> secrets_;
  std::unique_ptr<tls::Options> implicit_tls_;  // only between connect and the handshake
  // Our own callbacks get a raw pointer to *this; this keeps it alive until they ran.
  std::shared_ptr<Session> self_while_busy_;
};

}  // namespace smtpsh::smtp
