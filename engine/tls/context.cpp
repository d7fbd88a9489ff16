#include "engine/tls/context.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <asio/ip/address.hpp>

#include <cerrno>
#include <deque>
#include <mutex>
#include <utility>

namespace smtpsh::tls {

namespace {
// The words for OpenSSL's last error. A system error (opening the CA file when out of
// descriptors, say) carries an errno, which becomes its text; `out_of_resources` tells whether
// it was EMFILE, ENFILE, ENOBUFS or ENOMEM.
std::string last_openssl_error(bool* out_of_resources = nullptr) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  if (ERR_SYSTEM_ERROR(code)) {
    int value = static_cast<int>(ERR_GET_REASON(code));
    if (out_of_resources)
      *out_of_resources = value == EMFILE || value == ENFILE || value == ENOBUFS || value == ENOMEM;
    return std::generic_category().message(value);
  }
  const char* reason = ERR_reason_error_string(code);
  return reason ? reason : "OpenSSL error " + std::to_string(code);
}
}  // namespace

namespace {

// Versions and the security level a context offers (both sides use the same rules).
void set_versions(SSL_CTX* ctx, Version min, Version max, const std::string& ciphers) {
  bool legacy = offers_legacy_versions(min, max);
  if (min == Version::any && legacy) min = Version::tls1;
  if (min != Version::any) SSL_CTX_set_min_proto_version(ctx, static_cast<int>(min));
  if (max != Version::any) SSL_CTX_set_max_proto_version(ctx, static_cast<int>(max));
  if (legacy) {
    if (ciphers.empty()) SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_security_level(ctx, 0);
  }
}

// A P-256 key and a self-signed certificate naming `name`, valid for a year from an hour ago.
bool use_self_signed(SSL_CTX* ctx, const std::string& name, std::string& error) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  bool ok = key && cert;
  if (ok) {
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600);
    X509_set_version(cert, 2);
    X509_set_pubkey(cert, key);
    X509_NAME* subject = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert, subject);
    std::error_code ec;
    asio::ip::make_address(name, ec);
    std::string san = (ec ? "DNS:" : "IP:") + name;
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* extension =
        X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
    ok = extension && X509_add_ext(cert, extension, -1) == 1;
    X509_EXTENSION_free(extension);
    ok = ok && X509_sign(cert, key, EVP_sha256()) > 0 && SSL_CTX_use_certificate(ctx, cert) == 1 &&
         SSL_CTX_use_PrivateKey(ctx, key) == 1;
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok)
    error = "cannot make a self-signed certificate for " + name + ": " + last_openssl_error();
  return ok;
}

}  // namespace

std::unique_ptr<asio::ssl::context> make_context(const Options& options, ContextError& error) {
  error = {};
  if (options.min != Version::any && options.max != Version::any && options.min > options.max) {
    error.message = "TLS min version " + std::string(version_option_name(options.min)) +
                    " is above max version " + std::string(version_option_name(options.max));
    return nullptr;
  }
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* ctx = context->native_handle();
  ERR_clear_error();
  if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, options.ciphers.c_str()) != 1) {
    error.message = "no TLS cipher matches '" + options.ciphers +
                    "' (OpenSSL cipher-list syntax, TLS 1.2 and below)";
    ERR_clear_error();
    return nullptr;
  }
  if (!options.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, options.ciphersuites.c_str()) != 1) {
    error.message = "no TLS 1.3 cipher suite matches '" + options.ciphersuites + "'";
    ERR_clear_error();
    return nullptr;
  }
  // After the cipher list: "@SECLEVEL=n" inside it would set the level again.
  set_versions(ctx, options.min, options.max, options.ciphers);
  if (!options.ca_file.empty() || !options.ca_path.empty()) {
    if (!options.ca_file.empty() &&
        SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
      std::string why = last_openssl_error(&error.out_of_resources);
      error.message = "cannot load CA certificates from '" + options.ca_file + "': " + why;
      return nullptr;
    }
    // A directory is only looked into during verification: a missing one fails there.
    if (!options.ca_path.empty() &&
        SSL_CTX_load_verify_locations(ctx, nullptr, options.ca_path.c_str()) != 1) {
      std::string why = last_openssl_error(&error.out_of_resources);
      error.message = "cannot use the CA directory '" + options.ca_path + "': " + why;
      return nullptr;
    }
  } else {
    // A missing system bundle is no error (verification then reports it), but running out of
    // descriptors while reading it is: the handshake would verify against an empty store.
    // OpenSSL queues no error for that: an empty store with errno saying so is the sign.
    errno = 0;
    SSL_CTX_set_default_verify_paths(ctx);
    int saved = errno;
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    bool empty = sk_X509_OBJECT_num(X509_STORE_get0_objects(store)) <= 0;
    if (empty && (saved == EMFILE || saved == ENFILE || saved == ENOMEM)) {
      error = {
          "cannot load the system's CA certificates: " + std::generic_category().message(saved),
          true};
      return nullptr;
    }
    ERR_clear_error();
  }
  // The result is always computed; only "peer" and "dane" fail the handshake on it.
  SSL_CTX_set_verify(ctx, options.verify == Verify::none ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                     nullptr);
  if (!options.tlsa.empty() && SSL_CTX_dane_enable(ctx) <= 0) {
    error.message = "this OpenSSL cannot do DANE: " + last_openssl_error();
    return nullptr;
  }
  ERR_clear_error();
  return context;
}

namespace {

// What makes two client contexts the same: everything make_context reads from the options.
std::string context_key(const Options& options) {
  std::string key;
  key += std::to_string(static_cast<int>(options.min)) + '/';
  key += std::to_string(static_cast<int>(options.max)) + '/';
  key += std::to_string(static_cast<int>(options.verify)) + '/';
  key += options.tlsa.empty() ? "-/" : "dane/";
  key += std::to_string(options.ciphers.size()) + ':' + options.ciphers;
  key += std::to_string(options.ciphersuites.size()) + ':' + options.ciphersuites;
  key += std::to_string(options.ca_file.size()) + ':' + options.ca_file;
  key += std::to_string(options.ca_path.size()) + ':' + options.ca_path;
  return key;
}

struct ContextCache {
  static constexpr std::size_t most = 32;
  std::mutex mutex;
  std::deque<std::pair<std::string, std::shared_ptr<asio::ssl::context>>> entries;
};

ContextCache& context_cache() {
  static ContextCache cache;
  return cache;
}

// The context cached under `key`, or the one `make` returns (then cached; nullptr is not).
template <typename Make>
std::shared_ptr<asio::ssl::context> cached_context(std::string key, Make make) {
  ContextCache& cache = context_cache();
  {
    std::lock_guard lock(cache.mutex);
    for (const auto& [known, context] : cache.entries)
      if (known == key) return context;
  }
  // Made outside the lock: loading a trust store or making a key is slow. Two threads may both
  // make one; the second simply finds the first's entry next time.
  std::shared_ptr<asio::ssl::context> context = make();
  if (!context) return nullptr;
  std::lock_guard lock(cache.mutex);
  if (cache.entries.size() == ContextCache::most) cache.entries.pop_front();
  cache.entries.emplace_back(std::move(key), context);
  return context;
}

std::string server_context_key(const ServerOptions& options) {
  std::string key = "server/";
  key += std::to_string(static_cast<int>(options.min)) + '/';
  key += std::to_string(static_cast<int>(options.max)) + '/';
  key += std::to_string(options.ciphers.size()) + ':' + options.ciphers;
  key += std::to_string(options.cert_file.size()) + ':' + options.cert_file;
  key += std::to_string(options.key_file.size()) + ':' + options.key_file;
  key += options.self_signed;
  return key;
}

}  // namespace

std::shared_ptr<asio::ssl::context> shared_context(const Options& options, ContextError& error) {
  return cached_context("client/" + context_key(options),
                        [&] { return make_context(options, error); });
}

std::shared_ptr<asio::ssl::context> shared_server_context(const ServerOptions& options,
                                                          ContextError& error) {
  return cached_context(server_context_key(options), [&] {
    return std::shared_ptr<asio::ssl::context>(make_server_context(options, error.message));
  });
}

std::unique_ptr<asio::ssl::context> make_server_context(const ServerOptions& options,
                                                        std::string& error) {
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  ERR_clear_error();
  if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, options.ciphers.c_str()) != 1) {
    error = "no TLS cipher matches '" + options.ciphers + "'";
    return nullptr;
  }
  set_versions(ctx, options.min, options.max, options.ciphers);
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1) {
      error = "cannot load the certificate '" + options.cert_file + "': " + last_openssl_error();
      return nullptr;
    }
    const std::string& key = options.key_file.empty() ? options.cert_file : options.key_file;
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      error = "cannot use the key '" + key + "': " + last_openssl_error();
      return nullptr;
    }
  } else if (!use_self_signed(ctx, options.self_signed.empty() ? "localhost" : options.self_signed,
                              error)) {
    return nullptr;
  }
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
      // RFC 7672 section 3.1.3: PKIX-TA(0) and PKIX-EE(1) records are unusable for SMTP.
      if (record.usage < 2) continue;
      int added = SSL_dane_tlsa_add(ssl, record.usage, record.selector, record.matching_type,
                                    reinterpret_cast<const unsigned char*>(record.data.data()),
                                    record.data.size());
      if (added > 0) ++usable;
    }
    ERR_clear_error();
    if (usable == 0 && options.verify == Verify::dane) {
      error = "none of the " + std::to_string(options.tlsa.size()) +
              " TLSA records is usable (an unknown usage, selector or matching type, or a PKIX "
              "usage 0 or 1, which SMTP does not use: RFC 7672 section 3.1.3)";
      return false;
    }
  }
  return true;
}

}  // namespace smtpsh::tls
