// engine/tls/context and engine/tls/info: contexts refused in words for options that cannot be
// honoured, and real handshakes over loopback between two net::Connection objects (the server
// side accepted by server::Listener), read back through tls_info(). Certificates are either
// made by the code under test (self_signed) or by the openssl command, which also computes the
// fingerprints the test expects, independently of info.cpp.
#include "engine/net/connection.hpp"
#include "engine/server/listener.hpp"
#include "engine/tls/context.hpp"
#include "engine/tls/info.hpp"
#include "tests/support/connection_steps.hpp"
#include "tests/support/operation.hpp"
#include "tests/support/subprocess.hpp"

#include <doctest/doctest.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

using namespace smtpsh;
using namespace std::chrono_literals;

namespace {

using Op = test::Operation;
using test::read_line;
using test::send;
using test::wait;

// A fresh directory under the system's temp directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "smtpsh-tls-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::string openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = test::run(argv, "", 20s);
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  return result.out;
}

// An EC P-256 key and a self-signed certificate for `name` (CN and DNS SAN), made by openssl.
struct CertFiles {
  std::string cert, key;
};
CertFiles make_cert(const TempDir& dir, const std::string& name) {
  CertFiles files{dir.file(name + ".crt"), dir.file(name + ".key")};
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", files.key, "-out", files.cert, "-days", "30", "-subj", "/CN=" + name,
           "-addext", "subjectAltName=DNS:" + name});
  return files;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// The hex digest at the end of openssl's "... = ab12..." or "SHA256 Fingerprint=AB:12:..." output.
std::string after_equals(const std::string& output) {
  auto at = output.rfind('=');
  REQUIRE(at != std::string::npos);
  std::string value = output.substr(at + 1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
    value.pop_back();
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())))
    value.erase(value.begin());
  return value;
}

std::string unhex(const std::string& hex) {
  REQUIRE(hex.size() % 2 == 0);
  std::string bytes;
  for (std::size_t i = 0; i < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

bool is_lower_hex(const std::string& text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The server side: a listener on 127.0.0.1 whose one accepted connection either handshakes
// with `options` or first sends `plain` (and then does nothing more).
struct Server {
  tls::ServerOptions options;
  std::string plain;
  std::shared_ptr<server::Listener> listener;
  std::shared_ptr<net::Connection> conn;
  Op done;  // the handshake (or the plain send) finished

  Server(engine::Loop& loop, tls::ServerOptions server_options, std::string plain_text = {})
      : options(std::move(server_options)), plain(std::move(plain_text)) {
    std::string error;
    listener = server::Listener::open(loop.io(), "127.0.0.1", 0, error);
    INFO(error);
    REQUIRE(listener != nullptr);
    listener->start(&Server::on_accept, this);
  }
  ~Server() {
    if (conn) conn->detach();
    listener->close();
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  static void on_accept(void* self_pointer, std::shared_ptr<net::Connection> connection) {
    auto* self = static_cast<Server*>(self_pointer);
    if (self->conn) return;  // one connection per test server
    self->conn = std::move(connection);
    self->conn->set_timeout(5s);
    if (!self->plain.empty())
      self->conn->send(self->plain, &Op::notify, &self->done);
    else
      self->conn->accept_tls(self->options, &Op::notify, &self->done);
  }
};

// Connects to `server` and runs the client side of the handshake; waits for both sides.
std::shared_ptr<net::Connection> handshake(engine::Loop& loop, Server& server,
                                           const tls::Options& options) {
  auto client = test::connect_loopback(loop, server.listener->port());
  Op op;
  client->start_tls(options, &Op::notify, &op);
  CHECK_FALSE(op.done);  // never completes inside the call that started it
  wait(loop, op);
  wait(loop, server.done);  // the server side ends too, one way or the other
  return client;
}

tls::ServerOptions self_signed(std::string name = "mx.test") {
  tls::ServerOptions options;
  options.self_signed = std::move(name);
  return options;
}

tls::Options client_options(tls::Verify verify = tls::Verify::none) {
  tls::Options options;
  options.sni = "mx.test";
  options.verify = verify;
  return options;
}

}  // namespace

TEST_CASE("client contexts: options that cannot be honoured are refused in words") {
  tls::ContextError error;
  tls::Options options;
  options.min = tls::Version::tls1_3;
  options.max = tls::Version::tls1_2;
  CHECK(tls::make_context(options, error) == nullptr);
  CHECK(error.message == "TLS min version tls1.3 is above max version tls1.2");

  // min == max is fine, and so is a bound on one side only.
  error = {};
  options.min = options.max = tls::Version::tls1_2;
  CHECK(tls::make_context(options, error) != nullptr);
  CHECK(error.message.empty());
  options.min = tls::Version::tls1_3;
  options.max = tls::Version::any;
  CHECK(tls::make_context(options, error) != nullptr);

  options = {};
  options.ciphers = "NO-SUCH-CIPHER";
  CHECK(tls::make_context(options, error) == nullptr);
  CHECK(error.message ==
        "no TLS cipher matches 'NO-SUCH-CIPHER' (OpenSSL cipher-list syntax, TLS 1.2 and below)");

  options = {};
  options.ciphersuites = "TLS_NO_SUCH_SUITE";
  CHECK(tls::make_context(options, error) == nullptr);
  CHECK(error.message == "no TLS 1.3 cipher suite matches 'TLS_NO_SUCH_SUITE'");

  options = {};
  options.ca_file = "/nonexistent/smtpsh-ca.pem";
  CHECK(tls::make_context(options, error) == nullptr);
  CHECK(error.message.rfind("cannot load CA certificates from '/nonexistent/smtpsh-ca.pem': ", 0) ==
        0);
  CHECK(error.message.size() >
        std::string("cannot load CA certificates from '/nonexistent/smtpsh-ca.pem': ").size());
}

TEST_CASE("client contexts: ordinary options are accepted") {
  tls::ContextError error;
  tls::Options options;
  CHECK(tls::make_context(options, error) != nullptr);
  options.min = tls::Version::tls1_2;
  options.max = tls::Version::tls1_3;
  options.ciphers = "ECDHE+AESGCM:!aNULL";
  options.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";
  options.verify = tls::Verify::peer;
  options.sni = "mx.test";
  auto context = tls::make_context(options, error);
  INFO(error);
  REQUIRE(context != nullptr);
  SSL_CTX* ctx = context->native_handle();
  CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
  CHECK(SSL_CTX_get_max_proto_version(ctx) == TLS1_3_VERSION);
  CHECK(SSL_CTX_get_verify_mode(ctx) == SSL_VERIFY_PEER);

  // Legacy versions get security level 0 (Debian's default level refuses them).
  tls::Options legacy;
  legacy.min = tls::Version::tls1;
  legacy.max = tls::Version::tls1_1;
  auto old = tls::make_context(legacy, error);
  REQUIRE(old != nullptr);
  CHECK(SSL_CTX_get_security_level(old->native_handle()) == 0);
  CHECK(SSL_CTX_get_min_proto_version(old->native_handle()) == TLS1_VERSION);
  CHECK(SSL_CTX_get_max_proto_version(old->native_handle()) == TLS1_1_VERSION);
  CHECK(SSL_CTX_get_verify_mode(old->native_handle()) == SSL_VERIFY_NONE);
  // A maximum alone below 1.2 also sets the minimum down to TLS 1.0.
  tls::Options only_max;
  only_max.max = tls::Version::tls1_1;
  auto capped = tls::make_context(only_max, error);
  REQUIRE(capped != nullptr);
  CHECK(SSL_CTX_get_min_proto_version(capped->native_handle()) == TLS1_VERSION);
  CHECK(SSL_CTX_get_security_level(capped->native_handle()) == 0);

  // DANE records turn DANE on; an unusable record alone is refused when DANE is required.
  tls::Options dane = client_options(tls::Verify::dane);
  dane.tlsa.push_back(
      {.usage = 9, .selector = 1, .matching_type = 1, .data = std::string(32, 'x')});
  auto dane_context = tls::make_context(dane, error);
  REQUIRE(dane_context != nullptr);
  SSL* ssl = SSL_new(dane_context->native_handle());
  REQUIRE(ssl != nullptr);
  std::string problem;
  CHECK_FALSE(tls::prepare_ssl(ssl, dane, problem));
  CHECK(problem ==
        "none of the 1 TLSA records is usable (an unknown usage, selector or matching type, or a "
        "PKIX usage 0 or 1, which SMTP does not use: RFC 7672 section 3.1.3)");
  SSL_free(ssl);

  // PKIX-TA(0) and PKIX-EE(1) records are valid TLSA, and unusable for SMTP.
  for (std::uint8_t usage : {0, 1}) {
    tls::Options pkix = client_options(tls::Verify::dane);
    pkix.tlsa.push_back(
        {.usage = usage, .selector = 1, .matching_type = 1, .data = std::string(32, 'x')});
    auto pkix_context = tls::make_context(pkix, error);
    REQUIRE(pkix_context != nullptr);
    SSL* pkix_ssl = SSL_new(pkix_context->native_handle());
    REQUIRE(pkix_ssl != nullptr);
    problem.clear();
    CHECK_FALSE(tls::prepare_ssl(pkix_ssl, pkix, problem));
    CHECK(problem.find("RFC 7672 section 3.1.3") != std::string::npos);
    SSL_free(pkix_ssl);
  }
}

TEST_CASE("client contexts are shared by handshakes with the same options") {
  tls::ContextError error;
  tls::Options options;
  options.min = tls::Version::tls1_2;
  auto first = tls::shared_context(options, error);
  REQUIRE(first != nullptr);
  // The SNI is set per connection, so it does not make another context.
  options.sni = "mx.example";
  CHECK(tls::shared_context(options, error) == first);
  options.max = tls::Version::tls1_2;
  auto capped = tls::shared_context(options, error);
  REQUIRE(capped != nullptr);
  CHECK(capped != first);
  options.ciphers = "ECDHE+AESGCM";
  CHECK(tls::shared_context(options, error) != capped);
  // A failure is not remembered: it is reported again, and nothing is cached for it.
  options = {};
  options.ca_file = "/nonexistent/smtpsh-ca.pem";
  CHECK(tls::shared_context(options, error) == nullptr);
  CHECK_FALSE(error.out_of_resources);
  CHECK(tls::shared_context(options, error) == nullptr);
}

// Lowers the descriptor limit so that the next open() fails with EMFILE, for as long as it
// lives.
class NoMoreDescriptors {
 public:
  NoMoreDescriptors() {
    REQUIRE(getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    int lowest_free = dup(0);  // a new descriptor takes the lowest free number
    REQUIRE(lowest_free >= 0);
    close(lowest_free);
    rlimit tight = saved_;
    tight.rlim_cur = static_cast<rlim_t>(lowest_free);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
  }
  ~NoMoreDescriptors() { setrlimit(RLIMIT_NOFILE, &saved_); }
  NoMoreDescriptors(const NoMoreDescriptors&) = delete;
  NoMoreDescriptors& operator=(const NoMoreDescriptors&) = delete;

 private:
  rlimit saved_{};
};

TEST_CASE("out of descriptors while loading CA certificates: a resource error, not bad options") {
  tls::ContextError error;
  std::unique_ptr<asio::ssl::context> from_file;
  std::unique_ptr<asio::ssl::context> from_system;
  tls::Options options;
  options.ca_file = "/etc/hostname";
  {
    NoMoreDescriptors limit;
    from_file = tls::make_context(options, error);
  }
  CHECK(from_file == nullptr);
  CHECK(error.out_of_resources);
  CHECK(error.message == "cannot load CA certificates from '/etc/hostname': Too many open files");

  // The system's bundle: OpenSSL says nothing when it cannot open it, and the store stays
  // empty; that must not pass for a context that verifies.
  if (std::filesystem::exists("/etc/ssl/certs/ca-certificates.crt")) {
    {
      NoMoreDescriptors limit;
      from_system = tls::make_context(tls::Options{}, error);
    }
    CHECK(from_system == nullptr);
    CHECK(error.out_of_resources);
    CHECK(error.message == "cannot load the system's CA certificates: Too many open files");
  }
}

TEST_CASE("server contexts: a self-signed certificate, or files that must load") {
  std::string error;
  auto context = tls::make_server_context(self_signed(), error);
  INFO(error);
  REQUIRE(context != nullptr);
  X509* cert = SSL_CTX_get0_certificate(context->native_handle());
  REQUIRE(cert != nullptr);
  CHECK(X509_check_host(cert, "mx.test", 0, 0, nullptr) == 1);
  // An address gets an IP SAN.
  auto by_address = tls::make_server_context(self_signed("127.0.0.1"), error);
  REQUIRE(by_address != nullptr);
  CHECK(X509_check_ip_asc(SSL_CTX_get0_certificate(by_address->native_handle()), "127.0.0.1", 0) ==
        1);

  tls::ServerOptions missing;
  missing.cert_file = "/nonexistent/smtpsh.crt";
  CHECK(tls::make_server_context(missing, error) == nullptr);
  CHECK(error.rfind("cannot load the certificate '/nonexistent/smtpsh.crt': ", 0) == 0);

  TempDir dir;
  auto files = make_cert(dir, "mx.test");
  auto other = make_cert(dir, "other.test");
  tls::ServerOptions from_files;
  from_files.cert_file = files.cert;
  from_files.key_file = files.key;
  CHECK(tls::make_server_context(from_files, error) != nullptr);
  from_files.key_file = other.key;  // not the certificate's key
  CHECK(tls::make_server_context(from_files, error) == nullptr);
  CHECK(error.rfind("cannot use the key '" + other.key + "': ", 0) == 0);

  tls::ServerOptions bad_cipher = self_signed();
  bad_cipher.ciphers = "NO-SUCH-CIPHER";
  CHECK(tls::make_server_context(bad_cipher, error) == nullptr);
  CHECK(error == "no TLS cipher matches 'NO-SUCH-CIPHER'");
}

TEST_CASE("a handshake over loopback: what tls_info() reports, and data through the stream") {
  engine::Loop loop;
  Server server(loop, self_signed());
  auto client = handshake(loop, server, client_options());
  INFO(client->write_outcome().message);
  REQUIRE(client->write_outcome().ok());
  REQUIRE(server.conn->write_outcome().ok());
  CHECK(client->is_tls());
  CHECK(server.conn->is_tls());
  CHECK(std::string(client->tls_failure_reason()).empty());

  const tls::Info* info = client->tls_info();
  REQUIRE(info != nullptr);
  CHECK(info->version == "TLSv1.3");  // no bounds: the best both sides have
  CHECK_FALSE(info->cipher.empty());
  CHECK(info->cipher.rfind("TLS_", 0) == 0);
  CHECK_FALSE(info->group.empty());
  REQUIRE(info->chain.size() == 1);
  const tls::Certificate& leaf = info->chain[0];
  CHECK(leaf.subject == "CN=mx.test");
  CHECK(leaf.issuer == "CN=mx.test");
  CHECK(std::find(leaf.names.begin(), leaf.names.end(), "mx.test") != leaf.names.end());
  CHECK(leaf.days_left >= 364);
  CHECK(leaf.days_left <= 366);
  CHECK(leaf.not_before.size() == 20);  // "2026-01-31T12:00:00Z"
  CHECK(leaf.not_after.back() == 'Z');
  CHECK(leaf.sha256.size() == 95);  // 32 bytes, "AB:CD:..."
  CHECK(leaf.sha256[2] == ':');
  CHECK(leaf.spki_sha256.size() == 64);
  CHECK(is_lower_hex(leaf.spki_sha256));
  CHECK(leaf.key == "EC 256");
  CHECK(leaf.serial == "01");
  // Self-signed, and verification not asked for: the handshake passes and says why it would not.
  CHECK_FALSE(info->verified);
  CHECK(info->verify_result != "ok");
  CHECK(info->verify_result == "self-signed certificate");
  CHECK(info->name_checked);
  CHECK(info->checked_name == "mx.test");
  CHECK(info->name_matches);
  CHECK_FALSE(info->dane);

  // The server side agrees on the version; the client sent no certificate.
  REQUIRE(server.conn->tls_info() != nullptr);
  CHECK(server.conn->tls_info()->version == info->version);
  CHECK(server.conn->tls_info()->cipher == info->cipher);
  CHECK(server.conn->tls_info()->chain.empty());

  // Lines go through the TLS stream both ways.
  send(loop, *client, "EHLO client.test\r\n");
  CHECK(read_line(loop, *server.conn) == "EHLO client.test");
  CHECK(server.conn->read_outcome().ok());
  send(loop, *server.conn, "250 mx.test\r\n");
  CHECK(read_line(loop, *client) == "250 mx.test");
  CHECK(client->read_outcome().ok());

  // A second handshake on the same connection is refused.
  Op again;
  client->start_tls(client_options(), &Op::notify, &again);
  wait(loop, again);
  CHECK(client->write_outcome().failure == net::Failure::tls);
  CHECK(client->write_outcome().message == "the connection already speaks TLS");
  CHECK(std::string(client->tls_failure_reason()) == "local");
}

TEST_CASE("the name checked is the SNI; another name does not match") {
  engine::Loop loop;
  Server server(loop, self_signed());
  tls::Options options = client_options();
  options.sni = "other.test";
  auto client = handshake(loop, server, options);
  REQUIRE(client->write_outcome().ok());
  CHECK(client->tls_info()->name_checked);
  CHECK(client->tls_info()->checked_name == "other.test");
  CHECK_FALSE(client->tls_info()->name_matches);
}

TEST_CASE("verify=peer fails the handshake on a self-signed certificate") {
  engine::Loop loop;
  Server server(loop, self_signed());
  auto client = handshake(loop, server, client_options(tls::Verify::peer));
  CHECK(client->write_outcome().failure == net::Failure::tls);
  CHECK(std::string(client->tls_failure_reason()) == "verify");
  CHECK(client->write_outcome().message == "TLS handshake failed: the certificate of 127.0.0.1:" +
                                               std::to_string(server.listener->port()) +
                                               " did not verify (self-signed certificate)");
  CHECK(client->tls_info() == nullptr);
  CHECK_FALSE(client->is_tls());
  CHECK_FALSE(client->is_open());  // nothing usable is left on the connection
  CHECK_FALSE(server.conn->write_outcome().ok());
}

TEST_CASE("verify=peer passes with the certificate as the CA file, and checks the name") {
  TempDir dir;
  auto files = make_cert(dir, "mx.test");
  tls::ServerOptions from_files;
  from_files.cert_file = files.cert;
  from_files.key_file = files.key;

  engine::Loop loop;
  tls::Options options = client_options(tls::Verify::peer);
  options.ca_file = files.cert;
  {
    Server server(loop, from_files);
    auto client = handshake(loop, server, options);
    INFO(client->write_outcome().message);
    REQUIRE(client->write_outcome().ok());
    const tls::Info* info = client->tls_info();
    CHECK(info->verified);
    CHECK(info->verify_result == "ok");
    CHECK(info->name_matches);

    // The fingerprints agree with what openssl computes from the file.
    auto fingerprint =
        after_equals(openssl({"x509", "-in", files.cert, "-noout", "-fingerprint", "-sha256"}));
    CHECK(info->chain[0].sha256 == fingerprint);
    std::string der = dir.file("spki.der");
    openssl({"x509", "-in", files.cert, "-noout", "-pubkey", "-out", dir.file("spki.pem")});
    openssl({"pkey", "-pubin", "-in", dir.file("spki.pem"), "-outform", "DER", "-out", der});
    CHECK(info->chain[0].spki_sha256 == lower(after_equals(openssl({"dgst", "-sha256", der}))));
  }
  {
    // The right CA, the wrong name: verification fails on the name.
    Server server(loop, from_files);
    tls::Options wrong_name = options;
    wrong_name.sni = "other.test";
    auto client = handshake(loop, server, wrong_name);
    CHECK(client->write_outcome().failure == net::Failure::tls);
    CHECK(std::string(client->tls_failure_reason()) == "verify");
    CHECK(client->write_outcome().message.find("did not verify (hostname mismatch)") !=
          std::string::npos);
  }
}

TEST_CASE("version pinning: no version in common fails; legacy versions work when both ask") {
  engine::Loop loop;
  {
    tls::ServerOptions only13 = self_signed();
    only13.min = only13.max = tls::Version::tls1_3;
    Server server(loop, only13);
    tls::Options upto12 = client_options();
    upto12.max = tls::Version::tls1_2;
    auto client = handshake(loop, server, upto12);
    CHECK(client->write_outcome().failure == net::Failure::tls);
    // The server refuses the ClientHello with a protocol_version alert.
    CHECK(std::string(client->tls_failure_reason()) == "alert");
    CHECK(client->write_outcome().message ==
          "TLS handshake failed: 127.0.0.1:" + std::to_string(server.listener->port()) +
              " refused it with a TLS alert (tlsv1 alert protocol version)");
    CHECK_FALSE(server.conn->write_outcome().ok());
  }
  {
    tls::ServerOptions old = self_signed();
    old.min = tls::Version::tls1;
    old.max = tls::Version::tls1_1;
    Server server(loop, old);
    tls::Options options = client_options();
    options.min = tls::Version::tls1;
    options.max = tls::Version::tls1_1;
    auto client = handshake(loop, server, options);
    INFO(client->write_outcome().message);
    REQUIRE(client->write_outcome().ok());
    CHECK(client->tls_info()->version == "TLSv1.1");
    CHECK(server.conn->tls_info()->version == "TLSv1.1");
    send(loop, *client, "NOOP\r\n");
    CHECK(read_line(loop, *server.conn) == "NOOP");
  }
  {
    tls::ServerOptions pinned = self_signed();
    pinned.min = pinned.max = tls::Version::tls1_2;
    Server server(loop, pinned);
    auto client = handshake(loop, server, client_options());
    REQUIRE(client->write_outcome().ok());
    CHECK(client->tls_info()->version == "TLSv1.2");
    CHECK(client->tls_info()->cipher.rfind("ECDHE-ECDSA-", 0) == 0);
  }
}

TEST_CASE("DANE-EE: a TLSA 3 1 1 record for the server's key passes; another one fails") {
  TempDir dir;
  auto files = make_cert(dir, "mx.test");
  tls::ServerOptions from_files;
  from_files.cert_file = files.cert;
  from_files.key_file = files.key;

  engine::Loop loop;
  std::string spki;
  {
    Server server(loop, from_files);
    auto client = handshake(loop, server, client_options());
    REQUIRE(client->write_outcome().ok());
    spki = client->tls_info()->chain[0].spki_sha256;
  }
  REQUIRE(spki.size() == 64);

  tls::Options dane = client_options(tls::Verify::dane);
  dane.tlsa.push_back({.usage = 3, .selector = 1, .matching_type = 1, .data = unhex(spki)});
  dane.dnssec = true;
  {
    Server server(loop, from_files);
    auto client = handshake(loop, server, dane);
    INFO(client->write_outcome().message);
    REQUIRE(client->write_outcome().ok());
    const tls::Info* info = client->tls_info();
    CHECK(info->dane);
    CHECK(info->dane_matched);
    CHECK(info->dane_depth == 0);
    CHECK(info->dane_record == "3 1 1 " + spki);
    CHECK(info->dnssec);
    CHECK(info->verified);  // DANE-EE needs no CA, and checks no name
  }
  {
    // A DANE-EE record binds the key, not the name: another SNI passes as well.
    Server server(loop, from_files);
    tls::Options other_name = dane;
    other_name.sni = "other.test";
    auto client = handshake(loop, server, other_name);
    INFO(client->write_outcome().message);
    REQUIRE(client->write_outcome().ok());
    CHECK(client->tls_info()->dane_matched);
  }
  {
    Server server(loop, from_files);
    tls::Options wrong = dane;
    std::string data = unhex(spki);
    data[0] = static_cast<char>(data[0] ^ 0xff);
    wrong.tlsa = {{.usage = 3, .selector = 1, .matching_type = 1, .data = data}};
    auto client = handshake(loop, server, wrong);
    CHECK(client->write_outcome().failure == net::Failure::tls);
    CHECK(std::string(client->tls_failure_reason()) == "verify");
    CHECK(client->tls_info() == nullptr);
  }
  {
    // With verify=none the records are still checked and reported, and a mismatch passes.
    Server server(loop, from_files);
    tls::Options report = dane;
    report.verify = tls::Verify::none;
    report.tlsa[0].data[0] = static_cast<char>(report.tlsa[0].data[0] ^ 0xff);
    auto client = handshake(loop, server, report);
    REQUIRE(client->write_outcome().ok());
    CHECK(client->tls_info()->dane);
    CHECK_FALSE(client->tls_info()->dane_matched);
    CHECK(client->tls_info()->dane_depth == -1);
    CHECK(client->tls_info()->dane_record.empty());
  }
}

TEST_CASE("plain text buffered before the handshake fails it as not_tls") {
  engine::Loop loop;
  Server server(loop, {}, "220 ok\r\nextra\r\n");
  auto client = test::connect_loopback(loop, server.listener->port());
  wait(loop, server.done);
  REQUIRE(server.conn->write_outcome().ok());
  // Reading the first line pulls in the second as well: it stays buffered.
  CHECK(read_line(loop, *client) == "220 ok");
  Op op;
  client->start_tls(client_options(), &Op::notify, &op);
  CHECK_FALSE(op.done);
  wait(loop, op);
  CHECK(client->write_outcome().failure == net::Failure::tls);
  CHECK(std::string(client->tls_failure_reason()) == "not_tls");
  CHECK(client->write_outcome().message ==
        "TLS handshake failed: 127.0.0.1:" + std::to_string(server.listener->port()) +
            " sent 7 bytes of plain text before the handshake (\"extra..\"): that is not TLS");
  CHECK_FALSE(client->is_tls());
}

TEST_CASE("options that cannot be honoured fail start_tls at once, as 'local'") {
  engine::Loop loop;
  Server server(loop, self_signed());
  auto client = test::connect_loopback(loop, server.listener->port());
  tls::Options options = client_options();
  options.min = tls::Version::tls1_3;
  options.max = tls::Version::tls1_1;
  Op op;
  client->start_tls(options, &Op::notify, &op);
  CHECK_FALSE(op.done);
  wait(loop, op);
  CHECK(client->write_outcome().failure == net::Failure::tls);
  CHECK(client->write_outcome().message ==
        "cannot start TLS: TLS min version tls1.3 is above max version tls1.1");
  CHECK(std::string(client->tls_failure_reason()) == "local");
  CHECK_FALSE(client->is_tls());
}
