#pragma once
// DNSSEC validation steps without I/O (RFC 4033-4035, RFC 5155, RFC 6840): each takes DNS
// answers as wire bytes and says what they prove, so the chain walk that asks the questions
// (stdlib/dnssec.lua, on the resolver) stays small and these are tested by feeding bytes.
// ldns does the cryptography and the wire format.
//
// Record sets travel between the steps as "RR lists": the records' uncompressed wire forms
// one after another (what trust_keys returns and takes), so a trusted key set is a plain
// string that Lua can keep and a test can build.
//
// Names are canonical (lower case, no final dot, "." for the root), as canonical_name makes
// them. `now` is the time the signatures are checked against (seconds since the epoch).

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace smtpsh::dns::dnssec {

// What one step found: ok, or why not in words. `unsupported` when the only keys or digests
// on offer use algorithms this build cannot check: RFC 4035 section 5.2 treats such a zone as
// insecure, not bogus.
struct Check {
  bool ok = false;
  bool unsupported = false;
  std::string reason;
  std::string detail;  // on success, what made it so (trust_keys: the keys the trust matched)
};

// A trust anchor as drill -k and Unbound's trust-anchor-file take it: DS and/or DNSKEY records
// in zone file text (comments, blank lines, $TTL and $ORIGIN lines allowed), all of one owner.
struct Anchor {
  std::string zone;     // the owner, canonical
  std::string records;  // the DS and DNSKEY records, an RR list
};
std::optional<Anchor> parse_anchor(std::string_view text, std::string& error);

// The records of `owner`/`type` in an answer's answer section, as an RR list ("" when none or
// the answer does not decode).
std::string rrset(std::string_view answer, std::string_view owner, std::uint16_t type);

// Trusts the DNSKEY set of `zone` in `answer` (the answer to "zone DNSKEY") when a key that
// `trust` names (DS records that match it, or the very DNSKEY) signs the set with a valid
// signature at `now`. On success `keys` gets the zone's keys (DNSKEYs with the Zone Key flag)
// and `detail` names the keys the trust matched ("key 37579, algorithm 13").
Check trust_keys(std::string_view answer, std::string_view zone, std::string_view trust,
                 std::time_t now, std::string& keys);

enum class Section : std::uint8_t { answer, authority };

// What a signed record set proved.
struct Signature : Check {
  bool missing = false;  // no RRSIG of the zone covers the set
  // The RRSIG's label count when it is below the owner's: the set was made from a wildcard
  // (RFC 4035 section 5.3.4) and the answer must also prove that the name itself is absent.
  int wildcard_labels = -1;
};

// Verifies the set `owner`/`type` of a section with the keys of `zone` (an RR list from
// trust_keys): at least one RRSIG by the zone must verify at `now`.
Signature verify(std::string_view answer, Section section, std::string_view owner,
                 std::uint16_t type, std::string_view zone, std::string_view keys, std::time_t now);

// What the NSEC or NSEC3 records of an answer's authority section prove about qname/qtype,
// after their own signatures are verified with the zone's keys.
enum class Proof : std::uint8_t {
  none,        // nothing usable: `reason` says what is missing or wrong
  nxdomain,    // the name does not exist (and no wildcard could make it)
  nodata,      // the name exists without the type (nor a CNAME)
  delegation,  // for DS: the name is a delegation without DS, an unsigned child (insecure)
  opt_out,     // an opt-out NSEC3 covers the name: an unsigned delegation may hide there
  // (insecure, RFC 5155 sections 6 and 8.6)
  wildcard,  // for a wildcard answer: no closer name exists (the expansion was legitimate)
};
struct Denial {
  Proof proof = Proof::none;
  std::string reason;  // how it was proven, or what is missing
};

// `rcode` is the answer's RCODE (3 for NXDOMAIN). With `wildcard_labels` >= 0 the question is
// whether a wildcard answer with that many labels in its RRSIG was legitimate.
Denial prove_denial(std::string_view answer, std::string_view qname, std::uint16_t qtype, int rcode,
                    std::string_view zone, std::string_view keys, std::time_t now,
                    int wildcard_labels = -1);

// NSEC3 iterations above this make a denial insecure, as RFC 9276 section 3.2 allows and
// validators do (the cost of hashing is the attacker's lever).
constexpr unsigned max_nsec3_iterations = 150;

// The RRSIGs of an answer section: the zones that signed it (the signer of the first RRSIG
// covering `owner`/`type`, "" when none).
std::string signer(std::string_view answer, Section section, std::string_view owner,
                   std::uint16_t type);

}  // namespace smtpsh::dns::dnssec
