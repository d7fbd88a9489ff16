"""The scenario server (`smtpsh serve`, stdlib/server.lua) against independent clients:
swaks, Python's smtplib (with STARTTLS) and raw sockets, many sessions at once, and every
kind of handler answer (reply, delay, silence, close, raw bytes, refused TLS).

    /usr/bin/python3 -m unittest -v tests/e2e/test_server.py      (SMTPSH=/path/to/smtpsh)
"""

import concurrent.futures
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SmtpshTestCase, run_smtpsh, scenario, scratch_dir  # noqa: E402

ACTIONS = r'''
-- Each recipient's local part picks what the server does with it.
return {
  hostname = "mx.actions.test",
  tls = { self_signed = "mx.actions.test" },
  on_rcpt = function(s, to)
    local who = to:match("^([^@]+)")
    if who == "slow" then return { reply = "250 2.1.5 slowly", delay = 0.6 } end
    if who == "silent" then return "silent" end
    if who == "drop" then return "close" end
    if who == "multi" then return "250 first line\nsecond line\nlast line" end
    if who == "raw" then return { reply = "250 ok", raw = "garbage\r\n" } end
    if who == "boom" then error("handler bug") end
    s.state.count = (s.state.count or 0) + 1
  end,
  on_starttls = function(s) if s.helo == "notls.test" then return "454 4.7.0 TLS not available" end end,
  on_message = function(s, message) return "250 2.0.0 got " .. #message .. " bytes" end,
}
'''


def swaks(port, *args):
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--from", "a@example.test",
                           "--to", "b@example.test", "--timeout", "10", *args],
                          capture_output=True, text=True, timeout=60)


class TestScenarioServer(SmtpshTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        work = scratch_dir("smtpsh-scenarios-")
        cls.actions = os.path.join(work, "actions.lua")
        with open(cls.actions, "w") as f:
            f.write(ACTIONS)

    def test_demo_scenario_with_swaks_and_smtplib_starttls(self):
        with scenario("demo") as port:
            cp = swaks(port)
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            self.assertIn("<-  250 2.0.0 Ok: queued as", cp.stdout)
            refused = swaks(port, "--to", "unknown@example.test")
            self.assertIn("<** 550 5.1.1", refused.stdout)
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.starttls(context=context)
                self.assertTrue(client.sock.version().startswith("TLSv1."))
                cert = client.sock.getpeercert(binary_form=True)
                self.assertTrue(cert)  # the self-signed certificate made at start
                client.sendmail("a@example.test", ["b@example.test"], "Subject: x\r\n\r\nhi\r\n")

    def test_greylist_scenario_with_smtplib(self):
        with scenario("greylist", "delay=0.5") as port:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("client.test")
                client.mail("a@example.test")
                code, text = client.rcpt("b@example.test")
                self.assertEqual(code, 450)
                self.assertIn(b"Greylisted", text)
            time.sleep(0.6)
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("client.test")
                client.mail("a@example.test")
                self.assertEqual(client.rcpt("b@example.test")[0], 250)

    def test_handler_answers(self):
        with scenario(self.actions) as port:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.starttls(context=context)
                client.ehlo("probe.test")
                self.assertNotIn("starttls", client.esmtp_features)  # not offered twice
                client.mail("a@example.test")
                started = time.monotonic()
                self.assertEqual(client.rcpt("slow@example.test"), (250, b"2.1.5 slowly"))
                self.assertGreaterEqual(time.monotonic() - started, 0.55)
                code, text = client.rcpt("multi@example.test")
                self.assertEqual((code, text), (250, b"first line\nsecond line\nlast line"))
                self.assertEqual(client.rcpt("ok@example.test")[0], 250)
                code, text = client.data(b"Subject: t\r\n\r\n..dot\r\nbody\r\n")
                self.assertEqual(code, 250)
                self.assertEqual(text, b"2.0.0 got 27 bytes")  # dot-unstuffed, CRLF kept
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("notls.test")
                self.assertEqual(client.docmd("STARTTLS")[0], 454)
            with smtplib.SMTP("127.0.0.1", port, timeout=1) as client:
                client.ehlo("probe.test")
                client.mail("a@example.test")
                with self.assertRaises((socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected)):
                    client.rcpt("silent@example.test")
            for who in ("drop", "boom"):
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                    client.ehlo("probe.test")
                    client.mail("a@example.test")
                    with self.assertRaises(smtplib.SMTPServerDisconnected):
                        client.rcpt(f"{who}@example.test")
            # A handler's error ends its session; the server goes on serving.
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                self.assertEqual(client.noop()[0], 250)

    def test_raw_bytes_after_a_reply(self):
        with scenario(self.actions) as port:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                f = s.makefile("rwb")
                f.readline()
                for line in (b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<raw@b>\r\n"):
                    f.write(line)
                    f.flush()
                    while True:
                        reply = f.readline()
                        if reply[3:4] != b"-":
                            break
                self.assertEqual(reply, b"250 ok\r\n")
                self.assertEqual(f.readline(), b"garbage\r\n")

    def test_rate_limit_counts_sessions_per_ip_in_a_window_and_opens_again(self):
        with scenario("rate_limit", "sessions=2", "window=2") as port:
            def greeting():
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    return sock.makefile("rb").readline().decode()
            first = [greeting() for _ in range(3)]
            time.sleep(2.3)
            later = greeting()
        self.assertTrue(first[0].startswith("220 ") and first[1].startswith("220 "), first)
        self.assertRegex(first[2], r"^421 4\.7\.0 .*too many sessions from your IP \(2 in 2 s\), try again in \d+ seconds")
        self.assertTrue(later.startswith("220 "), "the throttle opens again once its window moved on: " + later)

    def test_queue_ids_differ_across_restarts(self):
        ids = []
        for _ in range(2):
            with scenario("accept") as port:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.ehlo()
                    client.mail("a@x.test")
                    client.rcpt("b@x.test")
                    code, text = client.data("Subject: x\r\n\r\nhi\r\n")
                    self.assertEqual(code, 250, text)
                    ids.append(text.decode().rsplit(" ", 1)[-1])
        self.assertRegex(ids[0], r"^[0-9A-F]{12,}$")
        self.assertNotEqual(ids[0], ids[1], "the same queue ID from two runs")

    def test_drop_at_dot_closes_after_the_message_before_the_reply(self):
        with scenario("drop_at", "at=dot") as port:
            client = smtplib.SMTP("127.0.0.1", port, timeout=10)
            client.ehlo()
            client.mail("a@x.test")
            client.rcpt("b@x.test")
            with self.assertRaises(smtplib.SMTPServerDisconnected):
                client.data("Subject: x\r\n\r\nhi\r\n")
            client.close()

    def test_tls_broken_answers_the_client_hello_with_junk(self):
        with scenario("tls_broken") as port:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                f = sock.makefile("rwb", buffering=0)
                f.readline()
                f.write(b"EHLO me\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
                f.write(b"STARTTLS\r\n")
                self.assertTrue(f.readline().startswith(b"220 "))
                sock.settimeout(0.5)
                # Nothing comes until the client speaks: the junk answers the ClientHello.
                with self.assertRaises(socket.timeout):
                    sock.recv(100)
                sock.settimeout(5)
                sock.sendall(b"\x16\x03\x01\x00\xc8")  # a ClientHello's record header
                self.assertEqual(sock.recv(100), b"this is not TLS\r\n")

    def test_many_sessions_at_once(self):
        with scenario("accept") as port:
            def one(i):
                with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
                    client.ehlo(f"c{i}.test")
                    client.mail("a@example.test")
                    client.rcpt("b@example.test")
                    return client.data(b"Subject: x\r\n\r\nhi\r\n")[0]
            with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
                codes = list(pool.map(one, range(120)))
        self.assertEqual(codes, [250] * 120)

    def test_bad_usage(self):
        cp = run_smtpsh(["serve", "no_such_scenario"])
        self.assertOneLineError(cp, 2, "smtpsh serve: cannot load scenario")
        cp = run_smtpsh(["serve", "accept", "--listen", "mx.example:25"])
        self.assertOneLineError(cp, 2, "smtpsh serve: --listen must be ADDRESS[:PORT]")
        cp = run_smtpsh(["serve", "accept", "--set", "novalue"])
        self.assertOneLineError(cp, 2, "smtpsh serve: --set needs NAME=VALUE")

    def test_busy_port_is_an_error(self):
        with scenario("accept") as port:
            cp = run_smtpsh(["serve", "accept", "--listen", f"127.0.0.1:{port}"], timeout=10)
        self.assertExit(cp, 1)
        self.assertIn("cannot listen on 127.0.0.1:", cp.stderr)


if __name__ == "__main__":
    unittest.main()
