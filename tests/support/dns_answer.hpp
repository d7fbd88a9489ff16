#pragma once
// Test support: DNS answers as wire bytes, made with ldns's own zone-text parser, so tests of
// the decoder, the resolver and the replay server feed real messages built independently of
// the code under test.

#include <ldns/ldns.h>

#include <cstdint>
#include <string>
#include <vector>

namespace smtpsh::test {

// A response to `qname`/`qtype` with `id`, holding `answers` (zone-file lines) in the answer
// section and `authority` lines in the authority section. Fails the test on a bad line.
std::string dns_response(std::uint16_t id, const std::string& qname, ldns_rr_type qtype,
                         const std::vector<std::string>& answers,
                         const std::vector<std::string>& authority = {}, int rcode = 0,
                         bool truncated = false, bool ad = false);

}  // namespace smtpsh::test
