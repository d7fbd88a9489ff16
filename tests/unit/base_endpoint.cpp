#include "engine/base/endpoint.hpp"

#include <doctest/doctest.h>

using namespace smtpsh::engine;

namespace {
HostPort parse_ok(std::string_view target, std::uint16_t default_port = 25) {
  std::string error;
  auto result = parse_host_port(target, default_port, error);
  INFO(target, " ", error);
  REQUIRE(result.has_value());
  return *result;
}

std::string parse_error(std::string_view target) {
  std::string error;
  auto result = parse_host_port(target, 25, error);
  INFO(target);
  REQUIRE_FALSE(result.has_value());
  return error;
}
}  // namespace

TEST_CASE("host, host:port, [v6]:port and bare v6") {
  CHECK(parse_ok("mx.example.test").host == "mx.example.test");
  CHECK(parse_ok("mx.example.test").port == 25);
  CHECK(parse_ok("mx.example.test:587").port == 587);
  CHECK(parse_ok("127.0.0.1:2525").host == "127.0.0.1");
  CHECK(parse_ok("[::1]:2525").host == "::1");
  CHECK(parse_ok("[::1]:2525").port == 2525);
  CHECK(parse_ok("[::1]").port == 25);
  CHECK(parse_ok("::1").host == "::1");
  CHECK(parse_ok("2001:db8::25", 465).port == 465);
}

TEST_CASE("malformed targets are refused with a reason") {
  CHECK(parse_error("") == "bad target '': empty; expected HOST, HOST:PORT or [IPV6]:PORT");
  CHECK(parse_error("host:") == "bad target 'host:': empty port after ':'");
  CHECK(parse_error("host:0") == "bad target 'host:0': port '0' is not a number from 1 to 65535");
  CHECK(parse_error("host:70000").find("not a number from 1 to 65535") != std::string::npos);
  CHECK(parse_error("host:2x").find("port '2x'") != std::string::npos);
  CHECK(parse_error("[::1").find("missing ']'") != std::string::npos);
  CHECK(parse_error("[::1]x").find("expected ':PORT'") != std::string::npos);
  CHECK(parse_error("[mx.example]:25").find("not an IPv6 address") != std::string::npos);
  CHECK(parse_error("a:b:c").find("write [ADDRESS]:PORT") != std::string::npos);
  CHECK(parse_error(":25") == "bad target ':25': empty host");
  CHECK(parse_error("mx\r\n.example").find("control or space") != std::string::npos);
  // Found by fuzz_host_port: a bracket inside a host got through to DNS.
  CHECK(parse_error("mx]:25") == "bad target 'mx]:25': ']' inside the host");
  CHECK(parse_error(".[") == "bad target '.[': '[' inside the host");
}

TEST_CASE("parse_port accepts 1..65535 only") {
  CHECK(parse_port("1") == 1);
  CHECK(parse_port("65535") == 65535);
  CHECK_FALSE(parse_port("65536"));
  CHECK_FALSE(parse_port("-1"));
  CHECK_FALSE(parse_port(""));
  CHECK_FALSE(parse_port("25 "));
}

TEST_CASE("endpoints print with brackets around IPv6") {
  CHECK(format_endpoint({asio::ip::make_address("127.0.0.1"), 25}) == "127.0.0.1:25");
  CHECK(format_endpoint({asio::ip::make_address("::1"), 2525}) == "[::1]:2525");
  CHECK(format_endpoint({asio::ip::make_address("::ffff:127.0.0.1"), 25}) ==
        "[::ffff:127.0.0.1]:25");
}

TEST_CASE("a host and a port print the same way, names as they are") {
  CHECK(format_endpoint("mx.example.test", 25) == "mx.example.test:25");
  CHECK(format_endpoint("127.0.0.1", 587) == "127.0.0.1:587");
  CHECK(format_endpoint("::1", 2525) == "[::1]:2525");
  CHECK(format_endpoint("2001:db8::25", 65535) == "[2001:db8::25]:65535");
  CHECK(format_endpoint("::1", 25) == format_endpoint({asio::ip::make_address("::1"), 25}));
}

TEST_CASE("what format_endpoint writes, parse_host_port reads back") {
  for (std::string_view host : {"mx.example.test", "127.0.0.1", "::1", "2001:db8::25"}) {
    auto parsed = parse_ok(format_endpoint(host, 2525), 25);
    CHECK(parsed.host == host);
    CHECK(parsed.port == 2525);
  }
}
