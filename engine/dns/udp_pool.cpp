#include "engine/dns/udp_pool.hpp"

#include <openssl/rand.h>
#include <asio/post.hpp>

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace smtpsh::dns {

namespace {
// Datagrams read one after another in one turn of a socket's receive loop, before the loop
// gives the other handlers their turn.
constexpr int max_batch = 64;
// Errors read from the error queue at once.
constexpr int max_errors = 256;
// A socket's receive buffer: room for the answers to the queries a busy socket has in flight
// (the kernel caps it at net.core.rmem_max).
constexpr int receive_buffer = 1 << 20;

// Whether an ICMP error ends the try of the query whose datagram caused it: the errors Linux
// reports on a connected UDP socket (icmp_err_convert and icmpv6_err_convert, "fatal"), which
// is what the resolver acted on before its sockets were pooled. Fragmentation needed, a source
// route failure, TOS unreachability and an expired TTL are not: the answer may still come.
bool hard_error(const sock_extended_err& error) {
  if (error.ee_origin == SO_EE_ORIGIN_ICMP) {
    if (error.ee_type == 3) return error.ee_code != 4 && error.ee_code != 5 && error.ee_code < 11;
    return error.ee_type == 12;  // parameter problem
  }
  if (error.ee_origin == SO_EE_ORIGIN_ICMP6) return error.ee_type == 1 || error.ee_type == 4;
  return false;
}

// Errors a receive reports for an ICMP message (sk_err); the error queue says more.
bool icmp_errno(const std::error_code& ec) {
  if (ec.category() != std::system_category()) return false;
  switch (ec.value()) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENONET:
    case ENOPROTOOPT:
    case EPROTO:
    case EMSGSIZE:
    case EOPNOTSUPP:
    case EACCES:
      return true;
    default:
      return false;
  }
}

std::uint16_t id_of(const void* wire) {
  const auto* bytes = static_cast<const unsigned char*>(wire);
  return static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1]);
}
}  // namespace

// --- UdpSocket -------------------------------------------------------------------------------

UdpSocket::UdpSocket(asio::io_context& io, std::shared_ptr<UdpPoolStats> stats)
    : socket_(io), stats_(std::move(stats)) {}

UdpSocket::~UdpSocket() {
  close();
}

std::error_code UdpSocket::open(const asio::ip::udp& protocol) {
  std::error_code ec;
  socket_.open(protocol, ec);
  if (ec) return ec;
  const int on = 1;
  const bool v6 = protocol == asio::ip::udp::v6();
  // ICMP errors go to the error queue, which names their destination: the socket is not
  // connected, so without this Linux would not report them at all. (An IPv6 socket also
  // reaches IPv4-mapped addresses, as a connected one did: ICMPv4 for those, where it works.)
  if (::setsockopt(socket_.native_handle(), v6 ? IPPROTO_IPV6 : IPPROTO_IP,
                   v6 ? IPV6_RECVERR : IP_RECVERR, &on, sizeof on) != 0)
    ec = std::error_code(errno, std::system_category());
  if (!ec && v6) ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_RECVERR, &on, sizeof on);
  // Port 0: the kernel picks a free ephemeral port at random.
  if (!ec)
    socket_.bind(asio::ip::udp::endpoint(v6 ? asio::ip::address(asio::ip::address_v6::any())
                                            : asio::ip::address(asio::ip::address_v4::any()),
                                         0),
                 ec);
  if (!ec) socket_.non_blocking(true, ec);
  if (!ec) port_ = socket_.local_endpoint(ec).port();
  if (ec) {
    std::error_code ignored;
    socket_.close(ignored);
    return ec;
  }
  std::error_code ignored;
  socket_.set_option(asio::socket_base::receive_buffer_size(receive_buffer), ignored);
  open_ = true;
  ++stats_->open;
  ++stats_->opened;
  return {};
}

bool UdpSocket::add(std::uint16_t id, const Waiter& waiter) {
  if (!usable() || !waiters_.try_emplace(id, waiter).second) return false;
  ++uses_;
  receive();
  return true;
}

void UdpSocket::remove(std::uint16_t id, const void* context) {
  auto it = waiters_.find(id);
  if (it == waiters_.end() || it->second.context != context) return;
  waiters_.erase(it);
  if (!waiters_.empty()) return;
  if (retired_) return close();
  // Nobody waits: stop receiving, so that the loop can run out of work. A query that comes
  // before the cancelled receive has ended finds it still outstanding; its handler receives
  // again for it.
  if (receiving_) {
    std::error_code ignored;
    socket_.cancel(ignored);
  }
}

void UdpSocket::retire() {
  retired_ = true;
  if (waiters_.empty()) close();
}

void UdpSocket::close() {
  if (!open_) return;
  open_ = false;
  waiters_.clear();
  outgoing_.clear();
  outgoing_bytes_.clear();
  outgoing_sent_ = 0;
  std::error_code ignored;
  socket_.close(ignored);  // an outstanding receive ends with operation_aborted
  --stats_->open;
}

void UdpSocket::send(std::string_view wire, std::uint16_t id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end() || !open_) return;
  outgoing_.push_back({id, it->second.context, static_cast<std::uint32_t>(outgoing_bytes_.size()),
                       static_cast<std::uint32_t>(wire.size())});
  outgoing_bytes_.append(wire);
  if (flushing_) return;
  flushing_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->flush(); });
}

void UdpSocket::flush() {
  flushing_ = false;
  if (!open_) return;
  struct Failed {
    std::uint16_t id;
    const void* context;
    std::error_code ec;
  };
  std::vector<Failed> failed;
  int retries = 0;
  bool full = false;
  while (outgoing_sent_ < outgoing_.size() && !full) {
    // Up to 64 datagrams whose queries still wait, in one sendmmsg.
    std::array<mmsghdr, 64> messages{};
    std::array<iovec, 64> parts{};
    std::array<std::size_t, 64> index{};
    std::size_t count = 0;
    for (std::size_t at = outgoing_sent_; at < outgoing_.size() && count < messages.size(); ++at) {
      const Outgoing& out = outgoing_[at];
      auto it = waiters_.find(out.id);
      // Its query left (interrupted, say), or left and came back on another try: not sent.
      if (it == waiters_.end() || it->second.context != out.context) continue;
      parts[count] = {outgoing_bytes_.data() + out.offset, out.size};
      auto& header = messages[count].msg_hdr;
      header.msg_name = it->second.server.data();
      header.msg_namelen = static_cast<socklen_t>(it->second.server.size());
      header.msg_iov = &parts[count];
      header.msg_iovlen = 1;
      index[count++] = at;
    }
    if (count == 0) {
      outgoing_sent_ = outgoing_.size();
      break;
    }
    std::size_t done = 0;
    while (done < count) {
      int sent = ::sendmmsg(socket_.native_handle(), messages.data() + done,
                            static_cast<unsigned>(count - done), MSG_DONTWAIT);
      if (sent > 0) {
        stats_->queries += static_cast<std::uint64_t>(sent);
        // Fewer sent than asked: the next one met an error, which sendmmsg does not report.
        // When it was a pending ICMP error (sk_err), the error queue still says whose it is.
        if (static_cast<std::size_t>(sent) < count - done) read_errors();
        done += static_cast<std::size_t>(sent);
        continue;
      }
      int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        full = true;  // the send buffer is full: go on when there is room
        break;
      }
      // Linux reports a pending ICMP error (of another datagram) to the next send on the
      // socket too: hand it to its query and send again. Otherwise the error is this one's.
      if (read_errors() > 0 && ++retries < 8) continue;
      const Outgoing& out = outgoing_[index[done]];
      failed.push_back({out.id, out.context, std::error_code(error, std::system_category())});
      ++done;
    }
    outgoing_sent_ = done < count ? index[done] : index[count - 1] + 1;
  }
  if (full) {
    flushing_ = true;
    socket_.async_wait(asio::socket_base::wait_write,
                       [self = shared_from_this()](std::error_code) { self->flush(); });
  } else {
    outgoing_.clear();
    outgoing_bytes_.clear();
    outgoing_sent_ = 0;
  }
  // Last: their queries may queue datagrams on this socket again.
  for (const Failed& one : failed) {
    auto it = waiters_.find(one.id);
    if (it == waiters_.end() || it->second.context != one.context) continue;
    Waiter waiter = it->second;
    waiter.fail(waiter.context, one.ec, true);
  }
}

void UdpSocket::receive() {
  if (receiving_ || dispatching_ || !open_ || waiters_.empty()) return;
  receiving_ = true;
  socket_.async_receive_from(asio::buffer(buffer_), sender_,
                             [self = shared_from_this()](std::error_code ec, std::size_t size) {
                               self->on_receive(ec, size);
                             });
}

void UdpSocket::on_receive(std::error_code ec, std::size_t size) {
  receiving_ = false;
  if (!open_) return;  // closed: the pool or the last query is gone
  dispatching_ = true;
  bool failed = false;
  // The datagram that woke us, then those already queued behind it, without a turn of the
  // loop for each.
  for (int read = 1;; ++read) {
    if (!ec) {
      dispatch(size);
    } else if (ec == asio::error::operation_aborted || ec == asio::error::would_block ||
               ec == asio::error::try_again) {
      break;
    } else if (read_errors() == 0 && !icmp_errno(ec)) {
      fail_all(ec);  // not an error the network reported: this socket is of no use any more
      failed = true;
      break;
    }
    if (!open_ || waiters_.empty() || read >= max_batch) break;
    size = socket_.receive_from(asio::buffer(buffer_), sender_, 0, ec);
  }
  dispatching_ = false;
  if (!failed) receive();
}

void UdpSocket::dispatch(std::size_t size) {
  if (size >= 2) {
    auto it = waiters_.find(id_of(buffer_.data()));
    // From the address and port asked, or from somebody else: a stray or a spoofed datagram.
    if (it != waiters_.end() && it->second.server == sender_) {
      Waiter waiter = it->second;  // a copy: the waiter may leave or register again
      ++stats_->delivered;
      waiter.deliver(waiter.context, std::string_view(buffer_.data(), size));
      return;
    }
  }
  ++stats_->ignored;
}

std::size_t UdpSocket::read_errors() {
  struct Failed {
    std::uint16_t id;
    asio::ip::udp::endpoint server;
    int error;
  };
  std::vector<Failed> failed;
  std::size_t count = 0;
  for (; count < max_errors; ++count) {
    unsigned char data[64];  // the start of our datagram: its ID is enough
    sockaddr_storage name{};
    alignas(cmsghdr) char control[512];
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_name = &name;
    msg.msg_namelen = sizeof name;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t got = ::recvmsg(socket_.native_handle(), &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (got < 0) break;  // none left
    sock_extended_err error{};
    bool found = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
          (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
        std::memcpy(&error, CMSG_DATA(c), sizeof error);
        found = true;
      }
    }
    // msg_name is where the datagram that caused the error went; the data is its payload.
    asio::ip::udp::endpoint destination;
    if (!found || !hard_error(error) || got < 2 || msg.msg_namelen > destination.capacity() ||
        (name.ss_family != AF_INET && name.ss_family != AF_INET6))
      continue;
    std::memcpy(destination.data(), &name, msg.msg_namelen);
    destination.resize(msg.msg_namelen);
    failed.push_back({id_of(data), destination, static_cast<int>(error.ee_errno)});
  }
  if (!failed.empty()) {
    // Soon, not now: this may run inside a send of another query.
    asio::post(socket_.get_executor(), [self = shared_from_this(), failed = std::move(failed)] {
      for (const Failed& one : failed) {
        auto it = self->waiters_.find(one.id);
        if (it == self->waiters_.end() || it->second.server != one.server) continue;
        Waiter waiter = it->second;
        ++self->stats_->icmp;
        waiter.fail(waiter.context, std::error_code(one.error, std::system_category()), false);
      }
    });
  }
  return count;
}

void UdpSocket::fail_all(const std::error_code& ec) {
  retired_ = true;
  std::vector<std::pair<std::uint16_t, Waiter>> all(waiters_.begin(), waiters_.end());
  asio::post(socket_.get_executor(), [self = shared_from_this(), all = std::move(all), ec] {
    for (const auto& [id, waiter] : all) {
      auto it = self->waiters_.find(id);
      if (it == self->waiters_.end() || it->second.context != waiter.context) continue;
      Waiter copy = it->second;
      copy.fail(copy.context, ec, false);
    }
  });
}

// --- UdpPool ---------------------------------------------------------------------------------

UdpPool::UdpPool(asio::io_context& io, Options options)
    : io_(io), stats_(std::make_shared<UdpPoolStats>()) {
  set_options(options);
}

UdpPool::~UdpPool() {
  for (auto* slots : {&v4_, &v6_})
    for (auto& socket : *slots)
      if (socket) socket->close();
}

void UdpPool::set_options(Options options) {
  options.sockets_per_family = std::clamp<std::size_t>(options.sockets_per_family, 1, 256);
  options.queries_per_socket = std::max<std::size_t>(options.queries_per_socket, 1);
  options_ = options;
  for (auto* slots : {&v4_, &v6_}) {
    for (auto& socket : *slots)
      if (socket) socket->retire();
    slots->assign(options_.sockets_per_family, nullptr);
  }
}

std::shared_ptr<UdpSocket> UdpPool::open(const asio::ip::udp& protocol, std::error_code& ec) {
  auto socket = std::make_shared<UdpSocket>(io_, stats_);
  ec = socket->open(protocol);
  if (ec) return nullptr;
  return socket;
}

std::shared_ptr<UdpSocket> UdpPool::add(const UdpSocket::Waiter& waiter, std::uint16_t& id,
                                        std::error_code& ec) {
  const bool v6 = waiter.server.address().is_v6();
  auto& slots = v6 ? v6_ : v4_;
  ec.clear();
  for (int attempt = 0; attempt < 64; ++attempt) {
    auto& slot = slots[random16() % slots.size()];
    std::shared_ptr<UdpSocket> socket = slot;
    if (!socket || !socket->usable()) {
      socket = open(v6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), ec);
      if (socket) {
        if (slot) slot->retire();  // it closes once its last query has left
        slot = socket;
      } else {
        // No new socket (out of descriptors, say): one of the family that is open will do.
        for (const auto& other : slots)
          if (other && other->usable()) socket = other;
        if (!socket) return nullptr;
        ec.clear();
      }
    }
    if (socket->has(id)) {
      // Another query in flight on this socket has the ID: another ID, maybe another socket.
      ++stats_->id_clashes;
      id = random16();
      continue;
    }
    socket->add(id, waiter);
    if (socket->uses_ >= options_.queries_per_socket) socket->retire();  // its port is spent
    return socket;
  }
  ec = std::make_error_code(std::errc::resource_unavailable_try_again);
  return nullptr;
}

std::vector<std::uint16_t> UdpPool::ports() const {
  std::vector<std::uint16_t> out;
  for (const auto* slots : {&v4_, &v6_})
    for (const auto& socket : *slots)
      if (socket && socket->usable()) out.push_back(socket->local_port());
  return out;
}

std::uint16_t UdpPool::random16() {
  if (random_used_ + 2 > random_.size()) {
    if (RAND_bytes(random_.data(), static_cast<int>(random_.size())) != 1) {
      static std::mt19937 fallback{std::random_device{}()};
      for (auto& byte : random_)
        byte = static_cast<unsigned char>(fallback());
    }
    random_used_ = 0;
  }
  auto value = id_of(random_.data() + random_used_);
  random_used_ += 2;
  return value;
}

}  // namespace smtpsh::dns
