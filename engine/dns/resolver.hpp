#pragma once
// A stub resolver on the event loop: ldns messages over Asio. Each query goes over UDP to the
// configured servers in turn (attempts rounds, a deadline per try), again over TCP when the
// answer is truncated; an answer from another address or port than the server asked, or whose
// ID or question does not match, is dropped, never trusted. The UDP sockets are a small pool
// shared by all queries (udp_pool.hpp): random ports, replaced as they are used. SERVFAIL and
// REFUSED move on to the next server, as the C library does. Answers are cached for their TTL
// (negative answers for the SOA's negative TTL). A query may name servers of its own: it asks
// those, and neither reads nor fills the cache.
//
// Callback-shaped like net::Connection: query() returns a Query at once and calls
// notify(context) when it ends, never inside the call that started it. Many queries may be in
// flight; every finished query passes through one observer (the live trace, the recorder).

#include "engine/dns/hosts_file.hpp"
#include "engine/dns/message.hpp"
#include "engine/dns/resolv_conf.hpp"
#include "engine/dns/udp_pool.hpp"
#include "engine/loop/loop.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace smtpsh::dns {

// How a query ended. NODATA is `ok` with no records.
enum class Status : std::uint8_t {
  ok,
  nxdomain,     // the name does not exist
  servfail,     // every server that answered said SERVFAIL
  refused,      // every server that answered refused
  other_rcode,  // FORMERR, NOTIMP, ...: `rcode` names it
  timeout,      // no server answered in time
  unreachable,  // no server could be reached (port closed, no route)
  malformed,    // the only answers did not decode
  interrupted,  // cancelled by the caller
};

struct Result {
  Status status = Status::ok;
  std::string rcode;    // "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "timeout", ...
  std::string message;  // one sentence when status is not ok
  std::vector<Record> records;  // the answer to the question, CNAME chain followed
  std::vector<Record> aliases;  // the CNAME records of that chain, in order
  std::string canonical;        // where the chain ended (the name itself without CNAMEs)
  bool authenticated = false;   // the AD bit
  bool from_cache = false;
  bool tcp = false;
  std::string server;  // "127.0.0.1:53", the server that gave this answer
  double seconds = 0;  // how long the query took
  // The answer's bytes, kept only for a DNSSEC query (Query::dnssec_ok): the validator reads
  // its RRSIG, NSEC and NSEC3 records from them.
  std::string wire;

  bool ok() const { return status == Status::ok; }
};

class Resolver;

class Query : public std::enable_shared_from_this<Query> {
 public:
  using Notify = void (*)(void* context);
  // Flags of a query: DO (answers carry their DNSSEC records, kept in Result::wire) and CD
  // (a validating resolver passes on what fails its validation).
  static constexpr std::uint8_t dnssec_ok = 1, checking_disabled = 2;

  const std::string& name() const { return name_; }
  std::uint16_t qtype() const { return qtype_; }
  const Result& result() const { return result_; }
  bool done() const { return done_; }
  // The servers this query asks: its own when it was given some, else the resolver's.
  const ServerSet& servers() const;
  bool has_own_servers() const { return own_servers_ != nullptr; }

  // Ends the query soon as Status::interrupted (unless it already ended).
  void interrupt();
  // Forgets the callback: its owner is gone.
  void detach() { notify_ = nullptr; }

  Query(std::shared_ptr<Resolver> resolver, std::string name, std::uint16_t qtype, Notify notify,
        void* context, std::uint8_t flags = 0);  // use Resolver::query
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

 private:
  friend class Resolver;
  void start();
  void next_try();
  void send_udp();
  // The pooled socket's receive loop: a datagram from server_ with id_, or an ICMP error.
  static void on_datagram(void* self, std::string_view datagram);
  static void on_udp_error(void* self, const std::error_code& ec, bool sending);
  void leave_udp();
  void start_tcp();
  void on_tcp_length(const std::error_code& ec);
  void on_tcp_body(const std::error_code& ec);
  void take(const Answer& answer, std::string_view wire, bool tcp);
  void remember_failure(Status status, std::string rcode, std::string message);
  void arm_timer();
  void close_sockets();
  void finish();
  void finish_soon();
  std::string server_text() const;

  std::shared_ptr<Resolver> resolver_;
  std::string name_;
  std::uint16_t qtype_;
  Notify notify_;
  void* context_;
  // Set only by the Resolver::query overload that takes servers: null on the default path.
  std::unique_ptr<const ServerSet> own_servers_;

  // The pooled socket the UDP try in progress waits on, registered under udp_id_.
  std::shared_ptr<UdpSocket> udp_;
  std::uint16_t udp_id_ = 0;
  std::unique_ptr<asio::ip::tcp::socket> tcp_;  // only after a truncated answer
  asio::steady_timer timer_;
  std::string wire_;    // the query
  std::string buffer_;  // a TCP answer being received
  std::uint16_t id_ = 0;
  std::uint8_t flags_ = 0;
  std::size_t try_ = 0;           // tries started
  std::uint32_t generation_ = 0;  // bumped per try: late completions of an old try are ignored
  // The server of the try in progress, copied: dns.servers may change the list while a try
  // waits (a truncated answer's TCP retry must still reach the server that truncated it).
  asio::ip::udp::endpoint server_;
  unsigned char length_[2] = {};
  engine::Clock::time_point started_;
  Result result_;
  Result failure_;  // the most telling failure so far
  bool done_ = false;
};

class Resolver : public std::enable_shared_from_this<Resolver> {
 public:
  // Sees each finished query: its result, and the answer's wire bytes (empty when it came
  // from the cache or no answer came).
  using Observer = void (*)(void* context, const Query& query, std::string_view wire);

  static std::shared_ptr<Resolver> create(asio::io_context& io, ServerSet servers);

  // Starts a query for `name` (already canonical: see canonical_name) and record type.
  std::shared_ptr<Query> query(std::string_view name, std::uint16_t qtype, Query::Notify notify,
                               void* context, std::uint8_t flags = 0);
  // The same, asked of `servers` instead of the configured ones (with their timeout and
  // attempts), and kept out of the cache both ways: another server's answer is not the
  // configured resolver's. The observer sees it as any other query.
  std::shared_ptr<Query> query(std::string_view name, std::uint16_t qtype, ServerSet servers,
                               Query::Notify notify, void* context, std::uint8_t flags = 0);

  const ServerSet& servers() const { return servers_; }
  void set_servers(ServerSet servers);
  bool cache_enabled() const { return cache_enabled_; }
  void set_cache(bool enabled);
  void clear_cache() { cache_.clear(); }
  std::size_t cache_size() const { return cache_.size(); }
  // The EDNS0 UDP payload size we advertise: 1232 (the DNS flag day 2020 value) avoids IP
  // fragmentation on every common path.
  static constexpr std::uint16_t udp_payload = 1232;

  void set_observer(Observer observer, void* context) {
    observer_ = observer;
    observer_context_ = context;
  }
  const HostsFile& hosts() const { return hosts_; }

  asio::io_context& io() { return io_; }
  // The UDP sockets the queries share: its options (sockets per family, queries per socket)
  // and what it counted (sockets open and opened, datagrams sent, delivered and ignored).
  UdpPool& udp_pool() { return pool_; }
  const UdpPool& udp_pool() const { return pool_; }
  Resolver(asio::io_context& io, ServerSet servers);  // use create()

 private:
  friend class Query;
  struct CacheEntry {
    Result result;
    engine::Clock::time_point stored;
    engine::Clock::time_point expires;
  };
  static std::string cache_key(std::string_view name, std::uint16_t qtype, std::uint8_t flags);
  bool from_cache(Query& query);
  void store(const Query& query, std::uint32_t ttl);
  void observe(const Query& query, std::string_view wire) {
    if (observer_) observer_(observer_context_, query, wire);
  }
  std::uint16_t random_id();

  asio::io_context& io_;
  ServerSet servers_;
  HostsFile hosts_;
  bool cache_enabled_ = true;
  std::unordered_map<std::string, CacheEntry> cache_;
  Observer observer_ = nullptr;
  void* observer_context_ = nullptr;
  UdpPool pool_;
};

std::string_view status_text(Status status);

}  // namespace smtpsh::dns
