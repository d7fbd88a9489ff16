// engine/server/demo_server against clients written by others (swaks, Python's smtplib) and a
// raw socket of our own for what no polite client does; plus the test-support library that
// runs those clients.
#include "engine/server/demo_server.hpp"
#include "tests/support/subprocess.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>

using namespace smtpsh;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto client_timeout = 20s;  // for a whole swaks or Python run

// A blocking loopback client whose every wait is bounded.
class RawClient {
 public:
  // Small buffers let a test fill the path to and from the server quickly.
  explicit RawClient(std::uint16_t port, bool small_buffers = false,
                     std::chrono::milliseconds send_timeout = 5000ms) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    if (small_buffers) {
      int size = 4096;
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(send_timeout).count();
    timeval timeout{static_cast<time_t>(micros / 1000000),
                    static_cast<suseconds_t>(micros % 1000000)};
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  ~RawClient() { close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Sends what it can within the send timeout and says how much that was; the server may
  // close on us, which is no error.
  std::size_t send(std::string_view data) {
    std::size_t sent = 0;
    for (int i = 0; i < 10000 && sent < data.size(); ++i) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    return sent;
  }

  // One line without its line end, or "<eof>" / "<timeout>".
  std::string line(std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0ms || poll(&p, 1, static_cast<int>(left.count())) == 0) return "<timeout>";
      char chunk[4096];
      ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return "<eof>";
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // A whole (possibly multi-line) reply, its lines joined by '\n'.
  std::string reply() {
    std::string text;
    for (int i = 0; i < 100; ++i) {
      std::string next = line();
      text += text.empty() ? next : "\n" + next;
      if (next.size() < 4 || next[3] != '-') break;
    }
    return text;
  }

  std::string ask(std::string_view command) {
    send(std::string(command) + "\r\n");
    return reply();
  }

 private:
  int fd_ = -1;
  std::string buffer_;
};

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

std::string target(const engine::DemoServer& server) {
  return "127.0.0.1:" + std::to_string(server.port());
}

test::RunResult swaks(const engine::DemoServer& server, const std::vector<std::string>& options) {
  std::vector<std::string> argv{"swaks", "--server", target(server), "--timeout", "10"};
  argv.insert(argv.end(), {"--helo", "swaks.example.test", "--from", "y@example.test"});
  argv.insert(argv.end(), options.begin(), options.end());
  return test::run(argv, "", client_timeout);
}

// Runs a Python script that gets the server's port as sys.argv[1].
test::RunResult python(const engine::DemoServer& server, const std::string& script) {
  std::string prelude = "import smtplib, sys\nport = int(sys.argv[1])\n";
  return test::run({"/usr/bin/python3", "-c", prelude + script, std::to_string(server.port())}, "",
                   client_timeout);
}

}  // namespace

// --- the test-support library ---------------------------------------------------------------

TEST_CASE("run captures stdout, stderr and the exit code") {
  auto result = test::run({"sh", "-c", "printf out; printf err >&2; exit 3"}, "", 5000ms);
  CHECK(result.out == "out");
  CHECK(result.err == "err");
  CHECK(result.exit_code == 3);
  CHECK_FALSE(result.timed_out);

  CHECK(test::run({"sh", "-c", "kill -TERM $$"}, "", 5000ms).exit_code == 128 + SIGTERM);
}

TEST_CASE("run feeds stdin, also more than a pipe holds") {
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 100) {
    big[i] = '\n';
  }
  auto result = test::run({"cat"}, big, 10000ms);
  CHECK(result.exit_code == 0);
  CHECK(result.out == big);
}

TEST_CASE("run survives a child that does not read its stdin") {
  auto result = test::run({"true"}, std::string(4 << 20, 'x'), 10000ms);
  CHECK(result.exit_code == 0);
  CHECK_FALSE(result.timed_out);
}

TEST_CASE("run kills a child, and what it started, at the timeout") {
  auto start = Clock::now();
  auto result = test::run({"sh", "-c", "echo started; sleep 30; echo never"}, "", 300ms);
  CHECK(Clock::now() - start < 3s);
  CHECK(result.timed_out);
  CHECK(result.exit_code == 128 + SIGKILL);
  CHECK(result.out == "started\n");
}

TEST_CASE("run reports a program it cannot execute as 127") {
  auto result = test::run({"smtpsh-no-such-program"}, "", 5000ms);
  CHECK(result.exit_code == 127);
  CHECK(has(result.err, "cannot execute smtpsh-no-such-program"));
  CHECK_THROWS_AS(test::run({}, "", 1000ms), std::invalid_argument);
}

TEST_CASE("free_loopback_port and wait_for_port") {
  auto port = test::free_loopback_port();
  CHECK(port != 0);
  auto start = Clock::now();
  CHECK_FALSE(test::wait_for_port(port, 200ms));
  CHECK(Clock::now() - start >= 200ms);
  CHECK(Clock::now() - start < 2s);

  engine::DemoServer server("127.0.0.1", 0);
  CHECK(test::wait_for_port(server.port(), 2000ms));
}

TEST_CASE("Child: log, running, and a destructor that stops it") {
  pid_t pid = -1;
  {
    test::Child child({"sh", "-c", "echo ready; exec sleep 30"});
    pid = child.pid();
    for (int i = 0; i < 250 && !has(child.log(), "ready"); ++i) {
      std::this_thread::sleep_for(20ms);
    }
    CHECK(child.log() == "ready\n");
    CHECK(child.running());
  }
  CHECK(kill(pid, 0) == -1);  // reaped, not a zombie
  CHECK(errno == ESRCH);

  test::Child quick({"true"});
  for (int i = 0; i < 250 && quick.running(); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  CHECK_FALSE(quick.running());
}

TEST_CASE("Child: one that ignores SIGTERM is killed after 2 s") {
  auto child = std::make_unique<test::Child>(
      std::vector<std::string>{"sh", "-c", "trap '' TERM; echo ready; sleep 30"});
  for (int i = 0; i < 250 && !has(child->log(), "ready"); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(has(child->log(), "ready"));
  auto start = Clock::now();
  child.reset();
  auto took = Clock::now() - start;
  CHECK(took >= 1900ms);
  CHECK(took < 4s);
}

TEST_CASE("start_smtp_sink comes up, takes options, and answers 220") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port, {"-h", "sink.example.test"});
  REQUIRE(sink->running());
  RawClient client(port);
  std::string greeting = client.line();
  CHECK(greeting.rfind("220 ", 0) == 0);
  CHECK(has(greeting, "sink.example.test"));
}

TEST_CASE("start_smtp_sink says why when smtp-sink does not start") {
  try {
    test::start_smtp_sink(test::free_loopback_port(), {"-Z"});
    FAIL("no exception");
  } catch (const std::runtime_error& error) {
    CHECK(has(error.what(), "smtp-sink exited"));
    CHECK(has(error.what(), "usage"));
  }
}

// --- the demo server -------------------------------------------------------------------------

TEST_CASE("demo server: binds a free port; a busy port or a host name is a clear error") {
  engine::DemoServer server("127.0.0.1", 0);
  CHECK(server.host() == "127.0.0.1");
  CHECK(server.port() != 0);

  try {
    engine::DemoServer second("127.0.0.1", server.port());
    FAIL("bound a port in use");
  } catch (const std::system_error& error) {
    CHECK(has(error.what(), "demo server cannot listen on " + target(server)));
  }
  CHECK_THROWS_AS(engine::DemoServer("mail.example.test", 0), std::system_error);

  engine::DemoServer local("localhost", 0);
  RawClient client(local.port());
  CHECK(client.line() == "220 demo.smtpsh.test ESMTP smtpsh demo server ready");

  std::unique_ptr<engine::DemoServer> v6;
  try {
    v6 = std::make_unique<engine::DemoServer>("::1", 0);
  } catch (const std::system_error& error) {
    MESSAGE("no IPv6 loopback here: " << error.what());
    return;
  }
  CHECK(v6->port() != 0);
  auto busy = "[::1]:" + std::to_string(v6->port());
  try {
    engine::DemoServer second("::1", v6->port());
    FAIL("bound a port in use");
  } catch (const std::system_error& error) {
    CHECK(has(error.what(), "demo server cannot listen on " + busy));
  }
}

TEST_CASE("demo server: swaks up to RCPT") {
  engine::DemoServer server("127.0.0.1", 0);
  auto result = swaks(server, {"--to", "x@example.test", "--quit-after", "RCPT"});
  CHECK_MESSAGE(result.exit_code == 0, result.out << result.err);
  for (std::string_view line :
       {"<-  220 demo.smtpsh.test ESMTP smtpsh demo server ready", " -> EHLO swaks.example.test",
        "<-  250-demo.smtpsh.test greets swaks.example.test", "<-  250-PIPELINING",
        "<-  250-SIZE 10240000", "<-  250-8BITMIME", "<-  250-ENHANCEDSTATUSCODES",
        "<-  250-SMTPUTF8", "<-  250-CHUNKING", "<-  250 HELP", " -> MAIL FROM:<y@example.test>",
        "<-  250 2.1.0 Ok", " -> RCPT TO:<x@example.test>", "<-  250 2.1.5 Ok", " -> QUIT",
        "<-  221 2.0.0 Bye"}) {
    CHECK_MESSAGE(has(result.out, line), "missing: " << line << "\n" << result.out);
  }
}

TEST_CASE("demo server: swaks sends a whole message, pipelined, with dot lines") {
  engine::DemoServer server("127.0.0.1", 0);
  auto result = swaks(
      server, {"--to", "x@example.test", "--pipeline", "--body", "first\n.leading dot\n.\nlast"});
  CHECK_MESSAGE(result.exit_code == 0, result.out << result.err);
  for (std::string_view line : {" -> ..leading dot", " -> ..", "<-  354 End data with",
                                "<-  250 2.0.0 Ok: queued as DEMO1", "<-  221 2.0.0 Bye"}) {
    CHECK_MESSAGE(has(result.out, line), "missing: " << line << "\n" << result.out);
  }
  // The counter is per server: a second message gets the next id.
  CHECK(has(swaks(server, {"--to", "x@example.test"}).out, "queued as DEMO2"));
}

TEST_CASE("demo server: swaks sees an unknown recipient rejected") {
  engine::DemoServer server("127.0.0.1", 0);
  auto result = swaks(server, {"--to", "unknown@example.test"});
  CHECK(result.exit_code == 24);  // swaks: "RCPT TO" failed
  CHECK_MESSAGE(has(result.out,
                    "<** 550 5.1.1 <unknown@example.test>: Recipient address "
                    "rejected: User unknown"),
                result.out);
}

TEST_CASE("demo server: smtplib sees the EHLO features") {
  engine::DemoServer server("127.0.0.1", 0);
  auto result = python(server, R"(
with smtplib.SMTP("127.0.0.1", port, local_hostname="py.example.test", timeout=10) as s:
    code, text = s.ehlo()
    print(code, text.decode().splitlines()[0])
    for name in sorted(s.esmtp_features):
        print(name + "=" + s.esmtp_features[name])
)");
  CHECK_MESSAGE(result.exit_code == 0, result.err);
  CHECK(
      result.out ==
      "250 demo.smtpsh.test greets py.example.test\n"
      "8bitmime=\nchunking=\nenhancedstatuscodes=\nhelp=\npipelining=\nsize=10240000\nsmtputf8=\n");
}

TEST_CASE("demo server: smtplib sends a message with dot lines, and the framing holds") {
  engine::DemoServer server("127.0.0.1", 0);
  // smtplib dot-stuffs "." and "..": were they mistaken for the end, NOOP would get a reply
  // meant for a body line.
  auto result = python(server, R"(
body = "Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\nlast line\r\n"
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.ehlo()
    print(*s.mail("sender@example.test", ["SIZE=%d" % len(body), "BODY=8BITMIME", "SMTPUTF8"]))
    print(*s.rcpt("rcpt@example.test"))
    code, text = s.data(body)
    print(code, text.decode())
    code, text = s.noop()
    print(code, text.decode())
    print(s.sendmail("sender@example.test", ["rcpt@example.test"], body))
)");
  CHECK_MESSAGE(result.exit_code == 0, result.err);
  CHECK(result.out ==
        "250 b'2.1.0 Ok'\n250 b'2.1.5 Ok'\n250 2.0.0 Ok: queued as DEMO1\n250 2.0.0 Ok\n{}\n");
}

TEST_CASE("demo server: smtplib sees 550 for unknown@ and 450 for greylist@") {
  engine::DemoServer server("127.0.0.1", 0);
  auto result = python(server, R"(
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.ehlo()
    s.mail("sender@example.test")
    for rcpt in ("unknown@example.test", "GreyList@example.test", "Postmaster", "ok@example.test"):
        code, text = s.rcpt(rcpt)
        print(code, text.decode())
)");
  CHECK_MESSAGE(result.exit_code == 0, result.err);
  CHECK(result.out ==
        "550 5.1.1 <unknown@example.test>: Recipient address rejected: User unknown\n"
        "450 4.7.1 <GreyList@example.test>: Recipient address rejected: Greylisted, try again "
        "later\n"
        "250 2.1.5 Ok\n"
        "250 2.1.5 Ok\n");
}

TEST_CASE("demo server: pipelined commands in one write get their replies in order") {
  engine::DemoServer server("127.0.0.1", 0);
  auto result = python(server, R"(
def replies(count):
    for _ in range(count):
        code, text = s.getreply()
        print(code, text.decode())
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.ehlo()
    s.sock.sendall(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
                   b"RCPT TO:<unknown@example.test>\r\nDATA\r\n")
    replies(4)
    s.sock.sendall(b"Subject: p\r\n\r\nbody\r\n.\r\nNOOP\r\nRSET\r\nVRFY b\r\n")
    replies(4)
)");
  CHECK_MESSAGE(result.exit_code == 0, result.err);
  CHECK(result.out ==
        "250 2.1.0 Ok\n250 2.1.5 Ok\n"
        "550 5.1.1 <unknown@example.test>: Recipient address rejected: User unknown\n"
        "354 End data with <CR><LF>.<CR><LF>\n"
        "250 2.0.0 Ok: queued as DEMO1\n250 2.0.0 Ok\n250 2.0.0 Ok\n"
        "252 2.0.0 Cannot VRFY user, but will accept message\n");
}

TEST_CASE("demo server: commands out of order, bad syntax, and the other verbs") {
  engine::DemoServer server("127.0.0.1", 0);
  RawClient c(server.port());
  CHECK(c.line() == "220 demo.smtpsh.test ESMTP smtpsh demo server ready");
  CHECK(c.ask("MAIL FROM:<a@example.test>") == "503 5.5.1 Error: send HELO/EHLO first");
  CHECK(c.ask("HELO") == "501 5.5.4 Syntax: HELO hostname");
  CHECK(c.ask("helo raw.example.test") == "250 demo.smtpsh.test greets raw.example.test");
  CHECK(c.ask("RCPT TO:<b@example.test>") == "503 5.5.1 Error: need MAIL command");
  CHECK(c.ask("DATA") == "503 5.5.1 Error: need MAIL command");
  CHECK(c.ask("MAIL FROM:a@example.test") == "501 5.5.4 Syntax: MAIL FROM:<address>");
  CHECK(c.ask("MAIL FROM:<no address>") == "501 5.5.4 Syntax: MAIL FROM:<address>");
  CHECK(c.ask("MAIL FROM:<a@example.test> FOO=1") == "555 5.5.4 Unsupported option: FOO=1");
  CHECK(c.ask("MAIL FROM:<a@example.test> SIZE=20000000") ==
        "552 5.3.4 Message size exceeds fixed limit");
  CHECK(c.ask("mail from: <>") == "250 2.1.0 Ok");
  CHECK(c.ask("MAIL FROM:<a@example.test>") == "503 5.5.1 Error: nested MAIL command");
  CHECK(c.ask("DATA") == "503 5.5.1 Error: need RCPT command");
  CHECK(c.ask("RCPT TO:<no-domain>") == "501 5.5.4 Syntax: RCPT TO:<address>");
  CHECK(c.ask("RCPT TO:<unknown@example.test>") ==
        "550 5.1.1 <unknown@example.test>: Recipient address rejected: User unknown");
  CHECK(c.ask("DATA") == "554 5.5.1 Error: no valid recipients");
  CHECK(c.ask("RSET") == "250 2.0.0 Ok");
  CHECK(c.ask("NoOp") == "250 2.0.0 Ok");
  CHECK(c.ask("VRFY someone") == "252 2.0.0 Cannot VRFY user, but will accept message");
  CHECK(c.ask("EXPN staff") == "502 5.5.1 Error: command not implemented");
  CHECK(c.ask("HELP").rfind("214 ", 0) == 0);
  CHECK(c.ask("STARTTLS") == "454 4.7.0 TLS not available");
  CHECK(c.ask("FROB") == "500 5.5.2 Error: command not recognized");
  CHECK(c.ask("") == "500 5.5.2 Error: bad syntax");
  CHECK(c.ask("EHLO a\rb").rfind("250-demo.smtpsh.test greets a?b\n", 0) == 0);
  CHECK(c.ask("QUIT") == "221 2.0.0 Bye");
  CHECK(c.line() == "<eof>");
}

TEST_CASE("demo server: bare LF ends lines, in commands and in DATA") {
  engine::DemoServer server("127.0.0.1", 0);
  RawClient c(server.port());
  CHECK(c.line() == "220 demo.smtpsh.test ESMTP smtpsh demo server ready");
  c.send("EHLO lf.example.test\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\nDATA\n");
  CHECK(c.reply().rfind("250-demo.smtpsh.test greets lf.example.test\n", 0) == 0);
  CHECK(c.reply() == "250 2.1.0 Ok");
  CHECK(c.reply() == "250 2.1.5 Ok");
  CHECK(c.reply() == "354 End data with <CR><LF>.<CR><LF>");
  c.send("Subject: lf\n\n..\n.x\r\n.\nQUIT\n");
  CHECK(c.reply() == "250 2.0.0 Ok: queued as DEMO1");
  CHECK(c.reply() == "221 2.0.0 Bye");
  CHECK(c.line() == "<eof>");
}

TEST_CASE("demo server: 64 KiB is the longest line; a longer one ends the session") {
  engine::DemoServer server("127.0.0.1", 0);
  constexpr std::size_t limit = 65'536;
  {
    RawClient c(server.port());
    CHECK(c.line().rfind("220 ", 0) == 0);
    CHECK(c.ask("NOOP " + std::string(limit - 5, 'x')) == "250 2.0.0 Ok");
    CHECK(c.ask("NOOP " + std::string(limit - 4, 'x')) == "500 5.5.6 Line too long");
    CHECK(c.line() == "<eof>");
  }
  {
    // A client that keeps sending must still get to read the reply before the close.
    RawClient c(server.port());
    CHECK(c.line().rfind("220 ", 0) == 0);
    c.send(std::string(524'288, 'y'));
    CHECK(c.line() == "500 5.5.6 Line too long");
    CHECK(c.line() == "<eof>");
  }
}

TEST_CASE("demo server: concurrent sessions stay apart") {
  engine::DemoServer server("127.0.0.1", 0);
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 16; ++i) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
    CHECK(clients.back()->line().rfind("220 ", 0) == 0);
  }
  for (std::size_t i = 0; i < clients.size(); ++i) {
    clients[i]->send("HELO c" + std::to_string(i) + "\r\nMAIL FROM:<a@example.test>\r\n");
  }
  for (std::size_t i = clients.size(); i-- > 0;) {
    CHECK(clients[i]->reply() == "250 demo.smtpsh.test greets c" + std::to_string(i));
    CHECK(clients[i]->reply() == "250 2.1.0 Ok");
    CHECK(clients[i]->ask("QUIT") == "221 2.0.0 Bye");
  }
}

TEST_CASE("demo server: the destructor returns promptly with clients connected") {
  auto server = std::make_unique<engine::DemoServer>("127.0.0.1", 0);
  auto port = server->port();
  RawClient idle(port);
  CHECK(idle.line().rfind("220 ", 0) == 0);

  RawClient in_data(port);
  CHECK(in_data.line().rfind("220 ", 0) == 0);
  in_data.send("HELO d\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n");
  CHECK(in_data.reply() == "250 demo.smtpsh.test greets d");
  CHECK(in_data.reply() == "250 2.1.0 Ok");
  CHECK(in_data.reply() == "250 2.1.5 Ok");
  CHECK(in_data.reply() == "354 End data with <CR><LF>.<CR><LF>");
  in_data.send("half a line");

  // Floods commands and never reads a reply. Once the replies fill every buffer between us, the
  // server's write stalls and it stops reading, so our send stops short: that is the state the
  // destructor meets.
  RawClient deaf(port, true, 200ms);
  CHECK(deaf.line().rfind("220 ", 0) == 0);
  std::string flood;
  for (int i = 0; i < 1'000'000; ++i) {
    flood += "EHLO x\r\n";  // a long reply for a short command
  }
  CHECK(deaf.send(flood) < flood.size());

  auto start = Clock::now();
  server.reset();
  CHECK(Clock::now() - start < 1s);
  CHECK(idle.line() == "<eof>");
  CHECK(in_data.line() == "<eof>");
  // The listening socket is closed too: the port can be bound again at once.
  engine::DemoServer again("127.0.0.1", port);
  CHECK(again.port() == port);
}

TEST_CASE("demo server: BDAT chunks, in order and out of order") {
  engine::DemoServer server("127.0.0.1", 0);
  RawClient client(server.port());
  CHECK(has(client.reply(), "220 "));
  CHECK(has(client.ask("EHLO raw.example.test"), "250-CHUNKING"));
  CHECK(client.ask("BDAT 3 LAST") == "503 5.5.1 Error: need MAIL command");
  CHECK(client.ask("MAIL FROM:<a@example.test>") == "250 2.1.0 Ok");
  CHECK(client.ask("RCPT TO:<b@example.test>") == "250 2.1.5 Ok");
  CHECK(client.ask("BDAT x") == "501 5.5.4 Syntax: BDAT size [LAST]");
  // A chunk's bytes may hold anything, line ends and "." included.
  client.send("BDAT 7\r\n.\r\nab\r\n");
  CHECK(client.reply() == "250 2.0.0 Ok: 7 octets received");
  client.send("BDAT 4 LAST\r\nxyz\n");
  CHECK(has(client.reply(), "250 2.0.0 Ok: 4 octets, queued as DEMO"));
  CHECK(client.ask("NOOP") == "250 2.0.0 Ok");
}
