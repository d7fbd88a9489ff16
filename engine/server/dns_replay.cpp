#include "engine/server/dns_replay.hpp"

#include <ldns/ldns.h>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <algorithm>

namespace smtpsh::server {

namespace {
std::string key_of(const std::string& name, std::uint16_t qtype) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.size() > 1 && lower.back() == '.') lower.pop_back();
  return lower + "/" + std::to_string(qtype);
}

// Sends `wire` whole over TCP, after its two length bytes, then closes.
void send_over_tcp(const std::shared_ptr<asio::ip::tcp::socket>& socket, const std::string& wire) {
  auto framed = std::make_shared<std::string>();
  framed->push_back(static_cast<char>(wire.size() >> 8));
  framed->push_back(static_cast<char>(wire.size() & 0xff));
  *framed += wire;
  asio::async_write(*socket, asio::buffer(*framed), [socket, framed](std::error_code, std::size_t) {
    std::error_code ignored;
    socket->shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  });
}
}  // namespace

std::shared_ptr<DnsReplay> DnsReplay::open(asio::io_context& io, std::string& error) {
  auto server = std::make_shared<DnsReplay>(io);
  auto loopback = asio::ip::make_address("127.0.0.1");
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::error_code ec;
    server->udp_.close(ec);
    server->tcp_.close(ec);
    server->udp_.open(asio::ip::udp::v4(), ec);
    if (!ec) server->udp_.bind({loopback, 0}, ec);
    if (ec) break;
    std::uint16_t port = server->udp_.local_endpoint().port();
    server->tcp_.open(asio::ip::tcp::v4(), ec);
    if (!ec) server->tcp_.bind({loopback, port}, ec);
    if (!ec) server->tcp_.listen(64, ec);
    if (!ec) {
      server->port_ = port;
      return server;
    }
  }
  error = "cannot bind a replay DNS server on 127.0.0.1";
  return nullptr;
}

void DnsReplay::add(const std::string& name, std::uint16_t qtype, std::string wire) {
  answers_[key_of(name, qtype)].push_back(std::move(wire));
}

void DnsReplay::start() {
  receive();
  accept();
}

void DnsReplay::close() {
  std::error_code ignored;
  udp_.close(ignored);
  tcp_.close(ignored);
}

// The recorded answer with the query's ID, or REFUSED for a question never recorded.
std::string DnsReplay::answer_for(std::string_view query, bool take) {
  ldns_pkt* packet = nullptr;
  if (ldns_wire2pkt(&packet, reinterpret_cast<const std::uint8_t*>(query.data()), query.size()) !=
      LDNS_STATUS_OK)
    return {};
  std::string reply;
  const ldns_rr_list* question = ldns_pkt_question(packet);
  if (question && ldns_rr_list_rr_count(question) == 1) {
    const ldns_rr* q = ldns_rr_list_rr(question, 0);
    char* owner = ldns_rdf2str(ldns_rr_owner(q));
    std::string key = key_of(owner ? owner : "", static_cast<std::uint16_t>(ldns_rr_get_type(q)));
    std::free(owner);
    auto found = answers_.find(key);
    if (found != answers_.end() && !found->second.empty()) {
      std::size_t& next = given_[key];
      reply = found->second[std::min(next, found->second.size() - 1)];
      // A look (for the size of a UDP answer) gives nothing out: the TCP retry gets this one.
      if (take) {
        ++next;
        ++answered_;
      }
    }
  }
  if (reply.empty()) {
    // REFUSED, with the question echoed: the query itself, flagged as a response.
    if (take) ++refused_;
    reply.assign(query);
    if (reply.size() >= 4) {
      reply[2] = static_cast<char>(reply[2] | 0x80);
      reply[3] = static_cast<char>((reply[3] & 0xf0) | 5);
    }
  }
  if (reply.size() >= 2) {
    reply[0] = query[0];
    reply[1] = query[1];
  }
  ldns_pkt_free(packet);
  return reply;
}

void DnsReplay::receive() {
  datagram_.resize(65535);
  udp_.async_receive_from(asio::buffer(datagram_), peer_,
                          [self = shared_from_this()](std::error_code ec, std::size_t size) {
                            if (ec == asio::error::operation_aborted || !self->udp_.is_open())
                              return;
                            if (!ec) {
                              std::string_view query(self->datagram_.data(), size);
                              std::string reply = self->answer_for(query, false);
                              // Too big for the asker's buffer: the query's header and
                              // question with QR and TC set, so it asks again over TCP.
                              if (reply.size() > 1232 && size > 12) {
                                std::size_t end = 12;
                                while (end < size && self->datagram_[end] != 0)
                                  end += static_cast<unsigned char>(self->datagram_[end]) + 1;
                                end = std::min(end + 5, size);  // the root label, QTYPE, QCLASS
                                reply.assign(self->datagram_.data(), end);
                                reply[2] = static_cast<char>(reply[2] | 0x82);
                                for (int i = 6; i < 12; ++i)
                                  reply[static_cast<std::size_t>(i)] = 0;
                              } else {
                                reply = self->answer_for(query, true);
                              }
                              std::error_code ignored;
                              if (!reply.empty())
                                self->udp_.send_to(asio::buffer(reply), self->peer_, 0, ignored);
                            }
                            self->receive();
                          });
}

void DnsReplay::accept() {
  tcp_.async_accept([self = shared_from_this()](std::error_code ec,
                                                asio::ip::tcp::socket accepted) {
    if (!self->tcp_.is_open()) return;
    if (!ec) {
      auto socket = std::make_shared<asio::ip::tcp::socket>(std::move(accepted));
      auto length = std::make_shared<std::array<unsigned char, 2>>();
      asio::async_read(
          *socket, asio::buffer(*length), [self, socket, length](std::error_code ec, std::size_t) {
            if (ec) return;
            auto body = std::make_shared<std::string>(((*length)[0] << 8) | (*length)[1], '\0');
            asio::async_read(*socket, asio::buffer(*body),
                             [self, socket, body](std::error_code ec, std::size_t) {
                               if (ec) return;
                               send_over_tcp(socket, self->answer_for(*body, true));
                             });
          });
    }
    self->accept();
  });
}

}  // namespace smtpsh::server
