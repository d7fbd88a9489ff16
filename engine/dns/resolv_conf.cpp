#include "engine/dns/resolv_conf.hpp"

#include "engine/base/endpoint.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

namespace smtpsh::dns {

namespace {

std::vector<std::string_view> words_of(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
      ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
      ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

std::optional<int> option_value(std::string_view word, std::string_view name) {
  if (word.substr(0, name.size()) != name) return std::nullopt;
  word.remove_prefix(name.size());
  int value = 0;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
  if (ec != std::errc() || end != word.data() + word.size()) return std::nullopt;
  return value;
}

}  // namespace

ServerSet parse_resolv_conf(std::string_view text) {
  ServerSet set;
  while (!text.empty()) {
    auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    auto comment = line.find_first_of("#;");
    if (comment != std::string_view::npos) line = line.substr(0, comment);
    auto words = words_of(line);
    if (words.size() >= 2 && words[0] == "nameserver") {
      // A scope ("fe80::1%eth0") is the address's own business; asio parses it.
      std::error_code ec;
      auto address = asio::ip::make_address(std::string(words[1]), ec);
      if (!ec) set.servers.emplace_back(address, 53);
    } else if (!words.empty() && words[0] == "options") {
      for (std::size_t i = 1; i < words.size(); ++i) {
        if (auto timeout = option_value(words[i], "timeout:"))
          set.timeout = std::chrono::seconds(std::clamp(*timeout, 1, 30));
        else if (auto attempts = option_value(words[i], "attempts:"))
          set.attempts = std::clamp(*attempts, 1, 5);
      }
    }
  }
  if (set.servers.empty()) set.servers.emplace_back(asio::ip::make_address("127.0.0.1"), 53);
  return set;
}

ServerSet system_servers(const char* path) {
  std::ifstream file(path);
  std::stringstream text;
  if (file) text << file.rdbuf();
  return parse_resolv_conf(text.str());
}

std::optional<asio::ip::udp::endpoint> parse_server(std::string_view text, std::string& error) {
  auto target = engine::parse_host_port(text, 53, error);
  if (!target) return std::nullopt;
  std::error_code ec;
  auto address = asio::ip::make_address(target->host, ec);
  if (ec) {
    error = "DNS server '" + std::string(text) +
            "' is not an IP address (ADDR or ADDR:PORT, [IPV6]:PORT)";
    return std::nullopt;
  }
  return asio::ip::udp::endpoint(address, target->port);
}

std::string format_server(const asio::ip::udp::endpoint& server) {
  return engine::format_endpoint(server.address().to_string(), server.port());
}

}  // namespace smtpsh::dns
