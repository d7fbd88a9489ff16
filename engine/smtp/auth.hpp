#pragma once
// What SASL mechanisms put on the wire (RFC 4616 PLAIN, the LOGIN draft, RFC 2195 CRAM-MD5).

#include <optional>
#include <string>
#include <string_view>

namespace smtpsh::smtp {

std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not valid base64.
std::optional<std::string> base64_decode(std::string_view text);

// base64("\0user\0secret")
std::string plain_response(std::string_view user, std::string_view secret);
// base64("user " + hex(HMAC-MD5(secret, challenge))), the challenge given in base64 as the
// server sent it after "334 ". nullopt when the challenge is not base64.
std::optional<std::string> cram_md5_response(std::string_view user, std::string_view secret,
                                             std::string_view challenge_base64);

}  // namespace smtpsh::smtp
