// engine/net/connection against real TCP peers on loopback: Postfix's smtp-sink, and kernel
// sockets that play a fixed byte sequence (for what no server does on purpose: bare LF,
// a line over the limit, a close in the middle of a line, a full accept queue).
#include "engine/net/connection.hpp"
#include "tests/support/connection_steps.hpp"
#include "tests/support/operation.hpp"
#include "tests/support/subprocess.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

using namespace smtpsh;
using namespace std::chrono_literals;

namespace {

using Op = test::Operation;
using test::connect;
using test::read_line;
using test::send;
using test::wait;

// A listener on 127.0.0.1 that accepts one client, writes `script`, then either closes or
// holds the connection open until the test ends. Every wait is bounded.
class RawPeer {
 public:
  RawPeer(std::string script, bool close_after, int backlog = 4)
      : script_(std::move(script)), close_after_(close_after) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(listen(listener_, backlog) == 0);
    socklen_t length = sizeof address;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~RawPeer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (client_ >= 0) close(client_);
    close(listener_);
  }
  std::uint16_t port() const { return port_; }
  int listener() const { return listener_; }

  void serve() {
    thread_ = std::thread([this] {
      pollfd waiting{listener_, POLLIN, 0};
      for (int i = 0; i < 250 && !stop_; ++i) {
        if (poll(&waiting, 1, 20) == 1) break;
      }
      if (stop_) return;
      client_ = accept(listener_, nullptr, nullptr);
      if (client_ < 0) return;
      std::size_t sent = 0;
      while (sent < script_.size()) {
        ssize_t n = write(client_, script_.data() + sent, script_.size() - sent);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      if (close_after_) {
        shutdown(client_, SHUT_WR);
        return;
      }
      for (int i = 0; i < 500 && !stop_; ++i)
        std::this_thread::sleep_for(10ms);
    });
  }

 private:
  std::string script_;
  bool close_after_;
  int listener_ = -1;
  int client_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("an SMTP dialogue with smtp-sink: banner, EHLO lines, QUIT") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port);
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", port);
  REQUIRE(conn->write_outcome().ok());
  CHECK(conn->remote_address() == "127.0.0.1:" + std::to_string(port));
  CHECK(conn->local_address().rfind("127.0.0.1:", 0) == 0);

  CHECK(read_line(loop, *conn).rfind("220 ", 0) == 0);
  send(loop, *conn, "EHLO probe.example.test\r\n");
  std::vector<std::string> lines;
  for (int i = 0; i < 50; ++i) {
    lines.push_back(read_line(loop, *conn));
    REQUIRE(conn->read_outcome().ok());
    if (lines.back().size() < 4 || lines.back()[3] == ' ') break;
  }
  CHECK(lines.front().rfind("250-", 0) == 0);
  CHECK(std::find(lines.begin(), lines.end(), "250-PIPELINING") != lines.end());
  send(loop, *conn, "QUIT\r\n");
  CHECK(read_line(loop, *conn).rfind("221", 0) == 0);
  // smtp-sink closes after 221: the next read says so.
  read_line(loop, *conn);
  CHECK(conn->read_outcome().failure == net::Failure::closed);
}

TEST_CASE("a host name goes through the resolver (localhost, from /etc/hosts)") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port);
  engine::Loop loop;
  auto conn = connect(loop, "localhost", port, {.source = "127.0.0.1"});
  REQUIRE(conn->write_outcome().ok());
  CHECK(read_line(loop, *conn).rfind("220 ", 0) == 0);
}

TEST_CASE("connecting to a port nobody listens on is 'refused'") {
  auto port = test::free_loopback_port();
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", port);
  CHECK(conn->write_outcome().failure == net::Failure::refused);
  CHECK(conn->write_outcome().message == "connection refused by 127.0.0.1:" + std::to_string(port));
}

TEST_CASE("a full accept queue makes connect time out at the deadline") {
  RawPeer peer("", false, 0);
  // Fill the queue of a listener that never accepts: further SYNs are dropped.
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(peer.port());
    connect(s, reinterpret_cast<sockaddr*>(&address), sizeof address);
    fillers.push_back(s);
  }
  std::this_thread::sleep_for(50ms);
  engine::Loop loop;
  auto started = engine::Clock::now();
  auto conn = connect(loop, "127.0.0.1", peer.port(), {.source = {}, .timeout = 300ms});
  auto elapsed = engine::Clock::now() - started;
  for (int s : fillers)
    close(s);
  CHECK(conn->write_outcome().failure == net::Failure::timeout);
  CHECK(conn->write_outcome().message ==
        "connect to 127.0.0.1:" + std::to_string(peer.port()) + " timed out after 0.3 s");
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 2s);
}

TEST_CASE("lines end at LF with or without CR; EOF leaves the partial line") {
  RawPeer peer("one\ntwo\r\n\r\nthree", true);
  peer.serve();
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", peer.port());
  CHECK(read_line(loop, *conn) == "one");
  CHECK(read_line(loop, *conn) == "two");
  CHECK(read_line(loop, *conn) == "");
  CHECK(conn->read_outcome().ok());
  CHECK(read_line(loop, *conn) == "three");
  CHECK(conn->read_outcome().failure == net::Failure::closed);
  CHECK(conn->read_outcome().message.find("in the middle of a line") != std::string::npos);
}

TEST_CASE("a line at the limit passes; one byte more is 'line too long'") {
  std::string longest(net::Connection::max_line, 'a');
  std::string too_long(net::Connection::max_line + 1, 'b');
  RawPeer peer(longest + "\r\n" + too_long + "\r\nnext\r\n", true);
  peer.serve();
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", peer.port());
  CHECK(read_line(loop, *conn) == longest);
  CHECK(conn->read_outcome().ok());
  read_line(loop, *conn);
  CHECK(conn->read_outcome().failure == net::Failure::protocol);
  CHECK(conn->read_outcome().message.rfind("line too long: over 65536 bytes", 0) == 0);
}

TEST_CASE("endless bytes without a line end stop at the limit") {
  RawPeer peer(std::string(200000, 'x'), false);
  peer.serve();
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", peer.port());
  read_line(loop, *conn);
  CHECK(conn->read_outcome().failure == net::Failure::protocol);
  CHECK(conn->read_outcome().message.find("without a line end") != std::string::npos);
}

TEST_CASE("read_exactly takes counted bytes and reports a short read at EOF") {
  RawPeer peer("0123456789", true);
  peer.serve();
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", peer.port());
  Op first;
  conn->read_exactly(4, &Op::notify, &first);
  wait(loop, first);
  CHECK(conn->data() == "0123");
  if (!conn->take_buffered(6)) {
    Op second;
    conn->read_exactly(6, &Op::notify, &second);
    wait(loop, second);
  }
  CHECK(conn->data() == "456789");
  Op third;
  conn->read_exactly(3, &Op::notify, &third);
  wait(loop, third);
  CHECK(conn->read_outcome().failure == net::Failure::closed);
  CHECK(conn->data().empty());
}

TEST_CASE("a silent peer makes a read time out; interrupt and close end reads early") {
  RawPeer peer("", false);
  peer.serve();
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", peer.port(), {.source = {}, .timeout = 200ms});
  auto started = engine::Clock::now();
  read_line(loop, *conn);
  CHECK(conn->read_outcome().failure == net::Failure::timeout);
  CHECK(conn->read_outcome().message.find("timed out after 0.2 s") != std::string::npos);
  CHECK(engine::Clock::now() - started < 2s);

  conn->set_timeout(10s);
  Op interrupted;
  conn->read_line(&Op::notify, &interrupted);
  asio::post(loop.io(), [&] { conn->interrupt(); });
  wait(loop, interrupted);
  CHECK(conn->read_outcome().failure == net::Failure::interrupted);

  Op closed;
  conn->read_line(&Op::notify, &closed);
  asio::post(loop.io(), [&] { conn->close(); });
  wait(loop, closed);
  CHECK(conn->read_outcome().failure == net::Failure::closed);
  CHECK_FALSE(conn->is_open());
}

TEST_CASE("the source address is bound, and a bad one is refused clearly") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port);
  engine::Loop loop;
  auto from_second = connect(loop, "127.0.0.1", port, {.source = "127.0.0.2"});
  REQUIRE(from_second->write_outcome().ok());
  CHECK(from_second->local_address().rfind("127.0.0.2:", 0) == 0);

  auto not_ip = connect(loop, "127.0.0.1", port, {.source = "mail.example"});
  CHECK(not_ip->write_outcome().failure == net::Failure::source);
  CHECK(not_ip->write_outcome().message == "source address 'mail.example' is not an IP address");

  // An address this machine does not have: the user's mistake, never the network's.
  auto not_ours = connect(loop, "127.0.0.1", port, {.source = "192.0.2.77"});
  CHECK(not_ours->write_outcome().failure == net::Failure::source);
  CHECK(not_ours->write_outcome().message ==
        "cannot connect from source address 192.0.2.77: it is not an address of this machine");

  auto wrong_family = connect(loop, "127.0.0.1", port, {.source = "::1"});
  CHECK(wrong_family->write_outcome().failure == net::Failure::unreachable);
}

TEST_CASE("IPv6 loopback, when the machine has it") {
  int listener = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (listener >= 0) close(listener);
    MESSAGE("no IPv6 loopback here; skipped");
    return;
  }
  // The kernel completes the handshake for a listening socket; no accept needed.
  REQUIRE(listen(listener, 4) == 0);
  socklen_t length = sizeof address;
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  auto port = ntohs(address.sin6_port);
  engine::Loop loop;
  auto conn = connect(loop, "::1", port);
  CHECK(conn->write_outcome().ok());
  CHECK(conn->remote_address() == "[::1]:" + std::to_string(port));
  CHECK(conn->local_address().rfind("[::1]:", 0) == 0);
  close(listener);
}

// --- the connect hook ------------------------------------------------------------------------

namespace {

// Says the same for every address, remembers what it was asked, and with a `to` sends the
// connects it lets go there.
struct TestHook final : net::ConnectHook {
  explicit TestHook(Verdict answer, asio::ip::tcp::endpoint redirect = {})
      : verdict(answer), to(redirect) {}
  Verdict before_connect(asio::ip::tcp::endpoint& endpoint,
                         net::Admission& admission) const override {
    asked.push_back(endpoint);
    if (verdict == Verdict::go && to.port() != 0) endpoint = to;
    admission.replayed_tls = replayed_tls;
    // A lease that counts itself out when the connection lets go of it.
    ++open;
    admission.lease =
        std::shared_ptr<void>(&open, [](void* count) { --*static_cast<int*>(count); });
    return verdict;
  }
  Verdict verdict;
  asio::ip::tcp::endpoint to;
  std::shared_ptr<const tls::Info> replayed_tls;
  mutable std::vector<asio::ip::tcp::endpoint> asked;
  mutable int open = 0;
};

asio::ip::tcp::endpoint loopback(std::uint16_t port) {
  return {asio::ip::make_address("127.0.0.1"), port};
}

}  // namespace

TEST_CASE("a connect hook that refuses gives the refusal, though a peer listens") {
  RawPeer peer("220 never seen\r\n", true);
  peer.serve();
  auto hook = std::make_shared<TestHook>(net::ConnectHook::Verdict::refuse);
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", peer.port(), {.source = {}, .timeout = 5s, .hook = hook});
  CHECK(conn->write_outcome().failure == net::Failure::refused);
  CHECK(conn->write_outcome().message ==
        "connection refused by 127.0.0.1:" + std::to_string(peer.port()));
  REQUIRE(hook->asked.size() == 1);
  CHECK(hook->asked.front() == loopback(peer.port()));
  CHECK(conn->remote_address().empty());
}

TEST_CASE("a connect hook that redirects connects to the redirected loopback listener") {
  RawPeer peer("220 the redirected listener\r\n", true);
  peer.serve();
  auto nobody = test::free_loopback_port();  // asked for, but nothing listens there
  auto hook = std::make_shared<TestHook>(net::ConnectHook::Verdict::go, loopback(peer.port()));
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", nobody, {.source = {}, .timeout = 5s, .hook = hook});
  REQUIRE(conn->write_outcome().ok());
  CHECK(read_line(loop, *conn) == "220 the redirected listener");
  REQUIRE(hook->asked.size() == 1);
  CHECK(hook->asked.front() == loopback(nobody));
  // The connection still names the endpoint it was asked for, as the replay's messages do.
  CHECK(conn->remote_address() == "127.0.0.1:" + std::to_string(nobody));
}

TEST_CASE("a connect admitted with a recorded TLS result takes it instead of a handshake") {
  // A plain-text peer: a real handshake against it would fail.
  RawPeer peer("220 replayed\r\n", true);
  peer.serve();
  auto hook = std::make_shared<TestHook>(net::ConnectHook::Verdict::go);
  auto recorded = std::make_shared<tls::Info>();
  recorded->version = "TLSv1.2";
  recorded->cipher = "ECDHE-RSA-AES256-GCM-SHA384";
  tls::Certificate leaf;
  leaf.subject = "CN=mx.recorded.test";
  recorded->chain.push_back(leaf);
  recorded->verify_result = "ok";
  recorded->verified = true;
  hook->replayed_tls = recorded;
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", peer.port(), {.source = {}, .timeout = 5s, .hook = hook});
  REQUIRE(conn->write_outcome().ok());
  CHECK(hook->open == 1);  // the lease is held while the connection lives
  CHECK(read_line(loop, *conn) == "220 replayed");
  Op op;
  conn->start_tls(tls::Options{}, &Op::notify, &op);
  wait(loop, op);
  REQUIRE(conn->write_outcome().ok());
  REQUIRE(conn->tls_info() != nullptr);
  CHECK(conn->tls_info()->version == "TLSv1.2");
  CHECK(conn->tls_info()->chain.front().subject == "CN=mx.recorded.test");
  CHECK(conn->tls_info()->verified);
  // Once only: a second handshake on another connection would be a real one.
  conn->close();
  CHECK(hook->open == 0);  // and closing lets go of the lease
}

TEST_CASE("a connect that fails lets go of its lease") {
  auto hook = std::make_shared<TestHook>(net::ConnectHook::Verdict::go);
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", test::free_loopback_port(),
                      {.source = {}, .timeout = 5s, .hook = hook});
  CHECK(conn->write_outcome().failure == net::Failure::refused);
  CHECK(hook->asked.size() == 1);
  CHECK(hook->open == 0);
}

TEST_CASE("a connect hook that lets a connect go leaves it alone") {
  RawPeer peer("220 as asked\r\n", true);
  peer.serve();
  auto hook = std::make_shared<TestHook>(net::ConnectHook::Verdict::go);
  engine::Loop loop;
  auto conn = connect(loop, "127.0.0.1", peer.port(), {.source = {}, .timeout = 5s, .hook = hook});
  REQUIRE(conn->write_outcome().ok());
  CHECK(read_line(loop, *conn) == "220 as asked");
  CHECK(hook->asked.size() == 1);
}

TEST_CASE("a connect hook that blackholes leaves the connect to its deadline, or an interrupt") {
  auto port = test::free_loopback_port();
  auto hook = std::make_shared<TestHook>(net::ConnectHook::Verdict::blackhole);
  engine::Loop loop;
  auto started = engine::Clock::now();
  auto conn = connect(loop, "127.0.0.1", port, {.source = {}, .timeout = 300ms, .hook = hook});
  CHECK(engine::Clock::now() - started >= 250ms);
  CHECK(conn->write_outcome().failure == net::Failure::timeout);
  CHECK(conn->write_outcome().message ==
        "connect to 127.0.0.1:" + std::to_string(port) + " timed out after 0.3 s");

  auto second = net::Connection::create(loop.io());
  Op op;
  second->connect("127.0.0.1", port, {.source = {}, .timeout = 5s, .hook = hook}, &Op::notify, &op);
  asio::post(loop.io(), [&] { second->interrupt(); });
  wait(loop, op);
  CHECK(second->write_outcome().failure == net::Failure::interrupted);
}
