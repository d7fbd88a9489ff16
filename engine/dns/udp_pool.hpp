#pragma once
// The UDP sockets a resolver's queries share: a few per address family (16 unless told), each
// bound to a port the kernel picks at random, each replaced after a number of queries (128 unless
// told) so that the ports keep changing. A query goes out on a socket picked at random, under an
// ID that no other query in flight on that socket uses.
//
// The sockets are not connected, so each receives from anyone. One receive loop per socket hands
// a datagram to the query registered under the datagram's ID only when it came from the very
// address and port that query asked; the query checks the rest (a response, the question) and
// ignores what is not its answer. Everything else is dropped and counted. ICMP errors (port
// unreachable, no route) come back through the socket's error queue (IP_RECVERR), which names
// the destination and holds the query that caused them: they reach that query alone, so a closed
// port still fails a try at once, as it did on a socket connected to the server.
//
// A socket receives only while a query waits on it: an idle pool leaves no work on the loop.
// Queries hold the socket they wait on; the pool holds the ones that take new queries. Closing
// the pool (the resolver going away) closes those; a replaced socket closes when its last query
// leaves.

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace smtpsh::dns {

// What the pool counts, for tests and diagnostics.
struct UdpPoolStats {
  std::size_t open = 0;          // sockets open now, replaced ones still draining included
  std::uint64_t opened = 0;      // sockets opened since the pool was made
  std::uint64_t queries = 0;     // datagrams sent
  std::uint64_t delivered = 0;   // datagrams handed to the query waiting for them
  std::uint64_t ignored = 0;     // datagrams dropped: no query waits for that ID from that sender
  std::uint64_t icmp = 0;        // ICMP errors handed to the query that caused them
  std::uint64_t id_clashes = 0;  // IDs changed because another query on the socket had it
};

class UdpSocket : public std::enable_shared_from_this<UdpSocket> {
 public:
  // A datagram from the server the waiter asked, with the waiter's ID. The waiter checks the
  // rest; it may leave, register again (on this socket or another) or end, even the resolver.
  using Deliver = void (*)(void* context, std::string_view datagram);
  // An error of the waiter's own datagram: it could not be sent (`sending`), or it caused an
  // ICMP error (port or host unreachable).
  using Fail = void (*)(void* context, const std::error_code& ec, bool sending);
  struct Waiter {
    asio::ip::udp::endpoint server;
    Deliver deliver = nullptr;
    Fail fail = nullptr;
    void* context = nullptr;
  };

  UdpSocket(asio::io_context& io, std::shared_ptr<UdpPoolStats> stats);  // use UdpPool
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // Sends `wire` (copied) to the server of the waiter registered under `id`: soon, with the
  // other datagrams queued on this socket in this turn of the loop, in one system call; not at
  // all when the waiter has left by then. A failure goes to the waiter's `fail`.
  void send(std::string_view wire, std::uint16_t id);
  // Forgets the waiter registered under `id`, when it is `context`'s.
  void remove(std::uint16_t id, const void* context);

  std::uint16_t local_port() const { return port_; }
  std::size_t waiting() const { return waiters_.size(); }

 private:
  friend class UdpPool;
  std::error_code open(const asio::ip::udp& protocol);
  bool has(std::uint16_t id) const { return waiters_.count(id) != 0; }
  bool add(std::uint16_t id, const Waiter& waiter);
  bool usable() const { return open_ && !retired_; }
  // Takes no new queries from now on; closes when the last one has left.
  void retire();
  void close();
  void receive();
  void on_receive(std::error_code ec, std::size_t size);
  void dispatch(std::size_t size);
  // Reads the error queue: each ICMP error goes to the query whose datagram caused it, soon
  // (never inside this call). Returns how many errors were read.
  std::size_t read_errors();
  void fail_all(const std::error_code& ec);
  void flush();

  asio::ip::udp::socket socket_;
  std::shared_ptr<UdpPoolStats> stats_;  // shared: a draining socket may outlive its pool
  std::unordered_map<std::uint16_t, Waiter> waiters_;
  asio::ip::udp::endpoint sender_;
  std::array<char, 4096> buffer_{};  // the largest datagram read; a longer one does not decode
  // Datagrams queued by send(): their bytes one after another in outgoing_bytes_.
  struct Outgoing {
    std::uint16_t id;
    const void* context;
    std::uint32_t offset;
    std::uint32_t size;
  };
  std::vector<Outgoing> outgoing_;
  std::string outgoing_bytes_;
  std::size_t outgoing_sent_ = 0;  // the first ones of outgoing_ already sent
  bool flushing_ = false;          // a flush is posted, or waits for room in the send buffer
  std::size_t uses_ = 0;
  std::uint16_t port_ = 0;
  bool open_ = false;
  bool retired_ = false;
  bool receiving_ = false;    // an asynchronous receive is outstanding
  bool dispatching_ = false;  // in on_receive: buffer_ and sender_ hold the datagram handed on
};

class UdpPool {
 public:
  struct Options {
    std::size_t sockets_per_family = 16;   // 1..256
    std::size_t queries_per_socket = 128;  // then the socket is replaced by one on a new port
  };

  explicit UdpPool(asio::io_context& io, Options options);
  explicit UdpPool(asio::io_context& io) : UdpPool(io, Options{}) {}
  ~UdpPool();
  UdpPool(const UdpPool&) = delete;
  UdpPool& operator=(const UdpPool&) = delete;

  // Registers `waiter` on a socket for its server's family, under `id` when no other query in
  // flight on that socket has it, else under a fresh random ID written back to `id`. Returns
  // the socket (the waiter's until it calls remove), or null with `ec` set when no socket
  // could be opened.
  std::shared_ptr<UdpSocket> add(const UdpSocket::Waiter& waiter, std::uint16_t& id,
                                 std::error_code& ec);

  // New options replace every socket (each as soon as its queries have left).
  void set_options(Options options);
  const Options& options() const { return options_; }
  const UdpPoolStats& stats() const { return *stats_; }
  // The local ports of the sockets taking new queries now.
  std::vector<std::uint16_t> ports() const;

  // A random 16-bit number from OpenSSL's generator (read 512 bytes at a time).
  std::uint16_t random16();

 private:
  std::shared_ptr<UdpSocket> open(const asio::ip::udp& protocol, std::error_code& ec);

  asio::io_context& io_;
  Options options_;
  std::shared_ptr<UdpPoolStats> stats_;
  std::vector<std::shared_ptr<UdpSocket>> v4_;
  std::vector<std::shared_ptr<UdpSocket>> v6_;
  std::array<unsigned char, 512> random_{};
  std::size_t random_used_ = 512;
};

}  // namespace smtpsh::dns
