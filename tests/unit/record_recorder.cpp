// engine/record/recorder: JSON string escaping, and the JSON Lines a Recorder writes to a real
// file: the start line, SMTP transcript lines, and the DNS answers a real resolver got from a
// replay DNS server on loopback.
#include "engine/dns/resolver.hpp"
#include "engine/record/recorder.hpp"
#include "engine/server/dns_replay.hpp"
#include "tests/support/operation.hpp"

#include "tests/support/dns_answer.hpp"

#include <doctest/doctest.h>
#include <ldns/ldns.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace smtpsh;
using namespace std::chrono_literals;

namespace {

using Op = test::Operation;

// A path in a fresh temp directory; the directory goes with the object.
class TempFile {
 public:
  TempFile() {
    std::string pattern = (std::filesystem::temp_directory_path() / "smtpsh-rec-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern;
  }
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string path() const { return (dir_ / "recording.jsonl").string(); }
  std::vector<std::string> lines() const {
    std::ifstream in(path());
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
      out.push_back(line);
    return out;
  }

 private:
  std::filesystem::path dir_;
};

std::string answer_wire(std::uint16_t id, const std::string& qname, ldns_rr_type qtype,
                        const std::vector<std::string>& answers) {
  return test::dns_response(id, qname, qtype, answers);
}

std::string unhex(const std::string& hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

}  // namespace

TEST_CASE("json_string escapes what RFC 8259 requires and passes UTF-8 through") {
  using record::json_string;
  CHECK(json_string("") == "\"\"");
  CHECK(json_string("220 mx ESMTP") == "\"220 mx ESMTP\"");
  CHECK(json_string("say \"hi\"") == "\"say \\\"hi\\\"\"");
  CHECK(json_string("C:\\dir") == "\"C:\\\\dir\"");
  CHECK(json_string("a\nb\rc\td") == "\"a\\nb\\rc\\td\"");
  CHECK(json_string("\b\f") == "\"\\b\\f\"");
  CHECK(json_string(std::string("nul\0byte", 8)) == "\"nul\\u0000byte\"");
  CHECK(json_string("\x01\x1b\x1f") == "\"\\u0001\\u001b\\u001f\"");
  CHECK(json_string(" ~\x7f/") == "\" ~\x7f/\"");  // no escape needed from 0x20 up
  CHECK(json_string("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x93\xa7") ==
        "\"gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x93\xa7\"");
  // What is not UTF-8 (a server may send anything) becomes U+FFFD, and the output stays JSON.
  std::string replaced = json_string(
      "a\xff"
      "b");
  CHECK(replaced ==
        "\"a\xef\xbf\xbd"
        "b\"");
  CHECK(nlohmann::json::parse(json_string("x\xc3(\xe2\x82 \x80y")).get<std::string>().find('y') !=
        std::string::npos);
  // Whatever it is given, it parses back to the same text when that text was UTF-8.
  std::string mixed = "\"\\\n\r\t\b\f\x01 caf\xc3\xa9";
  CHECK(nlohmann::json::parse(json_string(mixed)).get<std::string>() == mixed);
}

TEST_CASE("a recording: the start line with argv, then transcript lines") {
  TempFile file;
  std::string error;
  auto before = std::time(nullptr);
  {
    record::Recorder recorder;
    CHECK_FALSE(recorder.is_open());
    REQUIRE(
        recorder.open(file.path(), {"smtpsh", "-e", "print(\"hi\")", "mx.test"}, "9.8.7", error));
    CHECK(recorder.is_open());
    CHECK(recorder.next_session() == 1);
    CHECK(recorder.next_session() == 2);
    recorder.transcript(1, {.t = 0.0, .dir = '!', .line = "connected to 127.0.0.1:25"});
    recorder.transcript(1, {.t = 0.012, .dir = 'S', .line = "220 mx.test ESMTP"});
    recorder.transcript(2, {.t = 1.2345678, .dir = 'C', .line = "MAIL FROM:<\"a b\"@x.test>\t"});
    // Written and flushed line by line: readable before the recorder closes.
    CHECK(file.lines().size() == 4);
  }
  auto lines = file.lines();
  REQUIRE(lines.size() == 4);
  std::vector<nlohmann::json> parsed;
  for (const auto& line : lines) {
    CAPTURE(line);
    REQUIRE(nlohmann::json::accept(line));
    parsed.push_back(nlohmann::json::parse(line));
    CHECK(parsed.back().is_object());
  }
  // When it was made, in seconds since the epoch (a replay checks DNSSEC signatures then).
  REQUIRE(parsed[0]["time"].is_number_integer());
  CHECK(parsed[0]["time"].get<std::int64_t>() >= before);
  CHECK(parsed[0]["time"].get<std::int64_t>() <= std::time(nullptr));
  parsed[0].erase("time");
  CHECK(parsed[0] == nlohmann::json{{"type", "start"},
                                    {"version", 1},
                                    {"smtpsh", "9.8.7"},
                                    {"argv", {"smtpsh", "-e", "print(\"hi\")", "mx.test"}}});
  CHECK(lines[0].find(R"j("argv":["smtpsh","-e","print(\"hi\")","mx.test"])j") !=
        std::string::npos);

  // Transcript lines: everything but the recording time is exact.
  auto without_t = [](nlohmann::json line) {
    REQUIRE(line.contains("t"));
    CHECK(line["t"].is_number());
    line.erase("t");
    return line;
  };
  CHECK(without_t(parsed[1]) == nlohmann::json{{"type", "smtp"},
                                               {"session", 1},
                                               {"st", 0.0},
                                               {"dir", "!"},
                                               {"line", "connected to 127.0.0.1:25"}});
  CHECK(without_t(parsed[2]) == nlohmann::json{{"type", "smtp"},
                                               {"session", 1},
                                               {"st", 0.012},
                                               {"dir", "S"},
                                               {"line", "220 mx.test ESMTP"}});
  // The session time is rounded to the microsecond.
  CHECK(without_t(parsed[3]) == nlohmann::json{{"type", "smtp"},
                                               {"session", 2},
                                               {"st", 1.234568},
                                               {"dir", "C"},
                                               {"line", "MAIL FROM:<\"a b\"@x.test>\t"}});
  CHECK(lines[3].find(R"j("line":"MAIL FROM:<\"a b\"@x.test>\t")j") != std::string::npos);
  CHECK(lines[2].find(R"j("dir":"S")j") != std::string::npos);
  CHECK(lines[2].find(R"j("session":1)j") != std::string::npos);
  // The recording time counts from open(): small here, and never backwards.
  double t1 = parsed[1]["t"], t3 = parsed[3]["t"];
  CHECK(t1 >= 0.0);
  CHECK(t1 < 5.0);
  CHECK(t3 >= t1);
}

TEST_CASE("an empty argv, reopening truncates, and a closed recorder writes nothing") {
  TempFile file;
  std::string error;
  record::Recorder recorder;
  REQUIRE(recorder.open(file.path(), {"first"}, "1", error));
  recorder.transcript(1, {.t = 0, .dir = 'S', .line = "220 x"});
  REQUIRE(recorder.open(file.path(), {}, "1", error));
  CHECK(recorder.next_session() == 1);  // numbering starts again
  recorder.close();
  CHECK_FALSE(recorder.is_open());
  recorder.transcript(1, {.t = 0, .dir = 'S', .line = "220 y"});
  auto lines = file.lines();
  REQUIRE(lines.size() == 1);
  auto start = nlohmann::json::parse(lines[0]);
  start.erase("time");
  CHECK(start ==
        nlohmann::json{
            {"type", "start"}, {"version", 1}, {"smtpsh", "1"}, {"argv", nlohmann::json::array()}});
}

TEST_CASE("a recipe, generated values and a TLS result: each one line that reads back whole") {
  TempFile file;
  std::string error;
  {
    record::Recorder recorder;
    REQUIRE(recorder.open(file.path(), {"probe.lua", "mx.test"}, "1", error));
    std::string source = "-- a recipe\nreturn {name = \"x\", run = function() end}\n\x01\"";
    recorder.recipe("probe.lua", source, {"mx.test", "--port", "2525"});
    recorder.value("send.date", "Wed, 02 Dec 2026 10:00:00 +0000");
    tls::Info info;
    info.version = "TLSv1.3";
    info.cipher = "TLS_AES_256_GCM_SHA384";
    info.chain.push_back({.subject = "CN=mx.test",
                          .issuer = "CN=ca",
                          .names = {"mx.test"},
                          .not_before = "2026-01-01T00:00:00Z",
                          .not_after = "2027-01-01T00:00:00Z",
                          .days_left = 30,
                          .sha256 = "AB:CD",
                          .spki_sha256 = "ef",
                          .key = "EC 256",
                          .serial = "01"});
    info.verify_result = "self-signed certificate";
    info.verify_code = 18;
    info.name_checked = true;
    info.checked_name = "mx.test";
    info.name_matches = true;
    recorder.tls(3, info);
  }
  auto lines = file.lines();
  REQUIRE(lines.size() == 4);
  auto recipe = nlohmann::json::parse(lines[1]);
  CHECK(recipe ==
        nlohmann::json{
            {"type", "recipe"},
            {"file", "probe.lua"},
            {"args", {"mx.test", "--port", "2525"}},
            {"source", "-- a recipe\nreturn {name = \"x\", run = function() end}\n\x01\""}});
  CHECK(nlohmann::json::parse(lines[2]) ==
        nlohmann::json{{"type", "value"},
                       {"name", "send.date"},
                       {"value", "Wed, 02 Dec 2026 10:00:00 +0000"}});
  auto tls_line = nlohmann::json::parse(lines[3]);
  CHECK(tls_line["type"] == "tls");
  CHECK(tls_line["session"] == 3);
  const auto& got = tls_line["info"];
  CHECK(got["version"] == "TLSv1.3");
  CHECK(got["verify_code"] == 18);
  CHECK(got["verify_result"] == "self-signed certificate");
  CHECK(got["name"] == "mx.test");
  CHECK(got["name_matches"].get<bool>());
  CHECK_FALSE(got.contains("dane"));
  REQUIRE(got["chain"].size() == 1);
  CHECK(got["chain"][0]["subject"] == "CN=mx.test");
  CHECK(got["chain"][0]["names"] == nlohmann::json{"mx.test"});
  CHECK(got["chain"][0]["days_left"] == 30);
  CHECK(got["chain"][0]["sha256"] == "AB:CD");
}

TEST_CASE("a path that cannot be written is refused in words") {
  record::Recorder recorder;
  std::string error;
  CHECK_FALSE(recorder.open("/nonexistent-smtpsh-dir/recording.jsonl", {"smtpsh"}, "1", error));
  CHECK_FALSE(recorder.is_open());
  CHECK(error.rfind("cannot write the recording", 0) == 0);
  CHECK(error ==
        "cannot write the recording /nonexistent-smtpsh-dir/recording.jsonl: No such file or "
        "directory");
  // A directory is not a file either.
  TempFile file;
  std::string dir = std::filesystem::path(file.path()).parent_path().string();
  CHECK_FALSE(recorder.open(dir, {}, "1", error));
  CHECK(error == "cannot write the recording " + dir + ": Is a directory");
}

TEST_CASE("DNS answers a resolver got are recorded once, with their wire bytes") {
  engine::Loop loop;
  std::string error;
  auto replay = server::DnsReplay::open(loop.io(), error);
  REQUIRE(replay != nullptr);
  replay->add("mx.test", dns::type::A,
              answer_wire(1, "mx.test.", LDNS_RR_TYPE_A, {"mx.test. 300 IN A 192.0.2.25"}));
  replay->start();

  dns::ServerSet servers;
  servers.servers.push_back({asio::ip::make_address("127.0.0.1"), replay->port()});
  servers.timeout = 2s;
  servers.attempts = 1;
  auto resolver = dns::Resolver::create(loop.io(), servers);

  TempFile file;
  record::Recorder recorder;
  REQUIRE(recorder.open(file.path(), {"smtpsh"}, "1", error));
  resolver->set_observer(&record::Recorder::observe_dns, &recorder);
  for (int i = 0; i < 2; ++i) {  // the second answer comes from the cache
    Op op;
    auto query = resolver->query("mx.test", dns::type::A, &Op::notify, &op);
    test::wait(loop, op);
    REQUIRE(query->result().ok());
    CHECK(query->result().from_cache == (i == 1));
  }
  replay->close();

  auto lines = file.lines();
  REQUIRE(lines.size() == 2);
  auto line = nlohmann::json::parse(lines[1]);
  REQUIRE(line.is_object());
  CHECK(line["type"] == "dns");
  CHECK(line["name"] == "mx.test");
  CHECK(line["qtype"] == 1);
  CHECK(line["rcode"] == "NOERROR");
  CHECK(line["server"] == "127.0.0.1:" + std::to_string(replay->port()));
  REQUIRE(line["tcp"].is_boolean());
  CHECK_FALSE(line["tcp"].get<bool>());
  CHECK(line["t"].is_number());
  CHECK(line["seconds"].is_number());
  CHECK(line["seconds"].get<double>() >= 0.0);
  CHECK(line["seconds"].get<double>() < 2.0);
  CHECK(line["t"].get<double>() >= line["seconds"].get<double>() - 1e-6);
  CHECK(line.size() == 9);  // nothing else
  // The wire is the answer as it came (under the resolver's ID): it decodes to the record.
  REQUIRE(line["wire"].is_string());
  std::string hex = line["wire"];
  CHECK(std::all_of(hex.begin(), hex.end(),
                    [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
  std::string wire = unhex(hex);
  ldns_pkt* packet = nullptr;
  REQUIRE(ldns_wire2pkt(&packet, reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()) ==
          LDNS_STATUS_OK);
  REQUIRE(ldns_pkt_ancount(packet) == 1);
  char* rdata = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(packet), 0), 0));
  CHECK(std::string(rdata) == "192.0.2.25");
  std::free(rdata);
  ldns_pkt_free(packet);
}
