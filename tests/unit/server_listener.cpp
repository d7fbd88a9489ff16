// engine/server/listener: binding in words, and accepted connections handed over as
// net::Connection objects that speak to the clients that made them, all on loopback.
#include "engine/net/connection.hpp"
#include "engine/server/listener.hpp"
#include "tests/support/connection_steps.hpp"
#include "tests/support/operation.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

using namespace smtpsh;
using namespace std::chrono_literals;

namespace {

using Op = test::Operation;
using test::read_line;
using test::send;
using test::wait;

// Keeps what the listener hands over; done once `expected` connections came.
struct Accepted {
  std::vector<std::shared_ptr<net::Connection>> connections;
  std::size_t expected = 0;
  Op op;
  static void on_accept(void* self_pointer, std::shared_ptr<net::Connection> connection) {
    auto* self = static_cast<Accepted*>(self_pointer);
    self->connections.push_back(std::move(connection));
    if (self->connections.size() >= self->expected) self->op.done = true;
  }
};

}  // namespace

TEST_CASE("port 0 picks a free port, and address() names it") {
  engine::Loop loop;
  std::string error;
  auto listener = server::Listener::open(loop.io(), "127.0.0.1", 0, error);
  INFO(error);
  REQUIRE(listener != nullptr);
  CHECK(error.empty());
  CHECK(listener->is_open());
  CHECK(listener->port() != 0);
  CHECK(listener->address() == "127.0.0.1:" + std::to_string(listener->port()));
  CHECK(listener->accepted() == 0);
  listener->close();
  CHECK_FALSE(listener->is_open());
}

TEST_CASE("a host that is not an address, or a busy port, is refused in words") {
  engine::Loop loop;
  std::string error;
  CHECK(server::Listener::open(loop.io(), "x", 0, error) == nullptr);
  CHECK(error == "cannot listen on 'x': not an IP address");
  CHECK(server::Listener::open(loop.io(), "localhost", 25, error) == nullptr);
  CHECK(error == "cannot listen on 'localhost': not an IP address");

  auto first = server::Listener::open(loop.io(), "127.0.0.1", 0, error);
  REQUIRE(first != nullptr);
  std::string prefix = "cannot listen on 127.0.0.1:" + std::to_string(first->port()) + ": ";
  CHECK(server::Listener::open(loop.io(), "127.0.0.1", first->port(), error) == nullptr);
  CHECK(error.rfind("cannot listen on 127.0.0.1:", 0) == 0);
  CHECK(error == prefix + "Address already in use");

  // Once the first one is closed, the port can be had again (SO_REUSEADDR).
  first->close();
  error.clear();
  auto again = server::Listener::open(loop.io(), "127.0.0.1", first->port(), error);
  INFO(error);
  CHECK(again != nullptr);
}

TEST_CASE("three clients: three accepted connections, each talking to its own client") {
  engine::Loop loop;
  std::string error;
  auto listener = server::Listener::open(loop.io(), "127.0.0.1", 0, error);
  REQUIRE(listener != nullptr);
  Accepted accepted;
  accepted.expected = 3;
  listener->start(&Accepted::on_accept, &accepted);

  std::vector<std::shared_ptr<net::Connection>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(
        test::connect(loop, "127.0.0.1", listener->port(), {.source = {}, .timeout = 5s}));
    REQUIRE(clients.back()->write_outcome().ok());
  }
  wait(loop, accepted.op);
  REQUIRE(accepted.connections.size() == 3);
  CHECK(listener->accepted() == 3);

  for (auto& client : clients) {
    CAPTURE(client->local_address());
    auto found = std::find_if(
        accepted.connections.begin(), accepted.connections.end(),
        [&](const auto& conn) { return conn->remote_address() == client->local_address(); });
    REQUIRE(found != accepted.connections.end());
    net::Connection& server_side = **found;
    CHECK(server_side.is_open());
    CHECK(server_side.local_address() == listener->address());
    CHECK(client->remote_address() == listener->address());
    // Already connected: it reads and writes at once, and only with its own client.
    send(loop, server_side, "220 for " + client->local_address() + "\r\n");
    CHECK(read_line(loop, *client) == "220 for " + client->local_address());
    send(loop, *client, "QUIT " + client->local_address() + "\r\n");
    CHECK(read_line(loop, server_side) == "QUIT " + client->local_address());
  }
  for (auto& conn : accepted.connections)
    conn->close();
  listener->close();
}

TEST_CASE("after close() connects are refused and nothing more is accepted") {
  engine::Loop loop;
  std::string error;
  auto listener = server::Listener::open(loop.io(), "127.0.0.1", 0, error);
  REQUIRE(listener != nullptr);
  Accepted accepted;
  accepted.expected = 1;
  listener->start(&Accepted::on_accept, &accepted);
  auto first = test::connect(loop, "127.0.0.1", listener->port(), {.source = {}, .timeout = 5s});
  REQUIRE(first->write_outcome().ok());
  wait(loop, accepted.op);
  auto port = listener->port();
  listener->close();
  CHECK_FALSE(listener->is_open());

  auto late = test::connect(loop, "127.0.0.1", port, {.source = {}, .timeout = 5s});
  CHECK(late->write_outcome().failure == net::Failure::refused);
  CHECK(late->write_outcome().message == "connection refused by 127.0.0.1:" + std::to_string(port));
  // Let anything still queued run: the closed listener hands nothing over.
  loop.io().poll();
  CHECK(accepted.connections.size() == 1);
  CHECK(listener->accepted() == 1);
  // A connection accepted before the close lives on.
  send(loop, *accepted.connections[0], "still here\r\n");
  CHECK(read_line(loop, *first) == "still here");
}

TEST_CASE("IPv6 loopback, when the machine has it") {
  engine::Loop loop;
  std::string error;
  auto listener = server::Listener::open(loop.io(), "::1", 0, error);
  if (!listener) {
    MESSAGE("no IPv6 loopback here (" << error << "); skipped");
    return;
  }
  CHECK(listener->address() == "[::1]:" + std::to_string(listener->port()));
  Accepted accepted;
  accepted.expected = 1;
  listener->start(&Accepted::on_accept, &accepted);
  auto conn = net::Connection::create(loop.io());
  Op op;
  conn->connect("::1", listener->port(), {.source = {}, .timeout = 5s}, &Op::notify, &op);
  wait(loop, op);
  REQUIRE(conn->write_outcome().ok());
  wait(loop, accepted.op);
  CHECK(accepted.connections[0]->remote_address() == conn->local_address());
  listener->close();
}
