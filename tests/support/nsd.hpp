#pragma once
// Test support: a DNS server on a free loopback port, tests/peers/dns_peer.py run as a child
// process: a real NSD serving tests/peers/zones/ ("nsd"), or a scripted peer ("silent",
// "mismatch", "wrongq"; see the script's docstring).

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace smtpsh::test {

class DnsPeer {
 public:
  // Runs `/usr/bin/python3 <repo>/tests/peers/dns_peer.py mode_args...`, e.g. {"nsd"},
  // {"nsd", "--no-rrl"}, {"silent"}, and waits up to 15 s for its `PORT n` line. Throws
  // std::runtime_error with the peer's stderr if it does not come up.
  // The peer leads a process group of its own (NSD runs in it). It gets SIGTERM when the
  // thread that created it ends (PR_SET_PDEATHSIG), so create peers from a long-lived thread.
  explicit DnsPeer(const std::vector<std::string>& mode_args);
  // SIGTERM (the script then stops NSD and removes its temp dir), up to 3 s, then SIGKILL to
  // the whole group; reaps the script.
  ~DnsPeer();
  DnsPeer(const DnsPeer&) = delete;
  DnsPeer& operator=(const DnsPeer&) = delete;

  std::uint16_t port() const { return port_; }  // on 127.0.0.1 unless --host said otherwise
  pid_t pid() const { return pid_; }
  bool running() const;     // not yet exited
  std::string log() const;  // what the peer wrote on stderr so far

  static std::string script_path();  // <repo>/tests/peers/dns_peer.py

 private:
  int stop();  // returns the exit status as subprocess.hpp reports it, -1 if not running

  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  int stdin_fd_ = -1;   // kept open: end of file on it also tells the peer to stop
  int stdout_fd_ = -1;  // kept open, so that the peer never writes into a closed pipe
  int log_fd_ = -1;     // its stderr: a temp file, already unlinked
};

}  // namespace smtpsh::test
