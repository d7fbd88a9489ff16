#include "engine/dns/dnssec.hpp"

#include <ldns/ldns.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

namespace smtpsh::dns::dnssec {

namespace {

struct LdnsFree {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
  void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
  void operator()(ldns_rr* r) const { ldns_rr_free(r); }
  void operator()(ldns_rr_list* l) const { ldns_rr_list_deep_free(l); }
  void operator()(char* s) const { std::free(s); }
  void operator()(std::uint8_t* b) const { std::free(b); }
};
template <class T>
using Owned = std::unique_ptr<T, LdnsFree>;

std::string owned_text(char* text) {
  Owned<char> holder(text);
  std::string out = text ? std::string(text) : std::string();
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

Owned<ldns_rdf> dname(std::string_view canonical) {
  std::string text(canonical);
  if (text.empty() || text.back() != '.') text += '.';
  ldns_rdf* rdf = nullptr;
  if (ldns_str2rdf_dname(&rdf, text.c_str()) != LDNS_STATUS_OK) return nullptr;
  ldns_dname2canonical(rdf);
  return Owned<ldns_rdf>(rdf);
}

// A name as the messages say it: canonical, without the final dot ("." for the root).
std::string name_text(const ldns_rdf* rdf) {
  std::string text = owned_text(ldns_rdf2str(rdf));
  if (text.size() > 1 && text.back() == '.') text.pop_back();
  return text;
}

bool same_name(const ldns_rdf* a, const ldns_rdf* b) {
  return a && b && ldns_dname_compare(a, b) == 0;
}

Owned<ldns_pkt> parse(std::string_view wire) {
  ldns_pkt* pkt = nullptr;
  if (ldns_wire2pkt(&pkt, reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()) !=
      LDNS_STATUS_OK)
    return nullptr;
  return Owned<ldns_pkt>(pkt);
}

const ldns_rr_list* section_of(const ldns_pkt* pkt, Section section) {
  return section == Section::answer ? ldns_pkt_answer(pkt) : ldns_pkt_authority(pkt);
}

std::size_t count(const ldns_rr_list* list) {
  return list ? ldns_rr_list_rr_count(list) : 0;
}

std::uint16_t covered_type(const ldns_rr* rrsig) {
  const ldns_rdf* covered = ldns_rr_rrsig_typecovered(rrsig);
  return covered ? static_cast<std::uint16_t>(ldns_rdf2rr_type(covered)) : 0;
}

// Copies of the records of `owner`/`type` in `list` (any owner when `owner` is null), with
// their owners made canonical: RRSIG verification works on canonical forms.
Owned<ldns_rr_list> select(const ldns_rr_list* list, const ldns_rdf* owner, std::uint16_t type) {
  Owned<ldns_rr_list> out(ldns_rr_list_new());
  for (std::size_t i = 0; i < count(list); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(list, i);
    if (ldns_rr_get_type(rr) != type || (owner && !same_name(ldns_rr_owner(rr), owner))) continue;
    ldns_rr* copy = ldns_rr_clone(rr);
    ldns_rr2canonical(copy);
    ldns_rr_list_push_rr(out.get(), copy);
  }
  return out;
}

// The RRSIGs of `owner` covering `type` signed by `zone`.
Owned<ldns_rr_list> signatures(const ldns_rr_list* list, const ldns_rdf* owner, std::uint16_t type,
                               const ldns_rdf* zone) {
  Owned<ldns_rr_list> out(ldns_rr_list_new());
  for (std::size_t i = 0; i < count(list); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(list, i);
    if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_RRSIG || !same_name(ldns_rr_owner(rr), owner) ||
        covered_type(rr) != type || !same_name(ldns_rr_rrsig_signame(rr), zone))
      continue;
    ldns_rr_list_push_rr(out.get(), ldns_rr_clone(rr));
  }
  return out;
}

std::string to_wire(const ldns_rr_list* list) {
  std::string out;
  for (std::size_t i = 0; i < count(list); ++i) {
    std::uint8_t* bytes = nullptr;
    std::size_t size = 0;
    if (ldns_rr2wire(&bytes, ldns_rr_list_rr(list, i), LDNS_SECTION_ANSWER, &size) !=
        LDNS_STATUS_OK)
      continue;
    Owned<std::uint8_t> holder(bytes);
    out.append(reinterpret_cast<const char*>(bytes), size);
  }
  return out;
}

Owned<ldns_rr_list> from_wire(std::string_view wire) {
  Owned<ldns_rr_list> out(ldns_rr_list_new());
  std::size_t at = 0;
  while (at < wire.size()) {
    ldns_rr* rr = nullptr;
    if (ldns_wire2rr(&rr, reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size(), &at,
                     LDNS_SECTION_ANSWER) != LDNS_STATUS_OK)
      break;
    ldns_rr_list_push_rr(out.get(), rr);
  }
  return out;
}

std::string date_text(time_t when) {
  std::tm parts{};
  gmtime_r(&when, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &parts);
  return text;
}

std::string type_text(std::uint16_t type) {
  std::string text = owned_text(ldns_rr_type2str(static_cast<ldns_rr_type>(type)));
  for (char& c : text)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return text;
}

std::string set_text(const ldns_rdf* owner, std::uint16_t type) {
  return name_text(owner) + " " + type_text(type);
}

// Why one RRSIG did not verify, in words.
std::string signature_problem(ldns_status status, const ldns_rr* rrsig) {
  auto tag = ldns_rdf2native_int16(ldns_rr_rrsig_keytag(rrsig));
  std::string by = "the signature by key " + std::to_string(tag);
  switch (status) {
    case LDNS_STATUS_CRYPTO_SIG_EXPIRED:
      return by + " expired on " +
             date_text(ldns_rdf2native_time_t(ldns_rr_rrsig_expiration(rrsig)));
    case LDNS_STATUS_CRYPTO_SIG_NOT_INCEPTED:
      return by + " is not valid before " +
             date_text(ldns_rdf2native_time_t(ldns_rr_rrsig_inception(rrsig)));
    case LDNS_STATUS_CRYPTO_EXPIRATION_BEFORE_INCEPTION:
      return by + " expires before it begins";
    case LDNS_STATUS_CRYPTO_NO_MATCHING_KEYTAG_DNSKEY:
      return by + " names no key of the zone";
    case LDNS_STATUS_CRYPTO_UNKNOWN_ALGO:
    case LDNS_STATUS_CRYPTO_ALGO_NOT_IMPL:
      return by + " uses an algorithm this build cannot check";
    case LDNS_STATUS_CRYPTO_BOGUS:
      return by + " does not verify: the records or the signature were changed";
    default:
      return by + " does not verify (" + ldns_get_errorstr_by_id(status) + ")";
  }
}

Check failure(std::string reason, bool unsupported = false) {
  Check check;
  check.unsupported = unsupported;
  check.reason = std::move(reason);
  return check;
}

// Whether a status says only that the algorithm is not one we can check.
bool unsupported_status(ldns_status status) {
  return status == LDNS_STATUS_CRYPTO_UNKNOWN_ALGO || status == LDNS_STATUS_CRYPTO_ALGO_NOT_IMPL;
}

// Verifies `set` with any of `sigs` and `keys` at `now`. The reason, when none verifies, is
// the most telling problem among the signatures: a time problem beats a key-tag mismatch.
Check verify_set(const ldns_rr_list* set, const ldns_rr_list* sigs, const ldns_rr_list* keys,
                 std::time_t now) {
  Check check;
  int best = -1;
  bool only_unsupported = count(sigs) > 0;
  for (std::size_t i = 0; i < count(sigs); ++i) {
    const ldns_rr* sig = ldns_rr_list_rr(sigs, i);
    ldns_status status = ldns_verify_rrsig_keylist_time(set, sig, keys, now, nullptr);
    if (status == LDNS_STATUS_OK) return Check{true, false, {}, {}};
    if (!unsupported_status(status)) only_unsupported = false;
    int rank = status == LDNS_STATUS_CRYPTO_NO_MATCHING_KEYTAG_DNSKEY ? 0
               : unsupported_status(status)                           ? 1
                                                                      : 2;
    if (rank > best) {
      best = rank;
      check.reason = signature_problem(status, sig);
    }
  }
  check.unsupported = only_unsupported;
  return check;
}

int label_count(const ldns_rdf* name) {
  return static_cast<int>(ldns_dname_label_count(name));
}

// The ancestor of `name` with `labels` labels (the name itself when it has no more).
Owned<ldns_rdf> ancestor(const ldns_rdf* name, int labels) {
  Owned<ldns_rdf> out(ldns_rdf_clone(name));
  while (out && label_count(out.get()) > labels)
    out.reset(ldns_dname_left_chop(out.get()));
  return out;
}

// "*." + name
Owned<ldns_rdf> wildcard_of(const ldns_rdf* name) {
  Owned<ldns_rdf> star(ldns_dname_new_frm_str("*"));
  if (!star) return nullptr;
  if (ldns_dname_cat(star.get(), name) != LDNS_STATUS_OK) return nullptr;
  return star;
}

// owner < name < next in canonical order, or past the last name when the chain wraps.
bool between(const ldns_rdf* owner, const ldns_rdf* next, const ldns_rdf* name) {
  int after_owner = ldns_dname_compare(name, owner);
  int before_next = ldns_dname_compare(name, next);
  if (ldns_dname_compare(owner, next) < 0) return after_owner > 0 && before_next < 0;
  return after_owner > 0 || before_next < 0;  // the last record: next is the apex
}

bool between_text(const std::string& owner, const std::string& next, const std::string& hash) {
  if (owner < next) return hash > owner && hash < next;
  return hash > owner || hash < next;
}

// --- the denial records, each set's signature checked --------------------------------------

struct Denials {
  Owned<ldns_rr_list> nsec = Owned<ldns_rr_list>(ldns_rr_list_new());
  Owned<ldns_rr_list> nsec3 = Owned<ldns_rr_list>(ldns_rr_list_new());
  std::string problem;  // the first set that did not verify, or none found
};

// Whether a record has at least `n` fields, none missing (the decoder accepts short RDATA).
bool has_fields(const ldns_rr* rr, std::size_t n) {
  if (ldns_rr_rd_count(rr) < n) return false;
  for (std::size_t i = 0; i < n; ++i)
    if (ldns_rr_rdf(rr, i) == nullptr || ldns_rdf_size(ldns_rr_rdf(rr, i)) == 0) return false;
  return true;
}

// Whether an NSEC or NSEC3 record has the fields the checks read, of the right kinds (a record
// the wire decoder accepted may still lack them).
bool well_formed(const ldns_rr* rr) {
  auto field = [rr](std::size_t i, ldns_rdf_type kind) {
    return ldns_rr_rd_count(rr) > i && ldns_rr_rdf(rr, i) != nullptr &&
           ldns_rdf_get_type(ldns_rr_rdf(rr, i)) == kind;
  };
  if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NSEC)
    return field(0, LDNS_RDF_TYPE_DNAME) && field(1, LDNS_RDF_TYPE_BITMAP);
  return ldns_rr_rd_count(rr) >= 6 && field(4, LDNS_RDF_TYPE_NSEC3_NEXT_OWNER) &&
         field(5, LDNS_RDF_TYPE_BITMAP) && field(3, LDNS_RDF_TYPE_NSEC3_SALT);
}

// The NSEC and NSEC3 records of the authority section whose signatures by `zone` verify.
Denials verified_denials(const ldns_pkt* pkt, const ldns_rdf* zone, const ldns_rr_list* keys,
                         std::time_t now) {
  Denials out;
  const ldns_rr_list* authority = ldns_pkt_authority(pkt);
  for (std::size_t i = 0; i < count(authority); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(authority, i);
    auto type = static_cast<std::uint16_t>(ldns_rr_get_type(rr));
    if (type != LDNS_RR_TYPE_NSEC && type != LDNS_RR_TYPE_NSEC3) continue;
    const ldns_rdf* owner = ldns_rr_owner(rr);
    if (!ldns_dname_is_subdomain(owner, zone) && !same_name(owner, zone)) continue;
    if (!well_formed(rr)) {
      if (out.problem.empty())
        out.problem = "the " + set_text(owner, type) + " record is malformed";
      continue;
    }
    auto set = select(authority, owner, type);
    auto sigs = signatures(authority, owner, type, zone);
    if (count(sigs.get()) == 0) {
      if (out.problem.empty())
        out.problem = "the " + set_text(owner, type) + " record has no RRSIG";
      continue;
    }
    Check check = verify_set(set.get(), sigs.get(), keys, now);
    if (!check.ok) {
      if (out.problem.empty()) out.problem = set_text(owner, type) + ": " + check.reason;
      continue;
    }
    ldns_rr* copy = ldns_rr_clone(rr);
    ldns_rr2canonical(copy);
    ldns_rr_list_push_rr(type == LDNS_RR_TYPE_NSEC ? out.nsec.get() : out.nsec3.get(), copy);
  }
  return out;
}

bool has_type(const ldns_rdf* bitmap, std::uint16_t type) {
  return bitmap && ldns_nsec_bitmap_covers_type(bitmap, static_cast<ldns_rr_type>(type));
}

// What a matching NSEC or NSEC3 bitmap proves for qtype.
Denial from_bitmap(const ldns_rdf* bitmap, std::uint16_t qtype, const std::string& what) {
  if (has_type(bitmap, qtype))
    return {Proof::none, what + " lists " + type_text(qtype) + " as present: the denial is false"};
  if (has_type(bitmap, LDNS_RR_TYPE_CNAME))
    return {Proof::none, what + " lists a CNAME: the answer should have held it"};
  if (qtype == LDNS_RR_TYPE_DS && has_type(bitmap, LDNS_RR_TYPE_NS) &&
      !has_type(bitmap, LDNS_RR_TYPE_SOA))
    return {Proof::delegation, what + " shows a delegation without DS: an unsigned zone"};
  return {Proof::nodata, what + " shows the name without " + type_text(qtype)};
}

// --- NSEC (RFC 4035 sections 3.1.3 and 5.4) ------------------------------------------------

const ldns_rr* nsec_matching(const ldns_rr_list* nsecs, const ldns_rdf* name) {
  for (std::size_t i = 0; i < count(nsecs); ++i)
    if (same_name(ldns_rr_owner(ldns_rr_list_rr(nsecs, i)), name)) return ldns_rr_list_rr(nsecs, i);
  return nullptr;
}

const ldns_rr* nsec_covering(const ldns_rr_list* nsecs, const ldns_rdf* name) {
  for (std::size_t i = 0; i < count(nsecs); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(nsecs, i);
    if (between(ldns_rr_owner(rr), ldns_rr_rdf(rr, 0), name)) return rr;
  }
  return nullptr;
}

// The closest encloser an NSEC covering `name` implies: the longest ancestor `name` shares
// with the NSEC's owner or its next name.
Owned<ldns_rdf> nsec_closest_encloser(const ldns_rr* nsec, const ldns_rdf* name) {
  auto shared = [&](const ldns_rdf* other) {
    int labels = std::min(label_count(name), label_count(other));
    while (labels > 0) {
      auto a = ancestor(name, labels);
      auto b = ancestor(other, labels);
      if (same_name(a.get(), b.get())) return labels;
      --labels;
    }
    return 0;
  };
  int labels = std::max(shared(ldns_rr_owner(nsec)), shared(ldns_rr_rdf(nsec, 0)));
  return ancestor(name, labels);
}

Denial nsec_denial(const ldns_rr_list* nsecs, const ldns_rdf* qname, std::uint16_t qtype, int rcode,
                   int wildcard_labels) {
  std::string name = name_text(qname);
  if (wildcard_labels >= 0) {
    if (nsec_covering(nsecs, qname))
      return {Proof::wildcard, "an NSEC record shows that " + name + " itself does not exist"};
    return {Proof::none, "the answer came from a wildcard, but no NSEC record shows that " + name +
                             " does not exist"};
  }
  if (rcode != LDNS_RCODE_NXDOMAIN) {
    if (const ldns_rr* match = nsec_matching(nsecs, qname))
      return from_bitmap(ldns_nsec_get_bitmap(match), qtype, "the NSEC record of " + name);
    // An empty non-terminal: an NSEC covers it and its next name lies below it.
    for (std::size_t i = 0; i < count(nsecs); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(nsecs, i);
      if (between(ldns_rr_owner(rr), ldns_rr_rdf(rr, 0), qname) &&
          ldns_dname_is_subdomain(ldns_rr_rdf(rr, 0), qname))
        return {Proof::nodata,
                name + " is an empty non-terminal (an NSEC record shows names only below it)"};
    }
    return {Proof::none, "no NSEC record shows that " + name + " has no " + type_text(qtype)};
  }
  if (nsec_matching(nsecs, qname))
    return {Proof::none,
            "an NSEC record shows that " + name + " exists, yet the answer is NXDOMAIN"};
  const ldns_rr* cover = nsec_covering(nsecs, qname);
  if (!cover) return {Proof::none, "no NSEC record covers " + name + " to prove it does not exist"};
  auto encloser = nsec_closest_encloser(cover, qname);
  auto star = encloser ? wildcard_of(encloser.get()) : nullptr;
  if (!star) return {Proof::none, "cannot form the wildcard name for " + name};
  if (nsec_matching(nsecs, star.get()))
    return {Proof::none,
            "a wildcard " + name_text(star.get()) + " exists, yet the answer is NXDOMAIN"};
  if (!nsec_covering(nsecs, star.get()))
    return {Proof::none,
            "no NSEC record shows that the wildcard " + name_text(star.get()) + " does not exist"};
  return {Proof::nxdomain, "NSEC records show that " + name + " and the wildcard " +
                               name_text(star.get()) + " do not exist"};
}

// --- NSEC3 (RFC 5155 section 8) ------------------------------------------------------------

struct Hashed {
  const ldns_rr* rr;
  std::string owner;  // the hash label of the owner, base32hex lower case
  std::string next;   // the next hashed owner
};

std::vector<Hashed> hashed(const ldns_rr_list* nsec3s) {
  std::vector<Hashed> out;
  for (std::size_t i = 0; i < count(nsec3s); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(nsec3s, i);
    Owned<ldns_rdf> label(ldns_dname_label(ldns_rr_owner(rr), 0));
    const ldns_rdf* next = ldns_nsec3_next_owner(rr);
    if (!label || !next) continue;
    std::string owner = name_text(label.get());
    std::string next_text = owned_text(ldns_rdf2str(next));
    out.push_back({rr, owner, next_text});
  }
  return out;
}

std::string hash_of(const ldns_rr* nsec3, const ldns_rdf* name) {
  Owned<ldns_rdf> hash(ldns_nsec3_hash_name_frm_nsec3(nsec3, name));
  return hash ? name_text(hash.get()) : std::string();
}

const Hashed* nsec3_matching(const std::vector<Hashed>& set, const ldns_rdf* name) {
  if (set.empty()) return nullptr;
  std::string hash = hash_of(set.front().rr, name);
  for (const Hashed& h : set)
    if (h.owner == hash) return &h;
  return nullptr;
}

const Hashed* nsec3_covering(const std::vector<Hashed>& set, const ldns_rdf* name) {
  if (set.empty()) return nullptr;
  std::string hash = hash_of(set.front().rr, name);
  for (const Hashed& h : set)
    if (between_text(h.owner, h.next, hash)) return &h;
  return nullptr;
}

// The closest encloser proof (RFC 5155 section 8.3): the longest ancestor of qname (within the
// zone) that an NSEC3 matches, and the next closer name (one label longer) that one covers.
struct Encloser {
  Owned<ldns_rdf> encloser;
  Owned<ldns_rdf> next_closer;
  const Hashed* cover = nullptr;
};

Encloser closest_encloser(const std::vector<Hashed>& set, const ldns_rdf* qname,
                          const ldns_rdf* zone) {
  Encloser out;
  int zone_labels = label_count(zone);
  for (int labels = label_count(qname); labels >= zone_labels; --labels) {
    auto candidate = ancestor(qname, labels);
    if (!nsec3_matching(set, candidate.get())) continue;
    out.encloser = std::move(candidate);
    if (labels < label_count(qname)) {
      out.next_closer = ancestor(qname, labels + 1);
      out.cover = nsec3_covering(set, out.next_closer.get());
    }
    break;
  }
  return out;
}

Denial nsec3_denial(const ldns_rr_list* nsec3s, const ldns_rdf* qname, std::uint16_t qtype,
                    int rcode, const ldns_rdf* zone, int wildcard_labels) {
  std::vector<Hashed> set = hashed(nsec3s);
  std::string name = name_text(qname);
  if (set.empty()) return {Proof::none, "no NSEC3 record to prove anything about " + name};
  if (ldns_nsec3_algorithm(set.front().rr) != LDNS_SHA1)
    return {Proof::opt_out, "the NSEC3 records use a hash this build cannot compute: insecure"};
  if (ldns_nsec3_iterations(set.front().rr) > max_nsec3_iterations)
    return {Proof::opt_out, "the NSEC3 records use " +
                                std::to_string(ldns_nsec3_iterations(set.front().rr)) +
                                " iterations (over " + std::to_string(max_nsec3_iterations) +
                                "): treated as insecure (RFC 9276)"};
  if (wildcard_labels >= 0) {
    auto next_closer = ancestor(qname, wildcard_labels + 1);
    if (nsec3_covering(set, next_closer.get()))
      return {Proof::wildcard,
              "an NSEC3 record shows that " + name_text(next_closer.get()) + " does not exist"};
    return {Proof::none, "the answer came from a wildcard, but no NSEC3 record shows that " +
                             name_text(next_closer.get()) + " does not exist"};
  }
  if (rcode != LDNS_RCODE_NXDOMAIN) {
    if (const Hashed* match = nsec3_matching(set, qname))
      return from_bitmap(ldns_nsec3_bitmap(match->rr), qtype, "the NSEC3 record of " + name);
    Encloser proof = closest_encloser(set, qname, zone);
    if (qtype == LDNS_RR_TYPE_DS && proof.cover && ldns_nsec3_optout(proof.cover->rr))
      return {Proof::opt_out, "an opt-out NSEC3 record covers " + name +
                                  ": it may be an unsigned delegation (insecure)"};
    if (proof.cover && proof.encloser) {
      auto star = wildcard_of(proof.encloser.get());
      const Hashed* wild = star ? nsec3_matching(set, star.get()) : nullptr;
      if (wild)
        return from_bitmap(ldns_nsec3_bitmap(wild->rr), qtype, "the NSEC3 record of the wildcard");
    }
    return {Proof::none,
            "no NSEC3 record matches " + name + " to show it has no " + type_text(qtype)};
  }
  if (nsec3_matching(set, qname))
    return {Proof::none,
            "an NSEC3 record shows that " + name + " exists, yet the answer is NXDOMAIN"};
  Encloser proof = closest_encloser(set, qname, zone);
  if (!proof.encloser)
    return {Proof::none,
            "no NSEC3 record matches an ancestor of " + name + " (no closest encloser)"};
  if (!proof.cover)
    return {Proof::none, "no NSEC3 record covers " + name_text(proof.next_closer.get()) +
                             " to prove it does not exist"};
  if (ldns_nsec3_optout(proof.cover->rr))
    return {Proof::opt_out,
            "the NSEC3 record covering " + name_text(proof.next_closer.get()) +
                " has opt-out set: an unsigned delegation may exist there (insecure)"};
  auto star = wildcard_of(proof.encloser.get());
  if (!star || !nsec3_covering(set, star.get()))
    return {Proof::none, "no NSEC3 record shows that the wildcard *." +
                             name_text(proof.encloser.get()) + " does not exist"};
  return {Proof::nxdomain, "NSEC3 records show that " + name_text(proof.next_closer.get()) +
                               " and the wildcard " + name_text(star.get()) + " do not exist"};
}

}  // namespace

std::optional<Anchor> parse_anchor(std::string_view text, std::string& error) {
  Owned<ldns_rr_list> records(ldns_rr_list_new());
  Owned<ldns_rdf> owner;
  std::uint32_t default_ttl = 3600;
  Owned<ldns_rdf> origin;
  std::size_t line_number = 0;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string line(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_number;
    if (std::size_t comment = line.find(';'); comment != std::string::npos) line.resize(comment);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (line.rfind("$TTL", 0) == 0) {
      default_ttl = static_cast<std::uint32_t>(std::strtoul(line.c_str() + 4, nullptr, 10));
      continue;
    }
    if (line.rfind("$ORIGIN", 0) == 0) {
      std::string name = line.substr(7);
      name.erase(0, name.find_first_not_of(" \t"));
      name.erase(name.find_last_not_of(" \t\r") + 1);
      ldns_rdf* rdf = nullptr;
      if (ldns_str2rdf_dname(&rdf, name.c_str()) != LDNS_STATUS_OK) {
        error = "line " + std::to_string(line_number) + ": not a domain name after $ORIGIN";
        return std::nullopt;
      }
      origin.reset(rdf);
      continue;
    }
    ldns_rr* rr = nullptr;
    ldns_status status = ldns_rr_new_frm_str(&rr, line.c_str(), default_ttl, origin.get(), nullptr);
    if (status != LDNS_STATUS_OK) {
      error = "line " + std::to_string(line_number) + ": " + ldns_get_errorstr_by_id(status);
      return std::nullopt;
    }
    Owned<ldns_rr> held(rr);
    auto type = ldns_rr_get_type(rr);
    if (type != LDNS_RR_TYPE_DS && type != LDNS_RR_TYPE_DNSKEY) {
      error = "line " + std::to_string(line_number) + ": a " + type_text(type) +
              " record (a trust anchor is DS or DNSKEY records)";
      return std::nullopt;
    }
    ldns_rr2canonical(rr);
    if (!owner) {
      owner.reset(ldns_rdf_clone(ldns_rr_owner(rr)));
    } else if (!same_name(owner.get(), ldns_rr_owner(rr))) {
      error = "line " + std::to_string(line_number) + ": the records name two zones (" +
              name_text(owner.get()) + " and " + name_text(ldns_rr_owner(rr)) + ")";
      return std::nullopt;
    }
    ldns_rr_list_push_rr(records.get(), held.release());
  }
  if (!owner) {
    error = "no DS or DNSKEY record in it";
    return std::nullopt;
  }
  return Anchor{name_text(owner.get()), to_wire(records.get())};
}

std::string rrset(std::string_view answer, std::string_view owner, std::uint16_t type) {
  auto pkt = parse(answer);
  auto name = dname(owner);
  if (!pkt || !name) return {};
  auto set = select(ldns_pkt_answer(pkt.get()), name.get(), type);
  return to_wire(set.get());
}

Check trust_keys(std::string_view answer, std::string_view zone, std::string_view trust,
                 std::time_t now, std::string& keys) {
  auto pkt = parse(answer);
  auto apex = dname(zone);
  if (!pkt || !apex)
    return failure("the DNSKEY answer for " + std::string(zone) + " does not decode");
  auto dnskeys = select(ldns_pkt_answer(pkt.get()), apex.get(), LDNS_RR_TYPE_DNSKEY);
  if (count(dnskeys.get()) == 0) return failure("no DNSKEY record for " + std::string(zone));
  auto trusted = from_wire(trust);
  // RFC 4509 section 3: with a SHA-256 (or stronger) DS on offer, a SHA-1 DS does not count, or
  // whoever could forge SHA-1 could choose the key.
  bool stronger_ds = false;
  for (std::size_t t = 0; t < count(trusted.get()); ++t) {
    const ldns_rr* ref = ldns_rr_list_rr(trusted.get(), t);
    if (ldns_rr_get_type(ref) != LDNS_RR_TYPE_DS || !has_fields(ref, 4)) continue;
    auto digest = ldns_rdf2native_int8(ldns_rr_rdf(ref, 2));
    if ((digest == LDNS_SHA256 || digest == LDNS_SHA384) &&
        ldns_key_algo_supported(ldns_rdf2native_int8(ldns_rr_rdf(ref, 1))))
      stronger_ds = true;
  }
  // The keys the trust names: a DS that matches one, or the same DNSKEY.
  Owned<ldns_rr_list> anchors(ldns_rr_list_new());
  bool any_supported = false;
  std::string tags;
  for (std::size_t t = 0; t < count(trusted.get()); ++t) {
    const ldns_rr* ref = ldns_rr_list_rr(trusted.get(), t);
    if (!has_fields(ref, 4)) continue;  // a DS and a DNSKEY both have four
    bool is_ds = ldns_rr_get_type(ref) == LDNS_RR_TYPE_DS;
    if (is_ds && stronger_ds && ldns_rdf2native_int8(ldns_rr_rdf(ref, 2)) == LDNS_SHA1) continue;
    if (is_ds) {
      auto algorithm = ldns_rdf2native_int8(ldns_rr_rdf(ref, 1));
      auto digest = static_cast<ldns_hash>(ldns_rdf2native_int8(ldns_rr_rdf(ref, 2)));
      bool digest_known = digest == LDNS_SHA1 || digest == LDNS_SHA256 || digest == LDNS_SHA384;
      if (digest_known && ldns_key_algo_supported(algorithm)) any_supported = true;
      if (!tags.empty()) tags += ", ";
      tags += std::to_string(ldns_rdf2native_int16(ldns_rr_rdf(ref, 0)));
    } else {
      if (ldns_key_algo_supported(ldns_rdf2native_int8(ldns_rr_rdf(ref, 2)))) any_supported = true;
    }
    for (std::size_t k = 0; k < count(dnskeys.get()); ++k) {
      const ldns_rr* key = ldns_rr_list_rr(dnskeys.get(), k);
      if (!has_fields(key, 4)) continue;
      bool match = is_ds ? ldns_rr_compare_ds(ref, key) : ldns_rr_compare(ref, key) == 0;
      if (match) ldns_rr_list_push_rr(anchors.get(), ldns_rr_clone(key));
    }
  }
  if (!any_supported)
    return failure(
        "the DS records of " + std::string(zone) + " use only algorithms this build cannot check",
        true);
  if (count(anchors.get()) == 0)
    return failure("no DNSKEY of " + std::string(zone) + " matches its DS (key tag " + tags + ")");
  auto sigs = signatures(ldns_pkt_answer(pkt.get()), apex.get(), LDNS_RR_TYPE_DNSKEY, apex.get());
  if (count(sigs.get()) == 0)
    return failure("the DNSKEY records of " + std::string(zone) + " have no RRSIG");
  Check check = verify_set(dnskeys.get(), sigs.get(), anchors.get(), now);
  if (!check.ok) {
    check.reason = "the DNSKEY records of " + std::string(zone) + ": " + check.reason;
    return check;
  }
  Owned<ldns_rr_list> zone_keys(ldns_rr_list_new());
  for (std::size_t k = 0; k < count(dnskeys.get()); ++k) {
    const ldns_rr* key = ldns_rr_list_rr(dnskeys.get(), k);
    if (has_fields(key, 4) && ldns_rdf2native_int16(ldns_rr_dnskey_flags(key)) & LDNS_KEY_ZONE_KEY)
      ldns_rr_list_push_rr(zone_keys.get(), ldns_rr_clone(key));
  }
  keys = to_wire(zone_keys.get());
  Check done{true, false, {}, {}};
  for (std::size_t k = 0; k < count(anchors.get()); ++k) {
    const ldns_rr* key = ldns_rr_list_rr(anchors.get(), k);
    if (!done.detail.empty()) done.detail += ", ";
    done.detail += "key " + std::to_string(ldns_calc_keytag(key)) + ", algorithm " +
                   std::to_string(ldns_rdf2native_int8(ldns_rr_rdf(key, 2)));
  }
  return done;
}

Signature verify(std::string_view answer, Section section, std::string_view owner,
                 std::uint16_t type, std::string_view zone, std::string_view keys,
                 std::time_t now) {
  Signature out;
  auto pkt = parse(answer);
  auto name = dname(owner);
  auto apex = dname(zone);
  if (!pkt || !name || !apex) {
    out.reason = "the answer does not decode";
    return out;
  }
  const ldns_rr_list* list = section_of(pkt.get(), section);
  auto set = select(list, name.get(), type);
  if (count(set.get()) == 0) {
    out.reason = "no " + set_text(name.get(), type) + " record in the answer";
    return out;
  }
  auto sigs = signatures(list, name.get(), type, apex.get());
  if (count(sigs.get()) == 0) {
    out.missing = true;
    out.reason = "no RRSIG by " + std::string(zone) + " covers " + set_text(name.get(), type);
    return out;
  }
  auto key_list = from_wire(keys);
  Check check = verify_set(set.get(), sigs.get(), key_list.get(), now);
  out.ok = check.ok;
  out.unsupported = check.unsupported;
  if (!check.ok) {
    out.reason = set_text(name.get(), type) + ": " + check.reason;
    return out;
  }
  int labels = ldns_rdf2native_int8(ldns_rr_rrsig_labels(ldns_rr_list_rr(sigs.get(), 0)));
  int owner_labels = label_count(name.get());
  if (ldns_dname_is_wildcard(name.get())) --owner_labels;
  if (labels < owner_labels) out.wildcard_labels = labels;
  return out;
}

Denial prove_denial(std::string_view answer, std::string_view qname, std::uint16_t qtype, int rcode,
                    std::string_view zone, std::string_view keys, std::time_t now,
                    int wildcard_labels) {
  auto pkt = parse(answer);
  auto name = dname(qname);
  auto apex = dname(zone);
  if (!pkt || !name || !apex) return {Proof::none, "the answer does not decode"};
  auto key_list = from_wire(keys);
  Denials found = verified_denials(pkt.get(), apex.get(), key_list.get(), now);
  Denial out;
  if (count(found.nsec.get()) > 0)
    out = nsec_denial(found.nsec.get(), name.get(), qtype, rcode, wildcard_labels);
  else if (count(found.nsec3.get()) > 0)
    out = nsec3_denial(found.nsec3.get(), name.get(), qtype, rcode, apex.get(), wildcard_labels);
  else
    return {Proof::none, found.problem.empty() ? "no NSEC or NSEC3 record signed by " +
                                                     std::string(zone) + " proves the denial"
                                               : found.problem};
  if (out.proof == Proof::none && !found.problem.empty()) out.reason += "; " + found.problem;
  return out;
}

std::string signer(std::string_view answer, Section section, std::string_view owner,
                   std::uint16_t type) {
  auto pkt = parse(answer);
  auto name = dname(owner);
  if (!pkt || !name) return {};
  const ldns_rr_list* list = section_of(pkt.get(), section);
  for (std::size_t i = 0; i < count(list); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(list, i);
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG && same_name(ldns_rr_owner(rr), name.get()) &&
        covered_type(rr) == type)
      return name_text(ldns_rr_rrsig_signame(rr));
  }
  return {};
}

}  // namespace smtpsh::dns::dnssec
