#include "engine/dns/message.hpp"

#include <arpa/inet.h>
#include <ldns/ldns.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace smtpsh::dns {

namespace {

struct LdnsFree {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
  void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
  void operator()(char* s) const { std::free(s); }
  void operator()(std::uint8_t* b) const { std::free(b); }
  void operator()(ldns_buffer* b) const { ldns_buffer_free(b); }
};
template <class T>
using Owned = std::unique_ptr<T, LdnsFree>;

std::string owned_text(char* text) {
  Owned<char> holder(text);
  return text ? std::string(text) : std::string();
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// A name from its wire form (labels, each after its length byte), in presentation form without
// the final dot ("." for the root), lower case; bytes that are not plain are escaped as
// RFC 1035 section 5.1 writes them (\. and \DDD). Done by hand: ldns_rdf2str formats a name
// one character at a time through printf, the largest cost of decoding an answer.
std::string name_text(const ldns_rdf* rdf) {
  const std::uint8_t* data = ldns_rdf_data(rdf);
  std::size_t size = ldns_rdf_size(rdf);
  std::string text;
  text.reserve(size);
  std::size_t at = 0;
  while (at < size && data[at] != 0) {
    std::size_t length = data[at++];
    if (at + length > size) break;
    if (!text.empty()) text.push_back('.');
    for (std::size_t i = 0; i < length; ++i) {
      auto byte = data[at + i];
      if (byte == '.' || byte == '\\' || byte == '"' || byte == '(' || byte == ')' || byte == ';' ||
          byte == '@' || byte == '$') {
        text.push_back('\\');
        text.push_back(static_cast<char>(byte));
      } else if (byte <= ' ' || byte >= 0x7f) {
        char escaped[5];
        std::snprintf(escaped, sizeof escaped, "\\%03u", static_cast<unsigned>(byte));
        text += escaped;
      } else {
        text.push_back(lower(static_cast<char>(byte)));
      }
    }
    at += length;
  }
  return text.empty() ? "." : text;
}

std::string hex(const std::uint8_t* data, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 15]);
  }
  return out;
}

std::string field_text(const ldns_rdf* rdf) {
  const std::uint8_t* data = ldns_rdf_data(rdf);
  std::size_t size = ldns_rdf_size(rdf);
  char address[INET6_ADDRSTRLEN] = {};
  switch (ldns_rdf_get_type(rdf)) {
    case LDNS_RDF_TYPE_DNAME:
      return name_text(rdf);
    case LDNS_RDF_TYPE_A:
      if (size == 4 && inet_ntop(AF_INET, data, address, sizeof address)) return address;
      break;
    case LDNS_RDF_TYPE_AAAA:
      if (size == 16 && inet_ntop(AF_INET6, data, address, sizeof address)) return address;
      break;
    case LDNS_RDF_TYPE_STR:
      // A character-string: a length byte, then that many raw bytes.
      if (size >= 1 && data[0] <= size - 1)
        return std::string(reinterpret_cast<const char*>(data) + 1, data[0]);
      break;
    case LDNS_RDF_TYPE_INT8:
      if (size == 1) return std::to_string(data[0]);
      break;
    case LDNS_RDF_TYPE_INT16:
      if (size == 2) return std::to_string((data[0] << 8) | data[1]);
      break;
    case LDNS_RDF_TYPE_INT32:
    case LDNS_RDF_TYPE_PERIOD:
      if (size == 4)
        return std::to_string((std::uint32_t{data[0]} << 24) | (std::uint32_t{data[1]} << 16) |
                              (std::uint32_t{data[2]} << 8) | data[3]);
      break;
    case LDNS_RDF_TYPE_HEX:
      return hex(data, size);
    default:
      break;
  }
  return owned_text(ldns_rdf2str(rdf));
}

Record decode_record(const ldns_rr* rr) {
  Record record;
  record.name = name_text(ldns_rr_owner(rr));
  record.type = static_cast<std::uint16_t>(ldns_rr_get_type(rr));
  record.ttl = ldns_rr_ttl(rr);
  for (std::size_t i = 0; i < ldns_rr_rd_count(rr); ++i) {
    const ldns_rdf* rdf = ldns_rr_rdf(rr, i);
    if (!rdf) continue;
    record.fields.push_back(field_text(rdf));
    if (!record.presentation.empty()) record.presentation += ' ';
    if (ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_DNAME) {
      const std::string& name = record.fields.back();
      record.presentation += name == "." ? name : name + ".";
    } else if (ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_A ||
               ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_AAAA ||
               ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_INT8 ||
               ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_INT16 ||
               ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_INT32) {
      record.presentation += record.fields.back();
    } else {
      record.presentation += owned_text(ldns_rdf2str(rdf));
    }
  }
  return record;
}

void decode_section(const ldns_rr_list* list, std::vector<Record>& out) {
  if (!list) return;
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(list, i);
    // OPT and other meta records carry no data for callers.
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_OPT) continue;
    out.push_back(decode_record(rr));
  }
}

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

}  // namespace

std::optional<std::uint16_t> type_from_name(std::string_view name) {
  std::string upper(name);
  for (char& c : upper)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  if (upper.empty()) return std::nullopt;
  ldns_rr_type type = ldns_get_rr_type_by_name(upper.c_str());
  if (type == 0) return std::nullopt;
  return static_cast<std::uint16_t>(type);
}

std::string type_name(std::uint16_t type) {
  return owned_text(ldns_rr_type2str(static_cast<ldns_rr_type>(type)));
}

std::string rcode_name(int rcode) {
  const ldns_lookup_table* entry = ldns_lookup_by_id(ldns_rcodes, rcode);
  if (entry && entry->name) return entry->name;
  return "RCODE" + std::to_string(rcode);
}

std::optional<std::string> canonical_name(std::string_view name, std::string& error) {
  if (name.empty()) {
    error = "empty domain name";
    return std::nullopt;
  }
  if (name == ".") return std::string(".");
  if (name.back() == '.') name.remove_suffix(1);
  if (name.size() > 253) {
    error = "domain name longer than 253 characters";
    return std::nullopt;
  }
  std::string out;
  out.reserve(name.size());
  std::size_t label = 0;
  for (char c : name) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '.') {
      if (label == 0) {
        error = "empty label in domain name '" + std::string(name) + "'";
        return std::nullopt;
      }
      label = 0;
    } else {
      if (byte <= ' ' || byte == 0x7f || c == '\\' || c == '"' || c == '(' || c == ')' ||
          c == ';') {
        error =
            "domain name '" + std::string(name) + "' holds a space, control or quoting character";
        return std::nullopt;
      }
      if (byte >= 0x80) {
        error =
            "domain name '" + std::string(name) + "' is not ASCII: give its A-label (xn--) form";
        return std::nullopt;
      }
      if (++label > 63) {
        error = "a label of domain name '" + std::string(name) + "' is longer than 63 characters";
        return std::nullopt;
      }
    }
    out.push_back(lower(c));
  }
  if (label == 0) {
    error = "empty label in domain name '" + std::string(name) + "'";
    return std::nullopt;
  }
  return out;
}

// Written here rather than by ldns (ldns_pkt_query_new, ldns_pkt2buffer_wire): a query is a
// fixed header, the name as labels, four bytes and an empty OPT record, and building the ldns
// packet for it cost 16,000 instructions a query, the resolver's largest single cost in the
// bulk profiles. The unit tests compare these bytes with ldns's for the same query.
std::string build_query(std::string_view name, std::uint16_t qtype, std::uint16_t id,
                        std::uint16_t udp_size, bool dnssec_ok, bool checking_disabled) {
  if (name == ".") name = {};
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  constexpr std::size_t header = 12, question_tail = 4, opt = 11, max_name = 255;
  std::string wire;
  wire.reserve(header + name.size() + 2 + question_tail + opt);
  auto put16 = [&wire](unsigned value) {
    wire.push_back(static_cast<char>((value >> 8) & 0xff));
    wire.push_back(static_cast<char>(value & 0xff));
  };
  put16(id);
  put16(checking_disabled ? 0x0130 : 0x0120);  // a query (QR clear, opcode QUERY), RD, AD (CD)
  put16(1);                                    // QDCOUNT
  put16(0);                                    // ANCOUNT
  put16(0);                                    // NSCOUNT
  put16(1);                                    // ARCOUNT: the OPT record
  while (!name.empty()) {
    std::size_t dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > 63) return {};
    wire.push_back(static_cast<char>(label.size()));
    wire.append(label);
    name = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
    if (dot != std::string_view::npos && name.empty()) return {};  // an empty last label
  }
  wire.push_back('\0');
  if (wire.size() - header > max_name) return {};
  put16(qtype);
  put16(LDNS_RR_CLASS_IN);
  // OPT (RFC 6891): the root name, type 41, the UDP payload size as its class, a zero TTL
  // (extended RCODE, version 0, the DO bit when asked) and no options.
  wire.push_back('\0');
  put16(LDNS_RR_TYPE_OPT);
  put16(udp_size);
  put16(0);
  put16(dnssec_ok ? 0x8000 : 0);
  put16(0);
  return wire;
}

namespace {

// Counts the TSIG records (type 250) of a message by walking its records without decoding
// them, up to where the walk runs off the end (ldns accepts a message whose additional section
// stops short). Why: when a message with a TSIG record turns out malformed further on, ldns
// 1.8's ldns_wire2pkt leaks what it had read (found by tests/fuzz/fuzz_dns_answer, reproducer
// tests/fuzz/corpus/dns/leak-tsig-then-malformed), so a hostile server could make us leak on
// every answer. A response to our unsigned query carries no TSIG at all: one is refused.
int count_tsig_records(std::string_view wire) {
  auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(wire[i]); };
  auto word = [&](std::size_t i) { return static_cast<std::size_t>((byte(i) << 8) | byte(i + 1)); };
  std::size_t at = 12;
  // A name: labels up to the root, or up to a compression pointer (two bytes).
  auto skip_name = [&]() -> bool {
    while (at < wire.size()) {
      std::uint8_t length = byte(at);
      if ((length & 0xc0) == 0xc0) {
        at += 2;
        return at <= wire.size();
      }
      at += 1 + length;
      if (length == 0) return at <= wire.size();
    }
    return false;
  };
  std::size_t questions = word(4);
  std::size_t records = word(6) + word(8) + word(10);
  for (std::size_t i = 0; i < questions; ++i) {
    if (!skip_name() || at + 4 > wire.size()) return 0;
    at += 4;
  }
  int tsig = 0;
  for (std::size_t i = 0; i < records; ++i) {
    if (!skip_name() || at + 10 > wire.size()) break;
    if (word(at) == 250) ++tsig;
    at += 10 + word(at + 8);
    if (at > wire.size()) break;
  }
  return tsig;
}

}  // namespace

Verdict parse_answer(std::string_view wire, std::uint16_t id, std::string_view name,
                     std::uint16_t qtype, Answer& answer) {
  answer = Answer{};
  // Before decoding anything: a datagram that is not a response with our ID is not ours.
  if (wire.size() < 12) return Verdict::unrelated;
  auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(wire[i]); };
  if (((byte(0) << 8) | byte(1)) != id || (byte(2) & 0x80) == 0) return Verdict::unrelated;
  if (count_tsig_records(wire) > 0) return Verdict::malformed;

  ldns_pkt* raw = nullptr;
  if (ldns_wire2pkt(&raw, reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()) !=
      LDNS_STATUS_OK)
    return Verdict::malformed;
  Owned<ldns_pkt> packet(raw);
  if (ldns_pkt_get_opcode(packet.get()) != LDNS_PACKET_QUERY) return Verdict::unrelated;

  const ldns_rr_list* question = ldns_pkt_question(packet.get());
  std::size_t questions = question ? ldns_rr_list_rr_count(question) : 0;
  int rcode = ldns_pkt_get_rcode(packet.get());
  if (questions == 0) {
    // Some servers leave the question out of a refusal; anything else must echo it.
    if (rcode == rcode::NOERROR || rcode == rcode::NXDOMAIN) return Verdict::unrelated;
  } else {
    const ldns_rr* q = ldns_rr_list_rr(question, 0);
    if (questions != 1 || ldns_rr_get_type(q) != qtype ||
        ldns_rr_get_class(q) != LDNS_RR_CLASS_IN || !same_name(name_text(ldns_rr_owner(q)), name))
      return Verdict::unrelated;
  }

  answer.rcode = rcode;
  answer.truncated = ldns_pkt_tc(packet.get());
  answer.authenticated = ldns_pkt_ad(packet.get());
  answer.authoritative = ldns_pkt_aa(packet.get());
  decode_section(ldns_pkt_answer(packet.get()), answer.answer);
  decode_section(ldns_pkt_authority(packet.get()), answer.authority);
  return Verdict::accepted;
}

std::vector<const Record*> records_for(const Answer& answer, std::string_view name,
                                       std::uint16_t qtype, std::string& canonical) {
  std::vector<const Record*> out;
  canonical.assign(name);
  for (int links = 0; links <= 16; ++links) {
    const Record* alias = nullptr;
    for (const Record& record : answer.answer) {
      if (!same_name(record.name, canonical)) continue;
      if (record.type == qtype || qtype == type::ANY)
        out.push_back(&record);
      else if (record.type == type::CNAME && !record.fields.empty())
        alias = &record;
    }
    if (!out.empty() || !alias || qtype == type::CNAME) break;
    canonical = alias->fields[0];
  }
  return out;
}

std::optional<std::uint32_t> negative_ttl(const Answer& answer) {
  for (const Record& record : answer.authority) {
    if (record.type != type::SOA || record.fields.size() < 7) continue;
    std::uint32_t minimum =
        static_cast<std::uint32_t>(std::strtoul(record.fields[6].c_str(), nullptr, 10));
    return std::min(record.ttl, minimum);
  }
  return std::nullopt;
}

}  // namespace smtpsh::dns
