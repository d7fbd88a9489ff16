#pragma once
// An OpenSSL client context made from Options: versions, ciphers, security level, trust
// anchors, DANE. One per handshake, so the options of one probe never leak into another.

#include "engine/tls/options.hpp"

#include <asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace smtpsh::tls {

// Returns nullptr and fills `error` (one sentence) when the options cannot be honoured: an
// unknown cipher, an unreadable CA file, min above max.
std::unique_ptr<asio::ssl::context> make_context(const Options& options, std::string& error);

// A server context: the certificate and key (or a self-signed pair made now), the versions.
std::unique_ptr<asio::ssl::context> make_server_context(const ServerOptions& options,
                                                        std::string& error);

// Prepares one connection's SSL object: SNI, the host name to verify, DANE records.
bool prepare_ssl(SSL* ssl, const Options& options, std::string& error);

}  // namespace smtpsh::tls
