#pragma once
// A message as it travels after DATA (RFC 5321 section 4.5.2): CRLF line ends, a leading dot
// doubled, and the terminating "." line.

#include <string>
#include <string_view>

namespace smtpsh::smtp {

// Normalises bare LF and bare CR to CRLF, doubles a dot that starts a line, ends the last
// line if it was unterminated, and appends ".\r\n".
std::string frame_for_data(std::string_view message);

// Line ends normalised to CRLF, the last line terminated: what BDAT carries (no dot rules).
std::string normalise_line_ends(std::string_view message);

// Whether text holds a CR or LF: such an argument would smuggle a second command.
bool has_line_break(std::string_view text);

}  // namespace smtpsh::smtp
