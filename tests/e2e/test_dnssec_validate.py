"""smtpsh validates DNSSEC itself: on the signed hierarchy of tests/peers/dnssec_zones.py
(served by NSD, the test root's key as the trust anchor) its own verdict on every case is the
fixture's, asked of NSD directly and through a validating Unbound, and agrees with Unbound's
AD bit; `smtpsh dns --validate` shows each record set's state; DANE (`smtpsh tls`,
s:starttls{verify = "dane"}) uses TLSA records only when smtpsh found them secure, against
real TLS peers with DANE-EE and DANE-TA records that match and do not, in secure, insecure
and bogus zones.

    SMTPSH=build/smtpsh /usr/bin/python3 -m unittest -v tests/e2e/test_dnssec_validate.py

Needs nsd, unbound and ldnsutils (skips without them).
"""

import contextlib
import hashlib
import json
import os
import ssl
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "peers"))
import dnssec_zones  # noqa: E402
import test_dnssec_zones as validators  # noqa: E402  (its Unbound fixture and DNS client)
from harness import (SmtpshTestCase, describe, dns_peer, free_port, run_smtpsh,  # noqa: E402
                     scratch_dir, test_certs, tls_peer)


def lua_cases_script(server, anchor, cases):
    """A script that validates every case and prints NAME<TAB>STATE<TAB>AD<TAB>RCODE<TAB>REASON."""
    lines = [f'dns.servers{{"{server}", timeout = 3}}',
             f'assert(dns.trust_anchor("{anchor}"))']
    for name, case in sorted(cases.items()):
        lines.append(
            f'do local r, e = dns.query("{case.qname}", "{case.qtype}", {{validate = true}}) '
            f'local x = r or e '
            f'print("{name}", x.dnssec, tostring(x.ad), r and "NOERROR" or e.rcode, '
            f'(x.dnssec_reason or ""):gsub("\\t", " ")) end')
    return "\n".join(lines)


def parse_rows(stdout):
    rows = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4:
            rows[parts[0]] = {"state": parts[1], "ad": parts[2] == "true", "rcode": parts[3],
                              "reason": parts[4] if len(parts) > 4 else ""}
    return rows


class TestDnssecValidation(SmtpshTestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        needed = [validators.UNBOUND, validators.UNBOUND_CHECKCONF]
        missing = dnssec_zones.missing_tools() + [p for p in needed if not os.access(p, os.X_OK)]
        if missing:
            raise unittest.SkipTest(f"not installed: {', '.join(missing)}")
        cls.stack = contextlib.ExitStack()
        try:
            cls.h = cls.stack.enter_context(dnssec_zones.signed_hierarchy())
            cls.unbound_port, _ = cls.stack.enter_context(validators.unbound(cls.h))
        except BaseException:
            cls.stack.close()
            raise
        cls.unbound = f"127.0.0.1:{cls.unbound_port}"

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        super().tearDownClass()

    def wrong_anchor(self):
        """The test root's DS with another digest: a DS that matches no key."""
        path = os.path.join(scratch_dir("smtpsh-anchor-"), "wrong.ds")
        with open(self.h.anchor) as f:
            fields = f.read().split()
        fields[-1] = "00" * 32
        with open(path, "w") as f:
            f.write("\t".join(fields) + "\n")
        return path

    def validate_all(self, server):
        cp = run_smtpsh(["-e", lua_cases_script(server, self.h.anchor, self.h.cases)], timeout=60)
        self.assertEqual(cp.returncode, 0, describe(cp))
        rows = parse_rows(cp.stdout)
        self.assertEqual(sorted(rows), sorted(self.h.cases), describe(cp))
        return rows

    def assert_states(self, rows, via):
        for name, case in self.h.cases.items():
            with self.subTest(case=name, via=via):
                row = rows[name]
                self.assertEqual(row["state"], case.state, f"{name}: {row}")
                self.assertEqual(row["rcode"], dnssec_zones.rcode(name), f"{name}: {row}")
                if case.state == "bogus":
                    self.assertTrue(row["reason"], f"{name}: a bogus answer says why")

    def test_each_case_asking_nsd_directly(self):
        rows = self.validate_all(self.h.server)
        self.assert_states(rows, "nsd")
        # NSD is no validator: it never sets AD, and smtpsh's verdict does not need it.
        self.assertFalse(any(row["ad"] for row in rows.values()))

    def test_each_case_through_unbound_agrees_with_its_ad_bit(self):
        rows = self.validate_all(self.unbound)
        self.assert_states(rows, "unbound")
        for name, row in rows.items():
            with self.subTest(case=name):
                # Unbound's own answer to the same question (DO, no CD).
                answer = validators.query(self.unbound_port, self.h.cases[name].qname + ".",
                                          self.h.cases[name].qtype)
                if row["state"] == "bogus":
                    self.assertEqual(answer.rcode, "SERVFAIL", answer.summary())
                else:
                    self.assertEqual(answer.ad, row["state"] == "secure", answer.summary())
                # What smtpsh reports as the resolver's AD is Unbound's.
                self.assertEqual(row["ad"], answer.ad and row["state"] == "secure", row)

    def test_bogus_reasons_in_words(self):
        rows = self.validate_all(self.h.server)
        words = {"bogus_expired": "expired on", "bogus_tampered": "does not verify",
                 "bogus_wrongds": "no DNSKEY of wrongds.test matches its DS",
                 "bogus_nosig": "no RRSIG by nosig.test covers mx.nosig.test A"}
        for name, text in words.items():
            with self.subTest(case=name):
                self.assertIn(text, rows[name]["reason"])
        self.assertIn("opt-out", rows["insecure_optout"]["reason"])
        self.assertIn("delegation without DS", rows["insecure_a"]["reason"])

    def test_dnskey_anchor_and_wrong_anchor(self):
        cp = run_smtpsh(["-e", lua_cases_script(self.h.server, self.h.anchor_dnskey,
                                                {"secure_a": self.h.cases["secure_a"]})])
        self.assertEqual(parse_rows(cp.stdout)["secure_a"]["state"], "secure", describe(cp))
        # A DS of another key as the anchor: nothing below the root can be trusted.
        wrong = self.wrong_anchor()
        cp = run_smtpsh(["-e", lua_cases_script(self.h.server, wrong,
                                                {"secure_a": self.h.cases["secure_a"]})])
        row = parse_rows(cp.stdout)["secure_a"]
        self.assertEqual(row["state"], "bogus", describe(cp))
        self.assertIn("no DNSKEY of . matches its DS", row["reason"])

    def test_a_disagreement_with_the_resolver_is_called_out(self):
        # Unbound trusts the real test root; smtpsh is given a DS of another key: Unbound sets
        # AD, smtpsh says bogus, and says that the two disagree.
        wrong = self.wrong_anchor()
        cp = run_smtpsh(["-e", f"""
            dns.servers{{"{self.unbound}"}}
            assert(dns.trust_anchor("{wrong}"))
            local r = assert(dns.query("mx.example.test", "A", {{validate = true}}))
            print(r.dnssec, r.ad, r.ad_disagrees)"""])
        self.assertEqual(cp.stdout.strip(), "bogus\ttrue\ttrue", describe(cp))

    def test_no_trust_anchor_or_no_dnssec_is_indeterminate(self):
        cp = run_smtpsh(["-e", f"""
            dns.servers{{"{self.h.server}"}}
            require("smtpsh.dnssec").default_anchor_files = {{"/nonexistent/root.ds"}}
            local r = assert(dns.query("mx.example.test", "A", {{validate = true}}))
            print(r.dnssec, r.dnssec_reason, r[1].address)"""])
        self.assertEqual(cp.returncode, 0, describe(cp))
        self.assertIn("indeterminate\tno trust anchor: install Debian's dns-root-data", cp.stdout)
        self.assertIn("127.0.0.25", cp.stdout)
        # A server of unsigned zones (no RRSIG anywhere): nothing can be validated.
        with dns_peer("nsd") as plain:
            cp = run_smtpsh(["-e", f"""
                dns.servers{{"127.0.0.1:{plain}"}}
                assert(dns.trust_anchor("{self.h.anchor}"))
                local r, e = dns.query("mx1.example.test", "A", {{validate = true}})
                print((r or e).dnssec, (r or e).dnssec_reason)"""])
        self.assertTrue(cp.stdout.startswith("indeterminate\t"), describe(cp))

    def test_validate_and_servers_together_is_an_error(self):
        cp = run_smtpsh(["-e", f'dns.query("x.test", "A", {{validate = true, servers = {{"{self.h.server}"}}}})'])
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("validate and servers cannot be combined", cp.stderr)

    def test_smtpsh_dns_validate(self):
        cp = run_smtpsh(["dns", "example.test", "--validate", "--json", "--resolver", self.h.server,
                         "--trust-anchor", self.h.anchor], timeout=60)
        doc = json.loads(cp.stdout)
        states = {(d["name"], d["type"]): d["state"] for d in doc["dnssec"]}
        self.assertEqual(states[("example.test", "MX")], "secure", describe(cp))
        self.assertEqual(states[("mx.example.test", "A/AAAA")], "secure")
        self.assertEqual(states[("_25._tcp.mx.example.test", "TLSA")], "secure")
        self.assertEqual(states[("_dmarc.example.test", "TXT")], "secure")  # NXDOMAIN, proven
        checks = {c["name"]: c for c in doc["checks"]}
        # The chain of trust, from the test root's anchor down, each zone with its key.
        chain = doc["dnssec"][0]["chain"]
        self.assertEqual([link["zone"] for link in chain], [".", "test", "example.test"])
        self.assertEqual({link["state"] for link in chain}, {"secure"})
        self.assertIn(f"the trust anchor {self.h.anchor}: key ", chain[0]["how"])
        self.assertRegex(chain[2]["how"], r"^its DS in test: key \d+, algorithm 13$")
        self.assertEqual(checks["chain example.test"]["status"], "ok")
        self.assertEqual(checks["tlsa mx.example.test"]["status"], "ok")
        self.assertIn("DNSSEC-secure as smtpsh validated it", checks["tlsa mx.example.test"]["detail"])
        # A tampered address: the A set is bogus, said in the checklist, and the exit is 1.
        cp = run_smtpsh(["dns", "tampered.test", "--validate", "--resolver", self.h.server,
                         "--trust-anchor", self.h.anchor], timeout=60)
        self.assertEqual(cp.returncode, 1, describe(cp))
        self.assertRegex(cp.stdout, r"fail\s+dnssec mx\.tampered\.test A/AAAA\s+bogus: mx\.tampered\.test A: "
                                    r"the signature by key \d+ does not verify")
        # Without --validate only the TLSA records are validated: an insecure zone's are ignored.
        cp = run_smtpsh(["dns", "unsigned.test", "--resolver", self.h.server,
                         "--trust-anchor", self.h.anchor], timeout=60)
        self.assertRegex(cp.stdout, r"warn\s+tlsa mx\.unsigned\.test\s+1 TLSA record\(s\) \(TTL 300\) that are "
                                    r"insecure .*DANE senders ignore them")
        self.assertNotIn("dnssec ", cp.stdout)
        cp = run_smtpsh(["dns", "unsigned.test", "--validate", "--resolver", self.h.server,
                         "--trust-anchor", self.h.anchor], timeout=60)
        self.assertRegex(cp.stdout, r"ok\s+chain test\s+its DS in \.: key \d+")
        self.assertRegex(cp.stdout, r"warn\s+chain unsigned\.test\s+the NSEC record of unsigned\.test shows "
                                    r"a delegation without DS")

    def test_a_recording_replays_with_the_signatures_checked_at_its_time(self):
        work = scratch_dir("smtpsh-dnssec-record-")
        path = os.path.join(work, "dns.jsonl")
        args = ["dns", "example.test", "--validate", "--json", "--resolver", self.h.server,
                "--trust-anchor", self.h.anchor]
        live = run_smtpsh(args + ["--record", path], timeout=60)
        replayed = run_smtpsh(["replay", path], timeout=60)
        self.assertEqual(replayed.returncode, live.returncode, describe(replayed))
        states = lambda cp: {(d["name"], d["type"]): d["state"] for d in json.loads(cp.stdout)["dnssec"]}
        self.assertEqual(states(replayed), states(live))
        self.assertEqual(states(live)[("example.test", "MX")], "secure")
        # Moved 60 days on, the same recording's signatures have expired (the zones are signed
        # for 30 days): the replay checks them at the recorded time, not at today's.
        with open(path) as f:
            lines = f.read().splitlines()
        start = json.loads(lines[0])
        self.assertIsInstance(start["time"], int)
        start["time"] += 60 * 86400
        with open(path, "w") as f:
            f.write("\n".join([json.dumps(start)] + lines[1:]) + "\n")
        later = run_smtpsh(["replay", path], timeout=60)
        shown = run_smtpsh(["replay", "--show", path])
        moved = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start["time"]))
        self.assertIn(f"recorded at: {moved} (DNSSEC signatures are checked at this time on replay)",
                      shown.stdout, describe(shown))
        self.assertEqual(states(later)[("example.test", "MX")], "bogus", describe(later))
        self.assertIn("expired on", later.stdout)

    def test_a_sandboxed_recipe_validates_but_cannot_pick_the_anchor(self):
        recipe = os.path.join(scratch_dir("smtpsh-dnssec-recipe-"), "validate.lua")
        with open(recipe, "w") as f:
            f.write('local r = assert(dns.query("mx.example.test", "A", {validate = true}))\n'
                    'print(r.dnssec)\n'
                    'dns.trust_anchor("/etc/hostname")\n')
        cp = run_smtpsh(["sandbox", "--resolver", self.h.server, "--trust-anchor", self.h.anchor,
                         recipe], timeout=60)
        self.assertEqual(cp.stdout, "secure\n", describe(cp))
        self.assertEqual(cp.returncode, 3, describe(cp))
        self.assertIn("dns.trust_anchor, which the sandbox forbids (it reads a file)", cp.stderr)

    def test_trust_anchor_usage_errors(self):
        directory = scratch_dir("smtpsh-anchor-dir-")
        for path, words in (("/nonexistent", "cannot read the trust anchor"),
                            ("/etc/hostname", "is not DS or DNSKEY records"),
                            (directory, f"cannot read the trust anchor {directory}: Is a directory"),
                            ("/dev/zero", "/dev/zero: over 1 MiB"),  # never ends: bounded
                            ("/dev/null", "no DS or DNSKEY record in it")):
            with self.subTest(path=path):
                cp = run_smtpsh(["dns", "example.test", "--trust-anchor", path])
                self.assertOneLineError(cp, 2, "smtpsh dns: --trust-anchor: ")
                self.assertIn(words, cp.stderr)


class TestDaneWithValidation(SmtpshTestCase):
    """TLS peers with the test CA's mx1 certificate; TLSA records of their ports in the signed
    hierarchy: DANE-EE (3 1 1) and DANE-TA (2 0 1) that match and that do not, in the secure
    example.test, the unsigned unsigned.test and the expired (bogus) expired.test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = dnssec_zones.missing_tools()
        if missing:
            raise unittest.SkipTest(f"not installed: {', '.join(missing)}")
        certs = test_certs()
        with open(f"{certs}/mx1.spki.sha256") as f:
            spki = f.read().strip()
        with open(f"{certs}/ca.pem") as f:
            ca_digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()
        cls.stack = contextlib.ExitStack()
        try:
            peer_args = ("aiosmtpd", "--cert", f"{certs}/mx1-chain.pem", "--key", f"{certs}/mx1.key")
            cls.ee_port = cls.stack.enter_context(tls_peer(*peer_args))["port"]
            cls.ta_port = cls.stack.enter_context(tls_peer(*peer_args))["port"]
            ee, ta = cls.ee_port, cls.ta_port
            records = [
                ("example.test.", "mx1 A 127.0.0.1"),
                ("example.test.", f"_{ee}._tcp.mx1 TLSA 3 1 1 {spki}"),
                ("example.test.", f"_{ta}._tcp.mx1 TLSA 2 0 1 {ca_digest}"),
                ("example.test.", "eebad A 127.0.0.1"),
                ("example.test.", f"_{ee}._tcp.eebad TLSA 3 1 1 {'00' * 32}"),
                ("example.test.", "pkix A 127.0.0.1"),
                ("example.test.", f"_{ee}._tcp.pkix TLSA 1 1 1 {spki}"),
                ("example.test.", "tabad A 127.0.0.1"),
                ("example.test.", f"_{ta}._tcp.tabad TLSA 2 0 1 {'11' * 32}"),
                ("unsigned.test.", "mx1 A 127.0.0.1"),
                ("unsigned.test.", f"_{ee}._tcp.mx1 TLSA 3 1 1 {spki}"),
                ("unsigned.test.", "eebad A 127.0.0.1"),
                ("unsigned.test.", f"_{ee}._tcp.eebad TLSA 3 1 1 {'00' * 32}"),
                ("expired.test.", "mx1 A 127.0.0.1"),
                ("expired.test.", f"_{ee}._tcp.mx1 TLSA 3 1 1 {spki}"),
                ("nsec3.test.", '_mta-sts TXT "v=STSv1; id=20261202"'),
                ("unsigned.test.", '_mta-sts TXT "v=STSv1; id=20261203"'),
            ]
            cls.h = cls.stack.enter_context(dnssec_zones.signed_hierarchy(records=records))
        except BaseException:
            cls.stack.close()
            raise
        cls.spki = spki

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        super().tearDownClass()

    def tls(self, target):
        cp = run_smtpsh(["tls", target, "--json", "--resolver", self.h.server,
                         "--trust-anchor", self.h.anchor, "--timeout", "5"], timeout=90)
        try:
            doc = json.loads(cp.stdout)
        except ValueError:
            self.fail(describe(cp))
        return cp, doc, {c["name"]: c for c in doc["checks"]}

    def test_secure_dane_ee_and_ta_match(self):
        for target, record in ((f"mx1.example.test:{self.ee_port}", f"3 1 1 {self.spki}"),
                               (f"mx1.example.test:{self.ta_port}", "2 0 1 ")):
            with self.subTest(target=target):
                cp, doc, checks = self.tls(target)
                self.assertEqual(doc["dane"]["dnssec"], "secure", describe(cp))
                self.assertTrue(doc["dane"]["matched"], describe(cp))
                self.assertEqual(checks["dane"]["status"], "ok", describe(cp))
                self.assertIn(record, checks["dane"]["detail"])
                self.assertIn("DNSSEC-secure as smtpsh validated it", checks["dane"]["detail"])
                self.assertEqual([link["zone"] for link in doc["dane"]["chain"]],
                                 [".", "test", "example.test"])

    def test_secure_dane_ee_and_ta_mismatch_fail(self):
        for target in (f"eebad.example.test:{self.ee_port}", f"tabad.example.test:{self.ta_port}"):
            with self.subTest(target=target):
                cp, doc, checks = self.tls(target)
                self.assertEqual(cp.returncode, 1, describe(cp))
                self.assertEqual(doc["dane"]["dnssec"], "secure")
                self.assertFalse(doc["dane"]["matched"])
                self.assertEqual(checks["dane"]["status"], "fail")
                self.assertIn("DANE fails", doc["verdict"])

    def test_pkix_usages_are_unusable_for_smtp(self):
        # RFC 7672 section 3.1.3: a secure PKIX-EE(1) record, matching or not, authenticates
        # nothing for SMTP; DANE senders then require TLS without authentication.
        cp, doc, checks = self.tls(f"pkix.example.test:{self.ee_port}")
        self.assertEqual(doc["dane"]["dnssec"], "secure", describe(cp))
        self.assertEqual(checks["dane"]["status"], "warn", describe(cp))
        self.assertIn("RFC 7672 section 3.1.3", checks["dane"]["detail"])
        self.assertIn("authenticate nothing", checks["dane"]["detail"])
        self.assertNotIn("DANE fails", doc["verdict"])

    def test_insecure_tlsa_is_reported_and_ignored(self):
        for host, would in (("mx1", "they would match;"), ("eebad", "they would not match either")):
            with self.subTest(host=host):
                cp, doc, checks = self.tls(f"{host}.unsigned.test:{self.ee_port}")
                self.assertEqual(doc["dane"]["dnssec"], "insecure", describe(cp))
                self.assertEqual(checks["dane"]["status"], "warn")
                self.assertIn("DANE senders ignore them (" + would, checks["dane"]["detail"])
                self.assertNotIn("DANE fails", doc["verdict"])

    def test_bogus_tlsa_fails_loudly(self):
        cp, doc, checks = self.tls(f"mx1.expired.test:{self.ee_port}")
        self.assertEqual(cp.returncode, 1, describe(cp))
        self.assertEqual(doc["dane"]["dnssec"], "bogus")
        self.assertEqual(checks["dane"]["status"], "fail")
        self.assertIn("expired on", checks["dane"]["detail"])
        self.assertIn("the TLSA records are bogus", doc["verdict"])

    def test_diagnose_checks_dane_of_the_deciding_mx(self):
        expected = ((f"mx1.example.test:{self.ee_port}", "ok", "matches the certificate", True),
                    (f"eebad.example.test:{self.ee_port}", "fail", "DANE senders will not deliver", False),
                    (f"mx1.unsigned.test:{self.ee_port}", "warn", "are insecure", None),
                    (f"pkix.example.test:{self.ee_port}", "warn", "authenticate nothing", None))
        for target, status, words, matched in expected:
            with self.subTest(target=target):
                cp = run_smtpsh(["diagnose", target, "--json", "--resolver", self.h.server,
                                 "--trust-anchor", self.h.anchor, "--dnsbl", "none",
                                 "--timeout", "5"], timeout=90)
                try:
                    doc = json.loads(cp.stdout)
                except ValueError:
                    self.fail(describe(cp))
                checks = {c["name"]: c for c in doc["checks"]}
                self.assertEqual(checks["dane"]["status"], status, describe(cp))
                self.assertIn(words, checks["dane"]["detail"])
                dane = doc["facts"]["dane"]
                self.assertEqual(dane["records"], 1)
                if matched is not None:
                    self.assertEqual(dane["dnssec"], "secure")
                    self.assertEqual(dane["matched"], matched)

    def test_diagnose_shows_the_mta_sts_record_with_its_dnssec_state(self):
        closed = free_port()  # nothing listens: the MTA-STS check does not need a session
        for domain, detail in (("nsec3.test", "policy id 20261202, DNSSEC secure"),
                               ("unsigned.test", "policy id 20261203, DNSSEC insecure"),
                               ("example.test", "no MTA-STS record, DNSSEC secure")):
            with self.subTest(domain=domain):
                cp = run_smtpsh(["diagnose", domain, "--json", "--port", str(closed), "--resolver",
                                 self.h.server, "--trust-anchor", self.h.anchor, "--dnsbl", "none",
                                 "--timeout", "3"], timeout=90)
                doc = json.loads(cp.stdout)
                checks = {c["name"]: c for c in doc["checks"]}
                self.assertEqual(checks["mta-sts"]["detail"], detail, describe(cp))

    def test_starttls_verify_dane(self):
        cp = run_smtpsh(["-e", f"""
            dns.servers{{"{self.h.server}"}}
            assert(dns.trust_anchor("{self.h.anchor}"))
            local function try(target)
              local s = assert(smtp.connect(target))
              assert(s:ehlo())
              local info, err = s:starttls{{verify = "dane"}}
              if info then
                local d = info.dane or {{}}
                print(target, "ok", tostring(d.matched), tostring(d.usable), tostring(d.dnssec), info.verified)
              else
                print(target, "err", err.reason or "-", err.dnssec or "-", tostring(err))
              end
              s:quit()
            end
            try("mx1.example.test:{self.ee_port}")
            try("eebad.example.test:{self.ee_port}")
            try("mx1.unsigned.test:{self.ee_port}")
            try("mx1.expired.test:{self.ee_port}")"""], timeout=60)
        self.assertEqual(cp.returncode, 0, describe(cp))
        lines = {line.split("\t")[0]: line.split("\t")[1:] for line in cp.stdout.splitlines()}
        ee = self.ee_port
        self.assertEqual(lines[f"mx1.example.test:{ee}"][:4], ["ok", "true", "nil", "true"], cp.stdout)
        self.assertEqual(lines[f"eebad.example.test:{ee}"][:2], ["err", "verify"], cp.stdout)
        # Insecure TLSA records are ignored: TLS without authentication, and why.
        self.assertEqual(lines[f"mx1.unsigned.test:{ee}"][:4], ["ok", "nil", "false", "insecure"], cp.stdout)
        self.assertEqual(lines[f"mx1.expired.test:{ee}"][:3], ["err", "-", "bogus"], cp.stdout)
        self.assertIn("a DANE sender would not deliver", lines[f"mx1.expired.test:{ee}"][3])


if __name__ == "__main__":
    unittest.main()
