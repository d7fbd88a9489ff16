// engine/server/dns_replay: recorded answers served again on loopback, asked by the real
// dns::Resolver (which drops any answer whose ID or question is not its own). Answers are made
// with ldns's own zone-text parser, independently of the code under test.
#include "engine/dns/resolver.hpp"
#include "engine/server/dns_replay.hpp"
#include "tests/support/operation.hpp"

#include "tests/support/dns_answer.hpp"

#include <doctest/doctest.h>
#include <ldns/ldns.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace smtpsh;
using namespace std::chrono_literals;

namespace {

using Op = test::Operation;

std::string response(std::uint16_t id, const std::string& qname, ldns_rr_type qtype,
                     const std::vector<std::string>& answers) {
  return test::dns_response(id, qname, qtype, answers);
}

std::string a_record(const std::string& name, const std::string& address) {
  return name + " 300 IN A " + address;
}

struct Replay {
  engine::Loop& loop;
  std::shared_ptr<server::DnsReplay> server;
  std::shared_ptr<dns::Resolver> resolver;

  explicit Replay(engine::Loop& l) : loop(l) {
    std::string error;
    server = server::DnsReplay::open(loop.io(), error);
    INFO(error);
    REQUIRE(server != nullptr);
    CHECK(server->port() != 0);
    dns::ServerSet servers;
    servers.servers.push_back({asio::ip::make_address("127.0.0.1"), server->port()});
    servers.timeout = 2s;
    servers.attempts = 1;
    resolver = dns::Resolver::create(loop.io(), servers);
    resolver->set_cache(false);  // every question goes to the server
  }
  ~Replay() { server->close(); }

  struct Asked {
    dns::Result result;
    std::string wire;  // the answer's bytes as the resolver received them
  };
  Asked ask(const std::string& name, std::uint16_t qtype) {
    Asked asked;
    resolver->set_observer(
        [](void* context, const dns::Query&, std::string_view wire) {
          static_cast<Asked*>(context)->wire.assign(wire);
        },
        &asked);
    Op op;
    auto query = resolver->query(name, qtype, &Op::notify, &op);
    test::wait(loop, op);
    resolver->set_observer(nullptr, nullptr);
    asked.result = query->result();
    return asked;
  }
};

std::vector<std::string> fields(const dns::Result& result) {
  std::vector<std::string> out;
  for (const auto& record : result.records)
    out.push_back(record.fields.back());
  return out;
}

std::uint16_t id_of(const std::string& wire) {
  REQUIRE(wire.size() >= 2);
  return static_cast<std::uint16_t>((static_cast<unsigned char>(wire[0]) << 8) |
                                    static_cast<unsigned char>(wire[1]));
}

}  // namespace

TEST_CASE("a recorded answer comes back under the asker's ID, with its records") {
  engine::Loop loop;
  Replay replay(loop);
  constexpr std::uint16_t recorded_id = 0x1234;
  std::string recorded = response(recorded_id, "mx.example.test.", LDNS_RR_TYPE_MX,
                                  {"mx.example.test. 300 IN MX 10 mx1.example.test.",
                                   "mx.example.test. 300 IN MX 20 mx2.example.test."});
  replay.server->add("mx.example.test", dns::type::MX, recorded);
  replay.server->start();

  auto asked = replay.ask("mx.example.test", dns::type::MX);
  INFO(asked.result.message);
  REQUIRE(asked.result.ok());
  CHECK(asked.result.rcode == "NOERROR");
  CHECK_FALSE(asked.result.tcp);
  CHECK(asked.result.server == "127.0.0.1:" + std::to_string(replay.server->port()));
  auto hosts = fields(asked.result);
  std::sort(hosts.begin(), hosts.end());
  CHECK(hosts == std::vector<std::string>{"mx1.example.test", "mx2.example.test"});
  // The same bytes but for the ID: the resolver's own (random) one, which it accepted.
  REQUIRE(asked.wire.size() == recorded.size());
  CHECK(asked.wire.substr(2) == recorded.substr(2));
  CHECK(replay.server->answered() == 1);
  CHECK(replay.server->refused() == 0);

  // The question's case and a trailing dot do not matter.
  replay.server->add(
      "A.Example.Test.", dns::type::A,
      response(7, "a.example.test.", LDNS_RR_TYPE_A, {a_record("a.example.test.", "192.0.2.1")}));
  auto a = replay.ask("a.example.test", dns::type::A);
  REQUIRE(a.result.ok());
  CHECK(fields(a.result) == std::vector<std::string>{"192.0.2.1"});
  CHECK(replay.server->answered() == 2);
}

TEST_CASE("a question never recorded is REFUSED") {
  engine::Loop loop;
  Replay replay(loop);
  replay.server->add(
      "known.test", dns::type::A,
      response(1, "known.test.", LDNS_RR_TYPE_A, {a_record("known.test.", "192.0.2.2")}));
  replay.server->start();

  auto unknown = replay.ask("unknown.test", dns::type::A);
  CHECK(unknown.result.status == dns::Status::refused);
  CHECK(unknown.result.rcode == "REFUSED");
  // The right name with another type is another question.
  auto other_type = replay.ask("known.test", dns::type::AAAA);
  CHECK(other_type.result.status == dns::Status::refused);
  CHECK(replay.server->refused() == 2);
  CHECK(replay.server->answered() == 0);

  auto known = replay.ask("known.test", dns::type::A);
  REQUIRE(known.result.ok());
  CHECK(replay.server->answered() == 1);
  CHECK(replay.server->refused() == 2);
}

TEST_CASE("an answer too big for UDP is asked again over TCP and comes back whole") {
  engine::Loop loop;
  Replay replay(loop);
  std::vector<std::string> records;
  for (int i = 1; i <= 100; ++i)
    records.push_back(a_record("big.test.", "10.0.0." + std::to_string(i)));
  std::string big = response(99, "big.test.", LDNS_RR_TYPE_A, records);
  REQUIRE(big.size() > 1232);
  replay.server->add("big.test", dns::type::A, big);
  replay.server->start();

  auto asked = replay.ask("big.test", dns::type::A);
  INFO(asked.result.message);
  REQUIRE(asked.result.ok());
  CHECK(asked.result.tcp);
  REQUIRE(asked.result.records.size() == 100);
  auto addresses = fields(asked.result);
  for (int i = 1; i <= 100; ++i)
    CHECK(std::find(addresses.begin(), addresses.end(), "10.0.0." + std::to_string(i)) !=
          addresses.end());
  CHECK(asked.wire.substr(2) == big.substr(2));
}

TEST_CASE("several answers to one question are given out in order, the last one again") {
  engine::Loop loop;
  Replay replay(loop);
  for (const char* address : {"192.0.2.1", "192.0.2.2", "192.0.2.3"})
    replay.server->add("seq.test", dns::type::A,
                       response(5, "seq.test.", LDNS_RR_TYPE_A, {a_record("seq.test.", address)}));
  replay.server->start();

  std::vector<std::string> seen;
  std::vector<std::uint16_t> ids;
  for (int i = 0; i < 5; ++i) {
    auto asked = replay.ask("seq.test", dns::type::A);
    REQUIRE(asked.result.ok());
    seen.push_back(fields(asked.result).at(0));
    ids.push_back(id_of(asked.wire));
  }
  CHECK(seen ==
        std::vector<std::string>{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.3", "192.0.2.3"});
  CHECK(replay.server->answered() == 5);
  CHECK(replay.server->refused() == 0);
  // Each answer carried the ID of its own query (the resolver picks them at random).
  std::sort(ids.begin(), ids.end());
  CHECK(std::unique(ids.begin(), ids.end()) - ids.begin() >= 2);
}

TEST_CASE("large answers to one question come in order over TCP, each counted once") {
  engine::Loop loop;
  Replay replay(loop);
  for (int round = 1; round <= 2; ++round) {
    std::vector<std::string> records;
    for (int i = 1; i <= 100; ++i)
      records.push_back(
          a_record("big.test.", "10.0." + std::to_string(round) + "." + std::to_string(i)));
    replay.server->add("big.test", dns::type::A, response(7, "big.test.", LDNS_RR_TYPE_A, records));
  }
  replay.server->start();
  // The UDP reply that only says "truncated" must not use up an answer.
  auto first = replay.ask("big.test", dns::type::A);
  REQUIRE(first.result.ok());
  CHECK(first.result.tcp);
  CHECK(fields(first.result).at(0).rfind("10.0.1.", 0) == 0);
  CHECK(replay.server->answered() == 1);
  auto second = replay.ask("big.test", dns::type::A);
  REQUIRE(second.result.ok());
  CHECK(fields(second.result).at(0).rfind("10.0.2.", 0) == 0);
  CHECK(replay.server->answered() == 2);
}

TEST_CASE("after close() nothing answers") {
  engine::Loop loop;
  Replay replay(loop);
  replay.server->add("x.test", dns::type::A,
                     response(1, "x.test.", LDNS_RR_TYPE_A, {a_record("x.test.", "192.0.2.9")}));
  replay.server->start();
  REQUIRE(replay.ask("x.test", dns::type::A).result.ok());
  replay.server->close();
  dns::ServerSet servers = replay.resolver->servers();
  servers.timeout = 300ms;
  replay.resolver->set_servers(servers);
  auto asked = replay.ask("x.test", dns::type::A);
  CHECK_FALSE(asked.result.ok());
  CHECK((asked.result.status == dns::Status::unreachable ||
         asked.result.status == dns::Status::timeout));
}
