"""`smtpsh verify`: one end-to-end test per reason a loopback setup can produce, and the cases a
lesser verifier gets wrong (a 452 "too many recipients" or a 450 taken for an answer about the
address, a server that allows one session per IP, a tarpit greeting, a dead first MX).

The remote side is the scenario server `verify_mailboxes` (examples/servers/verify_mailboxes.lua;
its parameters are set per test), `busy` and `rate_limit`, Postfix's smtp-sink, or a port where
nothing listens; DNS is NSD with tests/peers/zones (example.test: mx1 127.0.0.1 (and ::1) at
preference 10, mx2 127.0.0.2 and mx3 127.0.0.3 at 20; broken.test answers SERVFAIL). One
--port serves every MX, so a server on 127.0.0.2 only makes the preferred MX dead, and address
literals (alice@[127.0.0.3]) reach one server each. Small --backoff, --budget and --timeout
keep every run to a few seconds; every run is bounded by run_smtpsh's timeout.

    /usr/bin/python3 -m unittest -v tests/e2e/test_verify.py      (SMTPSH=/path/to/smtpsh)
"""

import contextlib
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, run_smtpsh, scenario  # noqa: E402

AIOSMTPD_PEER = os.path.join(harness.REPO_ROOT, "tests", "peers", "aiosmtpd_peer.py")

REACHABLE = {"safe", "risky", "invalid", "unknown"}
REASONS = {
    "deliverable": "safe", "catch_all": "risky", "full_inbox": "risky",
    "mailbox_unknown": "invalid", "disabled": "invalid", "no_mx": "invalid", "null_mx": "invalid",
    "syntax": "invalid",
    "greylisted": "unknown", "rate_limited": "unknown", "server_busy": "unknown",
    "connect_failed": "unknown", "tls_required": "unknown", "timeout": "unknown",
    "rejected_sender": "unknown", "dns_failure": "unknown",
}
# The reasons of a transient answer: asking again later may give another.
TRANSIENT = {"greylisted", "rate_limited", "server_busy"}
FIELDS = {"address", "is_reachable", "reason", "role_account", "mx", "reply", "tries", "elapsed",
          "catch_all"}
# Retries within a second or two: the whole file runs in well under two minutes.
FAST = ("--backoff", "0.2", "--budget", "3", "--timeout", "3")
MAILBOXES = "verify_mailboxes"


@contextlib.contextmanager
def scenario_at(name, host, port, *sets, startup_timeout=10):
    """`smtpsh serve NAME --listen HOST:PORT`: a second server on the port of a first one."""
    argv = [harness.SMTPSH, "serve", name, "--listen", f"{host}:{port}"]
    for item in sets:
        argv += ["--set", item]
    with harness._server(f"scenario {name} on {host}:{port}", argv, [r"listening on .*:(\d+) \("],
                         startup_timeout, env=harness.base_env()) as (got,):
        yield got


def server_counts(host, port):
    """(sessions, RCPTs) the verify_mailboxes server at HOST:PORT has had: its 250 to RCPT
    counts both, so one more session asks it (and is not counted)."""
    with smtplib.SMTP(host, port, timeout=5) as s:
        s.ehlo("counter.test")
        s.mail("counter@example.test")
        code, text = s.rcpt("alice@example.test")
    m = re.search(rb"session (\d+), rcpt (\d+)", text)
    if code != 250 or not m:
        raise AssertionError(f"the server did not count: {code} {text!r}")
    return int(m.group(1)) - 1, int(m.group(2)) - 1


class TestVerify(harness.NsdTestCase):
    def verify(self, *args, stdin=None, timeout=15, json_lines=True):
        """Runs `smtpsh verify [--json] --resolver NSD ARGS`; returns (results, cp). Checks what
        every run must keep: one JSON object a line with the fields and values of the contract,
        and exit 0 exactly when no address stayed unknown."""
        cmd = ["verify", *(["--json"] if json_lines else []), "--resolver", self.resolver,
               *map(str, args)]
        cp = run_smtpsh(cmd, stdin=stdin, timeout=timeout)
        self.assertIn(cp.returncode, (0, 1), describe(cp))
        if not json_lines:
            return None, cp
        results = []
        for line in cp.stdout.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                self.fail(f"not a JSON line: {line!r}{describe(cp)}")
            self.assertIn(doc.get("is_reachable"), REACHABLE, describe(cp))
            self.assertIn(doc.get("reason"), REASONS, describe(cp))
            self.assertEqual(REASONS[doc["reason"]], doc["is_reachable"], describe(cp))
            self.assertIsInstance(doc.get("tries"), int, describe(cp))
            self.assertIsInstance(doc.get("elapsed"), (int, float), describe(cp))
            results.append(doc)
        unknown = any(r["is_reachable"] == "unknown" for r in results)
        self.assertEqual(cp.returncode, 1 if unknown else 0, describe(cp))
        return results, cp

    def by_address(self, results):
        return {r["address"]: r for r in results}

    def assertResult(self, result, cp, reachable, reason, reply=None):
        self.assertEqual((result["is_reachable"], result["reason"]), (reachable, reason),
                         f"{result['address']}{describe(cp)}")
        if reply is not None:
            self.assertIn(reply, result["reply"] or "", describe(cp))

    def check(self, port, addresses, *args, **kw):
        """verify ADDRESSES --port PORT (FAST): the results by address, and the run."""
        results, cp = self.verify(*addresses, "--port", port, *FAST, *args, **kw)
        self.assertEqual([r["address"] for r in results], list(addresses), describe(cp))
        return self.by_address(results), cp

    # --- answers about the mailbox ------------------------------------------------------------

    def test_aiosmtpd_recipient_check(self):
        # An independently written server with a recipient check (aiosmtpd, which offers no
        # PIPELINING: one RCPT at a time) and no catch-all.
        proc = subprocess.Popen([harness.PYTHON, AIOSMTPD_PEER, "--recipients",
                                 "alice@example.test,bob@example.test", "--lifetime", "60"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            line = harness._read_line_with_deadline(proc.stdout, time.monotonic() + 15)
            port = re.match(r"PORT (\d+)", line).group(1)
            got, cp = self.check(port, ["alice@example.test", "nobody@example.test",
                                        "bob@example.test", "postmaster@example.test"])
        finally:
            proc.kill()
            proc.wait(timeout=5)
            proc.stdout.close()
        self.assertResult(got["alice@example.test"], cp, "safe", "deliverable")
        self.assertResult(got["bob@example.test"], cp, "safe", "deliverable")
        self.assertResult(got["nobody@example.test"], cp, "invalid", "mailbox_unknown", reply="5.1.1")
        self.assertResult(got["postmaster@example.test"], cp, "invalid", "mailbox_unknown")
        self.assertEqual(got["postmaster@example.test"]["role_account"], "postmaster")
        self.assertIs(got["alice@example.test"]["catch_all"], False, describe(cp))

    def test_ctrl_c_keeps_what_was_decided(self):
        # One address is decided at once (syntax), the other waits behind a 30 s tarpit
        # greeting; Ctrl-C ends the run cleanly: the decided line is out, the summary says so.
        with scenario(MAILBOXES, "banner_delay=30") as port:
            proc = subprocess.Popen(
                [harness.SMTPSH, "verify", "--json", "--unordered", "--resolver", self.resolver,
                 "--port", str(port), "--timeout", "60", "not-an-address", "alice@example.test"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=harness.merge_env(None), start_new_session=True)
            try:
                time.sleep(1.5 * harness.TIME_SCALE)
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=15 * harness.TIME_SCALE)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        lines = [json.loads(line) for line in out.decode().splitlines()]
        self.assertEqual([(r["address"], r["reason"]) for r in lines], [("not-an-address", "syntax")])
        self.assertEqual(proc.returncode, 1, err.decode())
        self.assertIn("interrupted: 1 of 2 addresses decided", err.decode())

    def test_deliverable(self):
        with scenario(MAILBOXES) as port:
            got, cp = self.check(port, ["alice@example.test"])
        r = got["alice@example.test"]
        self.assertResult(r, cp, "safe", "deliverable", reply="250 2.1.5")
        self.assertEqual(r["mx"], "mx1.example.test", describe(cp))
        self.assertEqual(r["tries"], 1, describe(cp))
        self.assertIsNone(r["role_account"], describe(cp))
        self.assertIs(r["catch_all"], False, describe(cp))
        self.assertExit(cp, 0)

    def test_mailbox_unknown(self):
        with scenario(MAILBOXES) as port:
            got, cp = self.check(port, ["nobody@example.test"])
        self.assertResult(got["nobody@example.test"], cp, "invalid", "mailbox_unknown", reply="550 5.1.1")
        self.assertEqual(got["nobody@example.test"]["mx"], "mx1.example.test", describe(cp))
        self.assertExit(cp, 0)

    def test_disabled(self):
        with scenario(MAILBOXES) as port:
            got, cp = self.check(port, ["disabled@example.test"])
        self.assertResult(got["disabled@example.test"], cp, "invalid", "disabled", reply="550 5.2.1")

    def test_full_inbox(self):
        # 452 4.2.2 and 552 5.2.2: the mailbox exists, mail to it may bounce.
        with scenario(MAILBOXES) as port:
            got, cp = self.check(port, ["full@example.test", "overquota@example.test"])
        self.assertResult(got["full@example.test"], cp, "risky", "full_inbox", reply="452 4.2.2")
        self.assertResult(got["overquota@example.test"], cp, "risky", "full_inbox", reply="552 5.2.2")
        self.assertExit(cp, 0)

    def test_catch_all_scenario(self):
        with scenario(MAILBOXES, "catch_all=1") as port:
            got, cp = self.check(port, ["alice@example.test", "nobody@example.test", "disabled@example.test"])
        for address in ("alice@example.test", "nobody@example.test"):
            self.assertResult(got[address], cp, "risky", "catch_all")
            self.assertIs(got[address]["catch_all"], True, describe(cp))
        # A refusal still says something on a catch-all domain.
        self.assertResult(got["disabled@example.test"], cp, "invalid", "disabled")

    def test_catch_all_smtp_sink(self):
        # Postfix's smtp-sink accepts every recipient.
        with harness.smtp_sink() as port:
            got, cp = self.check(port, ["alice@example.test", "nobody@example.test"])
            # --no-catch-all: no probe, so an accepted address is deliverable.
            plain, cp2 = self.check(port, ["alice@example.test"], "--no-catch-all")
        for r in got.values():
            self.assertResult(r, cp, "risky", "catch_all")
            self.assertIs(r["catch_all"], True, describe(cp))
            self.assertEqual(r["mx"], "mx1.example.test", describe(cp))
        self.assertResult(plain["alice@example.test"], cp2, "safe", "deliverable")
        self.assertIsNot(plain["alice@example.test"].get("catch_all"), True, describe(cp2))

    def test_greylisting_catch_all_is_still_catch_all(self):
        # Every recipient is greylisted once, the random one of the catch-all probe too, then
        # every recipient is accepted: a 450 to the probe says nothing about catch-all, so an
        # unknown local part must not come back safe.
        with scenario(MAILBOXES, "catch_all=1", "grey=*", "grey_delay=1") as port:
            got, cp = self.check(port, ["nobody@example.test", "alice@example.test"])
        for r in got.values():
            self.assertResult(r, cp, "risky", "catch_all")

    # --- answers about the domain -------------------------------------------------------------

    def test_no_mx(self):
        # NXDOMAIN; no MX and no address; an MX whose host has no address.
        addresses = ["x@nope.example.test", "x@nodata.example.test", "x@deadmx.example.test"]
        results, cp = self.verify(*addresses, "--port", harness.free_port(), *FAST)
        for r in results:
            self.assertResult(r, cp, "invalid", "no_mx")
            self.assertEqual(r["tries"], 0, describe(cp))
            self.assertIsNone(r["mx"], describe(cp))
        self.assertIn("NXDOMAIN", self.by_address(results)["x@nope.example.test"]["reply"])
        self.assertExit(cp, 0)

    def test_null_mx(self):
        results, cp = self.verify("x@nullmx.example.test", "--port", harness.free_port(), *FAST)
        self.assertResult(results[0], cp, "invalid", "null_mx")
        self.assertExit(cp, 0)

    def test_dns_failure(self):
        results, cp = self.verify("x@broken.test", "--port", harness.free_port(), *FAST)
        self.assertResult(results[0], cp, "unknown", "dns_failure", reply="SERVFAIL")
        self.assertExit(cp, 1)

    def test_syntax(self):
        # Never taken to DNS or a server: a resolver that does not answer would hang them.
        # The last two also hold what JSON must escape: a quote and a backslash.
        bad = ["no-at-sign", "a..b@example.test", "a@b@example.test", "a@example", ".a@example.test",
               "a b@example.test", 'bad"quote\\x@example.test', '"unclosed\\"@example.test']
        cp = run_smtpsh(["verify", "--json", "--resolver", f"127.0.0.1:{harness.free_port()}",
                         "--timeout", "2", *bad], timeout=15)
        self.assertExit(cp, 0)
        results = [json.loads(line) for line in cp.stdout.splitlines()]
        self.assertEqual([r["address"] for r in results], bad, describe(cp))
        for r in results:
            self.assertResult(r, cp, "invalid", "syntax")
            self.assertEqual(r["tries"], 0, describe(cp))
            self.assertTrue(r["reply"], f"the syntax error says what is wrong{describe(cp)}")

    # --- transient answers: asked again, never taken for invalid ------------------------------

    def test_greylisted_that_clears_is_deliverable(self):
        with scenario(MAILBOXES, "grey_delay=1") as port:
            got, cp = self.check(port, ["grey1@example.test", "alice@example.test"])
        r = got["grey1@example.test"]
        self.assertResult(r, cp, "safe", "deliverable")
        self.assertGreaterEqual(r["tries"], 2, describe(cp))
        self.assertGreaterEqual(r["elapsed"], 0.9, describe(cp))
        self.assertResult(got["alice@example.test"], cp, "safe", "deliverable")
        self.assertExit(cp, 0)

    def test_greylisted_that_never_clears_is_unknown(self):
        # "try again in 1 seconds": asked again within --budget, still 450, then unknown.
        with scenario(MAILBOXES, "grey_delay=never", "grey_say=1") as port:
            got, cp = self.check(port, ["grey1@example.test"], "--budget", "2.5", "--tries", "10")
        r = got["grey1@example.test"]
        self.assertResult(r, cp, "unknown", "greylisted", reply="450 4.2.0")
        self.assertGreaterEqual(r["tries"], 2, describe(cp))
        self.assertExit(cp, 1)
        # "try again in 300 seconds", more than --budget: not waited for, and still unknown.
        with scenario(MAILBOXES, "grey_delay=never") as port:
            got, cp = self.check(port, ["grey1@example.test"], "--budget", "2")
        self.assertResult(got["grey1@example.test"], cp, "unknown", "greylisted", reply="450 4.2.0")

    def test_greylisting_delay_is_read_from_the_words_not_the_address(self):
        # "450 4.2.0 <grey5min@example.test>: Greylisted, please try again in 1 seconds": the
        # delay is 1 s; "5min" is part of the address.
        with scenario(MAILBOXES, "grey_delay=1") as port:
            got, cp = self.check(port, ["grey5min@example.test", "grey2s@example.test"])
        for r in got.values():
            self.assertResult(r, cp, "safe", "deliverable")
        self.assertExit(cp, 0)

    def test_a_450_is_never_invalid(self):
        # 450 4.1.1 "User unknown" (a soft bounce): the words say unknown, the code says ask again.
        with scenario(MAILBOXES) as port:
            got, cp = self.check(port, ["tempfail@example.test", "grey1@example.test"],
                                 "--budget", "1", "--tries", "2")
        for r in got.values():
            self.assertEqual(r["is_reachable"], "unknown", describe(cp))
            self.assertIn(r["reason"], TRANSIENT, describe(cp))
            self.assertTrue(r["reply"].startswith("450 "), describe(cp))
        self.assertExit(cp, 1)

    def test_server_busy(self):
        with scenario("busy") as port:
            got, cp = self.check(port, ["alice@example.test", "bob@example.test"], "--tries", "2")
        for r in got.values():
            self.assertResult(r, cp, "unknown", "server_busy", reply="421 4.3.2")
        self.assertExit(cp, 1)

    def test_rate_limited(self):
        # Every session gets "421 4.7.0 too many sessions from your IP".
        with scenario("rate_limit", "sessions=0") as port:
            got, cp = self.check(port, ["alice@example.test", "bob@example.test"], "--tries", "2")
        for r in got.values():
            self.assertResult(r, cp, "unknown", "rate_limited", reply="421 4.7.0")
        self.assertExit(cp, 1)

    # --- no session: unknown, and final ---------------------------------------------------------

    def test_connect_failed(self):
        got, cp = self.check(harness.free_port(), ["alice@example.test", "bob@example.test"])
        for r in got.values():
            self.assertResult(r, cp, "unknown", "connect_failed", reply="refused")
        self.assertExit(cp, 1)

    def test_tls_required(self):
        # 530 5.7.0 to MAIL over plain text, and STARTTLS that fails: a handshake with bytes
        # that are not TLS, a 454 refusal, or no STARTTLS offered at all.
        for starttls in ("starttls=broken", "starttls=refuse", None):
            sets = ["mail=tls"] + ([starttls] if starttls else [])
            with self.subTest(starttls=starttls), scenario(MAILBOXES, *sets) as port:
                got, cp = self.check(port, ["alice@example.test", "nobody@example.test"])
                for r in got.values():
                    self.assertResult(r, cp, "unknown", "tls_required")
                self.assertExit(cp, 1)

    def test_tls_required_then_starttls_works(self):
        # 530 to plain MAIL, then a STARTTLS that works: asked again over TLS, answered.
        with scenario(MAILBOXES, "mail=tls", "starttls=ok") as port:
            got, cp = self.check(port, ["alice@example.test", "nobody@example.test"])
        self.assertResult(got["alice@example.test"], cp, "safe", "deliverable")
        self.assertResult(got["nobody@example.test"], cp, "invalid", "mailbox_unknown")

    def test_timeout(self):
        # A server that never greets, and one that never answers RCPT.
        for silent in ("banner", "rcpt"):
            with self.subTest(silent=silent), scenario(MAILBOXES, f"silent={silent}") as port:
                got, cp = self.check(port, ["alice@example.test"], "--timeout", "1")
                self.assertResult(got["alice@example.test"], cp, "unknown", "timeout")
                self.assertExit(cp, 1)

    def test_rejected_sender(self):
        with scenario(MAILBOXES, "mail=reject") as port:
            got, cp = self.check(port, ["alice@example.test", "nobody@example.test"],
                                 "--from", "verifier@example.test")
        for r in got.values():
            self.assertResult(r, cp, "unknown", "rejected_sender", reply="550 5.7.1 <verifier@example.test>")
        self.assertExit(cp, 1)

    def test_sender_refused_at_rcpt_is_not_invalid(self):
        # Postfix checks the sender at RCPT (smtpd_delay_reject): "550 5.1.0 <FROM>: Sender
        # address rejected: User unknown ..." is about us, the sender, not about the address.
        with scenario(MAILBOXES, "rcpt_sender=unlisted") as port:
            got, cp = self.check(port, ["alice@example.test", "nobody@example.test"],
                                 "--from", "verifier@example.test")
        for r in got.values():
            self.assertResult(r, cp, "unknown", "rejected_sender", reply="Sender address rejected")
        self.assertExit(cp, 1)

    # --- what a lesser tool gets wrong ---------------------------------------------------------

    def test_too_many_recipients_is_not_an_answer(self):
        # One recipient per envelope: every RCPT after the first gets 452 4.5.3, which is about
        # the envelope, never about the address.
        users = [f"user{i}@example.test" for i in range(1, 13)]
        with scenario(MAILBOXES, "max_rcpts=1") as port:
            got, cp = self.check(port, users + ["nobody@example.test", "disabled@example.test"])
        for address in users:
            self.assertResult(got[address], cp, "safe", "deliverable", reply="250 ")
            self.assertEqual(got[address]["tries"], 1, describe(cp))
        self.assertResult(got["nobody@example.test"], cp, "invalid", "mailbox_unknown")
        self.assertResult(got["disabled@example.test"], cp, "invalid", "disabled")
        self.assertExit(cp, 0)

    def test_envelope_limit_is_learned(self):
        # The same server with 30 addresses: a verifier that learns the limit sends about one
        # RCPT per address (and a few 452s); one that keeps sending a whole batch into each
        # one-recipient envelope sends RCPTs by the square of the list.
        users = [f"user{i}@example.test" for i in range(1, 31)]
        with scenario(MAILBOXES, "max_rcpts=1") as port:
            got, cp = self.check(port, users)
            sessions, rcpts = server_counts("127.0.0.1", port)
        for address in users:
            self.assertResult(got[address], cp, "safe", "deliverable")
        self.assertLessEqual(rcpts, 3 * len(users),
                             f"{rcpts} RCPTs in {sessions} sessions for {len(users)} addresses{describe(cp)}")

    def test_one_session_per_ip_serves_every_address(self):
        # The server lets one session in per client IP; --per-domain 2 wants two. The second gets
        # "421 4.7.0 Too many connections from your IP": the first session serves every address,
        # and the refusal is neither an answer nor a reason to hammer the server.
        users = [f"user{i}@example.test" for i in range(1, 11)]
        with scenario(MAILBOXES, "per_ip=1", "rcpt_delay=0.05") as port:
            got, cp = self.check(port, users, "--per-domain", "2")
            sessions, _ = server_counts("127.0.0.1", port)
        for address in users:
            self.assertResult(got[address], cp, "safe", "deliverable")
        self.assertExit(cp, 0)
        self.assertLessEqual(sessions, len(users),
                             f"{sessions} sessions for {len(users)} addresses{describe(cp)}")

    def test_tarpit_banner_is_waited_for_while_others_answer(self):
        # 127.0.0.2 greets after 2 s, 127.0.0.3 at once, on the same port. With --timeout 5 the
        # tarpit is waited for; with --unordered the other domain's answers come out first.
        with scenario(MAILBOXES, "banner_delay=2", host="127.0.0.2") as port, \
                scenario_at(MAILBOXES, "127.0.0.3", port):
            slow, fast = "alice@[127.0.0.2]", ["alice@[127.0.0.3]", "nobody@[127.0.0.3]"]
            results, cp = self.verify(slow, *fast, "--port", port, "--unordered", "--timeout", "5",
                                      "--backoff", "0.2", "--budget", "3")
        self.assertEqual([r["address"] for r in results], fast + [slow], describe(cp))
        got = self.by_address(results)
        self.assertResult(got[slow], cp, "safe", "deliverable")
        self.assertEqual(got[slow]["mx"], "127.0.0.2", describe(cp))
        self.assertResult(got["alice@[127.0.0.3]"], cp, "safe", "deliverable")
        self.assertResult(got["nobody@[127.0.0.3]"], cp, "invalid", "mailbox_unknown")
        self.assertExit(cp, 0)

    def test_json_lines_in_input_order_by_default(self):
        # The same servers without --unordered: the tarpit's answer first, as in the input.
        with scenario(MAILBOXES, "banner_delay=1", host="127.0.0.2") as port, \
                scenario_at(MAILBOXES, "127.0.0.3", port):
            addresses = ["bob@[127.0.0.2]", "nobody@[127.0.0.3]", "bad@", "alice@[127.0.0.3]",
                         "x@nope.example.test"]
            results, cp = self.verify(*addresses, "--port", port, *FAST)
        self.assertEqual([r["address"] for r in results], addresses, describe(cp))
        self.assertEqual([r["reason"] for r in results],
                         ["deliverable", "mailbox_unknown", "syntax", "deliverable", "no_mx"], describe(cp))

    def test_dead_first_mx_falls_back(self):
        # Only 127.0.0.2 (mx2) listens: mx1 (127.0.0.1, ::1) refuses, mx3 too.
        with scenario(MAILBOXES, host="127.0.0.2") as port:
            got, cp = self.check(port, ["alice@example.test", "nobody@example.test"])
        self.assertResult(got["alice@example.test"], cp, "safe", "deliverable")
        self.assertResult(got["nobody@example.test"], cp, "invalid", "mailbox_unknown")
        for r in got.values():
            self.assertEqual(r["mx"], "mx2.example.test", describe(cp))

    # --- roles -------------------------------------------------------------------------------

    def test_role_accounts(self):
        addresses = ["postmaster@example.test", "Postmaster+bounces@example.test", "abuse@example.test",
                     "no-reply@example.test", "alice@example.test"]
        with scenario(MAILBOXES) as port:
            got, cp = self.check(port, addresses)
        self.assertEqual(got["postmaster@example.test"]["role_account"], "postmaster", describe(cp))
        self.assertResult(got["postmaster@example.test"], cp, "safe", "deliverable")
        self.assertEqual(got["Postmaster+bounces@example.test"]["role_account"], "postmaster", describe(cp))
        self.assertEqual(got["abuse@example.test"]["role_account"], "abuse", describe(cp))
        self.assertEqual(got["no-reply@example.test"]["role_account"], "noreply", describe(cp))
        self.assertIsNone(got["alice@example.test"]["role_account"], describe(cp))
        # A role of a syntax error is still no address.
        results, cp = self.verify("postmaster@", "--port", harness.free_port(), *FAST)
        self.assertResult(results[0], cp, "invalid", "syntax")

    # --- input, output, exit status -----------------------------------------------------------

    def test_result_fields(self):
        with scenario(MAILBOXES) as port:
            got, cp = self.check(port, ["alice@example.test", "nobody@example.test", "bad@"])
        for r in got.values():
            self.assertEqual(set(r), FIELDS, f"{r['address']}{describe(cp)}")

    def test_input_file_with_comments_and_blank_lines(self):
        path = os.path.join(harness.scratch_dir(), "list.txt")
        with open(path, "w") as f:
            f.write("# customers, exported today\n\nalice@example.test\r\n   nobody@example.test  \n"
                    "  # indented comment\n\n\tfull@example.test\n")
        with scenario(MAILBOXES) as port:
            results, cp = self.verify("--input", path, "--port", port, *FAST)
        self.assertEqual([(r["address"], r["reason"]) for r in results],
                         [("alice@example.test", "deliverable"), ("nobody@example.test", "mailbox_unknown"),
                          ("full@example.test", "full_inbox")], describe(cp))
        self.assertExit(cp, 0)

    def test_many_addresses_as_arguments(self):
        users = [f"user{i}@example.test" for i in range(1, 61)]
        with scenario(MAILBOXES) as port:
            got, cp = self.check(port, users)
        for address in users:
            self.assertResult(got[address], cp, "safe", "deliverable")
        self.assertExit(cp, 0)

    def test_bulk_from_stdin(self):
        # 300 addresses of one domain, one in three unknown: few sessions, every answer right.
        addresses = [f"{'user' if i % 3 else 'nobody'}{i}@example.test" for i in range(1, 301)]
        with scenario(MAILBOXES) as port:
            results, cp = self.verify("--port", port, *FAST, stdin="\n".join(addresses) + "\n", timeout=30)
            sessions, _ = server_counts("127.0.0.1", port)
        self.assertEqual([r["address"] for r in results], addresses, describe(cp))
        for r in results:
            if r["address"].startswith("user"):
                self.assertResult(r, cp, "safe", "deliverable")
            else:
                self.assertResult(r, cp, "invalid", "mailbox_unknown")
        self.assertExit(cp, 0)
        self.assertLessEqual(sessions, 4, describe(cp))

    def test_stdin(self):
        with scenario(MAILBOXES) as port:
            results, cp = self.verify("--port", port, *FAST,
                                      stdin="# from stdin\nalice@example.test\n\nx@nullmx.example.test\n")
        self.assertEqual([(r["address"], r["reason"]) for r in results],
                         [("alice@example.test", "deliverable"), ("x@nullmx.example.test", "null_mx")],
                         describe(cp))

    def test_resume_skips_answered_addresses(self):
        d = harness.scratch_dir()
        first = os.path.join(d, "first.jsonl")
        addresses = ["alice@example.test", "nobody@example.test", "x@broken.test", "bad@"]
        with scenario(MAILBOXES) as port:
            results, cp = self.verify(*addresses, "--port", port, *FAST)
            self.assertEqual([r["is_reachable"] for r in results], ["safe", "invalid", "unknown", "invalid"])
            with open(first, "w") as f:
                f.write(cp.stdout)
            cp_first_lines = cp.stdout.splitlines()
            # Only the unknown one is asked again.
            results, cp = self.verify(*addresses, "--resume", first, "--port", port, *FAST)
            self.assertEqual([r["address"] for r in results], ["x@broken.test"], describe(cp))
            self.assertExit(cp, 1)
            # Everything answered: nothing to ask, exit 0.
            answered = os.path.join(d, "answered.jsonl")
            with open(answered, "w") as f:
                f.write("".join(line + "\n" for line in cp_first_lines if "broken.test" not in line))
            results, cp = self.verify("alice@example.test", "nobody@example.test", "--resume", answered,
                                      "--port", port, *FAST)
            self.assertEqual(results, [], describe(cp))
            self.assertExit(cp, 0)

    def test_table_output(self):
        with scenario(MAILBOXES) as port:
            _, cp = self.verify("alice@example.test", "nobody@example.test", "x@broken.test",
                                "--port", port, *FAST, json_lines=False)
        self.assertExit(cp, 1)
        lines = cp.stdout.splitlines()
        self.assertEqual(len(lines), 4, describe(cp))
        self.assertEqual(lines[0].split(), ["address", "result", "reason", "mx", "reply"], describe(cp))
        self.assertEqual(lines[1].split()[:4], ["alice@example.test", "safe", "deliverable", "mx1.example.test"])
        self.assertEqual(lines[2].split()[:4], ["nobody@example.test", "invalid", "mailbox_unknown",
                                                "mx1.example.test"])
        self.assertIn("550 5.1.1", lines[2])
        self.assertEqual(lines[3].split()[:4], ["x@broken.test", "unknown", "dns_failure", "-"])
        # Columns line up: the result column starts at the same place on every line.
        starts = {line.index(word) for line, word in zip(lines, ("result", "safe", "invalid", "unknown"))}
        self.assertEqual(len(starts), 1, describe(cp))

    def test_exit_status(self):
        with scenario(MAILBOXES) as port:
            # Every address answered, whatever the answer: 0.
            _, cp = self.verify("alice@example.test", "nobody@example.test", "full@example.test", "bad@",
                                "x@nullmx.example.test", "--port", port, *FAST)
            self.assertExit(cp, 0)
            # One unknown among them: 1.
            _, cp = self.verify("alice@example.test", "x@broken.test", "--port", port, *FAST)
            self.assertExit(cp, 1)

    def test_bad_usage(self):
        d = harness.scratch_dir()
        cases = [
            (["--concurrency", "0", "a@example.test"], None, "--concurrency must be at least 1"),
            (["--per-domain", "0", "a@example.test"], None, "--per-domain must be at least 1"),
            (["--tries", "0", "a@example.test"], None, "--tries must be at least 1"),
            (["--input", os.path.join(d, "missing.txt")], None, "--input"),
            (["--input", d], None, "--input"),                       # a directory
            ([], None, "no addresses"),                              # stdin at end of file
            ([], "# only a comment\n\n", "no addresses"),
            (["--resume", os.path.join(d, "missing.jsonl"), "a@example.test"], None, "--resume"),
            (["--resume", d, "a@example.test"], None, "--resume"),     # a directory
            (["--bogus", "a@example.test"], None, "--bogus"),
        ]
        for args, stdin, words in cases:
            with self.subTest(args=args, stdin=stdin):
                cp = run_smtpsh(["verify", "--resolver", f"127.0.0.1:{harness.free_port()}", *args],
                                stdin=stdin, timeout=10)
                self.assertOneLineError(cp, 2, "smtpsh verify: ")
                self.assertIn(words, cp.stderr)
                self.assertEqual(cp.stdout, "", describe(cp))


if __name__ == "__main__":
    unittest.main()
