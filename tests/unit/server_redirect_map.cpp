// engine/server/redirect_map: where a replay's connects go, read from "IP:PORT" words, and
// installed as a net::Connection's connect hook against listeners on loopback.
#include "engine/net/connection.hpp"
#include "engine/server/redirect_map.hpp"
#include "tests/support/connection_steps.hpp"
#include "tests/support/subprocess.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using namespace smtpsh;
using namespace std::chrono_literals;

namespace {

using Verdict = net::ConnectHook::Verdict;

asio::ip::tcp::endpoint at(const char* address, std::uint16_t port) {
  return {asio::ip::make_address(address), port};
}

}  // namespace

TEST_CASE("entries are IP:PORT to IP:PORT, refuse or blackhole; anything else adds nothing") {
  server::RedirectMap map;
  CHECK(map.add("127.0.0.1:25", "127.0.0.1:2525"));
  CHECK(map.add("[::1]:25", "refuse"));
  CHECK(map.add("127.0.0.2:587", "blackhole"));
  CHECK(map.size() == 3);

  CHECK_FALSE(map.add("mx.example.test:25", "127.0.0.1:2525"));  // a name
  CHECK_FALSE(map.add("127.0.0.1", "127.0.0.1:2525"));           // no port
  CHECK_FALSE(map.add("127.0.0.1:25", "127.0.0.1"));
  CHECK_FALSE(map.add("127.0.0.1:25", "elsewhere"));
  CHECK_FALSE(map.add("", "refuse"));
  CHECK(map.size() == 3);

  const auto* entry = map.find(at("127.0.0.1", 25));
  REQUIRE(entry);
  CHECK(entry->action == server::RedirectMap::Action::to);
  CHECK(entry->to == at("127.0.0.1", 2525));
  CHECK(map.find(at("::1", 25))->action == server::RedirectMap::Action::refuse);
  CHECK(map.find(at("127.0.0.1", 26)) == nullptr);
}

TEST_CASE("the hook redirects, refuses and blackholes as listed; others go as `otherwise` says") {
  server::RedirectMap map;
  REQUIRE(map.add("127.0.0.1:25", "127.0.0.1:2525"));
  REQUIRE(map.add("127.0.0.1:26", "refuse"));
  REQUIRE(map.add("127.0.0.1:27", "blackhole"));
  const net::ConnectHook& hook = map;
  net::Admission admission;

  auto endpoint = at("127.0.0.1", 25);
  CHECK(hook.before_connect(endpoint, admission) == Verdict::go);
  CHECK(endpoint == at("127.0.0.1", 2525));
  endpoint = at("127.0.0.1", 26);
  CHECK(hook.before_connect(endpoint, admission) == Verdict::refuse);
  endpoint = at("127.0.0.1", 27);
  CHECK(hook.before_connect(endpoint, admission) == Verdict::blackhole);

  auto unlisted = at("127.0.0.1", 28);
  endpoint = unlisted;
  CHECK(hook.before_connect(endpoint, admission) == Verdict::go);  // by default: as asked
  CHECK(endpoint == unlisted);
  map.set_otherwise("refuse");
  CHECK(hook.before_connect(endpoint, admission) == Verdict::refuse);
  map.set_otherwise("blackhole");
  CHECK(hook.before_connect(endpoint, admission) == Verdict::blackhole);
  map.set_otherwise("");
  CHECK(hook.before_connect(endpoint, admission) == Verdict::go);
  CHECK(endpoint == unlisted);
}

TEST_CASE("installed as the connect hook: a recorded endpoint reaches the loopback listener") {
  engine::Loop loop;
  // The kernel completes the handshake for a listening socket; no accept needed.
  asio::ip::tcp::acceptor listener(loop.io(), at("127.0.0.1", 0));
  auto recorded = test::free_loopback_port();
  auto map = std::make_shared<server::RedirectMap>();
  REQUIRE(map->add("127.0.0.1:" + std::to_string(recorded),
                   "127.0.0.1:" + std::to_string(listener.local_endpoint().port())));
  map->set_otherwise("refuse");

  auto conn =
      test::connect(loop, "127.0.0.1", recorded, {.source = {}, .timeout = 5s, .hook = map});
  CHECK(conn->write_outcome().ok());
  CHECK(conn->remote_address() == "127.0.0.1:" + std::to_string(recorded));

  // Not in the recording: refused, though the listener is there.
  auto port = listener.local_endpoint().port();
  auto refused = test::connect(loop, "127.0.0.1", port, {.source = {}, .timeout = 5s, .hook = map});
  CHECK(refused->write_outcome().failure == net::Failure::refused);
  CHECK(refused->write_outcome().message ==
        "connection refused by 127.0.0.1:" + std::to_string(port));
}

TEST_CASE("each connect to a replayed endpoint takes the next recorded TLS result, in order") {
  server::RedirectMap map;
  REQUIRE(map.add("192.0.2.25:25", "127.0.0.1:2525"));
  auto first = std::make_shared<tls::Info>();
  first->version = "TLSv1.3";
  REQUIRE(map.add_replayed_tls("192.0.2.25:25", first));
  REQUIRE(map.add_replayed_tls("192.0.2.25:25", nullptr));  // the second session had no TLS
  auto third = std::make_shared<tls::Info>();
  third->version = "TLSv1.2";
  REQUIRE(map.add_replayed_tls("192.0.2.25:25", third));
  CHECK_FALSE(map.add_replayed_tls("192.0.2.26:25", third));  // not a redirected endpoint
  CHECK_FALSE(map.add_replayed_tls("not an endpoint", third));
  const net::ConnectHook& hook = map;
  std::vector<std::string> seen;
  for (int i = 0; i < 4; ++i) {
    auto endpoint = at("192.0.2.25", 25);
    net::Admission admission;
    CHECK(hook.before_connect(endpoint, admission) == Verdict::go);
    CHECK(endpoint == at("127.0.0.1", 2525));
    seen.push_back(admission.replayed_tls ? admission.replayed_tls->version : "none");
  }
  CHECK(seen == std::vector<std::string>{"TLSv1.3", "none", "TLSv1.2", "none"});
}
