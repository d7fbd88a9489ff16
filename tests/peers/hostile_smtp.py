#!/usr/bin/python3
"""A hostile SMTP server: one protocol fault per mode, for smtpsh's robustness tests.

    /usr/bin/python3 tests/peers/hostile_smtp.py MODE [--stage STAGE] [--variant V]
                     [--count N] [--size BYTES] [--cert FILE --key FILE]
                     [--host 127.0.0.1] [--lifetime 120]

Binds port 0 on the host (loopback only), prints ``PORT <n>`` on stdout (flushed) and serves
every connection in its own thread until it is killed, or exits by itself after
``--lifetime`` seconds (default 120) as a safety net. Python stdlib only.

Outside its fault every mode speaks enough SMTP: the greeting ``220 hostile.test ESMTP
ready``; EHLO gets ``250-hostile.test greets you`` / ``250-PIPELINING`` / ``250-STARTTLS`` (in
the starttls-* modes only) / ``250-AUTH PLAIN LOGIN`` / ``250 8BITMIME``; HELO, RSET and NOOP
``250 2.0.0 ok``; MAIL ``250 2.1.0 sender ok``; RCPT ``250 2.1.5 recipient ok``; DATA ``354 go
ahead``, then after the ``.`` line ``250 2.0.0 queued``; AUTH ``235 2.7.0 ok`` (LOGIN after its
two 334 steps); QUIT ``221 2.0.0 bye`` and a close; STARTTLS ``454 4.7.0 TLS not available``;
anything else ``500 5.5.1 unknown command``.

Modes. STAGE (``--stage``) is where the fault happens: ``banner`` (instead of the greeting),
``ehlo``, ``mail`` or ``rcpt`` (instead of that command's reply); the default is given per
mode. CODE below is the code that stage normally uses (220 for the banner, 250 otherwise).
  good               no fault (also the "plain server" for a client that tries implicit TLS)
  nul                NUL bytes inside reply lines: ``CODE-hostile\\0test`` / ``CODE o\\0k``
                     (default stage ehlo)
  bare-cr            a reply whose lines are separated by bare CRs, ended by one CRLF:
                     ``CODE-hostile.test\\rCODE-PIPELINING\\rCODE ok\\r\\n`` (default ehlo)
  longline           ``CODE-`` and then --size bytes (default 10 MiB) of ``x`` without any
                     CRLF; then reads and discards until the client closes (default banner)
  many-lines         --count (default 100000) continuation lines ``CODE-x``, then
                     ``CODE ok`` (default ehlo)
  code-change        the code changes inside a multi-line reply: ``CODE-hostile.test`` /
                     ``251 changed`` (``221 changed`` at the banner) (default ehlo)
  bad-code           a code that is not three digits; --variant short ``25 ok``, long
                     ``2500 ok``, alpha ``abc ok`` (default short, stage ehlo)
  trickle            the reply of the stage (default banner) one byte per second
  silent             accept, read and discard, never send anything
  rst                the first two lines of a multi-line reply (``CODE-hostile.test first``,
                     ``CODE-second line``), 300 ms, then a TCP reset (SO_LINGER 0 close)
                     (default ehlo)
  rst-after-accept   accept and reset at once (SO_LINGER 0 close), before any byte
  unsolicited        an extra ``250 2.0.0 extra unsolicited line`` in the same write as the
                     reply of the stage (banner: right after the greeting; ehlo: right after
                     the EHLO reply), before any command asks for it (default banner)
  endless-334        every command but EHLO/HELO/QUIT, and every line after AUTH, is answered
                     ``334 VXNlcm5hbWU6``: AUTH never ends, MAIL and RCPT get 334 too
  echo-secret        ``AUTH PLAIN <blob>`` (or the blob after a ``334``) gets ``535 5.7.8
                     Authentication failed for <blob>`` (the base64 blob echoed); AUTH LOGIN
                     gets the two 334 prompts, then ``535 5.7.8 Authentication failed for
                     <decoded password>``
  starttls-close     STARTTLS gets ``220 2.0.0 ready to start TLS``, then a close
  starttls-garbage   the 220, then 256 bytes of binary garbage (0xde 0xad 0xbe 0xef ...)
                     instead of a ServerHello; then reads and discards
  starttls-http      the 220, then (once the ClientHello arrived) ``HTTP/1.1 400 Bad
                     Request`` headers and a close
  starttls-stall     the 220, then reads the ClientHello and never answers
  starttls-half      the 220, then a real TLS server (ssl.MemoryBIO, --cert/--key, e.g. the
                     test certificates of make_certs.sh) answers the ClientHello: only the
                     first 300 bytes of its flight are sent, then nothing more
"""

import argparse
import base64
import os
import socket
import ssl
import struct
import sys
import threading
import time

READ_CHUNK = 65536
IDLE_LIMIT = 60.0           # no connection waits for its client longer than this
HOSTNAME = "hostile.test"
EHLO_LINES = [f"{HOSTNAME} greets you", "PIPELINING", "AUTH PLAIN LOGIN", "8BITMIME"]
EHLO_TLS_LINES = [f"{HOSTNAME} greets you", "PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN",
                  "8BITMIME"]
EXTRA = b"250 2.0.0 extra unsolicited line\r\n"
GARBAGE = bytes([0xde, 0xad, 0xbe, 0xef]) * 64
HTTP_400 = (b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n")
HALF_BYTES = 300

MODES = {  # mode -> default stage (None: the mode has no stage)
    "good": None, "plain-for-implicit": None, "nul": "ehlo", "bare-cr": "ehlo",
    "longline": "banner", "many-lines": "ehlo", "code-change": "ehlo", "bad-code": "ehlo",
    "trickle": "banner", "silent": None, "rst": "ehlo", "rst-after-accept": None,
    "unsolicited": "banner", "endless-334": None, "echo-secret": None,
    "starttls-close": "starttls", "starttls-garbage": "starttls", "starttls-http": "starttls",
    "starttls-stall": "starttls", "starttls-half": "starttls",
}
STAGES = ("banner", "ehlo", "mail", "rcpt")
BAD_CODES = {"short": "25 ok", "long": "2500 ok", "alpha": "abc ok"}


class Closed(Exception):
    """The client went away (or the idle limit passed)."""


class Conn:
    def __init__(self, sock, opts):
        self.sock = sock
        self.opts = opts
        self.buf = b""
        sock.settimeout(IDLE_LIMIT)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            raise Closed()

    def reply(self, code, lines):
        """A (multi-line) reply: CODE-line ... CODE line."""
        out = b""
        for i, text in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out += f"{code}{sep}{text}\r\n".encode()
        return out

    def readline(self):
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(READ_CHUNK)
            except OSError:
                raise Closed()
            if not data:
                raise Closed()
            self.buf += data
            if len(self.buf) > 1 << 20:
                raise Closed()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_tls_record(self):
        """One whole TLS record (what a ClientHello starts with), bytes already buffered first."""
        data, self.buf = self.buf, b""
        deadline = time.monotonic() + IDLE_LIMIT
        while True:
            if len(data) >= 5:
                need = 5 + struct.unpack("!H", data[3:5])[0]
                if len(data) >= need:
                    return data
            if time.monotonic() > deadline:
                raise Closed()
            try:
                chunk = self.sock.recv(READ_CHUNK)
            except OSError:
                raise Closed()
            if not chunk:
                raise Closed()
            data += chunk

    def drain(self):
        """Reads and discards until the client closes (or the idle limit)."""
        try:
            while self.sock.recv(READ_CHUNK):
                pass
        except OSError:
            pass
        raise Closed()

    def reset(self):
        """Closes with a TCP RST instead of a FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()
        raise Closed()


def fault_reply(conn, mode, opts, code):
    """Sends the faulty reply of `mode` where a reply with `code` was due. Returns normally
    when the session goes on after it; raises Closed when it does not."""
    if mode == "nul":
        conn.send(f"{code}-hostile\0test\r\n{code} o\0k\r\n".encode())
    elif mode == "bare-cr":
        conn.send(f"{code}-{HOSTNAME}\r{code}-PIPELINING\r{code} ok\r\n".encode())
    elif mode == "longline":
        conn.send(f"{code}-".encode())
        chunk = b"x" * 65536
        left = opts.size
        while left > 0:
            conn.send(chunk[:left])
            left -= len(chunk)
        conn.drain()
    elif mode == "many-lines":
        conn.send(f"{code}-{HOSTNAME}\r\n".encode())
        line = f"{code}-x\r\n".encode()
        batch = line * 1000
        for _ in range(opts.count // 1000):
            conn.send(batch)
        conn.send(line * (opts.count % 1000))
        conn.send(f"{code} ok\r\n".encode())
    elif mode == "code-change":
        other = 221 if code == 220 else 251
        conn.send(f"{code}-{HOSTNAME}\r\n{other} changed\r\n".encode())
    elif mode == "bad-code":
        conn.send(BAD_CODES[opts.variant].encode() + b"\r\n")
    elif mode == "trickle":
        text = (f"{code} {HOSTNAME} ESMTP trickling one byte a second\r\n" if code == 220 else
                f"{code}-{HOSTNAME} trickling\r\n{code} ok\r\n").encode()
        for i in range(len(text)):
            conn.send(text[i:i + 1])
            time.sleep(1.0)
    elif mode == "rst":
        conn.send(f"{code}-{HOSTNAME} first\r\n{code}-second line\r\n".encode())
        time.sleep(0.3)
        conn.reset()
    elif mode == "unsolicited":
        normal = (conn.reply(220, [f"{HOSTNAME} ESMTP ready"]) if code == 220 else
                  conn.reply(250, ehlo_lines(mode)))
        conn.send(normal + EXTRA)
    else:
        raise AssertionError(mode)


def starttls_fault(conn, mode, opts):
    conn.send(b"220 2.0.0 ready to start TLS\r\n")
    if mode == "starttls-close":
        conn.sock.shutdown(socket.SHUT_RDWR)
        raise Closed()
    if mode == "starttls-garbage":
        conn.send(GARBAGE)
        conn.drain()
    hello = conn.read_tls_record()
    if mode == "starttls-http":
        conn.send(HTTP_400)
        conn.sock.shutdown(socket.SHUT_RDWR)
        raise Closed()
    if mode == "starttls-stall":
        conn.drain()
    # starttls-half: a real server flight, cut short
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(hello)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError:
        pass
    flight = outgoing.read()
    conn.send(flight[:min(HALF_BYTES, max(1, len(flight) // 2))])
    conn.drain()


def ehlo_lines(mode):
    """STARTTLS is offered in the starttls-* modes only."""
    return EHLO_TLS_LINES if mode.startswith("starttls-") else EHLO_LINES


def read_message(conn):
    while True:
        line = conn.readline()
        if line == b".":
            return


def session(conn, opts):
    mode, stage = opts.mode, opts.stage
    if mode == "rst-after-accept":
        conn.reset()
    if mode == "silent":
        conn.drain()
    if stage == "banner":
        fault_reply(conn, mode, opts, 220)
    else:
        conn.send(b"220 " + HOSTNAME.encode() + b" ESMTP ready\r\n")
    while True:
        line = conn.readline()
        text = line.decode("latin-1")
        verb = text.split(" ", 1)[0].upper()
        arg = text[len(verb):].strip()
        if verb == "QUIT":
            conn.send(b"221 2.0.0 bye\r\n")
            conn.sock.shutdown(socket.SHUT_RDWR)
            raise Closed()
        if mode == "endless-334" and verb not in ("EHLO", "HELO"):
            conn.send(b"334 VXNlcm5hbWU6\r\n")
            continue
        if stage == verb.lower() and stage in STAGES:
            fault_reply(conn, mode, opts, 250)
            continue
        if verb == "EHLO":
            conn.send(conn.reply(250, ehlo_lines(mode)))
        elif verb in ("HELO", "RSET", "NOOP"):
            conn.send(b"250 2.0.0 ok\r\n")
        elif verb == "MAIL":
            conn.send(b"250 2.1.0 sender ok\r\n")
        elif verb == "RCPT":
            conn.send(b"250 2.1.5 recipient ok\r\n")
        elif verb == "DATA":
            conn.send(b"354 go ahead\r\n")
            read_message(conn)
            conn.send(b"250 2.0.0 queued\r\n")
        elif verb == "STARTTLS":
            if mode.startswith("starttls-"):
                starttls_fault(conn, mode, opts)
            conn.send(b"454 4.7.0 TLS not available\r\n")
        elif verb == "AUTH":
            auth(conn, mode, arg)
        else:
            conn.send(b"500 5.5.1 unknown command\r\n")


def auth(conn, mode, arg):
    words = arg.split()
    mech = words[0].upper() if words else ""
    if mech == "PLAIN":
        blob = words[1] if len(words) > 1 else None
        if blob is None:
            conn.send(b"334 \r\n")
            blob = conn.readline().decode("latin-1")
        if mode == "echo-secret":
            conn.send(f"535 5.7.8 Authentication failed for {blob}\r\n".encode("latin-1"))
        else:
            conn.send(b"235 2.7.0 ok\r\n")
    elif mech == "LOGIN":
        if len(words) < 2:
            conn.send(b"334 VXNlcm5hbWU6\r\n")
            conn.readline()
        conn.send(b"334 UGFzc3dvcmQ6\r\n")
        password = conn.readline()
        if mode == "echo-secret":
            try:
                decoded = base64.b64decode(password, validate=False)
            except ValueError:
                decoded = password
            conn.send(b"535 5.7.8 Authentication failed for " + decoded.replace(b"\r", b"")
                      .replace(b"\n", b"") + b"\r\n")
        else:
            conn.send(b"235 2.7.0 ok\r\n")
    else:
        conn.send(b"504 5.5.4 mechanism not supported\r\n")


def handle(sock, opts):
    conn = Conn(sock, opts)
    try:
        session(conn, opts)
    except Exception:  # Closed, OSError, a TLS library error: the connection just ends
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--stage", choices=STAGES + ("starttls",))
    ap.add_argument("--variant", choices=sorted(BAD_CODES), default="short")
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--size", type=int, default=10 * 1024 * 1024)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--lifetime", type=float, default=120.0)
    opts = ap.parse_args()
    if opts.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("loopback addresses only")
    default = MODES[opts.mode]
    if opts.stage is None:
        opts.stage = default
    elif default is None or (default == "starttls") != (opts.stage == "starttls"):
        ap.error(f"mode {opts.mode} takes no --stage {opts.stage}")
    if opts.mode == "starttls-half" and not (opts.cert and opts.key):
        ap.error("starttls-half needs --cert and --key")
    if not 0 <= opts.count <= 10_000_000 or not 0 <= opts.size <= 1 << 30:
        ap.error("--count or --size out of range")
    return opts


def main():
    opts = parse()
    threading.Timer(opts.lifetime, lambda: os._exit(0)).start()  # never outlive a test
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((opts.host, 0))
    srv.listen(64)
    print(f"PORT {srv.getsockname()[1]}", flush=True)
    while True:
        try:
            sock, _ = srv.accept()
        except InterruptedError:
            continue
        threading.Thread(target=handle, args=(sock, opts), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
