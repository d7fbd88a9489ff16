// engine/dns/resolver, its UDP socket pool (udp_pool) and address_lookup against a real DNS
// server on loopback (NSD serving tests/peers/zones), and scripted peers for what no server does
// on purpose: stay silent, answer with the wrong ID or the wrong question first, or have an
// answer spoofed from another port or address.
#include "engine/dns/address_lookup.hpp"
#include "engine/dns/resolver.hpp"
#include "engine/dns/udp_pool.hpp"
#include "engine/net/connection.hpp"
#include "tests/support/dns_answer.hpp"
#include "tests/support/nsd.hpp"
#include "tests/support/operation.hpp"
#include "tests/support/subprocess.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

using namespace smtpsh;
using namespace std::chrono_literals;

namespace {

using Op = test::Operation;

// One NSD for the whole file: starting it takes longer than most tests.
test::DnsPeer& nsd() {
  static test::DnsPeer peer({"nsd"});
  return peer;
}

asio::ip::udp::endpoint loopback(std::uint16_t port) {
  return {asio::ip::make_address("127.0.0.1"), port};
}

dns::ServerSet servers(std::vector<std::uint16_t> ports, engine::Duration timeout = 2s,
                       int attempts = 1) {
  dns::ServerSet set;
  for (auto port : ports)
    set.servers.push_back(loopback(port));
  set.timeout = timeout;
  set.attempts = attempts;
  return set;
}

dns::Result ask(engine::Loop& loop, dns::Resolver& resolver, const std::string& name,
                std::uint16_t qtype) {
  Op op;
  auto query = resolver.query(name, qtype, &Op::notify, &op);
  CHECK_FALSE(op.done);  // never completes inside the call that started it
  test::wait(loop, op);
  return query->result();
}

std::vector<std::string> first_fields(const dns::Result& result) {
  std::vector<std::string> out;
  for (const auto& record : result.records)
    out.push_back(record.fields.back());
  return out;
}

}  // namespace

TEST_CASE("answers over UDP from NSD, with the server that gave them") {
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  auto mx = ask(loop, *resolver, "example.test", dns::type::MX);
  REQUIRE(mx.ok());
  CHECK(mx.rcode == "NOERROR");
  CHECK_FALSE(mx.tcp);
  CHECK_FALSE(mx.authenticated);  // NSD is authoritative, not validating
  CHECK(mx.server == "127.0.0.1:" + std::to_string(nsd().port()));
  auto hosts = first_fields(mx);
  std::sort(hosts.begin(), hosts.end());
  CHECK(hosts ==
        std::vector<std::string>{"mx1.example.test", "mx2.example.test", "mx3.example.test"});

  auto txt = ask(loop, *resolver, "multi.example.test", dns::type::TXT);
  REQUIRE(txt.records.size() == 1);
  CHECK(txt.records[0].fields == std::vector<std::string>{"part one ", "part two"});

  auto ptr = ask(loop, *resolver, "3.0.0.127.in-addr.arpa", dns::type::PTR);
  CHECK(first_fields(ptr) == std::vector<std::string>{"liar.example.test"});

  auto alias = ask(loop, *resolver, "alias.example.test", dns::type::A);
  CHECK(first_fields(alias) == std::vector<std::string>{"127.0.0.1"});
  CHECK(alias.canonical == "mx1.example.test");
  REQUIRE(alias.aliases.size() == 1);
  CHECK(alias.aliases[0].type == dns::type::CNAME);
}

TEST_CASE("a truncated UDP answer is asked again over TCP") {
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  auto big = ask(loop, *resolver, "big.example.test", dns::type::A);
  REQUIRE(big.ok());
  CHECK(big.tcp);
  CHECK(big.records.size() == 100);
}

TEST_CASE("NXDOMAIN, NODATA, REFUSED and SERVFAIL are told apart") {
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  auto nx = ask(loop, *resolver, "nope.example.test", dns::type::A);
  CHECK(nx.status == dns::Status::nxdomain);
  CHECK(nx.rcode == "NXDOMAIN");
  CHECK(nx.message.find("nope.example.test does not exist") != std::string::npos);

  auto nodata = ask(loop, *resolver, "nodata.example.test", dns::type::A);
  CHECK(nodata.ok());
  CHECK(nodata.records.empty());

  auto refused = ask(loop, *resolver, "www.unknown-zone.invalid", dns::type::A);
  CHECK(refused.status == dns::Status::refused);
  CHECK(refused.rcode == "REFUSED");

  auto servfail = ask(loop, *resolver, "x.broken.test", dns::type::A);
  CHECK(servfail.status == dns::Status::servfail);
  CHECK(servfail.rcode == "SERVFAIL");
  CHECK(servfail.message.find("answered SERVFAIL") != std::string::npos);
}

TEST_CASE("a silent server times out after every try; the next server answers") {
  test::DnsPeer silent({"silent"});
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({silent.port()}, 300ms, 2));
  auto started = engine::Clock::now();
  auto result = ask(loop, *resolver, "example.test", dns::type::MX);
  auto took = engine::Clock::now() - started;
  CHECK(result.status == dns::Status::timeout);
  CHECK(result.rcode == "timeout");
  CHECK(result.message.find("no answer from DNS server") != std::string::npos);
  CHECK(took >= 550ms);  // two tries of 300 ms
  CHECK(took < 3s);

  resolver->set_servers(servers({silent.port(), nsd().port()}, 300ms, 1));
  auto failover = ask(loop, *resolver, "example.test", dns::type::MX);
  REQUIRE(failover.ok());
  CHECK(failover.server == "127.0.0.1:" + std::to_string(nsd().port()));
  CHECK(failover.records.size() == 3);
}

TEST_CASE("a server where nothing listens is unreachable, quickly") {
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({test::free_loopback_port()}, 2s, 1));
  auto started = engine::Clock::now();
  auto result = ask(loop, *resolver, "example.test", dns::type::A);
  CHECK(result.status == dns::Status::unreachable);
  CHECK(engine::Clock::now() - started < 1500ms);
}

TEST_CASE("answers with the wrong ID or question are dropped; the right one is taken") {
  for (const char* mode : {"mismatch", "wrongq"}) {
    CAPTURE(mode);
    test::DnsPeer liar({mode});
    engine::Loop loop;
    auto resolver = dns::Resolver::create(loop.io(), servers({liar.port()}, 2s, 1));
    auto result = ask(loop, *resolver, "host.example.test", dns::type::A);
    REQUIRE(result.ok());
    CHECK(first_fields(result) == std::vector<std::string>{"127.0.0.42"});
  }
}

TEST_CASE("answers are cached for their TTL, unless the cache is off") {
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  auto first = ask(loop, *resolver, "mx2.example.test", dns::type::A);
  REQUIRE(first.ok());
  CHECK_FALSE(first.from_cache);
  auto second = ask(loop, *resolver, "MX2.example.test", dns::type::A);
  CHECK(second.from_cache);
  CHECK(first_fields(second) == std::vector<std::string>{"127.0.0.2"});
  CHECK(second.records[0].ttl <= first.records[0].ttl);

  // Negative answers are cached for the SOA's negative TTL.
  ask(loop, *resolver, "nope.example.test", dns::type::A);
  CHECK(ask(loop, *resolver, "nope.example.test", dns::type::A).from_cache);

  resolver->set_cache(false);
  CHECK(resolver->cache_size() == 0);
  CHECK_FALSE(ask(loop, *resolver, "mx2.example.test", dns::type::A).from_cache);
  CHECK_FALSE(ask(loop, *resolver, "mx2.example.test", dns::type::A).from_cache);
}

TEST_CASE("a query with servers of its own asks them, and shares no cache with the resolver") {
  // Two servers with different answers for the same name: NSD (mx2 A 127.0.0.2, mx3 A
  // 127.0.0.3) and the scripted peer, which answers every A query with 127.0.0.42.
  test::DnsPeer other({"mismatch"});
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  const std::string configured_server = "127.0.0.1:" + std::to_string(nsd().port());
  const std::string other_server = "127.0.0.1:" + std::to_string(other.port());
  struct Seen {
    std::vector<std::string> servers;
    static void observe(void* self, const dns::Query& query, std::string_view) {
      static_cast<Seen*>(self)->servers.push_back(query.result().server);
    }
  } seen;
  resolver->set_observer(&Seen::observe, &seen);
  auto ask_other = [&](const std::string& name) {
    Op op;
    auto query = resolver->query(name, dns::type::A, servers({other.port()}), &Op::notify, &op);
    CHECK_FALSE(op.done);
    CHECK(query->has_own_servers());
    test::wait(loop, op);
    return query->result();
  };

  // The configured server's answer is cached; the query with its own servers gets the other
  // answer, not the cached one, and leaves the cache as it was.
  auto configured = ask(loop, *resolver, "mx2.example.test", dns::type::A);
  REQUIRE(configured.ok());
  CHECK(first_fields(configured) == std::vector<std::string>{"127.0.0.2"});
  CHECK(resolver->cache_size() == 1);
  auto own = ask_other("mx2.example.test");
  REQUIRE(own.ok());
  CHECK_FALSE(own.from_cache);
  CHECK(own.server == other_server);
  CHECK(first_fields(own) == std::vector<std::string>{"127.0.0.42"});
  CHECK(resolver->cache_size() == 1);
  auto cached = ask(loop, *resolver, "mx2.example.test", dns::type::A);
  CHECK(cached.from_cache);
  CHECK(first_fields(cached) == std::vector<std::string>{"127.0.0.2"});

  // The other way round: an answer got from other servers is not served to the resolver's
  // own queries later.
  auto own_first = ask_other("mx3.example.test");
  CHECK(first_fields(own_first) == std::vector<std::string>{"127.0.0.42"});
  CHECK(resolver->cache_size() == 1);
  auto configured_after = ask(loop, *resolver, "mx3.example.test", dns::type::A);
  CHECK_FALSE(configured_after.from_cache);
  CHECK(configured_after.server == configured_server);
  CHECK(first_fields(configured_after) == std::vector<std::string>{"127.0.0.3"});
  CHECK(resolver->servers().servers.size() == 1);  // the configured servers are untouched

  // The observer saw every query, whoever answered it.
  CHECK(seen.servers == std::vector<std::string>{configured_server, other_server, configured_server,
                                                 other_server, configured_server});

  // Its own servers' timeout and attempts rule it: a silent server times out on them.
  test::DnsPeer silent({"silent"});
  Op op;
  auto started = engine::Clock::now();
  auto timed_out = resolver->query("mx2.example.test", dns::type::A,
                                   servers({silent.port()}, 300ms, 1), &Op::notify, &op);
  test::wait(loop, op);
  CHECK(timed_out->result().status == dns::Status::timeout);
  CHECK(timed_out->result().message.find(std::to_string(silent.port())) != std::string::npos);
  CHECK(engine::Clock::now() - started < 2s);
}

TEST_CASE("many queries in flight at once") {
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}, 2s, 2));
  resolver->set_cache(false);
  constexpr int count = 300;
  std::vector<std::shared_ptr<dns::Query>> queries;
  struct Counter {
    int done = 0;
    static void notify(void* self) { ++static_cast<Counter*>(self)->done; }
  } counter;
  for (int i = 1; i <= count; ++i)
    queries.push_back(resolver->query("bench" + std::to_string(i) + ".example.test", dns::type::MX,
                                      &Counter::notify, &counter));
  asio::steady_timer guard(loop.io(), 10s);
  guard.async_wait([](std::error_code) {});
  auto deadline = engine::Clock::now() + 10s;
  loop.run_until([&] { return counter.done == count || engine::Clock::now() > deadline; });
  guard.cancel();
  REQUIRE(counter.done == count);
  int answered = 0;
  for (const auto& query : queries)
    if (query->result().ok() && query->result().records.size() == 1) ++answered;
  CHECK(answered == count);
}

TEST_CASE("an interrupted query ends at once") {
  test::DnsPeer silent({"silent"});
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({silent.port()}, 5s, 2));
  Op op;
  auto query = resolver->query("example.test", dns::type::A, &Op::notify, &op);
  asio::steady_timer later(loop.io(), 100ms);
  later.async_wait([&](std::error_code) { query->interrupt(); });
  auto started = engine::Clock::now();
  test::wait(loop, op);
  CHECK(query->result().status == dns::Status::interrupted);
  CHECK(engine::Clock::now() - started < 1s);
}

TEST_CASE("a host's addresses: hosts file, A and AAAA, and failures in words") {
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  auto lookup = [&](const std::string& host) {
    Op op;
    auto found = dns::AddressLookup::start(resolver, host, &Op::notify, &op);
    CHECK_FALSE(op.done);
    test::wait(loop, op);
    return found;
  };
  auto mx1 = lookup("mx1.example.test");
  REQUIRE(mx1->ok());
  REQUIRE(mx1->addresses().size() == 2);
  CHECK(mx1->addresses()[0].to_string() == "127.0.0.1");  // IPv4 first
  CHECK(mx1->addresses()[1].to_string() == "::1");

  auto local = lookup("localhost");  // /etc/hosts, never asked of DNS
  REQUIRE(local->ok());
  CHECK(local->addresses()[0].is_loopback());

  auto missing = lookup("nowhere.example.test");
  CHECK_FALSE(missing->ok());
  CHECK(missing->status() == dns::Status::nxdomain);
  CHECK(missing->error().find("cannot resolve 'nowhere.example.test'") == 0);

  auto nodata = lookup("nodata.example.test");
  CHECK_FALSE(nodata->ok());
  CHECK(nodata->error() == "cannot resolve 'nodata.example.test': it has no A or AAAA record");

  auto literal = lookup("192.0.2.1");
  CHECK(literal->addresses().front().to_string() == "192.0.2.1");
}

TEST_CASE("connect resolves through the resolver, and reaches smtp-sink by its name") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port);
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  auto conn = net::Connection::create(loop.io());
  Op op;
  conn->connect("mx1.example.test", port, {.source = {}, .timeout = 5s, .resolver = resolver},
                &Op::notify, &op);
  test::wait(loop, op);
  INFO(conn->write_outcome().message);
  REQUIRE(conn->write_outcome().ok());
  CHECK(conn->remote_address() == "127.0.0.1:" + std::to_string(port));  // IPv4 first

  auto missing = net::Connection::create(loop.io());
  Op op2;
  missing->connect("nowhere.example.test", port,
                   {.source = {}, .timeout = 5s, .resolver = resolver}, &Op::notify, &op2);
  test::wait(loop, op2);
  CHECK(missing->write_outcome().failure == net::Failure::dns);
  CHECK(missing->write_outcome().message.find("NXDOMAIN") != std::string::npos);
}

// --- the UDP socket pool ---------------------------------------------------------------------

namespace {

// The sockets this process has open (the pool's among them); the DNS peers are other processes.
int open_sockets() {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(entry.path(), ec);
    if (!ec && target.string().rfind("socket:", 0) == 0) ++count;
  }
  return count;
}

// Runs the loop until it has no work left, for at most `limit`; true when it ran out of work
// (no receive, timer or send of the resolver left behind).
bool runs_out_of_work(engine::Loop& loop, engine::Duration limit = 3s) {
  auto started = engine::Clock::now();
  loop.io().restart();
  loop.io().run_for(limit);
  return engine::Clock::now() - started < limit;
}

// A free UDP port on `address` (bound, read, closed).
std::uint16_t free_udp_port(const char* address) {
  asio::io_context io;
  asio::ip::udp::socket socket(io, {asio::ip::make_address(address), 0});
  return socket.local_endpoint().port();
}

// A scripted DNS server on the test's own loop at `address`: answers each query for
// host.example.test A with 127.0.0.42 after 50 ms. When `spoof`, each query first gets a
// spoofed answer (the right ID and question, A 127.0.0.66) from the same address on another
// port, and one from another address (127.0.0.2) on the server's own port: what an off-path
// attacker who guessed the ID would send. It records the source endpoint of every query.
class ScriptedServer {
 public:
  ScriptedServer(asio::io_context& io, const char* address, bool spoof)
      : server_(io, {asio::ip::make_address(address), 0}), other_port_(io), other_address_(io) {
    if (spoof) {
      other_port_.open(asio::ip::udp::v4());
      other_port_.bind({asio::ip::make_address(address), 0});
      other_address_.open(asio::ip::udp::v4());
      other_address_.bind({asio::ip::make_address("127.0.0.2"), port()});
    }
    receive();
  }
  ~ScriptedServer() {
    for (auto& timer : timers_)
      timer->cancel();
  }
  std::uint16_t port() const { return server_.local_endpoint().port(); }
  const std::vector<asio::ip::udp::endpoint>& clients() const { return clients_; }

 private:
  void receive() {
    server_.async_receive_from(
        asio::buffer(buffer_), client_, [this](std::error_code ec, std::size_t size) {
          if (ec) return;
          if (size >= 12)
            answer(static_cast<std::uint16_t>((static_cast<unsigned char>(buffer_[0]) << 8) |
                                              static_cast<unsigned char>(buffer_[1])));
          receive();
        });
  }
  void answer(std::uint16_t id) {
    clients_.push_back(client_);
    const auto spoofed = test::dns_response(id, "host.example.test.", LDNS_RR_TYPE_A,
                                            {"host.example.test. 60 IN A 127.0.0.66"});
    std::error_code ignored;
    if (other_port_.is_open()) other_port_.send_to(asio::buffer(spoofed), client_, 0, ignored);
    if (other_address_.is_open())
      other_address_.send_to(asio::buffer(spoofed), client_, 0, ignored);
    auto right = std::make_shared<std::string>(test::dns_response(
        id, "host.example.test.", LDNS_RR_TYPE_A, {"host.example.test. 60 IN A 127.0.0.42"}));
    auto timer = std::make_shared<asio::steady_timer>(server_.get_executor(), 50ms);
    timers_.push_back(timer);
    timer->async_wait([this, right, to = client_](std::error_code ec) {
      std::error_code ignored;
      if (!ec) server_.send_to(asio::buffer(*right), to, 0, ignored);
    });
  }

  asio::ip::udp::socket server_;
  asio::ip::udp::socket other_port_;
  asio::ip::udp::socket other_address_;
  std::array<char, 512> buffer_{};
  asio::ip::udp::endpoint client_;
  std::vector<asio::ip::udp::endpoint> clients_;
  std::vector<std::shared_ptr<asio::steady_timer>> timers_;
};

struct Counter {
  int done = 0;
  static void notify(void* self) { ++static_cast<Counter*>(self)->done; }
};

// Runs the loop until `counter` reaches `count` or `limit` passes.
void wait_for(engine::Loop& loop, const Counter& counter, int count, engine::Duration limit) {
  asio::steady_timer guard(loop.io(), limit);
  guard.async_wait([](std::error_code) {});
  auto deadline = engine::Clock::now() + limit;
  loop.run_until([&] { return counter.done == count || engine::Clock::now() > deadline; });
  guard.cancel();
}

}  // namespace

TEST_CASE("queries share a few pooled sockets, replaced on new ports after so many queries") {
  const int sockets_before = open_sockets();
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  resolver->set_cache(false);
  dns::UdpPool& pool = resolver->udp_pool();
  pool.set_options({.sockets_per_family = 4, .queries_per_socket = 1000});
  for (int i = 0; i < 100; ++i)
    REQUIRE(first_fields(ask(loop, *resolver, "mx2.example.test", dns::type::A)) ==
            std::vector<std::string>{"127.0.0.2"});
  CHECK(pool.stats().queries == 100);
  CHECK(pool.stats().delivered == 100);
  CHECK(pool.stats().opened <= 4);  // not one socket per query
  CHECK(pool.stats().open <= 4);
  CHECK(open_sockets() <= sockets_before + 4);

  // Each socket takes 10 queries, then another one on another port takes its place.
  pool.set_options({.sockets_per_family = 2, .queries_per_socket = 10});
  const auto opened_before = pool.stats().opened;
  std::set<std::uint16_t> ports;
  for (int i = 0; i < 100; ++i) {
    REQUIRE(ask(loop, *resolver, "mx3.example.test", dns::type::A).ok());
    for (auto port : pool.ports())
      ports.insert(port);
  }
  CHECK(pool.stats().opened - opened_before >= 10);
  CHECK(ports.size() >= 8);  // the kernel picks each at random: a repeat is possible, not likely
  CHECK(pool.stats().open <= 2);  // the replaced ones closed with their last query
  CHECK(open_sockets() <= sockets_before + 2);

  // Idle, the pool leaves no work on the loop; gone, it leaves no socket open.
  CHECK(runs_out_of_work(loop));
  resolver.reset();
  CHECK(open_sockets() == sockets_before);
}

TEST_CASE("thousands of queries in flight over two pooled sockets each get their own answer") {
  test::DnsPeer fast({"nsd", "--no-rrl"});  // NSD's rate limiting would drop part of a burst
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({fast.port()}, 3s, 2));
  resolver->set_cache(false);
  resolver->udp_pool().set_options({.sockets_per_family = 2, .queries_per_socket = 100000});
  struct Expected {
    const char* name;
    std::uint16_t type;
    dns::Status status;
    std::vector<std::string> fields;  // sorted
  };
  const std::vector<Expected> expected{
      {"mx1.example.test", dns::type::A, dns::Status::ok, {"127.0.0.1"}},
      {"mx2.example.test", dns::type::A, dns::Status::ok, {"127.0.0.2"}},
      {"mx3.example.test", dns::type::A, dns::Status::ok, {"127.0.0.3"}},
      {"example.test",
       dns::type::MX,
       dns::Status::ok,
       {"mx1.example.test", "mx2.example.test", "mx3.example.test"}},
      {"multi.example.test", dns::type::TXT, dns::Status::ok, {"part two"}},
      {"nodata.example.test", dns::type::A, dns::Status::ok, {}},
      {"nope.example.test", dns::type::A, dns::Status::nxdomain, {}},
      {"cnamemx.example.test", dns::type::MX, dns::Status::ok, {"alias.example.test"}},
      {"bench7.example.test", dns::type::MX, dns::Status::ok, {"mx1.example.test"}},
  };
  constexpr int count = 3000;
  Counter counter;
  std::vector<std::shared_ptr<dns::Query>> queries;
  for (int i = 0; i < count; ++i) {
    const Expected& e = expected[i % expected.size()];
    queries.push_back(resolver->query(e.name, e.type, &Counter::notify, &counter));
  }
  wait_for(loop, counter, count, 20s);
  REQUIRE(counter.done == count);
  int right = 0;
  for (int i = 0; i < count; ++i) {
    const Expected& e = expected[i % expected.size()];
    const dns::Result& result = queries[i]->result();
    auto fields = first_fields(result);
    std::sort(fields.begin(), fields.end());
    if (result.status == e.status && fields == e.fields) {
      ++right;
    } else {
      CAPTURE(e.name);
      CAPTURE(result.message);
      CHECK(fields == e.fields);
    }
  }
  CHECK(right == count);
  const auto& stats = resolver->udp_pool().stats();
  CHECK(stats.opened <= 2);
  CHECK(stats.queries >= static_cast<std::uint64_t>(count));
  // About 1500 IDs in flight on each socket: some drawn twice, and drawn again.
  CHECK(stats.id_clashes > 0);
}

TEST_CASE("an ID in flight on a socket is not given to another query on that socket") {
  engine::Loop loop;
  dns::UdpPool pool(loop.io(), {.sockets_per_family = 1, .queries_per_socket = 1000});
  int first = 0, second = 0;
  auto deliver = [](void*, std::string_view) {};
  auto fail = [](void*, const std::error_code&, bool) {};
  std::uint16_t id1 = 0x1234, id2 = 0x1234;
  std::error_code ec;
  auto socket1 = pool.add({loopback(53), deliver, fail, &first}, id1, ec);
  REQUIRE(socket1);
  auto socket2 = pool.add({loopback(53), deliver, fail, &second}, id2, ec);
  REQUIRE(socket2);
  CHECK(socket1 == socket2);  // the pool has one socket
  CHECK(id1 == 0x1234);
  CHECK(id2 != 0x1234);
  CHECK(pool.stats().id_clashes >= 1);
  CHECK(socket1->waiting() == 2);
  socket1->remove(id1, &second);  // not its registration: nothing happens
  CHECK(socket1->waiting() == 2);
  socket1->remove(id1, &first);
  socket2->remove(id2, &second);
  CHECK(socket1->waiting() == 0);
  CHECK(pool.stats().open == 1);
  CHECK(runs_out_of_work(loop));  // idle: not receiving
}

TEST_CASE("answers spoofed from another port or another address are ignored") {
  engine::Loop loop;
  ScriptedServer server(loop.io(), "127.0.0.1", true);
  auto resolver = dns::Resolver::create(loop.io(), servers({server.port()}, 2s, 1));
  resolver->udp_pool().set_options({.sockets_per_family = 1, .queries_per_socket = 1000});
  for (int i = 0; i < 3; ++i) {
    resolver->clear_cache();
    auto result = ask(loop, *resolver, "host.example.test", dns::type::A);
    REQUIRE(result.ok());
    CHECK(first_fields(result) == std::vector<std::string>{"127.0.0.42"});
  }
  REQUIRE(server.clients().size() == 3);
  // The spoofers had the right ID and question and reached the socket (it is not connected);
  // the pool dropped them by their source.
  CHECK(resolver->udp_pool().stats().ignored == 6);
  CHECK(resolver->udp_pool().stats().delivered == 3);
  // All three went out from the pool's one socket.
  CHECK(server.clients()[0] == server.clients()[1]);
  CHECK(server.clients()[1] == server.clients()[2]);
}

TEST_CASE("the IPv6 sockets of the pool: an answer over ::1, and a closed port there") {
  engine::Loop loop;
  ScriptedServer server(loop.io(), "::1", false);
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}));
  dns::ServerSet v6;
  v6.servers.push_back({asio::ip::make_address("::1"), server.port()});
  v6.timeout = 2s;
  v6.attempts = 1;
  Op op;
  auto query = resolver->query("host.example.test", dns::type::A, v6, &Op::notify, &op);
  test::wait(loop, op);
  REQUIRE(query->result().ok());
  CHECK(query->result().server == "[::1]:" + std::to_string(server.port()));
  CHECK(first_fields(query->result()) == std::vector<std::string>{"127.0.0.42"});

  v6.servers[0] = {asio::ip::make_address("::1"), free_udp_port("::1")};
  Op refused;
  auto started = engine::Clock::now();
  auto closed = resolver->query("host.example.test", dns::type::A, v6, &Op::notify, &refused);
  test::wait(loop, refused);
  CHECK(closed->result().status == dns::Status::unreachable);
  CHECK(engine::Clock::now() - started < 1500ms);
  CHECK(resolver->udp_pool().stats().icmp == 1);
}

TEST_CASE("a closed port fails the query that asked it, not the others on the same socket") {
  test::DnsPeer silent({"silent"});
  engine::Loop loop;
  auto resolver = dns::Resolver::create(loop.io(), servers({nsd().port()}, 2s, 1));
  resolver->set_cache(false);
  resolver->udp_pool().set_options({.sockets_per_family = 1, .queries_per_socket = 1000});
  Op waiting, refused, answered;
  auto started = engine::Clock::now();
  auto slow = resolver->query("example.test", dns::type::MX, servers({silent.port()}, 800ms, 1),
                              &Op::notify, &waiting);
  auto closed =
      resolver->query("example.test", dns::type::MX, servers({test::free_loopback_port()}, 2s, 1),
                      &Op::notify, &refused);
  auto fine = resolver->query("example.test", dns::type::MX, &Op::notify, &answered);
  test::wait(loop, refused);
  test::wait(loop, answered);
  CHECK(closed->result().status == dns::Status::unreachable);
  CHECK(closed->result().message.find("Connection refused") != std::string::npos);
  CHECK(engine::Clock::now() - started < 700ms);
  CHECK(fine->result().ok());
  CHECK_FALSE(waiting.done);  // the ICMP error was not its
  test::wait(loop, waiting);
  CHECK(slow->result().status == dns::Status::timeout);
  CHECK(resolver->udp_pool().stats().opened == 1);
  CHECK(resolver->udp_pool().stats().icmp == 1);
}

TEST_CASE("a resolver dropped with queries in flight ends cleanly, whichever goes first") {
  test::DnsPeer silent({"silent"});
  const int sockets_before = open_sockets();
  auto start_queries = [&](engine::Loop& loop, engine::Duration timeout) {
    auto resolver =
        dns::Resolver::create(loop.io(), servers({silent.port(), nsd().port()}, timeout, 1));
    resolver->set_cache(false);
    resolver->udp_pool().set_options({.sockets_per_family = 3, .queries_per_socket = 7});
    std::vector<std::shared_ptr<dns::Query>> queries;
    for (int i = 0; i < 60; ++i) {
      // Some ask NSD alone, the others the silent peer first.
      if (i % 3 == 0)
        queries.push_back(resolver->query("mx1.example.test", dns::type::A, servers({nsd().port()}),
                                          nullptr, nullptr));
      else
        queries.push_back(resolver->query("bench" + std::to_string(i) + ".example.test",
                                          dns::type::MX, nullptr, nullptr));
    }
    return queries;
  };

  SUBCASE("the loop goes first, the queries still waiting") {
    {
      engine::Loop loop;
      auto queries = start_queries(loop, 5s);
      loop.io().run_for(100ms);  // sent, and waiting on the silent peer
      queries.clear();
    }  // the loop goes, with the queries' handlers, the queries, the resolver, the pool
    CHECK(open_sockets() == sockets_before);
  }
  SUBCASE("the resolver goes with its last query; the loop runs out of work") {
    engine::Loop loop;
    {
      auto queries = start_queries(loop, 300ms);
      loop.io().run_for(50ms);
      queries[1]->interrupt();
    }
    CHECK(runs_out_of_work(loop));
    CHECK(open_sockets() == sockets_before);
  }
  SUBCASE("every query interrupted at once, then dropped") {
    engine::Loop loop;
    {
      auto queries = start_queries(loop, 5s);
      loop.io().run_for(50ms);
      for (auto& query : queries)
        query->interrupt();
    }
    CHECK(runs_out_of_work(loop));
    CHECK(open_sockets() == sockets_before);
  }
}
