#include "engine/smtp/status_codes.hpp"

#include <array>

namespace smtpsh::smtp {

namespace {

struct ReplyEntry {
  int code;
  std::string_view meaning;
};

// RFC 5321 sections 4.2.2 and 4.2.3, RFC 4954 section 6 (AUTH), RFC 3207 (454 for STARTTLS)
// and RFC 7504 (521). Sorted by code.
constexpr std::array reply_codes{
    ReplyEntry{211, "system status, or system help reply"},
    ReplyEntry{214, "help message"},
    ReplyEntry{220, "service ready"},
    ReplyEntry{221, "service closing transmission channel"},
    ReplyEntry{235, "authentication succeeded"},
    ReplyEntry{250, "requested mail action okay, completed"},
    ReplyEntry{251, "user not local; will forward"},
    ReplyEntry{252, "cannot verify the user, but will accept the message and attempt delivery"},
    ReplyEntry{334, "authentication challenge, waiting for the client's response"},
    ReplyEntry{354, "start mail input; end with <CRLF>.<CRLF>"},
    ReplyEntry{421, "service not available, closing transmission channel"},
    ReplyEntry{432, "a password transition is needed"},
    ReplyEntry{450, "requested mail action not taken: mailbox unavailable (busy or blocked)"},
    ReplyEntry{451, "requested action aborted: local error in processing"},
    ReplyEntry{452, "requested action not taken: insufficient system storage"},
    ReplyEntry{454, "temporary authentication failure, or TLS not available for now"},
    ReplyEntry{455, "server unable to accommodate parameters"},
    ReplyEntry{500, "syntax error, command unrecognized (or command line too long)"},
    ReplyEntry{501, "syntax error in parameters or arguments"},
    ReplyEntry{502, "command not implemented"},
    ReplyEntry{503, "bad sequence of commands"},
    ReplyEntry{504, "command parameter not implemented"},
    ReplyEntry{521, "server does not accept mail"},
    ReplyEntry{530, "authentication required"},
    ReplyEntry{534, "authentication mechanism is too weak"},
    ReplyEntry{535, "authentication credentials invalid"},
    ReplyEntry{538, "encryption required for requested authentication mechanism"},
    ReplyEntry{550,
               "requested action not taken: mailbox unavailable (not found, no access, or "
               "refused by policy)"},
    ReplyEntry{551, "user not local; please try the forward-path given"},
    ReplyEntry{552, "requested mail action aborted: exceeded storage allocation"},
    ReplyEntry{553, "requested action not taken: mailbox name not allowed"},
    ReplyEntry{554, "transaction failed (on connect: no SMTP service here)"},
    ReplyEntry{555, "MAIL FROM/RCPT TO parameters not recognized or not implemented"},
};

struct EnhancedEntry {
  int subject;
  int detail;
  std::string_view meaning;
};

// RFC 3463 and the later registrations in the IANA registry (RFC 3886, 4468, 4954, 5248, 6531,
// 6710, 7293, 7372, 7505, 8617, 8689). Every X.S.0 is there: it is the fallback of subject S.
constexpr std::array enhanced_codes{
    EnhancedEntry{0, 0, "other undefined status"},
    EnhancedEntry{1, 0, "other address status"},
    EnhancedEntry{1, 1, "bad destination mailbox address"},
    EnhancedEntry{1, 2, "bad destination system address"},
    EnhancedEntry{1, 3, "bad destination mailbox address syntax"},
    EnhancedEntry{1, 4, "destination mailbox address ambiguous"},
    EnhancedEntry{1, 5, "destination address valid"},
    EnhancedEntry{1, 6, "destination mailbox has moved, no forwarding address"},
    EnhancedEntry{1, 7, "bad sender's mailbox address syntax"},
    EnhancedEntry{1, 8, "bad sender's system address"},
    EnhancedEntry{1, 9, "message relayed to non-compliant mailer"},
    EnhancedEntry{1, 10, "recipient address has null MX"},
    EnhancedEntry{2, 0, "other or undefined mailbox status"},
    EnhancedEntry{2, 1, "mailbox disabled, not accepting messages"},
    EnhancedEntry{2, 2, "mailbox full"},
    EnhancedEntry{2, 3, "message length exceeds administrative limit"},
    EnhancedEntry{2, 4, "mailing list expansion problem"},
    EnhancedEntry{3, 0, "other or undefined mail system status"},
    EnhancedEntry{3, 1, "mail system full"},
    EnhancedEntry{3, 2, "system not accepting network messages"},
    EnhancedEntry{3, 3, "system not capable of selected features"},
    EnhancedEntry{3, 4, "message too big for system"},
    EnhancedEntry{3, 5, "system incorrectly configured"},
    EnhancedEntry{3, 6, "requested priority was changed"},
    EnhancedEntry{4, 0, "other or undefined network or routing status"},
    EnhancedEntry{4, 1, "no answer from host"},
    EnhancedEntry{4, 2, "bad connection"},
    EnhancedEntry{4, 3, "directory server failure"},
    EnhancedEntry{4, 4, "unable to route"},
    EnhancedEntry{4, 5, "mail system congestion"},
    EnhancedEntry{4, 6, "routing loop detected"},
    EnhancedEntry{4, 7, "delivery time expired"},
    EnhancedEntry{5, 0, "other or undefined protocol status"},
    EnhancedEntry{5, 1, "invalid command"},
    EnhancedEntry{5, 2, "syntax error"},
    EnhancedEntry{5, 3, "too many recipients"},
    EnhancedEntry{5, 4, "invalid command arguments"},
    EnhancedEntry{5, 5, "wrong protocol version"},
    EnhancedEntry{5, 6, "authentication exchange line is too long"},
    EnhancedEntry{6, 0, "other or undefined media error"},
    EnhancedEntry{6, 1, "media not supported"},
    EnhancedEntry{6, 2, "conversion required and prohibited"},
    EnhancedEntry{6, 3, "conversion required but not supported"},
    EnhancedEntry{6, 4, "conversion with loss performed"},
    EnhancedEntry{6, 5, "conversion failed"},
    EnhancedEntry{6, 6, "message content not available"},
    EnhancedEntry{6, 7, "non-ASCII addresses not permitted for that sender/recipient"},
    EnhancedEntry{6, 8, "UTF-8 string reply is required, but not permitted by the SMTP client"},
    EnhancedEntry{6, 9, "UTF-8 header message cannot be transferred to one or more recipients"},
    EnhancedEntry{6, 10,
                  "UTF-8 string reply is required, but not permitted by the SMTP client "
                  "(deprecated duplicate of X.6.8)"},
    EnhancedEntry{7, 0, "other or undefined security status"},
    EnhancedEntry{7, 1, "delivery not authorized, message refused (greylisting or policy)"},
    EnhancedEntry{7, 2, "mailing list expansion prohibited"},
    EnhancedEntry{7, 3, "security conversion required but not possible"},
    EnhancedEntry{7, 4, "security features not supported"},
    EnhancedEntry{7, 5, "cryptographic failure"},
    EnhancedEntry{7, 6, "cryptographic algorithm not supported"},
    EnhancedEntry{7, 7, "message integrity failure"},
    EnhancedEntry{7, 8, "authentication credentials invalid"},
    EnhancedEntry{7, 9, "authentication mechanism is too weak"},
    EnhancedEntry{7, 10, "encryption needed"},
    EnhancedEntry{7, 11, "encryption required for requested authentication mechanism"},
    EnhancedEntry{7, 12, "a password transition is needed"},
    EnhancedEntry{7, 13, "user account disabled"},
    EnhancedEntry{7, 14, "trust relationship required"},
    EnhancedEntry{7, 15, "priority level is too low"},
    EnhancedEntry{7, 16, "message is too big for the specified priority"},
    EnhancedEntry{7, 17, "mailbox owner has changed"},
    EnhancedEntry{7, 18, "domain owner has changed"},
    EnhancedEntry{7, 19, "RRVS test cannot be completed"},
    EnhancedEntry{7, 20, "no passing DKIM signature found"},
    EnhancedEntry{7, 21, "no acceptable DKIM signature found"},
    EnhancedEntry{7, 22, "no valid author-matched DKIM signature found"},
    EnhancedEntry{7, 23, "SPF validation failed"},
    EnhancedEntry{7, 24, "SPF validation error"},
    EnhancedEntry{7, 25, "reverse DNS validation failed"},
    EnhancedEntry{7, 26, "multiple authentication checks failed"},
    EnhancedEntry{7, 27, "sender address has null MX"},
    EnhancedEntry{7, 28, "mail flood detected"},
    EnhancedEntry{7, 29, "ARC validation failure"},
    EnhancedEntry{7, 30, "REQUIRETLS support required"},
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// 1-3 digits from `at` up to `end` as a number, or -1.
int small_number(std::string_view text, std::size_t at, std::size_t end) {
  if (end <= at || end - at > 3) return -1;
  int value = 0;
  for (std::size_t i = at; i < end; ++i) {
    if (!is_digit(text[i])) return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

const EnhancedEntry* find_enhanced(int subject, int detail) {
  for (const auto& entry : enhanced_codes) {
    if (entry.subject == subject && entry.detail == detail) return &entry;
  }
  return nullptr;
}

}  // namespace

std::optional<CodeMeaning> describe_reply_code(int code) {
  for (const auto& entry : reply_codes) {
    if (entry.code == code) {
      auto severity = code < 300   ? Severity::positive
                      : code < 400 ? Severity::intermediate
                      : code < 500 ? Severity::transient
                                   : Severity::permanent;
      return CodeMeaning{entry.meaning, severity};
    }
  }
  return std::nullopt;
}

std::optional<CodeMeaning> describe_enhanced(std::string_view enhanced) {
  if (enhanced.size() < 5 || enhanced[1] != '.') return std::nullopt;
  Severity severity;
  switch (enhanced[0]) {
    case '2':
      severity = Severity::positive;
      break;
    case '4':
      severity = Severity::transient;
      break;
    case '5':
      severity = Severity::permanent;
      break;
    default:
      return std::nullopt;
  }
  std::size_t dot = enhanced.find('.', 2);
  if (dot == std::string_view::npos) return std::nullopt;
  int subject = small_number(enhanced, 2, dot);
  int detail = small_number(enhanced, dot + 1, enhanced.size());
  if (subject < 0 || detail < 0) return std::nullopt;

  const EnhancedEntry* entry = find_enhanced(subject, detail);
  if (!entry) entry = find_enhanced(subject, 0);
  if (!entry) entry = find_enhanced(0, 0);
  return CodeMeaning{entry->meaning, severity};
}

}  // namespace smtpsh::smtp
