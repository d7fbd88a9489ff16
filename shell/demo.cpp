#include "shell/demo.hpp"

#include "bindings/scheduler.hpp"
#include "shell/runner.hpp"

#include <asio/post.hpp>

#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <mutex>
#include <stdexcept>

namespace smtpsh::shell {

// What the two threads share: the port (or why it failed), and the server's loop to stop.
struct DemoServer::Shared {
  std::mutex mutex;
  std::condition_variable ready;
  bool started = false;
  std::uint16_t port = 0;
  std::string error;
  asio::io_context* io = nullptr;
  lua_State* L = nullptr;
};

namespace {

constexpr const char* demo_chunk = R"lua(
local report = ...
local embedded = require "smtpsh.embedded"
local server = require "smtpsh.server"
local scenario = assert(embedded.load("examples/servers/demo.lua"))
local spec = scenario({})
spec.host, spec.port = "127.0.0.1", 0
local srv, err = server.listen(spec)
report(srv and srv.port or 0, err)
if srv then pcall(srv.wait, srv) end
)lua";

int report_port(lua_State* L) {
  auto* shared = static_cast<DemoServer::Shared*>(lua_touserdata(L, lua_upvalueindex(1)));
  std::lock_guard lock(shared->mutex);
  shared->port = static_cast<std::uint16_t>(lua_tointeger(L, 1));
  if (lua_isstring(L, 2)) shared->error = lua_tostring(L, 2);
  shared->started = true;
  shared->ready.notify_all();
  return 0;
}

void serve(const std::shared_ptr<DemoServer::Shared>& shared) {
  auto fail = [&](const std::string& why) {
    std::lock_guard lock(shared->mutex);
    shared->error = why;
    shared->started = true;
    shared->ready.notify_all();
  };
  try {
    Runtime runtime(/*watch_interrupts=*/false);
    lua_State* L = runtime.state();
    {
      std::lock_guard lock(shared->mutex);
      shared->io = &runtime.io();
      shared->L = L;
    }
    if (luaL_loadstring(L, demo_chunk) != LUA_OK) return fail(lua_tostring(L, -1));
    lua_pushlightuserdata(L, shared.get());
    lua_pushcclosure(L, report_port, 1);
    runtime.run_task(1, "smtpsh demo server: ");
    std::lock_guard lock(shared->mutex);
    shared->io = nullptr;
    shared->L = nullptr;
    if (!shared->started) {
      shared->started = true;
      shared->error = "the demo scenario ended before it listened";
      shared->ready.notify_all();
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

// The server's thread with SIGINT blocked: Ctrl-C belongs to the REPL's state, and its handler
// must run on the REPL's thread (it hooks the Lua thread running there).
std::thread start_without_sigint(const std::shared_ptr<DemoServer::Shared>& shared) {
  sigset_t block;
  sigset_t previous;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &previous);
  try {
    std::thread thread([shared] { serve(shared); });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return thread;
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw;
  }
}

}  // namespace

DemoServer::DemoServer() : shared_(std::make_shared<Shared>()) {
  thread_ = start_without_sigint(shared_);
  std::unique_lock lock(shared_->mutex);
  shared_->ready.wait(lock, [this] { return shared_->started; });
  if (shared_->port == 0) {
    std::string why = shared_->error;
    lock.unlock();
    thread_.join();
    throw std::runtime_error("cannot start the demo server: " + why);
  }
  port_ = shared_->port;
}

DemoServer::~DemoServer() {
  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->io) {
      // Interrupting every task of the server's state ends its main task, and so the thread.
      lua_State* L = shared_->L;
      asio::post(*shared_->io, [L] { lua::Scheduler::get(L).interrupt_all("interrupted"); });
    }
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace smtpsh::shell
