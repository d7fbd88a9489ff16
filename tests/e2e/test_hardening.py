"""Defects found by hostile testing, each kept fixed by a test: two tasks on one session,
header injection in `send`, usage errors that were tracebacks, NaN timeouts, the descriptor
limit (client and server side), a --source this machine lacks, reply codes a command does not
allow, and lines no command asked for. The hostile-peer matrix is in test_hostile.py.

    /usr/bin/python3 -m unittest -v tests/e2e/test_hardening.py      (SMTPSH=/path/to/smtpsh)
"""

import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SMTPSH, SmtpshTestCase, base_env, run_smtpsh, scratch_dir,  # noqa: E402
                     smtp_sink)


class ScriptedServer:
    """A tiny SMTP peer on a free loopback port whose answers a test scripts: `answer(line)`
    returns the bytes to send for each command line (None closes). Records what it got."""

    def __init__(self, greeting, answer, sessions=4):
        self.greeting, self.answer = greeting, answer
        self.received = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(15)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, args=(sessions,), daemon=True)
        self.thread.start()

    def _serve(self, sessions):
        for _ in range(sessions):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        conn.settimeout(15)
        with conn:
            try:
                conn.sendall(self.greeting)
                buf = b""
                while True:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        line = line.rstrip(b"\r")
                        self.received.append(line)
                        out = self.answer(line)
                        if out is None:
                            return
                        conn.sendall(out)
            except OSError:
                return

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def lua(code, timeout=20, **kw):
    return run_smtpsh(["-e", code], timeout=timeout, **kw)


class TestOneOperationAtATime(SmtpshTestCase):
    def test_second_task_on_a_busy_session_gets_a_clear_error(self):
        with smtp_sink() as port:
            cp = lua(f'''
local s = assert(smtp.connect("127.0.0.1:{port}", {{timeout = 3}}))
local t = task.spawn(function() return s:ehlo() end)
task.sleep(0)
local t2 = task.spawn(function() return s:noop() end)
print("second:", task.wait(t2))
local first = task.wait(t)
print("first:", first and first.code)
print("after:", s:noop().code)
''')
        self.assertExit(cp, 0)
        self.assertIn("second:\tnil\t", cp.stdout)
        self.assertIn("the session is busy with ehlo in another task", cp.stdout)
        self.assertIn("first:\t250", cp.stdout)
        self.assertIn("after:\t250", cp.stdout)


class TestReplyCodes(SmtpshTestCase):
    def test_endless_334_is_never_success(self):
        def answer(line):
            if line.startswith(b"EHLO"):
                return b"250-x\r\n250 AUTH PLAIN LOGIN\r\n"
            return b"334 more\r\n"
        with ScriptedServer(b"220 x\r\n", answer) as server:
            cp = lua(f'''
local s = assert(smtp.connect("127.0.0.1:{server.port}", {{timeout = 3}}))
s:ehlo()
local ok, err = s:auth("PLAIN", "user", "sekrit-pass")
print("auth", ok, err and err.kind, err and err.stage)
local s2 = assert(smtp.connect("127.0.0.1:{server.port}", {{timeout = 3}}))
s2:ehlo()
local m, merr = s2:mail("a@example.test")
print("mail", m, merr and merr.kind, merr and merr.stage, s2.closed)
local s3 = assert(smtp.connect("127.0.0.1:{server.port}", {{timeout = 3}}))
s3:ehlo()
local l, lerr = s3:auth("LOGIN", "user", "sekrit-pass")
print("login", l, lerr and lerr.kind, tostring(lerr))
''')
        self.assertExit(cp, 0)
        self.assertIn("auth\tnil\tprotocol\tauth", cp.stdout)
        self.assertIn("mail\tnil\tprotocol\tmail\ttrue", cp.stdout)
        self.assertIn("login\tnil\tprotocol\tauth answered 334 more, which it does not allow", cp.stdout)


class TestUnsolicitedLines(SmtpshTestCase):
    def test_extra_lines_after_the_banner_are_named_not_taken_as_replies(self):
        def answer(line):
            if line.startswith(b"EHLO"):
                return b"250 x\r\n"
            return b"250 ok\r\n"
        with ScriptedServer(b"220 x\r\n250 extra\r\n", answer) as server:
            cp = lua(f'''
local s = assert(smtp.connect("127.0.0.1:{server.port}", {{timeout = 3}}))
task.sleep(0.2)
local r, err = s:ehlo()
print("ehlo", r, err and err.kind, err and err.stage)
print(tostring(err))
print("closed", s.closed)
''')
        self.assertExit(cp, 0)
        self.assertIn("ehlo\tnil\tprotocol\tehlo", cp.stdout)
        self.assertIn("1 line that no command asked for", cp.stdout)
        self.assertIn("250 extra", cp.stdout)
        self.assertIn("closed\ttrue", cp.stdout)
        # The desync the defect caused: nothing was sent once the session was out of step.
        self.assertEqual(server.received, [])

    def test_a_421_sent_early_is_the_server_closing(self):
        with ScriptedServer(b"220 x\r\n421 4.4.2 idle timeout\r\n", lambda line: b"250 ok\r\n") as server:
            cp = lua(f'''
local s = assert(smtp.connect("127.0.0.1:{server.port}", {{timeout = 3}}))
task.sleep(0.2)
local r, err = s:noop()
print("noop", r, err and err.kind, err and err.reply and err.reply.code, s.closed)
''')
        self.assertExit(cp, 0)
        self.assertIn("noop\tnil\treply\t421\ttrue", cp.stdout)


class TestSecretsEchoed(SmtpshTestCase):
    def test_a_535_echoing_the_blob_is_redacted_everywhere(self):
        def answer(line):
            if line.startswith(b"EHLO"):
                return b"250-x\r\n250 AUTH PLAIN\r\n"
            if line.startswith(b"AUTH"):
                return b"535 5.7.8 bad credentials: " + line.split()[-1] + b"\r\n"
            return b"221 bye\r\n"
        work = scratch_dir()
        password_file = os.path.join(work, "pw")
        with open(password_file, "w") as f:
            f.write("sekrit-pass\n")
        record = os.path.join(work, "rec.jsonl")
        with ScriptedServer(b"220 x\r\n", answer) as server:
            cp = run_smtpsh(["send", "--server", f"127.0.0.1:{server.port}", "--from", "a@x.test",
                             "--to", "b@x.test", "--auth", "PLAIN", "--user", "me",
                             "--password-file", password_file, "--trace", "--record", record,
                             "--timeout", "3"], timeout=20)
        self.assertExit(cp, 1)
        import base64
        blob = base64.b64encode(b"me\0me\0sekrit-pass").decode()
        with open(record) as f:
            recorded = f.read()
        for where, text in (("stdout", cp.stdout), ("stderr", cp.stderr), ("recording", recorded)):
            self.assertNotIn(blob, text, where)
            self.assertNotIn("sekrit-pass", text, where)
        self.assertIn("bad credentials: ***", cp.stderr)


class TestSendRefusesLineBreaks(SmtpshTestCase):
    def test_every_argument_is_checked_before_connecting(self):
        bad = "K: v\r\nBcc: x"
        base = ["--from", "a@x.test", "--to", "b@x.test"]
        cases = [
            ("--header", [*base, "--header", bad]),
            ("--from", ["--from", "a@x.test\r\nRCPT TO:<c@x.test>", "--to", "b@x.test"]),
            ("--to", ["--from", "a@x.test", "--to", "b@x.test\nDATA"]),
            ("--helo", [*base, "--helo", "me\r\nRSET"]),
            ("--user", [*base, "--auth", "PLAIN", "--user", "u\r\nx", "--password-file", "/dev/null"]),
        ]
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            listener.settimeout(0.3)
            port = listener.getsockname()[1]
            for option, args in cases:
                with self.subTest(option=option):
                    cp = run_smtpsh(["send", "--server", f"127.0.0.1:{port}", *args], timeout=10)
                    self.assertOneLineError(cp, 2, f"smtpsh send: {option} must not contain a CR, LF or NUL")
            # Refused before connecting: nobody ever knocked.
            with self.assertRaises(socket.timeout):
                listener.accept()

    def test_a_password_file_of_two_lines_is_refused(self):
        work = scratch_dir()
        path = os.path.join(work, "pw")
        with open(path, "w") as f:
            f.write("one\r\ntwo\n")
        cp = run_smtpsh(["send", "--server", "127.0.0.1:9", "--from", "a@x.test", "--to", "b@x.test",
                         "--auth", "LOGIN", "--user", "u", "--password-file", path])
        self.assertOneLineError(cp, 2, "smtpsh send: the password file holds more than one line")


class TestUsageErrors(SmtpshTestCase):
    def test_one_line_and_exit_2(self):
        work = scratch_dir()
        env = {"SMTPSH_TEST_NO_DNS": "1"}
        cases = [
            (["raw", "127.0.0.1:0"], "smtpsh raw: bad target '127.0.0.1:0': port '0'"),
            (["send", "--server", "127.0.0.1:abc", "--from", "a@x.test", "--to", "b@x.test"],
             "smtpsh send: bad target '127.0.0.1:abc'"),
            (["send", "--server", "127.0.0.1:9", "--from", "a@x.test", "--to", "b@x.test",
              "--body", "@" + work], "smtpsh send: cannot read the body file"),
            (["send", "--server", "127.0.0.1:9", "--from", "a@x.test", "--to", "b@x.test",
              "--auth", "BOGUS", "--user", "u", "--password-file", "/dev/null"],
             "smtpsh send: --auth must be PLAIN, LOGIN or CRAM-MD5, got 'BOGUS'"),
            (["send", "--server", "127.0.0.1:9", "--from", "a@x.test", "--to", "b@x.test",
              "--timeout", "1e999"], "smtpsh send: --timeout must be a number of seconds above 0"),
            (["banner", "127.0.0.1:abc"], "smtpsh banner: bad target '127.0.0.1:abc'"),
            (["tls", "127.0.0.1:99999"], "smtpsh tls: bad target '127.0.0.1:99999'"),
            (["diagnose", "[::1", "--dnsbl", "none", "--resolver", "127.0.0.1:9"],
             "smtpsh diagnose: bad target '[::1': missing ']'"),
            (["diagnose", "127.0.0.1:25", "--source", "192.0.2.77", "--dnsbl", "none",
              "--resolver", "127.0.0.1:9"],
             "smtpsh diagnose: --source 192.0.2.77: it is not an address of this machine"),
        ]
        for args, prefix in cases:
            with self.subTest(args=args):
                started = time.monotonic()
                cp = run_smtpsh(args, env=env, timeout=10)
                self.assertOneLineError(cp, 2, prefix)
                self.assertNotIn("stack traceback", cp.stderr)
                self.assertLess(time.monotonic() - started, 5, "a usage error must not wait on the network")

    def test_crlf_lines_on_stdin_just_work_in_raw_mode(self):
        with smtp_sink() as port:
            cp = run_smtpsh(["raw", f"127.0.0.1:{port}", "--timeout", "5"],
                            stdin="EHLO x.test\r\nNOOP\r\nQUIT\r\n", timeout=20)
        self.assertExit(cp, 0)
        self.assertIn("250 2.0.0 Ok", cp.stdout.replace("250 Ok", "250 2.0.0 Ok"))
        self.assertIn("221", cp.stdout)
        self.assertNotIn("!", "".join(line[:1] for line in cp.stdout.splitlines()))


class TestDurations(SmtpshTestCase):
    def test_nan_and_infinite_timeouts_are_refused(self):
        cp = lua(r'''
for _, bad in ipairs { 0/0, 1/0, -1, 0 } do
  local ok, err = pcall(net.connect, "127.0.0.1", 9, {timeout = bad})
  print("net", ok, (tostring(err):match("timeout must be a finite number of seconds above 0")))
  ok, err = pcall(smtp.connect, "127.0.0.1:9", {timeout = bad})
  print("smtp", ok, (tostring(err):match("timeout must be a finite number of seconds above 0")))
end
''', timeout=10)
        self.assertExit(cp, 0)
        lines = cp.stdout.splitlines()
        self.assertEqual(len(lines), 8, cp.stdout)
        for line in lines:
            self.assertRegex(line, r"^(net|smtp)\tfalse\ttimeout must be a finite number", cp.stdout)


def _limit_descriptors(n):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class TestDescriptorLimit(SmtpshTestCase):
    def test_server_backs_off_instead_of_spinning(self):
        proc = subprocess.Popen([SMTPSH, "serve", "accept", "--listen", "127.0.0.1:0"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=base_env(),
                                preexec_fn=_limit_descriptors(64))
        clients = []
        try:
            line = proc.stdout.readline()
            match = re.search(r"listening on .*:(\d+) \(", line)
            self.assertIsNotNone(match, line)
            port = int(match.group(1))
            for _ in range(200):
                c = socket.socket()
                c.settimeout(5)
                c.connect(("127.0.0.1", port))
                clients.append(c)
            time.sleep(1.0)
            before = _cpu_seconds(proc.pid)
            time.sleep(2.0)
            used = _cpu_seconds(proc.pid) - before
            # Spinning on EMFILE used about 1.8 s of CPU in these 2 s; backing off, almost none.
            self.assertLess(used, 0.5, f"the server used {used:.2f} s of CPU in 2 s at the limit")
            # Descriptors free up: the clients still waiting are served in the end.
            for c in clients[:150]:
                c.close()
            clients = clients[150:]
            greeting = clients[-1].recv(200)
            self.assertTrue(greeting.startswith(b"220"), greeting)
        finally:
            for c in clients:
                c.close()
            proc.kill()
            _, err = proc.communicate(timeout=10)
        self.assertEqual(err.count("too many open files"), 1, err)
        self.assertIn("raise it with ulimit -n", err)

    def test_client_sessions_over_the_limit_fail_with_kind_resource(self):
        with smtp_sink() as port:
            code = f'''
local kinds, tasks = {{}}, {{}}
for i = 1, 120 do
  tasks[i] = task.spawn(function()
    local c, err = net.connect("127.0.0.1", {port}, {{timeout = 5}})
    if c then task.sleep(0.5) c:close() return "ok" end
    return err.kind, tostring(err)
  end)
end
local message
for i = 1, 120 do
  local kind, text = task.wait(tasks[i])
  kinds[kind] = (kinds[kind] or 0) + 1
  if kind == "resource" then message = text end
end
print("ok", kinds.ok or 0)
print("resource", kinds.resource or 0)
print("other", 120 - (kinds.ok or 0) - (kinds.resource or 0))
print(message)
'''
            # UBSan checks an object's vptr by writing its memory into a pipe: with every
            # descriptor in use it cannot make one, and reports a call on any polymorphic
            # object as "invalid vptr ... memory cannot be printed". In the sanitizer build
            # that one report is let through here (and only that one: see below).
            env = base_env()
            ubsan = os.environ.get("UBSAN_OPTIONS", "")
            env["UBSAN_OPTIONS"] = (ubsan + ":" if ubsan else "") + "halt_on_error=0"
            proc = subprocess.run([SMTPSH, "-e", code], capture_output=True, text=True, timeout=30,
                                  env=env, preexec_fn=_limit_descriptors(48))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        artifact = re.compile(r"runtime error: member call on address \S+ which does not point to "
                              r"an object of type 'error_category'$|note: object has invalid vptr$"
                              r"|^<memory cannot be printed>$")
        for line in proc.stderr.splitlines():
            self.assertRegex(line, artifact, proc.stderr)
        counts = dict(line.split("\t") for line in proc.stdout.splitlines()[:3])
        self.assertGreater(int(counts["ok"]), 10, proc.stdout)
        self.assertGreater(int(counts["resource"]), 10, proc.stdout)
        self.assertEqual(counts["other"], "0", proc.stdout)
        self.assertIn("too many open files (this process may have 48 descriptors", proc.stdout)


if __name__ == "__main__":
    unittest.main()
