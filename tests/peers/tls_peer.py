#!/usr/bin/python3
"""TLS-speaking SMTP peers on loopback, for smtpsh's end-to-end tests.

    /usr/bin/python3 tests/peers/tls_peer.py MODE [options] [--host 127.0.0.1] [--lifetime 60]

Binds port 0 on the host, prints ``PORT <n>`` on stdout (flushed; in ``aiosmtpd`` mode with
``--implicit`` a second line ``IMPLICIT <m>``) and serves until SIGTERM/SIGINT, or exits by
itself after ``--lifetime`` seconds (default 60) as a safety net. Certificates come from
tests/peers/make_certs.sh.

Modes:
  aiosmtpd --cert FILE --key FILE [--min V] [--max V] [--implicit] [--require-tls]
           [--no-alerts]
                aiosmtpd 1.4 SMTP (hostname ``tls.test``), accepting every message with
                ``250 2.0.0 Message accepted``; STARTTLS offered with a PROTOCOL_TLS_SERVER
                context using FILE (a PEM chain, leaf first) and its key. V is one of tls1,
                tls1.1, tls1.2, tls1.3 and pins the minimum/maximum protocol version; when
                TLS 1.0 or 1.1 is allowed the ciphers are ``DEFAULT:@SECLEVEL=0`` (Debian's
                OpenSSL refuses them otherwise; so must the client). A --max below tls1.2
                without --min implies --min tls1. After STARTTLS the EHLO reply advertises
                ``AUTH LOGIN PLAIN``, which always fails (no authenticator).
    --implicit  also listen on a second port that is TLS from the first byte (port-465
                style, same context); EHLO there is answered as after STARTTLS (AUTH
                LOGIN PLAIN advertised, STARTTLS not).
    --no-alerts  keep asyncio's stock behaviour on a failed handshake: close the connection
                without sending the TLS alert OpenSSL produced (CPython gh-98078; by default
                the alert, e.g. protocol_version, is flushed first, as real MTAs do)
    --require-tls  on the STARTTLS port, every command but EHLO, NOOP, QUIT and STARTTLS
                (HELO too) gets ``530 Must issue a STARTTLS command first`` before TLS.
  starttls-garbage  ``220 garbage.test ESMTP``; EHLO gets ``250-garbage.test`` /
                ``250 STARTTLS``; STARTTLS gets ``220 Ready to start TLS`` followed by 200
                bytes of ``this is not TLS\\r\\n`` repeated, then everything the client
                sends is discarded until it closes
  starttls-close    the same, but the connection is closed right after the 220
  starttls-silent   the same, but nothing is sent after the 220; input is discarded and
                the connection stays open until the client closes it
  starttls-refuse   the same, but STARTTLS gets ``454 4.7.0 TLS not available due to local
                problem`` and the session goes on in plain text
  In all starttls-* modes: QUIT gets ``221 2.0.0 Bye`` and a close; HELO and every other
  command ``250 ok``, except DATA: ``354 go ahead``, the message up to the ``.`` line is
  discarded, then ``250 ok``. Any number of clients at once.

A failed TLS handshake (wrong version, client aborting on a bad certificate) ends only that
connection, silently: nothing is logged, so an unread stderr pipe never fills up.
"""

import argparse
import asyncio
import asyncio.sslproto as sslproto
import logging
import signal
import socket
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP

VERSIONS = {"tls1": ssl.TLSVersion.TLSv1, "tls1.1": ssl.TLSVersion.TLSv1_1,
            "tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}
GARBAGE = (b"this is not TLS\r\n" * 12)[:200]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Message accepted"

    async def handle_exception(self, error):
        # aiosmtpd would log.exception() every failed STARTTLS handshake (TLSSetupException)
        return "500 Error: " + type(error).__name__


def send_handshake_alerts():
    """Works around CPython gh-98078 (asyncio drops the fatal alert of a failed handshake;
    fixed upstream the same way: flush the outgoing BIO before closing)."""
    original = sslproto.SSLProtocol._on_handshake_complete

    def on_handshake_complete(self, handshake_exc):
        if handshake_exc is not None and self._transport is not None:
            try:
                self._process_outgoing()
            except Exception:  # the connection may be gone already
                pass
        return original(self, handshake_exc)

    sslproto.SSLProtocol._on_handshake_complete = on_handshake_complete


def tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    lo = VERSIONS[args.min] if args.min else None
    hi = VERSIONS[args.max] if args.max else None
    if lo is None and hi is not None and hi < ssl.TLSVersion.TLSv1_2:
        lo = ssl.TLSVersion.TLSv1
    if lo is not None and lo < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if lo is not None:
        ctx.minimum_version = lo
    if hi is not None:
        ctx.maximum_version = hi
    return ctx


def listening_socket(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def discard(reader):
    while await reader.read(65536):
        pass


async def scripted_session(mode, reader, writer):
    async def say(line):
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    try:
        await say("220 garbage.test ESMTP")
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                await say("250-garbage.test\r\n250 STARTTLS")
            elif verb == "QUIT":
                await say("221 2.0.0 Bye")
                return
            elif verb == "DATA":
                await say("354 go ahead")
                while (line := await reader.readline()) not in (b".\r\n", b".\n", b""):
                    pass
                await say("250 ok")
            elif verb == "STARTTLS" and mode == "starttls-refuse":
                await say("454 4.7.0 TLS not available due to local problem")
            elif verb == "STARTTLS":
                await say("220 Ready to start TLS")
                if mode == "starttls-close":
                    return
                if mode == "starttls-garbage":
                    writer.write(GARBAGE)
                    await writer.drain()
                await discard(reader)
                return
            else:
                await say("250 ok")
    except (ConnectionError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve(args):
    loop = asyncio.get_running_loop()
    # a handshake that fails inside asyncio's SSL layer is reported here; keep quiet
    loop.set_exception_handler(lambda loop, context: None)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sock = listening_socket(args.host)
    servers = []
    lines = [f"PORT {sock.getsockname()[1]}"]
    if args.mode == "aiosmtpd":
        if not args.no_alerts:
            send_handshake_alerts()
        ctx = tls_context(args)
        handler = Handler()
        kw = dict(hostname="tls.test", ident="tls_peer", timeout=60, loop=loop)
        servers.append(await loop.create_server(
            lambda: SMTP(handler, tls_context=ctx, require_starttls=args.require_tls, **kw),
            sock=sock))
        if args.implicit:
            isock = listening_socket(args.host)
            # aiosmtpd cannot tell that this transport is already TLS: auth_require_tls=False
            # makes it advertise AUTH as it does after STARTTLS
            servers.append(await loop.create_server(
                lambda: SMTP(handler, auth_require_tls=False, **kw), sock=isock, ssl=ctx,
                ssl_handshake_timeout=30))
            lines.append(f"IMPLICIT {isock.getsockname()[1]}")
    else:
        servers.append(await asyncio.start_server(
            lambda r, w: scripted_session(args.mode, r, w), sock=sock))
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    try:
        await asyncio.wait_for(stop.wait(), args.lifetime)
    except asyncio.TimeoutError:
        pass
    finally:
        for server in servers:
            server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["aiosmtpd", "starttls-garbage", "starttls-close",
                                     "starttls-silent", "starttls-refuse"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--lifetime", type=float, default=60.0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--min", choices=sorted(VERSIONS))
    ap.add_argument("--max", choices=sorted(VERSIONS))
    ap.add_argument("--implicit", action="store_true")
    ap.add_argument("--require-tls", action="store_true")
    ap.add_argument("--no-alerts", action="store_true")
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("loopback addresses only")
    if args.mode == "aiosmtpd" and not (args.cert and args.key):
        ap.error("aiosmtpd mode needs --cert and --key")
    if args.mode != "aiosmtpd" and (args.cert or args.key or args.min or args.max
                                    or args.implicit or args.require_tls or args.no_alerts):
        ap.error("TLS options are for aiosmtpd mode only")
    if args.min and args.max and VERSIONS[args.min] > VERSIONS[args.max]:
        ap.error("--min is above --max")
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
