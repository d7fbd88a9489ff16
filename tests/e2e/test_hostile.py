"""The hostile-peer matrix: every client of smtpsh against every protocol fault.

The SMTP peer is tests/peers/hostile_smtp.py (one fault per mode: NUL bytes, bare CRs, a
10 MB line, 100,000 reply lines, code changes, bad codes, a trickled banner, silence, resets,
unsolicited lines, endless 334s, echoed secrets, broken STARTTLS); the DNS peer is
tests/peers/hostile_dns.py (truncated and malformed answers, compression loops, wrong IDs and
questions, TC then a broken TCP answer, a 60 KB TXT RRset, silence). Each mode is run against
a Lua session (``smtpsh -e``), ``diagnose --json``, ``tls``, ``send`` and ``raw`` (DNS modes:
``dns.query`` and ``smtpsh dns``). Every run must end within a bound, without a crash (signal,
sanitizer report, Lua traceback), with an error that names the stage, without reply
misattribution (desync), without losing transcript lines that arrived, without showing an
echoed secret, and (10 MB line, 100,000 lines) with a bounded peak RSS.

All runs start at once in a thread pool when a class is set up (most of them wait on a 2 s
deadline); each test then checks its own run. Only loopback addresses; DNS goes to NSD
(tests/peers/zones) or to the hostile DNS peer; every peer is stopped by the class.

    /usr/bin/python3 -m unittest -v tests/e2e/test_hostile.py      (SMTPSH=/path/to/smtpsh)

Expectations that are a judgement call (documented here, asserted below):
  * nul / bare-cr: the client may accept such a reply or refuse it at that stage, but the
    transcript (--trace) must show every byte that arrived (nothing cut at a NUL) and must
    not pass a raw NUL or a bare CR to the terminal (escaped or replaced instead).
  * many-lines: a 100,000-line reply may be refused as too long or accepted; either way the
    run stays fast and small, and diagnose's evidence stays under 60 entries.
  * unsolicited: the extra line may be refused (a protocol error at banner/ehlo/mail) or
    skipped, but it must never be taken as the reply to the next command.
  * raw: a failure after the banner is printed as a ``! `` line and the session ends with
    status 0 (documented); reply lines that arrived before a reset are shown, not dropped.
  * code-change, bad-code ("25 ok", "2500 ok", "abc ok"), a 334 to AUTH or MAIL/RCPT where
    235/250 is due: errors at that stage, never a success.
  * the one-line error of send (stderr), raw (stderr, when the banner fails) and the verdict
    line of tls name the stage (banner/greeting, EHLO, STARTTLS/TLS, AUTH, MAIL, RCPT); the
    Lua session's err.stage and diagnose's "stage" must be the stage of the fault.
  * the transcript keeps what arrived: lines before a reset, the line a malformed reply broke
    on, the first lines of a reply refused as too long (in diagnose's evidence too).
  * send does not do STARTTLS, so the starttls-* modes are plain successes for it.
"""

import base64
import concurrent.futures
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# SMTPSH_TEST_TIME_SCALE (harness.TIME_SCALE, e.g. under valgrind) stretches the bounds and
# turns the RSS limit off (the figure would be valgrind's).
SCALE = getattr(harness, "TIME_SCALE", 1.0)
TIMEOUT = 2                 # the deadline every client is given (seconds)
BOUND = 15.0 * SCALE        # no run may take longer than this (deadline + margin)
DNS_BOUND = 15.0 * SCALE
SESSION_BOUND = (2 * TIMEOUT + 3) * SCALE  # one session (lua, send, raw): two deadlines at most
DNS_QUERY_BOUND = 6.0 * SCALE              # one query, one attempt of 1 s
RSS_LIMIT_KB = 200 * 1024   # peak RSS for the 10 MB line and the 100,000 lines
HARD_KILL = 45.0 * SCALE    # a run still going after this is killed (and fails)
WORKERS = 8
TIME = "/usr/bin/time"

USER = "u"
SECRET = "pw-S3cr3t-Hunter2"
FORBIDDEN = [SECRET,
             base64.b64encode(SECRET.encode()).decode(),
             base64.b64encode(f"\0{USER}\0{SECRET}".encode()).decode(),
             base64.b64encode(f"\0{USER}\0{SECRET}".encode()).decode().rstrip("=")]

CRASH_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "stack traceback",
                 "Segmentation fault", "core dumped", "terminate called")

# What a non-faulty reply to each Lua step says (hostile_smtp.py): an OK line with other
# words means the client took another command's reply for this one.
STEP_TEXT = {"banner": "hostile.test ESMTP ready", "ehlo": "hostile.test greets you",
             "mail": "sender ok", "rcpt": "recipient ok", "auth-plain": "2.7.0 ok",
             "auth-login": "2.7.0 ok", "quit": "bye"}

# Words that name a stage in an error line.
STAGE_WORDS = {"banner": r"banner|greeting", "ehlo": r"ehlo|helo", "starttls": r"starttls|tls",
               "auth": r"\bauth", "mail": r"\bmail\b|mail from", "rcpt": r"rcpt|recipient",
               "data": r"\bdata\b", "connect": r"connect|tls"}

RAW_IN = "EHLO x\r\nQUIT\r\n"
RAW_IN_TLS = "EHLO x\r\nSTARTTLS\r\nQUIT\r\n"
RAW_IN_MAIL = "EHLO x\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nQUIT\r\n"

LUA_SESSION = r'''
local target, steps, implicit = TARGET, {STEPS}, IMPLICIT
dns.servers{RESOLVER, timeout = 1, attempts = 1}
local secret = SECRET
local function one(x)
  return (tostring(x):gsub("\r", "\\r"):gsub("\0", "\\0"):gsub("\n", " | "))
end
local function fail(e)
  print(string.format("ERR stage=%s kind=%s reason=%s msg=%s", tostring(e and e.stage),
        tostring(e and e.kind), tostring(e and e.reason), one(e)))
  os.exit(1)
end
local s, err = smtp.connect(target, {timeout = 2, trace = true,
                                     tls = implicit and "implicit" or nil})
if not s then fail(err) end
print("OK banner " .. one(s.banner))
for _, step in ipairs(steps) do
  local r, e
  if step == "ehlo" then r, e = s:ehlo()
  elseif step == "starttls" then r, e = s:starttls{}; if r then r = r.version end
  elseif step == "auth-plain" then r, e = s:auth("PLAIN", "u", secret)
  elseif step == "auth-login" then r, e = s:auth("LOGIN", "u", secret)
  elseif step == "mail" then r, e = s:mail("a@x.test")
  elseif step == "rcpt" then r, e = s:rcpt("b@x.test")
  elseif step == "quit" then r, e = s:quit()
  end
  if not r then fail(e) end
  print("OK " .. step .. " " .. one(r))
end
'''

LUA_DNS = r'''
dns.servers{RESOLVER, timeout = 1, attempts = 1}
local r, e = dns.query("x.test", "TXT")
if r then
  local longest = 0
  for _, rr in ipairs(r) do longest = math.max(longest, #tostring(rr.rdata)) end
  print(string.format("OK count=%d tcp=%s longest=%d", #r, tostring(r.tcp), longest))
else
  print(string.format("ERR kind=%s rcode=%s msg=%s", tostring(e.kind), tostring(e.rcode),
        (tostring(e):gsub("\n", " | "))))
  os.exit(1)
end
'''


def lua_string(text):
    return json.dumps(text)  # a double-quoted string Lua reads the same (ASCII only here)


# --------------------------------------------------------------------------------------------
# Running a client

class Run:
    """What one client run produced."""

    def __init__(self, args):
        self.args = args
        self.returncode = None
        self.stdout = ""
        self.stderr = ""
        self.elapsed = 0.0
        self.timed_out = False
        self.maxrss_kb = None
        self.record = None
        self.error = None  # an exception of the runner itself

    def describe(self):
        cut = lambda text: text if len(text) < 6000 else text[:3000] + "\n[...]\n" + text[-2500:]
        return (f"\n--- command: smtpsh {' '.join(map(repr, self.args))}"
                f"\n--- exit status: {self.returncode}, {self.elapsed:.2f} s"
                f"{', killed after ' + str(HARD_KILL) + ' s' if self.timed_out else ''}"
                f"{', max RSS %d kB' % self.maxrss_kb if self.maxrss_kb else ''}"
                f"\n--- stdout:\n{cut(self.stdout)}\n--- stderr:\n{cut(self.stderr)}"
                + (f"\n--- recording:\n{cut(self.record)}" if self.record is not None else ""))


def _poll_hwm(pid, box, done):
    """Fallback for a missing /usr/bin/time: the peak RSS (VmHWM) seen in /proc."""
    while not done.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        box[0] = max(box[0], int(line.split()[1]))
        except (OSError, ValueError):
            pass
        done.wait(0.02)


def run_client(args, stdin=None, rss=False, record=None):
    run = Run(args)
    try:
        _run_client(run, args, stdin, rss, record)
    except Exception as e:  # reported by the test, not lost in the pool
        run.error = repr(e)
    return run


def _run_client(run, args, stdin, rss, record):
    cmd = [harness.SMTPSH] + list(args)
    rss_file = None
    if rss and os.access(TIME, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="smtpsh-rss-", dir=harness.scratch_dir())
        os.close(fd)
        cmd = [TIME, "-o", rss_file, "-f", "%M"] + cmd
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=harness.merge_env(None), cwd=harness.REPO_ROOT,
                            start_new_session=True)
    box, done = [0], threading.Event()
    poller = None
    if rss and rss_file is None:
        poller = threading.Thread(target=_poll_hwm, args=(proc.pid, box, done), daemon=True)
        poller.start()
    try:
        out, err = proc.communicate(stdin.encode() if stdin is not None else None,
                                    timeout=HARD_KILL)
    except subprocess.TimeoutExpired:
        harness._kill_group(proc.pid)
        out, err = proc.communicate(timeout=5)
        run.timed_out = True
    finally:
        if proc.poll() is None:
            harness._kill_group(proc.pid)
            proc.wait(timeout=5)
        done.set()
    run.elapsed = time.monotonic() - t0
    run.returncode = proc.returncode
    run.stdout = out.decode("utf-8", "replace")
    run.stderr = err.decode("utf-8", "replace")
    if poller is not None:
        poller.join(timeout=1)
        run.maxrss_kb = box[0] or None
    if rss_file is not None:
        with open(rss_file) as f:
            lines = f.read().split("\n")
        for line in lines:
            m = re.match(r"Command terminated by signal (\d+)", line)
            if m:
                run.returncode = -int(m.group(1))
        numbers = [line for line in lines if line.strip().isdigit()]
        run.maxrss_kb = int(numbers[-1]) if numbers else None
    if record is not None:
        try:
            with open(record, encoding="utf-8", errors="replace") as f:
                run.record = f.read()
        except OSError:
            run.record = ""


# --------------------------------------------------------------------------------------------
# The matrix: specs, started all at once

class Spec:
    """One client run against one peer, and what to expect of it.

    stage: the stage(s) at which the client meets the fault (a tuple), or () when its path does
    not reach the fault. outcome: "error" (the run must fail there), "lenient" (fail there or
    succeed), "ok" (must succeed)."""

    def __init__(self, name, peer, client, build, stdin=None, stage=(), outcome="ok",
                 kinds=None, reasons=None, arrived=(), clean_trace=False, rss=False,
                 secrets=False, verdicts=None, record=False, steps=()):
        self.name, self.peer, self.client, self.build = name, peer, client, build
        self.stdin, self.stage, self.outcome = stdin, tuple(stage), outcome
        self.kinds, self.reasons, self.arrived = kinds, reasons, tuple(arrived)
        self.clean_trace, self.rss, self.secrets = clean_trace, rss, secrets
        self.verdicts, self.record, self.steps = verdicts, record, tuple(steps)


class Matrix:
    """Starts the peers of `specs`, runs every spec in a thread pool, and stops the peers once
    every run has ended."""

    def __init__(self, specs, nsd_port):
        self.specs = {spec.name: spec for spec in specs}
        self.stack = contextlib.ExitStack()
        self.ports = {}
        self.nsd = nsd_port
        self.dir = harness.scratch_dir("smtpsh-hostile-")
        self.password_file = os.path.join(self.dir, "password")
        with open(self.password_file, "w") as f:
            f.write(SECRET + "\n")
        try:
            for spec in specs:
                if spec.peer not in self.ports:
                    kind, mode, *args = spec.peer
                    self.ports[spec.peer] = self.stack.enter_context(
                        harness.hostile_peer(kind, mode, *args))
            self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS)
            # the slow ones first, so that the pool's wall time is the longest run, not a sum
            order = sorted(specs, key=lambda s: 0 if s.peer[1] in SLOW_MODES else 1)
            self.futures = {spec.name: self.pool.submit(self._run, spec) for spec in order}
        except BaseException:
            self.stack.close()
            raise

    def _run(self, spec):
        try:
            port = self.ports[spec.peer]
            record = os.path.join(self.dir, spec.name + ".jsonl") if spec.record else None
            args = spec.build(port=port, nsd=self.nsd, record=record,
                              password_file=self.password_file)
        except Exception as e:  # reported by the test, not lost in the pool
            run = Run([spec.name])
            run.error = repr(e)
            return run
        return run_client(args, stdin=spec.stdin, rss=spec.rss, record=record)

    def result(self, name):
        return self.futures[name].result(timeout=HARD_KILL * 3)

    def close(self):
        self.pool.shutdown(wait=True)
        self.stack.close()


SLOW_MODES = {"trickle", "silent", "starttls-stall", "starttls-half", "wrong-id",
              "other-question"}


# --- SMTP specs ----------------------------------------------------------------------------

def lua_args(steps, implicit=False):
    def build(port, nsd, **_):
        code = (LUA_SESSION.replace("TARGET", lua_string(f"127.0.0.1:{port}"))
                .replace("STEPS", ", ".join(lua_string(s) for s in steps))
                .replace("IMPLICIT", "true" if implicit else "false")
                .replace("RESOLVER", lua_string(f"127.0.0.1:{nsd}"))
                .replace("SECRET", lua_string(SECRET)))
        return ["-e", code]
    return build


def diagnose_args(port, nsd, **_):
    return ["diagnose", f"127.0.0.1:{port}", "--json", "--timeout", str(TIMEOUT), "--dnsbl", "none",
            "--resolver", f"127.0.0.1:{nsd}"]


def tls_args(implicit=False):
    def build(port, nsd, **_):
        return (["tls", f"127.0.0.1:{port}", "--timeout", str(TIMEOUT),
                 "--resolver", f"127.0.0.1:{nsd}"] + (["--implicit"] if implicit else []))
    return build


def send_args(auth=None, trace=False):
    def build(port, nsd, record, password_file, **_):
        args = ["send", "--server", f"127.0.0.1:{port}", "--from", "a@x.test", "--to", "b@x.test",
                "--timeout", str(TIMEOUT), "--resolver", f"127.0.0.1:{nsd}"]
        if auth:
            args += ["--auth", auth, "--user", USER, "--password-file", password_file]
        if trace:
            args += ["--trace"]
        if record:
            args += ["--record", record]
        return args
    return build


def raw_args(implicit=False):
    def build(port, nsd, **_):
        return (["raw", f"127.0.0.1:{port}", "--timeout", str(TIMEOUT),
                 "--resolver", f"127.0.0.1:{nsd}"] + (["--implicit"] if implicit else []))
    return build


# The paths of the clients: the stages each one goes through.
DIAGNOSE_PATH = ("banner", "ehlo", "starttls", "mail", "rcpt")
TLS_PATH = ("banner", "ehlo", "starttls")
SEND_PATH = ("banner", "ehlo", "mail", "rcpt", "data")


def reached(stages, path):
    return tuple(s for s in stages if s in path)


def smtp_specs():
    specs = []

    def family(name, mode, peer_args=(), stage=(), outcome="error", kinds=None, reasons=None,
               arrived=(), clean_trace=False, rss=False, verdicts=None, lua_steps=None,
               raw_in=RAW_IN):
        """A Lua session, diagnose, tls, send and raw against one peer."""
        peer = ("smtp", mode, *peer_args)
        steps = lua_steps or ["ehlo", "mail", "rcpt", "quit"]
        lua_path = ("banner",) + tuple(steps)
        common = dict(arrived=arrived, clean_trace=clean_trace, rss=rss)

        def on(path, **kw):
            st = reached(stage, path)
            return dict(stage=st, outcome=outcome if st else "ok", **kw)

        specs.append(Spec(f"{name}_lua", peer, "lua", lua_args(steps), steps=steps,
                          kinds=kinds, reasons=reasons, **on(lua_path), **common))
        specs.append(Spec(f"{name}_diagnose", peer, "diagnose", diagnose_args, verdicts=verdicts,
                          **on(DIAGNOSE_PATH), **common))
        specs.append(Spec(f"{name}_tls", peer, "tls", tls_args(), reasons=reasons,
                          **on(TLS_PATH), **common))
        specs.append(Spec(f"{name}_send", peer, "send", send_args(), **on(SEND_PATH), **common))
        verbs = {"EHLO": "ehlo", "MAIL": "mail", "RCPT": "rcpt", "STARTTLS": "starttls"}
        raw_path = ("banner",) + tuple(verbs[line.split(" ")[0]] for line in raw_in.split("\r\n")
                                       if line and not line.startswith("QUIT"))
        specs.append(Spec(f"{name}_raw", peer, "raw", raw_args(), stdin=raw_in,
                          **on(raw_path), **common))

    # control: a well-behaved server
    family("good", "good", outcome="ok", verdicts={"ok"})

    # bytes inside lines
    family("nul_ehlo", "nul", ("--stage", "ehlo"), stage=("ehlo",), outcome="lenient",
           clean_trace=True, arrived=[r"250-hostile.{1,8}test", r"250 o.{1,8}k"])
    family("nul_banner", "nul", ("--stage", "banner"), stage=("banner",), outcome="lenient",
           clean_trace=True, arrived=[r"220-hostile.{1,8}test", r"220 o.{1,8}k"])
    family("bare_cr_ehlo", "bare-cr", ("--stage", "ehlo"), stage=("ehlo",), outcome="lenient",
           clean_trace=True, arrived=[r"250-hostile\.test.{1,8}250-PIPELINING.{1,8}250 ok"])
    family("bare_cr_banner", "bare-cr", ("--stage", "banner"), stage=("banner",),
           outcome="lenient", clean_trace=True,
           arrived=[r"220-hostile\.test.{1,8}220-PIPELINING.{1,8}220 ok"])

    # size
    family("longline_banner", "longline", ("--stage", "banner"), stage=("banner",),
           kinds={"protocol"}, rss=True)
    family("longline_ehlo", "longline", ("--stage", "ehlo"), stage=("ehlo",), kinds={"protocol"},
           rss=True, arrived=["220 hostile.test ESMTP ready"])
    family("many_lines_ehlo", "many-lines", ("--stage", "ehlo"), stage=("ehlo",),
           outcome="lenient", rss=True, arrived=["250-hostile.test", "250-x"])
    family("many_lines_banner", "many-lines", ("--stage", "banner"), stage=("banner",),
           outcome="lenient", rss=True, arrived=["220-hostile.test", "220-x"])

    # reply syntax
    family("code_change_ehlo", "code-change", ("--stage", "ehlo"), stage=("ehlo",),
           kinds={"protocol"}, arrived=["250-hostile.test", "251 changed"])
    family("code_change_banner", "code-change", ("--stage", "banner"), stage=("banner",),
           kinds={"protocol"}, arrived=["220-hostile.test", "221 changed"])
    for variant, text in (("short", "25 ok"), ("long", "2500 ok"), ("alpha", "abc ok")):
        family(f"bad_code_{variant}_ehlo", "bad-code", ("--variant", variant, "--stage", "ehlo"),
               stage=("ehlo",), kinds={"protocol"}, arrived=[re.escape(text)])
        family(f"bad_code_{variant}_banner", "bad-code",
               ("--variant", variant, "--stage", "banner"), stage=("banner",),
               kinds={"protocol"}, arrived=[re.escape(text)])
    family("bad_code_long_mail", "bad-code", ("--variant", "long", "--stage", "mail"),
           stage=("mail",), kinds={"protocol"}, arrived=["2500 ok"], raw_in=RAW_IN_MAIL)

    # time and connection faults
    family("trickle_banner", "trickle", ("--stage", "banner"), stage=("banner",),
           kinds={"timeout"}, verdicts={"slow_server"})
    family("trickle_ehlo", "trickle", ("--stage", "ehlo"), stage=("ehlo",), kinds={"timeout"},
           verdicts={"slow_server"})
    family("silent", "silent", stage=("banner",), kinds={"timeout"}, verdicts={"slow_server"})
    family("rst_ehlo", "rst", ("--stage", "ehlo"), stage=("ehlo",), kinds={"closed"},
           arrived=["250-hostile.test first", "250-second line"], verdicts={"dropped_mid_session"})
    family("rst_banner", "rst", ("--stage", "banner"), stage=("banner",), kinds={"closed"},
           arrived=["220-hostile.test first", "220-second line"])
    family("rst_after_accept", "rst-after-accept", stage=("banner",), kinds={"closed"},
           verdicts={"dropped_before_banner"})

    # desynchronisation
    family("unsolicited_banner", "unsolicited", ("--stage", "banner"), stage=("banner", "ehlo"),
           outcome="lenient", arrived=["250 2.0.0 extra unsolicited line"])
    family("unsolicited_ehlo", "unsolicited", ("--stage", "ehlo"), stage=("ehlo", "mail"),
           outcome="lenient", arrived=["250 2.0.0 extra unsolicited line"])

    # AUTH
    peer = ("smtp", "endless-334")
    for steps in (["ehlo", "auth-plain", "mail", "rcpt", "quit"],
                  ["ehlo", "auth-login", "mail", "rcpt", "quit"]):
        specs.append(Spec(f"endless_334_lua_{steps[1].replace('-', '_')}", peer, "lua",
                          lua_args(steps), steps=steps, stage=("auth",), outcome="error",
                          kinds={"protocol", "reply"}))
    steps = ["ehlo", "mail", "rcpt", "quit"]
    specs.append(Spec("endless_334_lua_mail", peer, "lua", lua_args(steps), steps=steps,
                      stage=("mail",), outcome="error", kinds={"protocol", "reply"}))
    specs.append(Spec("endless_334_send_auth", peer, "send", send_args("PLAIN"), stage=("auth",),
                      outcome="error"))
    specs.append(Spec("endless_334_send", peer, "send", send_args(), stage=("mail",),
                      outcome="error"))
    specs.append(Spec("endless_334_diagnose", peer, "diagnose", diagnose_args, stage=("mail",),
                      outcome="error"))
    specs.append(Spec("endless_334_tls", peer, "tls", tls_args()))
    specs.append(Spec("endless_334_raw", peer, "raw", raw_args(),
                      stdin="EHLO x\r\nAUTH PLAIN AHUAcA==\r\nMAIL FROM:<a@x.test>\r\nQUIT\r\n"))

    peer = ("smtp", "echo-secret")
    for steps in (["ehlo", "auth-plain", "mail", "rcpt", "quit"],
                  ["ehlo", "auth-login", "mail", "rcpt", "quit"]):
        specs.append(Spec(f"echo_secret_lua_{steps[1].replace('-', '_')}", peer, "lua",
                          lua_args(steps), steps=steps, stage=("auth",), outcome="error",
                          kinds={"reply"}, secrets=True))
    for mech in ("PLAIN", "LOGIN"):
        specs.append(Spec(f"echo_secret_send_{mech.lower()}", peer, "send", send_args(mech),
                          stage=("auth",), outcome="error", secrets=True, record=True))
        specs.append(Spec(f"echo_secret_send_{mech.lower()}_trace", peer, "send",
                          send_args(mech, trace=True), stage=("auth",), outcome="error",
                          secrets=True, record=True))
    # no AUTH on their paths: they must just work
    specs.append(Spec("echo_secret_diagnose", peer, "diagnose", diagnose_args))
    specs.append(Spec("echo_secret_tls", peer, "tls", tls_args()))
    specs.append(Spec("echo_secret_raw", peer, "raw", raw_args(), stdin=RAW_IN))

    # STARTTLS
    for mode, kinds, reasons in (("starttls-close", {"tls", "closed"}, {"closed"}),
                                 ("starttls-garbage", {"tls"}, {"not_tls"}),
                                 ("starttls-http", {"tls"}, {"not_tls"}),
                                 ("starttls-stall", {"tls", "timeout"}, {"timeout"}),
                                 ("starttls-half", {"tls", "timeout"}, {"timeout"})):
        peer_args = ("--cert", "CERT", "--key", "KEY") if mode == "starttls-half" else ()
        family(mode.replace("-", "_"), mode, peer_args, stage=("starttls",), kinds=kinds,
               reasons=reasons, lua_steps=["ehlo", "starttls", "mail", "rcpt", "quit"],
               raw_in=RAW_IN_TLS, verdicts={"tls_handshake_failed"})

    # implicit TLS against a plain server
    peer = ("smtp", "plain-for-implicit")
    specs.append(Spec("plain_for_implicit_lua", peer, "lua",
                      lua_args(["ehlo", "quit"], implicit=True), steps=["ehlo", "quit"],
                      stage=("connect", "tls", "banner"), outcome="error", kinds={"tls"},
                      reasons={"not_tls"}))
    specs.append(Spec("plain_for_implicit_tls", peer, "tls", tls_args(implicit=True),
                      stage=("connect",), outcome="error", reasons={"not_tls"}))
    specs.append(Spec("plain_for_implicit_raw", peer, "raw", raw_args(implicit=True), stdin=RAW_IN,
                      stage=("connect",), outcome="error"))
    return specs


# --- DNS specs -----------------------------------------------------------------------------

def lua_dns_args(port, **_):
    return ["-e", LUA_DNS.replace("RESOLVER", lua_string(f"127.0.0.1:{port}"))]


def dns_cmd_args(port, **_):
    return ["dns", "x.test", "--resolver", f"127.0.0.1:{port}", "--timeout", "1"]


MALFORMED = "malformed"
TIMEOUT_RCODE = "timeout"


def dns_specs():
    specs = []
    table = [  # name, mode, args, expected rcode class for the TXT query
        ("truncated", "truncated", (), MALFORMED),
        ("compression_loop_self", "compression-loop", ("--variant", "self"), MALFORMED),
        ("compression_loop_cycle", "compression-loop", ("--variant", "cycle"), MALFORMED),
        ("wrong_id", "wrong-id", (), TIMEOUT_RCODE),
        ("other_question", "other-question", (), TIMEOUT_RCODE),
        ("lying_ancount", "lying-ancount", (), MALFORMED),
        ("bad_rdlength", "bad-rdlength", (), MALFORMED),
        ("tc_then_hostile_tcp_short", "tc-then-hostile-tcp", ("--variant", "short"), "any"),
        ("tc_then_hostile_tcp_loop", "tc-then-hostile-tcp", ("--variant", "loop"), MALFORMED),
        ("tc_then_hostile_tcp_garbage", "tc-then-hostile-tcp", ("--variant", "garbage"), MALFORMED),
        ("huge_txt", "huge-txt", (), "ok"),
        ("silent", "silent", (), TIMEOUT_RCODE),
    ]
    for name, mode, args, expect in table:
        peer = ("dns", mode, *args)
        specs.append(Spec(f"dns_{name}_query", peer, "lua-dns", lua_dns_args, outcome=expect))
        specs.append(Spec(f"dns_{name}_command", peer, "dns", dns_cmd_args, outcome=expect))
    return specs


# --------------------------------------------------------------------------------------------
# Checks

def stage_pattern(stages):
    return re.compile("|".join(STAGE_WORDS[s] for s in stages), re.I)


class MatrixTestCase(harness.SmtpshTestCase):
    matrix = None

    def run_of(self, spec):
        run = self.matrix.result(spec.name)
        self.assertIsNone(run.error, f"the runner failed: {run.error}{run.describe()}")
        return run

    def assertSane(self, run, bound=BOUND):
        """Ends in time, by itself, without a crash, and (when measured) in bounded memory."""
        d = run.describe()
        self.assertFalse(run.timed_out, f"still running after {HARD_KILL} s{d}")
        self.assertLess(run.elapsed, bound, f"took {run.elapsed:.1f} s, bound {bound} s{d}")
        self.assertGreaterEqual(run.returncode, 0, f"killed by signal {-run.returncode}{d}")
        self.assertLess(run.returncode, 128, f"exit status {run.returncode} looks like a signal{d}")
        for marker in CRASH_MARKERS:
            self.assertNotIn(marker, run.stderr, f"{marker!r} on stderr{d}")
        if run.maxrss_kb is not None and SCALE == 1:
            self.assertLess(run.maxrss_kb, RSS_LIMIT_KB,
                            f"peak RSS {run.maxrss_kb} kB, limit {RSS_LIMIT_KB} kB{d}")


class TestHostileSmtp(MatrixTestCase):
    """Every SMTP fault against every client."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack = contextlib.ExitStack()
        try:
            certs = harness.test_certs()
            nsd = cls.stack.enter_context(harness.dns_peer("nsd"))
            specs = smtp_specs()
            for spec in specs:  # the certificate paths of starttls-half
                spec.peer = tuple(os.path.join(certs, "mx1-chain.pem") if a == "CERT" else
                                  os.path.join(certs, "mx1.key") if a == "KEY" else a
                                  for a in spec.peer)
            cls.matrix = Matrix(specs, nsd)
            cls.stack.callback(cls.matrix.close)
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        super().tearDownClass()

    def check(self, spec):
        spec = self.matrix.specs[spec.name]
        run = self.run_of(spec)
        self.assertSane(run, SESSION_BOUND if spec.client in ("lua", "send", "raw") else BOUND)
        getattr(self, "check_" + spec.client.replace("-", "_"))(spec, run)
        if spec.secrets:
            self.check_secrets(run)

    # --- per client

    def check_lua(self, spec, run):
        d = run.describe()
        self.assertIn(run.returncode, (0, 1), d)
        lines = run.stdout.splitlines()
        errors = [line for line in lines if line.startswith("ERR ")]
        oks = [line for line in lines if line.startswith("OK ")]
        self.assertEqual(run.returncode == 1, bool(errors), f"exit status and ERR line disagree{d}")
        # desync: an OK reply must be this step's reply, not another command's
        faulted = set() if spec.peer[1] == "unsolicited" else set(spec.stage)
        for line in oks:
            _, step, text = (line.split(" ", 2) + [""])[:3]
            if step in STEP_TEXT and step not in faulted:
                self.assertIn(STEP_TEXT[step], text,
                              f"the reply to {step} is not the {step} reply (desynchronised){d}")
        if errors:
            m = re.match(r"ERR stage=(\S+) kind=(\S+) reason=(\S+) msg=(.*)$", errors[0])
            self.assertTrue(m, f"unparsable error line{d}")
            stage, kind, reason, msg = m.groups()
            self.assertNotEqual(spec.outcome, "ok", f"no error expected{d}")
            self.assertIn(stage, spec.stage, f"the error names stage {stage!r}, the fault is at "
                                             f"{spec.stage}{d}")
            if spec.kinds:
                self.assertIn(kind, spec.kinds, f"err.kind {kind!r}{d}")
            if spec.reasons and kind in ("tls",):
                self.assertIn(reason, spec.reasons, f"err.reason {reason!r}{d}")
            self.assertTrue(msg.strip() and msg != "nil", f"an error without words{d}")
        else:
            self.assertNotEqual(spec.outcome, "error", f"every step succeeded despite the fault{d}")
            self.assertEqual(len(oks), 1 + len(spec.steps), d)
        self.check_arrived(spec, run, run.stderr.split("\n"), "the --trace transcript")
        if spec.clean_trace:
            self.check_clean(run.stderr, "the --trace transcript", d)

    def check_diagnose(self, spec, run):
        d = run.describe()
        self.assertIn(run.returncode, (0, 1), d)
        out = run.stdout.strip().splitlines()
        self.assertEqual(len(out), 1, f"--json prints one line{d}")
        try:
            doc = json.loads(out[0])
        except ValueError as e:
            self.fail(f"stdout is not JSON: {e}{d}")
        self.assertIsInstance(doc, dict, d)
        for key in ("target", "verdict", "transient", "checks", "evidence", "advice"):
            self.assertIn(key, doc, d)
        evidence = doc["evidence"]
        self.assertIsInstance(evidence, list, d)
        bad = [e for e in evidence if not isinstance(e, str)]
        self.assertFalse(bad, f"evidence holds non-strings: {bad[:5]!r}{d}")
        self.assertLess(len(evidence), 60, f"{len(evidence)} evidence entries{d}")
        for check in doc["checks"]:
            self.assertIsInstance(check.get("detail"), str, d)
        verdict = doc["verdict"]
        self.assertEqual(run.returncode, 0 if verdict == "ok" else 1, d)
        checks = {c["name"]: c for c in doc["checks"]}
        if verdict == "ok" and "rcpt" in checks:  # desync: the RCPT check quotes the RCPT reply
            self.assertIn("recipient ok", checks["rcpt"]["detail"],
                          f"diagnose took another reply for the RCPT reply (desynchronised){d}")
        if spec.outcome == "error":
            self.assertNotEqual(verdict, "ok", f"verdict ok despite a fault at {spec.stage}{d}")
        if verdict != "ok" and spec.outcome != "ok":
            self.assertIn(doc.get("stage"), spec.stage, f"stage {doc.get('stage')!r}{d}")
        if spec.outcome == "ok":
            self.assertEqual(verdict, "ok", d)
        if spec.verdicts and spec.outcome != "ok":
            self.assertIn(verdict, spec.verdicts, d)
        if verdict != "ok":
            self.check_arrived(spec, run, evidence, "the evidence")

    def check_tls(self, spec, run):
        d = run.describe()
        # no peer here has a working STARTTLS (or implicit TLS): always a problem found
        self.assertEqual(run.returncode, 1, d)
        verdict = [line for line in run.stdout.splitlines() if line.startswith("verdict:")]
        self.assertEqual(len(verdict), 1, f"one verdict line{d}")
        self.assertEqual(run.stderr, "", d)
        if spec.stage and spec.outcome == "error":
            self.assertRegex(verdict[0], stage_pattern(spec.stage),
                             f"the verdict does not name the stage {spec.stage}{d}")
        if spec.reasons and spec.outcome == "error":
            self.assertRegex(run.stdout, "|".join(spec.reasons), d)

    def check_send(self, spec, run):
        d = run.describe()
        self.assertIn(run.returncode, (0, 1), d)
        if spec.outcome == "ok":
            self.assertEqual(run.returncode, 0, d)
        if spec.outcome == "error":
            self.assertEqual(run.returncode, 1, d)
        traced = "--trace" in run.args
        err_lines = run.stderr.splitlines()
        if run.returncode == 1:
            if traced:
                self.assertTrue(err_lines and err_lines[-1].startswith("smtpsh send: "), d)
            else:
                self.assertEqual(len(err_lines), 1, f"one error line on stderr{d}")
            line = err_lines[-1]
            self.assertTrue(line.startswith("smtpsh send: "), d)
            if spec.stage:
                self.assertRegex(line[len("smtpsh send: "):], stage_pattern(spec.stage),
                                 f"the error line does not name the stage {spec.stage}{d}")
        elif not traced:
            self.assertEqual(run.stderr, "", d)
        self.check_arrived(spec, run, (run.stdout + run.stderr).split("\n"), "the transcript")
        if spec.clean_trace:
            self.check_clean(run.stdout + run.stderr, "the transcript", d)

    def check_raw(self, spec, run):
        d = run.describe()
        at_connect = any(s in ("banner", "connect") for s in spec.stage) and spec.outcome == "error"
        if at_connect and not (set(spec.stage) - {"banner", "connect"}):
            self.assertEqual(run.returncode, 1, d)
            err_lines = run.stderr.splitlines()
            self.assertEqual(len(err_lines), 1, f"one error line on stderr{d}")
            self.assertTrue(err_lines[0].startswith("smtpsh raw: "), d)
            self.assertRegex(err_lines[0], stage_pattern(spec.stage),
                             f"the error line does not name the stage {spec.stage}{d}")
        elif run.returncode == 1 and spec.outcome == "lenient" and "banner" in spec.stage:
            err_lines = run.stderr.splitlines()
            self.assertEqual(len(err_lines), 1, f"one error line on stderr{d}")
            self.assertRegex(err_lines[0], stage_pattern(spec.stage), d)
        else:
            self.assertEqual(run.returncode, 0, f"the session ran: status 0 (documented){d}")
            self.assertEqual(run.stderr, "", d)
            lines = run.stdout.splitlines()
            self.assertTrue(lines, d)
            if spec.outcome == "error":
                self.assertTrue(any(line.startswith("! ") for line in lines),
                                f"no '! ' line tells what went wrong{d}")
            elif spec.peer[1] != "endless-334" and not (
                    spec.outcome == "lenient" and any(line.startswith("! ") for line in lines)):
                # QUIT's own reply, not one that arrived earlier (no desynchronisation)
                self.assertIn("221 2.0.0 bye", run.stdout, d)
        self.check_arrived(spec, run, (run.stdout + run.stderr).split("\n"), "raw's output")
        if spec.clean_trace:
            self.check_clean(run.stdout, "raw's output", d)

    # --- shared

    def check_arrived(self, spec, run, lines, where):
        for pattern in spec.arrived:
            rx = re.compile(pattern)
            self.assertTrue(any(rx.search(line) for line in lines),
                            f"{pattern!r}, which the server sent, is missing from {where}"
                            f"{run.describe()}")

    def check_clean(self, text, where, d):
        self.assertNotIn("\0", text, f"a raw NUL byte in {where}{d}")
        self.assertIsNone(re.search(r"\r(?!\n)", text), f"a bare CR in {where}{d}")

    def check_secrets(self, run):
        d = run.describe()
        for place, text in (("stdout", run.stdout), ("stderr", run.stderr),
                            ("the recording", run.record or "")):
            for secret in FORBIDDEN:
                self.assertNotIn(secret, text, f"the secret (as {secret!r}) shows in {place}{d}")


class TestHostileDns(MatrixTestCase):
    """Every DNS fault against dns.query and `smtpsh dns`."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.matrix = Matrix(dns_specs(), None)

    @classmethod
    def tearDownClass(cls):
        cls.matrix.close()
        super().tearDownClass()

    def check(self, spec):
        run = self.run_of(spec)
        self.assertSane(run, DNS_BOUND)
        d = run.describe()
        port = str(self.matrix.ports[spec.peer])
        if spec.client == "lua-dns":
            self.assertLess(run.elapsed, DNS_QUERY_BOUND,
                            f"one attempt of 1 s took {run.elapsed:.1f} s{d}")
            self.assertEqual(run.stderr, "", d)
            if spec.outcome == "ok":
                self.assertEqual(run.returncode, 0, d)
                m = re.search(r"^OK count=(\d+) tcp=(\w+) longest=(\d+)$", run.stdout, re.M)
                self.assertTrue(m, d)
                self.assertEqual(int(m.group(1)), 230, d)
                self.assertEqual(m.group(2), "true", d)
                return
            self.assertEqual(run.returncode, 1, d)
            m = re.search(r"^ERR kind=(\S+) rcode=(\S+) msg=(.+)$", run.stdout, re.M)
            self.assertTrue(m, f"no clear dns error{d}")
            kind, rcode, msg = m.groups()
            self.assertEqual(kind, "dns", d)
            self.assertNotIn(rcode, ("nil", "NOERROR", "NXDOMAIN"), d)
            if spec.outcome == TIMEOUT_RCODE:
                self.assertEqual(rcode, "timeout", d)
            elif spec.outcome == MALFORMED:
                self.assertEqual(rcode, "malformed", d)
            self.assertIn(port, msg, f"the error should name the server{d}")
        else:
            self.assertEqual(run.returncode, 1, f"problems found: status 1{d}")
            self.assertEqual(run.stderr, "", d)
            lines = run.stdout.splitlines()
            self.assertTrue(lines and lines[0].startswith("smtpsh dns x.test"), d)
            mx = [line for line in lines if re.match(r"\s*\w+\s+mx\s", line)]
            self.assertEqual(len(mx), 1, d)
            if spec.outcome == "ok":
                self.assertIn("no MX record", mx[0], d)
                self.assertRegex(run.stdout, r"no SPF record", d)
            else:
                self.assertRegex(mx[0], r"^\s*fail\s", d)
                self.assertIn(port, mx[0], f"the failed check should name the server{d}")
            if spec.outcome == TIMEOUT_RCODE:
                self.assertRegex(mx[0], r"no answer|timed out|timeout", d)
            elif spec.outcome == MALFORMED:
                self.assertRegex(mx[0], r"decode|malformed|does not match", d)


def _add_tests(cls, specs):
    for spec in specs:
        def test(self, spec=spec):
            self.check(spec)
        test.__name__ = f"test_{spec.name}"
        test.__doc__ = None
        setattr(cls, test.__name__, test)


_add_tests(TestHostileSmtp, smtp_specs())
_add_tests(TestHostileDns, dns_specs())


if __name__ == "__main__":
    unittest.main()
