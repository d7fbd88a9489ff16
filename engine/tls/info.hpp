#pragma once
// What a finished handshake agreed on and what the peer presented, as plain values.

#include "engine/tls/options.hpp"

#include <openssl/ssl.h>

#include <string>
#include <vector>

namespace smtpsh::tls {

struct Certificate {
  std::string subject;  // RFC 2253 form: "CN=mx1.example.test,O=Example"
  std::string issuer;
  std::vector<std::string> names;     // subjectAltName DNS names and addresses
  std::string not_before, not_after;  // "2026-01-31T12:00:00Z"
  long days_left = 0;                 // until not_after, negative once expired
  std::string sha256;                 // fingerprint of the DER, "AB:CD:..."
  std::string spki_sha256;  // SHA-256 of the public key (what TLSA 3 1 1 holds), lower-case hex
  std::string key;          // "RSA 2048", "EC 256"
  std::string serial;
};

struct Info {
  std::string version;  // "TLSv1.3", as OpenSSL names it
  std::string cipher;
  std::string group;               // key exchange group, "X25519", when known
  std::vector<Certificate> chain;  // as the peer sent it, leaf first
  bool verified = false;           // chain and name verified
  long verify_code = 0;
  std::string verify_result;  // "ok", "certificate has expired", ...
  bool name_checked = false;  // a name (sni) was given to check
  bool name_matches = false;  // the leaf certificate names it
  std::string checked_name;
  // DANE, when TLSA records were given.
  bool dane = false;
  bool dane_matched = false;
  int dane_depth = -1;      // the chain depth the matching record applied to
  std::string dane_record;  // "3 1 1 <hex>"
  bool dnssec = false;
};

// Reads the result of a completed handshake on `ssl`.
Info describe(SSL* ssl, const Options& options);

}  // namespace smtpsh::tls
