#include "engine/smtp/capabilities.hpp"

#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <vector>

using namespace smtpsh::smtp;

namespace {

// The EHLO reply as it comes off the wire, through the real parser.
Capabilities parse_wire(std::string_view wire) {
  ReplyParser parser;
  ReplyParser::Status status;
  parser.put(wire, status);
  INFO(wire);
  REQUIRE(status == ReplyParser::Status::done);
  return parse_capabilities(parser.reply());
}

Capabilities parse_lines(std::vector<std::string> lines) {
  return parse_capabilities(Reply{250, "", std::move(lines)});
}

std::vector<std::string> keywords(const Capabilities& capabilities) {
  std::vector<std::string> out;
  for (const auto& capability : capabilities.list)
    out.push_back(capability.keyword);
  return out;
}

using Words = std::vector<std::string>;

// The parameters of a keyword that must be there.
Words params(const Capabilities& capabilities, std::string_view keyword) {
  const Capability* capability = capabilities.find(keyword);
  INFO(keyword);
  REQUIRE(capability != nullptr);
  return capability->params;
}

}  // namespace

TEST_CASE("Postfix") {
  auto caps = parse_wire(
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
      "250 CHUNKING\r\n");
  CHECK(caps.domain == "mx.example.test");
  CHECK(caps.greeting == "");
  CHECK(keywords(caps) == Words{"PIPELINING", "SIZE", "VRFY", "ETRN", "STARTTLS",
                                "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"});
  CHECK(caps.size == 10240000u);
  REQUIRE(caps.find("SIZE") != nullptr);
  CHECK(params(caps, "SIZE") == Words{"10240000"});
  CHECK(params(caps, "PIPELINING").empty());
  for (const char* keyword : {"STARTTLS", "PIPELINING", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN",
                              "ENHANCEDSTATUSCODES", "starttls", "Chunking"}) {
    CAPTURE(keyword);
    CHECK(caps.has(keyword));
  }
  CHECK_FALSE(caps.has("AUTH"));
  CHECK_FALSE(caps.has("REQUIRETLS"));
  CHECK_FALSE(caps.has("PIPELININ"));
  CHECK_FALSE(caps.has(""));
  CHECK(caps.find("XCLIENT") == nullptr);
  CHECK(caps.auth.empty());
}

TEST_CASE("Exim: greeting, AUTH and unknown keywords") {
  auto caps = parse_wire(
      "250-mail.example.org Hello client.example.net [192.0.2.10]\r\n"
      "250-SIZE 52428800\r\n"
      "250-8BITMIME\r\n"
      "250-PIPELINING\r\n"
      "250-PIPE_CONNECT\r\n"
      "250-AUTH PLAIN LOGIN\r\n"
      "250-CHUNKING\r\n"
      "250-STARTTLS\r\n"
      "250-PRDR\r\n"
      "250 HELP\r\n");
  CHECK(caps.domain == "mail.example.org");
  CHECK(caps.greeting == "Hello client.example.net [192.0.2.10]");
  CHECK(caps.size == 52428800u);
  CHECK(caps.auth == Words{"PLAIN", "LOGIN"});
  CHECK(caps.has("AUTH"));
  CHECK(params(caps, "auth") == Words{"PLAIN", "LOGIN"});
  CHECK(caps.has("PIPE_CONNECT"));
  CHECK(caps.has("PRDR"));
  CHECK(caps.has("HELP"));
  CHECK(caps.list.size() == 9);
}

TEST_CASE("Gmail-like and Microsoft-like") {
  auto gmail = parse_wire(
      "250-smtp.mail.example at your service, [192.0.2.10]\r\n"
      "250-SIZE 35882577\r\n"
      "250-8BITMIME\r\n"
      "250-STARTTLS\r\n"
      "250-ENHANCEDSTATUSCODES\r\n"
      "250-PIPELINING\r\n"
      "250-CHUNKING\r\n"
      "250 SMTPUTF8\r\n");
  CHECK(gmail.domain == "smtp.mail.example");
  CHECK(gmail.greeting == "at your service, [192.0.2.10]");
  CHECK(gmail.size == 35882577u);
  CHECK(gmail.has("SMTPUTF8"));
  CHECK(gmail.list.size() == 7);

  auto microsoft = parse_wire(
      "250-AM0PR01MB0001.eurprd01.prod.example.com Hello [192.0.2.10]\r\n"
      "250-SIZE 157286400\r\n"
      "250-PIPELINING\r\n"
      "250-DSN\r\n"
      "250-ENHANCEDSTATUSCODES\r\n"
      "250-AUTH LOGIN XOAUTH2\r\n"
      "250-8BITMIME\r\n"
      "250-BINARYMIME\r\n"
      "250-CHUNKING\r\n"
      "250 SMTPUTF8\r\n");
  CHECK(microsoft.domain == "AM0PR01MB0001.eurprd01.prod.example.com");
  CHECK(microsoft.greeting == "Hello [192.0.2.10]");
  CHECK(microsoft.size == 157286400u);
  CHECK(microsoft.auth == Words{"LOGIN", "XOAUTH2"});
  CHECK(microsoft.has("BINARYMIME"));
}

TEST_CASE("smtp-sink: the empty last line is skipped, SIZE without a number") {
  auto caps = parse_wire(
      "250-sink.example.test\r\n"
      "250-PIPELINING\r\n"
      "250-8BITMIME\r\n"
      "250-AUTH PLAIN LOGIN\r\n"
      "250-XCLIENT NAME ADDR\r\n"
      "250-XFORWARD NAME ADDR PROTO HELO\r\n"
      "250-ENHANCEDSTATUSCODES\r\n"
      "250-SMTPUTF8\r\n"
      "250-SIZE\r\n"
      "250 \r\n");
  CHECK(keywords(caps) == Words{"PIPELINING", "8BITMIME", "AUTH", "XCLIENT", "XFORWARD",
                                "ENHANCEDSTATUSCODES", "SMTPUTF8", "SIZE"});
  CHECK(params(caps, "XCLIENT") == Words{"NAME", "ADDR"});
  CHECK(params(caps, "XFORWARD") == Words{"NAME", "ADDR", "PROTO", "HELO"});
  CHECK(caps.has("SIZE"));
  CHECK_FALSE(caps.size.has_value());
  CHECK(caps.auth == Words{"PLAIN", "LOGIN"});
}

TEST_CASE("the old AUTH= form, merged with AUTH, unique and upper-cased") {
  auto caps = parse_lines({"mx.example.test", "AUTH=LOGIN PLAIN", "AUTH LOGIN PLAIN CRAM-MD5",
                           "AUTH=login", "auth digest-md5 plain"});
  CHECK(caps.auth == Words{"LOGIN", "PLAIN", "CRAM-MD5", "DIGEST-MD5"});
  CHECK(keywords(caps) == Words{"AUTH=LOGIN", "AUTH", "AUTH=LOGIN", "AUTH"});
  CHECK(params(caps, "AUTH=login") == Words{"PLAIN"});
  // find() gives the first of repeated keywords.
  CHECK(params(caps, "AUTH") == Words{"LOGIN", "PLAIN", "CRAM-MD5"});

  auto old_only = parse_lines({"mx.example.test", "AUTH=LOGIN"});
  CHECK(old_only.auth == Words{"LOGIN"});
  CHECK_FALSE(old_only.has("AUTH"));
  CHECK(old_only.has("auth=login"));

  CHECK(parse_lines({"mx", "AUTH="}).auth.empty());
  CHECK(parse_lines({"mx", "AUTH"}).auth.empty());
  CHECK(parse_lines({"mx", "AUTH"}).has("AUTH"));
}

TEST_CASE("lower-case keywords and extra spaces") {
  auto caps = parse_lines({"  mx.example.test   Hello  there  ", "size   1000  ", "  starttls",
                           "xclient name  addr", "auth  plain\tlogin", "Pipelining  "});
  CHECK(caps.domain == "mx.example.test");
  CHECK(caps.greeting == "Hello  there");
  CHECK(keywords(caps) == Words{"SIZE", "STARTTLS", "XCLIENT", "AUTH", "PIPELINING"});
  CHECK(caps.size == 1000u);
  CHECK(params(caps, "SIZE") == Words{"1000"});
  // Parameters are kept as sent; only keywords and mechanisms are upper-cased.
  CHECK(params(caps, "XCLIENT") == Words{"name", "addr"});
  CHECK(caps.auth == Words{"PLAIN", "LOGIN"});
  CHECK(params(caps, "pipelining").empty());
}

TEST_CASE("SIZE: a number, 0, nothing or nonsense") {
  CHECK(parse_lines({"mx", "SIZE 0"}).size == 0u);
  CHECK(parse_lines({"mx", "SIZE 0"}).size.has_value());
  CHECK(parse_lines({"mx", "SIZE 18446744073709551615"}).size ==
        std::numeric_limits<std::uint64_t>::max());
  CHECK_FALSE(parse_lines({"mx", "SIZE 18446744073709551616"}).size.has_value());
  CHECK_FALSE(parse_lines({"mx", "SIZE"}).size.has_value());
  CHECK_FALSE(parse_lines({"mx", "SIZE abc"}).size.has_value());
  CHECK_FALSE(parse_lines({"mx", "SIZE 10M"}).size.has_value());
  CHECK_FALSE(parse_lines({"mx", "SIZE -1"}).size.has_value());
  CHECK_FALSE(parse_lines({"mx", "PIPELINING"}).size.has_value());
  CHECK(parse_lines({"mx", "SIZE 5 extra"}).size == 5u);
  CHECK(parse_lines({"mx", "SIZE 100", "SIZE 200"}).size == 100u);
}

TEST_CASE("the rest of RFC 5321's extensions and REQUIRETLS") {
  auto caps = parse_lines({"mx.example.test ESMTP", "STARTTLS", "PIPELINING", "8BITMIME",
                           "SMTPUTF8", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES", "REQUIRETLS",
                           "XCLIENT NAME ADDR", "MT-PRIORITY MIXER", "X-UNKNOWN-THING 1 2 3"});
  CHECK(caps.greeting == "ESMTP");
  CHECK(caps.list.size() == 11);
  for (const char* keyword :
       {"STARTTLS", "PIPELINING", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES",
        "REQUIRETLS", "XCLIENT", "MT-PRIORITY", "x-unknown-thing"}) {
    CAPTURE(keyword);
    CHECK(caps.has(keyword));
  }
  CHECK(params(caps, "X-UNKNOWN-THING") == Words{"1", "2", "3"});
  CHECK(params(caps, "MT-PRIORITY") == Words{"MIXER"});
}

TEST_CASE("short and odd replies") {
  auto single = parse_wire("250 mx.example.test\r\n");
  CHECK(single.domain == "mx.example.test");
  CHECK(single.greeting == "");
  CHECK(single.list.empty());

  auto bare = parse_wire("250\r\n");
  CHECK(bare.domain == "");
  CHECK(bare.list.empty());

  auto none = parse_capabilities(Reply{});
  CHECK(none.domain == "");
  CHECK(none.list.empty());
  CHECK_FALSE(none.size.has_value());

  // Empty and blank lines anywhere offer nothing.
  auto blanks = parse_lines({"mx", "", "  ", "DSN", "\t"});
  CHECK(keywords(blanks) == Words{"DSN"});

  // An enhanced code on EHLO lines is not part of the domain or a keyword.
  auto enhanced = parse_wire("250-2.0.0 mx.example.test Hello\r\n250 2.0.0 PIPELINING\r\n");
  CHECK(enhanced.domain == "mx.example.test");
  CHECK(enhanced.greeting == "Hello");
  CHECK(keywords(enhanced) == Words{"PIPELINING"});
}
