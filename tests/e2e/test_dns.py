"""smtpsh's DNS engine, dns module and the dns / blacklist subcommands against a real DNS
server: NSD serving tests/peers/zones on a free loopback port (tests/peers/dns_peer.py).

    /usr/bin/python3 -m unittest -v tests/e2e/test_dns.py      (SMTPSH=/path/to/smtpsh)
"""

import json
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LUA_DIR, REPO_ROOT, describe, dns_peer, run_smtpsh, scratch_dir, smtp_sink  # noqa: E402


class TestDns(harness.NsdTestCase):
    dns_peers = ("silent",)

    def smtpsh(self, *args, timeout=30):
        return run_smtpsh([str(a) for a in args], timeout=timeout)

    def test_lua_api_against_nsd(self):
        with smtp_sink() as port:
            cp = self.smtpsh(os.path.join(LUA_DIR, "dns_nsd.lua"), self.nsd, self.silent, port,
                             timeout=60)
        self.assertExit(cp, 0)
        self.assertIn("0 failed", cp.stdout, describe(cp))

    # --- smtpsh dns ---------------------------------------------------------------------------

    def dns_json(self, domain, status):
        cp = self.smtpsh("dns", domain, "--json", "--resolver", self.resolver)
        self.assertExit(cp, status)
        self.assertEqual(cp.stderr, "", describe(cp))
        doc = json.loads(cp.stdout)
        self.assertEqual(doc["domain"], domain)
        return doc, {c["name"]: c for c in doc["checks"]}

    def test_healthy_domain(self):
        doc, checks = self.dns_json("example.test", 0)
        self.assertTrue(doc["ok"])
        self.assertEqual([m["host"] for m in doc["mx"]][0], "mx1.example.test")
        self.assertEqual([m["preference"] for m in doc["mx"]], [10, 20, 20])
        self.assertEqual(checks["mx"]["status"], "ok")
        self.assertEqual(checks["mx mx1.example.test"]["detail"], "127.0.0.1, ::1 (TTL 300)")
        self.assertEqual(checks["ptr 127.0.0.1"]["status"], "ok")
        self.assertEqual(checks["ptr 127.0.0.3"]["status"], "warn")
        self.assertIn("not forward-confirmed", checks["ptr 127.0.0.3"]["detail"])
        self.assertEqual(checks["spf"]["status"], "ok")
        self.assertEqual(doc["spf"]["lookups"], 3)
        self.assertEqual(checks["dmarc"]["status"], "ok")
        self.assertEqual(doc["dmarc"]["tags"]["p"], "reject")
        self.assertEqual(checks["mta-sts"]["status"], "ok")
        # NSD does not validate: TLSA without the AD bit is a warning, not a pass.
        self.assertEqual(checks["tlsa mx1.example.test"]["status"], "warn")
        self.assertEqual(doc["mx"][0]["tlsa"][0]["usage"], 3)
        self.assertEqual(doc["resolver"]["servers"], [self.resolver])

    def test_problems_are_named(self):
        cases = {
            "cnamemx.example.test": ("mx alias.example.test", "fail", "alias (CNAME) of mx1.example.test"),
            "deadmx.example.test": ("mx nowhere.example.test", "fail", "NXDOMAIN"),
            "nope.example.test": ("mx", "fail", "does not exist"),
            "toomany.example.test": ("spf", "fail", "needs 22 DNS look-ups"),
            "twospf.example.test": ("spf", "fail", "2 SPF records"),
            "nodata.example.test": ("mx", "fail", "no MX record and no address"),
        }
        for domain, (name, status, words) in cases.items():
            with self.subTest(domain=domain):
                doc, checks = self.dns_json(domain, 1)
                self.assertFalse(doc["ok"])
                self.assertEqual(checks[name]["status"], status, checks[name])
                self.assertIn(words, checks[name]["detail"])

    def test_warnings_keep_exit_zero(self):
        doc, checks = self.dns_json("implicit.example.test", 0)
        self.assertEqual(checks["mx"]["status"], "warn")
        self.assertIn("implicit MX", checks["mx"]["detail"])
        self.assertEqual(checks["spf"]["status"], "warn")
        self.assertEqual(checks["dmarc"]["status"], "warn")
        doc, checks = self.dns_json("nullmx.example.test", 0)
        self.assertIn("null MX", checks["mx"]["detail"])

    def test_human_output(self):
        cp = self.smtpsh("dns", "example.test", "--resolver", self.resolver)
        self.assertExit(cp, 0)
        lines = cp.stdout.splitlines()
        self.assertEqual(lines[0], f"smtpsh dns example.test (resolver {self.resolver})")
        self.assertRegex(cp.stdout, r"\n  ok    mx +3 hosts: 10 mx1\.example\.test, 20 mx[23]\.example\.test, "
                                    r"20 mx[23]\.example\.test \(TTL 300\)\n")
        self.assertEqual(lines[-1], "example.test: 2 warnings")
        self.assertNotIn("\x1b[", cp.stdout)  # not a terminal: no colour

    def test_nxdomain_is_the_one_finding(self):
        # A domain that does not exist has no SPF, DMARC or MTA-STS record to miss: one check.
        doc, checks = self.dns_json("nope.example.test", 1)
        self.assertTrue(doc["nxdomain"])
        self.assertEqual(list(checks), ["mx"], doc["checks"])
        self.assertEqual(checks["mx"]["status"], "fail")
        self.assertIn("nope.example.test does not exist (NXDOMAIN)", checks["mx"]["detail"])
        for policy in ("spf", "dmarc", "mta_sts"):
            self.assertNotIn(policy, doc)
        cp = self.smtpsh("dns", "nope.example.test", "--resolver", self.resolver)
        self.assertExit(cp, 1)
        self.assertNotIn("spf", cp.stdout)
        self.assertNotIn("warn", cp.stdout)
        self.assertEqual(cp.stdout.splitlines()[1:], [
            "  fail  mx  nope.example.test does not exist (NXDOMAIN): nobody can deliver mail to it",
            "nope.example.test: 1 problem"])

    def test_ttls_of_each_record(self):
        # Each RRset with its own TTL, as the zone says (drill and dig show them the same way).
        zones = scratch_dir("smtpsh-zones-")
        source = os.path.join(REPO_ROOT, "tests", "peers", "zones")
        for name in os.listdir(source):
            shutil.copy(os.path.join(source, name), zones)
        with open(os.path.join(zones, "example.test.zone"), "a") as zone:
            zone.write("ttl 3600 IN MX 10 ttlhost.example.test.\n"
                       "ttlhost 120 IN A 127.0.0.1\n"
                       "ttlhost 900 IN AAAA ::1\n"
                       "ttl 1800 IN TXT \"v=spf1 -all\"\n"
                       "_dmarc.ttl 7200 IN TXT \"v=DMARC1; p=reject\"\n"
                       "_mta-sts.ttl 600 IN TXT \"v=STSv1; id=42\"\n"
                       "_25._tcp.ttlhost 86400 IN TLSA 3 1 1 " + "ab" * 32 + "\n")
        with dns_peer("nsd", "--zones", zones) as port:
            resolver = f"127.0.0.1:{port}"
            text = self.smtpsh("dns", "ttl.example.test", "--resolver", resolver)
            cp = self.smtpsh("dns", "ttl.example.test", "--resolver", resolver, "--json")
        self.assertExit(text, 0)
        out = text.stdout
        self.assertRegex(out, r"\n  ok    mx +1 host: 10 ttlhost\.example\.test \(TTL 3600\)\n")
        self.assertRegex(out, r"\n  ok    mx ttlhost\.example\.test +127\.0\.0\.1 \(TTL 120\), ::1 \(TTL 900\)\n")
        self.assertRegex(out, r"\n  ok    ptr 127\.0\.0\.1 +mx1\.example\.test \(forward-confirmed, TTL 300\)\n")
        self.assertRegex(out, r"\n  warn  tlsa ttlhost\.example\.test +1 TLSA record\(s\) \(TTL 86400\) that are indeterminate ")
        self.assertRegex(out, r"\n  ok    spf +v=spf1 -all \(0 DNS look-ups, TTL 1800\)\n")
        self.assertRegex(out, r"\n  ok    dmarc +v=DMARC1; p=reject \(TTL 7200\)\n")
        self.assertRegex(out, r"\n  ok    mta-sts +policy id 42 \(TTL 600\)\n")
        self.assertExit(cp, 0)
        doc = json.loads(cp.stdout)
        host = doc["mx"][0]
        self.assertEqual(host["ttl"], 3600)
        self.assertEqual([(a["address"], a["ttl"], a["ptr_ttl"]) for a in host["addresses"]],
                         [("127.0.0.1", 120, 300), ("::1", 900, 300)])
        self.assertEqual(host["tlsa"][0]["ttl"], 86400)
        self.assertEqual((doc["spf"]["ttl"], doc["dmarc"]["ttl"], doc["mta_sts"]["ttl"]), (1800, 7200, 600))

    def test_trace_shows_every_answer(self):
        cp = self.smtpsh("dns", "example.test", "--resolver", self.resolver, "--trace")
        self.assertExit(cp, 0)
        self.assertIn(f"[     dns] == MX example.test: 3 records, {self.resolver}\n", cp.stderr)
        self.assertIn("[     dns] == AAAA mx3.example.test: NODATA", cp.stderr)
        quiet = self.smtpsh("dns", "example.test", "--resolver", self.resolver)
        self.assertNotIn("[     dns]", quiet.stderr)

    def test_unreachable_resolver_is_a_dns_failure(self):
        cp = self.smtpsh("dns", "example.test", "--json", "--resolver", f"127.0.0.1:{self.silent}",
                         "--timeout", "0.3")
        self.assertExit(cp, 1)
        doc = json.loads(cp.stdout)
        mx = [c for c in doc["checks"] if c["name"] == "mx"][0]
        self.assertEqual(mx["status"], "fail")
        self.assertIn("no answer from DNS server", mx["detail"])

    def test_bad_usage(self):
        for args, words in [((), "missing DOMAIN"), (("a..b",), "empty label"),
                            (("example.test", "--resolver", "dns.example"), "is not an IP address"),
                            (("example.test", "--timeout", "0"), "--timeout must be"),
                            (("example.test", "--bogus"), "unknown option '--bogus'")]:
            with self.subTest(args=args):
                cp = self.smtpsh("dns", *args)
                self.assertOneLineError(cp, 2, "smtpsh dns: ")
                self.assertIn(words, cp.stderr)

    # --- smtpsh blacklist ---------------------------------------------------------------------

    def test_blacklist_listed(self):
        cp = self.smtpsh("blacklist", "127.0.0.2", "--dnsbl", "dnsbl.test,bl2.test",
                         "--resolver", self.resolver)
        self.assertExit(cp, 1)
        self.assertIn("listed  dnsbl.test  127.0.0.2  listed for testing: see https://dnsbl.test/127.0.0.2",
                      cp.stdout)
        self.assertRegex(cp.stdout, r"listed  bl2\.test    127\.0\.0\.1[01], 127\.0\.0\.1[01]\n")
        self.assertTrue(cp.stdout.endswith("127.0.0.2: listed on 2 of 2 lists\n"), describe(cp))

    def test_blacklist_clean_and_json(self):
        cp = self.smtpsh("blacklist", "127.0.0.9", "--dnsbl", "dnsbl.test,bl2.test",
                         "--resolver", self.resolver, "--json")
        self.assertExit(cp, 0)
        doc = json.loads(cp.stdout)
        self.assertEqual(doc["ip"], "127.0.0.9")
        self.assertFalse(doc["listed"])
        self.assertEqual([(z["zone"], z["listed"], z["codes"]) for z in doc["zones"]],
                         [("dnsbl.test", False, []), ("bl2.test", False, [])])

    def test_blacklist_ipv6_and_unanswered_zone(self):
        cp = self.smtpsh("blacklist", "::1", "--dnsbl", "dnsbl.test,not-served.invalid",
                         "--resolver", self.resolver, "--json")
        self.assertExit(cp, 1)
        doc = json.loads(cp.stdout)
        self.assertTrue(doc["zones"][0]["listed"])
        self.assertEqual(doc["zones"][0]["query"], "1" + ".0" * 31 + ".dnsbl.test")
        self.assertNotIn("listed", doc["zones"][1])
        self.assertIn("REFUSED", doc["zones"][1]["error"])

    def test_blacklist_bad_usage(self):
        cp = self.smtpsh("blacklist", "mx.example.test")
        self.assertOneLineError(cp, 2, "smtpsh blacklist: ")
        self.assertIn("is not an IPv4 or IPv6 address", cp.stderr)

    # --- --resolver reaches the connect of other subcommands ----------------------------------

    def test_banner_resolves_through_resolver(self):
        with smtp_sink() as port:
            cp = self.smtpsh("banner", f"mx1.example.test:{port}", "--resolver", self.resolver)
        self.assertExit(cp, 0)
        self.assertTrue(cp.stdout.startswith("220 "), describe(cp))
        self.assertIn(f"connected to 127.0.0.1:{port}", cp.stderr)


if __name__ == "__main__":
    unittest.main()
