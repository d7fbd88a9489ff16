// Connection::start_tls: the TLS handshake on an open connection, and what a failed one means
// in words. Reads and writes switch to the TLS stream in connection.cpp.
#include "engine/net/connection.hpp"
#include "engine/tls/context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/ssl/error.hpp>

namespace smtpsh::net {

namespace {

bool is_alert(int reason) {
  // OpenSSL files a received alert N under reason SSL_AD_REASON_OFFSET + N.
  return reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256;
}

bool is_not_tls(int reason) {
  return reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
         reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_UNEXPECTED_RECORD ||
         reason == SSL_R_HTTP_REQUEST || reason == SSL_R_WRONG_SSL_VERSION ||
         reason == SSL_R_LENGTH_MISMATCH || reason == SSL_R_BAD_PACKET_LENGTH ||
         reason == SSL_R_RECORD_LENGTH_MISMATCH;
}

// The words OpenSSL has for a packed error code; for a received alert, its name.
std::string reason_text(unsigned long code) {
  if (const char* text = ERR_reason_error_string(code)) return text;
  int reason = ERR_GET_REASON(code);
  if (is_alert(reason))
    return std::string("alert ") + SSL_alert_desc_string_long(reason - SSL_AD_REASON_OFFSET);
  return "OpenSSL error " + std::to_string(reason);
}

}  // namespace

// The checks and set-up both sides share; false (and the operation finishing soon with the
// failure) when the handshake cannot start.
bool Connection::begin_tls(std::shared_ptr<asio::ssl::context> context,
                           const tls::ContextError& error) {
  tls_reason_ = "";
  tls_info_.reset();
  if (!socket_.is_open() || tls_) {
    write_.outcome.fail(Failure::tls, tls_ ? "the connection already speaks TLS"
                                           : "cannot start TLS: the connection is closed");
    tls_reason_ = "local";
    finish_soon(write_);
    return false;
  }
  // A TLS peer says nothing before the ClientHello: bytes already here came in plain text
  // after the 220, and taking them as TLS (or as SMTP after it, CVE-2011-0411) would be wrong.
  discard_consumed();
  if (!buffer_.empty()) {
    std::string shown;
    for (char c : buffer_.substr(0, 40))
      shown += (c >= ' ' && c < 0x7f) ? c : '.';
    write_.outcome.fail(Failure::tls, "TLS handshake failed: " + peer_name() + " sent " +
                                          std::to_string(buffer_.size()) +
                                          " bytes of plain text before the handshake (\"" + shown +
                                          "\"): that is not TLS");
    tls_reason_ = "not_tls";
    buffer_.clear();
    finish_soon(write_);
    return false;
  }
  scanned_ = 0;
  if (!context) {
    // Out of descriptors is this process's limit, not a TLS problem of either side.
    write_.outcome.fail(error.out_of_resources ? Failure::resource : Failure::tls,
                        "cannot start TLS: " + error.message);
    tls_reason_ = "local";
    finish_soon(write_);
    return false;
  }
  tls_context_ = std::move(context);
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls_context_);
  return true;
}

void Connection::start_tls(const tls::Options& options, Notify notify, void* context) {
  begin(write_, notify, context);
  if (admission_.replayed_tls && socket_.is_open() && !tls_) {
    // A replay: the recorded handshake's result, as the script saw it then. The replay
    // server, which has no such certificate, skips its side too; the bytes stay plain.
    tls_reason_ = "";
    tls_info_ = std::make_unique<tls::Info>(*admission_.replayed_tls);
    admission_.replayed_tls.reset();
    return finish_soon(write_);
  }
  tls::ContextError error;
  auto ssl_context = tls::shared_context(options, error);
  if (!begin_tls(std::move(ssl_context), error)) return;
  std::string problem;
  if (!tls::prepare_ssl(tls_->native_handle(), options, problem)) {
    tls_.reset();
    tls_context_.reset();
    write_.outcome.fail(Failure::tls, "cannot start TLS: " + problem);
    tls_reason_ = "local";
    return finish_soon(write_);
  }
  tls_options_ = std::make_unique<tls::Options>(options);
  tls_->async_handshake(
      asio::ssl::stream_base::client,
      asio::bind_cancellation_slot(
          write_.deadline.slot(),
          [self = shared_from_this()](std::error_code ec) { self->on_handshake(ec); }));
}

void Connection::accept_tls(const tls::ServerOptions& options, Notify notify, void* context) {
  begin(write_, notify, context);
  tls::ContextError error;
  auto ssl_context = tls::shared_server_context(options, error);
  if (!begin_tls(std::move(ssl_context), error)) return;
  tls_options_ = std::make_unique<tls::Options>();
  tls_->async_handshake(
      asio::ssl::stream_base::server,
      asio::bind_cancellation_slot(
          write_.deadline.slot(),
          [self = shared_from_this()](std::error_code ec) { self->on_handshake(ec); }));
}

void Connection::on_handshake(const std::error_code& ec) {
  SSL* ssl = tls_->native_handle();
  auto options = std::move(tls_options_);
  if (!ec) {
    tls_info_ = std::make_unique<tls::Info>(tls::describe(ssl, *options));
    return finish(write_);
  }
  // How far the server got: nothing at all, or part of a handshake.
  BIO* incoming = SSL_get_rbio(ssl);
  bool answered = incoming && BIO_number_read(incoming) > 0;
  std::string peer = peer_name();
  Failure failure = Failure::tls;
  std::string text;
  if (ec == asio::error::operation_aborted && write_.deadline.expired()) {
    failure = Failure::timeout;
    tls_reason_ = "timeout";
    text = "TLS handshake with " + peer + " timed out after " +
           engine::describe_duration(timeout_) +
           (answered ? ": the server stopped answering in the middle of the handshake"
                     : ": the server never answered the ClientHello");
  } else if (ec == asio::error::operation_aborted) {
    failure = write_.interrupted ? Failure::interrupted : Failure::closed;
    tls_reason_ = "local";
    text = "TLS handshake with " + peer + " interrupted";
  } else if (ec == asio::ssl::error::stream_truncated || ec == asio::error::eof ||
             ec == asio::error::connection_reset) {
    tls_reason_ = "closed";
    text = "TLS handshake failed: " + peer + " closed the connection " +
           (answered ? "in the middle of the handshake" : "before answering the ClientHello") +
           " without a TLS alert (often: no TLS version or cipher in common)";
  } else if (ec.category() == asio::error::get_ssl_category()) {
    int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    std::string words = reason_text(static_cast<unsigned long>(ec.value()));
    if (is_alert(reason)) {
      tls_reason_ = "alert";
      text = "TLS handshake failed: " + peer + " refused it with a TLS alert (" + words + ")";
    } else if (is_not_tls(reason)) {
      tls_reason_ = "not_tls";
      text = "TLS handshake failed: " + peer + " answered with something that is not TLS (" +
             words + ")";
    } else if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_NO_PROTOCOLS_AVAILABLE ||
               reason == SSL_R_VERSION_TOO_LOW || reason == SSL_R_VERSION_TOO_HIGH) {
      tls_reason_ = "version";
      text = "TLS handshake failed: " + peer +
             " chose a TLS version this handshake does not offer (" + words + ")";
    } else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      tls_reason_ = "verify";
      long result = SSL_get_verify_result(ssl);
      text = "TLS handshake failed: the certificate of " + peer + " did not verify (" +
             X509_verify_cert_error_string(result) + ")";
    } else {
      tls_reason_ = "local";
      text = "TLS handshake with " + peer + " failed: " + words;
    }
  } else {
    tls_reason_ = "closed";
    text = "TLS handshake with " + peer + " failed: " + ec.message();
  }
  write_.outcome.fail(failure, std::move(text));
  // A failed handshake leaves nothing usable on this connection.
  std::error_code ignored;
  socket_.close(ignored);
  tls_.reset();
  tls_context_.reset();
  finish(write_);
}

}  // namespace smtpsh::net
