// Test support: starts and stops tests/peers/dns_peer.py (NSD or a scripted DNS peer).
#include "tests/support/nsd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace smtpsh::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kPython = "/usr/bin/python3";
constexpr auto kStartTimeout = 15s;
constexpr auto kStopTimeout = 3s;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Whether the child has exited, without reaping it (the zombie keeps its process group id
// reserved, so that signalling the group stays safe).
bool has_exited(pid_t pid) {
  siginfo_t info{};
  return waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}

int reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void move_fd(int from, int to) {
  if (from == to) {
    fcntl(to, F_SETFD, 0);  // dup2 onto itself would leave FD_CLOEXEC set
  } else {
    dup2(from, to);
  }
}

// Between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(char* const* argv, const std::string& failure, pid_t parent, int in,
                             int out, int err) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);  // the script stops NSD and cleans up on SIGTERM
  if (getppid() != parent) _exit(127);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &default_action, nullptr);
  move_fd(in, STDIN_FILENO);
  move_fd(out, STDOUT_FILENO);
  move_fd(err, STDERR_FILENO);
  close_range(3, ~0U, 0);
  execve(argv[0], argv, environ);
  ssize_t ignored = ::write(STDERR_FILENO, failure.data(), failure.size());
  (void)ignored;
  _exit(127);
}

// Reads stdout until a full first line, end of file or the deadline. Returns the line
// (without the newline), or what came before EOF/deadline with `complete` false.
std::string read_first_line(int fd, Clock::time_point deadline, bool& complete) {
  std::string text;
  complete = false;
  while (Clock::now() < deadline) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(std::max(left, 1ms).count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw_errno("poll");
    if (ready == 0) continue;
    char buffer[256];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // end of file: the peer exited (or closed stdout)
    text.append(buffer, static_cast<std::size_t>(n));
    if (auto newline = text.find('\n'); newline != std::string::npos) {
      complete = true;
      return text.substr(0, newline);
    }
  }
  return text;
}

// "PORT 53000" -> 53000; 0 when the line is anything else.
std::uint16_t parse_port_line(const std::string& line) {
  const std::string prefix = "PORT ";
  if (line.rfind(prefix, 0) != 0) return 0;
  std::string digits = line.substr(prefix.size());
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return 0;
  }
  unsigned long value = std::stoul(digits);
  return value <= 65535 ? static_cast<std::uint16_t>(value) : 0;
}

}  // namespace

std::string DnsPeer::script_path() {
  // This file is <repo>/tests/support/nsd.cpp. CMake compiles it by its absolute path; a
  // relative __FILE__ (compiled by hand from the repo root) is looked for in the current
  // directory and its parents.
  std::filesystem::path here = __FILE__;
  if (here.is_relative()) {
    std::error_code ec;
    for (auto dir = std::filesystem::current_path(ec); !ec && !dir.empty();
         dir = dir.parent_path()) {
      if (std::filesystem::exists(dir / here, ec)) {
        here = dir / here;
        break;
      }
      if (dir == dir.parent_path()) break;
    }
  }
  return (here.parent_path().parent_path() / "peers" / "dns_peer.py").string();
}

DnsPeer::DnsPeer(const std::vector<std::string>& mode_args) {
  std::string script = script_path();
  if (access(script.c_str(), R_OK) != 0) {
    throw std::runtime_error("DnsPeer: cannot read " + script);
  }
  std::vector<std::string> args{kPython, script};
  args.insert(args.end(), mode_args.begin(), mode_args.end());
  std::vector<char*> argv;
  for (auto& arg : args)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::string failure = "DnsPeer: cannot execute " + std::string(kPython) + "\n";
  std::string what = "dns_peer.py";
  for (const auto& arg : mode_args)
    what += " " + arg;

  char name[] = "/tmp/smtpsh-dnspeer-XXXXXX";
  log_fd_ = mkostemp(name, O_CLOEXEC | O_APPEND);
  if (log_fd_ < 0) throw_errno("mkostemp");
  unlink(name);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    close_fd(log_fd_);
    throw_errno("pipe2");
  }
  if (pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    close_fd(log_fd_);
    throw_errno("pipe2");
  }

  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) exec_child(argv.data(), failure, parent, in[0], out[1], log_fd_);
  int fork_errno = errno;
  ::close(in[0]);
  ::close(out[1]);
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
  if (pid_ < 0) {
    close_fd(stdin_fd_);
    close_fd(stdout_fd_);
    close_fd(log_fd_);
    errno = fork_errno;
    throw_errno("fork");
  }
  setpgid(pid_, pid_);  // also done in the child: the group exists before either relies on it

  bool complete = false;
  std::string line;
  auto deadline = Clock::now() + kStartTimeout;
  try {
    line = read_first_line(stdout_fd_, deadline, complete);
  } catch (...) {
    stop();
    throw;
  }
  port_ = complete ? parse_port_line(line) : 0;
  if (port_ != 0) return;

  std::string reason;
  if (complete) {
    reason = "printed \"" + line + "\"";
  } else if (Clock::now() < deadline) {
    reason = "exited without printing PORT";  // its stdout reached end of file
  } else {
    reason = "printed no PORT line within 15 s";
  }
  int status = stop();  // reaps it, so the log is complete
  if (status >= 0) reason += ", exit status " + std::to_string(status);
  std::string err = log();
  close_fd(log_fd_);
  throw std::runtime_error("DnsPeer: " + what + " did not come up (" + reason + "); stderr:\n" +
                           err);
}

DnsPeer::~DnsPeer() {
  stop();
  close_fd(log_fd_);
}

int DnsPeer::stop() {
  if (pid_ <= 0) return -1;
  if (!has_exited(pid_)) {
    kill(pid_, SIGTERM);  // the script alone: it stops NSD in order
    auto deadline = Clock::now() + kStopTimeout;
    while (!has_exited(pid_) && Clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
  }
  kill(-pid_, SIGKILL);  // whatever is left of the group (nothing, normally)
  int status = reap(pid_);
  pid_ = -1;
  close_fd(stdin_fd_);
  close_fd(stdout_fd_);
  return status;
}

bool DnsPeer::running() const {
  return pid_ > 0 && !has_exited(pid_);
}

std::string DnsPeer::log() const {
  std::string text;
  if (log_fd_ < 0) return text;
  char buffer[65536];
  for (off_t offset = 0;;) {
    ssize_t n = pread(log_fd_, buffer, sizeof buffer, offset);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    offset += n;
  }
  return text;
}

}  // namespace smtpsh::test
