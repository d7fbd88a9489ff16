// engine/tls/options: version names as users and OpenSSL write them, and which bounds offer
// the legacy versions (TLS 1.0 and 1.1) that need security level 0.
#include "engine/tls/options.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace smtpsh;
using tls::Version;

TEST_CASE("version names parse in either spelling, without regard to case") {
  CHECK(tls::parse_version("tls1") == Version::tls1);
  CHECK(tls::parse_version("tls1.0") == Version::tls1);
  CHECK(tls::parse_version("TLSv1") == Version::tls1);
  CHECK(tls::parse_version("tls1.1") == Version::tls1_1);
  CHECK(tls::parse_version("TLSv1.1") == Version::tls1_1);
  CHECK(tls::parse_version("tls1.2") == Version::tls1_2);
  CHECK(tls::parse_version("TLSv1.2") == Version::tls1_2);
  CHECK(tls::parse_version("tlsv1.2") == Version::tls1_2);
  CHECK(tls::parse_version("TLS1.2") == Version::tls1_2);
  CHECK(tls::parse_version("tls1.3") == Version::tls1_3);
  CHECK(tls::parse_version("TLSv1.3") == Version::tls1_3);
  CHECK(tls::parse_version("Tls1.3") == Version::tls1_3);

  // The enum carries OpenSSL's own numbers (TLS1_VERSION ...).
  CHECK(static_cast<int>(Version::tls1) == 0x0301);
  CHECK(static_cast<int>(Version::tls1_3) == 0x0304);
}

TEST_CASE("anything else is not a version") {
  for (const char* name : {"", "tls", "tls1.4", "tls2", "ssl3", "sslv3", "SSLv2", "1.2", "tls 1.2",
                           "tls1.2 ", " tls1.2", "tls1.2.0", "tls12", "any", "dtls1.2"}) {
    CAPTURE(std::string(name));
    CHECK_FALSE(tls::parse_version(name).has_value());
  }
}

TEST_CASE("option names are the short spelling, and round-trip") {
  CHECK(tls::version_option_name(Version::tls1) == "tls1");
  CHECK(tls::version_option_name(Version::tls1_1) == "tls1.1");
  CHECK(tls::version_option_name(Version::tls1_2) == "tls1.2");
  CHECK(tls::version_option_name(Version::tls1_3) == "tls1.3");
  CHECK(tls::version_option_name(Version::any) == "any");
  for (Version v : {Version::tls1, Version::tls1_1, Version::tls1_2, Version::tls1_3})
    CHECK(tls::parse_version(tls::version_option_name(v)) == v);
}

TEST_CASE("legacy versions are offered only when a bound reaches below TLS 1.2") {
  // Without bounds, the system's defaults hold (TLS 1.2 and up).
  CHECK_FALSE(tls::offers_legacy_versions(Version::any, Version::any));
  // A minimum below 1.2 offers them, whatever the maximum.
  CHECK(tls::offers_legacy_versions(Version::tls1, Version::any));
  CHECK(tls::offers_legacy_versions(Version::tls1_1, Version::any));
  CHECK(tls::offers_legacy_versions(Version::tls1, Version::tls1));
  CHECK(tls::offers_legacy_versions(Version::tls1, Version::tls1_1));
  CHECK(tls::offers_legacy_versions(Version::tls1, Version::tls1_2));
  CHECK(tls::offers_legacy_versions(Version::tls1, Version::tls1_3));
  CHECK(tls::offers_legacy_versions(Version::tls1_1, Version::tls1_1));
  CHECK(tls::offers_legacy_versions(Version::tls1_1, Version::tls1_3));
  // A maximum below 1.2 too, with or without a minimum.
  CHECK(tls::offers_legacy_versions(Version::any, Version::tls1));
  CHECK(tls::offers_legacy_versions(Version::any, Version::tls1_1));
  // Bounds at 1.2 and above do not.
  CHECK_FALSE(tls::offers_legacy_versions(Version::tls1_2, Version::any));
  CHECK_FALSE(tls::offers_legacy_versions(Version::tls1_3, Version::any));
  CHECK_FALSE(tls::offers_legacy_versions(Version::any, Version::tls1_2));
  CHECK_FALSE(tls::offers_legacy_versions(Version::any, Version::tls1_3));
  CHECK_FALSE(tls::offers_legacy_versions(Version::tls1_2, Version::tls1_2));
  CHECK_FALSE(tls::offers_legacy_versions(Version::tls1_2, Version::tls1_3));
  CHECK_FALSE(tls::offers_legacy_versions(Version::tls1_3, Version::tls1_3));

  // The Options overload reads the same two fields.
  tls::Options options;
  CHECK_FALSE(tls::offers_legacy_versions(options));
  options.max = Version::tls1_1;
  CHECK(tls::offers_legacy_versions(options));
  options.max = Version::tls1_3;
  options.min = Version::tls1_2;
  CHECK_FALSE(tls::offers_legacy_versions(options));
  options.min = Version::tls1;
  CHECK(tls::offers_legacy_versions(options));
}
