#include "tests/support/nsd.hpp"

#include <chrono>
#include <filesystem>
#include <regex>
#include <stdexcept>
#include <thread>

namespace smtpsh::test {

namespace {
std::vector<std::string> peer_command(const std::vector<std::string>& mode_args) {
  std::vector<std::string> argv{"/usr/bin/python3", DnsPeer::script_path()};
  argv.insert(argv.end(), mode_args.begin(), mode_args.end());
  return argv;
}
}  // namespace

std::string DnsPeer::script_path() {
  // This file is tests/support/nsd.cpp; CMake compiles it by its absolute path.
  auto repo = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return (repo / "tests" / "peers" / "dns_peer.py").string();
}

DnsPeer::DnsPeer(const std::vector<std::string>& mode_args) : child_(peer_command(mode_args)) {
  using namespace std::chrono_literals;
  static const std::regex port_line(R"((?:^|\n)PORT (\d+)\r?\n)");
  auto deadline = std::chrono::steady_clock::now() + 15s;
  std::smatch match;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string printed = child_.log();
    if (std::regex_search(printed, match, port_line)) {
      port_ = static_cast<std::uint16_t>(std::stoi(match[1]));
      return;
    }
    if (!child_.running())
      throw std::runtime_error("dns_peer.py exited before it listened: " + printed);
    std::this_thread::sleep_for(20ms);
  }
  throw std::runtime_error("dns_peer.py printed no PORT line within 15 s: " + child_.log());
}

}  // namespace smtpsh::test
