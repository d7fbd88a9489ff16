#include "engine/smtp/auth.hpp"

#include <doctest/doctest.h>

using namespace smtpsh::smtp;

TEST_CASE("base64 both ways, with every padding length") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_decode("Zg==") == "f");
  CHECK(base64_decode("Zm8=") == "fo");
  CHECK(base64_decode("Zm9v") == "foo");
  CHECK(base64_decode(base64_encode(std::string("\0\xff\x01", 3))) == std::string("\0\xff\x01", 3));
  CHECK_FALSE(base64_decode("Zm9"));
  CHECK_FALSE(base64_decode("Zm9v!!!!"));
}

TEST_CASE("AUTH PLAIN is base64 of NUL user NUL secret (RFC 4616)") {
  CHECK(plain_response("alice", "s3cret") == "AGFsaWNlAHMzY3JldA==");
}

TEST_CASE("CRAM-MD5 answers the RFC 2195 example") {
  auto answer = cram_md5_response("tim", "tanstaaftanstaaf",
                                  "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
  REQUIRE(answer);
  CHECK(*answer == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
  CHECK_FALSE(cram_md5_response("tim", "x", "not base64!"));
}
