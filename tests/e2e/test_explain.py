"""smtpsh explain end to end: the command line (text as arguments or on stdin, --json, a text it
cannot read), and the real thing: a private Postfix (tests/peers/postfix_client.py) delivers to
scenario servers, and explain reads Postfix's own log lines about each and must name the
scenario's verdict, offline from the text alone and live, probing the same server again (the
scenario servers are still up) with NSD as the resolver.

    /usr/bin/python3 -m unittest -v tests.e2e.test_explain      (SMTPSH=/path/to/smtpsh)
"""

import contextlib
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO_ROOT, TIME_SCALE, NsdTestCase, SmtpshTestCase, describe, run_smtpsh, scenario  # noqa: E402

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "peers"))
from postfix_client import PostfixClient  # noqa: E402

CORPUS = os.path.join(REPO_ROOT, "tests", "explain", "corpus")


def sample(name):
    with open(os.path.join(CORPUS, name)) as f:
        return f.read()


class TestExplainCommand(SmtpshTestCase):
    def test_text_as_arguments_for_people(self):
        cp = run_smtpsh(["explain", "--offline", sample("postfix_greylist_rcpt.log")])
        self.assertExit(cp, 1)
        out = cp.stdout
        self.assertIn("understood (postfix; 1 of 1 lines):", out)
        self.assertRegex(out, r"(?m)^  recipient +user@greylist\.test \(domain greylist\.test\)$")
        self.assertRegex(out, r"(?m)^  remote host +127\.0\.0\.1$")
        self.assertRegex(out, r"(?m)^  port +39919$")
        self.assertRegex(out, r"(?m)^  stage +rcpt \(RCPT TO\)$")
        self.assertRegex(out, r"(?m)^  enhanced code +4\.7\.1: temporary failure: delivery not authorized")
        self.assertRegex(out, r"(?m)^meaning: .*greylist", )
        self.assertRegex(out, r"(?m)^the text says: greylisted \(at rcpt\), transient$")
        self.assertRegex(out, r"(?m)^verdict: greylisted \(at rcpt\), transient$")
        self.assertRegex(out, r"(?m)^  log: .*status=deferred")
        self.assertNotIn("reproduces", out)  # --offline: nothing was probed

    def test_a_whole_bounce_on_stdin_as_json(self):
        cp = run_smtpsh(["explain", "--offline", "--json"], stdin=sample("dsn_postfix_bounce.eml"))
        self.assertExit(cp, 1)
        doc = json.loads(cp.stdout)
        self.assertEqual(doc["understood"]["recipient"], "user@reject.example")
        self.assertEqual(doc["understood"]["stage"], "rcpt")
        self.assertEqual(doc["understood"]["code"], 550)
        self.assertEqual(doc["code_meaning"], "permanent failure: bad destination mailbox address (the mailbox does not exist)")
        self.assertEqual(doc["verdict"]["verdict"], "rejected")
        self.assertIsNone(doc["reproduces"])
        self.assertEqual(doc["sources"], ["dsn"])

    def test_a_delivery_exits_0(self):
        cp = run_smtpsh(["explain", "--offline", "--json"], stdin=sample("postfix_sent_tls.log"))
        self.assertExit(cp, 0)
        doc = json.loads(cp.stdout)
        self.assertEqual(doc["verdict"]["verdict"], "ok")
        self.assertEqual(doc["understood"]["tls_version"], "TLSv1.3")

    def test_a_text_that_says_too_little_gets_no_verdict(self):
        cp = run_smtpsh(["explain", "--offline"], stdin=sample("exchange_socketerror.txt"))
        self.assertExit(cp, 1)
        self.assertRegex(cp.stdout, r"(?m)^the text says: no verdict; it does not say the step where the connection dropped")
        self.assertNotRegex(cp.stdout, r"(?m)^verdict:")

    def test_text_it_cannot_read_is_said_so_in_one_line(self):
        cp = run_smtpsh(["explain", "--offline"], stdin=sample("not_understood.txt"))
        self.assertOneLineError(cp, 2, "smtpsh explain: could not understand this text")
        self.assertIn("recognised: nothing", cp.stderr)
        self.assertEqual(cp.stdout, "")
        cp = run_smtpsh(["explain", "--json"], stdin="Dec  2 10:00:00 mail postfix/smtp[1]: SSL_connect error to x[192.0.2.1]:25: -1\n")
        self.assertExit(cp, 2)
        doc = json.loads(cp.stdout)
        self.assertIsNone(doc["understood"])
        self.assertEqual(doc["recognised"], ["postfix"])

    def test_bad_usage(self):
        cp = run_smtpsh(["explain", "--helo", "a b", "x"])
        self.assertOneLineError(cp, 2, "smtpsh explain: --helo must not hold spaces")
        cp = run_smtpsh(["explain", "--source", "not-an-address", "550 5.1.1 x"])
        self.assertExit(cp, 2)


# Each scenario: its server, the domain Postfix routes to it, Postfix's TLS policy for it, and
# the verdict explain must name, from the log alone and live.
SCENARIOS = {
    "greylist.test": (("greylist", "delay=600"), None, "greylisted"),
    "busy.test": (("busy",), None, "server_busy"),
    "drop-ehlo.test": (("drop_at", "at=ehlo"), None, "dropped_mid_session"),
    "tls10.test": (("tls_old", "max=tls1"), "may protocols=>=TLSv1.2", "tls_version_mismatch"),
    "reject.test": (("reject",), None, "rejected"),
    "silent.test": (("slow", "delay=600"), None, "slow_server"),
    "drop-banner.test": (("drop_before_banner",), None, "dropped_before_banner"),
}
WAIT = 20 * TIME_SCALE


class TestExplainPostfixLogs(NsdTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pf = PostfixClient()  # skips the class (not root, no Postfix) before anything starts
        cls.servers = contextlib.ExitStack()
        try:
            cls.ports = {}
            for domain, (server, tls, _) in SCENARIOS.items():
                cls.ports[domain] = cls.servers.enter_context(scenario(*server[:1], *server[1:]))
                pf.route(domain, cls.ports[domain], tls_policy=tls)
            cls.pf = cls.servers.enter_context(pf)
            for domain in SCENARIOS:
                cls.pf.send("sender@sender.test", f"user@{domain}", subject=domain)
            cls.status = {d: cls.pf.wait_status(f"user@{d}", timeout=WAIT) for d in SCENARIOS}
        except BaseException:
            cls.servers.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.servers.close()
        super().tearDownClass()

    def log_about(self, domain):
        """Postfix's lines about the first try for DOMAIN, as a user would paste them: the
        status line, and before it the lines its smtp process logged for that connection
        (the TLS library's reason for a failed handshake)."""
        lines = self.pf.log_lines()
        status = self.status[domain]["line"]
        at = lines.index(status)
        tag = re.search(r"postfix/smtp\[\d+\]: ", status).group(0)
        # Other deliveries run at the same time: their lines interleave, and are left out.
        mine = [status]
        for line in reversed(lines[:at]):
            if tag in line:
                if " status=" in line:
                    break
                mine.insert(0, line)
        return "\n".join(mine) + "\n"

    def explain(self, domain, *options):
        cp = run_smtpsh(["explain", "--json", "--resolver", self.resolver, "--timeout", "3",
                         *options], stdin=self.log_about(domain), timeout=60)
        self.assertIn(cp.returncode, (0, 1), describe(cp))
        return json.loads(cp.stdout), cp

    def test_each_scenario_named_offline_from_postfixs_own_lines(self):
        for domain, (_, _, verdict) in SCENARIOS.items():
            with self.subTest(domain=domain):
                doc, cp = self.explain(domain, "--offline")
                self.assertEqual(doc["verdict"]["verdict"], verdict, f"{self.log_about(domain)}{describe(cp)}")
                self.assertEqual(doc["understood"]["port"], self.ports[domain])
                self.assertEqual(doc["understood"]["recipient"], f"user@{domain}")
                self.assertNotIn("live", doc)

    def test_each_scenario_named_live_and_reproduced(self):
        for domain, (_, _, verdict) in SCENARIOS.items():
            with self.subTest(domain=domain):
                doc, cp = self.explain(domain, "--dnsbl", "none")
                self.assertEqual(doc["live"]["probed"]["port"], self.ports[domain], describe(cp))
                self.assertEqual(doc["verdict"]["verdict"], verdict, describe(cp))
                self.assertIs(doc["reproduces"], True, describe(cp))
                self.assertTrue(any(line.startswith("log: ") for line in doc["verdict"]["evidence"]) or
                                doc["live"]["verdict"] == verdict, describe(cp))

    def test_a_drop_at_the_greeting_and_a_listing_seen_now_is_dnsbl_listed(self):
        """The log says the server dropped the connection before its greeting; probing from
        the sending address again (127.0.0.2, which dnsbl.test lists) finds the listing: the
        listing explains the drop, and both are the evidence."""
        doc, cp = self.explain("drop-banner.test", "--source", "127.0.0.2", "--dnsbl", "dnsbl.test")
        self.assertEqual(doc["verdict"]["verdict"], "dnsbl_listed", describe(cp))
        evidence = "\n".join(doc["verdict"]["evidence"])
        self.assertIn("127.0.0.2 is listed on dnsbl.test", evidence)
        self.assertRegex(evidence, r"log: .*lost connection with 127\.0\.0\.1\[127\.0\.0\.1\] while receiving "
                                   r"the initial server greeting")
        self.assertIs(doc["reproduces"], True)  # the drop happened again; the listing decides

    def test_a_problem_gone_since_is_not_reproduced(self):
        """The same busy log line, probed where a server now accepts: the text's verdict stands,
        and explain says it did not happen again from here."""
        text = self.log_about("busy.test").replace(f":{self.ports['busy.test']},", f":{self.ports['reject.test']},")
        text = text.replace("to=<user@busy.test>", "to=<postmaster@reject.test>")
        with scenario("accept") as port:
            text = text.replace(f":{self.ports['reject.test']},", f":{port},")
            cp = run_smtpsh(["explain", "--json", "--resolver", self.resolver, "--timeout", "3", "--dnsbl", "none"],
                            stdin=text, timeout=60)
        doc = json.loads(cp.stdout)
        self.assertEqual(doc["live"]["verdict"], "ok", describe(cp))
        self.assertEqual(doc["verdict"]["verdict"], "server_busy", describe(cp))
        self.assertIs(doc["reproduces"], False)


if __name__ == "__main__":
    unittest.main()
