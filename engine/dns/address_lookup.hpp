#pragma once
// A host name's addresses for connecting: /etc/hosts first (as the C library does), then A
// and AAAA through the resolver at once. An address literal is its own answer.

#include "engine/dns/resolver.hpp"

#include <asio/ip/address.hpp>

#include <memory>
#include <string>
#include <vector>

namespace smtpsh::dns {

class AddressLookup : public std::enable_shared_from_this<AddressLookup> {
 public:
  using Notify = Query::Notify;

  // Starts the look-up; notify(context) runs when it ends, never inside this call.
  static std::shared_ptr<AddressLookup> start(const std::shared_ptr<Resolver>& resolver,
                                              std::string_view host, Notify notify, void* context);

  // IPv4 first, then IPv6: a probe must not stall on an IPv6 path that many hosts lack.
  const std::vector<asio::ip::address>& addresses() const { return addresses_; }
  bool ok() const { return !addresses_.empty(); }
  // Why there is no address: one sentence ("mx.example does not exist (NXDOMAIN ...)").
  const std::string& error() const { return error_; }
  // The DNS status behind a failure (Status::ok with no address means NODATA for both).
  Status status() const { return status_; }

  void interrupt();
  void detach() { notify_ = nullptr; }

  AddressLookup(std::shared_ptr<Resolver> resolver, Notify notify, void* context);
  ~AddressLookup();
  AddressLookup(const AddressLookup&) = delete;
  AddressLookup& operator=(const AddressLookup&) = delete;

 private:
  static void on_answer(void* self);
  void finish();

  std::shared_ptr<Resolver> resolver_;
  Notify notify_;
  void* context_;
  std::string host_;
  std::shared_ptr<Query> a_, aaaa_;
  std::vector<asio::ip::address> addresses_;
  std::string error_;
  Status status_ = Status::ok;
  bool done_ = false;
};

}  // namespace smtpsh::dns
