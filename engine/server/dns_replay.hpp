#pragma once
// A DNS server for replays: answers each question with the answer recorded for it (the
// recorded wire bytes, under the asker's message ID), over UDP and TCP on loopback.
// Questions that were never recorded get REFUSED, so a replay never reaches real DNS.

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace smtpsh::server {

class DnsReplay : public std::enable_shared_from_this<DnsReplay> {
 public:
  // Binds 127.0.0.1 on a free port (the same for UDP and TCP); nullptr and `error` if not.
  static std::shared_ptr<DnsReplay> open(asio::io_context& io, std::string& error);

  // Adds a recorded answer to `name` (canonical) / `qtype`; several are given out in order,
  // the last one again and again.
  void add(const std::string& name, std::uint16_t qtype, std::string wire);
  void start();
  void close();
  std::uint16_t port() const { return port_; }
  std::size_t answered() const { return answered_; }
  std::size_t refused() const { return refused_; }

  explicit DnsReplay(asio::io_context& io) : io_(io), udp_(io), tcp_(io) {}

 private:
  // The reply to `query`; `take` gives the recorded answer out (the next one comes next time).
  std::string answer_for(std::string_view query, bool take);
  void receive();
  void accept();

  asio::io_context& io_;
  asio::ip::udp::socket udp_;
  asio::ip::tcp::acceptor tcp_;
  std::uint16_t port_ = 0;
  std::map<std::string, std::vector<std::string>> answers_;
  std::map<std::string, std::size_t> given_;
  std::string datagram_;
  asio::ip::udp::endpoint peer_;
  std::size_t answered_ = 0, refused_ = 0;
};

}  // namespace smtpsh::server
