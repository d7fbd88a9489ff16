// engine/dns/resolver and address_lookup against a real DNS server on loopback (NSD serving
// tests/peers/zones), and scripted peers for what no server does on purpose: stay silent,
// answer with the wrong ID or the wrong question first.
#include "engine/dns/address_lookup.hpp"
#include "engine/dns/resolver.hpp"
#include "engine/net/connection.hpp"
#include "tests/support/nsd.hpp"
#include "tests/support/operation.hpp"
#include "tests/support/subprocess.hpp"

#include <doctest/doctest.h>

#include <memory>

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
