#pragma once
// The recorder: every DNS answer and every SMTP transcript line (connects, TLS results and
// drops are transcript events) written as JSON Lines with its timing, so that `smtpsh
// replay` can serve the remote side of a probe again, offline. One object a line (keys in
// alphabetical order as written; shown here in reading order):
//
//   {"type":"start","version":1,"smtpsh":"1.2.0","argv":[...]}
//   {"type":"recipe","file":"probe.lua","args":[...],"source":"<the whole file>"}
//   {"type":"value","name":"send.date","value":"Wed, 02 Dec 2026 ..."}   (a generated value)
//   {"type":"tls","session":1,"info":{...}}     what a session's TLS handshake agreed and saw
//   {"type":"dns","t":0.012,"name":"example.com","qtype":15,"rcode":"NOERROR","server":"...",
//    "tcp":false,"seconds":0.003,"wire":"<hex of the answer>"}
//   {"type":"smtp","t":0.020,"session":1,"st":0.000,"dir":"S","line":"220 mx ESMTP"}

#include "engine/dns/resolver.hpp"
#include "engine/loop/loop.hpp"
#include "engine/smtp/transcript.hpp"
#include "engine/tls/info.hpp"

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace smtpsh::record {

// A string as a JSON string (RFC 8259); bytes that are not UTF-8 become U+FFFD.
std::string json_string(std::string_view text);

class Recorder {
 public:
  Recorder() = default;
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Opens (truncates) `path` and writes the start line (the command line and the version of
  // smtpsh that recorded); false and `error` when it cannot.
  bool open(const std::string& path, const std::vector<std::string>& argv, std::string_view version,
            std::string& error);
  void close();
  bool is_open() const { return file_ != nullptr; }

  // A new SMTP session's number (1, 2, ...), for its transcript lines.
  int next_session() { return ++sessions_; }
  void transcript(int session, const smtp::TranscriptEntry& entry);
  void dns(const dns::Query& query, std::string_view wire);
  // The script that ran, whole, so that the recording replays without it.
  void recipe(std::string_view file, std::string_view source, const std::vector<std::string>& args);
  // A value the script generated (a Date, a Message-Id) that a replay must generate the same.
  void value(std::string_view name, std::string_view value);
  // What a session's TLS handshake agreed on and what the server presented.
  void tls(int session, const tls::Info& info);

  // Observer adapters for Resolver::set_observer.
  static void observe_dns(void* recorder, const dns::Query& query, std::string_view wire);

 private:
  double now() const;

  std::FILE* file_ = nullptr;
  engine::Clock::time_point started_;
  int sessions_ = 0;
};

}  // namespace smtpsh::record
