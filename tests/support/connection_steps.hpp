#pragma once
// Test support: one step at a time on a net::Connection, each waited for (bounded by
// test::wait), for the tests of connections, listeners and TLS.

#include "engine/net/connection.hpp"
#include "tests/support/operation.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>

namespace smtpsh::test {

inline std::shared_ptr<net::Connection> connect(engine::Loop& loop, const std::string& host,
                                                std::uint16_t port,
                                                net::ConnectOptions options = {}) {
  auto conn = net::Connection::create(loop.io());
  Operation op;
  conn->connect(host, port, options, &Operation::notify, &op);
  CHECK_FALSE(op.done);  // never completes inside the call that started it
  wait(loop, op);
  return conn;
}

// A connection to 127.0.0.1:port that must succeed.
inline std::shared_ptr<net::Connection> connect_loopback(engine::Loop& loop, std::uint16_t port) {
  using namespace std::chrono_literals;
  auto conn = connect(loop, "127.0.0.1", port, {.source = {}, .timeout = 5s});
  REQUIRE(conn->write_outcome().ok());
  return conn;
}

inline std::string read_line(engine::Loop& loop, net::Connection& conn) {
  if (conn.take_buffered_line()) return std::string(conn.data());
  Operation op;
  conn.read_line(&Operation::notify, &op);
  wait(loop, op);
  return std::string(conn.data());
}

inline void send(engine::Loop& loop, net::Connection& conn, std::string_view bytes) {
  Operation op;
  conn.send(bytes, &Operation::notify, &op);
  wait(loop, op);
  REQUIRE(conn.write_outcome().ok());
  CHECK(conn.bytes_sent() == bytes.size());
}

}  // namespace smtpsh::test
