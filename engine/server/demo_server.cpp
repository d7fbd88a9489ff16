#include "engine/server/demo_server.hpp"

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <exception>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace smtpsh::engine {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;

constexpr std::size_t max_line = 65'536;  // 64 KiB, without the line end
constexpr std::size_t max_message_size = 10'240'000;
constexpr auto idle_timeout = 300s;
// After the last reply the client gets this long to close its side; see Session::linger().
constexpr auto linger_timeout = 2s;

constexpr std::string_view ehlo_keywords =
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-SMTPUTF8\r\n"
    "250-CHUNKING\r\n"
    "250 HELP";

char ascii_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string upper(std::string_view text) {
  std::string result(text);
  std::transform(result.begin(), result.end(), result.begin(), ascii_upper);
  return result;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_upper(x) == ascii_upper(y);
         });
}

bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

bool is_control(char c) {
  return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
}

// Whatever the client sent and we echo back must not be able to forge a reply line.
std::string printable(std::string_view text) {
  std::string result(text);
  std::replace_if(result.begin(), result.end(), is_control, '?');
  return result;
}

// A deliberately loose RFC 5321 Mailbox check: local@domain, both present, no spaces or control
// characters outside a quoted local part. Bytes >= 0x80 pass because SMTPUTF8 is advertised.
bool valid_mailbox(std::string_view mailbox) {
  auto at = mailbox.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == mailbox.size()) return false;
  std::string_view local = mailbox.substr(0, at);
  std::string_view domain = mailbox.substr(at + 1);
  auto bad_char = [](char c) { return is_control(c) || c == ' ' || c == '<' || c == '>'; };
  bool quoted = local.size() >= 2 && local.front() == '"' && local.back() == '"';
  if (std::any_of(local.begin(), local.end(), is_control)) return false;
  if (!quoted && std::any_of(local.begin(), local.end(), bad_char)) return false;
  return std::none_of(domain.begin(), domain.end(), bad_char);
}

struct Path {
  std::string_view mailbox;  // empty for the null reverse-path <>
  std::string_view params;
};

// Parses `FROM:<path> params` / `TO:<path> params`. A space after the colon is tolerated
// because many clients send one.
std::optional<Path> parse_path(std::string_view args, std::string_view keyword) {
  if (!istarts_with(args, keyword)) return std::nullopt;
  args = trim(args.substr(keyword.size()));
  if (args.empty() || args.front() != '<') return std::nullopt;
  std::size_t end = 1;
  bool quoted = false;
  for (; end < args.size(); ++end) {
    if (quoted && args[end] == '\\') {
      ++end;
    } else if (args[end] == '"') {
      quoted = !quoted;
    } else if (args[end] == '>' && !quoted) {
      break;
    }
  }
  if (end >= args.size()) return std::nullopt;
  Path path{args.substr(1, end - 1), args.substr(end + 1)};
  if (!path.params.empty() && path.params.front() != ' ') return std::nullopt;
  // RFC 5321 4.1.1.3: an obsolete source route must be accepted and may be ignored.
  if (!path.mailbox.empty() && path.mailbox.front() == '@') {
    auto colon = path.mailbox.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    path.mailbox.remove_prefix(colon + 1);
  }
  return path;
}

// Checks the ESMTP parameters of MAIL FROM; returns the error reply, if any.
std::optional<std::string> check_mail_params(std::string_view params) {
  while (!(params = trim(params)).empty()) {
    std::string_view param = params.substr(0, params.find(' '));
    params.remove_prefix(param.size());
    auto equals = param.find('=');
    std::string key = upper(param.substr(0, equals));
    std::string_view value = equals == std::string_view::npos ? "" : param.substr(equals + 1);
    if (key == "SIZE") {
      std::uint64_t size = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), size);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
        return "501 5.5.4 Bad SIZE parameter syntax";
      }
      if (size > max_message_size) return "552 5.3.4 Message size exceeds fixed limit";
    } else if (key == "BODY") {
      if (!iequals(value, "7BIT") && !iequals(value, "8BITMIME")) {
        return "501 5.5.4 Bad BODY parameter syntax";
      }
    } else if (key != "SMTPUTF8" || equals != std::string_view::npos) {
      return "555 5.5.4 Unsupported option: " + printable(param);
    }
  }
  return std::nullopt;
}

std::string lower_local_part(std::string_view mailbox) {
  std::string local(mailbox.substr(0, mailbox.rfind('@')));
  std::transform(local.begin(), local.end(), local.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
  return local;
}

// One client connection. Replies are written strictly one at a time and the next line is read
// only after the previous reply went out, which is what keeps pipelined replies in order.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::uint64_t& queued)
      : socket_(std::move(socket)), deadline_(socket_.get_executor()), queued_(queued) {}

  void start() {
    write("220 demo.smtpsh.test ESMTP smtpsh demo server ready", false);
    watch_deadline();
  }

  void close() {
    state_ = State::closing;
    std::error_code ignored;
    socket_.close(ignored);
    deadline_.cancel();
  }

 private:
  enum class State : std::uint8_t { fresh, greeted, mail, mail_no_valid_rcpt, rcpt, data, closing };

  void read_line() {
    deadline_.expires_after(idle_timeout);
    // The extra 2 bytes leave room for CRLF after a line of exactly max_line.
    asio::async_read_until(
        socket_, asio::dynamic_buffer(in_, max_line + 2), '\n',
        [self = shared_from_this()](std::error_code ec, std::size_t n) { self->on_line(ec, n); });
  }

  void on_line(std::error_code ec, std::size_t length) {
    if (state_ == State::closing) return;
    if (ec == asio::error::not_found) return finish("500 5.5.6 Line too long");
    if (ec) return close();
    std::string_view line(in_.data(), length - 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max_line) return finish("500 5.5.6 Line too long");

    // The reply may quote the line, so it is built before the line leaves the buffer.
    std::optional<std::string> reply =
        state_ == State::data ? on_data_line(line) : on_command(trim(line));
    in_.erase(0, length);
    if (reply && reply->empty()) return read_chunk();  // BDAT: its bytes come next
    if (reply) {
      write(std::move(*reply), state_ == State::closing);
    } else {
      read_line();
    }
  }

  std::optional<std::string> on_data_line(std::string_view line) {
    if (line == ".") {
      state_ = State::greeted;
      if (message_size_ > max_message_size) return "552 5.3.4 Message size exceeds fixed limit";
      return "250 2.0.0 Ok: queued as DEMO" + std::to_string(++queued_);
    }
    if (!line.empty() && line.front() == '.') line.remove_prefix(1);
    // Saturates, so that no amount of input can wrap the counter around.
    message_size_ = std::min(message_size_ + line.size() + 2, max_message_size + 1);
    return std::nullopt;
  }

  std::string on_command(std::string_view line) {
    if (line.empty()) return "500 5.5.2 Error: bad syntax";
    auto space = line.find(' ');
    std::string verb = upper(line.substr(0, space));
    std::string_view args = space == std::string_view::npos ? "" : trim(line.substr(space + 1));

    if (verb == "EHLO" || verb == "HELO") return on_hello(verb, args);
    if (verb == "MAIL") return on_mail(args);
    if (verb == "RCPT") return on_rcpt(args);
    if (verb == "DATA") return on_data(args);
    if (verb == "BDAT") return on_bdat(args);
    if (verb == "RSET") {
      if (!args.empty()) return "501 5.5.4 Syntax: RSET";
      if (state_ != State::fresh) state_ = State::greeted;
      return "250 2.0.0 Ok";
    }
    if (verb == "NOOP") return "250 2.0.0 Ok";
    if (verb == "VRFY") {
      if (args.empty()) return "501 5.5.4 Syntax: VRFY address";
      return "252 2.0.0 Cannot VRFY user, but will accept message";
    }
    if (verb == "EXPN") return "502 5.5.1 Error: command not implemented";
    if (verb == "HELP") {
      return "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT";
    }
    if (verb == "STARTTLS") return "454 4.7.0 TLS not available";
    if (verb == "QUIT") {
      state_ = State::closing;
      return "221 2.0.0 Bye";
    }
    return "500 5.5.2 Error: command not recognized";
  }

  std::string on_hello(const std::string& verb, std::string_view name) {
    if (name.empty()) return "501 5.5.4 Syntax: " + verb + " hostname";
    // RFC 5321 4.1.4: a new greeting abandons any transaction in progress.
    state_ = State::greeted;
    std::string greets = "demo.smtpsh.test greets " + printable(name);
    if (verb == "HELO") return "250 " + greets;
    return "250-" + greets + "\r\n" + std::string(ehlo_keywords);
  }

  std::string on_mail(std::string_view args) {
    if (state_ == State::fresh) return "503 5.5.1 Error: send HELO/EHLO first";
    if (state_ != State::greeted) return "503 5.5.1 Error: nested MAIL command";
    auto path = parse_path(args, "FROM:");
    if (!path || (!path->mailbox.empty() && !valid_mailbox(path->mailbox))) {
      return "501 5.5.4 Syntax: MAIL FROM:<address>";
    }
    if (auto error = check_mail_params(path->params)) return *error;
    state_ = State::mail;
    message_size_ = 0;
    return "250 2.1.0 Ok";
  }

  std::string on_rcpt(std::string_view args) {
    if (state_ == State::fresh || state_ == State::greeted) {
      return "503 5.5.1 Error: need MAIL command";
    }
    // From here on, DATA without a good recipient says "no valid recipients".
    if (state_ == State::mail) state_ = State::mail_no_valid_rcpt;
    auto path = parse_path(args, "TO:");
    // RFC 5321 4.5.1: <Postmaster> without a domain must be accepted.
    if (!path || (!valid_mailbox(path->mailbox) && !iequals(path->mailbox, "postmaster"))) {
      return "501 5.5.4 Syntax: RCPT TO:<address>";
    }
    if (!trim(path->params).empty()) {
      return "555 5.5.4 Unsupported option: " + printable(trim(path->params));
    }
    std::string quoted = "<" + printable(path->mailbox) + ">";
    std::string local = lower_local_part(path->mailbox);
    if (local == "unknown") {
      return "550 5.1.1 " + quoted + ": Recipient address rejected: User unknown";
    }
    if (local == "greylist") {
      return "450 4.7.1 " + quoted + ": Recipient address rejected: Greylisted, try again later";
    }
    state_ = State::rcpt;
    return "250 2.1.5 Ok";
  }

  std::string on_data(std::string_view args) {
    if (!args.empty()) return "501 5.5.4 Syntax: DATA";
    if (state_ == State::fresh || state_ == State::greeted) {
      return "503 5.5.1 Error: need MAIL command";
    }
    if (state_ == State::mail) return "503 5.5.1 Error: need RCPT command";
    if (state_ == State::mail_no_valid_rcpt) return "554 5.5.1 Error: no valid recipients";
    state_ = State::data;
    return "354 End data with <CR><LF>.<CR><LF>";
  }

  // RFC 3030: "BDAT size [LAST]". Returns an error reply, or "" when `size` bytes follow.
  std::string on_bdat(std::string_view args) {
    std::size_t size = 0;
    auto [end, ec] = std::from_chars(args.data(), args.data() + args.size(), size);
    std::string_view rest = trim(std::string_view(end, args.data() + args.size() - end));
    if (ec != std::errc() || end == args.data() || (!rest.empty() && !iequals(rest, "LAST")))
      return "501 5.5.4 Syntax: BDAT size [LAST]";
    if (state_ == State::fresh || state_ == State::greeted) {
      return "503 5.5.1 Error: need MAIL command";
    }
    if (state_ == State::mail) return "503 5.5.1 Error: need RCPT command";
    if (state_ == State::mail_no_valid_rcpt) return "554 5.5.1 Error: no valid recipients";
    chunk_left_ = size;
    chunk_size_ = size;
    chunk_last_ = !rest.empty();
    return "";
  }

  // Reads (and discards) the bytes of a BDAT chunk, then answers it.
  void read_chunk() {
    std::size_t taken = std::min(chunk_left_, in_.size());
    in_.erase(0, taken);
    chunk_left_ -= taken;
    if (chunk_left_ == 0) return chunk_done();
    deadline_.expires_after(idle_timeout);
    in_.resize(std::min(chunk_left_, max_line));
    socket_.async_read_some(asio::buffer(in_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                              if (self->state_ == State::closing) return;
                              if (ec) return self->close();
                              self->in_.resize(n);
                              self->read_chunk();
                            });
  }

  void chunk_done() {
    // Saturates, like the DATA count, so no amount of input wraps it around.
    message_size_ = std::min(message_size_ + chunk_size_, max_message_size + 1);
    if (!chunk_last_) {
      return write("250 2.0.0 Ok: " + std::to_string(chunk_size_) + " octets received", false);
    }
    state_ = State::greeted;
    if (message_size_ > max_message_size) {
      return write("552 5.3.4 Message size exceeds fixed limit", false);
    }
    write("250 2.0.0 Ok: " + std::to_string(chunk_size_) + " octets, queued as DEMO" +
              std::to_string(++queued_),
          false);
  }

  void finish(std::string reply) {
    state_ = State::closing;
    write(std::move(reply), true);
  }

  void write(std::string reply, bool last) {
    out_ = std::move(reply);
    out_ += "\r\n";
    writing_ = true;
    deadline_.expires_after(last ? linger_timeout : idle_timeout);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), last](std::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (ec || !self->socket_.is_open()) return self->close();
                        if (last) return self->linger();
                        self->read_line();
                      });
  }

  // Closing a socket with unread input makes the kernel send a reset, which can destroy our
  // last reply before the client reads it (think of a client still sending an overlong line).
  // So: send FIN, discard input until the client closes or linger_timeout, then close.
  void linger() {
    std::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    in_.resize(4096);
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(in_),
                            [self = shared_from_this()](std::error_code ec, std::size_t) {
                              if (ec || !self->socket_.is_open()) return self->close();
                              self->drain();
                            });
  }

  // One wait chain per session; every read/write moves the expiry, which wakes the chain up
  // early (operation_aborted) and makes it wait again for the new expiry.
  void watch_deadline() {
    deadline_.async_wait([self = shared_from_this()](std::error_code) { self->on_deadline(); });
  }

  void on_deadline() {
    if (!socket_.is_open()) return;
    if (deadline_.expiry() > asio::steady_timer::clock_type::now()) return watch_deadline();
    // A client that does not read our replies, or lingers, gets no further words.
    if (state_ == State::closing || writing_) return close();
    // Idle while we wait for a line: that read must go before the 421 can be written.
    std::error_code ignored;
    socket_.cancel(ignored);
    finish("421 4.4.2 demo.smtpsh.test Error: timeout exceeded");
    watch_deadline();
  }

  tcp::socket socket_;
  asio::steady_timer deadline_;
  std::string in_;   // the line buffer, at most max_line + CRLF
  std::string out_;  // the reply being written
  std::size_t message_size_ = 0;
  std::size_t chunk_left_ = 0;  // BDAT bytes still to read
  std::size_t chunk_size_ = 0;
  bool chunk_last_ = false;
  std::uint64_t& queued_;  // the server's message counter, for queue ids
  State state_ = State::fresh;
  bool writing_ = false;
};

std::string endpoint_text(const std::string& host, std::uint16_t port) {
  bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

struct DemoServer::Impl {
  void accept() {
    acceptor_.async_accept([this](std::error_code ec, tcp::socket socket) {
      if (!acceptor_.is_open()) return;
      if (ec) {
        // Such as EMFILE: pause, so that an error that persists cannot spin this thread.
        retry_.expires_after(50ms);
        retry_.async_wait([this](std::error_code ec) {
          if (!ec) accept();
        });
        return;
      }
      std::erase_if(sessions_, [](const std::weak_ptr<Session>& s) { return s.expired(); });
      auto session = std::make_shared<Session>(std::move(socket), queued_);
      sessions_.push_back(session);
      session->start();
      accept();
    });
  }

  // Runs on the server thread. Once every socket and timer is closed, every pending handler
  // completes with operation_aborted without starting new work, so io_context::run() returns.
  void shut_down() {
    std::error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
    for (auto& weak : sessions_) {
      if (auto session = weak.lock()) session->close();
    }
    sessions_.clear();
  }

  void run() {
    try {
      io_.run();
    } catch (const std::exception&) {
      // The shell must survive its demo; a closed port tells clients the demo is gone.
      std::error_code ignored;
      acceptor_.close(ignored);
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  asio::steady_timer retry_{io_};
  std::vector<std::weak_ptr<Session>> sessions_;
  std::uint64_t queued_ = 0;
  std::thread thread_;
};

DemoServer::DemoServer(const std::string& host, std::uint16_t port)
    : host_(host), impl_(std::make_unique<Impl>()) {
  std::error_code ec;
  asio::ip::address address = host == "localhost"
                                  ? asio::ip::address(asio::ip::address_v4::loopback())
                                  : asio::ip::make_address(host, ec);
  if (ec) throw std::system_error(ec, "demo server: \"" + host + "\" is not an IP address");

  tcp::endpoint endpoint(address, port);
  tcp::acceptor& acceptor = impl_->acceptor_;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) port_ = acceptor.local_endpoint(ec).port();
  if (ec) throw std::system_error(ec, "demo server cannot listen on " + endpoint_text(host, port));

  impl_->accept();
  impl_->thread_ = std::thread([impl = impl_.get()] { impl->run(); });
}

DemoServer::~DemoServer() {
  asio::post(impl_->io_, [impl = impl_.get()] { impl->shut_down(); });
  impl_->thread_.join();
}

}  // namespace smtpsh::engine
