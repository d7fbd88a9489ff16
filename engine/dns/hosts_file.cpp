#include "engine/dns/hosts_file.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace smtpsh::dns {

namespace {
std::string normalized(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}
}  // namespace

HostsFile HostsFile::parse(std::string_view text) {
  HostsFile hosts;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string address_text, name;
    if (!(words >> address_text)) continue;
    std::error_code ec;
    auto address = asio::ip::make_address(address_text, ec);
    if (ec) continue;
    while (words >> name)
      hosts.entries_.push_back({normalized(name), address});
  }
  return hosts;
}

HostsFile HostsFile::load(const char* path) {
  std::ifstream file(path);
  std::stringstream text;
  if (file) text << file.rdbuf();
  return parse(text.str());
}

std::vector<asio::ip::address> HostsFile::lookup(std::string_view name) const {
  std::string key = normalized(name);
  std::vector<asio::ip::address> found;
  for (const Entry& entry : entries_)
    if (entry.name == key && std::find(found.begin(), found.end(), entry.address) == found.end())
      found.push_back(entry.address);
  return found;
}

}  // namespace smtpsh::dns
