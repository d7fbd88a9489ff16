"""A private Postfix instance acting as the sending MTA, for tests that need a real sender's
reaction (and its real log lines) to a remote server.

    with PostfixClient(routes={"greylist.test": 2525}) as pf:
        qid = pf.send("sender@sender.test", "alice@greylist.test")
        pf.wait_status("alice@greylist.test", "sent", timeout=20)
        print(pf.log_text())

Everything lives in one temporary directory (config, queue, data, maillog); the instance
submits through its own smtpd on a free loopback port and delivers only over loopback: every
recipient domain is routed to an IP literal, DNS is off, and whatever has no route (a bounce
to an unrouted sender, say) fails locally. Needs root and Postfix (raises unittest.SkipTest
otherwise). Every wait is bounded; the master process and its children are stopped on exit.
"""

import os
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest
from email.message import EmailMessage

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
DAEMON_DIR = "/usr/lib/postfix/sbin"
MASTER = os.path.join(DAEMON_DIR, "master")

# Sender domains whose mail (bounces, mostly) is dropped here, so a bounce never needs a route.
SINK_DOMAINS = ("sender.test",)

# Fast retries and short timeouts: a fault shows within seconds rather than minutes. Each
# timeout is that of one step of the SMTP client, so a test can tell which step timed out.
FAST = {
    "queue_run_delay": "1s",
    # Not 1 s: with `may`, a failed TLS handshake falls back to plaintext only for a message
    # that has waited minimal_backoff_time, counted in whole seconds of the clock: at 1 s a
    # first try that crosses a second boundary would already fall back, instead of deferring.
    "minimal_backoff_time": "2s",
    "maximal_backoff_time": "2s",
    "smtp_connect_timeout": "3s",
    "smtp_helo_timeout": "3s",          # also the wait for the greeting
    "smtp_mail_timeout": "3s",
    "smtp_rcpt_timeout": "3s",
    "smtp_data_init_timeout": "3s",
    "smtp_data_xfer_timeout": "3s",
    "smtp_data_done_timeout": "3s",
    "smtp_starttls_timeout": "3s",
    "smtp_quit_timeout": "3s",
}

# QUEUE_ID: to=<...>, [orig_to=<...>,] relay=..., [conn_use=N,] delay=..., delays=...,
# dsn=..., status=... (text)
STATUS_RE = re.compile(
    r"postfix/(?P<service>[\w/.-]+)\[(?P<pid>\d+)\]: (?P<queue_id>[0-9A-Za-z]+): "
    r"to=<(?P<to>[^>]*)>, (?:orig_to=<[^>]*>, )?relay=(?P<relay>[^,]+), "
    r"(?:conn_use=\d+, )?delay=(?P<delay>[\d.]+), delays=(?P<delays>[\d./]+), "
    r"dsn=(?P<dsn>[\d.]+), status=(?P<status>\w+) \((?P<text>.*)\)$")


def parse_status(line):
    """The fields of one delivery status line of Postfix's log (service, pid, queue_id, to,
    relay, delay, delays, dsn, status, text; plus `line`), or None for any other line."""
    m = STATUS_RE.search(line)
    if not m:
        return None
    fields = m.groupdict()
    fields["line"] = line
    return fields


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inline_map(pairs):
    """Postfix's inline: table (read when a daemon starts, so routes are set before start)."""
    return "inline:{ " + ", ".join(f"{{{k} = {v}}}" for k, v in pairs) + " }" if pairs else ""


class PostfixClient:
    """A private Postfix MTA delivering over loopback. `routes` maps a recipient domain to a
    port (on 127.0.0.1) or to "HOST:PORT"; `settings` adds or overrides main.cf parameters."""

    def __init__(self, routes=None, settings=None, start_timeout=15):
        if not (os.access(POSTFIX, os.X_OK) and os.access(MASTER, os.X_OK)):
            raise unittest.SkipTest("Postfix is not installed")
        if os.geteuid() != 0:
            raise unittest.SkipTest("a private Postfix instance needs root")
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.dir = None
        self.master = None
        self.port = None
        self.maillog = None
        self._kept_log = ""  # the log of a stopped instance (its directory is gone)
        self.routes = {}
        self.tls_policies = {}
        for domain, where in (routes or {}).items():
            self.route(domain, where)

    # -- set-up

    def route(self, domain, where, tls_policy=None):
        """Delivers mail for `domain` to 127.0.0.1:PORT (an int) or HOST:PORT; `tls_policy`, a
        value of smtp_tls_policy_maps (e.g. "may protocols=>=TLSv1.2"), applies to that
        destination. Before start only: the routes are part of main.cf."""
        if self.master is not None:
            raise RuntimeError("PostfixClient.route() after start: pass the routes before")
        host, port = ("127.0.0.1", where) if isinstance(where, int) else where.rsplit(":", 1)
        nexthop = f"[{host}]:{port}"
        self.routes[domain.lower()] = f"smtp:{nexthop}"
        if tls_policy:
            self.tls_policies[nexthop] = tls_policy

    def _main_cf(self):
        d = self.dir
        transports = list(self.routes.items()) + [(s, "discard:") for s in SINK_DOMAINS]
        conf = {
            "compatibility_level": "3.6",
            "queue_directory": f"{d}/queue",
            "data_directory": f"{d}/data",
            "maillog_file": f"{d}/maillog",
            "maillog_file_prefixes": d,
            "myhostname": "postfix-client.test",
            "mydestination": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "relayhost": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_peername_lookup": "no",
            "transport_maps": _inline_map(transports),
            # Nothing may leave loopback or ask DNS: unrouted mail fails here.
            "default_transport": "error:5.3.0 no route in this test instance",
            "relay_transport": "error:5.3.0 no route in this test instance",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            # Opportunistic STARTTLS as a real MTA does it, and the handshake logged.
            "smtp_tls_security_level": "may",
            "smtp_tls_loglevel": "1",
            "smtp_tls_policy_maps": _inline_map(self.tls_policies.items()),
            **FAST,
            **self.settings,
        }
        return "".join(f"{k} = {v}\n" for k, v in conf.items())

    def _master_cf(self):
        # No chroot: the daemons read this instance's files, not a copy in a jail.
        services = [
            f"127.0.0.1:{self.port} inet n - n - - smtpd",
            "pickup    unix n - n 60 1 pickup",
            "cleanup   unix n - n - 0 cleanup",
            "qmgr      unix n - n 300 1 qmgr",
            "tlsmgr    unix - - n 1000? 1 tlsmgr",
            "rewrite   unix - - n - - trivial-rewrite",
            "bounce    unix - - n - 0 bounce",
            "defer     unix - - n - 0 bounce",
            "trace     unix - - n - 0 bounce",
            "verify    unix - - n - 1 verify",
            "flush     unix n - n 1000? 0 flush",
            "proxymap  unix - - n - - proxymap",
            "smtp      unix - - n - - smtp",
            "relay     unix - - n - - smtp",
            "showq     unix n - n - - showq",
            "error     unix - - n - - error",
            "retry     unix - - n - - error",
            "discard   unix - - n - - discard",
            "anvil     unix - - n - 1 anvil",
            "scache    unix - - n - 1 scache",
            "postlog   unix-dgram n - n - 1 postlogd",
        ]
        return "\n".join(services) + "\n"

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="smtpsh-postfix-")
        os.chmod(self.dir, 0o755)  # the daemons run as the postfix user
        self.config = os.path.join(self.dir, "etc")
        os.mkdir(self.config)
        os.mkdir(os.path.join(self.dir, "queue"))  # post-install starts there
        self.maillog = os.path.join(self.dir, "maillog")
        self.port = _free_port()
        with open(os.path.join(self.config, "main.cf"), "w") as f:
            f.write(self._main_cf())
        with open(os.path.join(self.config, "master.cf"), "w") as f:
            f.write(self._master_cf())
        status, out = self._postfix("post-install", "create-missing")
        if status != 0:
            self.stop()
            raise AssertionError(f"postfix post-install failed ({status}):\n{out}")
        self._stderr = open(os.path.join(self.dir, "master.stderr"), "w+")
        self.master = subprocess.Popen([MASTER, "-d", "-c", self.config], stdin=subprocess.DEVNULL,
                                       stdout=self._stderr, stderr=self._stderr,
                                       start_new_session=True)
        try:
            self._wait_started()
        except BaseException:
            self.stop()
            raise
        return self

    def _postfix(self, *args, timeout=30):
        """Runs postfix(1) on this instance; returns (exit status, what it printed). Its output
        is a terminal: only then does it print its errors (else they go to the maillog, or to
        syslog, absent here, while main.cf is unusable)."""
        ours, theirs = os.openpty()
        try:
            proc = subprocess.Popen([POSTFIX, "-c", self.config, *args], stdin=subprocess.DEVNULL,
                                    stdout=theirs, stderr=theirs)
        finally:
            os.close(theirs)
        out = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if select.select([ours], [], [], 0.1)[0]:
                    try:
                        chunk = os.read(ours, 4096)
                    except OSError:  # EIO: every writer is gone
                        break
                    if not chunk:
                        break
                    out += chunk
                elif proc.poll() is not None:
                    break
        finally:
            os.close(ours)
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
        return proc.returncode, out.decode("utf-8", "replace").replace("\r\n", "\n")

    def _wait_started(self):
        """Until the submission smtpd greets (master forks it on the first connection)."""
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline and self.master.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"220"):
                        return
            except OSError as e:
                last = e
            time.sleep(0.1)
        if self.master.poll() is not None:
            # master logs its start-up errors to syslog only: what check finds is all we get.
            _, out = self._postfix("check")
            status = (f"master exited with status {self.master.returncode} (is 127.0.0.1:"
                      f"{self.port} free? postfix check says: {out.strip() or 'nothing'})")
        else:
            status = f"no greeting on 127.0.0.1:{self.port} within {self.start_timeout} s ({last})"
        self._stderr.seek(0)
        raise AssertionError(f"Postfix did not start: {status}\n"
                             f"--- master's output:\n{self._stderr.read()[-3000:]}"
                             f"--- maillog tail:\n{self.log_tail()}")

    def stop(self):
        """Stops master (which stops its children), then anything left of its process group;
        removes the directory."""
        if self.master is not None:
            pgid = self.master.pid
            if self.master.poll() is None:
                self.master.terminate()
                try:
                    self.master.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(pgid, signal.SIGKILL)  # children still finishing a delivery
            except (ProcessLookupError, PermissionError):
                pass
            if self.master.poll() is None:
                self.master.wait(timeout=5)
            self._stderr.close()
            self.master = None
        if self.dir:
            self._kept_log = self.log_text()
            self.maillog = None
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- mail

    def send(self, sender, rcpt, subject="test", body="A test message.\n", timeout=10):
        """Submits one message through the instance's smtpd; returns its queue ID (from the
        "250 2.0.0 Ok: queued as ID" reply) once Postfix has taken it."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, rcpt, subject
        msg.set_content(body)
        with smtplib.SMTP("127.0.0.1", self.port, timeout=timeout) as s:
            s.ehlo("submitter.test")
            s.mail(sender)
            code, text = s.rcpt(rcpt)
            if code != 250:
                raise AssertionError(f"Postfix refused RCPT <{rcpt}>: {code} {text!r}")
            code, text = s.data(msg.as_bytes())
            if code != 250:
                raise AssertionError(f"Postfix refused the message to <{rcpt}>: {code} {text!r}")
        m = re.search(rb"queued as (\w+)", text)
        return m.group(1).decode() if m else None

    def flush(self):
        """Asks for a delivery attempt of every deferred message now (postqueue -f)."""
        subprocess.run([POSTQUEUE, "-c", self.config, "-f"], capture_output=True, timeout=10,
                       check=True)

    # -- log

    def log_text(self):
        """The maillog so far (after stop: as it was when the instance stopped)."""
        if self.maillog is None:
            return self._kept_log
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def log_tail(self, n=40):
        return "\n".join(self.log_lines()[-n:]) + "\n"

    def lines_for(self, queue_id):
        """Every log line about one message (they carry "QUEUE_ID: ")."""
        return [line for line in self.log_lines() if f" {queue_id}: " in line]

    def status_lines(self, rcpt=None):
        """The parsed delivery status lines (see parse_status), in log order; only those for
        `rcpt` when given."""
        found = (parse_status(line) for line in self.log_lines())
        return [s for s in found if s and (rcpt is None or s["to"].lower() == rcpt.lower())]

    def wait_for(self, what, timeout=10):
        """Waits until `what` (a regex, matched per line, or a predicate on the log's lines)
        holds; returns the regex's match (or the predicate's value). Raises AssertionError
        with the log's tail after `timeout` seconds."""
        if callable(what):
            check = lambda: what(self.log_lines())  # noqa: E731
        else:
            rx = re.compile(what)
            check = lambda: next(filter(None, map(rx.search, self.log_lines())), None)  # noqa: E731
        deadline = time.monotonic() + timeout
        while True:
            got = check()
            if got:
                return got
            if time.monotonic() >= deadline:
                raise AssertionError(f"not in Postfix's log within {timeout} s: "
                                     f"{getattr(what, 'pattern', what)!r}\n"
                                     f"--- maillog tail:\n{self.log_tail()}")
            time.sleep(0.2)

    def wait_status(self, rcpt, status=None, timeout=10):
        """Waits for the first status line for `rcpt` (the first with status=`status` when
        given); returns it parsed."""
        def first(lines):
            return next((s for s in map(parse_status, lines)
                         if s and s["to"].lower() == rcpt.lower()
                         and status in (None, s["status"])), None)
        return self.wait_for(first, timeout)
