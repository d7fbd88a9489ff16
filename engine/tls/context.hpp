#pragma once
// An OpenSSL client context made from Options: versions, ciphers, security level, trust
// anchors, DANE. What differs per connection (SNI, the name to verify, TLSA records) is set on
// the connection's SSL object by prepare_ssl, so the options of one probe never leak into
// another while a context is shared by every handshake with the same options.

#include "engine/tls/options.hpp"

#include <asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace smtpsh::tls {

// Why a context could not be made: one sentence, and whether this process ran out of
// descriptors or memory (a local limit, not a mistake in the options).
struct ContextError {
  std::string message;
  bool out_of_resources = false;
};

// Returns nullptr and fills `error` when the options cannot be honoured: an unknown cipher, an
// unreadable CA file, min above max.
std::unique_ptr<asio::ssl::context> make_context(const Options& options, ContextError& error);

// The context for these options, made once and then shared by every handshake that asks for
// the same ones: a context holds the parsed trust store, which for the system bundle costs
// about 55 ms of CPU and 1 MB to build. At most a few dozen distinct option sets are kept
// (the oldest goes first); safe to call from several threads.
std::shared_ptr<asio::ssl::context> shared_context(const Options& options, ContextError& error);

// The server context for `options`, made once and shared by every connection that accepts TLS
// with the same options (one self-signed key and certificate, not one per connection). A
// certificate file changed on disk is read again only by a new process.
std::shared_ptr<asio::ssl::context> shared_server_context(const ServerOptions& options,
                                                          ContextError& error);

// A server context: the certificate and key (or a self-signed pair made now), the versions.
std::unique_ptr<asio::ssl::context> make_server_context(const ServerOptions& options,
                                                        std::string& error);

// Prepares one connection's SSL object: SNI, the host name to verify, DANE records.
bool prepare_ssl(SSL* ssl, const Options& options, std::string& error);

}  // namespace smtpsh::tls
