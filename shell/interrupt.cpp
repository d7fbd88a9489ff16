#include "shell/interrupt.hpp"

#include "bindings/scheduler.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

namespace smtpsh::shell {

namespace {

int wakeup_pipe[2] = {-1, -1};
volatile sig_atomic_t armed = 0;
// The scheduler Ctrl-C interrupts: the watch's, never another state's (the demo server's).
std::atomic<lua::Scheduler*> interrupt_target{nullptr};
static_assert(std::atomic<lua::Scheduler*>::is_always_lock_free);

extern "C" void on_sigint(int) {
  int saved_errno = errno;
  lua::Scheduler* scheduler = interrupt_target.load();
  if (armed && scheduler) {
    scheduler->request_interrupt();
    char byte = 1;
    [[maybe_unused]] auto written = write(wakeup_pipe[1], &byte, 1);
  }
  errno = saved_errno;
}

}  // namespace

InterruptWatch::InterruptWatch(lua::Scheduler& target) : target_(target), wakeup_(target.io()) {
  if (pipe2(wakeup_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::system_error(errno, std::generic_category(), "cannot create the interrupt pipe");
  wakeup_.assign(wakeup_pipe[0]);
  interrupt_target.store(&target_);
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  wait();
}

InterruptWatch::~InterruptWatch() {
  armed = 0;
  signal(SIGINT, SIG_DFL);
  interrupt_target.store(nullptr);
  std::error_code ignored;
  wakeup_.close(ignored);
  close(wakeup_pipe[1]);
  wakeup_pipe[0] = wakeup_pipe[1] = -1;
}

void InterruptWatch::arm() {
  // Drop a Ctrl-C that arrived between two chunks: it was meant for neither.
  char drain[64];
  while (read(wakeup_pipe[0], drain, sizeof drain) > 0) {
  }
  armed = 1;
}

void InterruptWatch::disarm() {
  armed = 0;
}

void InterruptWatch::wait() {
  wakeup_.async_read_some(asio::buffer(&byte_, 1), [this](std::error_code ec, std::size_t) {
    if (ec) return;  // closed: the watch is going away
    if (armed) target_.interrupt_all();
    wait();
  });
}

}  // namespace smtpsh::shell
