#pragma once
// What reply codes (RFC 5321 section 4.2, RFC 4954) and enhanced status codes (RFC 3463 and
// the IANA "SMTP Enhanced Status Codes" registry) mean, for people reading a transcript.

#include <optional>
#include <string_view>

namespace smtpsh::smtp {

enum class Severity { positive, intermediate, transient, permanent };  // 2xx, 3xx, 4xx, 5xx

struct CodeMeaning {
  std::string_view meaning;  // lower case, no final full stop: "bad connection"
  Severity severity;
};

// The meaning of a reply code RFC 5321 or RFC 4954 defines; nullopt for any other number.
std::optional<CodeMeaning> describe_reply_code(int code);

// The meaning of "class.subject.detail" (class 2, 4 or 5; subject and detail 1-3 digits), its
// severity from the class. A detail the registry does not know falls back to its subject's
// generic meaning ("4.4.99" reads as X.4.0), an unknown subject to X.0.0. Malformed: nullopt.
std::optional<CodeMeaning> describe_enhanced(std::string_view enhanced);

}  // namespace smtpsh::smtp
