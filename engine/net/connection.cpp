#include "engine/net/connection.hpp"

#include "engine/base/endpoint.hpp"

#include <poll.h>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <cerrno>

#include <algorithm>

namespace smtpsh::net {

namespace {
// A buffer that once held a long line is given back when it empties, so an idle connection
// stays small.
constexpr std::size_t idle_buffer_capacity = std::size_t{16} * 1024;
// How much one read system call may take in.
constexpr std::size_t read_chunk = 4096;
}  // namespace

std::shared_ptr<Connection> Connection::create(asio::io_context& io) {
  return std::make_shared<Connection>(io);
}

std::shared_ptr<Connection> Connection::adopt(asio::io_context& io, asio::ip::tcp::socket socket) {
  auto connection = std::make_shared<Connection>(io);
  std::error_code ec;
  connection->remote_ = socket.remote_endpoint(ec);
  connection->local_ = socket.local_endpoint(ec);
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  connection->socket_ = std::move(socket);
  connection->connected_ = true;
  connection->target_ = engine::format_endpoint(connection->remote_);
  return connection;
}

Connection::Connection(asio::io_context& io) : io_(io), socket_(io), read_(io), write_(io) {}

// A look-up in flight holds a raw pointer to us as its callback context.
Connection::~Connection() {
  if (lookup_) lookup_->detach();
}

void Connection::begin(Direction& direction, Notify notify, void* context) {
  direction.busy = true;
  direction.interrupted = false;
  direction.notify = notify;
  direction.context = context;
  direction.outcome.succeed();
  direction.deadline.arm(timeout_, shared_from_this());
}

void Connection::finish(Direction& direction) {
  direction.busy = false;
  direction.deadline.disarm();
  Notify notify = direction.notify;
  direction.notify = nullptr;
  if (notify) notify(direction.context);
}

// Failures found before any I/O starts must still be reported asynchronously: the caller
// suspends itself after starting an operation and must not be resumed before that.
void Connection::finish_soon(Direction& direction) {
  asio::post(io_, [self = shared_from_this(), &direction] { self->finish(direction); });
}

Failure Connection::failure_of(const Direction& direction, const std::error_code& ec) const {
  if (ec == asio::error::operation_aborted) {
    if (direction.deadline.expired()) return Failure::timeout;
    if (direction.interrupted) return Failure::interrupted;
    if (closed_locally_) return Failure::closed;
  }
  return classify(ec, direction.deadline.expired());
}

// --- connect ---------------------------------------------------------------------------------

void Connection::connect(std::string_view host, std::uint16_t port, const ConnectOptions& options,
                         Notify notify, void* context) {
  timeout_ = options.timeout;
  source_ = options.source;
  hook_ = options.hook;
  target_ = engine::format_endpoint(host, port);
  closed_locally_ = false;
  connected_ = false;
  last_connect_error_.clear();
  ++connect_generation_;
  begin(write_, notify, context);

  if (!source_.empty()) {
    std::error_code ec;
    asio::ip::make_address(source_, ec);
    if (ec) {
      write_.outcome.fail(Failure::source, "source address '" + source_ + "' is not an IP address");
      return finish_soon(write_);
    }
  }
  std::error_code ec;
  auto address = asio::ip::make_address(std::string(host), ec);
  if (!ec) {
    endpoints_.assign(1, asio::ip::tcp::endpoint(address, port));
    return try_endpoint(0);
  }
  if (options.resolver) return start_lookup(options.resolver, std::string(host), port);
  start_resolve(std::string(host), port);
}

// The deadline, close() or an interrupt came before the host name resolved.
void Connection::abandon_resolving() {
  if (write_.deadline.expired())
    write_.outcome.fail(Failure::timeout, "resolving " + target_ + " timed out after " +
                                              engine::describe_duration(timeout_));
  else if (closed_locally_)
    write_.outcome.fail(Failure::closed, "connect to " + target_ + " abandoned: connection closed");
  else
    write_.outcome.fail(Failure::interrupted, "connect to " + target_ + " interrupted");
  finish_soon(write_);
}

void Connection::start_lookup(const std::shared_ptr<dns::Resolver>& resolver,
                              const std::string& host, std::uint16_t port) {
  port_ = port;
  write_.deadline.slot().assign([this](asio::cancellation_type) {
    write_.deadline.slot().clear();
    if (!lookup_) return;
    lookup_->detach();
    lookup_.reset();
    abandon_resolving();
  });
  lookup_ = dns::AddressLookup::start(resolver, host, &Connection::on_lookup, this);
}

void Connection::on_lookup(void* self_pointer) {
  auto self = static_cast<Connection*>(self_pointer)->shared_from_this();
  self->write_.deadline.slot().clear();
  auto lookup = std::move(self->lookup_);
  if (!lookup->ok()) {
    self->write_.outcome.fail(Failure::dns, lookup->error());
    return self->finish(self->write_);
  }
  self->endpoints_.clear();
  for (const auto& address : lookup->addresses())
    self->endpoints_.emplace_back(address, self->port_);
  self->try_endpoint(0);
}

void Connection::start_resolve(const std::string& host, std::uint16_t port) {
  resolver_ = std::make_unique<asio::ip::tcp::resolver>(io_);
  // getaddrinfo runs on a helper thread and cannot be stopped; when the deadline (or an
  // interrupt) comes first the connect ends at once and the late answer is ignored.
  write_.deadline.slot().assign([this](asio::cancellation_type) {
    write_.deadline.slot().clear();
    if (resolver_) resolver_->cancel();
    ++connect_generation_;
    abandon_resolving();
  });
  resolver_->async_resolve(
      host, std::to_string(port),
      [self = shared_from_this(), generation = connect_generation_, host](
          const std::error_code& ec, const asio::ip::tcp::resolver::results_type& results) {
        if (generation != self->connect_generation_) return;
        self->write_.deadline.slot().clear();
        self->resolver_.reset();
        if (ec) {
          self->write_.outcome.fail(self->closed_locally_ ? Failure::closed : Failure::dns,
                                    "cannot resolve '" + host + "': " + ec.message());
          return self->finish(self->write_);
        }
        self->endpoints_.clear();
        for (const auto& entry : results)
          self->endpoints_.push_back(entry.endpoint());
        self->try_endpoint(0);
      });
}

void Connection::try_endpoint(std::size_t index) {
  std::error_code ignored;
  socket_.close(ignored);
  if (index >= endpoints_.size()) {
    if (!last_connect_error_) last_connect_error_ = asio::error::host_not_found;
    fail_connect(write_, last_connect_error_);
    return finish_soon(write_);
  }
  auto endpoint = endpoints_[index];
  admission_ = {};  // what an earlier address was admitted with goes with its failure
  if (hook_) {
    ConnectHook::Verdict verdict = hook_->before_connect(endpoint, admission_);
    if (verdict == ConnectHook::Verdict::refuse) {
      last_connect_error_ = asio::error::connection_refused;
      return try_endpoint(index + 1);
    }
    if (verdict == ConnectHook::Verdict::blackhole) {
      // Silent until the deadline, as a firewall that drops the SYN.
      write_.deadline.slot().assign([this](asio::cancellation_type) {
        write_.deadline.slot().clear();
        fail_connect(write_, asio::error::operation_aborted);
        finish_soon(write_);
      });
      return;
    }
  }
  std::error_code ec;
  socket_.open(endpoint.protocol(), ec);
  if (!ec && !source_.empty()) {
    auto source = asio::ip::make_address(source_, ec);
    if (!ec && source.is_v4() != endpoint.address().is_v4()) {
      last_connect_error_ = asio::error::address_family_not_supported;
      return try_endpoint(index + 1);
    }
    if (!ec) socket_.bind(asio::ip::tcp::endpoint(source, 0), ec);
    if (ec) {
      // Not a fact about the peer: this machine cannot send from that address.
      std::string why =
          errno_of(ec) == EADDRNOTAVAIL ? "it is not an address of this machine" : ec.message();
      write_.outcome.fail(is_resource_error(ec) ? Failure::resource : Failure::source,
                          "cannot connect from source address " + source_ + ": " + why);
      socket_.close(ignored);
      return finish_soon(write_);
    }
  }
  if (ec) {
    last_connect_error_ = ec;
    // Out of descriptors: the next address would fail the same way.
    if (is_resource_error(ec)) return try_endpoint(endpoints_.size());
    return try_endpoint(index + 1);
  }
  socket_.async_connect(
      endpoint, asio::bind_cancellation_slot(
                    write_.deadline.slot(), [self = shared_from_this(), index](std::error_code ec) {
                      // Accepted, then reset before we looked: the peer answered the SYN, so
                      // this is a connection that closed before its greeting (the read that
                      // follows reports it), not a failed connect.
                      if (self->accepted_then_reset(ec)) ec.clear();
                      if (!ec) {
                        self->remote_ = self->endpoints_[index];
                        std::error_code unknown;
                        self->local_ = self->socket_.local_endpoint(unknown);
                        self->connected_ = true;
                        self->endpoints_.clear();
                        std::error_code ignored;
                        self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
                        return self->finish(self->write_);
                      }
                      Failure failure = self->failure_of(self->write_, ec);
                      if (failure == Failure::timeout || failure == Failure::interrupted ||
                          failure == Failure::closed) {
                        self->fail_connect(self->write_, ec);
                        return self->finish(self->write_);
                      }
                      self->last_connect_error_ = ec;
                      self->try_endpoint(index + 1);
                    }));
}

bool Connection::accepted_then_reset(const std::error_code& ec) const {
  if (closed_locally_ || write_.deadline.expired() || write_.interrupted) return false;
  return ec == asio::error::connection_reset || ec == asio::error::eof ||
         ec == asio::error::broken_pipe;
}

void Connection::fail_connect(const Direction& direction, const std::error_code& ec) {
  admission_ = {};
  Failure failure = failure_of(direction, ec);
  std::string text;
  switch (failure) {
    case Failure::timeout:
      text = "connect to " + target_ + " timed out after " + engine::describe_duration(timeout_);
      break;
    case Failure::refused:
      text = "connection refused by " + target_;
      break;
    case Failure::interrupted:
      text = "connect to " + target_ + " interrupted";
      break;
    case Failure::closed:
      text = "connect to " + target_ + " abandoned: connection closed";
      break;
    case Failure::resource:
      text = "cannot connect to " + target_ + ": " + describe_resource_error(ec);
      break;
    default:
      text = "cannot connect to " + target_ + ": " + ec.message();
      break;
  }
  endpoints_.clear();
  write_.outcome.fail(failure, std::move(text));
}

// --- send ------------------------------------------------------------------------------------

void Connection::send(std::string_view bytes, Notify notify, void* context) {
  begin(write_, notify, context);
  bytes_sent_ = 0;
  pending_send_ = bytes;
  continue_send();
}

// Plain or TLS: after start_tls every read and write goes through the TLS stream.
template <class Buffers, class Handler>
void Connection::read_some(const Buffers& buffers, Handler&& handler) {
  if (tls_)
    tls_->async_read_some(buffers, std::forward<Handler>(handler));
  else
    socket_.async_read_some(buffers, std::forward<Handler>(handler));
}

template <class Buffers, class Handler>
void Connection::write_some(const Buffers& buffers, Handler&& handler) {
  if (tls_)
    tls_->async_write_some(buffers, std::forward<Handler>(handler));
  else
    socket_.async_write_some(buffers, std::forward<Handler>(handler));
}

// Asio 1.22's composed operations do not pass per-operation cancellation on to the socket,
// so reads and writes are driven here one system call at a time, each bound to the deadline.
void Connection::continue_send() {
  write_some(
      asio::buffer(pending_send_.data() + bytes_sent_, pending_send_.size() - bytes_sent_),
      asio::bind_cancellation_slot(
          write_.deadline.slot(), [self = shared_from_this()](std::error_code ec, std::size_t n) {
            self->bytes_sent_ += n;
            if (!ec && self->bytes_sent_ < self->pending_send_.size()) return self->continue_send();
            if (ec) {
              Failure failure = self->failure_of(self->write_, ec);
              std::string text = "sending to " + self->peer_name();
              if (failure == Failure::timeout)
                text += " timed out after " + engine::describe_duration(self->timeout_);
              else
                text += ": " + (failure == Failure::closed ? std::string("connection closed")
                                                           : ec.message());
              self->write_.outcome.fail(failure, std::move(text));
            }
            self->pending_send_ = {};
            self->finish(self->write_);
          }));
}

// --- reads -----------------------------------------------------------------------------------

void Connection::discard_consumed() {
  if (consumed_ == 0) return;
  buffer_.erase(0, consumed_);
  consumed_ = 0;
  data_ = {};
  if (buffer_.empty() && buffer_.capacity() > idle_buffer_capacity) buffer_.shrink_to_fit();
}

std::string_view Connection::line_at(std::size_t newline) const {
  std::string_view line(buffer_.data(), newline);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::string Connection::peer_name() const {
  return connected_ ? engine::format_endpoint(remote_) : target_;
}

bool Connection::take_buffered_line() {
  discard_consumed();
  auto newline = buffer_.find('\n');
  if (newline == std::string::npos) return false;
  read_.outcome.succeed();
  data_ = line_at(newline);
  consumed_ = newline + 1;
  if (data_.size() > max_line) {
    read_.outcome.fail(Failure::protocol, "line too long: over " + std::to_string(max_line) +
                                              " bytes from " + engine::format_endpoint(remote_));
    data_ = {};
  }
  return true;
}

void Connection::read_line(Notify notify, void* context) {
  discard_consumed();
  begin(read_, notify, context);
  if (buffer_.find('\n') != std::string::npos) {
    take_buffered_line();
    return finish_soon(read_);
  }
  scanned_ = buffer_.size();
  read_more([](Connection& self, const std::error_code& ec) { self.on_line(ec); });
}

void Connection::read_more(void (*next)(Connection&, const std::error_code&)) {
  std::size_t old_size = buffer_.size();
  buffer_.resize(old_size + read_chunk);
  read_some(asio::buffer(buffer_.data() + old_size, read_chunk),
            asio::bind_cancellation_slot(
                read_.deadline.slot(),
                [self = shared_from_this(), old_size, next](std::error_code ec, std::size_t n) {
                  self->buffer_.resize(old_size + n);
                  next(*self, ec);
                }));
}

void Connection::on_line(const std::error_code& ec) {
  if (!ec) {
    auto newline = buffer_.find('\n', scanned_);
    if (newline == std::string::npos && buffer_.size() <= max_line + 1) {
      scanned_ = buffer_.size();
      return read_more([](Connection& self, const std::error_code& e) { self.on_line(e); });
    }
    if (newline != std::string::npos) {
      take_buffered_line();
      return finish(read_);
    }
    // The limit was reached without a line end: drop what was buffered rather than grow.
    read_.outcome.fail(Failure::protocol, "line too long: over " + std::to_string(max_line) +
                                              " bytes without a line end from " + peer_name());
    buffer_.clear();
    buffer_.shrink_to_fit();
    data_ = {};
    return finish(read_);
  }
  Failure failure = failure_of(read_, ec);
  data_ = buffer_;  // the partial line
  consumed_ = buffer_.size();
  std::string text = "waiting for a line from " + peer_name();
  if (failure == Failure::timeout)
    text += " timed out after " + engine::describe_duration(timeout_);
  else if (failure == Failure::closed)
    text =
        "connection closed by " + peer_name() + (data_.empty() ? "" : " in the middle of a line");
  else
    text += ": " + ec.message();
  read_.outcome.fail(failure, std::move(text));
  finish(read_);
}

bool Connection::take_waiting_lines(std::vector<std::string>& lines, std::size_t max_lines,
                                    bool& more) {
  discard_consumed();
  more = false;
  // Under TLS the socket also carries records that are no application data (TLS 1.3 session
  // tickets): only bytes already decrypted count there.
  if (!tls_ && socket_.is_open() && !read_.busy) {
    std::error_code ec;
    std::size_t waiting = socket_.available(ec);
    if (!ec && waiting > 0) {
      std::size_t old_size = buffer_.size();
      std::size_t take = std::min(waiting, max_line + 1);
      buffer_.resize(old_size + take);
      std::size_t got = socket_.read_some(asio::buffer(buffer_.data() + old_size, take), ec);
      buffer_.resize(old_size + (ec ? 0 : got));
      if (waiting > take) more = true;
    }
  }
  if (buffer_.empty()) return false;
  std::string_view rest = buffer_;
  while (!rest.empty()) {
    if (lines.size() == max_lines) {
      more = true;
      break;
    }
    std::size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.emplace_back(line.substr(0, max_line));
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
  }
  buffer_.clear();
  scanned_ = 0;
  data_ = {};
  if (buffer_.capacity() > idle_buffer_capacity) buffer_.shrink_to_fit();
  return true;
}

bool Connection::input_waiting() {
  discard_consumed();
  if (!buffer_.empty()) return true;
  if (!socket_.is_open() || read_.busy || write_.busy) return false;
  if (tls_) return decrypt_waiting();
  pollfd waiting{socket_.native_handle(), POLLIN, 0};
  return ::poll(&waiting, 1, 0) > 0;  // bytes, the end of the connection, or an error
}

// Reads through the TLS layer what the socket holds, without waiting (the socket is made
// non-blocking for the call: the TLS layer's read then stops at "would block"), up to a line's
// worth. True when data arrived, or when the read failed otherwise (an alert, the end of the
// connection), which the next read reports in full.
bool Connection::decrypt_waiting() {
  std::error_code ec;
  socket_.non_blocking(true, ec);
  if (ec) return false;
  bool ended = false;
  char chunk[4096];
  while (buffer_.size() <= max_line) {
    std::size_t got = tls_->read_some(asio::buffer(chunk), ec);
    if (ec) {
      ended = ec != asio::error::would_block && ec != asio::error::try_again;
      break;
    }
    buffer_.append(chunk, got);
  }
  std::error_code ignored;
  socket_.non_blocking(false, ignored);
  return ended || !buffer_.empty();
}

bool Connection::take_buffered(std::size_t count) {
  discard_consumed();
  if (buffer_.size() < count) return false;
  read_.outcome.succeed();
  data_ = std::string_view(buffer_.data(), count);
  consumed_ = count;
  return true;
}

void Connection::read_exactly(std::size_t count, Notify notify, void* context) {
  discard_consumed();
  begin(read_, notify, context);
  wanted_ = count;
  if (buffer_.size() >= count) {
    take_buffered(count);
    return finish_soon(read_);
  }
  read_more([](Connection& self, const std::error_code& ec) { self.on_bytes(ec); });
}

void Connection::on_bytes(const std::error_code& ec) {
  const std::size_t wanted = wanted_;
  if (!ec) {
    if (buffer_.size() < wanted)
      return read_more([](Connection& self, const std::error_code& e) { self.on_bytes(e); });
    take_buffered(wanted);
    return finish(read_);
  }
  Failure failure = failure_of(read_, ec);
  data_ = buffer_;
  consumed_ = buffer_.size();
  std::string text = "waiting for " + std::to_string(wanted) + " bytes from " + peer_name();
  if (failure == Failure::timeout)
    text += " timed out after " + engine::describe_duration(timeout_);
  else if (failure == Failure::closed)
    text = "connection closed by " + engine::format_endpoint(remote_) + " after " +
           std::to_string(data_.size()) + " of " + std::to_string(wanted) + " bytes";
  else
    text += ": " + ec.message();
  read_.outcome.fail(failure, std::move(text));
  finish(read_);
}

// --- lifetime --------------------------------------------------------------------------------

void Connection::interrupt() {
  for (Direction* direction : {&read_, &write_}) {
    if (!direction->busy) continue;
    direction->interrupted = true;
    direction->deadline.cancel_now();
  }
}

void Connection::close() {
  closed_locally_ = true;
  if (resolver_ || lookup_) {
    // A pending resolve ends through the cancellation handler installed for it.
    write_.deadline.cancel_now();
  }
  std::error_code ignored;
  socket_.close(ignored);
  admission_ = {};
}

void Connection::detach() {
  read_.notify = nullptr;
  write_.notify = nullptr;
}

// Kept from the moment of connecting, so it can still be told after the socket closed.
std::string Connection::local_address() const {
  return connected_ ? engine::format_endpoint(local_) : std::string();
}

std::string Connection::remote_address() const {
  return connected_ ? engine::format_endpoint(remote_) : std::string();
}

}  // namespace smtpsh::net
