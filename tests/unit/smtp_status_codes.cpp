#include "engine/smtp/status_codes.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace smtpsh::smtp;

namespace {

Severity severity_of_class(int first_digit) {
  switch (first_digit) {
    case 2:
      return Severity::positive;
    case 3:
      return Severity::intermediate;
    case 4:
      return Severity::transient;
    default:
      return Severity::permanent;
  }
}

std::string meaning(std::string_view enhanced) {
  auto described = describe_enhanced(enhanced);
  INFO(enhanced);
  REQUIRE(described.has_value());
  return std::string(described->meaning);
}

}  // namespace

TEST_CASE("every reply code of RFC 5321 and RFC 4954 has a meaning and its class's severity") {
  const int known[] = {211, 214, 220, 221, 235, 250, 251, 252, 334, 354, 421,
                       432, 450, 451, 452, 454, 455, 500, 501, 502, 503, 504,
                       521, 530, 534, 535, 538, 550, 551, 552, 553, 554, 555};
  std::set<std::string_view> meanings;
  for (int code : known) {
    CAPTURE(code);
    auto described = describe_reply_code(code);
    REQUIRE(described.has_value());
    CHECK_FALSE(described->meaning.empty());
    CHECK(described->severity == severity_of_class(code / 100));
    meanings.insert(described->meaning);
  }
  // No code borrows another's text.
  CHECK(meanings.size() == std::size(known));
}

TEST_CASE("reply code meanings") {
  CHECK(describe_reply_code(421).value().meaning ==
        "service not available, closing transmission channel");
  CHECK(describe_reply_code(250).value().meaning == "requested mail action okay, completed");
  CHECK(describe_reply_code(354).value().severity == Severity::intermediate);
  CHECK(describe_reply_code(334).value().severity == Severity::intermediate);
  CHECK(describe_reply_code(535).value().meaning == "authentication credentials invalid");
  CHECK(describe_reply_code(221).value().severity == Severity::positive);
  CHECK(describe_reply_code(450).value().severity == Severity::transient);
  CHECK(describe_reply_code(554).value().severity == Severity::permanent);
}

TEST_CASE("unknown reply codes have no meaning") {
  for (int code : {0, -250, 199, 200, 226, 299, 300, 399, 400, 499, 556, 599, 600, 999, 2500}) {
    CAPTURE(code);
    CHECK_FALSE(describe_reply_code(code).has_value());
  }
}

TEST_CASE("enhanced codes: meanings and severity from the class") {
  CHECK(meaning("4.4.2") == "bad connection");
  CHECK(meaning("4.7.1") == "delivery not authorized, message refused (greylisting or policy)");
  CHECK(meaning("5.7.1") == meaning("4.7.1"));
  CHECK(meaning("5.1.1") == "bad destination mailbox address");
  CHECK(meaning("2.0.0") == "other undefined status");
  CHECK(meaning("5.2.2") == "mailbox full");
  CHECK(meaning("5.5.6") == "authentication exchange line is too long");
  CHECK(meaning("5.6.7") == "non-ASCII addresses not permitted for that sender/recipient");
  CHECK(meaning("5.7.8") == "authentication credentials invalid");
  CHECK(meaning("5.7.26") == "multiple authentication checks failed");
  CHECK(meaning("4.7.28") == "mail flood detected");
  CHECK(meaning("5.7.30") == "REQUIRETLS support required");
  CHECK(meaning("5.1.10") == "recipient address has null MX");

  CHECK(describe_enhanced("2.1.5").value().severity == Severity::positive);
  CHECK(describe_enhanced("4.2.2").value().severity == Severity::transient);
  CHECK(describe_enhanced("5.2.2").value().severity == Severity::permanent);
}

TEST_CASE("every registered subject.detail has a meaning of its own") {
  struct Range {
    int subject;
    int last_detail;
  };
  const Range ranges[] = {{0, 0}, {1, 10}, {2, 4}, {3, 6}, {4, 7}, {5, 6}, {6, 10}, {7, 30}};
  std::set<std::string> seen;
  int count = 0;
  for (const auto& range : ranges) {
    std::string generic = meaning("5." + std::to_string(range.subject) + ".0");
    for (int detail = 0; detail <= range.last_detail; ++detail) {
      std::string code = "5." + std::to_string(range.subject) + "." + std::to_string(detail);
      CAPTURE(code);
      std::string text = meaning(code);
      CHECK_FALSE(text.empty());
      // A registered detail is not the subject's fallback text.
      if (detail > 0) CHECK(text != generic);
      seen.insert(text);
      ++count;
    }
  }
  CHECK(count == 81);
  // X.6.10 is the registry's deprecated duplicate of X.6.8, the only shared wording.
  CHECK(seen.size() == static_cast<std::size_t>(count));
  CHECK(meaning("5.6.10").starts_with(meaning("5.6.8")));
}

TEST_CASE("unknown details fall back to their subject, unknown subjects to X.0.0") {
  CHECK(meaning("4.4.99") == "other or undefined network or routing status");
  CHECK(meaning("4.4.99") == meaning("4.4.0"));
  CHECK(meaning("5.1.11") == "other address status");
  CHECK(meaning("5.2.5") == meaning("5.2.0"));
  CHECK(meaning("5.7.31") == "other or undefined security status");
  CHECK(meaning("5.7.999") == meaning("5.7.0"));
  CHECK(meaning("5.8.1") == "other undefined status");
  CHECK(meaning("4.999.999") == meaning("4.0.0"));
  CHECK(describe_enhanced("4.4.99").value().severity == Severity::transient);
  // Leading zeros are digits like any other.
  CHECK(meaning("4.04.002") == "bad connection");
}

TEST_CASE("malformed enhanced codes have no meaning") {
  for (const char* text :
       {"",       "4",      "4.",     "4.4",     "4.4.",     "4..2",     "4.4..2",
        ".4.2",   "3.4.2",  "1.4.2",  "6.4.2",   "0.0.0",    "x.4.2",    "44.2.1",
        "4.4.2 ", " 4.4.2", "4.4.2x", "4.4.2.1", "4.1000.1", "4.1.1000", "4.-1.2",
        "4.4.-2", "4.a.2",  "4:4:2",  "421"}) {
    CAPTURE(text);
    CHECK_FALSE(describe_enhanced(text).has_value());
  }
}
