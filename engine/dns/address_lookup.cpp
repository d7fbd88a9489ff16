#include "engine/dns/address_lookup.hpp"

#include <asio/post.hpp>

namespace smtpsh::dns {

AddressLookup::AddressLookup(std::shared_ptr<Resolver> resolver, Notify notify, void* context)
    : resolver_(std::move(resolver)), notify_(notify), context_(context) {}

// Queries still in flight must not call back into a look-up that is gone.
AddressLookup::~AddressLookup() {
  if (a_) a_->detach();
  if (aaaa_) aaaa_->detach();
}

std::shared_ptr<AddressLookup> AddressLookup::start(const std::shared_ptr<Resolver>& resolver,
                                                    std::string_view host, Notify notify,
                                                    void* context) {
  auto lookup = std::make_shared<AddressLookup>(resolver, notify, context);
  lookup->host_ = std::string(host);
  std::error_code ec;
  auto literal = asio::ip::make_address(lookup->host_, ec);
  std::string problem;
  auto name = canonical_name(host, problem);
  if (!ec) {
    lookup->addresses_.push_back(literal);
  } else if (auto listed = resolver->hosts().lookup(host); !listed.empty()) {
    for (const auto& address : listed)
      if (address.is_v4()) lookup->addresses_.push_back(address);
    for (const auto& address : listed)
      if (address.is_v6()) lookup->addresses_.push_back(address);
  } else if (!name) {
    lookup->status_ = Status::malformed;
    lookup->error_ = "cannot resolve '" + lookup->host_ + "': " + problem;
  } else {
    lookup->a_ = resolver->query(*name, type::A, &AddressLookup::on_answer, lookup.get());
    lookup->aaaa_ = resolver->query(*name, type::AAAA, &AddressLookup::on_answer, lookup.get());
    return lookup;
  }
  asio::post(resolver->io(), [lookup] { lookup->finish(); });
  return lookup;
}

void AddressLookup::on_answer(void* self_pointer) {
  auto* self = static_cast<AddressLookup*>(self_pointer);
  if (!self->a_->done() || !self->aaaa_->done()) return;
  auto keep = self->shared_from_this();
  for (const auto* query : {self->a_.get(), self->aaaa_.get()}) {
    for (const Record& record : query->result().records) {
      std::error_code ec;
      auto address = asio::ip::make_address(record.fields.empty() ? "" : record.fields[0], ec);
      if (!ec) self->addresses_.push_back(address);
    }
  }
  if (self->addresses_.empty()) {
    // The A answer speaks for the name (NXDOMAIN, SERVFAIL, timeout), unless it was fine.
    const Result& a = self->a_->result();
    const Result& aaaa = self->aaaa_->result();
    const Result& telling = a.ok() ? aaaa : a;
    self->status_ = telling.status;
    if (telling.ok())
      self->error_ = "cannot resolve '" + self->host_ + "': it has no A or AAAA record";
    else
      self->error_ = "cannot resolve '" + self->host_ + "': " + telling.message;
  }
  self->finish();
}

void AddressLookup::interrupt() {
  // Without queries (an address, /etc/hosts) the look-up is already finishing.
  if (done_) return;
  if (a_) a_->interrupt();
  if (aaaa_) aaaa_->interrupt();
}

void AddressLookup::finish() {
  if (done_) return;
  done_ = true;
  if (a_) a_->detach();
  if (aaaa_) aaaa_->detach();
  Notify notify = notify_;
  notify_ = nullptr;
  if (notify) notify(context_);
}

}  // namespace smtpsh::dns
