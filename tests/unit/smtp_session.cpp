// engine/smtp/session against Postfix's smtp-sink on loopback.
#include "engine/smtp/session.hpp"
#include "tests/support/operation.hpp"
#include "tests/support/subprocess.hpp"

#include <doctest/doctest.h>
#include <asio/steady_timer.hpp>

#include <cstdlib>

using namespace smtpsh;
using namespace std::chrono_literals;

namespace {

using Op = test::Operation;
using test::wait;

std::shared_ptr<smtp::Session> connect(engine::Loop& loop, std::uint16_t port,
                                       engine::Duration timeout = 5s) {
  auto session = smtp::Session::create(loop.io());
  Op op;
  session->connect("127.0.0.1", port, {.source = {}, .timeout = timeout}, &Op::notify, &op);
  wait(loop, op);
  return session;
}

const std::vector<smtp::Reply>& exchange(engine::Loop& loop, smtp::Session& session,
                                         std::vector<std::string> lines,
                                         std::vector<std::size_t> shown = {}) {
  Op op;
  session.exchange(std::move(lines), std::move(shown), &Op::notify, &op);
  CHECK_FALSE(op.done);
  wait(loop, op);
  return session.replies();
}

std::vector<std::string> client_lines(smtp::Session& session) {
  std::vector<std::string> lines;
  for (const auto& entry : session.transcript().entries())
    if (entry.dir == 'C') lines.push_back(entry.line);
  return lines;
}

}  // namespace

TEST_CASE("banner, EHLO, a pipelined envelope, a message and QUIT") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port);
  engine::Loop loop;
  auto session = connect(loop, port);
  REQUIRE(session->outcome().ok());
  REQUIRE(session->replies().size() == 1);
  CHECK(session->replies()[0].code == 220);

  auto& ehlo = exchange(loop, *session, {"EHLO probe.example.test"});
  REQUIRE(ehlo.size() == 1);
  CHECK(ehlo[0].code == 250);
  CHECK(ehlo[0].lines.size() > 3);

  auto& envelope =
      exchange(loop, *session, {"MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"});
  REQUIRE(envelope.size() == 3);
  CHECK(envelope[0].code == 250);
  CHECK(envelope[1].code == 250);
  CHECK(envelope[2].code == 354);

  Op sent;
  session->send_message("Subject: t\n\n.dot line\nbody\n", &Op::notify, &sent);
  wait(loop, sent);
  REQUIRE(session->outcome().ok());
  CHECK(session->replies().at(0).code == 250);

  CHECK(exchange(loop, *session, {"QUIT"}).at(0).code == 221);
  CHECK(client_lines(*session) ==
        std::vector<std::string>{"EHLO probe.example.test", "MAIL FROM:<a@example.test>",
                                 "RCPT TO:<b@example.test>", "DATA", "Subject: t", "", "..dot line",
                                 "body", ".", "QUIT"});
  double previous = 0;
  for (const auto& entry : session->transcript().entries()) {
    CHECK(entry.t >= previous);
    previous = entry.t;
  }
}

TEST_CASE("a 421 closes the session; later commands fail as closed") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port, {"-Q", "MAIL"});
  engine::Loop loop;
  auto session = connect(loop, port);
  exchange(loop, *session, {"EHLO x"});
  auto& replies = exchange(loop, *session, {"MAIL FROM:<a@example.test>"});
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].code == 421);
  CHECK(session->closed());
  Op after;
  session->exchange({"NOOP"}, {}, &Op::notify, &after);
  wait(loop, after);
  CHECK(session->outcome().failure == net::Failure::closed);
}

TEST_CASE("a silent disconnect and a slow reply are failures with their kind") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port, {"-q", "RCPT", "-W", "MAIL:3"});
  engine::Loop loop;
  auto session = connect(loop, port, 1s);
  exchange(loop, *session, {"EHLO x"});
  auto started = engine::Clock::now();
  exchange(loop, *session, {"MAIL FROM:<a@example.test>"});
  CHECK(session->outcome().failure == net::Failure::timeout);
  CHECK(engine::Clock::now() - started < 2500ms);
  CHECK(session->closed());

  auto second = connect(loop, port);
  exchange(loop, *second, {"HELO x"});
  exchange(loop, *second, {"RCPT TO:<b@example.test>"});
  CHECK(second->outcome().failure == net::Failure::closed);
  CHECK(second->outcome().message.find("without a reply") != std::string::npos);
}

TEST_CASE("secrets are cut from the transcript; CR/LF in a command is refused") {
  auto port = test::free_loopback_port();
  auto sink = test::start_smtp_sink(port);
  engine::Loop loop;
  auto session = connect(loop, port);
  exchange(loop, *session, {"AUTH PLAIN AGFsaWNlAHMzY3JldA=="}, {11});
  auto lines = client_lines(*session);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "AUTH PLAIN ***");

  Op refused;
  session->exchange({"RCPT TO:<a@b>\r\nRSET"}, {}, &Op::notify, &refused);
  wait(loop, refused);
  CHECK(session->outcome().failure == net::Failure::protocol);
  CHECK(client_lines(*session).size() == 1);  // nothing more was sent
  CHECK(exchange(loop, *session, {"NOOP"}).at(0).code == 250);
}

// The scenario server, run as its own process (`smtpsh serve demo`): an engine test must not
// reach into the shell. ctest names the binary in SMTPSH (tests/CMakeLists.txt).
std::unique_ptr<test::Child> start_demo_server(std::uint16_t port) {
  const char* smtpsh = std::getenv("SMTPSH");
  REQUIRE_MESSAGE(smtpsh != nullptr, "set SMTPSH to the smtpsh binary (ctest does)");
  auto child = std::make_unique<test::Child>(std::vector<std::string>{
      smtpsh, "serve", "demo", "--listen", "127.0.0.1:" + std::to_string(port)});
  bool up = test::wait_for_port(port, 10s);
  INFO("smtpsh serve demo did not start: " << child->log());
  REQUIRE(up);
  return child;
}

TEST_CASE("BDAT chunks against a server that offers CHUNKING (the demo scenario server)") {
  auto port = test::free_loopback_port();
  auto demo = start_demo_server(port);
  engine::Loop loop;
  auto session = connect(loop, port);
  auto& ehlo = exchange(loop, *session, {"EHLO x"});
  REQUIRE(ehlo.size() == 1);
  CHECK(std::find(ehlo[0].lines.begin(), ehlo[0].lines.end(), "CHUNKING") != ehlo[0].lines.end());
  exchange(loop, *session, {"MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>"});
  Op sent;
  session->send_chunk("Subject: t\n\n.not stuffed\n", &Op::notify, &sent);
  wait(loop, sent);
  REQUIRE(session->outcome().ok());
  // 12 + 2 + 14 bytes: CRLF line ends, and no dot doubled in a chunk.
  CHECK(session->replies().at(0).code == 250);
  CHECK(session->replies().at(0).text().find("28 octets, queued as ") != std::string::npos);
  CHECK(client_lines(*session).at(3) == "BDAT 28 LAST");
  CHECK(exchange(loop, *session, {"NOOP"}).at(0).code == 250);  // still in step
}
