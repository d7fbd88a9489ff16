// engine/dns/resolv_conf, hosts_file and names: configuration text and derived names.
#include "engine/dns/hosts_file.hpp"
#include "engine/dns/names.hpp"
#include "engine/dns/resolv_conf.hpp"

#include <doctest/doctest.h>

using namespace smtpsh;
using namespace std::chrono_literals;

TEST_CASE("resolv.conf: nameservers, timeout and attempts as the C library reads them") {
  auto set = dns::parse_resolv_conf(
      "# comment\n"
      "search example.test\n"
      "nameserver 127.0.0.53\n"
      "nameserver ::1 ; trailing comment\n"
      "nameserver not-an-address\n"
      "options ndots:2 timeout:3 attempts:4 rotate\n");
  REQUIRE(set.servers.size() == 2);
  CHECK(dns::format_server(set.servers[0]) == "127.0.0.53:53");
  CHECK(dns::format_server(set.servers[1]) == "[::1]:53");
  CHECK(set.timeout == 3s);
  CHECK(set.attempts == 4);

  auto empty = dns::parse_resolv_conf("");
  REQUIRE(empty.servers.size() == 1);
  CHECK(dns::format_server(empty.servers[0]) == "127.0.0.1:53");
  CHECK(empty.timeout == 5s);
  CHECK(empty.attempts == 2);

  auto clamped = dns::parse_resolv_conf("options timeout:0 attempts:99\noptions timeout:x\n");
  CHECK(clamped.timeout == 1s);
  CHECK(clamped.attempts == 5);
}

TEST_CASE("servers the user names are addresses with an optional port") {
  std::string error;
  auto server = dns::parse_server("127.0.0.1:5353", error);
  REQUIRE(server);
  CHECK(dns::format_server(*server) == "127.0.0.1:5353");
  CHECK(dns::format_server(*dns::parse_server("::1", error)) == "[::1]:53");
  CHECK(dns::format_server(*dns::parse_server("[::1]:5300", error)) == "[::1]:5300");
  CHECK_FALSE(dns::parse_server("dns.example:53", error));
  CHECK(error.find("is not an IP address") != std::string::npos);
  CHECK_FALSE(dns::parse_server("127.0.0.1:99999", error));
}

TEST_CASE("hosts file: names to addresses, without case, aliases too") {
  auto hosts = dns::HostsFile::parse(
      "127.0.0.1 localhost\n"
      "::1 localhost ip6-localhost # the loopback\n"
      "192.0.2.5 MX1.Example.test mx1\n"
      "garbage line\n"
      "#192.0.2.6 commented.test\n");
  auto local = hosts.lookup("localhost");
  REQUIRE(local.size() == 2);
  CHECK(local[0].to_string() == "127.0.0.1");
  CHECK(local[1].to_string() == "::1");
  CHECK(hosts.lookup("mx1.example.test.").size() == 1);
  CHECK(hosts.lookup("MX1").front().to_string() == "192.0.2.5");
  CHECK(hosts.lookup("commented.test").empty());
  CHECK(hosts.lookup("garbage").empty());
}

TEST_CASE("reverse names for IPv4, IPv6 and v4-mapped addresses") {
  CHECK(dns::reverse_name("127.0.0.2") == "2.0.0.127.in-addr.arpa");
  CHECK(dns::reversed_labels("192.0.2.10") == "10.2.0.192");
  CHECK(dns::reverse_name("::ffff:127.0.0.2") == "2.0.0.127.in-addr.arpa");
  CHECK(dns::reverse_name("2001:db8::1") ==
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  CHECK(dns::reverse_name("::1") ==
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
  CHECK_FALSE(dns::reverse_name("mx.example.test"));
  CHECK_FALSE(dns::reverse_name("300.1.1.1"));
}
