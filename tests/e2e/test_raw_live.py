"""Raw mode on a terminal (`smtpsh raw`, the REPL's `:raw`): what the server sends on its own
shows at once, above the prompt, while lines are typed with libedit's editing and history.

Driven in a pseudo-terminal against a small SMTP server in this process (loopback only) that
can send a 421 on its own after an idle time, and against the --demo server. Typed lines are
echoed by the terminal, so expected output is chosen so that it cannot match the echo.

    /usr/bin/python3 -m unittest -v tests/e2e/test_raw_live.py     (SMTPSH=/path/to/smtpsh)
"""

import contextlib
import os
import re
import socket
import socketserver
import ssl
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TIME_SCALE, Repl, SmtpshTestCase, describe, run_smtpsh, scratch_dir, tls_peer, test_certs  # noqa: E402

UP = "\x1b[A"


class _Handler(socketserver.StreamRequestHandler):
    def finish(self):
        super().finish()
        if isinstance(self.request, ssl.SSLSocket):  # the server closes only the plain socket
            self.request.close()

    def handle(self):
        srv = self.server
        # No input for `idle` seconds: the server says 421 on its own and closes (an idle
        # timeout). Without `idle`, a generous bound so no handler thread outlives a test long.
        self.request.settimeout(srv.idle or 60)
        self.wfile.write(b"220 live.test ESMTP ready\r\n")
        in_data = False
        while True:
            try:
                raw = self.rfile.readline(70000)
            except (socket.timeout, TimeoutError):
                self.wfile.write(b"421 4.4.2 live.test idle timeout, closing\r\n")
                return
            except OSError:
                return
            if not raw:
                return
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            with srv.lock:
                srv.received.append(line)
            if in_data:
                if line == ".":
                    in_data = False
                    self.wfile.write(b"250 2.0.0 queued as LIVE1\r\n")
                continue
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-live.test greets " + line[5:].encode() + b"\r\n250 8BITMIME\r\n")
            elif verb == "STARTTLS" and srv.tls_context is not None:
                self.wfile.write(b"220 2.0.0 go ahead\r\n")
                # TLS 1.3: Python's server sends two session tickets right after the
                # handshake, records that hold no data for the client to show.
                self.request = srv.tls_context.wrap_socket(self.request, server_side=True)
                self.request.settimeout(srv.idle or 60)
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb", buffering=0)
            elif verb == "DATA":
                in_data = True
                self.wfile.write(b"354 go ahead, end with <CRLF>.<CRLF>\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 2.0.0 live.test bye\r\n")
                return
            else:
                self.wfile.write(b"250 2.0.0 ok " + verb.lower().encode() + b"\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def live_server(idle=None, tls=False, family=socket.AF_INET):
    """A small SMTP server on 127.0.0.1 (or ::1): yields it (`.port`, `.received` lines). With
    `tls`, it offers STARTTLS (the test certificate of mx1)."""
    server_class = _Server6 if family == socket.AF_INET6 else _Server
    srv = server_class(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0), _Handler)
    srv.idle = idle
    srv.tls_context = None
    if tls:
        certs = test_certs()
        srv.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.tls_context.load_cert_chain(f"{certs}/mx1-chain.pem", f"{certs}/mx1.key")
        srv.tls_context.sni_callback = lambda _socket, name, _context: srv.sni.append(name)
    srv.sni = []  # the server name of each handshake (None: the client sent no SNI)
    srv.received = []
    srv.lock = threading.Lock()
    srv.port = srv.server_address[1]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def received(srv):
    with srv.lock:
        return list(srv.received)


class RawLiveTestCase(SmtpshTestCase):
    def setUp(self):
        self.home = scratch_dir("smtpsh-home-")
        self.env = {"HOME": self.home, "XDG_STATE_HOME": os.path.join(self.home, "state")}

    def start(self, args):
        r = Repl(args, env=self.env)
        self.addCleanup(r.close)
        return r


class TestRawLive(RawLiveTestCase):
    def test_unsolicited_421_shows_without_enter(self):
        with live_server(idle=1.0 * TIME_SCALE) as srv:
            r = self.start(["raw", f"127.0.0.1:{srv.port}"])
            r.expect(r"220 live\.test ESMTP ready\n", timeout=10)
            r.expect(r"smtp> ")
            self.assertTrue(r.wait_raw(), "the line editor never took the terminal")
            # Nothing is typed: the 421 must show on its own, with what it means.
            r.expect(r"421 4\.4\.2 live\.test idle timeout, closing\n", timeout=6)
            r.expect(r"! the server closed the session\n")
            self.assertEqual(r.wait_exit(timeout=5), 0, r.text())
            self.assertEqual(received(srv), [], "raw mode sent something nobody typed")

    def test_421_above_a_half_typed_line_keeps_the_line(self):
        with live_server(idle=1.0 * TIME_SCALE) as srv:
            r = self.start(["raw", f"127.0.0.1:{srv.port}"])
            r.expect(r"smtp> ", timeout=10)
            self.assertTrue(r.wait_raw())
            r.write("NOO")  # no Enter
            r.expect(r"421 4\.4\.2 live\.test idle timeout, closing\n", timeout=6)
            self.assertEqual(r.wait_exit(timeout=5), 0, r.text())
            self.assertEqual(received(srv), [])

    def test_typed_lines_history_data_and_quit(self):
        with live_server() as srv:
            r = self.start(["raw", f"127.0.0.1:{srv.port}"])
            r.expect(r"220 live\.test ESMTP ready\n", timeout=10)
            r.expect(r"smtp> ")
            r.wait_raw()
            r.send("EHLO one.test")
            r.expect(r"250-live\.test greets one\.test\n250 8BITMIME\n")
            r.expect(r"smtp> ")
            r.wait_raw()
            r.write(UP + "\r")  # the previous line again, from history
            r.expect(r"250-live\.test greets one\.test\n250 8BITMIME\n")
            r.expect(r"smtp> ")
            r.wait_raw()
            r.send("MAIL FROM:<a@live.test>")
            r.expect(r"250 2\.0\.0 ok mail\n")
            r.wait_raw()
            r.send("DATA")
            r.expect(r"354 go ahead")
            r.expect(r"data> ")
            r.wait_raw()
            r.send("Subject: live")
            r.expect(r"data> ")
            r.wait_raw()
            r.send("")
            r.expect(r"data> ")
            r.wait_raw()
            r.send("..dotted")
            r.expect(r"data> ")
            r.wait_raw()
            r.send(".")
            r.expect(r"250 2\.0\.0 queued as LIVE1\n")
            r.expect(r"smtp> ")
            r.wait_raw()
            r.send(":quit")
            self.assertEqual(r.wait_exit(timeout=5), 0, r.text())
        self.assertEqual(received(srv), ["EHLO one.test", "EHLO one.test", "MAIL FROM:<a@live.test>",
                                         "DATA", "Subject: live", "", "..dotted", "."])

    def test_ctrl_d_leaves(self):
        with live_server() as srv:
            r = self.start(["raw", f"127.0.0.1:{srv.port}"])
            r.expect(r"smtp> ", timeout=10)
            r.ctrl_d()
            self.assertEqual(r.wait_exit(timeout=5), 0, r.text())
            self.assertEqual(received(srv), [])

    def test_ctrl_c_at_the_prompt_leaves(self):
        with live_server() as srv:
            r = self.start(["raw", f"127.0.0.1:{srv.port}"])
            r.expect(r"smtp> ", timeout=10)
            r.wait_raw()
            r.ctrl_c()
            r.expect(r"! interrupted\n")
            self.assertEqual(r.wait_exit(timeout=5), 0, r.text())
            self.assertEqual(received(srv), [])

    def test_starttls_switches_to_tls(self):
        certs = test_certs()
        with tls_peer("aiosmtpd", "--cert", f"{certs}/mx1-chain.pem", "--key", f"{certs}/mx1.key") as p:
            r = self.start(["raw", f"127.0.0.1:{p['port']}"])
            r.expect(r"smtp> ", timeout=10)
            r.wait_raw()
            r.send("EHLO me")
            r.expect(r"250 ")
            r.expect(r"smtp> ")
            r.wait_raw()
            r.send("STARTTLS")
            r.expect(r"220 Ready to start TLS\n! TLS started: TLSv1\.3 ")
            r.expect(r"smtp> ")
            r.wait_raw()
            r.send("EHLO me")
            r.expect(r"250-AUTH LOGIN PLAIN")
            r.expect(r"smtp> ")
            r.wait_raw()
            r.send(":quit")
            self.assertEqual(r.wait_exit(timeout=5), 0, r.text())

    def test_unsolicited_421_under_tls_shows_without_enter(self):
        # The session tickets that follow the handshake wake the prompt but are no line: the
        # prompt must stay usable (a NOOP answered at once), and the idle 421, encrypted,
        # must still show on its own.
        with live_server(idle=2.0 * TIME_SCALE, tls=True) as srv:
            r = self.start(["raw", "--ca-file", f"{test_certs()}/ca.pem", f"127.0.0.1:{srv.port}"])
            r.expect(r"smtp> ", timeout=10)
            r.wait_raw()
            r.send("STARTTLS")
            r.expect(r"220 2\.0\.0 go ahead\n! TLS started: TLSv1\.3 ")
            r.expect(r"smtp> ")
            r.wait_raw()
            r.send("NOOP")
            r.expect(r"250 2\.0\.0 ok noop\n", timeout=3 * TIME_SCALE)
            r.expect(r"smtp> ")
            r.wait_raw()
            r.expect(r"421 4\.4\.2 live\.test idle timeout, closing\n", timeout=8 * TIME_SCALE)
            r.expect(r"! the server closed the session\n")
            self.assertEqual(r.wait_exit(timeout=5), 0, r.text())
            self.assertEqual(received(srv), ["STARTTLS", "NOOP"])

    def test_sni_is_sent_for_a_host_name_only(self):
        # RFC 6066: a host name goes in SNI, an IP address never does.
        for host, sni in (("127.0.0.1", None), ("localhost", "localhost"), ("[::1]", None)):
            family = socket.AF_INET6 if host == "[::1]" else socket.AF_INET
            if family == socket.AF_INET6 and not socket.has_ipv6:
                continue
            with self.subTest(host=host), live_server(tls=True, family=family) as srv:
                cp = run_smtpsh(["raw", "--ca-file", f"{test_certs()}/ca.pem", f"{host}:{srv.port}"],
                                stdin="STARTTLS\nQUIT\n", timeout=30)
                self.assertIn("! TLS started: TLSv1.3", cp.stdout, describe(cp))
                self.assertEqual(srv.sni, [sni], describe(cp))


class TestRawInRepl(RawLiveTestCase):
    def test_raw_demo_target(self):
        r = self.start(["--demo"])
        r.expect_prompt(timeout=10)
        r.send(":raw demo.target")
        r.expect(r"220 demo\.smtpsh\.test ESMTP", timeout=10)
        r.expect(r"smtp> ")
        r.wait_raw()
        r.send("NOOP")
        r.expect(r"250 ")
        r.expect(r"smtp> ")
        r.wait_raw()
        r.send(":quit")
        r.expect(r"the session is now `last`")
        r.expect_prompt()
        r.send('print("BANNER-" .. last.banner.code)')
        r.expect(r"BANNER-220\n")
        r.expect_prompt()
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, r.text())

    def test_unsolicited_421_in_repl(self):
        with live_server(idle=1.0 * TIME_SCALE) as srv:
            r = self.start([])
            r.expect_prompt(timeout=10)
            r.send(f'target = "127.0.0.1:{srv.port}"')
            r.expect_prompt()
            r.send(":raw target")
            r.expect(r"220 live\.test ESMTP ready\n", timeout=10)
            r.expect(r"421 4\.4\.2 live\.test idle timeout, closing\n", timeout=6)
            r.expect(r"the session is now `last`")
            r.expect_prompt()
            r.send('print("CLOSED-" .. tostring(last.closed))')
            r.expect(r"CLOSED-true\n")
            r.expect_prompt()
            self.assertEqual(received(srv), [])

    def test_raw_argument_errors_are_one_line(self):
        r = self.start([])
        r.expect_prompt(timeout=10)
        cases = [
            ("{}", r":raw: \{\} is a table, not a \"HOST\[:PORT\]\" string\n"),
            ('"a b"', r":raw: \"a b\" is \"a b\": [^\n]+\n"),
            ("nosuch.thing:99999", r":raw: nosuch\.thing:99999 is not HOST\[:PORT\] \([^\n]*port[^\n]*\)"
                                   r", nor a Lua expression that yields one\n"),
        ]
        for argument, expected in cases:
            with self.subTest(argument=argument):
                r.send(f":raw {argument}")
                got = r.expect(expected)
                self.assertNotIn("traceback", got)
                r.expect_prompt()


if __name__ == "__main__":
    unittest.main()
