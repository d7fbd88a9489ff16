// engine/dns/dnssec: the validation steps fed with answers signed here, by ldns's own signer
// with a key made for the test (ECDSA P-256), independently of the code under test; then the
// same answers cut short at every offset and changed byte by byte. The whole chain walk over a
// real signed hierarchy is tested end to end (tests/e2e/test_dnssec_validate.py).
#include "engine/dns/dnssec.hpp"

#include <doctest/doctest.h>
#include <ldns/ldns.h>

#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

using namespace smtpsh::dns;

namespace {

constexpr std::uint32_t day = 86400;

ldns_rr* rr(const std::string& text) {
  ldns_rr* out = nullptr;
  REQUIRE_MESSAGE(ldns_rr_new_frm_str(&out, text.c_str(), 300, nullptr, nullptr) == LDNS_STATUS_OK,
                  text);
  return out;
}

// A signing key of `zone` valid from `from` to `until` (seconds since the epoch).
struct Key {
  ldns_key_list* list = ldns_key_list_new();
  ldns_rr* dnskey = nullptr;

  Key(const char* zone, std::uint16_t flags, std::time_t from, std::time_t until) {
    ldns_key* key = ldns_key_new_frm_algorithm(LDNS_SIGN_ECDSAP256SHA256, 256);
    REQUIRE(key != nullptr);
    ldns_rdf* owner = nullptr;
    REQUIRE(ldns_str2rdf_dname(&owner, zone) == LDNS_STATUS_OK);
    ldns_key_set_pubkey_owner(key, owner);
    ldns_key_set_flags(key, flags);
    ldns_key_set_inception(key, static_cast<std::uint32_t>(from));
    ldns_key_set_expiration(key, static_cast<std::uint32_t>(until));
    dnskey = ldns_key2rr(key);
    ldns_key_set_keytag(key, ldns_calc_keytag(dnskey));
    ldns_key_list_push_key(list, key);
  }
  ~Key() {
    ldns_rr_free(dnskey);
    ldns_key_list_free(list);  // and the keys in it
  }
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;

  // The RRSIGs of a set of records (zone file lines, one owner and type).
  std::vector<ldns_rr*> sign(const std::vector<ldns_rr*>& set) const {
    ldns_rr_list* list = ldns_rr_list_new();
    for (ldns_rr* r : set)
      ldns_rr_list_push_rr(list, r);
    ldns_rr_list* sigs = ldns_sign_public(list, this->list);
    REQUIRE(sigs != nullptr);
    std::vector<ldns_rr*> out;
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(sigs); ++i)
      out.push_back(ldns_rr_clone(ldns_rr_list_rr(sigs, i)));
    ldns_rr_list_deep_free(sigs);
    ldns_rr_list_free(list);  // the records stay the caller's
    return out;
  }

  std::string ds_line(const char* zone) const {
    ldns_rr* ds = ldns_key_rr2ds(dnskey, LDNS_SHA256);
    char* text = ldns_rr2str(ds);
    std::string out(text);
    std::free(text);
    ldns_rr_free(ds);
    (void)zone;
    return out;
  }
};

// An answer's bytes: the records (taken over) in the answer and authority sections.
std::string packet(const std::vector<ldns_rr*>& answer, const std::vector<ldns_rr*>& authority = {},
                   int rcode = 0) {
  ldns_pkt* pkt = ldns_pkt_new();
  ldns_pkt_set_qr(pkt, true);
  ldns_pkt_set_rcode(pkt, static_cast<std::uint8_t>(rcode));
  for (ldns_rr* r : answer)
    ldns_pkt_push_rr(pkt, LDNS_SECTION_ANSWER, r);
  for (ldns_rr* r : authority)
    ldns_pkt_push_rr(pkt, LDNS_SECTION_AUTHORITY, r);
  std::uint8_t* wire = nullptr;
  std::size_t size = 0;
  REQUIRE(ldns_pkt2wire(&wire, pkt, &size) == LDNS_STATUS_OK);
  std::string out(reinterpret_cast<char*>(wire), size);
  std::free(wire);
  ldns_pkt_free(pkt);
  return out;
}

std::vector<ldns_rr*> with(std::vector<ldns_rr*> records, const std::vector<ldns_rr*>& more) {
  records.insert(records.end(), more.begin(), more.end());
  return records;
}

std::vector<ldns_rr*> clones(const std::vector<ldns_rr*>& records) {
  std::vector<ldns_rr*> out;
  for (ldns_rr* r : records)
    out.push_back(ldns_rr_clone(r));
  return out;
}

// The zone's trusted keys, for the steps that take them.
std::string trusted_keys(const Key& key, std::time_t now) {
  std::vector<ldns_rr*> set{ldns_rr_clone(key.dnskey)};
  std::string answer = packet(with(set, key.sign(set)));
  auto anchor =
      dnssec::parse_anchor(key.ds_line("example.test."), *std::make_unique<std::string>());
  REQUIRE(anchor);
  std::string keys;
  REQUIRE(dnssec::trust_keys(answer, "example.test", anchor->records, now, keys).ok);
  return keys;
}

}  // namespace

TEST_CASE("a trust anchor is DS or DNSKEY records of one zone, in zone file text") {
  std::string error;
  auto ds = dnssec::parse_anchor(
      "; the root\n$TTL 3600\n.\tIN\tDS\t20326 8 2 "
      "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n",
      error);
  REQUIRE_MESSAGE(ds, error);
  CHECK(ds->zone == ".");
  CHECK_FALSE(ds->records.empty());
  Key key("example.test.", 257, 0, 0);
  char* text = ldns_rr2str(key.dnskey);
  auto dnskey = dnssec::parse_anchor(std::string(text) + key.ds_line("example.test."), error);
  std::free(text);
  REQUIRE_MESSAGE(dnskey, error);
  CHECK(dnskey->zone == "example.test");

  CHECK_FALSE(dnssec::parse_anchor("", error));
  CHECK(error == "no DS or DNSKEY record in it");
  CHECK_FALSE(dnssec::parse_anchor("example.test. IN A 192.0.2.1\n", error));
  CHECK(error.find("a A record") != std::string::npos);
  CHECK_FALSE(
      dnssec::parse_anchor(key.ds_line("") + ". IN DS 1 8 2 " + std::string(64, 'a'), error));
  CHECK(error.find("two zones") != std::string::npos);
  CHECK_FALSE(dnssec::parse_anchor("root:x:0:0:root:/root:/bin/bash\n", error));
  CHECK(error.rfind("line 1: ", 0) == 0);
}

TEST_CASE("a DNSKEY set is trusted when a key its DS names signs it") {
  std::time_t now = std::time(nullptr);
  Key ksk("example.test.", 257, now - day, now + 30 * day);
  std::vector<ldns_rr*> set{ldns_rr_clone(ksk.dnskey)};
  std::string answer = packet(with(clones(set), ksk.sign(set)));
  std::string error;
  auto anchor = dnssec::parse_anchor(ksk.ds_line("example.test."), error);
  REQUIRE(anchor);
  std::string keys;
  dnssec::Check check = dnssec::trust_keys(answer, "example.test", anchor->records, now, keys);
  CHECK_MESSAGE(check.ok, check.reason);
  CHECK_FALSE(keys.empty());

  SUBCASE("the DNSKEY itself as the anchor") {
    char* text = ldns_rr2str(ksk.dnskey);
    auto by_key = dnssec::parse_anchor(text, error);
    std::free(text);
    REQUIRE(by_key);
    CHECK(dnssec::trust_keys(answer, "example.test", by_key->records, now, keys).ok);
  }
  SUBCASE("a DS of another key") {
    Key other("example.test.", 257, now - day, now + 30 * day);
    auto wrong = dnssec::parse_anchor(other.ds_line("example.test."), error);
    REQUIRE(wrong);
    check = dnssec::trust_keys(answer, "example.test", wrong->records, now, keys);
    CHECK_FALSE(check.ok);
    CHECK(check.reason.find("no DNSKEY of example.test matches its DS") != std::string::npos);
  }
  SUBCASE("a SHA-1 DS does not count beside a SHA-256 one (RFC 4509)") {
    Key other("example.test.", 257, now - day, now + 30 * day);
    ldns_rr* sha1 = ldns_key_rr2ds(ksk.dnskey, LDNS_SHA1);
    char* sha1_text = ldns_rr2str(sha1);
    ldns_rr_free(sha1);
    // The SHA-1 DS matches the key; the SHA-256 one is another key's.
    auto mixed =
        dnssec::parse_anchor(std::string(sha1_text) + other.ds_line("example.test."), error);
    std::free(sha1_text);
    REQUIRE_MESSAGE(mixed, error);
    check = dnssec::trust_keys(answer, "example.test", mixed->records, now, keys);
    CHECK_FALSE(check.ok);
    CHECK(check.reason.find("no DNSKEY of example.test matches its DS") != std::string::npos);
    // The SHA-1 DS alone is enough.
    sha1 = ldns_key_rr2ds(ksk.dnskey, LDNS_SHA1);
    sha1_text = ldns_rr2str(sha1);
    ldns_rr_free(sha1);
    auto alone = dnssec::parse_anchor(sha1_text, error);
    std::free(sha1_text);
    REQUIRE(alone);
    CHECK(dnssec::trust_keys(answer, "example.test", alone->records, now, keys).ok);
  }
  SUBCASE("no signature over the set") {
    check = dnssec::trust_keys(packet(clones(set)), "example.test", anchor->records, now, keys);
    CHECK_FALSE(check.ok);
    CHECK(check.reason == "the DNSKEY records of example.test have no RRSIG");
  }
  SUBCASE("a signature that expired") {
    check = dnssec::trust_keys(answer, "example.test", anchor->records, now + 60 * day, keys);
    CHECK_FALSE(check.ok);
    CHECK(check.reason.find("expired on") != std::string::npos);
  }
  SUBCASE("no DNSKEY at all") {
    check = dnssec::trust_keys(packet({}), "example.test", anchor->records, now, keys);
    CHECK(check.reason == "no DNSKEY record for example.test");
  }
  for (ldns_rr* r : set)
    ldns_rr_free(r);
}

TEST_CASE("a record set verifies with the zone's keys, and says why when it does not") {
  std::time_t now = std::time(nullptr);
  Key key("example.test.", 257, now - day, now + 30 * day);
  std::string keys = trusted_keys(key, now);
  std::vector<ldns_rr*> set{rr("mx.example.test. 300 IN A 192.0.2.25"),
                            rr("mx.example.test. 300 IN A 192.0.2.26")};
  std::vector<ldns_rr*> sigs = key.sign(set);
  std::string good = packet(with(clones(set), clones(sigs)));

  dnssec::Signature found = dnssec::verify(good, dnssec::Section::answer, "mx.example.test", 1,
                                           "example.test", keys, now);
  CHECK_MESSAGE(found.ok, found.reason);
  CHECK(found.wildcard_labels == -1);
  CHECK(dnssec::signer(good, dnssec::Section::answer, "mx.example.test", 1) == "example.test");

  // Another address in place of a signed one.
  std::string changed = packet(
      with({rr("mx.example.test. 300 IN A 192.0.2.25"), rr("mx.example.test. 300 IN A 192.0.2.66")},
           clones(sigs)));
  found = dnssec::verify(changed, dnssec::Section::answer, "mx.example.test", 1, "example.test",
                         keys, now);
  CHECK_FALSE(found.ok);
  CHECK(found.reason.find("does not verify: the records or the signature were changed") !=
        std::string::npos);

  found = dnssec::verify(good, dnssec::Section::answer, "mx.example.test", 1, "example.test", keys,
                         now + 40 * day);
  CHECK(found.reason.find("expired on") != std::string::npos);
  found = dnssec::verify(good, dnssec::Section::answer, "mx.example.test", 1, "example.test", keys,
                         now - 2 * day);
  CHECK(found.reason.find("is not valid before") != std::string::npos);

  found = dnssec::verify(packet(clones(set)), dnssec::Section::answer, "mx.example.test", 1,
                         "example.test", keys, now);
  CHECK(found.missing);
  CHECK(found.reason == "no RRSIG by example.test covers mx.example.test A");
  // A signature by another zone is no signature of this one.
  found =
      dnssec::verify(good, dnssec::Section::answer, "mx.example.test", 1, "other.test", keys, now);
  CHECK(found.missing);

  // Another zone's keys.
  Key other("example.test.", 257, now - day, now + 30 * day);
  found = dnssec::verify(good, dnssec::Section::answer, "mx.example.test", 1, "example.test",
                         trusted_keys(other, now), now);
  CHECK_FALSE(found.ok);
  CHECK(found.reason.find("names no key of the zone") != std::string::npos);
  for (ldns_rr* r : set)
    ldns_rr_free(r);
  for (ldns_rr* r : sigs)
    ldns_rr_free(r);
}

TEST_CASE("a wildcard answer says how many labels its signature covers") {
  std::time_t now = std::time(nullptr);
  Key key("example.test.", 257, now - day, now + 30 * day);
  std::string keys = trusted_keys(key, now);
  std::vector<ldns_rr*> wild{rr("*.example.test. 300 IN A 192.0.2.9")};
  std::vector<ldns_rr*> sigs = key.sign(wild);
  // The expansion: the owner is the name asked, the RRSIG keeps the wildcard's label count.
  std::vector<ldns_rr*> expanded{rr("x.example.test. 300 IN A 192.0.2.9")};
  ldns_rr* sig = ldns_rr_clone(sigs[0]);
  ldns_rdf* owner = nullptr;
  REQUIRE(ldns_str2rdf_dname(&owner, "x.example.test.") == LDNS_STATUS_OK);
  ldns_rdf_deep_free(ldns_rr_owner(sig));
  ldns_rr_set_owner(sig, owner);
  std::vector<ldns_rr*> nsec{rr("example.test. 300 IN NSEC y.example.test. A NS SOA RRSIG NSEC")};
  std::vector<ldns_rr*> nsec_sigs = key.sign(nsec);
  std::string answer = packet(with(expanded, {sig}), with(clones(nsec), nsec_sigs));
  dnssec::Signature found = dnssec::verify(answer, dnssec::Section::answer, "x.example.test", 1,
                                           "example.test", keys, now);
  CHECK_MESSAGE(found.ok, found.reason);
  CHECK(found.wildcard_labels == 2);
  dnssec::Denial denial =
      dnssec::prove_denial(answer, "x.example.test", 1, 0, "example.test", keys, now, 2);
  CHECK(denial.proof == dnssec::Proof::wildcard);
  for (ldns_rr* r : wild)
    ldns_rr_free(r);
  for (ldns_rr* r : sigs)
    ldns_rr_free(r);
  for (ldns_rr* r : nsec)
    ldns_rr_free(r);
}

TEST_CASE("NSEC records prove NXDOMAIN, NODATA and an unsigned delegation") {
  std::time_t now = std::time(nullptr);
  Key key("example.test.", 257, now - day, now + 30 * day);
  std::string keys = trusted_keys(key, now);
  // The chain: example.test -> mx -> sub (a delegation) -> back to the apex.
  std::vector<ldns_rr*> apex{
      rr("example.test. 300 IN NSEC mx.example.test. NS SOA MX RRSIG NSEC DNSKEY")};
  std::vector<ldns_rr*> mx{rr("mx.example.test. 300 IN NSEC sub.example.test. A RRSIG NSEC")};
  std::vector<ldns_rr*> sub{rr("sub.example.test. 300 IN NSEC example.test. NS RRSIG NSEC")};
  auto signed_set = [&](const std::vector<ldns_rr*>& set) {
    return with(clones(set), key.sign(set));
  };
  auto deny = [&](const std::vector<ldns_rr*>& authority, const char* name, std::uint16_t type,
                  int rcode) {
    return dnssec::prove_denial(packet({}, authority, rcode), name, type, rcode, "example.test",
                                keys, now);
  };

  // "nope" sorts after "mx" and before "sub"; "*" before "mx".
  dnssec::Denial d = deny(with(signed_set(mx), signed_set(apex)), "nope.example.test", 1, 3);
  CHECK_MESSAGE(d.proof == dnssec::Proof::nxdomain, d.reason);
  d = deny(signed_set(mx), "nope.example.test", 1, 3);
  CHECK(d.proof == dnssec::Proof::none);
  CHECK(d.reason == "no NSEC record shows that the wildcard *.example.test does not exist");
  d = deny(signed_set(mx), "mx.example.test", 16, 3);
  CHECK(d.reason.find("exists, yet the answer is NXDOMAIN") != std::string::npos);

  d = deny(signed_set(mx), "mx.example.test", 16, 0);
  CHECK_MESSAGE(d.proof == dnssec::Proof::nodata, d.reason);
  d = deny(signed_set(mx), "mx.example.test", 1, 0);
  CHECK(d.proof == dnssec::Proof::none);
  CHECK(d.reason == "the NSEC record of mx.example.test lists A as present: the denial is false");

  d = deny(signed_set(sub), "sub.example.test", 43, 0);  // DS
  CHECK_MESSAGE(d.proof == dnssec::Proof::delegation, d.reason);
  // An empty non-terminal: the NSEC of mx covers "a.sub"'s parent... here "x.mx" has none, but
  // "mx" has names below it only when the next name lies below it.
  std::vector<ldns_rr*> ent{rr("example.test. 300 IN NSEC a.b.example.test. NS SOA RRSIG NSEC")};
  d = deny(signed_set(ent), "b.example.test", 1, 0);
  CHECK_MESSAGE(d.proof == dnssec::Proof::nodata, d.reason);

  // Unsigned, or signed and then changed: no proof, and the reason says which record.
  d = deny(clones(mx), "mx.example.test", 16, 0);
  CHECK(d.reason == "the mx.example.test NSEC record has no RRSIG");
  std::vector<ldns_rr*> mx_sigs = key.sign(mx);
  std::vector<ldns_rr*> forged{rr("mx.example.test. 300 IN NSEC sub.example.test. RRSIG NSEC")};
  d = deny(with(forged, mx_sigs), "mx.example.test", 1, 0);
  CHECK(d.proof == dnssec::Proof::none);
  CHECK(d.reason.find("does not verify") != std::string::npos);
  for (auto* list : {&apex, &mx, &sub, &ent})
    for (ldns_rr* r : *list)
      ldns_rr_free(r);
}

TEST_CASE("answers cut short or changed anywhere never verify and never crash") {
  std::time_t now = std::time(nullptr);
  Key key("example.test.", 257, now - day, now + 30 * day);
  std::string keys = trusted_keys(key, now);
  std::vector<ldns_rr*> set{rr("mx.example.test. 300 IN A 192.0.2.25")};
  std::vector<ldns_rr*> nsec{rr("mx.example.test. 300 IN NSEC example.test. A RRSIG NSEC")};
  std::string answer = packet(with(clones(set), key.sign(set)), with(clones(nsec), key.sign(nsec)));
  REQUIRE(dnssec::verify(answer, dnssec::Section::answer, "mx.example.test", 1, "example.test",
                         keys, now)
              .ok);
  for (std::size_t cut = 0; cut < answer.size(); ++cut) {
    std::string part = answer.substr(0, cut);
    CHECK_FALSE(dnssec::verify(part, dnssec::Section::answer, "mx.example.test", 1, "example.test",
                               keys, now)
                    .ok);
    dnssec::prove_denial(part, "mx.example.test", 16, 0, "example.test", keys, now);
    std::string ignored;
    dnssec::trust_keys(part, "example.test", part, now, ignored);
    dnssec::rrset(part, "mx.example.test", 1);
  }
  // One byte of the signature or the address changed: it no longer verifies.
  std::size_t verified = 0;
  for (std::size_t at = 12; at < answer.size(); ++at) {
    std::string changed = answer;
    changed[at] = static_cast<char>(changed[at] ^ 0x01);
    if (dnssec::verify(changed, dnssec::Section::answer, "mx.example.test", 1, "example.test", keys,
                       now)
            .ok)
      ++verified;
  }
  // Only bytes outside the signed data and the signature may change unseen: the TTL, the
  // authority section, a name's case.
  CHECK(verified < answer.size() / 2);
  // Keys that are not wire-format records, and a trust that is not either.
  CHECK_FALSE(dnssec::verify(answer, dnssec::Section::answer, "mx.example.test", 1, "example.test",
                             "not keys", now)
                  .ok);
  for (ldns_rr* r : set)
    ldns_rr_free(r);
  for (ldns_rr* r : nsec)
    ldns_rr_free(r);
}
