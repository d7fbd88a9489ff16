#include "engine/record/recorder.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

namespace smtpsh::record {

std::string json_string(std::string_view text) {
  // Bytes that are not UTF-8 (a server may send anything) are replaced, not refused.
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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

// Seconds to the microsecond: enough for a replay's delays, and stable to read.
double rounded(double seconds) {
  return static_cast<double>(std::llround(seconds * 1e6)) / 1e6;
}

void write_line(std::FILE* file, const nlohmann::json& line) {
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fputs(text.c_str(), file);
  std::fputc('\n', file);
  std::fflush(file);  // a recording must survive a crash or Ctrl-C of the probe
}
}  // namespace

Recorder::~Recorder() {
  close();
}

bool Recorder::open(const std::string& path, const std::vector<std::string>& argv,
                    std::string_view version, std::string& error) {
  close();
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) {
    error = "cannot write the recording " + path + ": " + std::strerror(errno);
    return false;
  }
  started_ = engine::Clock::now();
  sessions_ = 0;
  // The wall-clock time too: a replay checks DNSSEC signatures at the time they were recorded.
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  write_line(file_, {{"type", "start"},
                     {"version", 1},
                     {"smtpsh", std::string(version)},
                     {"argv", argv},
                     {"time", now}});
  return true;
}

void Recorder::close() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

double Recorder::now() const {
  return std::chrono::duration<double>(engine::Clock::now() - started_).count();
}

void Recorder::transcript(int session, const smtp::TranscriptEntry& entry) {
  if (!file_) return;
  write_line(file_, {{"type", "smtp"},
                     {"t", rounded(now())},
                     {"session", session},
                     {"st", rounded(entry.t)},
                     {"dir", std::string(1, entry.dir)},
                     {"line", entry.line}});
}

void Recorder::dns(const dns::Query& query, std::string_view wire) {
  if (!file_) return;
  const dns::Result& result = query.result();
  if (result.from_cache) return;  // the answer was recorded when it first came
  write_line(file_, {{"type", "dns"},
                     {"t", rounded(now())},
                     {"name", query.name()},
                     {"qtype", query.qtype()},
                     {"rcode", result.rcode},
                     {"server", result.server},
                     {"tcp", result.tcp},
                     {"seconds", rounded(result.seconds)},
                     {"wire", hex(wire)}});
}

void Recorder::recipe(std::string_view file, std::string_view source,
                      const std::vector<std::string>& args) {
  if (!file_) return;
  write_line(file_, {{"type", "recipe"},
                     {"file", std::string(file)},
                     {"args", args},
                     {"source", std::string(source)}});
}

void Recorder::value(std::string_view name, std::string_view value) {
  if (!file_) return;
  write_line(file_,
             {{"type", "value"}, {"name", std::string(name)}, {"value", std::string(value)}});
}

namespace {
nlohmann::json certificate_json(const tls::Certificate& cert) {
  return {{"subject", cert.subject},
          {"issuer", cert.issuer},
          {"names", cert.names},
          {"not_before", cert.not_before},
          {"not_after", cert.not_after},
          {"days_left", cert.days_left},
          {"sha256", cert.sha256},
          {"spki_sha256", cert.spki_sha256},
          {"key", cert.key},
          {"serial", cert.serial}};
}
}  // namespace

void Recorder::tls(int session, const tls::Info& info) {
  if (!file_) return;
  nlohmann::json chain = nlohmann::json::array();
  for (const tls::Certificate& cert : info.chain)
    chain.push_back(certificate_json(cert));
  nlohmann::json fields = {{"version", info.version},
                           {"cipher", info.cipher},
                           {"group", info.group},
                           {"chain", chain},
                           {"verified", info.verified},
                           {"verify_code", info.verify_code},
                           {"verify_result", info.verify_result}};
  if (info.name_checked) {
    fields["name"] = info.checked_name;
    fields["name_matches"] = info.name_matches;
  }
  if (info.dane) {
    fields["dane"] = {{"matched", info.dane_matched},
                      {"dnssec", info.dnssec},
                      {"depth", info.dane_depth},
                      {"record", info.dane_record}};
  }
  write_line(file_,
             {{"type", "tls"}, {"t", rounded(now())}, {"session", session}, {"info", fields}});
}

void Recorder::observe_dns(void* recorder, const dns::Query& query, std::string_view wire) {
  static_cast<Recorder*>(recorder)->dns(query, wire);
}

}  // namespace smtpsh::record
