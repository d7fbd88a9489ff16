// engine/record/recorder: JSON string escaping, and the JSON Lines a Recorder writes to a real
// file: the start line, SMTP transcript lines, and the DNS answers a real resolver got from a
// replay DNS server on loopback.
#include "engine/record/recorder.hpp"
#include "engine/dns/resolver.hpp"
#include "engine/server/dns_replay.hpp"
#include "tests/support/operation.hpp"

#include <doctest/doctest.h>
#include <ldns/ldns.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
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
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

 private:
  std::filesystem::path dir_;
};

std::string answer_wire(std::uint16_t id, const std::string& qname, ldns_rr_type qtype,
                        const std::vector<std::string>& answers) {
  ldns_pkt* packet = ldns_pkt_query_new(ldns_dname_new_frm_str(qname.c_str()), qtype,
                                        LDNS_RR_CLASS_IN, LDNS_RD);
  REQUIRE(packet != nullptr);
  ldns_pkt_set_id(packet, id);
  ldns_pkt_set_qr(packet, true);
  for (const auto& line : answers) {
    ldns_rr* rr = nullptr;
    REQUIRE(ldns_rr_new_frm_str(&rr, line.c_str(), 300, nullptr, nullptr) == LDNS_STATUS_OK);
    ldns_pkt_push_rr(packet, LDNS_SECTION_ANSWER, rr);
  }
  std::uint8_t* wire = nullptr;
  std::size_t size = 0;
  REQUIRE(ldns_pkt2wire(&wire, packet, &size) == LDNS_STATUS_OK);
  std::string bytes(reinterpret_cast<char*>(wire), size);
  std::free(wire);
  ldns_pkt_free(packet);
  return bytes;
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
  CHECK(json_string(std::string("nul\0byte", 8)) == "\"nul\\u0000byte\"");
  CHECK(json_string("\x01\x1b\x1f") == "\"\\u0001\\u001b\\u001f\"");
  CHECK(json_string("\b\f") == "\"\\u0008\\u000c\"");
  CHECK(json_string("\x7f") == "\"\\u007f\"");
  CHECK(json_string(" ~") == "\" ~\"");  // the printable ends are left alone
  CHECK(json_string("/") == "\"/\"");
  CHECK(json_string("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x93\xa7") ==
        "\"gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x93\xa7\"");
  // Bytes over 0x7f are passed as they are, valid UTF-8 or not.
  CHECK(json_string("\xff\x80") == "\"\xff\x80\"");
}

TEST_CASE("a recording: the start line with argv, then transcript lines") {
  TempFile file;
  std::string error;
  {
    record::Recorder recorder;
    CHECK_FALSE(recorder.is_open());
    REQUIRE(recorder.open(file.path(), {"smtpsh", "-e", "print(\"hi\")j", "mx.test"}, error));
    CHECK(recorder.is_open());
    CHECK(recorder.next_session() == 1);
    CHECK(recorder.next_session() == 2);
    recorder.transcript(1, {.t = 0.0, .dir = '!', .line = "connected to 127.0.0.1:25"});
    recorder.transcript(1, {.t = 0.012, .dir = 'S', .line = "220 mx.test ESMTP"});
    recorder.transcript(2, {.t = 1.5, .dir = 'C', .line = "MAIL FROM:<\"a b\"@x.test>\t"});
    // Written and flushed line by line: readable before the recorder closes.
    CHECK(file.lines().size() == 4);
  }
  auto lines = file.lines();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == R"j({"type":"start","version":1,"argv":["smtpsh","-e","print(\"hi\")","mx.test"]})j");
  std::regex number("[0-9]+\\.[0-9]{6}");
  auto without_times = [&](const std::string& line) {
    return std::regex_replace(line, number, "T");
  };
  CHECK(without_times(lines[1]) ==
        R"j({"type":"smtp","t":T,"session":1,"st":T,"dir":"!","line":"connected to 127.0.0.1:25"})j");
  CHECK(without_times(lines[2]) ==
        R"j({"type":"smtp","t":T,"session":1,"st":T,"dir":"S","line":"220 mx.test ESMTP"})j");
  CHECK(without_times(lines[3]) ==
        R"j({"type":"smtp","t":T,"session":2,"st":T,"dir":"C","line":"MAIL FROM:<\"a b\"@x.test>\t"})j");
  // The session time is the entry's own, to the microsecond.
  CHECK(lines[2].find(R"j("st":0.012000,)j") != std::string::npos);
  CHECK(lines[3].find(R"j("st":1.500000,)j") != std::string::npos);
  // The recording time counts from open(): small here, and never backwards.
  std::smatch t1, t3;
  REQUIRE(std::regex_search(lines[1], t1, std::regex("\"t\":([0-9.]+)j")));
  REQUIRE(std::regex_search(lines[3], t3, std::regex("\"t\":([0-9.]+)j")));
  CHECK(std::stod(t1[1]) < 5.0);
  CHECK(std::stod(t3[1]) >= std::stod(t1[1]));
}

TEST_CASE("an empty argv, reopening truncates, and a closed recorder writes nothing") {
  TempFile file;
  std::string error;
  record::Recorder recorder;
  REQUIRE(recorder.open(file.path(), {"first"}, error));
  recorder.transcript(1, {.t = 0, .dir = 'S', .line = "220 x"});
  REQUIRE(recorder.open(file.path(), {}, error));
  CHECK(recorder.next_session() == 1);  // numbering starts again
  recorder.close();
  CHECK_FALSE(recorder.is_open());
  recorder.transcript(1, {.t = 0, .dir = 'S', .line = "220 y"});
  CHECK(file.lines() == std::vector<std::string>{R"j({"type":"start","version":1,"argv":[]})j"});
}

TEST_CASE("a path that cannot be written is refused in words") {
  record::Recorder recorder;
  std::string error;
  CHECK_FALSE(recorder.open("/nonexistent-smtpsh-dir/recording.jsonl", {"smtpsh"}, error));
  CHECK_FALSE(recorder.is_open());
  CHECK(error.rfind("cannot write the recording", 0) == 0);
  CHECK(error == "cannot write the recording /nonexistent-smtpsh-dir/recording.jsonl: No such file or directory");
  // A directory is not a file either.
  TempFile file;
  std::string dir = std::filesystem::path(file.path()).parent_path().string();
  CHECK_FALSE(recorder.open(dir, {}, error));
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
  REQUIRE(recorder.open(file.path(), {"smtpsh"}, error));
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
  std::regex shape(R"j(\{"type":"dns","t":[0-9]+\.[0-9]{6},"name":"mx\.test","qtype":1,"rcode":"NOERROR","server":"127\.0\.0\.1:([0-9]+)","tcp":false,"seconds":[0-9]+\.[0-9]{6},"wire":"([0-9a-f]+)"\})j");
  std::smatch match;
  REQUIRE(std::regex_match(lines[1], match, shape));
  CHECK(match[1] == std::to_string(replay->port()));
  // The wire is the answer as it came (under the resolver's ID): it decodes to the record.
  std::string wire = unhex(match[2]);
  ldns_pkt* packet = nullptr;
  REQUIRE(ldns_wire2pkt(&packet, reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()) ==
          LDNS_STATUS_OK);
  REQUIRE(ldns_pkt_ancount(packet) == 1);
  char* rdata = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(packet), 0), 0));
  CHECK(std::string(rdata) == "192.0.2.25");
  std::free(rdata);
  ldns_pkt_free(packet);
}
