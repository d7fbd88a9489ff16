#include "engine/tls/info.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <asio/ip/address.hpp>

#include <cstdio>
#include <ctime>
#include <memory>

namespace smtpsh::tls {

namespace {

std::string name_text(const X509_NAME* name) {
  if (!name) return {};
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio) return {};
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

std::string time_text(const ASN1_TIME* time) {
  std::tm tm{};
  if (!time || ASN1_TIME_to_tm(time, &tm) != 1) return {};
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return text;
}

std::string hex(const unsigned char* data, std::size_t size, bool colons) {
  static constexpr char upper[] = "0123456789ABCDEF";
  static constexpr char lower[] = "0123456789abcdef";
  const char* digits = colons ? upper : lower;
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    if (colons && i > 0) out.push_back(':');
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 15]);
  }
  return out;
}

std::vector<std::string> alt_names(X509* cert) {
  std::vector<std::string> names;
  auto* general =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!general) return names;
  for (int i = 0; i < sk_GENERAL_NAME_num(general); ++i) {
    const GENERAL_NAME* entry = sk_GENERAL_NAME_value(general, i);
    if (entry->type == GEN_DNS) {
      const ASN1_IA5STRING* dns = entry->d.dNSName;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                         static_cast<std::size_t>(ASN1_STRING_length(dns)));
    } else if (entry->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = entry->d.iPAddress;
      char text[64] = {};
      const unsigned char* bytes = ASN1_STRING_get0_data(ip);
      if (ASN1_STRING_length(ip) == 4) {
        std::snprintf(text, sizeof text, "%u.%u.%u.%u", bytes[0], bytes[1], bytes[2], bytes[3]);
      } else if (ASN1_STRING_length(ip) == 16) {
        std::string out;
        for (int j = 0; j < 16; j += 2) {
          char part[8];
          std::snprintf(part, sizeof part, "%s%x", j ? ":" : "", (bytes[j] << 8) | bytes[j + 1]);
          out += part;
        }
        std::snprintf(text, sizeof text, "%s", out.c_str());
      }
      names.emplace_back(text);
    }
  }
  GENERAL_NAMES_free(general);
  return names;
}

Certificate certificate_of(X509* cert) {
  Certificate out;
  out.subject = name_text(X509_get_subject_name(cert));
  out.issuer = name_text(X509_get_issuer_name(cert));
  out.names = alt_names(cert);
  out.not_before = time_text(X509_get0_notBefore(cert));
  out.not_after = time_text(X509_get0_notAfter(cert));
  int days = 0, seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert)) == 1)
    out.days_left = days - (seconds < 0 && days == 0 ? 1 : 0);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &size) == 1) out.sha256 = hex(digest, size, true);
  // TLSA 3 1 1 hashes the DER SubjectPublicKeyInfo (X509_pubkey_digest hashes the key bits only).
  unsigned char* spki = nullptr;
  int spki_size = i2d_PUBKEY(X509_get0_pubkey(cert), &spki);
  if (spki_size > 0) {
    if (EVP_Digest(spki, static_cast<std::size_t>(spki_size), digest, &size, EVP_sha256(),
                   nullptr) == 1)
      out.spki_sha256 = hex(digest, size, false);
    OPENSSL_free(spki);
  }
  if (EVP_PKEY* key = X509_get0_pubkey(cert)) {
    const char* type = EVP_PKEY_get0_type_name(key);
    out.key = std::string(type ? type : "key") + " " + std::to_string(EVP_PKEY_get_bits(key));
  }
  if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* text = BN_bn2hex(serial)) {
      out.serial = text;
      OPENSSL_free(text);
    }
    BN_free(serial);
  }
  return out;
}

std::string group_of(SSL* ssl) {
  int nid = SSL_get_negotiated_group(ssl);
  if (nid != 0 && nid != NID_undef) {
    if (const char* name = SSL_group_to_name(ssl, nid)) return name;
    if (const char* name = OBJ_nid2sn(nid)) return name;
  }
  EVP_PKEY* key = nullptr;
  if (SSL_get_peer_tmp_key(ssl, &key) == 1 && key) {
    std::string name;
    char group[80] = {};
    std::size_t length = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof group, &length) == 1)
      name = group;
    else if (const char* type = EVP_PKEY_get0_type_name(key))
      name = type;
    EVP_PKEY_free(key);
    return name;
  }
  return {};
}

}  // namespace

Info describe(SSL* ssl, const Options& options) {
  Info info;
  info.version = SSL_get_version(ssl);
  if (const char* cipher = SSL_get_cipher_name(ssl)) info.cipher = cipher;
  info.group = group_of(ssl);
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl)) {
    for (int i = 0; i < sk_X509_num(chain); ++i)
      info.chain.push_back(certificate_of(sk_X509_value(chain, i)));
  }
  info.verify_code = SSL_get_verify_result(ssl);
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (!leaf) {
    info.verify_result = "the server sent no certificate";
  } else {
    info.verify_result =
        info.verify_code == X509_V_OK ? "ok" : X509_verify_cert_error_string(info.verify_code);
  }
  if (!options.sni.empty() && leaf) {
    info.name_checked = true;
    info.checked_name = options.sni;
    std::error_code ec;
    asio::ip::make_address(options.sni, ec);
    info.name_matches = ec ? X509_check_host(leaf, options.sni.c_str(), options.sni.size(),
                                             X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1
                           : X509_check_ip_asc(leaf, options.sni.c_str(), 0) == 1;
  }
  info.verified = leaf && info.verify_code == X509_V_OK;
  if (!options.tlsa.empty()) {
    info.dane = true;
    info.dnssec = options.dnssec;
    EVP_PKEY* spki = nullptr;
    X509* matched_cert = nullptr;
    info.dane_depth = SSL_get0_dane_authority(ssl, &matched_cert, &spki);
    info.dane_matched = info.dane_depth >= 0;
    std::uint8_t usage = 0, selector = 0, mtype = 0;
    const unsigned char* data = nullptr;
    std::size_t size = 0;
    if (info.dane_matched && SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &size) >= 0)
      info.dane_record = std::to_string(usage) + " " + std::to_string(selector) + " " +
                         std::to_string(mtype) + " " + hex(data, size, false);
  }
  return info;
}

}  // namespace smtpsh::tls
