"""`smtpsh diagnose` live on a terminal, and its timing waterfall.

On a terminal each step shows as it ends and a retry's wait counts down on one rewritten line;
through a pipe, or with --json, the output is the report alone, as before. The remote side is
the greylist scenario server (RCPT gets 450 4.7.1 for its whole run), DNS is NSD with
tests/peers/zones; every address and port is loopback and the test's own.

    /usr/bin/python3 -m unittest -v tests/e2e/test_live.py      (SMTPSH=/path/to/smtpsh)
"""

import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Repl, describe, run_smtpsh, scenario  # noqa: E402

BACKOFF = 3  # seconds of the retry's wait: long enough to count down, short for a test
COUNTDOWN = r"rcpt: 450 4\.7\.1.*?; retrying in (\d+) s \(1 of 1\), Ctrl-C to stop"
# One line of the report as it always was: the header, a check, the verdict, evidence, advice.
REPORT_LINE = re.compile(r"smtpsh diagnose \S+|  (ok  |warn|fail|skip)  \S.*|verdict: .*|evidence:|  [SC!] .*|advice: .*")
# A row of the waterfall: name, the bar area between '|', the duration.
BAR_ROW = r"\n  {name} +\|(?P<bar>[ #.]+)\| +\d+(?:\.\d)? m?s\n"
NO_COLUMNS = {"COLUMNS": None, "NO_COLOR": "1"}


def alive(term):
    """Whether the program in the terminal still runs (reaped, with its status kept, if not)."""
    pid, status = os.waitpid(term.pid, os.WNOHANG)
    if pid:
        term.status = os.waitstatus_to_exitcode(status)
        return False
    return True


def drain(term, timeout=5.0):
    """Reads what the terminal still holds after its program ended, until end of file."""
    deadline = time.monotonic() + timeout * harness.TIME_SCALE
    while time.monotonic() < deadline and term._read_some(0.2):
        pass


class TestLive(harness.NsdTestCase):
    def args(self, port, *extra):
        return ["diagnose", "postmaster@example.test", "--port", str(port), "--source", "127.0.0.1",
                "--resolver", self.resolver, "--timeout", "3", "--dnsbl", "dnsbl.test",
                "--retries", "1", "--backoff", str(BACKOFF), *extra]

    def test_steps_show_as_they_end_and_the_wait_counts_down(self):
        with scenario("greylist", "delay=600") as port, Repl(self.args(port), env=NO_COLUMNS) as term:
            term.expect(r"smtpsh diagnose postmaster@example\.test\n", timeout=10)
            term.expect(r"(?m)^ +\d+\.\d\d s  dns +MX example\.test: 10 mx1\.example\.test", timeout=10)
            term.expect(r"(?m)^ +\d+\.\d\d s  rcpt +450 4\.7\.1", timeout=15)
            rcpt_seen = time.monotonic()
            self.assertTrue(alive(term), f"the rcpt line came only at the end: {term.text()!r}")
            first = int(re.search(COUNTDOWN, term.expect(COUNTDOWN, timeout=5)).group(1))
            self.assertTrue(alive(term), "the countdown came only at the end")
            second = int(re.search(COUNTDOWN, term.expect(COUNTDOWN, timeout=3)).group(1))
            self.assertTrue(alive(term), "the countdown was not rewritten during the wait")
            self.assertLess(second, first, "the countdown counts down")
            # After the wait: the retry's session, then the report, then the waterfall (the
            # wait was over a second, so it is drawn without --timing).
            term.expect(r"retry 1: rcpt +450 4\.7\.1", timeout=15)
            term.expect(r"verdict: greylisted \(at rcpt\), transient\n", timeout=15)
            term.expect(r"timing:\n(?:.*\n)*? +0 +\d+\.\d s\n", timeout=10)
            ended = time.monotonic()
            self.assertEqual(term.wait_exit(timeout=10), 1)
            drain(term)
        self.assertGreater(ended - rcpt_seen, BACKOFF * 0.8, "the report came before the wait was over")
        self.assertIn(b"\r\x1b[K", term.raw, "the countdown is rewritten in place")
        text = term.text()
        counts = [int(n) for n in re.findall(r"retrying in (\d+) s", text)]
        self.assertEqual(counts, sorted(counts, reverse=True), text)
        self.assertTrue(set(counts) <= set(range(1, BACKOFF + 2)), counts)
        # The countdown is cleared before the next step's line is written.
        self.assertRegex(term.raw, rb"Ctrl-C to stop\r\x1b\[K +\d+\.\d\d s  retry 1: connect ")
        wait = re.search(BAR_ROW.format(name="wait"), text)
        self.assertIsNotNone(wait, text)
        self.assertRegex(wait.group("bar"), r"^ *\.{10,} *$")
        for name in ("dns", "connect", "banner", "ehlo", "mail", "rcpt", r"retry 1"):
            self.assertRegex(text, BAR_ROW.format(name=name).replace("[ #.]+", "[ ]*#+[ ]*"), name)

    def test_json_on_a_terminal_stays_one_object(self):
        with scenario("greylist", "delay=600") as port, Repl(self.args(port, "--json"), env=NO_COLUMNS) as term:
            status = term.wait_exit(timeout=30)
            drain(term)
        self.assertEqual(status, 1, term.raw)
        self.assertNotIn(b"\x1b", term.raw)
        self.assertNotIn(b"retrying in", term.raw)
        doc = json.loads(term.raw.decode().replace("\r\n", "\n"))
        self.assertEqual(doc["verdict"], "greylisted")
        self.assertNotIn("timing", doc)

    def test_a_pipe_gets_the_report_alone_and_the_trace_stays_on_stderr(self):
        with scenario("greylist", "delay=600") as port:
            cp = run_smtpsh(self.args(port, "--trace"), timeout=60)
        self.assertEqual(cp.returncode, 1, describe(cp))
        for bad in ("\x1b", "\r", "retrying in", "Ctrl-C", "timing:"):
            self.assertNotIn(bad, cp.stdout, describe(cp))
        lines = cp.stdout.splitlines()
        self.assertEqual(lines[0], "smtpsh diagnose postmaster@example.test", describe(cp))
        for line in lines:
            self.assertRegex(line, REPORT_LINE, describe(cp))
        self.assertTrue(lines[-1].startswith("advice: "), describe(cp))
        self.assertIn("-> RCPT TO:<postmaster@example.test>", cp.stderr, describe(cp))
        self.assertNotIn("-> RCPT TO", cp.stdout, describe(cp))

    def test_timing_draws_the_waterfall(self):
        with scenario("accept") as port:
            cp = run_smtpsh(self.args(port, "--timing"), timeout=60)
        self.assertEqual(cp.returncode, 0, describe(cp))
        report, _, timing = cp.stdout.partition("timing:\n")
        self.assertTrue(timing, f"no waterfall{describe(cp)}")
        for line in report.splitlines():
            self.assertRegex(line, REPORT_LINE, describe(cp))
        rows = timing.splitlines()
        for name in ("dns", "connect", "banner", "ehlo", "starttls", "mail", "rcpt", "session 2", "dnsbl"):
            self.assertRegex("\n" + timing, BAR_ROW.format(name=name).replace("[ #.]+", "[ ]*#+[ ]*"),
                             f"{name}{describe(cp)}")
        for row in rows[:-1]:
            self.assertEqual(len(row), 80, row)
            self.assertRegex(row, r"^[ -~]*$", "plain ASCII")
        self.assertRegex(rows[-1], r"^ +0 +\d+ ms$|^ +0 +\d+\.\d s$")
        # The bars run left to right in order: each row starts no earlier than the one above.
        starts = [row.index("|") + 1 + re.search(r"[#.]", row.split("|")[1]).start() for row in rows[:-1]]
        self.assertEqual(starts, sorted(starts), timing)

    def test_timing_is_for_people(self):
        cp = run_smtpsh(["diagnose", "127.0.0.1:25", "--timing", "--json"])
        self.assertOneLineError(cp, 2, "smtpsh diagnose: --timing")

    def test_help_names_timing_with_its_default_and_an_example(self):
        cp = run_smtpsh(["diagnose", "--help"])
        self.assertEqual(cp.returncode, 0, describe(cp))
        self.assertRegex(cp.stdout, r"\n  --timing +.*waterfall.*\[default: off")
        self.assertRegex(cp.stdout, r"\nexamples?:\n(  .*\n)*  smtpsh diagnose \S+ --timing\n")


if __name__ == "__main__":
    unittest.main()
