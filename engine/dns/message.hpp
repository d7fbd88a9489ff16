#pragma once
// DNS messages without sockets: a query built as wire bytes, and an answer checked against
// the query it claims to answer and decoded into plain records. ldns does the wire format;
// nothing here does I/O, so it is tested by feeding bytes and fuzzed alone.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::dns {

// Record types by number, with names as DNS tools spell them ("MX", "TLSA", "TYPE65534").
std::optional<std::uint16_t> type_from_name(std::string_view name);
std::string type_name(std::uint16_t type);
std::string rcode_name(int rcode);  // "NOERROR", "NXDOMAIN", "SERVFAIL", "RCODE11"

namespace type {
constexpr std::uint16_t A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, MX = 15, TXT = 16, AAAA = 28,
                        SRV = 33, TLSA = 52, ANY = 255;
}
namespace rcode {
constexpr int NOERROR = 0, FORMERR = 1, SERVFAIL = 2, NXDOMAIN = 3, NOTIMP = 4, REFUSED = 5;
}

// One resource record, decoded. `fields` hold the RDATA in the order of the type's
// definition, each as text: addresses in their usual notation, names without the final dot
// ("." for the root), numbers in decimal, TXT strings as their raw bytes, hashes in hex.
// `presentation` is the whole RDATA as a zone file writes it.
struct Record {
  std::string name;
  std::uint16_t type = 0;
  std::uint32_t ttl = 0;
  std::vector<std::string> fields;
  std::string presentation;
};

// A decoded answer to one question.
struct Answer {
  int rcode = 0;
  bool truncated = false;      // TC: ask again over TCP
  bool authenticated = false;  // AD: the resolver validated it with DNSSEC
  bool authoritative = false;  // AA
  std::vector<Record> answer;
  std::vector<Record> authority;
};

// A name as users type it, made canonical: lower case, no final dot, "." for the root.
// Returns nullopt and fills `error` when it cannot be a domain name (empty, a label over 63
// bytes, over 253 bytes in all, an empty label, spaces or control characters).
std::optional<std::string> canonical_name(std::string_view name, std::string& error);

// The wire bytes of a recursive query (RD set, EDNS0 with `udp_size`, AD requested so a
// validating resolver says whether it validated). `name` must be canonical. `dnssec_ok` sets
// the DO bit (send RRSIG, NSEC and NSEC3 records too); `checking_disabled` the CD bit (a
// validating resolver hands over what fails its validation instead of SERVFAIL, so that our
// own validator can say why).
std::string build_query(std::string_view name, std::uint16_t qtype, std::uint16_t id,
                        std::uint16_t udp_size, bool dnssec_ok = false,
                        bool checking_disabled = false);

// What checking and decoding an answer found.
enum class Verdict : std::uint8_t {
  accepted,   // `answer` is filled
  unrelated,  // not a response to this query (another ID, question or a query): drop it
  malformed,  // claims to answer it but does not decode
};

// Checks that `wire` answers the query with `id` for `name`/`qtype` (compared without case)
// and decodes it into `answer`.
Verdict parse_answer(std::string_view wire, std::uint16_t id, std::string_view name,
                     std::uint16_t qtype, Answer& answer);

// The records of `answer` that answer the question, following the CNAME chain the answer
// section holds from `name` (at most 16 links). `canonical` is where the chain ended.
std::vector<const Record*> records_for(const Answer& answer, std::string_view name,
                                       std::uint16_t qtype, std::string& canonical);

// The negative-caching TTL of an answer without records (RFC 2308): min(SOA TTL, SOA minimum)
// from the authority section, or nullopt when there is no SOA.
std::optional<std::uint32_t> negative_ttl(const Answer& answer);

}  // namespace smtpsh::dns
