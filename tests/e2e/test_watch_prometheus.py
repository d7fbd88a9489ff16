"""`smtpsh watch` scraped by a real Prometheus: the metrics follow servers that change state.

The test starts smtpsh's scenario servers (`smtpsh serve`, examples/servers/) on loopback:
accept, rate_limit, greylist, tls_old, and a second accept that it stops midway (a dead MX).
A private Prometheus (Debian's /usr/bin/prometheus, installed by ./setup.sh --tests), on a free
127.0.0.1 port with a scrape and evaluation interval of one second and its data in a scratch
directory, scrapes a free loopback port; once it scrapes (it starts a new target up to 5 s after
loading its configuration), one `smtpsh watch` starts serving on that port and probes all five
servers every second (--every 1s), so no state the watcher shows goes unscraped.
Everything asserted is asked of Prometheus's HTTP API (/api/v1/query), never of the watcher:

  - up{job} is 1; the healthy MX succeeds and negotiates TLS 1.2 or 1.3;
  - the rate limiter is first seen healthy; then the test uses up the sessions it allows (its
    own connections count, as another sender's behind the same IP would), so every session gets
    "421 4.7.0" at connect: the verdict turns rate_limited and the 421 rate is above zero, for
    the target and summed over all targets;
  - the greylister defers (verdict greylisted, the 450 count rising) until its delay is over,
    then accepts (verdict ok);
  - the TLS 1.0/1.1-only server gives tls_version_mismatch and failed handshakes;
  - the dead MX succeeds while it runs, then gives connect_refused and success 0;
  - histogram_quantile() over smtpsh_step_duration_seconds gives a number.

Each wait polls Prometheus for at most 20 s (times SMTPSH_TEST_TIME_SCALE); every process is
the test's own, on loopback, and stopped by it. The whole test takes about 15 s.

    /usr/bin/python3 -m unittest -v tests/e2e/test_watch_prometheus.py  (SMTPSH=/path/to/smtpsh)
"""

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SMTPSH, TIME_SCALE, scenario  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"
JOB = "smtpsh_watch"
# Each wait for Prometheus to show something, in seconds (times TIME_SCALE).
WAIT = 20
# The greylister defers for this long after the watcher's first probe, then accepts: long
# enough for a few scrapes of the deferral, short enough to see the switch back to ok.
GREYLIST_DELAY = 8
# Sessions the rate limiter serves before it answers 421 (a diagnosis takes two: the probe and
# a back-to-back one), more than the watcher uses before the test switches it to failing.
RATE_LIMIT_SESSIONS = 40

# Loopback only: no proxy from the environment may stand between the test and its servers.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _tail(path, lines=40):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({e})"


def _read_line(stream, timeout):
    return harness._read_line_with_deadline(stream, time.monotonic() + timeout)


class TestWatchPrometheus(harness.SmtpshTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.access(PROMETHEUS, os.X_OK):
            # Loud, not skipped: a missing scraper must not look like a pass.
            raise AssertionError(f"{PROMETHEUS} is missing: run ./setup.sh --tests")

    def setUp(self):
        self.scratch = harness.scratch_dir("smtpsh-watch-prom-")
        self.watch_log = os.path.join(self.scratch, "watch.stderr")
        self.prom_log = os.path.join(self.scratch, "prometheus.log")
        self.prom_port = None

    # --- processes ------------------------------------------------------------------------------

    def start_scenario(self, name, *sets):
        """A scenario server for the whole test; returns (its target, the stack that stops it)."""
        stack = contextlib.ExitStack()
        self.addCleanup(stack.close)
        port = stack.enter_context(scenario(name, *sets))
        return f"127.0.0.1:{port}", stack

    def start_prometheus(self, watcher_port):
        """Prometheus on a free loopback port, scraping 127.0.0.1:`watcher_port` every second;
        waits until /-/ready, then until it has tried a first scrape (Prometheus hands new
        targets to its scrapers up to 5 s after it loads a configuration: the watcher starts
        after that, so every state it shows is scraped)."""
        config = os.path.join(self.scratch, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                    f"scrape_configs:\n  - job_name: {JOB}\n    metrics_path: /metrics\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{watcher_port}']\n")
        self.prom_port = harness.free_port()
        log = open(self.prom_log, "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(self.scratch, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.prom_port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self.stop, proc)
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                self.fail(f"prometheus exited with {proc.returncode}:\n{_tail(self.prom_log)}")
            if self.scraped_once():
                return
            if time.monotonic() > deadline:
                self.fail(f"prometheus did not try a scrape within 20 s{self.context()}")
            time.sleep(0.1)

    def scraped_once(self):
        """Whether Prometheus is ready and has tried to scrape its one target (up or down)."""
        try:
            with _http.open(self.prom_url("/-/ready"), timeout=2) as r:
                if r.status != 200:
                    return False
            with _http.open(self.prom_url("/api/v1/targets?state=active"), timeout=2) as r:
                targets = json.load(r)["data"]["activeTargets"]
        except (OSError, ValueError, KeyError):
            return False
        return any(t.get("health") in ("up", "down") for t in targets)

    def start_watcher(self, targets, port):
        """`smtpsh watch TARGETS --every 1s --listen 127.0.0.1:PORT`, checking that it serves."""
        log = open(self.watch_log, "wb")
        self.addCleanup(log.close)
        argv = [SMTPSH, "watch", *targets, "--every", "1s", "--listen", f"127.0.0.1:{port}",
                "--dnsbl", "none", "--resolver", "127.0.0.1:1", "--timeout", "2"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                env=harness.base_env(), cwd=harness.REPO_ROOT, start_new_session=True)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(self.stop, proc)
        line = _read_line(proc.stdout, 10 * TIME_SCALE)
        expected = f"serving http://127.0.0.1:{port}/ ({len(targets)} targets)\n"
        if line != expected:
            self.fail(f"smtpsh watch did not start: {line!r}, expected {expected!r}\n"
                      f"{_tail(self.watch_log)}")

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)

    # --- Prometheus's HTTP API ------------------------------------------------------------------

    def prom_url(self, path):
        return f"http://127.0.0.1:{self.prom_port}{path}"

    def query(self, expr):
        """An instant query: the result vector as [(labels, value)]."""
        url = self.prom_url("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        with _http.open(url, timeout=10) as r:
            doc = json.load(r)
        self.assertEqual(doc.get("status"), "success", f"query {expr!r}: {doc}")
        self.assertEqual(doc["data"]["resultType"], "vector", f"query {expr!r}: {doc}")
        return [(sample["metric"], float(sample["value"][1])) for sample in doc["data"]["result"]]

    def eventually(self, expr, what):
        """Polls `expr` (a PromQL filter, e.g. `x == 1`) until it returns a sample; returns the
        first sample's value. Fails after WAIT seconds with what Prometheus and the watcher saw."""
        deadline = time.monotonic() + WAIT * TIME_SCALE
        while True:
            result = self.query(expr)
            if result:
                return result[0][1]
            if time.monotonic() > deadline:
                self.fail(f"{what}: `{expr}` stayed empty for {WAIT * TIME_SCALE:g} s{self.context()}")
            time.sleep(0.25)

    def context(self):
        """What Prometheus scraped, its log, and the watcher's probes, for a failure message."""
        try:
            url = self.prom_url("/api/v1/targets?state=active")
            with _http.open(url, timeout=5) as r:
                targets = [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError", "lastScrape")}
                           for t in json.load(r)["data"]["activeTargets"]]
        except (OSError, ValueError, KeyError) as e:
            targets = repr(e)
        return (f"\n--- prometheus targets: {targets}\n--- prometheus log (tail):\n"
                f"{_tail(self.prom_log, 10)}--- smtpsh watch stderr (tail):\n{_tail(self.watch_log)}")

    # --- the rate limiter -----------------------------------------------------------------------

    def use_up_sessions(self, target, most):
        """Opens sessions to the rate limiter until one is greeted with 421."""
        host, port = target.rsplit(":", 1)
        for _ in range(most):
            with socket.create_connection((host, int(port)), timeout=5) as s:
                greeting = s.makefile("rb").readline().decode("ascii", "replace")
                if greeting.startswith("421 "):
                    return greeting
                self.assertTrue(greeting.startswith("220 "), f"rate_limit greeted {greeting!r}")
                s.sendall(b"QUIT\r\n")
        self.fail(f"rate_limit {target} still greets with 220 after {most} sessions")

    # --- the test -------------------------------------------------------------------------------

    def test_metrics_follow_the_servers(self):
        accept, _ = self.start_scenario("accept")
        limited, _ = self.start_scenario("rate_limit", f"sessions={RATE_LIMIT_SESSIONS}")
        greylist, _ = self.start_scenario("greylist", f"delay={GREYLIST_DELAY}")
        tls_old, _ = self.start_scenario("tls_old")
        dead, dead_server = self.start_scenario("accept")

        # Prometheus first, scraping a port nobody serves yet (up 0), then the watcher there.
        watcher = harness.free_port()
        self.start_prometheus(watcher)
        self.start_watcher([accept, limited, greylist, tls_old, dead], watcher)

        def t(target):
            return f'target="{target}"'

        # --- as started: healthy, healthy, deferring, TLS 1.0/1.1 only, healthy ---------------
        self.eventually(f'up{{job="{JOB}"}} == 1', "Prometheus scrapes the watcher")
        self.eventually(f"smtpsh_probe_success{{{t(accept)},probe=\"diagnose\"}} == 1",
                        "the healthy MX succeeds")
        self.eventually(f'smtpsh_verdict{{{t(accept)},verdict="ok"}} == 1', "the healthy MX is ok")
        self.eventually(f'smtpsh_tls_version_info{{{t(accept)},version=~"TLSv1\\\\.[23]"}} == 1',
                        "the healthy MX negotiates TLS 1.2 or 1.3")
        self.eventually(f'smtpsh_verdict{{{t(limited)},verdict="ok"}} == 1',
                        "the rate limiter is healthy before its sessions are used up")
        self.eventually(f"smtpsh_probe_success{{{t(dead)}}} == 1", "the MX to stop is healthy while it runs")
        self.eventually(f'max_over_time(smtpsh_verdict{{{t(greylist)},verdict="greylisted"}}[1m]) == 1',
                        "the greylister's deferral is seen")
        self.eventually(f'increase(smtpsh_replies_total{{{t(greylist)},stage="rcpt",code="450"}}[1m]) > 0',
                        "the greylister's 450 replies increase")
        self.eventually(f'smtpsh_verdict{{{t(tls_old)},verdict="tls_version_mismatch"}} == 1',
                        "the TLS 1.0/1.1-only server gives tls_version_mismatch")
        self.eventually(f"smtpsh_probe_success{{{t(tls_old)}}} == 0", "the TLS 1.0/1.1-only server fails")
        self.eventually(f"rate(smtpsh_tls_handshake_failures_total{{{t(tls_old)}}}[30s]) > 0",
                        "the TLS 1.0/1.1-only server's handshakes fail")

        # --- the switch: the rate limiter's allowance is used up, the dead MX stops -----------
        greeting = self.use_up_sessions(limited, RATE_LIMIT_SESSIONS + 5)
        self.assertIn("4.7.0", greeting)
        dead_server.close()

        self.eventually(f'smtpsh_verdict{{{t(limited)},verdict="rate_limited"}} == 1',
                        "the rate limiter's verdict turns rate_limited")
        self.eventually(f"smtpsh_probe_success{{{t(limited)}}} == 0", "the rate limiter fails")
        self.eventually(f'smtpsh_verdict{{{t(limited)},verdict="ok"}} == 0',
                        "the rate limiter is no longer ok")
        self.eventually(f'max_over_time(smtpsh_verdict{{{t(limited)},verdict="ok"}}[1m]) == 1',
                        "Prometheus kept the rate limiter's healthy past")
        rate = self.eventually(f'rate(smtpsh_replies_total{{{t(limited)},code="421"}}[30s]) > 0',
                               "a non-zero 421 rate for the rate limiter")
        self.assertGreater(rate, 0)
        self.eventually('sum(rate(smtpsh_replies_total{code="421"}[30s])) > 0',
                        "a non-zero 421 rate over all targets")
        self.eventually(f'smtpsh_replies_total{{{t(limited)},stage="banner",code="421",enhanced="4.7.0"}} > 0',
                        "the 421 is counted at the greeting with its enhanced code")

        self.eventually(f'smtpsh_verdict{{{t(dead)},verdict="connect_refused"}} == 1',
                        "the stopped MX gives connect_refused")
        self.eventually(f"smtpsh_probe_success{{{t(dead)}}} == 0", "the stopped MX fails")
        self.eventually(f"max_over_time(smtpsh_probe_success{{{t(dead)}}}[1m]) == 1",
                        "Prometheus kept the stopped MX's healthy past")

        # --- the greylister's delay is over: it accepts ---------------------------------------
        self.eventually(f'smtpsh_verdict{{{t(greylist)},verdict="ok"}} == 1',
                        "the greylister accepts once its delay is over")
        self.eventually(f"smtpsh_probe_success{{{t(greylist)}}} == 1", "the greylister succeeds")
        self.eventually(f'smtpsh_replies_total{{{t(greylist)},stage="rcpt",code="250"}} > 0',
                        "the greylister's RCPT 250 is counted")

        # --- unaffected by the others, and histograms end to end ------------------------------
        self.eventually(f"smtpsh_probe_success{{{t(accept)}}} == 1", "the healthy MX still succeeds")
        quantile = self.eventually(
            "histogram_quantile(0.9, sum by (le) (rate(smtpsh_step_duration_seconds_bucket[30s])))",
            "the 90th percentile of the step durations")
        self.assertFalse(math.isnan(quantile), "histogram_quantile gave NaN")
        self.assertGreaterEqual(quantile, 0)
        self.assertLessEqual(quantile, 120)
        by_step = self.query("histogram_quantile(0.9, sum by (le, step) "
                             "(rate(smtpsh_step_duration_seconds_bucket[30s])))")
        steps = {labels.get("step") for labels, _ in by_step}
        self.assertTrue({"connect", "banner", "ehlo", "starttls", "mail", "rcpt"} <= steps,
                        f"steps with a quantile: {sorted(map(str, steps))}")


if __name__ == "__main__":
    unittest.main()
