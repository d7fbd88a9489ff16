"""`smtpsh diagnose --json`: one end-to-end test per verdict of the vocabulary of ARCHITECTURE.md.

The remote side is smtpsh's scenario server (`smtpsh serve`, examples/servers/), smtp-sink or
a kernel socket; DNS is NSD with tests/peers/zones. Every test passes --resolver, --port,
--source and --timeout as it needs; every address and port is loopback and the test's own.

    /usr/bin/python3 -m unittest -v tests/e2e/test_diagnose.py      (SMTPSH=/path/to/smtpsh)
"""

import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, peer, run_smtpsh, scenario  # noqa: E402

VERDICTS = {"ok", "no_mx", "dns_failure", "connect_refused", "connect_timeout",
            "dropped_before_banner", "server_busy", "dropped_mid_session", "tls_version_mismatch",
            "tls_handshake_failed", "greylisted", "rate_limited", "dnsbl_listed", "ptr_mismatch",
            "slow_server", "rejected", "protocol_error"}


class TestDiagnose(harness.NsdTestCase):
    def diagnose(self, target, *args, status=None, timeout=60, dnsbl="dnsbl.test"):
        cmd = ["diagnose", target, "--json", "--resolver", self.resolver, "--timeout", "3",
               "--dnsbl", dnsbl, *map(str, args)]
        cp = run_smtpsh(cmd, timeout=timeout)
        self.assertIn(cp.returncode, (0, 1), describe(cp))
        doc = json.loads(cp.stdout)
        for key in ("target", "verdict", "transient", "checks", "evidence", "advice"):
            self.assertIn(key, doc, describe(cp))
        self.assertIn(doc["verdict"], VERDICTS)
        for check in doc["checks"]:
            self.assertIn(check["status"], ("ok", "warn", "fail", "skip"))
        self.assertEqual(cp.returncode, 0 if doc["verdict"] == "ok" else 1, describe(cp))
        return doc, cp

    def assertVerdict(self, doc, cp, verdict, stage=None, transient=None):
        self.assertEqual(doc["verdict"], verdict, describe(cp))
        if stage is not None:
            self.assertEqual(doc.get("stage"), stage, describe(cp))
        if transient is not None:
            self.assertEqual(doc["transient"], transient, describe(cp))
        if verdict != "ok":
            self.assertTrue(doc["evidence"], f"a verdict needs evidence{describe(cp)}")

    # --- DNS ----------------------------------------------------------------------------------

    def test_ok_through_mx_with_starttls(self):
        with scenario("accept") as port:
            doc, cp = self.diagnose("postmaster@example.test", "--port", port, "--source", "127.0.0.1")
        self.assertVerdict(doc, cp, "ok", transient=False)
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(checks["starttls"]["status"], "ok")
        self.assertEqual(checks["source ptr"]["status"], "ok")
        self.assertEqual(checks["dnsbl"]["status"], "ok")
        self.assertEqual(doc["probed"]["host"], "mx1.example.test")

    def test_no_mx(self):
        for domain in ("nullmx.example.test", "nope.example.test", "nodata.example.test"):
            with self.subTest(domain=domain):
                doc, cp = self.diagnose(domain)
                self.assertVerdict(doc, cp, "no_mx", stage="dns")

    def test_dns_failure(self):
        doc, cp = self.diagnose("x.broken.test")
        self.assertVerdict(doc, cp, "dns_failure", stage="dns", transient=True)
        self.assertIn("SERVFAIL", " ".join(doc["evidence"]))

    # --- connect ------------------------------------------------------------------------------

    def test_connect_refused(self):
        doc, cp = self.diagnose("example.test", "--port", harness.free_port(), "--source", "127.0.0.1")
        self.assertVerdict(doc, cp, "connect_refused", stage="connect")

    def test_connect_timeout(self):
        with peer("backlog") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--timeout", "1", dnsbl="none")
        self.assertVerdict(doc, cp, "connect_timeout", stage="connect")

    def test_dropped_before_banner(self):
        with scenario("drop_before_banner") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", dnsbl="none")
        self.assertVerdict(doc, cp, "dropped_before_banner", stage="banner")

    def test_server_busy(self):
        with scenario("busy") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", dnsbl="none")
        self.assertVerdict(doc, cp, "server_busy", stage="banner", transient=True)
        self.assertIn("421 4.3.2", " ".join(doc["evidence"]))

    def test_slow_server(self):
        with scenario("slow", "delay=4") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--timeout", "1", dnsbl="none")
        self.assertVerdict(doc, cp, "slow_server", stage="banner")

    # --- the session --------------------------------------------------------------------------

    def test_dropped_mid_session(self):
        for at in ("ehlo", "rcpt"):
            with self.subTest(at=at), scenario("drop_at", f"at={at}") as port:
                doc, cp = self.diagnose(f"127.0.0.1:{port}", dnsbl="none")
                self.assertVerdict(doc, cp, "dropped_mid_session", stage=at)

    def test_tls_version_mismatch(self):
        with scenario("tls_old") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", dnsbl="none")
        self.assertVerdict(doc, cp, "tls_version_mismatch", stage="starttls")
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertIn("tls1", checks["tls versions"]["detail"])
        self.assertEqual(checks["plain text"]["status"], "ok")
        # What is true and who is hurt: the sweep found versions that work.
        self.assertNotIn("share no version", doc["advice"])
        self.assertIn("accepts only TLS 1.0 and TLS 1.1", doc["advice"])
        self.assertIn("require TLS 1.2 or newer fail", doc["advice"])

    def test_tls_handshake_failed(self):
        with scenario("tls_broken") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", dnsbl="none")
        self.assertVerdict(doc, cp, "tls_handshake_failed", stage="starttls")

    def test_greylisted(self):
        with scenario("greylist", "delay=1") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--retries", "3", "--backoff", "0.6",
                                    dnsbl="none")
        self.assertVerdict(doc, cp, "greylisted", stage="rcpt", transient=True)
        evidence = " ".join(doc["evidence"])
        self.assertIn("450 4.7.1", evidence)
        self.assertIn("250", evidence)

    def test_rate_limited(self):
        with scenario("rate_limit", "sessions=2") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--sessions", "4", dnsbl="none")
        self.assertVerdict(doc, cp, "rate_limited", transient=True)
        self.assertIn("421 4.7.0", " ".join(doc["evidence"]))

    def test_rejected(self):
        with scenario("reject") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", dnsbl="none")
        self.assertVerdict(doc, cp, "rejected", stage="rcpt", transient=False)

    def test_smtp_sink_soft_reject_persists(self):
        # smtp-sink -r RCPT answers every RCPT with a 4xx: retries do not clear it.
        with harness.smtp_sink("-r", "RCPT") as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--retries", "1", "--backoff", "0.2",
                                    dnsbl="none")
        self.assertIn(doc["verdict"], ("greylisted", "server_busy", "rate_limited"))
        self.assertEqual(doc["stage"], "rcpt")

    # --- the source address -------------------------------------------------------------------

    def test_dnsbl_listed(self):
        with scenario("accept") as port:
            doc, cp = self.diagnose("example.test", "--port", port, "--source", "127.0.0.2")
        self.assertVerdict(doc, cp, "dnsbl_listed")
        self.assertIn("dnsbl.test", " ".join(doc["evidence"]))

    def test_ptr_mismatch(self):
        for source in ("127.0.0.3", "127.0.0.4"):
            with self.subTest(source=source), scenario("accept") as port:
                doc, cp = self.diagnose("example.test", "--port", port, "--source", source)
                self.assertVerdict(doc, cp, "ptr_mismatch")

    def test_helo_that_differs_from_the_ptr(self):
        with scenario("accept") as port:
            doc, cp = self.diagnose("example.test", "--port", port, "--source", "127.0.0.1",
                                    "--helo", "other.example.test")
        self.assertVerdict(doc, cp, "ptr_mismatch")

    # --- the command line ---------------------------------------------------------------------

    def test_human_report(self):
        with scenario("busy") as port:
            cp = run_smtpsh(["diagnose", f"127.0.0.1:{port}", "--resolver", self.resolver,
                             "--dnsbl", "none", "--timeout", "3"], timeout=30)
        self.assertExit(cp, 1)
        self.assertIn("verdict: server_busy (at banner), transient\n", cp.stdout)
        self.assertIn("advice: ", cp.stdout)

    def test_several_targets_give_json_lines(self):
        with scenario("accept") as good, scenario("busy") as busy:
            cp = run_smtpsh(["diagnose", f"127.0.0.1:{good}", f"127.0.0.1:{busy}", "--json",
                             "--resolver", self.resolver, "--dnsbl", "none", "--timeout", "3"],
                            timeout=60)
        self.assertExit(cp, 1)
        lines = cp.stdout.splitlines()
        self.assertEqual([json.loads(line)["verdict"] for line in lines], ["ok", "server_busy"])

    def test_bad_usage(self):
        for args, words in ((("",), "empty"), (("a..b",), "empty label"),
                            (("x.test", "--retries", "-1"), "--retries must be"),
                            (("x.test", "--source", "mx.example"), "--source mx.example: 'mx.example' is not an IP address")):
            with self.subTest(args=args):
                cp = run_smtpsh(["diagnose", *args])
                self.assertOneLineError(cp, 2, "smtpsh diagnose: ")
                self.assertIn(words, cp.stderr)


if __name__ == "__main__":
    unittest.main()


# Scenarios for the judge's corrections: each reply is one a real MTA sends.
JUDGE_SCENARIOS = {
    # Exim's per-host limit: the client's own parallel connections are throttled.
    "per_ip_limit": r'''return { hostname = "mx.perip.test", on_connect = function(s)
      if s.n > 1 then return "421 Too many concurrent SMTP connections from this IP address; please try again later." end
    end }''',
    # Postfix that does not host the domain: the same 454 on every retry.
    "relay_denied": r'''return { hostname = "mx.relay.test", on_rcpt = function(s, to)
      return "454 4.7.1 <" .. to .. ">: Relay access denied" end }''',
    # Debian's stock Exim with a local host list: no public DNSBL lists the address.
    "local_list": r'''return { hostname = "mx.local.test", on_rcpt = function(s, to)
      return "550-sender IP address 127.0.0.1 is locally blacklisted here. If you\n" ..
             "think this is wrong, get in touch with postmaster" end }''',
    # STARTTLS broken, and plain MAIL refused until TLS: nobody can deliver.
    "tls_required": r'''return { hostname = "mx.tlsreq.test", tls = { self_signed = "mx.tlsreq.test" },
      on_starttls = function()
        return { reply = "220 2.0.0 Ready to start TLS", raw = "this is not TLS\r\n", close = true }
      end,
      on_mail = function(s) if not s.tls then return "530 5.7.0 Must issue a STARTTLS command first" end end }''',
    # A 421 at RCPT that speaks of load, not at the greeting.
    "busy_at_rcpt": r'''return { hostname = "mx.busyrcpt.test", on_rcpt = function(s, to)
      return "421 4.3.2 Service not available, server too busy" end }''',
}


class TestJudgeCorrections(harness.NsdTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        work = harness.scratch_dir("smtpsh-judge-")
        cls.scenarios = {}
        for name, text in JUDGE_SCENARIOS.items():
            path = os.path.join(work, name + ".lua")
            with open(path, "w") as f:
                f.write(text)
            cls.scenarios[name] = path

    def diagnose(self, target, *args):
        cmd = ["diagnose", target, "--json", "--resolver", self.resolver, "--timeout", "3",
               "--dnsbl", "dnsbl.test", *map(str, args)]
        cp = run_smtpsh(cmd, timeout=60)
        self.assertIn(cp.returncode, (0, 1), describe(cp))
        return json.loads(cp.stdout), cp

    def test_a_per_ip_connection_limit_shows_without_a_flag(self):
        # Two back-to-back sessions by default: the second meets the per-IP limit.
        with scenario(self.scenarios["per_ip_limit"]) as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--source", "127.0.0.1")
        self.assertEqual(doc["verdict"], "rate_limited", describe(cp))
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertIn("session 1 succeeded, session 2 stopped at banner", checks["sessions"]["detail"])

    def test_a_per_ip_limit_at_the_greeting_is_rate_limiting_not_load(self):
        with scenario(self.scenarios["per_ip_limit"]) as port:
            # The first session takes the one slot; diagnose meets the limit at once.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as first:
                first.recv(200)
                held, cp = self.diagnose(f"127.0.0.1:{port}", "--sessions", "1")
        self.assertEqual(held["verdict"], "rate_limited", describe(cp))
        self.assertEqual(held["stage"], "banner", describe(cp))
        self.assertIn("fewer parallel sessions from this IP", held["advice"])

    def test_relay_access_denied_is_a_refusal_not_greylisting(self):
        with scenario(self.scenarios["relay_denied"]) as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--source", "127.0.0.1", "--retries", "1",
                                    "--backoff", "0.2")
        self.assertEqual(doc["verdict"], "rejected", describe(cp))
        self.assertEqual(doc["stage"], "rcpt", describe(cp))
        self.assertNotIn("greylist", doc["advice"].lower())
        self.assertIn("Seen at RCPT TO", doc["advice"])

    def test_a_local_blocklist_is_not_a_dnsbl_listing(self):
        with scenario(self.scenarios["local_list"]) as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--source", "127.0.0.1")
        self.assertEqual(doc["verdict"], "rejected", describe(cp))
        self.assertIn("list of its own", doc["advice"])
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(checks["dnsbl"]["status"], "ok", describe(cp))

    def test_advice_names_the_stage_of_a_421_at_rcpt(self):
        with scenario(self.scenarios["busy_at_rcpt"]) as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--source", "127.0.0.1", "--retries", "1",
                                    "--backoff", "0.2")
        self.assertEqual(doc["verdict"], "server_busy", describe(cp))
        self.assertIn("RCPT TO", doc["advice"])
        self.assertNotIn("greeted", doc["advice"])
        details = " ".join(c["detail"] for c in doc["checks"])
        self.assertIn("still refused after 1 retry: 421", details)
        self.assertNotIn("retries", details)

    def test_a_server_that_requires_starttls_refuses_plain_text_senders(self):
        with scenario(self.scenarios["tls_required"]) as port:
            doc, cp = self.diagnose(f"127.0.0.1:{port}", "--source", "127.0.0.1")
        self.assertEqual(doc["verdict"], "tls_handshake_failed", describe(cp))
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(checks["plain text"]["status"], "fail", describe(cp))
        self.assertIn("plain-text senders are refused", checks["plain text"]["detail"])

    def test_null_mx_advice_says_the_owner_takes_no_mail(self):
        doc, cp = self.diagnose("nullmx.example.test")
        self.assertEqual(doc["verdict"], "no_mx", describe(cp))
        self.assertIn("null MX", doc["advice"])
        self.assertNotIn("publish MX records", doc["advice"])

    def test_ok_for_a_domain_says_postmaster_is_often_exempt(self):
        with scenario("accept") as port:
            doc, cp = self.diagnose("example.test", "--port", port, "--source", "127.0.0.1")
        self.assertEqual(doc["verdict"], "ok", describe(cp))
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(checks["recipient"]["status"], "warn")
        self.assertIn("postmaster@example.test", checks["recipient"]["detail"])


class TestFactsAndJudge(harness.NsdTestCase):
    """--json carries the facts the verdict was judged from; --rejudge judges them again offline."""

    def diagnose(self, *args):
        cmd = ["diagnose", *map(str, args), "--json", "--resolver", self.resolver, "--timeout", "3",
               "--dnsbl", "dnsbl.test"]
        cp = run_smtpsh(cmd, timeout=60)
        self.assertIn(cp.returncode, (0, 1), describe(cp))
        return [json.loads(line) for line in cp.stdout.splitlines()], cp

    def test_json_carries_the_facts_and_rejudging_them_gives_the_same_result(self):
        with scenario("greylist", "delay=0.5") as port:
            docs, cp = self.diagnose("postmaster@example.test", "--port", port, "--source", "127.0.0.1",
                                     "--retries", "2", "--backoff", "0.6")
        doc = docs[0]
        facts = doc["facts"]
        self.assertEqual(facts["version"], 1)
        self.assertEqual(facts["dns"]["mx"]["name"], "example.test")
        purposes = [s["purpose"] for s in facts["sessions"]]
        self.assertEqual(purposes[0], "probe", describe(cp))
        self.assertIn("retry", purposes, describe(cp))
        first = facts["sessions"][facts["deciding"] - 1]
        self.assertEqual(first["reply"]["code"] // 100, 4, describe(cp))
        self.assertEqual([step["stage"] for step in first["steps"]][:2], ["banner", "ehlo"])
        for step in first["steps"]:
            self.assertGreaterEqual(step["seconds"], 0)
        self.assertTrue(facts["retries"]["cleared"], describe(cp))
        self.assertEqual(facts["source"]["ip"], "127.0.0.1")
        saved = os.path.join(harness.scratch_dir("smtpsh-facts-"), "saved.json")
        with open(saved, "w") as f:
            f.write(cp.stdout)
        again = run_smtpsh(["diagnose", "--rejudge", saved, "--json"], timeout=30)
        self.assertEqual(again.returncode, 0 if doc["verdict"] == "ok" else 1, describe(again))
        rejudged = json.loads(again.stdout)
        for key in ("verdict", "stage", "transient", "evidence", "advice", "checks"):
            self.assertEqual(rejudged.get(key), doc.get(key), key)
        text = run_smtpsh(["diagnose", "--rejudge", saved], timeout=30)
        self.assertIn("verdict: " + doc["verdict"], text.stdout, describe(text))

    def test_rejudge_refuses_what_holds_no_facts(self):
        path = os.path.join(harness.scratch_dir("smtpsh-facts-"), "bad.json")
        with open(path, "w") as f:
            f.write('{"verdict": "ok"}\n')
        cp = run_smtpsh(["diagnose", "--rejudge", path], timeout=30)
        self.assertOneLineError(cp, 2, "smtpsh diagnose: ")
        self.assertIn("no facts", cp.stderr)
        cp = run_smtpsh(["diagnose", "--rejudge", path, "example.test"], timeout=30)
        self.assertOneLineError(cp, 2, "smtpsh diagnose: ")

    def test_public_ip_is_the_address_checked_for_ptr_and_dnsbl(self):
        # The probe connects from 127.0.0.1 (clean); the public address given is listed.
        with scenario("accept") as port:
            docs, cp = self.diagnose("postmaster@example.test", "--port", port, "--source", "127.0.0.1",
                                     "--public-ip", "127.0.0.2", "--helo", "mx2.example.test")
        doc = docs[0]
        self.assertEqual(doc["verdict"], "dnsbl_listed", describe(cp))
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertIn("127.0.0.2 is listed on dnsbl.test", checks["dnsbl"]["detail"])
        self.assertIn("--public-ip", checks["source ptr"]["detail"])
        self.assertEqual(doc["facts"]["source"]["ip_from"], "option")
        cp = run_smtpsh(["diagnose", "example.test", "--public-ip", "nonsense"], timeout=30)
        self.assertOneLineError(cp, 2, "smtpsh diagnose: --public-ip nonsense")

    def test_public_ip_from_a_dns_echo_service(self):
        # NSD stands in for OpenDNS (tests/peers/zones/myip.opendns.com.zone answers 127.0.0.2).
        with scenario("accept") as port:
            docs, cp = self.diagnose("postmaster@example.test", "--port", port, "--source", "127.0.0.1",
                                     "--public-ip", f"dns@{self.resolver}", "--helo", "mx2.example.test")
        doc = docs[0]
        self.assertEqual(doc["facts"]["source"]["ip"], "127.0.0.2", describe(cp))
        self.assertEqual(doc["facts"]["source"]["ip_from"], "dns", describe(cp))
        self.assertEqual(doc["verdict"], "dnsbl_listed", describe(cp))
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertIn("DNS echo myip.opendns.com", checks["source ptr"]["detail"])
