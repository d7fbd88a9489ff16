#include "engine/tls/context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <asio/ip/address.hpp>

namespace smtpsh::tls {

namespace {
std::string last_openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  const char* reason = ERR_reason_error_string(code);
  return reason ? reason : "OpenSSL error " + std::to_string(code);
}
}  // namespace

std::unique_ptr<asio::ssl::context> make_context(const Options& options, std::string& error) {
  if (options.min != Version::any && options.max != Version::any && options.min > options.max) {
    error = "TLS min version " + std::string(version_option_name(options.min)) +
            " is above max version " + std::string(version_option_name(options.max));
    return nullptr;
  }
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* ctx = context->native_handle();
  ERR_clear_error();
  bool legacy = offers_legacy_versions(options);
  Version min = options.min;
  if (min == Version::any && legacy) min = Version::tls1;  // "max = tls1.1" alone
  if (min != Version::any) SSL_CTX_set_min_proto_version(ctx, static_cast<int>(min));
  if (options.max != Version::any) SSL_CTX_set_max_proto_version(ctx, static_cast<int>(options.max));
  if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, options.ciphers.c_str()) != 1) {
    error = "no TLS cipher matches '" + options.ciphers + "' (OpenSSL cipher-list syntax, TLS 1.2 and below)";
    ERR_clear_error();
    return nullptr;
  }
  if (!options.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, options.ciphersuites.c_str()) != 1) {
    error = "no TLS 1.3 cipher suite matches '" + options.ciphersuites + "'";
    ERR_clear_error();
    return nullptr;
  }
  // After the cipher list: "@SECLEVEL=n" inside it would set the level again.
  if (legacy) {
    if (options.ciphers.empty()) SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_security_level(ctx, 0);
  }
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
      error = "cannot load CA certificates from '" + options.ca_file + "': " + last_openssl_error();
      return nullptr;
    }
  } else {
    SSL_CTX_set_default_verify_paths(ctx);
  }
  // The result is always computed; only "peer" and "dane" fail the handshake on it.
  SSL_CTX_set_verify(ctx, options.verify == Verify::none ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                     nullptr);
  if (!options.tlsa.empty() && SSL_CTX_dane_enable(ctx) <= 0) {
    error = "this OpenSSL cannot do DANE: " + last_openssl_error();
    return nullptr;
  }
  ERR_clear_error();
  return context;
}

bool prepare_ssl(SSL* ssl, const Options& options, std::string& error) {
  ERR_clear_error();
  if (!options.sni.empty()) {
    std::error_code ec;
    asio::ip::make_address(options.sni, ec);
    if (ec) {
      SSL_set_tlsext_host_name(ssl, options.sni.c_str());
      SSL_set1_host(ssl, options.sni.c_str());
      // A certificate for *.example.com must not match a.b.example.com.
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    } else {
      // An address is never sent as SNI (RFC 6066 section 3); it is checked against IP SANs.
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), options.sni.c_str());
    }
  }
  if (!options.tlsa.empty()) {
    // The base domain is a name to check for DANE-TA records; an address is not one.
    std::error_code ec;
    bool named = !options.sni.empty();
    if (named) {
      asio::ip::make_address(options.sni, ec);
      named = static_cast<bool>(ec);
    }
    if (SSL_dane_enable(ssl, named ? options.sni.c_str() : nullptr) <= 0) {
      error = "cannot enable DANE: " + last_openssl_error();
      return false;
    }
    // RFC 7672 section 3.1.1: a DANE-EE(3) record binds the key itself; no name is checked.
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    int usable = 0;
    for (const Tlsa& record : options.tlsa) {
      int added = SSL_dane_tlsa_add(ssl, record.usage, record.selector, record.matching_type,
                                    reinterpret_cast<const unsigned char*>(record.data.data()),
                                    record.data.size());
      if (added > 0) ++usable;
    }
    ERR_clear_error();
    if (usable == 0 && options.verify == Verify::dane) {
      error = "none of the " + std::to_string(options.tlsa.size()) +
              " TLSA records is usable (unknown usage, selector or matching type)";
      return false;
    }
  }
  return true;
}

}  // namespace smtpsh::tls
