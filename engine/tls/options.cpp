#include "engine/tls/options.hpp"

#include <algorithm>
#include <cctype>

namespace smtpsh::tls {

std::optional<Version> parse_version(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "tls1" || lower == "tls1.0" || lower == "tlsv1") return Version::tls1;
  if (lower == "tls1.1" || lower == "tlsv1.1") return Version::tls1_1;
  if (lower == "tls1.2" || lower == "tlsv1.2") return Version::tls1_2;
  if (lower == "tls1.3" || lower == "tlsv1.3") return Version::tls1_3;
  return std::nullopt;
}

std::string_view version_option_name(Version version) {
  switch (version) {
    case Version::tls1:
      return "tls1";
    case Version::tls1_1:
      return "tls1.1";
    case Version::tls1_2:
      return "tls1.2";
    case Version::tls1_3:
      return "tls1.3";
    case Version::any:
      break;
  }
  return "any";
}

bool offers_legacy_versions(Version min, Version max) {
  // Without a bound the system's defaults hold (Debian: TLS 1.2 and up), as for a modern sender.
  return (min != Version::any && min < Version::tls1_2) ||
         (max != Version::any && max < Version::tls1_2);
}

bool offers_legacy_versions(const Options& options) {
  return offers_legacy_versions(options.min, options.max);
}

}  // namespace smtpsh::tls
