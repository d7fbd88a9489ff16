#include "engine/dns/resolver.hpp"

#include "engine/loop/loop.hpp"

#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <algorithm>

namespace smtpsh::dns {

namespace {
// Answers are kept at most a day, whatever their TTL says, and the cache stays bounded.
constexpr std::uint32_t max_cache_ttl = 86400;
constexpr std::size_t max_cache_entries = 100000;

// Which failure tells the user most, when every try failed: a server's own words first.
int weight(Status status) {
  switch (status) {
    case Status::servfail:
    case Status::refused:
    case Status::other_rcode:
      return 4;
    case Status::malformed:
      return 3;
    case Status::timeout:
      return 2;
    case Status::unreachable:
      return 1;
    default:
      return 0;
  }
}

double seconds_since(engine::Clock::time_point start) {
  return std::chrono::duration<double>(engine::Clock::now() - start).count();
}
}  // namespace

std::string_view status_text(Status status) {
  switch (status) {
    case Status::ok:
      return "NOERROR";
    case Status::nxdomain:
      return "NXDOMAIN";
    case Status::servfail:
      return "SERVFAIL";
    case Status::refused:
      return "REFUSED";
    case Status::other_rcode:
      return "RCODE";
    case Status::timeout:
      return "timeout";
    case Status::unreachable:
      return "unreachable";
    case Status::malformed:
      return "malformed";
    case Status::interrupted:
      return "interrupted";
  }
  return "unknown";
}

// --- Resolver --------------------------------------------------------------------------------

std::shared_ptr<Resolver> Resolver::create(asio::io_context& io, ServerSet servers) {
  return std::make_shared<Resolver>(io, std::move(servers));
}

Resolver::Resolver(asio::io_context& io, ServerSet servers)
    : io_(io), servers_(std::move(servers)), hosts_(HostsFile::load()), pool_(io) {}

void Resolver::set_servers(ServerSet servers) {
  servers_ = std::move(servers);
  cache_.clear();  // answers of other servers are not answers of these
}

void Resolver::set_cache(bool enabled) {
  cache_enabled_ = enabled;
  if (!enabled) cache_.clear();
}

std::shared_ptr<Query> Resolver::query(std::string_view name, std::uint16_t qtype,
                                       Query::Notify notify, void* context, std::uint8_t flags) {
  auto query =
      std::make_shared<Query>(shared_from_this(), std::string(name), qtype, notify, context, flags);
  query->start();
  return query;
}

std::shared_ptr<Query> Resolver::query(std::string_view name, std::uint16_t qtype,
                                       ServerSet servers, Query::Notify notify, void* context,
                                       std::uint8_t flags) {
  auto query =
      std::make_shared<Query>(shared_from_this(), std::string(name), qtype, notify, context, flags);
  query->own_servers_ = std::make_unique<const ServerSet>(std::move(servers));
  query->start();
  return query;
}

std::string Resolver::cache_key(std::string_view name, std::uint16_t qtype, std::uint8_t flags) {
  std::string key(name);
  // Names are canonical already when they come from the bindings; callers in C++ may differ.
  for (char& c : key)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  key += '/';
  key += std::to_string(qtype);
  // A DNSSEC answer carries more than a plain one (and a CD one may hold what failed).
  if (flags) key += "/" + std::to_string(flags);
  return key;
}

bool Resolver::from_cache(Query& query) {
  if (!cache_enabled_ || query.own_servers_) return false;
  auto it = cache_.find(cache_key(query.name_, query.qtype_, query.flags_));
  if (it == cache_.end()) return false;
  auto now = engine::Clock::now();
  if (now >= it->second.expires) {
    cache_.erase(it);
    return false;
  }
  query.result_ = it->second.result;
  query.result_.from_cache = true;
  query.result_.seconds = 0;
  auto aged = static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(now - it->second.stored).count());
  for (Record& record : query.result_.records)
    record.ttl = record.ttl > aged ? record.ttl - aged : 0;
  return true;
}

void Resolver::store(const Query& query, std::uint32_t ttl) {
  if (!cache_enabled_ || ttl == 0 || query.own_servers_) return;
  auto now = engine::Clock::now();
  if (cache_.size() >= max_cache_entries) {
    std::erase_if(cache_, [&](const auto& entry) { return entry.second.expires <= now; });
    if (cache_.size() >= max_cache_entries) cache_.clear();
  }
  ttl = std::min(ttl, max_cache_ttl);
  cache_[cache_key(query.name_, query.qtype_, query.flags_)] =
      CacheEntry{query.result_, now, now + std::chrono::seconds(ttl)};
}

std::uint16_t Resolver::random_id() {
  return pool_.random16();
}

// --- Query -----------------------------------------------------------------------------------

Query::Query(std::shared_ptr<Resolver> resolver, std::string name, std::uint16_t qtype,
             Notify notify, void* context, std::uint8_t flags)
    : resolver_(std::move(resolver)),
      name_(std::move(name)),
      qtype_(qtype),
      notify_(notify),
      context_(context),
      timer_(resolver_->io()),
      flags_(flags),
      started_(engine::Clock::now()) {
  // Status::ok stands for "no failure seen yet" until a try fails.
  failure_.status = Status::ok;
}

// A query dropped by its owners while a try waits (only at the loop's end: a try in progress
// holds the query) must not stay registered on its socket.
Query::~Query() {
  leave_udp();
}

void Query::start() {
  if (resolver_->from_cache(*this)) return finish_soon();
  id_ = resolver_->random_id();
  wire_ = build_query(name_, qtype_, id_, Resolver::udp_payload, (flags_ & dnssec_ok) != 0,
                      (flags_ & checking_disabled) != 0);
  if (wire_.empty()) {
    result_.status = Status::malformed;
    result_.rcode = "malformed";
    result_.message = "cannot build a DNS query for '" + name_ + "'";
    return finish_soon();
  }
  // Later tries get fresh IDs. The first starts now: the pool sends its datagram on the next
  // turn of the loop, and every way a try ends comes later still, so nothing completes inside
  // the call that started it. Without a server the query ends at once: on the next turn.
  if (servers().servers.empty())
    return asio::post(resolver_->io(), [self = shared_from_this()] { self->next_try(); });
  next_try();
}

const ServerSet& Query::servers() const {
  return own_servers_ ? *own_servers_ : resolver_->servers();
}

std::string Query::server_text() const {
  if (try_ == 0) return "no server";
  return format_server(server_);
}

void Query::next_try() {
  if (done_) return;
  close_sockets();
  const ServerSet& set = servers();
  std::size_t total = set.servers.size() * static_cast<std::size_t>(std::max(1, set.attempts));
  if (set.servers.empty() || try_ >= total) {
    result_ = failure_;
    if (result_.status == Status::ok) {
      result_.status = Status::timeout;
      result_.rcode = "timeout";
      result_.message = "no answer for " + name_ + " from any DNS server";
    }
    if (set.servers.empty()) {
      result_.status = Status::unreachable;
      result_.rcode = "unreachable";
      result_.message = "no DNS server configured";
    }
    return finish();
  }
  server_ = set.servers[try_ % set.servers.size()];
  ++try_;
  ++generation_;
  if (try_ > 1) {
    id_ = resolver_->random_id();
    wire_[0] = static_cast<char>(id_ >> 8);
    wire_[1] = static_cast<char>(id_ & 0xff);
  }
  send_udp();
}

void Query::arm_timer() {
  timer_.expires_after(servers().timeout);
  timer_.async_wait([self = shared_from_this(), generation = generation_](std::error_code ec) {
    if (ec || self->done_ || generation != self->generation_) return;
    self->remember_failure(Status::timeout, "timeout",
                           "no answer from DNS server " + self->server_text() + " within " +
                               engine::describe_duration(self->servers().timeout));
    self->next_try();
  });
}

void Query::send_udp() {
  std::error_code ec;
  udp_ = resolver_->pool_.add({server_, &Query::on_datagram, &Query::on_udp_error, this}, id_, ec);
  if (!udp_) {
    remember_failure(Status::unreachable, "unreachable",
                     "cannot reach DNS server " + server_text() + ": " + ec.message());
    return asio::post(resolver_->io(), [self = shared_from_this(), generation = generation_] {
      if (generation == self->generation_) self->next_try();
    });
  }
  // The pool gave another ID when a query in flight on that socket had this one.
  udp_id_ = id_;
  wire_[0] = static_cast<char>(id_ >> 8);
  wire_[1] = static_cast<char>(id_ & 0xff);
  arm_timer();
  udp_->send(wire_, id_);
}

void Query::on_datagram(void* context, std::string_view datagram) {
  // The answer may end the query and its owner drop it: it lives until this returns.
  auto self = static_cast<Query*>(context)->shared_from_this();
  if (self->done_) return;
  Answer answer;
  switch (parse_answer(datagram, self->id_, self->name_, self->qtype_, answer)) {
    case Verdict::unrelated:
      return;  // from the server, with our ID, but not an answer to our question: keep waiting
    case Verdict::malformed:
      self->remember_failure(
          Status::malformed, "malformed",
          "DNS server " + self->server_text() + " sent an answer that does not decode");
      return self->next_try();
    case Verdict::accepted:
      break;
  }
  if (answer.truncated) return self->start_tcp();
  self->take(answer, datagram, false);
}

void Query::on_udp_error(void* context, const std::error_code& ec, bool sending) {
  auto self = static_cast<Query*>(context)->shared_from_this();
  if (self->done_) return;
  // ICMP port unreachable ("connection refused"), no route: the error queue named this try.
  self->remember_failure(Status::unreachable, "unreachable",
                         (sending ? "cannot send to DNS server " + self->server_text() + ": "
                                  : "DNS server " + self->server_text() + " is not reachable: ") +
                             ec.message());
  self->next_try();
}

void Query::leave_udp() {
  if (!udp_) return;
  auto socket = std::move(udp_);
  socket->remove(udp_id_, this);
}

void Query::start_tcp() {
  leave_udp();
  const auto& server = server_;
  tcp_ = std::make_unique<asio::ip::tcp::socket>(resolver_->io());
  ++generation_;  // the UDP try is over; the TCP one gets a deadline of its own
  arm_timer();
  tcp_->async_connect(
      asio::ip::tcp::endpoint(server.address(), server.port()),
      [self = shared_from_this(), generation = generation_](std::error_code ec) {
        if (self->done_ || generation != self->generation_) return;
        if (ec) {
          self->remember_failure(Status::unreachable, "unreachable",
                                 "answer truncated, and DNS server " + self->server_text() +
                                     " refuses TCP: " + ec.message());
          return self->next_try();
        }
        // Two length bytes, then the same query.
        self->buffer_.assign(2, '\0');
        self->buffer_[0] = static_cast<char>(self->wire_.size() >> 8);
        self->buffer_[1] = static_cast<char>(self->wire_.size() & 0xff);
        self->buffer_ += self->wire_;
        asio::async_write(*self->tcp_, asio::buffer(self->buffer_),
                          [self, generation](std::error_code ec, std::size_t) {
                            if (self->done_ || generation != self->generation_) return;
                            if (ec) return self->on_tcp_length(ec);
                            asio::async_read(*self->tcp_, asio::buffer(self->length_),
                                             [self, generation](std::error_code ec, std::size_t) {
                                               if (self->done_ || generation != self->generation_)
                                                 return;
                                               self->on_tcp_length(ec);
                                             });
                          });
      });
}

void Query::on_tcp_length(const std::error_code& ec) {
  if (ec) {
    remember_failure(Status::unreachable, "unreachable",
                     "DNS server " + server_text() + " closed the TCP connection: " + ec.message());
    return next_try();
  }
  std::size_t size = (std::size_t{length_[0]} << 8) | length_[1];
  buffer_.resize(size);
  asio::async_read(
      *tcp_, asio::buffer(buffer_),
      [self = shared_from_this(), generation = generation_](std::error_code ec, std::size_t) {
        if (self->done_ || generation != self->generation_) return;
        self->on_tcp_body(ec);
      });
}

void Query::on_tcp_body(const std::error_code& ec) {
  if (ec) return on_tcp_length(ec);
  Answer answer;
  if (parse_answer(buffer_, id_, name_, qtype_, answer) != Verdict::accepted) {
    remember_failure(
        Status::malformed, "malformed",
        "DNS server " + server_text() + " sent a TCP answer that does not match the query");
    return next_try();
  }
  take(answer, buffer_, true);
}

void Query::take(const Answer& answer, std::string_view wire, bool tcp) {
  std::string server = server_text();
  if (answer.rcode == rcode::SERVFAIL || answer.rcode == rcode::REFUSED ||
      (answer.rcode != rcode::NOERROR && answer.rcode != rcode::NXDOMAIN)) {
    Status status = answer.rcode == rcode::SERVFAIL  ? Status::servfail
                    : answer.rcode == rcode::REFUSED ? Status::refused
                                                     : Status::other_rcode;
    std::string rcode = rcode_name(answer.rcode);
    remember_failure(
        status, rcode,
        "DNS server " + server + " answered " + rcode + " for " + name_ + " " + type_name(qtype_));
    failure_.server = server;
    failure_.tcp = tcp;
    if (resolver_->observer_) {
      // Each server's refusal is part of the story a recording tells.
      Result kept = std::move(result_);
      result_ = failure_;
      result_.seconds = seconds_since(started_);
      resolver_->observe(*this, wire);
      result_ = std::move(kept);
    }
    return next_try();
  }

  result_ = Result{};
  result_.server = std::move(server);
  result_.tcp = tcp;
  result_.authenticated = answer.authenticated;
  if (flags_ & dnssec_ok) result_.wire = std::string(wire);
  std::string canonical;
  for (const Record* record : records_for(answer, name_, qtype_, canonical))
    result_.records.push_back(*record);
  // The aliases walked on the way to `canonical`.
  std::string step = name_;
  for (int links = 0; links < 16 && step != canonical; ++links) {
    auto alias = std::find_if(answer.answer.begin(), answer.answer.end(), [&](const Record& r) {
      return r.type == type::CNAME && r.name == step && !r.fields.empty();
    });
    if (alias == answer.answer.end()) break;
    result_.aliases.push_back(*alias);
    step = alias->fields[0];
  }
  result_.canonical = canonical;

  std::uint32_t ttl = 0;
  if (answer.rcode == rcode::NXDOMAIN) {
    result_.status = Status::nxdomain;
    result_.rcode = "NXDOMAIN";
    result_.message = name_ + " does not exist (NXDOMAIN from " + result_.server + ")";
    ttl = negative_ttl(answer).value_or(0);
  } else {
    result_.status = Status::ok;
    result_.rcode = "NOERROR";
    if (result_.records.empty()) {
      ttl = negative_ttl(answer).value_or(0);
    } else {
      ttl = result_.records.front().ttl;
      for (const Record& record : result_.records)
        ttl = std::min(ttl, record.ttl);
    }
  }
  result_.seconds = seconds_since(started_);
  resolver_->store(*this, ttl);
  done_ = true;
  close_sockets();
  resolver_->observe(*this, wire);
  Notify notify = notify_;
  notify_ = nullptr;
  if (notify) notify(context_);
}

void Query::remember_failure(Status status, std::string rcode, std::string message) {
  if (weight(status) < weight(failure_.status)) return;
  failure_.status = status;
  failure_.rcode = std::move(rcode);
  failure_.message = std::move(message);
}

void Query::close_sockets() {
  std::error_code ignored;
  timer_.cancel();
  leave_udp();
  if (tcp_) tcp_->close(ignored);
}

void Query::interrupt() {
  if (done_) return;
  result_ = Result{};
  result_.status = Status::interrupted;
  result_.rcode = "interrupted";
  result_.message = "DNS query for " + name_ + " interrupted";
  ++generation_;
  close_sockets();
  finish_soon();
}

void Query::finish() {
  if (done_) return;
  done_ = true;
  close_sockets();
  result_.seconds = seconds_since(started_);
  resolver_->observe(*this, {});
  Notify notify = notify_;
  notify_ = nullptr;
  if (notify) notify(context_);
}

void Query::finish_soon() {
  ++generation_;
  asio::post(resolver_->io(), [self = shared_from_this()] { self->finish(); });
}

}  // namespace smtpsh::dns
