#include "engine/smtp/reply.hpp"

#include <doctest/doctest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpsh::smtp;
using Status = ReplyParser::Status;

namespace {

// Everything a parse can tell, so one comparison covers it all.
struct Outcome {
  Status status = Status::need_more;
  int code = 0;
  std::string enhanced;
  std::vector<std::string> lines;
  std::string error;
  std::size_t consumed = 0;
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Outcome& outcome) {
  static constexpr const char* names[] = {"need_more", "done", "error"};
  out << "{" << names[static_cast<int>(outcome.status)] << " code=" << outcome.code << " enhanced='"
      << outcome.enhanced << "' lines=" << outcome.lines.size();
  for (const auto& line : outcome.lines)
    out << " [" << line.substr(0, 40) << "]";
  return out << " error='" << outcome.error << "' consumed=" << outcome.consumed << "}";
}

Outcome done(int code, std::string enhanced, std::vector<std::string> lines, std::size_t consumed) {
  return {Status::done, code, std::move(enhanced), std::move(lines), "", consumed};
}

Outcome failed(std::string error, std::size_t consumed) {
  return {Status::error, 0, "", {}, std::move(error), consumed};
}

// Takes what the parser says once it has stopped wanting bytes.
void record(const ReplyParser& parser, Status status, Outcome& outcome) {
  outcome.status = status;
  if (status == Status::done) {
    outcome.code = parser.reply().code;
    outcome.enhanced = parser.reply().enhanced;
    outcome.lines = parser.reply().lines;
  } else if (status == Status::error) {
    outcome.error = parser.error();
  }
}

// Feeds `input` to one parser in chunks ending at each of `cuts` (ascending) and at the end,
// stopping at the first reply or error.
Outcome feed_chunks(std::string_view input, const std::vector<std::size_t>& cuts) {
  ReplyParser parser;
  Outcome outcome;
  Status status = Status::need_more;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    std::size_t end = i < cuts.size() ? cuts[i] : input.size();
    std::string_view chunk = input.substr(start, end - start);
    std::size_t taken = parser.put(chunk, status);
    outcome.consumed += taken;
    if (status != Status::need_more) break;
    // Until it completes, a reply takes every byte it is given.
    REQUIRE(taken == chunk.size());
    start = end;
  }
  record(parser, status, outcome);
  return outcome;
}

Outcome feed_bytewise(std::string_view input) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < input.size(); ++i)
    cuts.push_back(i);
  return feed_chunks(input, cuts);
}

// The lines as engine/net would deliver them (LF-split, one CR before it dropped), fed with
// feed_line(); consumed counts the lines' bytes as put() would have.
Outcome feed_lines(std::string_view input) {
  ReplyParser parser;
  Outcome outcome;
  Status status = Status::need_more;
  std::size_t start = 0;
  while (status == Status::need_more) {
    std::size_t lf = input.find('\n', start);
    if (lf == std::string_view::npos) break;
    std::string_view line = input.substr(start, lf - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    status = parser.feed_line(line);
    start = lf + 1;
  }
  outcome.consumed = start;
  record(parser, status, outcome);
  return outcome;
}

// Beast's "parsegrind": the same input must give the same result however it is split.
void grind(std::string_view input, const Outcome& expected) {
  CAPTURE(input);
  CHECK(feed_chunks(input, {}) == expected);
  CHECK(feed_bytewise(input) == expected);
  for (std::size_t i = 0; i <= input.size(); ++i) {
    CAPTURE(i);
    CHECK(feed_chunks(input, {i}) == expected);
  }
  // Every pair of cuts too while that stays cheap.
  if (input.size() <= 400) {
    for (std::size_t i = 1; i < input.size(); ++i) {
      for (std::size_t j = i + 1; j < input.size(); ++j) {
        CAPTURE(i);
        CAPTURE(j);
        REQUIRE(feed_chunks(input, {i, j}) == expected);
      }
    }
  }
  if (input.ends_with('\n')) CHECK(feed_lines(input) == expected);
}

// Every reply of a pipelined stream, resetting after each and feeding on from the byte the
// previous reply left unconsumed.
std::vector<Outcome> feed_stream(std::string_view input, const std::vector<std::size_t>& cuts) {
  std::vector<Outcome> outcomes;
  ReplyParser parser;
  Outcome current;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    std::size_t end = i < cuts.size() ? cuts[i] : input.size();
    std::string_view chunk = input.substr(start, end - start);
    while (!chunk.empty()) {
      Status status = Status::need_more;
      std::size_t taken = parser.put(chunk, status);
      current.consumed += taken;
      chunk.remove_prefix(taken);
      if (status == Status::need_more) break;
      record(parser, status, current);
      outcomes.push_back(std::move(current));
      current = Outcome{};
      if (status == Status::error) return outcomes;
      parser.reset();
    }
    start = end;
  }
  return outcomes;
}

std::string repeat(char c, std::size_t n) {
  return std::string(n, c);
}

const char* const postfix_ehlo =
    "250-mx.example.test\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-VRFY\r\n"
    "250-ETRN\r\n"
    "250-STARTTLS\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n";

}  // namespace

TEST_CASE("a single-line reply, at every split") {
  grind("220 mx.example.test ESMTP Postfix (Debian/GNU)\r\n",
        done(220, "", {"mx.example.test ESMTP Postfix (Debian/GNU)"}, 48));
  grind("250 2.0.0 Ok: queued as 4BQzZr1Xq1z9\r\n",
        done(250, "2.0.0", {"2.0.0 Ok: queued as 4BQzZr1Xq1z9"}, 38));
  grind("354 End data with <CR><LF>.<CR><LF>\r\n",
        done(354, "", {"End data with <CR><LF>.<CR><LF>"}, 37));
}

TEST_CASE("421 with an enhanced code") {
  std::string input = "421 4.4.2 mx.example.test Error: timeout exceeded\r\n";
  grind(input, done(421, "4.4.2", {"4.4.2 mx.example.test Error: timeout exceeded"}, input.size()));
  ReplyParser parser;
  Status status;
  parser.put(input, status);
  REQUIRE(status == Status::done);
  CHECK(parser.reply().text() == "mx.example.test Error: timeout exceeded");
  CHECK(parser.reply().transient());
  CHECK_FALSE(parser.reply().ok());
  CHECK_FALSE(parser.reply().permanent());
}

TEST_CASE("multi-line EHLO replies of real servers, at every split") {
  grind(postfix_ehlo,
        done(250, "",
             {"mx.example.test", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
              "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"},
             std::string_view(postfix_ehlo).size()));

  std::string exim =
      "250-mail.example.org Hello client.example.net [192.0.2.10]\r\n"
      "250-SIZE 52428800\r\n"
      "250-8BITMIME\r\n"
      "250-PIPELINING\r\n"
      "250-PIPE_CONNECT\r\n"
      "250-AUTH PLAIN LOGIN\r\n"
      "250-CHUNKING\r\n"
      "250-STARTTLS\r\n"
      "250-PRDR\r\n"
      "250 HELP\r\n";
  grind(exim, done(250, "",
                   {"mail.example.org Hello client.example.net [192.0.2.10]", "SIZE 52428800",
                    "8BITMIME", "PIPELINING", "PIPE_CONNECT", "AUTH PLAIN LOGIN", "CHUNKING",
                    "STARTTLS", "PRDR", "HELP"},
                   exim.size()));

  std::string gmail =
      "250-smtp.mail.example at your service, [192.0.2.10]\r\n"
      "250-SIZE 35882577\r\n"
      "250-8BITMIME\r\n"
      "250-STARTTLS\r\n"
      "250-ENHANCEDSTATUSCODES\r\n"
      "250-PIPELINING\r\n"
      "250-CHUNKING\r\n"
      "250 SMTPUTF8\r\n";
  grind(gmail, done(250, "",
                    {"smtp.mail.example at your service, [192.0.2.10]", "SIZE 35882577", "8BITMIME",
                     "STARTTLS", "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"},
                    gmail.size()));

  std::string microsoft =
      "250-AM0PR01MB0001.eurprd01.prod.example.com Hello [192.0.2.10]\r\n"
      "250-SIZE 157286400\r\n"
      "250-PIPELINING\r\n"
      "250-DSN\r\n"
      "250-ENHANCEDSTATUSCODES\r\n"
      "250-AUTH LOGIN XOAUTH2\r\n"
      "250-8BITMIME\r\n"
      "250-BINARYMIME\r\n"
      "250-CHUNKING\r\n"
      "250 SMTPUTF8\r\n";
  grind(microsoft, done(250, "",
                        {"AM0PR01MB0001.eurprd01.prod.example.com Hello [192.0.2.10]",
                         "SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES",
                         "AUTH LOGIN XOAUTH2", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"},
                        microsoft.size()));
}

TEST_CASE("smtp-sink's EHLO ends with an empty line") {
  std::string sink =
      "250-sink.example.test\r\n"
      "250-PIPELINING\r\n"
      "250-8BITMIME\r\n"
      "250-AUTH PLAIN LOGIN\r\n"
      "250-XCLIENT NAME HELO\r\n"
      "250-XFORWARD NAME ADDR PROTO HELO\r\n"
      "250-ENHANCEDSTATUSCODES\r\n"
      "250-SMTPUTF8\r\n"
      "250-SIZE\r\n"
      "250 \r\n";
  grind(sink, done(250, "",
                   {"sink.example.test", "PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN",
                    "XCLIENT NAME HELO", "XFORWARD NAME ADDR PROTO HELO", "ENHANCEDSTATUSCODES",
                    "SMTPUTF8", "SIZE", ""},
                   sink.size()));
}

TEST_CASE("sloppy servers: bare LF, a bare code, no space after the code, trailing spaces") {
  grind("250-a\n250 b\n", done(250, "", {"a", "b"}, 12));
  grind("250-a\r\n250 b\n", done(250, "", {"a", "b"}, 13));
  grind("250\r\n", done(250, "", {""}, 5));
  grind("250-first\r\n250\r\n", done(250, "", {"first", ""}, 16));
  grind("250OK\r\n", done(250, "", {"OK"}, 7));
  grind("250 OK  \r\n", done(250, "", {"OK  "}, 10));
  grind("250  two spaces\r\n", done(250, "", {" two spaces"}, 17));
  // Only the CR right before the LF goes; any other is text.
  grind("250 a\rb\r\r\n", done(250, "", {"a\rb\r"}, 10));
  grind("250-\r\n250 x\r\n", done(250, "", {"", "x"}, 13));
}

TEST_CASE("a multi-line refusal with the enhanced code on every line") {
  std::string input =
      "550-5.7.1 [192.0.2.10] The IP you're using to send mail is not authorized to\r\n"
      "550-5.7.1 send email directly to our servers. Please use the SMTP relay at your\r\n"
      "550 5.7.1 service provider instead. x1si2 - gsmtp\r\n";
  grind(input, done(550, "5.7.1",
                    {"5.7.1 [192.0.2.10] The IP you're using to send mail is not authorized to",
                     "5.7.1 send email directly to our servers. Please use the SMTP relay at your",
                     "5.7.1 service provider instead. x1si2 - gsmtp"},
                    input.size()));
  ReplyParser parser;
  Status status;
  parser.put(input, status);
  REQUIRE(status == Status::done);
  CHECK(parser.reply().text() ==
        "[192.0.2.10] The IP you're using to send mail is not authorized to\n"
        "send email directly to our servers. Please use the SMTP relay at your\n"
        "service provider instead. x1si2 - gsmtp");
  CHECK(parser.reply().permanent());
}

TEST_CASE("enhanced codes: taken from the first line, class matching the reply code") {
  struct Case {
    const char* line;
    const char* enhanced;
    const char* text;
  };
  const Case cases[] = {
      {"250 2.0.0 Ok", "2.0.0", "Ok"},
      {"550 5.1.1 <nobody@example.test>: Recipient address rejected", "5.1.1",
       "<nobody@example.test>: Recipient address rejected"},
      {"452 4.5.3 Too many recipients", "4.5.3", "Too many recipients"},
      {"554 5.7.30 REQUIRETLS support required", "5.7.30", "REQUIRETLS support required"},
      {"550 5.123.456 x", "5.123.456", "x"},
      {"250 2.0.0", "2.0.0", ""},
      {"250 4.0.0 class does not match", "", "4.0.0 class does not match"},
      {"354 2.0.0 no enhanced codes on 3xx", "", "2.0.0 no enhanced codes on 3xx"},
      {"250 3.0.0 no class 3", "", "3.0.0 no class 3"},
      {"250 2.0.0x", "", "2.0.0x"},
      {"250 2.0.0: ok", "", "2.0.0: ok"},
      {"250 2.1000.0 x", "", "2.1000.0 x"},
      {"250 2.0.1000 x", "", "2.0.1000 x"},
      {"250 2..0 x", "", "2..0 x"},
      {"250 2.0. x", "", "2.0. x"},
      {"250 2.0", "", "2.0"},
      {"250  2.0.0 leading space", "", " 2.0.0 leading space"},
      {"250-2.0.0 on a continuation", "2.0.0", "on a continuation"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    ReplyParser parser;
    Status status = parser.feed_line(c.line);
    if (status == Status::need_more) status = parser.feed_line("250 2.0.0 end");
    REQUIRE(status == Status::done);
    CHECK(parser.reply().enhanced == c.enhanced);
    CHECK(parser.reply().text().substr(0, parser.reply().text().find('\n')) == c.text);
  }
}

TEST_CASE("text() strips only the first line's enhanced code") {
  ReplyParser parser;
  CHECK(parser.feed_line("250-hello") == Status::need_more);
  CHECK(parser.feed_line("250 2.0.0 ok") == Status::done);
  CHECK(parser.reply().enhanced == "");
  CHECK(parser.reply().text() == "hello\n2.0.0 ok");

  parser.reset();
  CHECK(parser.feed_line("550-5.7.1 a") == Status::need_more);
  CHECK(parser.feed_line("550-5.7.0 b") == Status::need_more);
  CHECK(parser.feed_line("550 5.7.1") == Status::done);
  CHECK(parser.reply().enhanced == "5.7.1");
  CHECK(parser.reply().text() == "a\n5.7.0 b\n");
}

TEST_CASE("without_enhanced") {
  CHECK(without_enhanced("2.0.0 Ok", "2.0.0") == "Ok");
  CHECK(without_enhanced("2.0.0", "2.0.0") == "");
  CHECK(without_enhanced("2.0.00 Ok", "2.0.0") == "2.0.00 Ok");
  CHECK(without_enhanced("2.0.1 Ok", "2.0.0") == "2.0.1 Ok");
  CHECK(without_enhanced("2.0.0 Ok", "") == "2.0.0 Ok");
  CHECK(without_enhanced("", "2.0.0") == "");
}

TEST_CASE("Reply: classes, text() and to_string()") {
  Reply reply{250, "", {"mx.example.test", "PIPELINING", "SIZE 1000"}};
  CHECK(reply.ok());
  CHECK_FALSE(reply.transient());
  CHECK_FALSE(reply.permanent());
  CHECK(reply.text() == "mx.example.test\nPIPELINING\nSIZE 1000");
  CHECK(reply.to_string() == "250-mx.example.test\n250-PIPELINING\n250 SIZE 1000");

  CHECK(Reply{354, "", {"go"}}.ok());
  CHECK(Reply{221, "2.0.0", {"2.0.0 Bye"}}.to_string() == "221 2.0.0 Bye");
  CHECK(Reply{221, "2.0.0", {"2.0.0 Bye"}}.text() == "Bye");
  CHECK(Reply{451, "", {"x"}}.transient());
  CHECK_FALSE(Reply{451, "", {"x"}}.ok());
  CHECK(Reply{554, "", {"x"}}.permanent());
  CHECK_FALSE(Reply{554, "", {"x"}}.transient());
  CHECK_FALSE(Reply{}.ok());
  CHECK_FALSE(Reply{}.transient());
  CHECK_FALSE(Reply{}.permanent());
  CHECK(Reply{}.to_string() == "");
  CHECK(Reply{}.text() == "");
  // A last line without text is the bare code, as RFC 5321 allows.
  CHECK(Reply{250, "", {"a", ""}}.to_string() == "250-a\n250");
  CHECK(Reply{250, "", {"", "b"}}.to_string() == "250-\n250 b");
  CHECK(Reply{250, "", {"OK  "}}.to_string() == "250 OK  ");
}

TEST_CASE("to_string() of parsed replies") {
  const std::pair<const char*, const char*> cases[] = {
      {"250-a\r\n250 b\r\n", "250-a\n250 b"},
      {"250OK\r\n", "250 OK"},
      {"250 \r\n", "250"},
      {"250\r\n", "250"},
      {"421 4.4.2 bye\n", "421 4.4.2 bye"},
  };
  for (const auto& [wire, canonical] : cases) {
    const char* input = wire;  // CAPTURE cannot take a structured binding with clang 14
    CAPTURE(input);
    ReplyParser parser;
    Status status;
    parser.put(input, status);
    REQUIRE(status == Status::done);
    CHECK(parser.reply().to_string() == canonical);
  }
}

TEST_CASE("pipelined replies in one buffer: each put() stops at the end of its reply") {
  std::string first = "250 2.1.0 Ok\r\n";
  std::string second = "250-2.1.5 Ok\r\n250 2.1.5 more\r\n";
  std::string third = "354 End data with <CR><LF>.<CR><LF>\n";
  std::string input = first + second + third;

  ReplyParser parser;
  Status status = Status::need_more;
  std::string_view rest = input;
  std::size_t taken = parser.put(rest, status);
  CHECK(taken == first.size());
  REQUIRE(status == Status::done);
  CHECK(parser.reply().lines == std::vector<std::string>{"2.1.0 Ok"});
  // Done: nothing more is taken until reset().
  CHECK(parser.put(rest.substr(taken), status) == 0);
  CHECK(status == Status::done);
  CHECK(parser.feed_line("550 no") == Status::done);
  CHECK(parser.reply().code == 250);
  CHECK(parser.reply().lines.size() == 1);

  rest.remove_prefix(taken);
  parser.reset();
  taken = parser.put(rest, status);
  CHECK(taken == second.size());
  REQUIRE(status == Status::done);
  CHECK(parser.reply().lines == std::vector<std::string>{"2.1.5 Ok", "2.1.5 more"});

  rest.remove_prefix(taken);
  parser.reset();
  taken = parser.put(rest, status);
  CHECK(taken == third.size());
  REQUIRE(status == Status::done);
  CHECK(parser.reply().code == 354);

  const std::vector<Outcome> expected = {
      done(250, "2.1.0", {"2.1.0 Ok"}, first.size()),
      done(250, "2.1.5", {"2.1.5 Ok", "2.1.5 more"}, second.size()),
      done(354, "", {"End data with <CR><LF>.<CR><LF>"}, third.size()),
  };
  CHECK(feed_stream(input, {}) == expected);
  for (std::size_t i = 0; i <= input.size(); ++i) {
    CAPTURE(i);
    CHECK(feed_stream(input, {i}) == expected);
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < input.size(); ++i)
    every.push_back(i);
  CHECK(feed_stream(input, every) == expected);
}

TEST_CASE("a pipelined reply after an error is never reached") {
  std::string input = "250 ok\r\nbogus\r\n250 ok\r\n";
  const std::vector<Outcome> expected = {
      done(250, "", {"ok"}, 8),
      failed(R"(reply line 1 does not start with a three-digit code from 200 to 599: "bogus")", 7),
  };
  for (std::size_t i = 0; i <= input.size(); ++i) {
    CAPTURE(i);
    CHECK(feed_stream(input, {i}) == expected);
  }
}

TEST_CASE("malformed replies are errors with a reason, at every split") {
  const std::string bad_start = "does not start with a three-digit code from 200 to 599: ";
  grind("hello\r\n", failed("reply line 1 " + bad_start + "\"hello\"", 7));
  grind("25\r\n", failed("reply line 1 " + bad_start + "\"25\"", 4));
  grind("25 x\r\n", failed("reply line 1 " + bad_start + "\"25 x\"", 6));
  grind("099 x\r\n", failed("reply line 1 " + bad_start + "\"099 x\"", 7));
  grind("199 x\r\n", failed("reply line 1 " + bad_start + "\"199 x\"", 7));
  grind("600 x\r\n", failed("reply line 1 " + bad_start + "\"600 x\"", 7));
  grind("2x0 x\r\n", failed("reply line 1 " + bad_start + "\"2x0 x\"", 7));
  // Four digits are no three-digit code with text after it (no 250 reading "0 ok").
  grind("2500 ok\r\n", failed("reply line 1 " + bad_start + "\"2500 ok\"", 9));
  grind("250-a\r\n2500 b\r\n", failed("reply line 2 " + bad_start + "\"2500 b\"", 15));
  grind("\r\n", failed("reply line 1 " + bad_start + "\"\"", 2));
  grind(" 250 x\n", failed("reply line 1 " + bad_start + "\" 250 x\"", 7));
  grind("250-a\r\nxyz\r\n250 b\r\n", failed("reply line 2 " + bad_start + "\"xyz\"", 12));
  grind("250-a\r\n\r\n", failed("reply line 2 " + bad_start + "\"\"", 9));
  grind("250-a\r\n550 b\r\n", failed("reply line 2 has code 550, the reply began with 250", 14));
  grind("250-a\r\n250-b\r\n251 c\r\n",
        failed("reply line 3 has code 251, the reply began with 250", 21));
  // The peer's bytes are shown printable and cut short.
  grind("\x01\"q\\\xff\r\n", failed("reply line 1 " + bad_start + R"("\x01\"q\\\xff")", 7));
  grind(repeat('a', 40) + "\n",
        failed("reply line 1 " + bad_start + "\"" + repeat('a', 32) + "...\"", 41));
}

TEST_CASE("after an error the parser stays in error until reset()") {
  ReplyParser parser;
  Status status = Status::need_more;
  CHECK(parser.put("nope\r\n250 ok\r\n", status) == 6);
  REQUIRE(status == Status::error);
  CHECK(parser.put("250 ok\r\n", status) == 0);
  CHECK(status == Status::error);
  CHECK(parser.feed_line("250 ok") == Status::error);
  CHECK(parser.status() == Status::error);
  CHECK(parser.error() ==
        R"(reply line 1 does not start with a three-digit code from 200 to 599: "nope")");

  parser.reset();
  CHECK(parser.error().empty());
  CHECK(parser.status() == Status::need_more);
  CHECK(parser.put("250 ok\r\n", status) == 8);
  CHECK(status == Status::done);
  CHECK(parser.reply().lines == std::vector<std::string>{"ok"});
}

TEST_CASE("reset() drops a half-read line and a half-read reply") {
  ReplyParser parser;
  Status status;
  CHECK(parser.put("250-a\r\n451 hal", status) == 14);
  CHECK(status == Status::need_more);
  parser.reset();
  CHECK(parser.put("f\r\n", status) == 3);
  CHECK(status == Status::error);
  CHECK(parser.error() ==
        R"(reply line 1 does not start with a three-digit code from 200 to 599: "f")");
}

TEST_CASE("an empty put() or an unfinished line wants more") {
  ReplyParser parser;
  Status status = Status::done;
  CHECK(parser.put("", status) == 0);
  CHECK(status == Status::need_more);
  CHECK(parser.put("250 no line end yet", status) == 19);
  CHECK(status == Status::need_more);
  CHECK(parser.put("\r", status) == 1);
  CHECK(status == Status::need_more);
  CHECK(parser.put("\n", status) == 1);
  CHECK(status == Status::done);
  CHECK(parser.reply().lines == std::vector<std::string>{"no line end yet"});
}

TEST_CASE("a line of exactly 64 KiB passes, one byte more fails") {
  const std::size_t max = ReplyParser::max_line;
  REQUIRE(max == 65536);
  std::string text_at_limit = repeat('x', max - 4);  // "250 " + text = 65536 bytes

  for (const char* end : {"\r\n", "\n"}) {
    CAPTURE(std::string_view(end).size());
    std::string input = "250 " + text_at_limit + end;
    Outcome expected = done(250, "", {text_at_limit}, input.size());
    CHECK(feed_chunks(input, {}) == expected);
    CHECK(feed_bytewise(input) == expected);
    CHECK(feed_lines(input) == expected);
    for (std::size_t cut : {std::size_t{1}, std::size_t{4}, max - 1, max, max + 1, max + 2}) {
      CAPTURE(cut);
      CHECK(feed_chunks(input, {cut}) == expected);
    }

    std::string over = "250 " + text_at_limit + "y" + end;
    // Refused at the byte past the limit, before its line ends.
    Outcome refused = failed("reply line 1 is longer than 65536 bytes", max + 1);
    CHECK(feed_chunks(over, {}) == refused);
    CHECK(feed_bytewise(over) == refused);
    CHECK(feed_lines(over) == failed(refused.error, over.size()));
    for (std::size_t cut : {std::size_t{1}, max - 1, max, max + 1, max + 2}) {
      CAPTURE(cut);
      CHECK(feed_chunks(over, {cut}) == refused);
    }
  }

  // A CR at the limit may only be the CR of a CRLF.
  std::string cr_then_text = "250 " + text_at_limit + "\rz\r\n";
  Outcome refused = failed("reply line 1 is longer than 65536 bytes", max + 2);
  CHECK(feed_chunks(cr_then_text, {}) == refused);
  CHECK(feed_bytewise(cr_then_text) == refused);
  CHECK(feed_chunks(cr_then_text, {max + 1}) == refused);
  std::string two_crs = "250 " + text_at_limit + "\r\r\n";
  CHECK(feed_chunks(two_crs, {}) == refused);
  CHECK(feed_chunks(two_crs, {max + 1}) == refused);

  // The line end may never come: refused all the same, without buffering without bound.
  std::string endless = "250 " + repeat('x', 3 * max);
  CHECK(feed_chunks(endless, {}) == failed("reply line 1 is longer than 65536 bytes", max + 1));
  CHECK(feed_chunks(endless, {100, 2 * max}) ==
        failed("reply line 1 is longer than 65536 bytes", max + 1));

  // The limit holds for every line, and the message names the line.
  std::string second = "250-a\r\n250 " + text_at_limit + "yy\r\n";
  CHECK(feed_chunks(second, {}) == failed("reply line 2 is longer than 65536 bytes", 7 + max + 1));

  ReplyParser parser;
  CHECK(parser.feed_line("250 " + text_at_limit) == Status::done);
  parser.reset();
  CHECK(parser.feed_line("250 " + text_at_limit + "y") == Status::error);
  CHECK(parser.error() == "reply line 1 is longer than 65536 bytes");
}

TEST_CASE("a reply of exactly 1000 lines passes, 1001 fail") {
  REQUIRE(ReplyParser::max_lines == 1000);
  std::string at_limit;
  std::vector<std::string> lines;
  for (int i = 0; i < 999; ++i) {
    at_limit += "250-x\r\n";
    lines.emplace_back("x");
  }
  std::string over = at_limit + "250-x\r\n250 x\r\n";
  at_limit += "250 x\r\n";
  lines.emplace_back("x");

  Outcome expected = done(250, "", lines, at_limit.size());
  CHECK(feed_chunks(at_limit, {}) == expected);
  CHECK(feed_bytewise(at_limit) == expected);
  CHECK(feed_lines(at_limit) == expected);
  for (std::size_t i = 0; i <= at_limit.size(); i += 7 * 37 + 3) {
    CAPTURE(i);
    CHECK(feed_chunks(at_limit, {i}) == expected);
  }

  Outcome refused = failed("reply has more than 1000 lines", over.size());
  CHECK(feed_chunks(over, {}) == refused);
  CHECK(feed_bytewise(over) == refused);
  CHECK(feed_lines(over) == refused);
  CHECK(feed_chunks(over, {at_limit.size() - 3}) == refused);
}
