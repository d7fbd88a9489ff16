#include "engine/smtp/message.hpp"

#include <doctest/doctest.h>

using namespace smtpsh::smtp;

TEST_CASE("DATA framing: CRLF line ends, dots doubled, terminator added") {
  CHECK(frame_for_data("") == ".\r\n");
  CHECK(frame_for_data("a") == "a\r\n.\r\n");
  CHECK(frame_for_data("a\r\n") == "a\r\n.\r\n");
  CHECK(frame_for_data("a\nb\n") == "a\r\nb\r\n.\r\n");
  CHECK(frame_for_data("a\rb") == "a\r\nb\r\n.\r\n");
  CHECK(frame_for_data(".") == "..\r\n.\r\n");
  CHECK(frame_for_data(".hidden\n..two\nmid.dle\n") == "..hidden\r\n...two\r\nmid.dle\r\n.\r\n");
  CHECK(frame_for_data("x\r\n.\r\ny") == "x\r\n..\r\ny\r\n.\r\n");
  CHECK(frame_for_data("\n\n") == "\r\n\r\n.\r\n");
  CHECK(frame_for_data("caf\xc3\xa9\n") == "caf\xc3\xa9\r\n.\r\n");
}

TEST_CASE("BDAT bodies get CRLF line ends but no dot rules") {
  CHECK(normalise_line_ends(".a\nb") == ".a\r\nb\r\n");
  CHECK(normalise_line_ends("") == "");
}

TEST_CASE("line breaks anywhere in an argument are found") {
  CHECK(has_line_break("a\rb"));
  CHECK(has_line_break("a\n"));
  CHECK(has_line_break("\r\nRSET"));
  CHECK_FALSE(has_line_break("user@example.test SIZE=10"));
}
