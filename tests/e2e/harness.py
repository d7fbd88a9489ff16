"""Shared helpers for smtpsh's end-to-end tests (Python stdlib only).

The binary under test: env ``SMTPSH``, else ``--smtpsh PATH`` on the command line, else
``build/smtpsh`` relative to the repository root. Every helper is bounded in time, and
every process a helper starts is killed by it.
"""

import contextlib
import errno
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER_SCRIPT = os.path.join(REPO_ROOT, "tests", "peers", "tcp_peer.py")
LUA_DIR = os.path.join(REPO_ROOT, "tests", "lua")
PYTHON = "/usr/bin/python3"
SMTP_SINK = "/usr/sbin/smtp-sink"

# Every wait on smtpsh (a run, a REPL prompt, a server's start) is multiplied by this: set
# SMTPSH_TEST_TIME_SCALE when the binary runs slower than usual, e.g. under valgrind
# (tests/valgrind/valgrind.cmake), which is 20-50 times slower.
TIME_SCALE = float(os.environ.get("SMTPSH_TEST_TIME_SCALE", "1"))
# For the few tests that assert how fast smtpsh is (not whether it is right): skipped when
# the binary is slowed down on purpose.
skip_if_slowed = unittest.skipIf(TIME_SCALE > 1, "asserts wall time, and SMTPSH_TEST_TIME_SCALE "
                                 "says the binary runs slowed down (valgrind)")


def _smtpsh_from_argv():
    """Takes ``--smtpsh PATH`` / ``--smtpsh=PATH`` out of sys.argv (so unittest never sees it)."""
    for i, a in enumerate(list(sys.argv)):
        if a == "--smtpsh" and i + 1 < len(sys.argv):
            path = sys.argv[i + 1]
            del sys.argv[i:i + 2]
            return path
        if a.startswith("--smtpsh="):
            del sys.argv[i]
            return a.split("=", 1)[1]
    return None


def _resolve_smtpsh():
    path = os.environ.get("SMTPSH") or _smtpsh_from_argv() or os.path.join("build", "smtpsh")
    if not os.path.isabs(path):
        path = os.path.join(REPO_ROOT, path)
    return path


SMTPSH = _resolve_smtpsh()


class SmtpshTestCase(unittest.TestCase):
    """Base class: errors out the whole class when the binary is missing, and offers
    assertions that print the full run on failure."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not (os.path.isfile(SMTPSH) and os.access(SMTPSH, os.X_OK)):
            raise AssertionError(f"smtpsh binary not found at {SMTPSH} "
                                 "(set SMTPSH=/path/to/smtpsh or pass --smtpsh PATH)")

    def assertExit(self, cp, status):
        self.assertEqual(cp.returncode, status, f"unexpected exit status{describe(cp)}")

    def assertOk(self, cp, marker=None):
        """Exit 0 and, when given, `marker` as a whole line of stdout."""
        self.assertExit(cp, 0)
        if marker is not None:
            self.assertIn(marker, cp.stdout.splitlines(), f"marker {marker!r} missing{describe(cp)}")

    def assertOneLineError(self, cp, status, prefix):
        """Exit `status`, and stderr is exactly one line starting with `prefix`."""
        self.assertExit(cp, status)
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"stderr should be exactly one line{describe(cp)}")
        self.assertTrue(lines[0].startswith(prefix),
                        f"stderr should start with {prefix!r}{describe(cp)}")
        self.assertTrue(cp.stderr.endswith("\n"), f"stderr line should end with a newline{describe(cp)}")


# --------------------------------------------------------------------------------------------
# Environments

_tmp_roots = []


def scratch_dir(prefix="smtpsh-e2e-"):
    """A temporary directory removed at interpreter exit."""
    d = tempfile.mkdtemp(prefix=prefix)
    _tmp_roots.append(d)
    return d


def _cleanup_tmp():
    for d in _tmp_roots:
        shutil.rmtree(d, ignore_errors=True)


import atexit  # noqa: E402

atexit.register(_cleanup_tmp)


def base_env(home=None):
    """The parent's environment minus anything that changes smtpsh's search path, with a
    fresh temporary HOME and XDG_STATE_HOME (so no user file can leak into a test)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SMTPSH_PATH", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "LUA_PATH",
                        "LUA_CPATH", "LUA_INIT", "LUA_PATH_5_4", "LUA_CPATH_5_4",
                        "LUA_INIT_5_4")}
    if home is None:
        home = scratch_dir("smtpsh-home-")
    env["HOME"] = home
    env["XDG_STATE_HOME"] = os.path.join(home, ".local", "state")
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def merge_env(env):
    """base_env() updated with `env`; a value of None removes the variable."""
    result = base_env(env.get("HOME") if env else None)
    for k, v in (env or {}).items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = v
    return result


def run_smtpsh(args, stdin=None, env=None, timeout=20, cwd=None):
    """Runs smtpsh with `args` (a list), stdin text (or None: /dev/null), a merged env.
    Returns a CompletedProcess with text stdout/stderr; raises on timeout (after killing).
    `timeout` is multiplied by TIME_SCALE."""
    timeout = timeout * TIME_SCALE
    proc = subprocess.Popen(
        [SMTPSH] + list(args),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=merge_env(env), cwd=cwd or REPO_ROOT, start_new_session=True)
    try:
        out, err = proc.communicate(
            input=stdin.encode() if isinstance(stdin, str) else stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate(timeout=5)
        raise AssertionError(
            f"smtpsh {args!r} did not finish within {timeout}s\n"
            f"stdout: {out.decode(errors='replace')!r}\nstderr: {err.decode(errors='replace')!r}")
    finally:
        if proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait(timeout=5)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       out.decode("utf-8", "replace"),
                                       err.decode("utf-8", "replace"))


def describe(cp):
    """A readable dump of a CompletedProcess for assertion messages."""
    return (f"\n--- command: {cp.args!r}\n--- exit status: {cp.returncode}"
            f"\n--- stdout:\n{cp.stdout}\n--- stderr:\n{cp.stderr}")


def timed_run(args, **kw):
    """run_smtpsh() and the wall time it took, in seconds."""
    t0 = time.monotonic()
    cp = run_smtpsh(args, **kw)
    return cp, time.monotonic() - t0


def _kill_group(pid):
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


# --------------------------------------------------------------------------------------------
# Peers

def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(host="127.0.0.1"):
    """A port nobody listens on right now (bound then released, never listened)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _read_line_with_deadline(stream, deadline):
    fd = stream.fileno()
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf.decode("utf-8", "replace")


@contextlib.contextmanager
def peer(mode, *args, host="127.0.0.1", startup_timeout=10):
    """Starts tests/peers/tcp_peer.py MODE ARGS on `host`; yields its port; kills it."""
    proc = subprocess.Popen([PYTHON, PEER_SCRIPT, mode, *args, "--host", host],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        line = _read_line_with_deadline(proc.stdout, time.monotonic() + startup_timeout)
        m = re.match(r"PORT (\d+)\s*$", line)
        if not m:
            raise RuntimeError(f"peer {mode} {args} on {host} did not report its port: {line!r}")
        yield int(m.group(1))
    finally:
        proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


DNS_PEER_SCRIPT = os.path.join(REPO_ROOT, "tests", "peers", "dns_peer.py")


@contextlib.contextmanager
def _server(what, argv, patterns, startup_timeout, env=None, stdin=subprocess.DEVNULL):
    """Runs a server process; reads one line per regex in `patterns` from its stdout (each with
    one number group) and yields the numbers; stops it (SIGTERM, then SIGKILL). The start-up
    time allowed is multiplied by TIME_SCALE (the server may be smtpsh)."""
    startup_timeout = startup_timeout * TIME_SCALE
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin,
                            env=env)
    try:
        deadline = time.monotonic() + startup_timeout
        numbers = []
        for pattern in patterns:
            line = _read_line_with_deadline(proc.stdout, deadline)
            m = re.match(pattern, line)
            if not m:
                proc.kill()
                _, err = proc.communicate(timeout=5)
                raise RuntimeError(f"{what} did not start: {line!r} {err!r}")
            numbers.append(int(m.group(1)))
        yield numbers
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()


@contextlib.contextmanager
def dns_peer(mode="nsd", *args, startup_timeout=15):
    """Starts tests/peers/dns_peer.py MODE ARGS (NSD serving tests/peers/zones, or a scripted
    peer: silent, mismatch, wrongq) on a free 127.0.0.1 port; yields the port; stops it."""
    with _server(f"dns peer {mode} {args}", [PYTHON, DNS_PEER_SCRIPT, mode, *args],
                 [r"PORT (\d+)\s*$"], startup_timeout, stdin=subprocess.PIPE) as (port,):
        yield port


TLS_PEER_SCRIPT = os.path.join(REPO_ROOT, "tests", "peers", "tls_peer.py")
MAKE_CERTS = os.path.join(REPO_ROOT, "tests", "peers", "make_certs.sh")
_certs_dir = None


def test_certs():
    """The test CA and certificates (tests/peers/make_certs.sh), made once per test process."""
    global _certs_dir
    if _certs_dir is None:
        d = scratch_dir("smtpsh-certs-")
        subprocess.run(["bash", MAKE_CERTS, d], check=True, timeout=60)
        _certs_dir = d
    return _certs_dir


class NsdTestCase(SmtpshTestCase):
    """A test class with NSD serving tests/peers/zones for all its tests: `cls.nsd` is its port,
    `cls.resolver` the --resolver value; each mode in `dns_peers` (e.g. "silent") is started
    too, its port in the attribute of that name."""

    dns_peers = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack = contextlib.ExitStack()
        cls.nsd = cls.stack.enter_context(dns_peer("nsd"))
        cls.resolver = f"127.0.0.1:{cls.nsd}"
        for mode in cls.dns_peers:
            setattr(cls, mode, cls.stack.enter_context(dns_peer(mode)))

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        super().tearDownClass()


@contextlib.contextmanager
def tls_peer(mode, *args, startup_timeout=15):
    """Starts tests/peers/tls_peer.py MODE ARGS; yields {"port": n, "implicit": m or None}."""
    patterns = [r"PORT (\d+)\s*$"] + ([r"IMPLICIT (\d+)\s*$"] if "--implicit" in args else [])
    argv = [PYTHON, TLS_PEER_SCRIPT, mode, *args, "--lifetime", "300"]
    with _server(f"tls peer {mode} {args}", argv, patterns, startup_timeout) as ports:
        yield {"port": ports[0], "implicit": ports[1] if len(ports) > 1 else None}


@contextlib.contextmanager
def scenario(name, *sets, host="127.0.0.1", startup_timeout=10):
    """Runs `smtpsh serve NAME --listen HOST:0 --set K=V...` (the scenario server); yields its
    port; stops it."""
    argv = [SMTPSH, "serve", name, "--listen", f"{host}:0"]
    for item in sets:
        argv += ["--set", item]
    with _server(f"scenario {name}", argv, [r"listening on .*:(\d+) \("], startup_timeout,
                 env=base_env()) as (port,):
        yield port


def wait_accepting(host, port, timeout=10):
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while time.monotonic() < deadline:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            try:
                s.connect((host, port))
                return True
            except OSError:
                time.sleep(0.05)
    return False


@contextlib.contextmanager
def smtp_sink(*options, host="127.0.0.1", startup_timeout=10):
    """Runs postfix's smtp-sink on a free loopback port; yields the port; kills it."""
    if not os.access(SMTP_SINK, os.X_OK):
        raise unittest.SkipTest(f"{SMTP_SINK} is not installed")
    port = free_port(host)
    cmd = [SMTP_SINK]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cmd += [*options, addr, "64"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        if not wait_accepting(host, port, startup_timeout):
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise RuntimeError(f"smtp-sink did not accept on {addr}: {err!r}")
        yield port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


# --------------------------------------------------------------------------------------------
# REPL in a pseudo-terminal

_ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]"      # CSI ... final
                   rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC ... BEL/ST
                   rb"|\x1b[()][A-Za-z0-9]"          # charset selection
                   rb"|\x1b[=>78]"                   # keypad modes, save/restore cursor
                   rb"|[\x07\x08\r\x00]")            # bell, backspace, CR, NUL


def normalize(raw):
    """Terminal output without escape sequences and CRs, as text."""
    return _ANSI.sub(b"", raw).decode("utf-8", "replace")


class ReplTimeout(AssertionError):
    pass


class Repl:
    """Drives smtpsh in a pseudo-terminal (pty.fork: the child gets a controlling tty, so
    Ctrl-C produces SIGINT). Everything read is kept in `self.raw`; `expect()` searches the
    normalized text (escape sequences and CRs removed) after the end of the previous match."""

    def __init__(self, args=(), env=None, term="dumb", cwd=None, rows=24, cols=80):
        self.env = merge_env(env)
        self.env["TERM"] = term
        self.raw = b""
        self.pos = 0          # in the normalized text: where the next expect() starts
        self.status = None    # exit status once reaped
        argv = [SMTPSH, *args]
        pid, fd = pty.fork()
        if pid == 0:  # child
            try:
                if cwd:
                    os.chdir(cwd)
                os.execve(SMTPSH, argv, self.env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        try:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except OSError:
            pass

    # -- I/O
    def _read_some(self, timeout):
        """Reads what is available within `timeout`; returns False at EOF."""
        if self.fd is None:
            return False
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError as e:
            if e.errno == errno.EIO:  # the slave side is closed: child is gone
                return False
            raise
        if not data:
            return False
        self.raw += data
        return True

    def text(self):
        return normalize(self.raw)

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        deadline = time.monotonic() + 5 * TIME_SCALE
        while data:
            if time.monotonic() > deadline:
                raise ReplTimeout(f"could not write to the pty within {5 * TIME_SCALE:g} s")
            _, w, _ = select.select([], [self.fd], [], 0.5)
            if w:
                n = os.write(self.fd, data)
                data = data[n:]

    def send(self, line):
        """Types `line` and Enter."""
        self.write(line + "\r")

    def ctrl_c(self):
        self.write(b"\x03")

    def wait_raw(self, timeout=2.0):
        """Waits until the line editor has put the terminal in raw (non-canonical) mode;
        returns False if it did not within `timeout`. The pty master shares the slave's
        termios. libedit may print the prompt a few ms before switching to raw mode, and a
        ^D that arrives while the terminal is still canonical is swallowed by the kernel's
        line discipline, so control characters meant for the editor wait for this."""
        timeout = timeout * TIME_SCALE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not termios.tcgetattr(self.fd)[3] & termios.ICANON:
                    return True
            except termios.error:
                return False
            time.sleep(0.002)
        return False

    def ctrl_d(self):
        """Ctrl-D for the line editor (on an empty line: end of input)."""
        self.wait_raw()
        self.write(b"\x04")

    def expect(self, pattern, timeout=5.0):
        """Waits until `pattern` (a regex, or compiled) matches the normalized output after
        the previous match; returns the text from there to the end of the match. `timeout` is
        multiplied by TIME_SCALE."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        timeout = timeout * TIME_SCALE
        deadline = time.monotonic() + timeout
        alive = True
        while True:
            text = self.text()
            m = rx.search(text, self.pos)
            if m:
                got = text[self.pos:m.end()]
                self.pos = m.end()
                return got
            left = deadline - time.monotonic()
            if left <= 0 or not alive:
                raise ReplTimeout(
                    f"timed out after {timeout}s waiting for {rx.pattern!r}"
                    f"{'' if alive else ' (child closed the terminal)'}\n"
                    f"--- unmatched output: {text[self.pos:]!r}\n--- raw tail: {self.raw[-400:]!r}")
            alive = self._read_some(min(left, 0.2))

    def expect_prompt(self, timeout=5.0):
        """The primary prompt `> ` at the start of a line (also right after the previous
        match, which may have consumed the newline)."""
        return self.expect(r"(?<![^\n])> ", timeout)

    def expect_continuation(self, timeout=5.0):
        return self.expect(r"(?<![^\n])>> ", timeout)

    def wait_exit(self, timeout=5.0):
        """Reads until the child exits; returns its exit status (or -signal); None on timeout
        (multiplied by TIME_SCALE)."""
        deadline = time.monotonic() + timeout * TIME_SCALE
        while time.monotonic() < deadline:
            self._read_some(0.1)
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                return self.status
        return None

    def close(self):
        """Always kills the child (whole group) and reaps it; closes the pty."""
        if self.status is None:
            _kill_group(self.pid)
            try:
                _, st = os.waitpid(self.pid, 0)
                self.status = os.waitstatus_to_exitcode(st)
            except ChildProcessError:
                pass
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


HOSTILE_SCRIPTS = {"smtp": os.path.join(REPO_ROOT, "tests", "peers", "hostile_smtp.py"),
                   "dns": os.path.join(REPO_ROOT, "tests", "peers", "hostile_dns.py")}


@contextlib.contextmanager
def hostile_peer(kind, mode, *args, startup_timeout=15):
    """Starts tests/peers/hostile_smtp.py (kind "smtp") or hostile_dns.py (kind "dns") MODE
    ARGS on a free 127.0.0.1 port; yields the port; stops it."""
    argv = [PYTHON, HOSTILE_SCRIPTS[kind], mode, *args, "--lifetime", "300"]
    with _server(f"hostile {kind} peer {mode} {args}", argv, [r"PORT (\d+)\s*$"],
                 startup_timeout) as (port,):
        yield port
