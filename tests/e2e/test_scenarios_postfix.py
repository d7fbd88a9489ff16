"""The scenario servers (examples/servers/) against a real sending MTA: a private Postfix
(tests/peers/postfix_client.py) delivers one message to each scenario, and each case asserts
what Postfix itself logs: the reaction a user of a real MTA sees (deferred, then delivered;
bounced; the step at which the connection was lost).

Every scenario gets its own server and recipient domain; every message is submitted in
setUpClass, so the scenarios run at once and each case only waits for its lines. Postfix
retries about every second and times out each step after 3 s (postfix_client.FAST). Needs
root and Postfix (skipped otherwise).

    /usr/bin/python3 -m unittest -v tests.e2e.test_scenarios_postfix      (SMTPSH=/path/to/smtpsh)
"""

import contextlib
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO_ROOT, TIME_SCALE, SmtpshTestCase, scenario  # noqa: E402

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "peers"))
from postfix_client import PostfixClient  # noqa: E402

SENDER = "sender@sender.test"  # bounces to it are discarded by the instance
GREY_DELAY = 2
WINDOW = 3
SLOW_DELAY = 10  # well over the instance's 3 s smtp_helo_timeout, which covers the greeting
# A sender that refuses TLS before 1.2 (Postfix's own default still allows TLS 1.0).
TLS12 = "may protocols=>=TLSv1.2"

# recipient domain: (scenario, its --set values, the TLS policy Postfix applies to it)
SCENARIOS = {
    "accept.test": ("accept", (), None),
    "greylist.test": ("greylist", (f"delay={GREY_DELAY}",), None),
    "busy.test": ("busy", (), None),
    "drop-banner.test": ("drop_before_banner", (), None),
    "drop-ehlo.test": ("drop_at", ("at=ehlo",), None),
    "drop-rcpt.test": ("drop_at", ("at=rcpt",), None),
    "drop-dot.test": ("drop_at", ("at=dot",), None),
    "reject.test": ("reject", (), None),
    "ratelimit.test": ("rate_limit", ("sessions=1", f"window={WINDOW}"), None),
    "tlsold.test": ("tls_old", (), None),
    "tlsold-strict.test": ("tls_old", (), TLS12),
    "tlsbroken.test": ("tls_broken", (), None),
    "slow.test": ("slow", (f"delay={SLOW_DELAY}",), None),
}

HOST = r"127\.0\.0\.1\[127\.0\.0\.1\]"
WAIT = 20 * TIME_SCALE


def rcpt(domain, user="user"):
    return f"{user}@{domain}"


class TestScenariosUnderPostfix(SmtpshTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pf = PostfixClient()  # skips the class before any server starts
        cls.stack = contextlib.ExitStack()
        try:
            cls.ports = {}
            for domain, (name, sets, tls) in SCENARIOS.items():
                cls.ports[domain] = cls.stack.enter_context(scenario(name, *sets))
                pf.route(domain, cls.ports[domain], tls_policy=tls)
            cls.pf = cls.stack.enter_context(pf)
            cls.queue_ids = {d: cls.pf.send(SENDER, rcpt(d), subject=d) for d in SCENARIOS}
            # Postfix may carry mail that piles up for one destination over one connection:
            # sent after the first delivery, the second message needs a session of its own.
            cls.pf.wait_status(rcpt("ratelimit.test"), "sent", WAIT)
            cls.pf.send(SENDER, rcpt("ratelimit.test", "second"), subject="second")
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        super().tearDownClass()

    def first_status(self, domain, user="user"):
        return self.pf.wait_status(rcpt(domain, user), timeout=WAIT)

    def assertStatus(self, st, status, dsn, text):
        """`st` (a parsed status line) has this status and DSN, and its text matches `text` (a
        regex, whole)."""
        self.assertEqual((st["status"], st["dsn"]), (status, dsn), st["line"])
        self.assertRegex(st["text"], "^" + text + "$", st["line"])

    def relay(self, domain):
        return f"127.0.0.1[127.0.0.1]:{self.ports[domain]}"

    def tls_line(self, domain):
        """The "TLS connection established" line for this domain's server, or None."""
        rx = re.compile(rf"TLS connection established to {HOST}:{self.ports[domain]}: (.*)$")
        return next(filter(None, map(rx.search, self.pf.log_lines())), None)

    # ----------------------------------------------------------------------------------------

    def test_accept_delivers_over_tls(self):
        st = self.pf.wait_status(rcpt("accept.test"), timeout=WAIT)
        self.assertStatus(st, "sent", "2.0.0", r"250 2\.0\.0 Ok: queued as \w+")
        self.assertEqual(st["relay"], self.relay("accept.test"))
        # "Untrusted": a self-signed certificate, and Postfix has no CA to check it with.
        self.pf.wait_for(rf"Untrusted TLS connection established to {HOST}:"
                         rf"{self.ports['accept.test']}: TLSv1\.[23] with cipher ", WAIT)

    def test_greylist_deferred_then_sent(self):
        to = rcpt("greylist.test")
        self.assertStatus(self.first_status("greylist.test"), "deferred", "4.7.1",
                          rf"host {HOST} said: 450 4\.7\.1 <{re.escape(to)}>: Recipient address "
                          r"rejected: Greylisted, see \S+ \(in reply to RCPT TO command\)")
        sent = self.pf.wait_status(to, "sent", WAIT)
        self.assertGreaterEqual(float(sent["delay"]), GREY_DELAY - 0.1, sent["line"])

    def test_busy_deferred_at_greeting(self):
        self.assertStatus(self.first_status("busy.test"), "deferred", "4.3.2",
                          rf"host {HOST} refused to talk to me: 421 4\.3\.2 mx\.busy\.test "
                          r"Service not available, too busy, try again later")

    def test_drop_before_banner(self):
        self.assertStatus(self.first_status("drop-banner.test"), "deferred", "4.4.2",
                          rf"lost connection with {HOST} while receiving the initial server "
                          r"greeting")

    def test_drop_at_each_step(self):
        for domain, step in (("drop-ehlo.test", "performing the EHLO handshake"),
                             ("drop-rcpt.test", "sending RCPT TO"),
                             # Postfix cannot know whether the server took the message.
                             ("drop-dot.test", "sending end of data -- message may be sent "
                                               "more than once")):
            with self.subTest(domain=domain):
                self.assertStatus(self.first_status(domain), "deferred", "4.4.2",
                                  rf"lost connection with {HOST} while {step}")

    def test_reject_bounced(self):
        to = rcpt("reject.test")
        self.assertStatus(self.first_status("reject.test"), "bounced", "5.1.1",
                          rf"host {HOST} said: 550 5\.1\.1 <{re.escape(to)}>: Recipient address "
                          r"rejected: User unknown in virtual mailbox table "
                          r"\(in reply to RCPT TO command\)")
        self.pf.wait_for(rf"postfix/bounce\[\d+\]: {self.queue_ids['reject.test']}: sender "
                         r"non-delivery notification: \w+", WAIT)

    def test_rate_limit_deferred_within_window_then_sent(self):
        self.assertEqual(self.first_status("ratelimit.test")["status"], "sent")
        self.assertStatus(self.first_status("ratelimit.test", "second"), "deferred", "4.7.0",
                          rf"host {HOST} refused to talk to me: 421 4\.7\.0 mx\.ratelimit\.test "
                          rf"Error: too many sessions from your IP \(1 in {WINDOW} s\), "
                          r"try again in \d+ seconds")
        sent = self.pf.wait_status(rcpt("ratelimit.test", "second"), "sent", WAIT)
        # Sent once the first session is WINDOW s old; this one came just after that session.
        self.assertGreaterEqual(float(sent["delay"]), WINDOW - 1, sent["line"])

    def test_tls_old_default_postfix_negotiates_tls11(self):
        # Postfix 3.7's default smtp_tls_protocols (>=TLSv1) with Debian 12's OpenSSL still
        # speaks TLS 1.1: the "version mismatch" of tls_old is one only for senders that
        # exclude TLS < 1.2 (the strict case below).
        st = self.pf.wait_status(rcpt("tlsold.test"), timeout=WAIT)
        self.assertStatus(st, "sent", "2.0.0", r"250 2\.0\.0 Ok: queued as \w+")
        line = self.tls_line("tlsold.test")
        self.assertIsNotNone(line, self.pf.log_tail())
        self.assertRegex(line.group(1), r"^TLSv1\.1 with cipher ")

    def test_tls_old_strict_sender_fails_then_falls_back_to_plaintext(self):
        self.tls_failure_then_plaintext("tlsold-strict.test", "tlsv1 alert protocol version")

    def test_tls_broken_fails_then_falls_back_to_plaintext(self):
        self.tls_failure_then_plaintext("tlsbroken.test", "wrong version number")

    def tls_failure_then_plaintext(self, domain, openssl_error):
        """With `may`, Postfix 3.7 defers a message on a failed handshake while it has been
        queued for less than minimal_backoff_time; at the next try it logs the failure again
        and delivers over a new plaintext connection."""
        # Logged after the handshake's lines, by the same process.
        self.assertStatus(self.first_status(domain), "deferred", "4.7.5",
                          r"Cannot start TLS: handshake failure")
        lines = self.pf.log_lines()
        rx = re.compile(rf"postfix/smtp\[(\d+)\]: SSL_connect error to {HOST}:"
                        rf"{self.ports[domain]}: -1$")
        at = next((i for i, line in enumerate(lines) if rx.search(line)), None)
        self.assertIsNotNone(at, f"no SSL_connect error line\n{self.pf.log_tail()}")
        # OpenSSL's reason: the next line of the same smtp process.
        tag = f"smtp[{rx.search(lines[at]).group(1)}]: "
        reason = next((line for line in lines[at + 1:] if tag in line), "")
        self.assertRegex(reason, rf"warning: TLS library problem: .*:{re.escape(openssl_error)}:")
        sent = self.pf.wait_status(rcpt(domain), "sent", WAIT)
        self.assertRegex(sent["text"], r"^250 2\.0\.0 Ok: queued as \w+$")
        qid = self.queue_ids[domain]
        self.assertIn(f"{qid}: Cannot start TLS: handshake failure",
                      "\n".join(self.pf.lines_for(qid)))
        self.assertIsNone(self.tls_line(domain), "delivered in plaintext")

    def test_slow_greeting_times_out(self):
        st = self.first_status("slow.test")
        self.assertStatus(st, "deferred", "4.4.2",
                          rf"conversation with {HOST} timed out while receiving the initial "
                          r"server greeting")
        # delays=a/b/c/d: c, the connection set-up, is the greeting timeout.
        self.assertGreaterEqual(float(st["delays"].split("/")[2]), 2.5, st["line"])

    def test_nothing_left_loopback(self):
        self.first_status("accept.test")
        relays = {s["relay"] for s in self.pf.status_lines()}
        self.assertTrue(relays, self.pf.log_tail())
        for relay in relays:
            self.assertRegex(relay, r"^(127\.0\.0\.1\[127\.0\.0\.1\]:\d+|none)$")


if __name__ == "__main__":
    unittest.main()
