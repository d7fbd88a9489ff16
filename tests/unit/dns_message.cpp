// engine/dns/message: queries built, answers checked and decoded, fed as bytes. Answers are
// made with ldns's own zone-text parser, independently of the code under test.
#include "engine/dns/message.hpp"

#include "tests/support/dns_answer.hpp"

#include <doctest/doctest.h>
#include <ldns/ldns.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>

using namespace smtpsh;

using test::dns_response;

TEST_CASE("a query is a recursive question with EDNS0 and the AD bit") {
  std::string wire = dns::build_query("mx1.example.test", dns::type::MX, 0xbeef, 1232);
  ldns_pkt* packet = nullptr;
  REQUIRE(ldns_wire2pkt(&packet, reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()) ==
          LDNS_STATUS_OK);
  CHECK(ldns_pkt_id(packet) == 0xbeef);
  CHECK(ldns_pkt_rd(packet));
  CHECK_FALSE(ldns_pkt_qr(packet));
  CHECK(ldns_pkt_ad(packet));
  CHECK(ldns_pkt_edns_udp_size(packet) == 1232);
  REQUIRE(ldns_pkt_qdcount(packet) == 1);
  const ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(packet), 0);
  CHECK(ldns_rr_get_type(q) == LDNS_RR_TYPE_MX);
  char* owner = ldns_rdf2str(ldns_rr_owner(q));
  CHECK(std::string(owner) == "mx1.example.test.");
  std::free(owner);
  ldns_pkt_free(packet);

  // The root is a name too.
  CHECK_FALSE(dns::build_query(".", dns::type::NS, 1, 1232).empty());
}

namespace {

// The query as ldns builds it: the reference the hand-written encoder is held to.
std::string ldns_query(const char* name, ldns_rr_type qtype, std::uint16_t id,
                       std::uint16_t udp_size) {
  ldns_rdf* owner = ldns_dname_new_frm_str(name);
  REQUIRE(owner != nullptr);
  ldns_pkt* packet = ldns_pkt_query_new(owner, qtype, LDNS_RR_CLASS_IN, LDNS_RD);
  ldns_pkt_set_id(packet, id);
  ldns_pkt_set_ad(packet, true);
  ldns_pkt_set_edns_udp_size(packet, udp_size);
  std::uint8_t* bytes = nullptr;
  std::size_t size = 0;
  REQUIRE(ldns_pkt2wire(&bytes, packet, &size) == LDNS_STATUS_OK);
  std::string wire(reinterpret_cast<const char*>(bytes), size);
  std::free(bytes);
  ldns_pkt_free(packet);
  return wire;
}

}  // namespace

TEST_CASE("a query is byte for byte what ldns would send") {
  const std::string longest_label(63, 'a');
  // 3 labels of 63 and one of 61: 255 octets on the wire with their lengths and the root.
  const std::string longest_name =
      longest_label + "." + longest_label + "." + longest_label + "." + std::string(61, 'b');
  for (const std::string& name :
       {std::string("mx1.example.test"), std::string("a"), std::string("."),
        std::string("xn--bcher-kva.example"), std::string("_25._tcp.mx.example"),
        longest_label + ".test", longest_name}) {
    CAPTURE(name);
    for (ldns_rr_type type : {LDNS_RR_TYPE_MX, LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_TLSA}) {
      std::string ours = dns::build_query(name, type, 0x1234, 1232);
      CHECK(ours == ldns_query((name == "." ? name : name + ".").c_str(), type, 0x1234, 1232));
    }
  }
  // A trailing dot changes nothing.
  CHECK(dns::build_query("a.test.", dns::type::A, 9, 512) ==
        dns::build_query("a.test", dns::type::A, 9, 512));
  CHECK(dns::build_query("a.test", dns::type::A, 9, 512) ==
        ldns_query("a.test.", LDNS_RR_TYPE_A, 9, 512));
}

TEST_CASE("a name no query can carry gives no query") {
  CHECK(dns::build_query("a..test", dns::type::A, 1, 1232).empty());
  CHECK(dns::build_query(".a.test", dns::type::A, 1, 1232).empty());
  CHECK(dns::build_query("a.test..", dns::type::A, 1, 1232).empty());
  CHECK(dns::build_query(std::string(64, 'a') + ".test", dns::type::A, 1, 1232).empty());
  const std::string label(63, 'a');
  CHECK(
      dns::build_query(label + "." + label + "." + label + "." + label + "." + std::string(62, 'b'),
                       dns::type::A, 1, 1232)
          .empty());  // 256 octets
}

TEST_CASE("answers are decoded into typed fields") {
  std::string wire =
      dns_response(7, "example.test.", LDNS_RR_TYPE_MX,
                   {"example.test. 300 IN MX 10 MX1.Example.Test.", "example.test. 200 IN MX 0 ."},
                   {}, 0, false, true);
  dns::Answer answer;
  REQUIRE(dns::parse_answer(wire, 7, "example.test", dns::type::MX, answer) ==
          dns::Verdict::accepted);
  CHECK(answer.rcode == 0);
  CHECK(answer.authenticated);
  REQUIRE(answer.answer.size() == 2);
  CHECK(answer.answer[0].name == "example.test");
  CHECK(answer.answer[0].ttl == 300);
  CHECK(answer.answer[0].fields == std::vector<std::string>{"10", "mx1.example.test"});
  // Presentation form as ldns writes it (the case of names is the server's business).
  std::string shown = answer.answer[0].presentation;
  std::transform(shown.begin(), shown.end(), shown.begin(), ::tolower);
  CHECK(shown == "10 mx1.example.test.");
  CHECK(answer.answer[1].fields == std::vector<std::string>{"0", "."});

  wire = dns_response(8, "multi.example.test.", LDNS_RR_TYPE_TXT,
                      {"multi.example.test. 60 IN TXT \"part one \" \"part two\""});
  REQUIRE(dns::parse_answer(wire, 8, "multi.example.test", dns::type::TXT, answer) ==
          dns::Verdict::accepted);
  REQUIRE(answer.answer.size() == 1);
  CHECK(answer.answer[0].fields == std::vector<std::string>{"part one ", "part two"});

  wire = dns_response(9, "_25._tcp.mx1.example.test.", LDNS_RR_TYPE_TLSA,
                      {"_25._tcp.mx1.example.test. 60 IN TLSA 3 1 1 0123456789ABCDEF"});
  REQUIRE(dns::parse_answer(wire, 9, "_25._tcp.mx1.example.test", dns::type::TLSA, answer) ==
          dns::Verdict::accepted);
  CHECK(answer.answer[0].fields == std::vector<std::string>{"3", "1", "1", "0123456789abcdef"});

  wire = dns_response(10, "host.test.", LDNS_RR_TYPE_AAAA, {"host.test. 60 IN AAAA 2001:DB8::1"});
  REQUIRE(dns::parse_answer(wire, 10, "host.test", dns::type::AAAA, answer) ==
          dns::Verdict::accepted);
  CHECK(answer.answer[0].fields == std::vector<std::string>{"2001:db8::1"});
}

TEST_CASE("an answer to another ID, question or type is not ours") {
  std::string wire = dns_response(100, "a.test.", LDNS_RR_TYPE_A, {"a.test. 60 IN A 192.0.2.1"});
  dns::Answer answer;
  CHECK(dns::parse_answer(wire, 101, "a.test", dns::type::A, answer) == dns::Verdict::unrelated);
  CHECK(dns::parse_answer(wire, 100, "b.test", dns::type::A, answer) == dns::Verdict::unrelated);
  CHECK(dns::parse_answer(wire, 100, "a.test", dns::type::AAAA, answer) == dns::Verdict::unrelated);
  // Names compare without case, as DNS does.
  CHECK(dns::parse_answer(wire, 100, "A.TEST", dns::type::A, answer) == dns::Verdict::accepted);
  // Our own query coming back (QR clear) is not an answer.
  std::string query = dns::build_query("a.test", dns::type::A, 100, 1232);
  CHECK(dns::parse_answer(query, 100, "a.test", dns::type::A, answer) == dns::Verdict::unrelated);
}

TEST_CASE("every truncation of an answer is refused, never misread") {
  std::string wire = dns_response(42, "example.test.", LDNS_RR_TYPE_MX,
                                  {"example.test. 300 IN MX 10 mx1.example.test.",
                                   "example.test. 300 IN MX 20 mx2.example.test."},
                                  {"example.test. 300 IN NS ns.example.test."});
  for (std::size_t cut = 0; cut < wire.size(); ++cut) {
    CAPTURE(cut);
    dns::Answer answer;
    auto verdict = dns::parse_answer(std::string_view(wire).substr(0, cut), 42, "example.test",
                                     dns::type::MX, answer);
    CHECK(verdict != dns::Verdict::accepted);
  }
  // Every single corrupted byte either decodes to something or is refused; none crashes.
  for (std::size_t at = 0; at < wire.size(); ++at) {
    std::string bent = wire;
    bent[at] = static_cast<char>(bent[at] ^ 0x5a);
    dns::Answer answer;
    (void)dns::parse_answer(bent, 42, "example.test", dns::type::MX, answer);
  }
}

TEST_CASE("rcodes, truncation and the negative TTL") {
  dns::Answer answer;
  std::string nx = dns_response(5, "nope.test.", LDNS_RR_TYPE_A, {},
                                {"test. 300 IN SOA ns.test. admin.test. 1 3600 600 86400 60"}, 3);
  REQUIRE(dns::parse_answer(nx, 5, "nope.test", dns::type::A, answer) == dns::Verdict::accepted);
  CHECK(answer.rcode == dns::rcode::NXDOMAIN);
  CHECK(dns::negative_ttl(answer) == 60u);

  std::string tc = dns_response(6, "big.test.", LDNS_RR_TYPE_A, {}, {}, 0, true);
  REQUIRE(dns::parse_answer(tc, 6, "big.test", dns::type::A, answer) == dns::Verdict::accepted);
  CHECK(answer.truncated);
  CHECK_FALSE(dns::negative_ttl(answer).has_value());

  CHECK(dns::rcode_name(2) == "SERVFAIL");
  CHECK(dns::rcode_name(5) == "REFUSED");
  CHECK(dns::type_name(dns::type::TLSA) == "TLSA");
  CHECK(dns::type_from_name("mx") == dns::type::MX);
  CHECK_FALSE(dns::type_from_name("NOPE").has_value());
}

TEST_CASE("the CNAME chain is followed to the records that answer the question") {
  std::string wire =
      dns_response(3, "alias.test.", LDNS_RR_TYPE_A,
                   {"alias.test. 60 IN CNAME middle.test.", "middle.test. 60 IN CNAME host.test.",
                    "host.test. 60 IN A 192.0.2.7", "other.test. 60 IN A 192.0.2.8"});
  dns::Answer answer;
  REQUIRE(dns::parse_answer(wire, 3, "alias.test", dns::type::A, answer) == dns::Verdict::accepted);
  std::string canonical;
  auto records = dns::records_for(answer, "alias.test", dns::type::A, canonical);
  REQUIRE(records.size() == 1);
  CHECK(records[0]->fields[0] == "192.0.2.7");
  CHECK(canonical == "host.test");

  // A loop of aliases ends, with nothing found.
  wire = dns_response(4, "x.test.", LDNS_RR_TYPE_A,
                      {"x.test. 60 IN CNAME y.test.", "y.test. 60 IN CNAME x.test."});
  REQUIRE(dns::parse_answer(wire, 4, "x.test", dns::type::A, answer) == dns::Verdict::accepted);
  CHECK(dns::records_for(answer, "x.test", dns::type::A, canonical).empty());
}

TEST_CASE("names are made canonical, and what cannot be a name is refused in words") {
  std::string error;
  CHECK(dns::canonical_name("Example.COM.", error) == "example.com");
  CHECK(dns::canonical_name(".", error) == ".");
  CHECK(dns::canonical_name("_25._tcp.mx1.example.test", error) == "_25._tcp.mx1.example.test");
  CHECK_FALSE(dns::canonical_name("", error));
  CHECK(error == "empty domain name");
  CHECK_FALSE(dns::canonical_name("a..b", error));
  CHECK(error.find("empty label") != std::string::npos);
  CHECK_FALSE(dns::canonical_name("bad name.test", error));
  CHECK(error.find("space") != std::string::npos);
  CHECK_FALSE(dns::canonical_name("b\xc3\xa4r.test", error));
  CHECK(error.find("xn--") != std::string::npos);
  CHECK_FALSE(dns::canonical_name(std::string(64, 'a') + ".test", error));
  CHECK(error.find("63") != std::string::npos);
  std::string long_name;
  for (int i = 0; i < 50; ++i)
    long_name += "abcd.";
  long_name += "test";
  CHECK_FALSE(dns::canonical_name(long_name, error));
  CHECK(error.find("253") != std::string::npos);
}

TEST_CASE("an answer carrying a TSIG record is refused before ldns reads it") {
  // ldns leaks when a message with a TSIG turns out malformed further on (the fuzzer's
  // reproducer: tests/fuzz/corpus/dns/leak-tsig-then-malformed); our queries are unsigned, so
  // a TSIG in the answer is refused outright.
  std::string wire = dns_response(100, "a.test.", LDNS_RR_TYPE_A, {"a.test. 60 IN A 192.0.2.1"});
  dns::Answer answer;
  REQUIRE(dns::parse_answer(wire, 100, "a.test", dns::type::A, answer) == dns::Verdict::accepted);
  // One more additional record: the root name, type TSIG (250), class ANY, no data.
  std::string signed_wire = wire + std::string("\0\0\xfa\0\xff\0\0\0\0\0\0", 11);
  signed_wire[11] = static_cast<char>(signed_wire[11] + 1);  // ARCOUNT
  CHECK(dns::parse_answer(signed_wire, 100, "a.test", dns::type::A, answer) ==
        dns::Verdict::malformed);
}
