#include "tests/support/dns_answer.hpp"

#include <doctest/doctest.h>

#include <cstdlib>

namespace smtpsh::test {

std::string dns_response(std::uint16_t id, const std::string& qname, ldns_rr_type qtype,
                         const std::vector<std::string>& answers,
                         const std::vector<std::string>& authority, int rcode, bool truncated,
                         bool ad) {
  ldns_pkt* packet =
      ldns_pkt_query_new(ldns_dname_new_frm_str(qname.c_str()), qtype, LDNS_RR_CLASS_IN, LDNS_RD);
  REQUIRE(packet != nullptr);
  ldns_pkt_set_id(packet, id);
  ldns_pkt_set_qr(packet, true);
  ldns_pkt_set_rcode(packet, static_cast<std::uint8_t>(rcode));
  ldns_pkt_set_tc(packet, truncated);
  ldns_pkt_set_ad(packet, ad);
  for (auto [lines, section] :
       {std::pair{&answers, LDNS_SECTION_ANSWER}, std::pair{&authority, LDNS_SECTION_AUTHORITY}}) {
    for (const auto& line : *lines) {
      ldns_rr* rr = nullptr;
      REQUIRE(ldns_rr_new_frm_str(&rr, line.c_str(), 300, nullptr, nullptr) == LDNS_STATUS_OK);
      ldns_pkt_push_rr(packet, section, rr);
    }
  }
  std::uint8_t* wire = nullptr;
  std::size_t size = 0;
  REQUIRE(ldns_pkt2wire(&wire, packet, &size) == LDNS_STATUS_OK);
  std::string bytes(reinterpret_cast<char*>(wire), size);
  std::free(wire);
  ldns_pkt_free(packet);
  return bytes;
}

}  // namespace smtpsh::test
