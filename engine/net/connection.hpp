#pragma once
// A TCP connection for probing: connect (IPv4/IPv6, a chosen source address), send, and read
// lines or byte counts, each step under a deadline.
//
// The interface is callback-shaped on purpose: every operation takes a plain function pointer
// and a context pointer, so the Lua bindings and the SMTP session can resume whatever
// waits on it without allocating a std::function per step. An operation never completes
// inside the call that started it; its result is read back from the connection
// (read_outcome(), data(), write_outcome()) when `notify(context)` runs.
//
// One read and one write (or connect) may be in flight at once; the caller enforces that.

#include "engine/dns/address_lookup.hpp"
#include "engine/loop/loop.hpp"
#include "engine/net/connect_hook.hpp"
#include "engine/net/failure.hpp"
#include "engine/tls/info.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::tls {
struct ContextError;
}  // namespace smtpsh::tls

namespace smtpsh::net {

struct ConnectOptions {
  std::string source;  // local address to bind, empty for any
  engine::Duration timeout = std::chrono::seconds(30);
  // Host names go through this resolver (so a probe uses one resolver end to end); without
  // one, through the system's (getaddrinfo).
  std::shared_ptr<dns::Resolver> resolver = nullptr;
  std::shared_ptr<const ConnectHook> hook = nullptr;  // asked before each address is tried
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Notify = void (*)(void* context);

  // A line longer than this (not counting its CRLF) is refused, not buffered without bound.
  static constexpr std::size_t max_line = 65536;
  // The largest byte count one read may ask for.
  static constexpr std::size_t max_read = std::size_t{16} * 1024 * 1024;

  static std::shared_ptr<Connection> create(asio::io_context& io);
  // A connection a server accepted: already connected.
  static std::shared_ptr<Connection> adopt(asio::io_context& io, asio::ip::tcp::socket socket);

  // Resolves `host` (options.resolver, else the system's; addresses are used as they are), then
  // tries each address
  // in turn until one accepts, all under options.timeout. Outcome: write_outcome().
  void connect(std::string_view host, std::uint16_t port, const ConnectOptions& options,
               Notify notify, void* context);

  // Writes all of `bytes`; the caller keeps them alive until notified. Outcome: write_outcome(),
  // bytes_sent().
  void send(std::string_view bytes, Notify notify, void* context);

  // When a whole line is already buffered: takes it without I/O and returns true (data() holds
  // it, read_outcome() says how it went). Otherwise returns false and nothing changes.
  bool take_buffered_line();
  // Reads up to the next LF (a CR before it is dropped). Outcome: read_outcome(), data(); on
  // failure data() holds what arrived of an unterminated line (the "partial").
  void read_line(Notify notify, void* context);

  // Turns the connection into TLS: after the server's 220 to STARTTLS, or right after connect
  // for implicit TLS. Handshakes under the timeout. Outcome: write_outcome() (Failure::tls, or
  // timeout/closed, with the reason in words and tls_failure_reason()); tls_info() after
  // success. Bytes that arrived before the handshake fail it ("not_tls"): a TLS server sends
  // nothing before the ClientHello, and plain text then must never pass for TLS data.
  void start_tls(const tls::Options& options, Notify notify, void* context);
  // The server side of the handshake (the scenario server, after its 220 to STARTTLS).
  void accept_tls(const tls::ServerOptions& options, Notify notify, void* context);
  bool is_tls() const { return tls_ != nullptr; }
  const tls::Info* tls_info() const { return tls_info_.get(); }
  // Why the last handshake failed, in one stable word: "alert" (the server refused with a TLS
  // alert), "closed" (it closed without one), "timeout" (it never answered), "not_tls" (it
  // answered something that is not TLS), "version" (it chose a version not offered),
  // "verify" (the certificate did not verify as asked), "local" (our options).
  const char* tls_failure_reason() const { return tls_reason_; }

  // Takes whatever has arrived and not been read: lines already buffered, and on a plain
  // connection the bytes waiting in the socket (read without waiting). Up to `max_lines`
  // lines go to `lines` (an unterminated tail counts as one; each cut to max_line); `more`
  // says some were left out. Returns false, taking nothing, when nothing is waiting. The
  // SMTP session calls it before each command: what it finds, no command asked for.
  bool take_waiting_lines(std::vector<std::string>& lines, std::size_t max_lines, bool& more);

  // Whether the server sent something the connection can hand out now, without waiting: bytes
  // buffered or waiting in the socket, or the end of the connection. Under TLS it reads what
  // is waiting through the TLS layer without waiting: records that are no data (TLS 1.3
  // session tickets, key updates) are consumed and count for nothing, data is buffered for the
  // next read, and an alert or the end of the connection counts (the next read reports it).
  // For a caller that waits for the socket beside the loop (raw mode on a terminal); false
  // while a read or a write is in flight.
  bool input_waiting();

  bool take_buffered(std::size_t count);
  void read_exactly(std::size_t count, Notify notify, void* context);

  const Outcome& read_outcome() const { return read_.outcome; }
  const Outcome& write_outcome() const { return write_.outcome; }
  // What the last read produced; valid until the next read starts.
  std::string_view data() const { return data_; }
  std::size_t bytes_sent() const { return bytes_sent_; }

  bool reading() const { return read_.busy; }
  bool writing() const { return write_.busy; }
  bool is_open() const { return socket_.is_open(); }
  // The socket's descriptor, for a caller that waits for it to become readable beside the
  // loop's own wait (raw mode on a terminal); -1 when closed. Never read from or closed there.
  int descriptor() { return socket_.is_open() ? socket_.native_handle() : -1; }

  // Cancels what is in flight; it completes as Failure::interrupted.
  void interrupt();
  // Closes the socket; operations in flight complete as Failure::closed.
  void close();
  // Forgets the callbacks of operations in flight: their owner is gone.
  void detach();

  engine::Duration timeout() const { return timeout_; }
  void set_timeout(engine::Duration timeout) { timeout_ = timeout; }

  std::string local_address() const;
  std::string remote_address() const;  // empty until connected (kept after close)

  explicit Connection(asio::io_context& io);  // use create(): handlers need shared_from_this
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

 private:
  struct Direction {
    explicit Direction(asio::io_context& io) : deadline(io) {}
    engine::Deadline deadline;
    Outcome outcome;
    Notify notify = nullptr;
    void* context = nullptr;
    bool busy = false;
    bool interrupted = false;
  };

  void begin(Direction& direction, Notify notify, void* context);
  void finish(Direction& direction);
  void finish_soon(Direction& direction);
  Failure failure_of(const Direction& direction, const std::error_code& ec) const;

  void start_resolve(const std::string& host, std::uint16_t port);
  void start_lookup(const std::shared_ptr<dns::Resolver>& resolver, const std::string& host,
                    std::uint16_t port);
  static void on_lookup(void* self);
  void abandon_resolving();
  void try_endpoint(std::size_t index);
  void fail_connect(const Direction& direction, const std::error_code& ec);
  bool accepted_then_reset(const std::error_code& ec) const;

  void continue_send();
  void on_handshake(const std::error_code& ec);
  bool begin_tls(std::shared_ptr<asio::ssl::context> context, const tls::ContextError& error);
  template <class Buffers, class Handler>
  void read_some(const Buffers& buffers, Handler&& handler);
  template <class Buffers, class Handler>
  void write_some(const Buffers& buffers, Handler&& handler);
  void read_more(void (*next)(Connection&, const std::error_code&));
  void on_line(const std::error_code& ec);
  void on_bytes(const std::error_code& ec);
  void discard_consumed();
  bool decrypt_waiting();
  std::string_view line_at(std::size_t newline) const;
  std::string peer_name() const;

  asio::io_context& io_;
  asio::ip::tcp::socket socket_;
  // Only after start_tls: the stream wraps socket_, and every read and write goes through it.
  std::shared_ptr<asio::ssl::context>
      tls_context_;  // shared with other handshakes (tls::shared_context)
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  std::unique_ptr<tls::Info> tls_info_;
  std::unique_ptr<tls::Options> tls_options_;  // while handshaking
  const char* tls_reason_ = "";
  Direction read_;
  Direction write_;

  std::string buffer_;  // bytes received, the first consumed_ of them already handed out
  std::size_t consumed_ = 0;
  std::string_view data_;
  std::size_t bytes_sent_ = 0;
  std::string_view pending_send_;  // the caller's bytes, while a send is in flight
  std::size_t scanned_ = 0;        // bytes of buffer_ already searched for a line end
  std::size_t wanted_ = 0;         // the byte count of read_exactly
  engine::Duration timeout_ = std::chrono::seconds(30);
  bool closed_locally_ = false;

  // Only while connecting: the addresses to try and why the last one failed.
  std::unique_ptr<asio::ip::tcp::resolver> resolver_;
  std::shared_ptr<dns::AddressLookup> lookup_;
  std::uint16_t port_ = 0;
  std::vector<asio::ip::tcp::endpoint> endpoints_;
  std::error_code last_connect_error_;
  std::string target_;  // "host:port" as asked, for messages
  std::string source_;
  std::shared_ptr<const ConnectHook> hook_;
  Admission admission_;  // what the hook let this connection through with
  std::uint32_t connect_generation_ = 0;
  asio::ip::tcp::endpoint remote_;
  asio::ip::tcp::endpoint local_;
  bool connected_ = false;
};

}  // namespace smtpsh::net
