// libFuzzer target for parse_host_port and parse_port (targets as users type them, and the
// "from"/"to" of replay redirects): no crash; a success has a non-empty host without
// brackets and a port from 1 to 65535 (or the default); the target written back by
// format_endpoint ("host:port", "[host]:port" when the host has a ':') parses to the same host
// and port; a failure says why; parse_port agrees with a plain reading of decimal digits.

#include "engine/base/endpoint.hpp"
#include "tests/fuzz/expect.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace smtpsh::engine;
using fuzz::expect;

namespace {

// What parse_port should answer: decimal digits only, worth 1..65535 (leading zeros allowed).
bool is_port(std::string_view text, unsigned& value) {
  if (text.empty()) return false;
  value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > 65535) return false;
  }
  return value != 0;
}

void check_port(std::string_view text) {
  unsigned expected = 0;
  bool valid = is_port(text, expected);
  auto port = parse_port(text);
  expect(port.has_value() == valid, "parse_port accepts exactly 1..65535 in decimal digits");
  if (port) expect(*port == expected, "parse_port reads the digits' value");
}

void check_target(std::string_view target, std::uint16_t default_port) {
  std::string error;
  auto parsed = parse_host_port(target, default_port, error);
  if (!parsed) {
    expect(!error.empty(), "a failure says why");
    return;
  }
  const std::string& host = parsed->host;
  // After a broken invariant that is ignored (SMTPSH_FUZZ_IGNORE), the rest would only
  // report it again in other words.
  if (!expect(!host.empty(), "the host is not empty")) return;
  if (!expect(host.find_first_of("[]") == std::string::npos, "the host has no brackets")) return;
  expect(parsed->port == default_port || parsed->port >= 1, "the port is 1..65535 or the default");
  if (parsed->port == 0) return;  // the default 0: no port to write back

  std::string again = format_endpoint(host, parsed->port);
  std::string error2;
  auto reparsed = parse_host_port(again, 0, error2);
  if (!expect(reparsed.has_value(), "host:port written back parses")) return;
  expect(reparsed->host == host && reparsed->port == parsed->port,
         "host:port written back parses to the same host and port");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  check_port(input);
  check_target(input, 25);
  check_target(input, 0);
  // What follows the last ':' as a port on its own too: the part parse_host_port passes on.
  auto colon = input.rfind(':');
  if (colon != std::string_view::npos) check_port(input.substr(colon + 1));
  return 0;
}
