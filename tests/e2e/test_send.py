"""`smtpsh send` as a swaks replacement, against aiosmtpd on loopback: STARTTLS (required,
optional, absent), implicit TLS, certificate verification, TLS versions and ciphers, AUTH over
TLS with the secret redacted, attachments (parsed back by Python's email package), a raw
message (--data), pipelining, and swaks' exit codes (--swaks-exit).

Every message is compared byte for byte with what the server stored: the server side is this
file run as a peer (`/usr/bin/python3 tests/e2e/test_send.py --peer ...`, aiosmtpd 1.4), which
writes each accepted message's `envelope.original_content` (CRLF kept, dot-stuffing undone,
final "." excluded) to a spool directory.

    /usr/bin/python3 -m unittest -v tests/e2e/test_send.py      (SMTPSH=/path/to/smtpsh)
"""

import base64
import contextlib
import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (PYTHON, SmtpshTestCase, describe, free_port, run_smtpsh,  # noqa: E402
                     scratch_dir)

USER = "alice"
PASSWORD = "tls-only s3cret!"
REFUSED = "nobody@example.test"  # the peer refuses this recipient with 550 5.1.1
TIMEOUT = "5"


# ============================================================================================
# The peer: aiosmtpd, imported only in the peer process (the tests run on any python3)

def peer_main(argv):
    import argparse
    import asyncio
    import logging
    import socket
    import ssl
    import warnings
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--implicit", action="store_true", help="TLS from the first byte")
    ap.add_argument("--require-tls", action="store_true", help="530 before STARTTLS")
    ap.add_argument("--auth", action="store_true", help="AUTH PLAIN/LOGIN required before MAIL")
    ap.add_argument("--pipelining", action="store_true", help="advertise PIPELINING")
    ap.add_argument("--spool", required=True)
    ap.add_argument("--lifetime", type=float, default=120.0)
    args = ap.parse_args(argv)

    def authenticator(server, session, envelope, mechanism, auth_data):
        good = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
                and auth_data.password == PASSWORD.encode())
        return AuthResult(success=good, auth_data=auth_data if good else None, handled=False)

    class Handler:
        count = 0

        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if args.pipelining:
                responses.insert(1, "250-PIPELINING")
            return responses

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.lower() == REFUSED:
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            self.count += 1
            base = os.path.join(args.spool, str(self.count))
            with open(base + ".eml", "wb") as f:
                f.write(envelope.original_content)
            meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                    "tls": session.ssl is not None or args.implicit,
                    "authenticated": bool(session.authenticated)}
            with open(base + ".json.tmp", "w") as f:
                json.dump(meta, f)
            os.replace(base + ".json.tmp", base + ".json")
            return "250 2.0.0 Message accepted"

        async def handle_exception(self, error):  # a failed handshake: no traceback on stderr
            return "500 Error: " + type(error).__name__

    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    kw = dict(hostname="send.test", ident="send-peer", timeout=30)
    if context and not args.implicit:
        kw.update(tls_context=context, require_starttls=args.require_tls)
    if args.auth:
        # Over STARTTLS, AUTH only after it (aiosmtpd cannot tell implicit TLS, hence False).
        kw.update(auth_required=True, authenticator=authenticator,
                  auth_require_tls=bool(context) and not args.implicit)

    async def serve():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        handler = Handler()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(handler, loop=loop, **kw), sock=sock,
                                          ssl=context if args.implicit else None)
        sys.stdout.write(f"PORT {sock.getsockname()[1]}\n")
        sys.stdout.flush()
        try:
            await asyncio.sleep(args.lifetime)
        finally:
            server.close()

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # stderr is a pipe nobody reads: keep it empty
    asyncio.run(serve())


@contextlib.contextmanager
def peer(*options):
    """This file's aiosmtpd peer with OPTIONS; yields (port, spool directory); stops it."""
    spool = scratch_dir("smtpsh-send-spool-")
    argv = [PYTHON, os.path.abspath(__file__), "--peer", "--spool", spool, *options]
    with harness._server(f"send peer {options}", argv, [r"PORT (\d+)\s*$"], 15) as ports:
        yield ports[0], spool


def spooled(spool, n=1, timeout=5.0):
    """The n-th message the peer stored: (bytes, metadata), waiting for it a little."""
    meta_path = os.path.join(spool, f"{n}.json")
    deadline = time.monotonic() + timeout
    while not os.path.exists(meta_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not os.path.exists(meta_path):
        return None, None
    with open(os.path.join(spool, f"{n}.eml"), "rb") as f:
        content = f.read()
    with open(meta_path) as f:
        return content, json.load(f)


def crlf(message):
    """What a receiver stores for a message sent with CRLF normalisation."""
    out = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return out if out.endswith(b"\r\n") or not out else out + b"\r\n"


def sent_message(doc):
    """The message as the client wrote it after DATA's 354, from a --json transcript: client
    lines up to the final ".", dot-stuffing undone, CRLF line ends. (The transcript keeps 50
    message lines: longer messages are checked otherwise.)"""
    lines, inside = [], False
    for e in doc["transcript"]:
        if e["dir"] == "S" and e["line"].startswith("354"):
            inside, lines = True, []
        elif inside and e["dir"] == "!" and "not shown" in e["line"]:
            raise AssertionError("the transcript does not hold the whole message")
        elif inside and e["dir"] == "C":
            if e["line"] == ".":
                break
            lines.append(e["line"][1:] if e["line"].startswith(".") else e["line"])
    return "".join(line + "\r\n" for line in lines).encode()


def mime_parameter(key, value):
    """A file name parameter as RFC 2045/2231 want it (what stdlib/mime.lua must write)."""
    if all(0x20 <= ord(c) <= 0x7e for c in value):
        return f'{key}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{key}*=UTF-8''" + urllib.parse.quote(value, safe="!#$&+^`|")


def expected_multipart(headers, boundary, body, attachments):
    """The multipart/mixed message, written out independently of smtpsh: `headers` as lines,
    the 7bit text `body`, then (name, content type, bytes) attachments in base64."""
    crlf_body = body.replace(b"\n", b"\r\n")
    out = b"".join(h + b"\r\n" for h in headers)
    out += b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
    out += b"This is a multi-part message in MIME format."
    out += (b"\r\n--" + boundary + b"\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            b"Content-Transfer-Encoding: 7bit\r\n\r\n" + crlf_body)
    for name, ctype, data in attachments:
        out += (b"\r\n--" + boundary + b"\r\n" + f"Content-Type: {ctype}; {mime_parameter('name', name)}\r\n"
                f"Content-Transfer-Encoding: base64\r\n"
                f"Content-Disposition: attachment; {mime_parameter('filename', name)}\r\n\r\n".encode()
                + base64.encodebytes(data).replace(b"\n", b"\r\n"))
    return out + b"\r\n--" + boundary + b"--\r\n"


def secret_forms(secret, user=USER):
    """The secret and the base64 forms an AUTH exchange would carry it in."""
    s, u = secret.encode(), user.encode()
    return [secret] + [base64.b64encode(b).decode() for b in (s, b"\0" + u + b"\0" + s)]


class SendTestCase(SmtpshTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = scratch_dir("smtpsh-send-")
        cls.cert, cls.key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        # A throwaway self-signed certificate for the loopback address and localhost.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cls.key,
                        "-out", cls.cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, timeout=60, capture_output=True)
        cls.password_file = os.path.join(d, "pw")
        with open(cls.password_file, "w") as f:
            f.write(PASSWORD + "\n")
        cls.dir = d

    def tls_peer(self, *options):
        return peer("--cert", self.cert, "--key", self.key, *options)

    def file(self, name, data):
        path = os.path.join(scratch_dir("smtpsh-send-files-"), name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def send(self, port, *args, stdin=None):
        return run_smtpsh(["send", "--server", f"127.0.0.1:{port}", "--from", "a@example.test",
                           "--timeout", TIMEOUT, *args], stdin=stdin, timeout=30)

    def send_json(self, port, *args, status=0, stdin=None):
        cp = self.send(port, *args, "--json", stdin=stdin)
        self.assertExit(cp, status)
        return cp, json.loads(cp.stdout)

    @staticmethod
    def client_lines(doc):
        return [e["line"] for e in doc["transcript"] if e["dir"] == "C"]

    def assertNoSecret(self, cp):
        for form in secret_forms(PASSWORD):
            self.assertNotIn(form, cp.stdout, f"secret in stdout{describe(cp)}")
            self.assertNotIn(form, cp.stderr, f"secret in stderr{describe(cp)}")


# ============================================================================================
# STARTTLS, AUTH and the message bytes

class TestStarttlsAuth(SendTestCase):
    def auth(self, mech="PLAIN"):
        return ["--auth", mech, "--user", USER, "--password-file", self.password_file]

    def test_tls_auth_plain_body_byte_for_byte(self):
        body = (b"first line\n.a leading dot\r\n..two dots\n.\nthe line above was a lone dot\n"
                b"caf\xc3\xa9 in UTF-8\n\nlast line without an end")
        body_file = self.file("body.txt", body)
        with self.tls_peer("--require-tls", "--auth") as (port, spool):
            cp, doc = self.send_json(port, "--to", "b@example.test", "--tls", *self.auth(),
                                     "--header", "Subject: over TLS", "--header", "X-Test: 1",
                                     "--body", "@" + body_file)
            stored, meta = spooled(spool)
        self.assertIsNotNone(stored, describe(cp))
        self.assertEqual(meta, {"mail_from": "a@example.test", "rcpt_tos": ["b@example.test"],
                                "tls": True, "authenticated": True})
        m = re.match(rb"Subject: over TLS\r\nX-Test: 1\r\nFrom: <a@example.test>\r\n"
                     rb"To: <b@example.test>\r\n(Date: [^\r\n]+)\r\n(Message-Id: [^\r\n]+)\r\n\r\n", stored)
        self.assertTrue(m, stored)
        self.assertRegex(m.group(1).decode(), r"^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000$")
        self.assertRegex(m.group(2).decode(), r"^Message-Id: <\d+\.\d+@smtpsh>$")
        expected = (b"Subject: over TLS\r\nX-Test: 1\r\nFrom: <a@example.test>\r\nTo: <b@example.test>\r\n"
                    + m.group(1) + b"\r\n" + m.group(2) + b"\r\n\r\n" + crlf(body))
        self.assertEqual(stored, expected)
        self.assertEqual(sent_message(doc), stored, "what the transcript says was sent")
        c = self.client_lines(doc)
        self.assertEqual(c[1], "STARTTLS", describe(cp))
        self.assertTrue(c[2].startswith("EHLO "), "EHLO again after TLS" + describe(cp))
        self.assertEqual(c[3], "AUTH PLAIN ***", describe(cp))
        self.assertEqual(doc["tls"]["version"], "TLSv1.3", describe(cp))
        self.assertIs(doc["ok"], True)
        self.assertNoSecret(cp)

    def test_auth_login_over_tls_text_output_redacted(self):
        with self.tls_peer("--require-tls", "--auth") as (port, spool):
            cp = self.send(port, "--to", "b@example.test", "--tls", *self.auth("LOGIN"))
            stored, _ = spooled(spool)
        self.assertOk(cp)
        self.assertIsNotNone(stored, describe(cp))
        self.assertIn("C   0.", cp.stdout)
        self.assertRegex(cp.stdout, r"(?m)^C +[\d.]+  \*\*\*$", "the LOGIN secret shown as ***" + describe(cp))
        self.assertNoSecret(cp)

    def test_without_tls_the_server_refuses_in_one_line(self):
        with self.tls_peer("--require-tls", "--auth") as (port, _):
            cp = self.send(port, "--to", "b@example.test", *self.auth())
            swaks = self.send(port, "--to", "b@example.test", *self.auth(), "--swaks-exit")
        self.assertOneLineError(cp, 1, "smtpsh send: auth refused: 530")
        self.assertExit(swaks, 28)
        self.assertNoSecret(cp)

    def test_attachments_mime_byte_for_byte_and_parsed_back(self):
        binary = bytes(range(256)) * 40 + b"\r\n.\r\n"  # not a multiple of 57: a short last line
        files = [self.file("blob.bin", binary), self.file("Report.PDF", b"%PDF-1.4\n%\xe2\xe3\n"),
                 self.file("caf\u00e9 notes.txt", b"plain\ntext\n")]
        with self.tls_peer("--auth") as (port, spool):
            cp, doc = self.send_json(port, "--to", "b@example.test", "--tls", *self.auth(),
                                     "--body", "see the attachments\n.dot line\n",
                                     *[x for f in files for x in ("--attach", f)])
            stored, meta = spooled(spool)
        self.assertIsNotNone(stored, describe(cp))
        want = [("blob.bin", "application/octet-stream", binary),
                ("Report.PDF", "application/pdf", b"%PDF-1.4\n%\xe2\xe3\n"),
                ("caf\u00e9 notes.txt", "text/plain", b"plain\ntext\n")]
        generated = [re.search(rb"(?m)^" + name + rb": [^\r\n]+", stored).group(0)
                     for name in (b"Subject", b"Date", b"Message-Id")]
        boundary = re.search(rb'boundary="([^"]+)"', stored).group(1)
        self.assertRegex(boundary, rb"^=_smtpsh_[0-9A-Za-z]{24}$")
        self.assertEqual(stored, expected_multipart(
            [b"From: <a@example.test>", b"To: <b@example.test>", *generated], boundary,
            b"see the attachments\n.dot line\n", want), "byte for byte")
        self.assertNotRegex(stored, rb"[^\r]\n|\r[^\n]", "every line end is CRLF")
        msg = email.message_from_bytes(stored, policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        self.assertEqual(msg["MIME-Version"], "1.0")
        self.assertTrue(msg["Date"] and msg["Message-Id"], stored[:400])
        parts = list(msg.iter_parts())
        self.assertEqual(len(parts), 4)
        self.assertEqual(parts[0].get_content_type(), "text/plain")
        # the parser keeps the CRLF of the wire; the body's last line end survives the boundary
        self.assertEqual(parts[0].get_content(), "see the attachments\r\n.dot line\r\n")
        for part, (name, ctype, data) in zip(parts[1:], want):
            self.assertEqual(part.get_content_disposition(), "attachment")
            self.assertEqual(part.get_filename(), name)
            self.assertEqual(part.get_content_type(), ctype)
            self.assertEqual(part["Content-Transfer-Encoding"], "base64")
            self.assertEqual(part.get_payload(decode=True), data, name)
        boundary = msg.get_boundary()
        for part in parts:
            self.assertNotIn(boundary, part.get_payload(decode=True).decode("latin-1"))
        for line in stored.split(b"\r\n"):
            if re.fullmatch(rb"[A-Za-z0-9+/=]+", line):
                self.assertLessEqual(len(line), 76, line)

    def test_data_file_taken_as_is(self):
        data = (b"From: raw@example.test\nTo: b@example.test\nSubject: raw\n\n"
                b".leading dot\nbare CR\rhere\r\nend\n.\n")  # swaks' closing dot is dropped
        path = self.file("message.eml", data)
        with self.tls_peer() as (port, spool):
            cp, doc = self.send_json(port, "--to", "b@example.test", "--tls", "--data", path)
            cp2 = self.send(port, "--to", "b@example.test", "--data", "-", stdin=b"Subject: stdin\n\nhi\n")
            stored, _ = spooled(spool, 1)
            stored2, meta2 = spooled(spool, 2)
        self.assertIsNotNone(stored, describe(cp))
        self.assertEqual(stored, b"From: raw@example.test\r\nTo: b@example.test\r\nSubject: raw\r\n\r\n"
                                 b".leading dot\r\nbare CR\r\nhere\r\nend\r\n")
        self.assertIn("..leading dot", self.client_lines(doc), "dot-stuffed on the wire")
        self.assertOk(cp2)
        self.assertEqual(stored2, b"Subject: stdin\r\n\r\nhi\r\n", describe(cp2))
        self.assertIs(meta2["tls"], False)


# ============================================================================================
# TLS modes, verification, versions

class TestTlsModes(SendTestCase):
    def test_tls_required_but_not_offered(self):
        with peer() as (port, spool):
            cp = self.send(port, "--to", "b@example.test", "--tls")
            swaks = self.send(port, "--to", "b@example.test", "--tls", "--swaks-exit")
            cpj, doc = self.send_json(port, "--to", "b@example.test", "--tls", status=1)
            stored, _ = spooled(spool, timeout=0.3)
        self.assertOneLineError(cp, 1, "smtpsh send: starttls: the server does not offer STARTTLS")
        self.assertExit(swaks, 29)
        self.assertIsNone(stored, "nothing may be delivered in plain text")
        self.assertEqual(doc["stage"], "starttls")
        self.assertEqual(self.client_lines(doc)[1:], ["QUIT"], describe(cpj))

    def test_tls_optional_goes_on_in_plain_text(self):
        with peer() as (port, spool):
            cp = self.send(port, "--to", "b@example.test", "--tls-optional", "--body", "plain\n")
            _, doc = self.send_json(port, "--to", "b@example.test", "--tls-optional-strict")
            stored, meta = spooled(spool)
        self.assertOk(cp)
        self.assertIn("STARTTLS not offered: going on in plain text", cp.stdout)
        self.assertNotRegex(cp.stdout, r"(?m)^C .*STARTTLS", describe(cp))
        self.assertTrue(stored.endswith(b"\r\n\r\nplain\r\n"), stored)
        self.assertIs(meta["tls"], False)
        self.assertEqual(doc["notes"], ["STARTTLS not offered: going on in plain text (--tls-optional)"])
        self.assertNotIn("tls", doc)

    def test_tls_optional_uses_tls_when_offered(self):
        with self.tls_peer() as (port, spool):
            cp, doc = self.send_json(port, "--to", "b@example.test", "--tls-optional")
            _, meta = spooled(spool)
        self.assertIn("STARTTLS", self.client_lines(doc), describe(cp))
        self.assertIs(meta["tls"], True)

    def test_tls_on_connect(self):
        with self.tls_peer("--implicit", "--auth") as (port, spool):
            cp, doc = self.send_json(port, "--to", "b@example.test", "--tls-on-connect",
                                     "--auth", "PLAIN", "--user", USER, "--password-file", self.password_file)
            stored, meta = spooled(spool)
        self.assertIsNotNone(stored, describe(cp))
        self.assertEqual(meta["authenticated"], True)
        self.assertNotIn("STARTTLS", self.client_lines(doc))
        self.assertTrue(doc["tls"]["version"].startswith("TLSv1."), describe(cp))
        self.assertEqual(sent_message(doc), stored)
        self.assertNoSecret(cp)

    def test_tls_on_connect_defaults_to_port_465_and_port_option(self):
        port = free_port()
        cp = run_smtpsh(["send", "--server", "127.0.0.1", "--tls-on-connect", "--from", "a@x.test",
                         "--to", "b@x.test", "--timeout", "2"], timeout=20)
        self.assertIn("connecting to 127.0.0.1:465", cp.stdout, describe(cp))
        cp = run_smtpsh(["send", "--server", "127.0.0.1", "--port", str(port), "--from", "a@x.test",
                         "--to", "b@x.test", "--timeout", "2", "--swaks-exit"], timeout=20)
        self.assertIn(f"connecting to 127.0.0.1:{port}", cp.stdout, describe(cp))
        self.assertOneLineError(cp, 2, "smtpsh send: connect")

    def test_tls_on_connect_against_a_plain_server_fails(self):
        with peer() as (port, _):
            cp = self.send(port, "--to", "b@example.test", "--tls-on-connect", "--swaks-exit")
        self.assertExit(cp, 29)
        self.assertEqual(len(cp.stderr.splitlines()), 1, describe(cp))

    def test_verify_fails_on_self_signed_and_passes_with_its_ca(self):
        with self.tls_peer() as (port, spool):
            bad = self.send(port, "--to", "b@example.test", "--tls", "--tls-verify")
            bad_swaks = self.send(port, "--to", "b@example.test", "--tls", "--tls-verify", "--swaks-exit")
            unverified = self.send(port, "--to", "b@example.test", "--tls")  # swaks' default: no check
            good = self.send(port, "--to", "b@example.test", "--tls", "--tls-verify", "--tls-ca-path", self.cert)
            sni = self.send(port, "--to", "b@example.test", "--tls", "--tls-verify", "--tls-ca-path",
                            self.cert, "--tls-sni", "localhost")
            wrong_name = self.send(port, "--to", "b@example.test", "--tls", "--tls-verify",
                                   "--tls-ca-path", self.cert, "--tls-sni", "other.example.test")
            _, meta = spooled(spool, 3)
        self.assertOneLineError(bad, 1, "smtpsh send: starttls: ")
        self.assertIn("verif", bad.stderr, describe(bad))
        self.assertExit(bad_swaks, 29)
        self.assertOk(unverified)
        self.assertOk(good)
        self.assertOk(sni)
        self.assertOneLineError(wrong_name, 1, "smtpsh send: starttls: ")
        self.assertIs(meta["tls"], True)

    def test_verify_with_a_hashed_ca_directory(self):
        # OpenSSL's CA directory as swaks takes it: certificates named by subject hash (c_rehash).
        hashed = os.path.join(self.dir, "ca-dir")
        empty = os.path.join(self.dir, "empty-ca-dir")
        os.makedirs(hashed)
        os.makedirs(empty)
        subject_hash = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", self.cert], check=True,
                                      capture_output=True, text=True, timeout=20).stdout.strip()
        shutil.copy(self.cert, os.path.join(hashed, subject_hash + ".0"))
        with self.tls_peer() as (port, spool):
            good = self.send(port, "--to", "b@example.test", "--tls", "--tls-verify", "--tls-ca-path", hashed)
            bad = self.send(port, "--to", "b@example.test", "--tls", "--tls-verify", "--tls-ca-path", empty)
            spooled(spool, 1)
        self.assertOk(good)
        self.assertOneLineError(bad, 1, "smtpsh send: starttls: ")
        self.assertIn("verif", bad.stderr, describe(bad))

    def test_tls_protocol_and_cipher(self):
        with self.tls_peer() as (port, _):
            _, v12 = self.send_json(port, "--to", "b@example.test", "--tls", "--tls-protocol", "tlsv1_2")
            _, v13 = self.send_json(port, "--to", "b@example.test", "--tls", "--tls-protocol",
                                "no_tlsv1,no_tlsv1_1,no_tlsv1_2")
            _, cipher = self.send_json(port, "--to", "b@example.test", "--tls", "--tls-protocol", "tlsv1_2",
                                       "--tls-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
            _, suite = self.send_json(port, "--to", "b@example.test", "--tls",
                                      "--tls-cipher", "TLS_CHACHA20_POLY1305_SHA256")
        self.assertEqual(v12["tls"]["version"], "TLSv1.2")
        self.assertEqual(v13["tls"]["version"], "TLSv1.3")
        self.assertEqual((cipher["tls"]["version"], cipher["tls"]["cipher"]),
                         ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"))
        self.assertEqual(suite["tls"]["cipher"], "TLS_CHACHA20_POLY1305_SHA256")


# ============================================================================================
# Pipelining, refused recipients, swaks' exit codes

class TestPipelineAndExitCodes(SendTestCase):
    def test_pipeline_sends_mail_rcpt_data_in_one_go(self):
        with self.tls_peer("--pipelining") as (port, spool):
            cp, doc = self.send_json(port, "--to", "b@example.test,c@example.test", "--tls", "--pipeline")
            _, plain = self.send_json(port, "--to", "b@example.test", "--tls")
            stored, meta = spooled(spool)
        self.assertEqual(meta["rcpt_tos"], ["b@example.test", "c@example.test"])
        self.assertEqual(sent_message(doc), stored)
        t = [(e["dir"], e["line"]) for e in doc["transcript"] if e["dir"] != "!"]
        mail = t.index(("C", "MAIL FROM:<a@example.test>"))
        self.assertEqual(t[mail:mail + 4], [("C", "MAIL FROM:<a@example.test>"), ("C", "RCPT TO:<b@example.test>"),
                                            ("C", "RCPT TO:<c@example.test>"), ("C", "DATA")], describe(cp))
        self.assertEqual(t[mail + 4][0], "S", "all four commands before the first reply" + describe(cp))
        t = [(e["dir"], e["line"]) for e in plain["transcript"] if e["dir"] != "!"]
        mail = t.index(("C", "MAIL FROM:<a@example.test>"))
        self.assertEqual(t[mail + 1][0], "S", "without --pipeline, one command at a time")

    def test_pipeline_without_pipelining_offered_goes_step_by_step(self):
        with peer() as (port, spool):
            cp, doc = self.send_json(port, "--to", "b@example.test", "--pipeline")
            stored, _ = spooled(spool)
        t = [(e["dir"], e["line"]) for e in doc["transcript"] if e["dir"] != "!"]
        mail = t.index(("C", "MAIL FROM:<a@example.test>"))
        self.assertEqual([d for d, _ in t[mail:mail + 6]], ["C", "S", "C", "S", "C", "S"], describe(cp))
        self.assertEqual(sent_message(doc), stored)

    def check_one_refused(self, *extra):
        with peer("--pipelining") as (port, spool):
            cp = self.send(port, "--to", f"b@example.test,{REFUSED}", *extra)
            swaks = self.send(port, "--to", f"b@example.test,{REFUSED}", "--swaks-exit", *extra)
            _, meta = spooled(spool)
        self.assertOneLineError(cp, 1, f"smtpsh send: rcpt refused: 550 5.1.1 <{REFUSED}>")
        self.assertIn("delivered to the 1 other(s)", cp.stderr)
        self.assertExit(swaks, 0)  # swaks: only "no RCPT accepted" is an error
        self.assertEqual(meta["rcpt_tos"], ["b@example.test"])

    def test_one_refused_recipient_step_by_step(self):
        self.check_one_refused()

    def test_one_refused_recipient_pipelined(self):
        self.check_one_refused("--pipeline")

    def test_every_recipient_refused(self):
        for extra in ([], ["--pipeline"]):
            with self.subTest(extra=extra), peer("--pipelining") as (port, spool):
                cp, doc = self.send_json(port, "--to", REFUSED, *extra, status=1)
                swaks = self.send(port, "--to", REFUSED, "--swaks-exit", *extra)
                stored, _ = spooled(spool, timeout=0.3)
                self.assertEqual(doc["stage"], "rcpt")
                self.assertExit(swaks, 24)
                self.assertIsNone(stored)

    def test_swaks_exit_codes(self):
        cases = []
        with peer("--auth") as (port, _):  # MAIL without AUTH: 530
            cases.append(("mail", self.send(port, "--to", "b@example.test", "--swaks-exit"), 23))
        cases.append(("connect", run_smtpsh(["send", "--server", f"127.0.0.1:{free_port()}", "--from", "a@x.test",
                                             "--to", "b@x.test", "--swaks-exit"], timeout=20), 2))
        cases.append(("usage", run_smtpsh(["send", "--server", "127.0.0.1", "--from", "a@x.test", "--to", "b@x.test",
                                           "--tls-verify", "--swaks-exit"], timeout=20), 1))
        # Refused inside the option parser (an unknown option, a bad number): swaks' 1 too.
        cases.append(("unknown option", run_smtpsh(["send", "--server", "127.0.0.1", "--from", "a@x.test",
                                                    "--to", "b@x.test", "--no-such", "--swaks-exit"], timeout=20), 1))
        cases.append(("bad number", run_smtpsh(["send", "--swaks-exit", "--server", "127.0.0.1", "--from", "a@x.test",
                                                "--to", "b@x.test", "--timeout", "soon"], timeout=20), 1))
        cases.append(("unknown option, smtpsh's codes", run_smtpsh(["send", "--server", "127.0.0.1", "--from",
                                                                    "a@x.test", "--to", "b@x.test", "--no-such"],
                                                                   timeout=20), 2))
        for name, cp, status in cases:
            with self.subTest(name=name):
                self.assertExit(cp, status)
                self.assertEqual(len(cp.stderr.splitlines()), 1, describe(cp))


# ============================================================================================
# The command line

class TestSwaksCommandLine(SendTestCase):
    def test_a_swaks_command_line_pasted_as_it_is(self):
        # swaks' short names, a single-dash long name and its spellings; a value that looks
        # like one of them (the body "-tls") is taken as a value.
        with self.tls_peer("--require-tls") as (port, spool):
            cp = run_smtpsh(["send", "-s", f"127.0.0.1:{port}", "-f", "a@example.test", "-t", "b@example.test",
                             "-tls", "-ah", "X-Note: swaks' -ah", "--add-header", "X-Other: yes", "--body", "-tls",
                             "--ehlo", "swaks.test", "-timeout", TIMEOUT], timeout=30)
            stored, meta = spooled(spool)
        self.assertIsNotNone(stored, describe(cp))
        self.assertEqual(meta, {"mail_from": "a@example.test", "rcpt_tos": ["b@example.test"],
                                "tls": True, "authenticated": False})
        self.assertIn(b"X-Note: swaks' -ah\r\nX-Other: yes\r\n", stored)
        self.assertTrue(stored.endswith(b"\r\n\r\n-tls\r\n"), stored)
        self.assertIn("C   0.", cp.stdout)
        self.assertRegex(cp.stdout, r"(?m)^C +[\d.]+  EHLO swaks\.test$", describe(cp))

    def test_a_password_on_the_command_line_is_refused(self):
        for args, status in ((["-ap", "s3cret-pw"], 2), (["--auth-password=s3cret-pw", "--swaks-exit"], 1)):
            with self.subTest(args=args):
                cp = run_smtpsh(["send", "-s", f"127.0.0.1:{free_port()}", "-f", "a@x.test", "-t", "b@x.test",
                                 "-a", "PLAIN", "-au", "me", *args], timeout=20)
                self.assertOneLineError(cp, status, "smtpsh send: ")
                self.assertIn("--password-file FILE", cp.stderr)
                self.assertNotIn("s3cret-pw", cp.stderr + cp.stdout)

    def test_an_unknown_single_dash_word_is_named(self):
        cp = run_smtpsh(["send", "-s", "127.0.0.1", "-f", "a@x.test", "-t", "b@x.test", "-bogus"], timeout=20)
        self.assertOneLineError(cp, 2, "smtpsh send: unknown option '-bogus'")


class TestSendUsage(SendTestCase):
    def usage_error(self, *args, prefix):
        cp = run_smtpsh(["send", "--server", f"127.0.0.1:{free_port()}", "--from", "a@x.test",
                         "--to", "b@x.test", *args], timeout=20)
        self.assertOneLineError(cp, 2, "smtpsh send: " + prefix)
        self.assertEqual(cp.stdout, "", describe(cp))

    def test_usage_errors_are_one_line(self):
        self.usage_error("--tls-verify", prefix="--tls-verify needs --tls")
        self.usage_error("--tls", "--tls-on-connect", prefix="choose one of --tls")
        self.usage_error("--tls", "--tls-protocol", "tlsv1,tlsv1_2", prefix="--tls-protocol: the versions allowed must be adjacent")
        self.usage_error("--tls", "--tls-protocol", "tlsv1_2,no_tlsv1", prefix="--tls-protocol: list versions")
        self.usage_error("--tls", "--tls-protocol", "tlsv9", prefix="--tls-protocol: unknown version 'tlsv9'")
        self.usage_error("--tls", "--tls-ca-path", "/nonexistent/ca.pem", prefix="cannot read the CA file")
        self.usage_error("--tls", "--tls-sni", "a\r\nRSET", prefix="--tls-sni must not contain a CR, LF or NUL")
        self.usage_error("--attach", "/nonexistent/file.pdf", prefix="cannot read the attachment /nonexistent/file.pdf")
        self.usage_error("--data", "/dev/null", "--attach", "/dev/null", prefix="--data is the whole message")
        self.usage_error("--attach", "/dev/null", "--header", "Content-Type: text/html",
                         prefix="--header Content-Type cannot go with --attach")
        self.usage_error("--server", "127.0.0.1:2525", "--port", "2526", prefix="--server names port 2525")
        self.usage_error("--quit-after", "never", prefix="--quit-after must be")

    def test_help_lists_every_option_with_defaults_and_an_example(self):
        cp = run_smtpsh(["send", "--help"])
        self.assertOk(cp)
        for option in ("--server", "--port", "--from", "--to", "--helo", "--header", "--body", "--attach",
                       "--data", "--auth", "--user", "--password-file", "--tls", "--tls-optional",
                       "--tls-on-connect", "--tls-protocol", "--tls-cipher", "--tls-verify", "--tls-ca-path",
                       "--tls-sni", "--pipeline", "--quit-after", "--swaks-exit", "--timeout", "--json"):
            self.assertRegex(cp.stdout, rf"(?m)^\s+{re.escape(option)}\b", option)
        self.assertIn("[default: 30]", cp.stdout)
        self.assertIn("25, 465 with --tls-on-connect", cp.stdout)
        self.assertIn("24 no RCPT accepted", cp.stdout)
        self.assertRegex(cp.stdout, r"(?m)^\s+smtpsh send --server ")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peer"]:
        peer_main(sys.argv[2:])
    else:
        unittest.main()
