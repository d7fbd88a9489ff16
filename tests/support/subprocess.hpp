#pragma once
// Test support: runs real programs (clients, servers) as child processes, without a shell, and
// makes sure none of them outlives the test that started it.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace smtpsh::test {

struct RunResult {
  // The exit status, or 128 + the signal number when a signal ended the child (as a shell
  // reports it); 127 when argv[0] could not be executed.
  int exit_code = -1;
  std::string out, err;
  // The deadline passed before the child exited and closed its output; it was killed.
  bool timed_out = false;
};

// Runs argv[0] (PATH searched) with stdin_data on its stdin; kills it (SIGKILL) after timeout.
// The child leads a process group of its own, and the kill reaches the whole group.
RunResult run(const std::vector<std::string>& argv, const std::string& stdin_data,
              std::chrono::milliseconds timeout);

// A long-running child (a server). stdout/stderr go to a temp log file readable with log().
// The destructor sends SIGTERM, waits up to 2 s, then SIGKILL, and reaps it.
// Like run(), it leads a process group of its own and the signals reach the whole group. If the
// test process dies without running destructors, the kernel kills the child too; on Linux that
// happens when the *thread* that created it ends, so create children from a long-lived thread.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool running();           // not yet exited
  std::string log() const;  // what it printed so far

 private:
  pid_t pid_ = -1;
  int log_fd_ = -1;  // the log file, already unlinked: nothing is left behind after a crash
};

std::uint16_t free_loopback_port();  // binds 127.0.0.1:0, reads the port, closes
// Connects repeatedly (every 20 ms) until something accepts on 127.0.0.1:port or timeout.
bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout);
// Starts Postfix's smtp-sink (/usr/sbin/smtp-sink, with `-u nobody` when running as root)
// on 127.0.0.1:port with the extra options given before the address, waits for the port.
// Throws std::runtime_error (saying what failed) if it does not come up within 5 s.
std::unique_ptr<Child> start_smtp_sink(std::uint16_t port,
                                       const std::vector<std::string>& options = {});

}  // namespace smtpsh::test
