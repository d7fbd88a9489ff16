#include "engine/smtp/auth.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <vector>

namespace smtpsh::smtp {

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * (text.size() / 4), '\0');
  int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (written < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<std::size_t>(written) - padding);
  return out;
}

std::string plain_response(std::string_view user, std::string_view secret) {
  std::string blob;
  blob.reserve(user.size() + secret.size() + 2);
  blob += '\0';
  blob += user;
  blob += '\0';
  blob += secret;
  return base64_encode(blob);
}

std::optional<std::string> cram_md5_response(std::string_view user, std::string_view secret,
                                             std::string_view challenge_base64) {
  auto challenge = base64_decode(challenge_base64);
  if (!challenge) return std::nullopt;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  const std::string& message = *challenge;
  if (!HMAC(EVP_md5(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest,
            &length))
    return std::nullopt;
  static const char hex[] = "0123456789abcdef";
  std::string answer(user);
  answer += ' ';
  for (unsigned int i = 0; i < length; ++i) {
    answer += hex[digest[i] >> 4];
    answer += hex[digest[i] & 15];
  }
  return base64_encode(answer);
}

}  // namespace smtpsh::smtp
