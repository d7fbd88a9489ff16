#include "tests/support/subprocess.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

extern char** environ;

namespace smtpsh::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read, write;
};

Pipe make_pipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  return {Fd(fds[0]), Fd(fds[1])};
}

void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = std::min(dirs.find(':', start), dirs.size());
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return name;  // execve fails with ENOENT, and the child reports it
}

// Everything the child needs is prepared before fork(): in a threaded program (the tests run
// servers on threads) only async-signal-safe calls are allowed between fork and exec.
struct ExecPlan {
  explicit ExecPlan(const std::vector<std::string>& argv) : args(argv) {
    if (args.empty()) throw std::invalid_argument("smtpsh::test: empty argv");
    path = find_in_path(args.front());
    for (auto& arg : args) {
      pointers.push_back(arg.data());
    }
    pointers.push_back(nullptr);
    failure = "smtpsh::test: cannot execute " + args.front() + "\n";
  }

  std::vector<std::string> args;
  std::vector<char*> pointers;
  std::string path;
  std::string failure;
};

void move_fd(int from, int to) {
  if (from == to) {
    fcntl(to, F_SETFD, 0);  // dup2 onto itself would leave FD_CLOEXEC set
  } else {
    dup2(from, to);
  }
}

[[noreturn]] void exec_child(const ExecPlan& plan, pid_t parent, int in, int out, int err) {
  setpgid(0, 0);
  // Also dies when the test process dies without cleaning up. Cleared again by programs that
  // change their user (smtp-sink -u), which the destructors then have to cover.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  // A blocked or ignored SIGPIPE would be inherited through exec and change how the program
  // behaves on a closed pipe.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &default_action, nullptr);

  move_fd(in, STDIN_FILENO);
  move_fd(out, STDOUT_FILENO);
  move_fd(err, STDERR_FILENO);
  // Sockets of servers running in the test process must not leak into the child, or closing
  // them there would not close the connection.
  close_range(3, ~0U, 0);
  execve(plan.path.c_str(), plan.pointers.data(), environ);
  ssize_t ignored = ::write(STDERR_FILENO, plan.failure.data(), plan.failure.size());
  (void)ignored;
  _exit(127);
}

pid_t spawn(const ExecPlan& plan, int in, int out, int err) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) exec_child(plan, parent, in, out, err);
  // Done in both processes, so that the group exists before either side relies on it.
  setpgid(pid, pid);
  return pid;
}

// Whether the child has exited, without reaping it: a zombie keeps its pid and process group
// id reserved, so signalling the group afterwards cannot hit an unrelated process.
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

// Writing to a pipe whose reader is gone raises SIGPIPE, which would kill the test runner.
// The signal is directed at this thread, so blocking it here and taking it back is enough.
ssize_t write_without_sigpipe(int fd, const char* data, std::size_t size) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t n = ::write(fd, data, size);
  int saved = errno;
  if (n < 0 && saved == EPIPE && sigismember(&old, SIGPIPE) == 0) {
    timespec zero{};
    sigtimedwait(&pipe_set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return n;
}

// Reads what is available; closes `fd` at end of file or on an error.
void read_some(Fd& fd, std::string& into) {
  char buffer[65536];
  ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
  if (n > 0) {
    into.append(buffer, static_cast<std::size_t>(n));
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    fd.reset();
  }
}

// Takes what a dead writer left in a non-blocking pipe, then closes it.
void drain(Fd& fd, std::string& into) {
  char buffer[65536];
  for (int i = 0; i < 1024 && fd.open(); ++i) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n > 0) {
      into.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      fd.reset();
    }
  }
  fd.reset();
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

// Non-blocking, because a connect to a listener with a full accept queue would otherwise
// hang for as long as the kernel retries its SYN.
bool try_connect(std::uint16_t port, std::chrono::milliseconds timeout) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.open()) throw_errno("socket");
  sockaddr_in address = loopback(port);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return true;
  if (errno != EINPROGRESS) return false;
  pollfd p{fd.get(), POLLOUT, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  int error = 0;
  socklen_t length = sizeof error;
  getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
  return error == 0;
}

std::chrono::milliseconds until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, 0ms);
}

// Feeds the child its input and collects its output until it has exited and closed its
// output. Returns false when the deadline comes first.
bool exchange(pid_t pid, const std::string& input, Fd& in, Fd& out, Fd& err,
              Clock::time_point deadline, RunResult& result) {
  std::size_t written = 0;
  bool exited = false;
  while (out.open() || err.open() || !exited) {
    if (Clock::now() >= deadline) return false;
    pollfd fds[3];
    Fd* owners[3];
    nfds_t count = 0;
    for (auto [fd, events] :
         {std::pair{&in, POLLOUT}, std::pair{&out, POLLIN}, std::pair{&err, POLLIN}}) {
      if (!fd->open()) continue;
      owners[count] = fd;
      fds[count++] = pollfd{fd->get(), static_cast<short>(events), 0};
    }
    // Child exit cannot be polled portably, so look every 20 ms.
    auto wait = std::min(until(deadline), 20ms);
    if (poll(fds, count, static_cast<int>(wait.count())) < 0 && errno != EINTR) {
      throw_errno("poll");
    }
    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      if (owners[i] == &in) {
        ssize_t n = write_without_sigpipe(in.get(), input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if (written == input.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          in.reset();  // EOF for the child; also where a child that quit early leaves us
        }
      } else {
        read_some(*owners[i], owners[i] == &out ? result.out : result.err);
      }
    }
    if (!exited) exited = has_exited(pid);
  }
  return true;
}

}  // namespace

RunResult run(const std::vector<std::string>& argv, const std::string& stdin_data,
              std::chrono::milliseconds timeout) {
  ExecPlan plan(argv);
  Pipe in = make_pipe(), out = make_pipe(), err = make_pipe();
  auto deadline = Clock::now() + timeout;
  pid_t pid = spawn(plan, in.read.get(), out.write.get(), err.write.get());
  in.read.reset();
  out.write.reset();
  err.write.reset();
  for (int fd : {in.write.get(), out.read.get(), err.read.get()}) {
    set_nonblocking(fd);
  }
  if (stdin_data.empty()) in.write.reset();

  RunResult result;
  try {
    result.timed_out = !exchange(pid, stdin_data, in.write, out.read, err.read, deadline, result);
  } catch (...) {
    kill(-pid, SIGKILL);
    reap(pid);
    throw;
  }
  // Whatever is left of the group (the child on timeout, or something it started) goes too.
  kill(-pid, SIGKILL);
  result.exit_code = reap(pid);
  // On timeout, the pipes may still hold output written before the kill.
  drain(out.read, result.out);
  drain(err.read, result.err);
  return result;
}

Child::Child(const std::vector<std::string>& argv) {
  ExecPlan plan(argv);
  char name[] = "/tmp/smtpsh-child-XXXXXX";
  Fd log(mkostemp(name, O_CLOEXEC | O_APPEND));
  if (!log.open()) throw_errno("mkostemp");
  unlink(name);
  Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null.open()) throw_errno("/dev/null");
  pid_ = spawn(plan, null.get(), log.get(), log.get());
  log_fd_ = log.release();
}

Child::~Child() {
  if (!has_exited(pid_)) {
    kill(-pid_, SIGTERM);
    auto deadline = Clock::now() + 2s;
    while (!has_exited(pid_) && Clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
  }
  kill(-pid_, SIGKILL);
  reap(pid_);
  ::close(log_fd_);
}

bool Child::running() {
  return !has_exited(pid_);
}

std::string Child::log() const {
  std::string text;
  char buffer[65536];
  for (off_t offset = 0;;) {
    ssize_t n = pread(log_fd_, buffer, sizeof buffer, offset);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    offset += n;
  }
  return text;
}

std::uint16_t free_loopback_port() {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.open()) throw_errno("socket");
  sockaddr_in address = loopback(0);
  socklen_t length = sizeof address;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    throw_errno("bind 127.0.0.1:0");
  }
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw_errno("getsockname");
  }
  return ntohs(address.sin_port);
}

bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (try_connect(port, std::min(until(deadline), 200ms))) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::min(until(deadline), 20ms));
  }
}

std::unique_ptr<Child> start_smtp_sink(std::uint16_t port,
                                       const std::vector<std::string>& options) {
  std::vector<std::string> argv{"/usr/sbin/smtp-sink"};
  // smtp-sink refuses to run as root without a user to drop to.
  if (geteuid() == 0) argv.insert(argv.end(), {"-u", "nobody"});
  argv.insert(argv.end(), options.begin(), options.end());
  std::string address = "127.0.0.1:" + std::to_string(port);
  argv.insert(argv.end(), {address, "64"});  // 64: the listen backlog

  auto sink = std::make_unique<Child>(argv);
  auto deadline = Clock::now() + 5s;
  for (;;) {
    if (!sink->running()) {
      throw std::runtime_error("smtp-sink exited instead of listening on " + address + ": " +
                               sink->log());
    }
    if (try_connect(port, std::min(until(deadline), 200ms))) return sink;
    if (Clock::now() >= deadline) {
      throw std::runtime_error("smtp-sink did not listen on " + address +
                               " within 5 s: " + sink->log());
    }
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace smtpsh::test
