#include "engine/server/redirect_map.hpp"

#include "engine/base/endpoint.hpp"

#include <asio/ip/address.hpp>

#include <optional>
#include <string>

namespace smtpsh::server {

namespace {

// "IP:PORT" / "[V6]:PORT", with a port: no names, no default.
std::optional<asio::ip::tcp::endpoint> parse_endpoint(std::string_view text) {
  std::string error;
  auto target = engine::parse_host_port(text, 0, error);
  if (!target || target->port == 0) return std::nullopt;
  std::error_code ec;
  auto address = asio::ip::make_address(target->host, ec);
  if (ec) return std::nullopt;
  return asio::ip::tcp::endpoint(address, target->port);
}

}  // namespace

bool RedirectMap::add(std::string_view from, std::string_view to) {
  Entry entry;
  auto from_endpoint = parse_endpoint(from);
  if (!from_endpoint) return false;
  entry.from = *from_endpoint;
  if (to == "refuse") {
    entry.action = Action::refuse;
  } else if (to == "blackhole") {
    entry.action = Action::blackhole;
  } else {
    auto to_endpoint = parse_endpoint(to);
    if (!to_endpoint) return false;
    entry.to = *to_endpoint;
  }
  entries_.push_back(std::move(entry));
  return true;
}

bool RedirectMap::add_replayed_tls(std::string_view from, std::shared_ptr<const tls::Info> info) {
  auto from_endpoint = parse_endpoint(from);
  const Entry* entry = from_endpoint ? find(*from_endpoint) : nullptr;
  if (!entry) return false;
  entry->replayed_tls.push_back(std::move(info));
  return true;
}

void RedirectMap::set_otherwise(std::string_view action) {
  otherwise_ = action == "refuse"      ? Action::refuse
               : action == "blackhole" ? Action::blackhole
                                       : Action::to;
}

const RedirectMap::Entry* RedirectMap::find(const asio::ip::tcp::endpoint& endpoint) const {
  for (const Entry& entry : entries_)
    if (entry.from == endpoint) return &entry;
  return nullptr;
}

net::ConnectHook::Verdict RedirectMap::before_connect(asio::ip::tcp::endpoint& endpoint,
                                                      net::Admission& admission) const {
  const Entry* entry = find(endpoint);
  switch (entry ? entry->action : otherwise_) {
    case Action::refuse:
      return Verdict::refuse;
    case Action::blackhole:
      return Verdict::blackhole;
    case Action::to:
      break;
  }
  if (entry) {
    endpoint = entry->to;
    if (!entry->replayed_tls.empty()) {
      admission.replayed_tls = std::move(entry->replayed_tls.front());
      entry->replayed_tls.pop_front();
    }
  }
  return Verdict::go;
}

}  // namespace smtpsh::server
