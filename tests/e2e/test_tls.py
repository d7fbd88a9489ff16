"""TLS against real servers: aiosmtpd with STARTTLS pinned to TLS versions and test
certificates (tests/peers/tls_peer.py, tests/peers/make_certs.sh), servers that break
STARTTLS, and DANE with TLSA records served by NSD. `smtpsh tls` must report each exactly.

    /usr/bin/python3 -m unittest -v tests/e2e/test_tls.py      (SMTPSH=/path/to/smtpsh)
"""

import contextlib
import json
import os
import shutil
import subprocess
import time
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (LUA_DIR, REPO_ROOT, SmtpshTestCase, describe, dns_peer, run_smtpsh,  # noqa: E402
                     scenario, scratch_dir, test_certs, tls_peer)


def tls_json(*args):
    cp = run_smtpsh(["tls", *map(str, args), "--json", "--timeout", "5"], timeout=60)
    return cp, (json.loads(cp.stdout) if cp.stdout.strip() else None)


def tls_text(*args):
    return run_smtpsh(["tls", *map(str, args), "--timeout", "5"], timeout=60)


def make_leaf(certs, name, days, names):
    """A leaf signed by the test CA (EC P-256), valid from now for `days` days, with DNS
    `names`; returns (cert, key) paths in a scratch directory."""
    d = scratch_dir("smtpsh-leaf-")
    key, csr, cert, ext = (os.path.join(d, name + suffix) for suffix in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName = " + ", ".join("DNS:" + n for n in names) + "\n")
    for argv in (["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", key, "-subj", f"/CN={names[0]}", "-out", csr],
                 ["openssl", "x509", "-req", "-in", csr, "-CA", f"{certs}/ca.pem", "-CAkey",
                  f"{certs}/ca.key", "-set_serial", "0x2001", "-days", str(days), "-sha256",
                  "-extfile", ext, "-out", cert]):
        subprocess.run(argv, check=True, timeout=60, capture_output=True)
    return cert, key


class TestTlsApi(SmtpshTestCase):
    def test_lua_api(self):
        certs = test_certs()
        cert = ["--cert", f"{certs}/mx1-chain.pem", "--key", f"{certs}/mx1.key"]
        with contextlib.ExitStack() as stack:
            good = stack.enter_context(tls_peer("aiosmtpd", *cert, "--implicit"))
            bad = {mode: stack.enter_context(tls_peer("starttls-" + mode))["port"]
                   for mode in ("garbage", "close", "silent", "refuse")}
            cp = run_smtpsh([os.path.join(LUA_DIR, "tls_api.lua"), certs, str(good["port"]),
                             str(good["implicit"]), str(bad["garbage"]), str(bad["close"]),
                             str(bad["silent"]), str(bad["refuse"])], timeout=90)
        self.assertExit(cp, 0)
        self.assertIn(" 0 failed", cp.stdout, describe(cp))


class TestTlsCommand(SmtpshTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certs = test_certs()

    def peer(self, *args, cert="mx1"):
        key = "mx1" if cert == "mx1" else cert
        pem = f"{self.certs}/{cert}-chain.pem" if cert == "mx1" else f"{self.certs}/{cert}.pem"
        return tls_peer("aiosmtpd", "--cert", pem, "--key", f"{self.certs}/{key}.key", *args)

    def versions(self, doc):
        return {v["version"]: v for v in doc["versions"]}

    def test_tls13_only(self):
        with self.peer("--min", "tls1.3") as p:
            cp, doc = tls_json(f"127.0.0.1:{p['port']}", "--ca-file", f"{self.certs}/ca.pem")
        self.assertExit(cp, 0)
        self.assertEqual(doc["accepted"], ["tls1.3"])
        v = self.versions(doc)
        self.assertEqual(v["tls1.2"]["reason"], "alert")
        self.assertIn("protocol version", v["tls1.2"]["error"])
        self.assertEqual(v["tls1.3"]["negotiated"], "TLSv1.3")
        self.assertIn("accepts only TLS 1.3", doc["verdict"])
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(checks["versions"]["status"], "warn")
        self.assertEqual(checks["verify"]["status"], "ok")

    def test_tls12_only(self):
        with self.peer("--min", "tls1.2", "--max", "tls1.2") as p:
            cp, doc = tls_json(f"127.0.0.1:{p['port']}")
        self.assertExit(cp, 0)
        self.assertEqual(doc["accepted"], ["tls1.2"])
        v = self.versions(doc)
        self.assertEqual(v["tls1.3"]["reason"], "alert")
        self.assertEqual(v["tls1"]["reason"], "alert")
        self.assertEqual(doc["negotiated"]["version"], "TLSv1.2")

    LEGACY_VERDICT = "accepts only TLS 1.0-1.1: senders that require TLS 1.2 or newer cannot deliver over TLS"

    def test_tls10_11_only_is_a_version_mismatch(self):
        with self.peer("--min", "tls1", "--max", "tls1.1") as p:
            cp, doc = tls_json(f"127.0.0.1:{p['port']}", "--ca-file", f"{self.certs}/ca.pem")
            human = tls_text(f"127.0.0.1:{p['port']}")
        self.assertExit(cp, 1)
        self.assertEqual(doc["accepted"], ["tls1", "tls1.1"])
        v = self.versions(doc)
        # The server answers at its own version; this client refuses to go below TLS 1.2.
        self.assertEqual(v["tls1.2"]["reason"], "version")
        self.assertEqual(v["tls1.1"]["negotiated"], "TLSv1.1")
        self.assertEqual(doc["verdict"], self.LEGACY_VERDICT)
        self.assertEqual(doc["ok"], False)
        self.assertExit(human, 1)
        self.assertIn(f"verdict: {self.LEGACY_VERDICT}\n", human.stdout)
        self.assertRegex(human.stdout, r"  TLS 1.0 accepted  \S+")

    def test_tls10_11_only_shows_the_legacy_certificate(self):
        # The scenario server with tls {min = "tls1", max = "tls1.1"} (examples/servers/tls_old.lua):
        # the default handshake fails (OpenSSL 3 refuses the SHA-1 signatures of TLS 1.0/1.1),
        # the TLS 1.1 handshake worked, so its certificate is shown, and the failure is a note.
        with scenario("tls_old") as port:
            cp, doc = tls_json(f"127.0.0.1:{port}")
            human = tls_text(f"127.0.0.1:{port}")
        self.assertExit(cp, 1)
        self.assertEqual(doc["accepted"], ["tls1", "tls1.1"])
        self.assertEqual(doc["certificate_from"], "tls1.1")
        self.assertEqual(doc["chain"][0]["subject"], "CN=mx.tlsold.test")
        self.assertEqual(doc["chain"][0]["names"], ["mx.tlsold.test"])
        self.assertIn("error", doc["negotiated"])
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertNotIn("certificate", checks)  # no "no certificate" failure
        self.assertEqual(checks["handshake"]["status"], "skip")
        self.assertIn("the default handshake failed", checks["handshake"]["detail"])
        self.assertIn("the certificate above is from the TLS 1.1 handshake", checks["handshake"]["detail"])
        versions = checks["versions"]
        self.assertEqual(versions["status"], "fail")
        self.assertIn("senders that require TLS 1.2 or newer fail the handshake", versions["detail"])
        self.assertIn("opportunistic senders", versions["detail"])
        self.assertIn("Postfix on Debian 12 with its defaults", versions["detail"])
        self.assertIn("over TLS 1.1", versions["detail"])
        self.assertEqual(checks["expiry"]["status"], "ok")
        self.assertEqual(doc["verdict"], self.LEGACY_VERDICT)
        self.assertExit(human, 1)
        self.assertIn("  certificate 0: CN=mx.tlsold.test\n", human.stdout)
        self.assertIn("    names mx.tlsold.test\n", human.stdout)
        self.assertRegex(human.stdout, r"\n  skip  handshake +the default handshake failed \(")
        self.assertNotIn("fail  certificate", human.stdout)

    def test_address_target_names_printed_once_and_no_warning(self):
        # A certificate with many names, none of them the address probed: the names are listed
        # in the certificate block only, and not naming an address is normal for SMTP.
        names = [f"mx{i}.many.example.test" for i in range(12)]
        cert, key = make_leaf(self.certs, "many", 90, names)
        with tls_peer("aiosmtpd", "--cert", cert, "--key", key) as p:
            target = f"127.0.0.1:{p['port']}"
            human = tls_text(target, "--ca-file", f"{self.certs}/ca.pem")
            cp, doc = tls_json(target, "--ca-file", f"{self.certs}/ca.pem")
            named = tls_text(target, "--ca-file", f"{self.certs}/ca.pem", "--sni", "mx3.many.example.test")
        self.assertExit(human, 0)
        out = human.stdout
        self.assertEqual(out.count("mx11.many.example.test"), 1, describe(human))
        self.assertIn("    names " + ", ".join(names) + "\n", out)
        self.assertIn("  skip  name      the certificate does not name 127.0.0.1 (an IP address; its 12 names "
                      "are listed above)", out)
        self.assertIn("--sni NAME", out)
        self.assertNotIn("warn", out)
        self.assertIn("verdict: TLS is healthy\n", out)
        self.assertExit(cp, 0)
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(checks["name"]["status"], "skip")
        self.assertEqual(checks["verify"]["status"], "ok")
        self.assertEqual(doc["verify"]["name"], "127.0.0.1")
        self.assertFalse(doc["verify"]["name_matches"])
        self.assertEqual(len(doc["chain"][0]["names"]), 12)
        # --sni NAME checks that name (and verifies it) instead.
        self.assertExit(named, 0)
        self.assertIn("  ok    name      the certificate names mx3.many.example.test\n", named.stdout)

    def test_tls_never_reached_is_one_check(self):
        refused = harness.free_port()
        with scenario("busy") as busy:
            for port, name, words in ((busy, "greeting", "421 4.3.2"),
                                      (refused, "connect", "connection refused")):
                with self.subTest(check=name):
                    cp, doc = tls_json(f"127.0.0.1:{port}")
                    human = tls_text(f"127.0.0.1:{port}")
                    self.assertExit(cp, 1)
                    self.assertEqual(doc["versions"], [])
                    self.assertEqual(doc["accepted"], [])
                    self.assertEqual(len(doc["checks"]), 1, doc["checks"])
                    check = doc["checks"][0]
                    self.assertEqual((check["name"], check["status"]), (name, "fail"))
                    self.assertIn("TLS was never reached", check["detail"])
                    self.assertIn(words, check["detail"])
                    self.assertIn(words, doc["never_reached"]["message"])
                    self.assertIn("TLS was never reached", doc["verdict"])
                    self.assertExit(human, 1)
                    self.assertNotRegex(human.stdout, r"TLS 1\.[0-3] +(refused|accepted)")
                    self.assertEqual(len(human.stdout.splitlines()), 3, describe(human))
                    self.assertIn(f"  fail  {name}  TLS was never reached: ", human.stdout)
        self.assertEqual(doc["never_reached"]["stage"], "connect")

    def test_days_are_counted_in_words(self):
        cert, key = make_leaf(self.certs, "soon", 2, ["soon.example.test"])
        time.sleep(1.2)  # valid from the second it was made: a second later, 1 day and hours are left
        with tls_peer("aiosmtpd", "--cert", cert, "--key", key) as p:
            human = tls_text(f"127.0.0.1:{p['port']}", "--sni", "soon.example.test")
        self.assertExit(human, 0)
        self.assertIn("(1 day left)", human.stdout)
        self.assertRegex(human.stdout, r"\n  warn  expiry +expires on \S+ \(1 day left\)\n")
        self.assertNotIn("1 days", human.stdout)
        with self.peer(cert="expired") as p:
            expired = tls_text(f"127.0.0.1:{p['port']}")
        self.assertExit(expired, 1)
        # The certificate block of an expired certificate says so; no negative days.
        self.assertRegex(expired.stdout, r"2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z \(expired \d+ days ago\)")
        self.assertNotRegex(expired.stdout, r"-\d+ days? left")

    def test_expired_certificate(self):
        with self.peer(cert="expired") as p:
            cp, doc = tls_json(f"127.0.0.1:{p['port']}", "--ca-file", f"{self.certs}/ca.pem")
        self.assertExit(cp, 1)
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(checks["expiry"]["status"], "fail")
        self.assertIn("expired on 2021-01-01T00:00:00Z", checks["expiry"]["detail"])
        self.assertEqual(doc["verify"]["result"], "certificate has expired")
        self.assertLess(doc["chain"][0]["days_left"], 0)
        self.assertIn("expired", doc["verdict"])

    def test_wrong_host_name(self):
        with self.peer(cert="wronghost") as p:
            cp, doc = tls_json(f"127.0.0.1:{p['port']}", "--sni", "mx1.example.test",
                               "--ca-file", f"{self.certs}/ca.pem")
        self.assertExit(cp, 0)
        checks = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(checks["name"]["status"], "warn")
        self.assertIn("does not name mx1.example.test (it names other.example.test)",
                      checks["name"]["detail"])
        self.assertEqual(doc["verify"]["result"], "hostname mismatch")
        self.assertFalse(doc["verify"]["name_matches"])

    def test_implicit_tls(self):
        with self.peer("--implicit") as p:
            cp, doc = tls_json(f"127.0.0.1:{p['implicit']}", "--implicit")
        self.assertExit(cp, 0)
        self.assertEqual(doc["mode"], "implicit")
        self.assertEqual(doc["accepted"], ["tls1.2", "tls1.3"])
        self.assertEqual(doc["verify"]["result"], "self-signed certificate in certificate chain")

    def test_no_starttls_and_refusal(self):
        with harness.smtp_sink() as port:
            cp, doc = tls_json(f"127.0.0.1:{port}")
        self.assertExit(cp, 1)
        self.assertIn("offers no STARTTLS", doc["verdict"])
        with tls_peer("starttls-refuse") as p:
            cp, doc = tls_json(f"127.0.0.1:{p['port']}")
        self.assertExit(cp, 1)
        self.assertIn("refuses STARTTLS", doc["verdict"])
        self.assertIn("454", doc["checks"][0]["detail"])

    def test_broken_starttls_servers(self):
        for mode, reason in (("garbage", "not_tls"), ("close", "closed")):
            with self.subTest(mode=mode), tls_peer("starttls-" + mode) as p:
                cp, doc = tls_json(f"127.0.0.1:{p['port']}")
                self.assertExit(cp, 1)
                self.assertEqual([v["reason"] for v in doc["versions"]], [reason] * 4)
                self.assertEqual(doc["accepted"], [])

    def test_dane_with_tlsa_from_dns(self):
        with open(f"{self.certs}/mx1.spki.sha256") as f:
            spki = f.read().strip()
        with self.peer() as p:
            port = p["port"]
            zones = scratch_dir("smtpsh-zones-")
            for name in os.listdir(os.path.join(REPO_ROOT, "tests", "peers", "zones")):
                shutil.copy(os.path.join(REPO_ROOT, "tests", "peers", "zones", name), zones)
            with open(os.path.join(zones, "example.test.zone"), "a") as zone:
                zone.write(f"_{port}._tcp.mx1 300 IN TLSA 3 1 1 {spki}\n")
                zone.write("danebad 300 IN A 127.0.0.1\n")
                zone.write(f"_{port}._tcp.danebad 300 IN TLSA 3 1 1 {'00' * 32}\n")
            with dns_peer("nsd", "--zones", zones) as dns_port:
                resolver = f"127.0.0.1:{dns_port}"
                cp, good = tls_json(f"mx1.example.test:{port}", "--resolver", resolver)
                cp_bad, bad = tls_json(f"danebad.example.test:{port}", "--resolver", resolver)
                lua = run_smtpsh(["-e", f"""
                    dns.servers{{"{resolver}"}}
                    local s = assert(smtp.connect("mx1.example.test:{port}"))
                    assert(s:ehlo())
                    local info = assert(s:starttls{{verify = "dane"}})
                    print("DANE", info.dane.usable, info.dane.dnssec, info.verified)
                    local b = assert(smtp.connect("danebad.example.test:{port}"))
                    assert(b:ehlo())
                    local none, err = b:starttls{{verify = "dane", tlsa = dns.tlsa("danebad.example.test", {port})}}
                    print("BAD", none, err.reason)"""], timeout=30)
        self.assertExit(cp, 0)
        self.assertEqual(good["dane"]["matched"], True)
        # No signed zone and no trust anchor for it: smtpsh cannot validate the records.
        self.assertEqual(good["dane"]["dnssec"], "indeterminate")
        checks = {c["name"]: c for c in good["checks"]}
        self.assertEqual(checks["dane"]["status"], "warn")  # would match, but not DNSSEC-secure
        self.assertIn("DANE senders ignore them (they would match", checks["dane"]["detail"])
        self.assertExit(cp_bad, 0)
        self.assertEqual(bad["dane"]["matched"], False)
        self.assertNotIn("DANE fails", bad["verdict"])
        self.assertExit(lua, 0)
        # verify = "dane" ignores records that are not secure (RFC 7672 section 2.2): TLS
        # without authentication, and why; records given by the caller are used as given.
        self.assertIn("DANE\tfalse\tindeterminate\tfalse", lua.stdout)
        self.assertIn("BAD\tnil\tverify", lua.stdout)

    def test_bad_usage(self):
        for args, words in ((("--implicit",), "missing HOST"), (("x:99999",), "port"),
                            (("h", "--ca-file", "/nonexistent"), "cannot read --ca-file")):
            with self.subTest(args=args):
                cp = run_smtpsh(["tls", *args])
                self.assertOneLineError(cp, 2, "smtpsh tls: ")
                self.assertIn(words, cp.stderr)


class TestRawStarttls(SmtpshTestCase):
    def test_typing_starttls_switches_to_tls(self):
        certs = test_certs()
        with tls_peer("aiosmtpd", "--cert", f"{certs}/mx1-chain.pem", "--key", f"{certs}/mx1.key") as p:
            cp = run_smtpsh(["raw", f"127.0.0.1:{p['port']}"],
                            stdin="EHLO me\nSTARTTLS\nEHLO me\nMAIL FROM:<a@example.test>\nQUIT\n",
                            timeout=30)
        self.assertExit(cp, 0)
        out = cp.stdout
        self.assertIn("220 Ready to start TLS\n! TLS started: TLSv1.3 ", out)
        after = out.split("! TLS started", 1)[1]
        self.assertIn("250-AUTH LOGIN PLAIN", after)  # the EHLO answered over TLS
        self.assertIn("250 OK\n221 ", after)


if __name__ == "__main__":
    unittest.main()
