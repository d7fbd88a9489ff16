// libFuzzer target for parse_answer: whatever bytes arrive as an answer, decoding never
// crashes, and what it accepts keeps its promises: it answers the ID asked, names are
// canonical (lower case, no final dot), and following the CNAME chain ends.

#include "engine/dns/message.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace smtpsh;

namespace {
void expect(bool condition) {
  if (!condition) std::abort();
}

bool canonical(const std::string& name) {
  if (name == ".") return true;
  if (name.empty()) return false;
  // A final dot is allowed only escaped ("a\\."): a dot inside a label, as ldns prints it.
  if (name.back() == '.' && (name.size() < 2 || name[name.size() - 2] != '\\')) return false;
  for (char c : name)
    if (c >= 'A' && c <= 'Z') return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view wire(reinterpret_cast<const char*>(data), size);
  // Ask with the ID the input carries, so that decoding is reached often.
  std::uint16_t id = size >= 2 ? static_cast<std::uint16_t>((data[0] << 8) | data[1]) : 0;
  for (std::uint16_t qtype : {dns::type::MX, dns::type::A, dns::type::TXT}) {
    dns::Answer answer;
    if (dns::parse_answer(wire, id, "example.test", qtype, answer) != dns::Verdict::accepted)
      continue;
    for (const auto* section : {&answer.answer, &answer.authority})
      for (const dns::Record& record : *section)
        expect(canonical(record.name));
    std::string end;
    auto records = dns::records_for(answer, "example.test", qtype, end);
    for (const dns::Record* record : records)
      expect(record->type == qtype);
    (void)dns::negative_ttl(answer);
  }
  return 0;
}
