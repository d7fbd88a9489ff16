#pragma once
// What a TLS handshake may offer and what it must check (README.md, "Lua API").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::tls {

// Protocol versions by their OpenSSL numbers (TLS1_VERSION ...); 0 means "no bound".
enum class Version : int {
  any = 0,
  tls1 = 0x0301,
  tls1_1 = 0x0302,
  tls1_2 = 0x0303,
  tls1_3 = 0x0304
};

// "tls1", "tls1.1", "tls1.2", "tls1.3" (also "TLSv1.2" as OpenSSL names them).
std::optional<Version> parse_version(std::string_view name);
std::string_view version_option_name(Version version);  // "tls1.2"

enum class Verify : std::uint8_t {
  none,  // complete the handshake whatever the certificate; report the verification result
  peer,  // the chain must verify (system CAs or ca_file) and name the host
  dane,  // TLSA records (RFC 6698/7672) must match
};

struct Tlsa {
  std::uint8_t usage = 0, selector = 0, matching_type = 0;
  std::string data;  // the association data, as bytes
};

struct Options {
  Version min = Version::any;
  Version max = Version::any;
  std::string ciphers;       // TLS 1.2 and below, OpenSSL cipher-list syntax
  std::string ciphersuites;  // TLS 1.3
  std::string sni;           // the name sent and checked; empty for none (an address target)
  Verify verify = Verify::none;
  std::string ca_file;     // instead of the system CAs
  std::string ca_path;     // a hashed directory of CAs (c_rehash), instead of or beside ca_file
  std::vector<Tlsa> tlsa;  // for verify == dane (also checked and reported when given with none)
  bool dnssec = false;     // whether the TLSA records came with the AD bit
};

// The scenario server's side: a certificate (files, or one made up on the spot for a name),
// and the versions it accepts.
struct ServerOptions {
  std::string cert_file;  // PEM, the chain leaf first
  std::string key_file;
  std::string self_signed;  // without files: a fresh self-signed certificate for this name
  Version min = Version::any;
  Version max = Version::any;
  std::string ciphers;
};

// The old versions need security level 0 on Debian's OpenSSL, or it agrees on them and then
// fails with "legacy sigalg disallowed", which looks like a server fault but is ours.
bool offers_legacy_versions(const Options& options);
bool offers_legacy_versions(Version min, Version max);

}  // namespace smtpsh::tls
