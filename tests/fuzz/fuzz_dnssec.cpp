// libFuzzer target for the DNSSEC validation steps (engine/dns/dnssec): the input is a DNS
// answer. Each step runs on it as it came (its signatures are the input's, so they almost
// never verify: this reaches the decoding and the refusals), and again after the harness has
// re-signed every record set of the answer and authority sections with a key of its own for
// the zone the answer names (so the NSEC and NSEC3 records the fuzzer invents pass their
// signature check and reach the denial logic). For any input: no crash, no leak (ASan), the
// same result twice, reasons on one line, a proof only of the kind asked for, and a set the
// harness signed verifies.

#include "engine/dns/dnssec.hpp"

#include <ldns/ldns.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>

using namespace smtpsh::dns;

namespace {

void expect(bool condition) {
  if (!condition) std::abort();
}

constexpr std::time_t now = 1800000000;  // fixed: the run is deterministic

struct ZoneKey {
  ldns_key_list* keys = nullptr;
  std::string trusted;  // the zone's keys, as trust_keys returns them
};

std::string text_of(const ldns_rdf* name) {
  char* text = ldns_rdf2str(name);
  std::string out = text ? text : "";
  std::free(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  if (out.size() > 1 && out.back() == '.') out.pop_back();
  return out;
}

std::string wire_of(const ldns_pkt* pkt) {
  std::uint8_t* bytes = nullptr;
  std::size_t size = 0;
  if (ldns_pkt2wire(&bytes, pkt, &size) != LDNS_STATUS_OK) return {};
  std::string out(reinterpret_cast<char*>(bytes), size);
  std::free(bytes);
  return out;
}

// One key, made once before fuzzing (key generation is the slow part, and OpenSSL's
// allocations for it would look like a leak of the first input); each input gives it the
// zone's name as owner and trusts it afresh.
ldns_key_list* the_key = nullptr;

ZoneKey key_for(const std::string& zone) {
  ZoneKey made;
  made.keys = the_key;
  ldns_key* key = ldns_key_list_key(the_key, 0);
  ldns_rdf* owner = nullptr;
  if (ldns_str2rdf_dname(&owner, (zone == "." ? zone : zone + ".").c_str()) != LDNS_STATUS_OK)
    owner = ldns_dname_new_frm_str(".");
  ldns_rdf* old = ldns_key_pubkey_owner(key);
  ldns_key_set_pubkey_owner(key, owner);
  if (old) ldns_rdf_deep_free(old);
  ldns_rr* dnskey = ldns_key2rr(key);
  ldns_key_set_keytag(key, ldns_calc_keytag(dnskey));
  // Its own DNSKEY set, signed, trusted through the DNSKEY itself.
  ldns_rr_list* set = ldns_rr_list_new();
  ldns_rr_list_push_rr(set, dnskey);
  ldns_rr_list* sigs = ldns_sign_public(set, the_key);
  ldns_pkt* pkt = ldns_pkt_new();
  ldns_pkt_push_rr(pkt, LDNS_SECTION_ANSWER, ldns_rr_clone(dnskey));
  for (std::size_t i = 0; sigs && i < ldns_rr_list_rr_count(sigs); ++i)
    ldns_pkt_push_rr(pkt, LDNS_SECTION_ANSWER, ldns_rr_clone(ldns_rr_list_rr(sigs, i)));
  std::uint8_t* anchor = nullptr;
  std::size_t anchor_size = 0;
  ldns_rr2wire(&anchor, dnskey, LDNS_SECTION_ANSWER, &anchor_size);
  std::string trust(reinterpret_cast<char*>(anchor), anchor_size);
  std::free(anchor);
  dnssec::Check check = dnssec::trust_keys(wire_of(pkt), zone, trust, now, made.trusted);
  expect(check.ok || zone.size() > 200);  // a name too long for the key's owner is "."
  ldns_pkt_free(pkt);
  if (sigs) ldns_rr_list_deep_free(sigs);
  ldns_rr_list_deep_free(set);
  return made;
}

// The answer with its RRSIGs replaced by the harness key's over every set of both sections.
std::string resigned(const ldns_pkt* input, const ZoneKey& key) {
  ldns_pkt* out = ldns_pkt_new();
  ldns_pkt_set_qr(out, true);
  ldns_pkt_set_rcode(out, ldns_pkt_get_rcode(input));
  for (auto section : {LDNS_SECTION_ANSWER, LDNS_SECTION_AUTHORITY}) {
    const ldns_rr_list* list =
        section == LDNS_SECTION_ANSWER ? ldns_pkt_answer(input) : ldns_pkt_authority(input);
    ldns_rr_list* rest = ldns_rr_list_new();
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(list) && i < 64; ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(list, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG) continue;
      ldns_rr_list_push_rr(rest, ldns_rr_clone(rr));
    }
    // One set at a time: the records of the first owner and type left, signed together.
    while (ldns_rr_list_rr_count(rest) > 0) {
      ldns_rr_list* set = ldns_rr_list_new();
      const ldns_rr* first = ldns_rr_list_rr(rest, 0);
      ldns_rdf* owner = ldns_rdf_clone(ldns_rr_owner(first));
      ldns_rr_type type = ldns_rr_get_type(first);
      ldns_rr_list* others = ldns_rr_list_new();
      for (std::size_t i = 0; i < ldns_rr_list_rr_count(rest); ++i) {
        ldns_rr* rr = ldns_rr_list_rr(rest, i);
        bool same =
            ldns_rr_get_type(rr) == type && ldns_dname_compare(ldns_rr_owner(rr), owner) == 0;
        ldns_rr_list_push_rr(same ? set : others, rr);
      }
      ldns_rr_list_free(rest);
      rest = others;
      ldns_rdf_deep_free(owner);
      ldns_rr_list* sigs = ldns_sign_public(set, key.keys);
      for (std::size_t i = 0; i < ldns_rr_list_rr_count(set); ++i)
        ldns_pkt_push_rr(out, section, ldns_rr_list_rr(set, i));
      for (std::size_t i = 0; sigs && i < ldns_rr_list_rr_count(sigs); ++i)
        ldns_pkt_push_rr(out, section, ldns_rr_clone(ldns_rr_list_rr(sigs, i)));
      if (sigs) ldns_rr_list_deep_free(sigs);
      ldns_rr_list_free(set);
    }
    ldns_rr_list_free(rest);
  }
  std::string wire = wire_of(out);
  ldns_pkt_free(out);
  return wire;
}

bool one_line(const std::string& text) {
  return text.find('\n') == std::string::npos && text.find('\r') == std::string::npos;
}

// Runs every step on `wire` for `qname`, twice, and checks what holds for any input.
void steps(std::string_view wire, const std::string& qname, std::uint16_t qtype, int rcode,
           const std::string& zone, const std::string& keys) {
  for (dnssec::Section section : {dnssec::Section::answer, dnssec::Section::authority}) {
    dnssec::Signature a = dnssec::verify(wire, section, qname, qtype, zone, keys, now);
    dnssec::Signature b = dnssec::verify(wire, section, qname, qtype, zone, keys, now);
    expect(a.ok == b.ok && a.reason == b.reason && a.wildcard_labels == b.wildcard_labels);
    expect(one_line(a.reason));
    expect(!a.ok || a.reason.empty());
  }
  for (int wildcard : {-1, 1}) {
    dnssec::Denial a = dnssec::prove_denial(wire, qname, qtype, rcode, zone, keys, now, wildcard);
    dnssec::Denial b = dnssec::prove_denial(wire, qname, qtype, rcode, zone, keys, now, wildcard);
    expect(a.proof == b.proof && a.reason == b.reason);
    expect(one_line(a.reason));
    expect(!a.reason.empty());
    // A wildcard question gets a wildcard answer or none (or insecure NSEC3 parameters);
    // the other questions never get a wildcard proof, and NXDOMAIN only for an NXDOMAIN.
    if (wildcard >= 0)
      expect(a.proof == dnssec::Proof::wildcard || a.proof == dnssec::Proof::none ||
             a.proof == dnssec::Proof::opt_out);
    else
      expect(a.proof != dnssec::Proof::wildcard);
    if (a.proof == dnssec::Proof::nxdomain) expect(rcode == LDNS_RCODE_NXDOMAIN);
    if (a.proof == dnssec::Proof::delegation) expect(qtype == LDNS_RR_TYPE_DS);
  }
  std::string trusted;
  dnssec::Check check = dnssec::trust_keys(wire, zone, std::string(wire), now, trusted);
  expect(one_line(check.reason));
  expect(check.ok == !trusted.empty() || !check.ok);
  dnssec::rrset(wire, qname, qtype);
  dnssec::signer(wire, dnssec::Section::answer, qname, qtype);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  the_key = ldns_key_list_new();
  ldns_key* key = ldns_key_new_frm_algorithm(LDNS_SIGN_ECDSAP256SHA256, 256);
  ldns_key_set_flags(key, 257);
  ldns_key_set_inception(key, static_cast<std::uint32_t>(now - 86400));
  ldns_key_set_expiration(key, static_cast<std::uint32_t>(now + 86400));
  ldns_key_list_push_key(the_key, key);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view wire(reinterpret_cast<const char*>(data), size);
  std::string error;
  dnssec::parse_anchor(wire, error);  // the anchor reader sees text: any bytes too

  ldns_pkt* pkt = nullptr;
  if (ldns_wire2pkt(&pkt, data, size) != LDNS_STATUS_OK) {
    steps(wire, "example.test", LDNS_RR_TYPE_A, 0, "example.test", {});
    return 0;
  }
  // The question asked: the packet's own, else the first answer's owner.
  std::string qname = "example.test";
  std::uint16_t qtype = LDNS_RR_TYPE_A;
  if (ldns_pkt_qdcount(pkt) > 0 && ldns_rr_list_rr_count(ldns_pkt_question(pkt)) > 0) {
    const ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
    qname = text_of(ldns_rr_owner(q));
    qtype = static_cast<std::uint16_t>(ldns_rr_get_type(q));
  }
  // The zone: the SOA's owner in the authority section, else the name's parent.
  std::string zone = qname.find('.') != std::string::npos ? qname.substr(qname.find('.') + 1) : ".";
  const ldns_rr_list* authority = ldns_pkt_authority(pkt);
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(authority); ++i)
    if (ldns_rr_get_type(ldns_rr_list_rr(authority, i)) == LDNS_RR_TYPE_SOA)
      zone = text_of(ldns_rr_owner(ldns_rr_list_rr(authority, i)));
  int rcode = ldns_pkt_get_rcode(pkt);

  ZoneKey key = key_for(zone);
  steps(wire, qname, qtype, rcode, zone, key.trusted);
  std::string signed_wire = resigned(pkt, key);
  if (!signed_wire.empty()) {
    steps(signed_wire, qname, qtype, rcode, zone, key.trusted);
    // Every answer set the harness signed (owned inside the zone, no wildcard) verifies.
    const ldns_rr_list* answer = ldns_pkt_answer(pkt);
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(answer) && i < 8; ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(answer, i);
      auto type = static_cast<std::uint16_t>(ldns_rr_get_type(rr));
      std::string owner = text_of(ldns_rr_owner(rr));
      if (type == LDNS_RR_TYPE_RRSIG || owner.find('*') != std::string::npos ||
          owner.find('\\') != std::string::npos || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
        continue;
      bool inside =
          zone == "." || owner == zone ||
          (owner.size() > zone.size() &&
           owner.compare(owner.size() - zone.size() - 1, std::string::npos, "." + zone) == 0);
      if (!inside) continue;
      dnssec::Signature found =
          dnssec::verify(signed_wire, dnssec::Section::answer, owner, type, zone, key.trusted, now);
      expect(found.ok);
    }
  }
  ldns_pkt_free(pkt);
  return 0;
}
