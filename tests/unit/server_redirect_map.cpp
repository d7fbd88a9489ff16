// engine/server/redirect_map: where a replay's connects go, read from "IP:PORT" words, and
// installed as a net::Connection's connect hook against listeners on loopback.
#include "engine/net/connection.hpp"
#include "engine/server/redirect_map.hpp"
#include "tests/support/connection_steps.hpp"
#include "tests/support/subprocess.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>

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

  auto endpoint = at("127.0.0.1", 25);
  CHECK(hook.before_connect(endpoint) == Verdict::go);
  CHECK(endpoint == at("127.0.0.1", 2525));
  endpoint = at("127.0.0.1", 26);
  CHECK(hook.before_connect(endpoint) == Verdict::refuse);
  endpoint = at("127.0.0.1", 27);
  CHECK(hook.before_connect(endpoint) == Verdict::blackhole);

  auto unlisted = at("127.0.0.1", 28);
  endpoint = unlisted;
  CHECK(hook.before_connect(endpoint) == Verdict::go);  // by default: as asked
  CHECK(endpoint == unlisted);
  map.set_otherwise("refuse");
  CHECK(hook.before_connect(endpoint) == Verdict::refuse);
  map.set_otherwise("blackhole");
  CHECK(hook.before_connect(endpoint) == Verdict::blackhole);
  map.set_otherwise("");
  CHECK(hook.before_connect(endpoint) == Verdict::go);
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
