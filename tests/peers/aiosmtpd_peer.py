#!/usr/bin/python3
"""An aiosmtpd (1.4) SMTP server on loopback, for smtpsh's end-to-end tests.

    /usr/bin/python3 tests/peers/aiosmtpd_peer.py [--auth] [--spool DIR] [--host 127.0.0.1]
                                                  [--lifetime 60] [--recipients A,B,...]

Binds port 0 on the host itself, prints ``PORT <n>`` on stdout (flushed) and serves until
it is killed, or exits by itself after ``--lifetime`` seconds (default 60) as a safety net.

  --auth        advertise ``AUTH CRAM-MD5 LOGIN PLAIN`` without TLS and require it before
                MAIL (530 otherwise); the only valid credentials are user ``alice`` with
                password ``s3cret!pw``; a wrong secret gets ``535 5.7.8 Authentication
                credentials invalid``. CRAM-MD5 is implemented here (aiosmtpd has only
                PLAIN and LOGIN built in).
  --old-auth    (with --auth) the EHLO reply also carries the old form ``AUTH=LOGIN PLAIN``
                right after ``AUTH CRAM-MD5 LOGIN PLAIN``, as Postfix does
  --recipients  a comma-separated list of the addresses that exist: RCPT for any other gets
                ``550 5.1.1 <addr>: Recipient address rejected: User unknown`` (a recipient
                check, for ``smtpsh verify``)
  --spool DIR   write each accepted message as DIR/N.eml (N = 1, 2, ...): exactly the bytes
                aiosmtpd hands to the handler (``envelope.original_content``: the DATA
                lines with CRLF kept, the leading dot of dot-stuffed lines removed, the
                final ``.`` line excluded), then DIR/N.json with mail_from, rcpt_tos,
                mail_options, rcpt_options. The .eml is complete before the .json appears.

Notes on aiosmtpd 1.4.3 as used here: its EHLO reply never advertises PIPELINING (it still
reads commands one line at a time, so pipelined input works) nor CHUNKING (no BDAT); it
advertises SIZE 33554432, 8BITMIME, SMTPUTF8 (enabled here) and HELP.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, auth_mechanism

USER = b"alice"
PASSWORD = b"s3cret!pw"
HOSTNAME = "peer.test"


def authenticator(server, session, envelope, mechanism, auth_data):
    """PLAIN and LOGIN (aiosmtpd's built-ins) hand a LoginPassword of bytes."""
    if (isinstance(auth_data, LoginPassword) and auth_data.login == USER
            and auth_data.password == PASSWORD):
        return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


class PeerSMTP(SMTP):
    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server, args):
        """RFC 2195: challenge ``<random.time@host>``; the answer is base64 of
        ``user SP hex(HMAC-MD5(password, challenge))``."""
        if len(args) != 1:  # CRAM-MD5 has no initial response
            await server.push("501 5.5.2 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbelow(10**9)}.{int(time.time())}@{HOSTNAME}>".encode()
        answer = await server.challenge_auth(challenge)  # base64-encodes the challenge
        if not isinstance(answer, bytes):  # MISSING: "*" or bad base64, already answered
            return AuthResult(success=False, handled=True)
        user, _, digest = answer.partition(b" ")
        expected = hmac.new(PASSWORD, challenge, hashlib.md5).hexdigest().encode()
        if user == USER and hmac.compare_digest(digest, expected):
            return AuthResult(success=True, auth_data=LoginPassword(user, b""))
        return AuthResult(success=False, handled=False)


class Handler:
    def __init__(self, spool, recipients=None):
        self.spool = spool
        self.count = 0
        self.recipients = recipients

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # With --recipients, a recipient check as a real mailbox server makes it.
        if self.recipients is not None and address.lower() not in self.recipients:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.spool:
            self.count += 1
            base = os.path.join(self.spool, str(self.count))
            with open(base + ".eml", "wb") as f:
                f.write(envelope.original_content)
            meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                    "mail_options": list(envelope.mail_options),
                    "rcpt_options": list(envelope.rcpt_options)}
            with open(base + ".json.tmp", "w") as f:
                json.dump(meta, f)
            os.replace(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Message accepted"


class OldAuthHandler(Handler):
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        out = []
        for line in responses:
            out.append(line)
            if line.startswith("250-AUTH "):
                out.append("250-AUTH=LOGIN PLAIN")
        return out


async def serve(args):
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, 0))
    sock.listen(64)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    recipients = None
    if args.recipients is not None:
        recipients = {r.strip().lower() for r in args.recipients.split(",") if r.strip()}
    handler = (OldAuthHandler if args.old_auth else Handler)(args.spool, recipients)
    kw = dict(hostname=HOSTNAME, ident="aiosmtpd_peer", enable_SMTPUTF8=True, timeout=60,
              loop=loop)
    if args.auth:
        kw.update(auth_required=True, auth_require_tls=False, authenticator=authenticator)
    server = await loop.create_server(lambda: PeerSMTP(handler, **kw), sock=sock)
    sys.stdout.write(f"PORT {sock.getsockname()[1]}\n")
    sys.stdout.flush()
    try:
        await asyncio.sleep(args.lifetime)
    finally:
        server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--lifetime", type=float, default=60.0)
    ap.add_argument("--auth", action="store_true")
    ap.add_argument("--old-auth", action="store_true")
    ap.add_argument("--spool")
    ap.add_argument("--recipients", help="comma-separated addresses that exist; others get 550 5.1.1")
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("loopback addresses only")
    if args.old_auth and not args.auth:
        ap.error("--old-auth needs --auth")
    if args.spool:
        os.makedirs(args.spool, exist_ok=True)
    # aiosmtpd warns (through logging and warnings) about AUTH without TLS, which is
    # intended here; keep stderr for real errors only, so an unread pipe never fills up
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
