#include "engine/record/recorder.hpp"

#include <cerrno>
#include <cstring>

namespace smtpsh::record {

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

namespace {
std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    auto byte = static_cast<unsigned char>(c);
    out += digits[byte >> 4];
    out += digits[byte & 15];
  }
  return out;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6f", value);
  return text;
}
}  // namespace

Recorder::~Recorder() { close(); }

bool Recorder::open(const std::string& path, const std::vector<std::string>& argv, std::string& error) {
  close();
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) {
    error = "cannot write the recording " + path + ": " + std::strerror(errno);
    return false;
  }
  started_ = engine::Clock::now();
  sessions_ = 0;
  std::string line = "{\"type\":\"start\",\"version\":1,\"argv\":[";
  for (std::size_t i = 0; i < argv.size(); ++i) line += (i ? "," : "") + json_string(argv[i]);
  write(line + "]}");
  return true;
}

void Recorder::close() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

double Recorder::now() const {
  return std::chrono::duration<double>(engine::Clock::now() - started_).count();
}

void Recorder::write(const std::string& line) {
  if (!file_) return;
  std::fputs(line.c_str(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);  // a recording must survive a crash or Ctrl-C of the probe
}

void Recorder::transcript(int session, const smtp::TranscriptEntry& entry) {
  if (!file_) return;
  write("{\"type\":\"smtp\",\"t\":" + number(now()) + ",\"session\":" + std::to_string(session) +
        ",\"st\":" + number(entry.t) + ",\"dir\":\"" + std::string(1, entry.dir) +
        "\",\"line\":" + json_string(entry.line) + "}");
}

void Recorder::dns(const dns::Query& query, std::string_view wire) {
  if (!file_) return;
  const dns::Result& result = query.result();
  if (result.from_cache) return;  // the answer was recorded when it first came
  write("{\"type\":\"dns\",\"t\":" + number(now()) + ",\"name\":" + json_string(query.name()) +
        ",\"qtype\":" + std::to_string(query.qtype()) + ",\"rcode\":" + json_string(result.rcode) +
        ",\"server\":" + json_string(result.server) + ",\"tcp\":" + (result.tcp ? "true" : "false") +
        ",\"seconds\":" + number(result.seconds) + ",\"wire\":\"" + hex(wire) + "\"}");
}

void Recorder::observe_dns(void* recorder, const dns::Query& query, std::string_view wire) {
  static_cast<Recorder*>(recorder)->dns(query, wire);
}

}  // namespace smtpsh::record
