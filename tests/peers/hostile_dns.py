#!/usr/bin/python3
"""A hostile DNS server (UDP and TCP on one port): one malformed answer per mode, for
smtpsh's robustness tests. Python stdlib only; the wire format is built by hand.

    /usr/bin/python3 tests/peers/hostile_dns.py MODE [--variant V] [--host 127.0.0.1]
                     [--lifetime 120]

Picks a port free for both UDP and TCP on the host (loopback only), prints ``PORT <n>`` on
stdout (flushed) and answers until it is killed, or exits by itself after ``--lifetime``
seconds (default 120) as a safety net. Over TCP every message is framed by its two-byte
length (RFC 1035 section 4.2.2) and a connection may carry several queries. Unless the mode
says otherwise, UDP and TCP get the same answer.

Every answer echoes the query's ID and question and has QR, RD and RA set. The "right"
records: A 127.0.0.42, AAAA ::42 (well, 0::2a), MX 10 mx.hostile.test, TXT "hello from
hostile.test", PTR/CNAME/NS hostile.test; any other type gets an empty answer (NODATA).

Modes:
  truncated          the right answer cut 5 bytes short (in the middle of its record); TC
                     is not set
  compression-loop   --variant self (default): the answer's owner name is a compression
                     pointer to itself; --variant cycle: two answers whose owner names point
                     at each other
  wrong-id           the right answer, but its ID is the query's ID XOR 0xFFFF (only that)
  other-question     the right ID, but the question (and answer) is ``other.test``
  lying-ancount      ANCOUNT says 5, one answer record follows
  bad-rdlength       one answer record whose RDLENGTH (0xFFF0) runs past the packet
  tc-then-hostile-tcp  UDP: TC set, no records. TCP, --variant short (default): a length
                     prefix announcing the right answer plus 100 bytes, the answer, then a
                     close; --variant loop: a well-framed answer with a self-pointing owner
                     name; --variant garbage: a well-framed message of 64 bytes 0xff
  huge-txt           UDP: TC set, no records. TCP: a TXT query gets 230 TXT records of 250
                     characters each (an RRset of about 60 KB); any other type NODATA
  silent             UDP and TCP: reads and discards, never answers (TCP connections are
                     held open until the client closes them)
"""

import argparse
import os
import socket
import struct
import sys
import threading

# The wire-format helpers of the other DNS peer beside this file: one copy of each.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dns_peer import bind_pair, encode_name, split_query  # noqa: E402

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
IDLE_LIMIT = 60.0
HUGE_COUNT = 230
HUGE_LEN = 250
VARIANTS = {"compression-loop": ("self", "cycle"),
            "tc-then-hostile-tcp": ("short", "loop", "garbage")}
MODES = ("truncated", "compression-loop", "wrong-id", "other-question", "lying-ancount",
         "bad-rdlength", "tc-then-hostile-tcp", "huge-txt", "silent")


# ---- wire format --------------------------------------------------------------------------

def parse_query(data):
    """(id, flags, question bytes, qtype) of a query, or None when it does not parse."""
    split = split_query(data)
    if split is None:
        return None
    qid, flags, question = split
    return qid, flags, question, struct.unpack("!H", question[-4:-2])[0]


def header(qid, query_flags, an, tc=False, qd=1):
    flags = 0x8080 | (query_flags & 0x0100) | (0x0200 if tc else 0)  # QR, RA, RD copied, TC
    return struct.pack("!HHHHHH", qid, flags, qd, an, 0, 0)


def rdata_for(qtype):
    if qtype == TYPES["A"]:
        return socket.inet_aton("127.0.0.42")
    if qtype == TYPES["AAAA"]:
        return socket.inet_pton(socket.AF_INET6, "::2a")
    if qtype == TYPES["MX"]:
        return struct.pack("!H", 10) + encode_name("mx.hostile.test")
    if qtype == TYPES["TXT"]:
        text = b"hello from hostile.test"
        return bytes([len(text)]) + text
    if qtype in (TYPES["PTR"], TYPES["CNAME"], TYPES["NS"]):
        return encode_name("hostile.test")
    return None


def record(owner, qtype, rdata, ttl=60, rdlength=None):
    """One resource record; `owner` is the encoded name (or a compression pointer)."""
    length = len(rdata) if rdlength is None else rdlength
    return owner + struct.pack("!HHIH", qtype, 1, ttl, length) + rdata


def pointer(offset):
    return struct.pack("!H", 0xC000 | offset)


def right_answer(qid, flags, question, qtype):
    rdata = rdata_for(qtype)
    if rdata is None:
        return header(qid, flags, 0) + question
    return header(qid, flags, 1) + question + record(pointer(12), qtype, rdata)


def answer(mode, variant, query, over_tcp):
    """The bytes to send for a parsed query (without TCP framing), or None for no answer."""
    qid, flags, question, qtype = query
    rtype = qtype if rdata_for(qtype) is not None else TYPES["A"]
    rdata = rdata_for(rtype)
    if mode == "silent":
        return None
    if mode == "truncated":
        whole = header(qid, flags, 1) + question + record(pointer(12), rtype, rdata)
        return whole[:-5]
    tcp_loop = mode == "tc-then-hostile-tcp" and over_tcp and variant == "loop"
    if mode == "compression-loop" or tcp_loop:
        first = 12 + len(question)
        if variant == "cycle":
            rr_len = 2 + 10 + len(rdata)
            second = first + rr_len
            return (header(qid, flags, 2) + question + record(pointer(second), rtype, rdata)
                    + record(pointer(first), rtype, rdata))
        return header(qid, flags, 1) + question + record(pointer(first), rtype, rdata)
    if mode == "wrong-id":
        return right_answer(qid ^ 0xFFFF, flags, question, qtype)
    if mode == "other-question":
        other = encode_name("other.test") + question[-4:]
        return right_answer(qid, flags, other, qtype)
    if mode == "lying-ancount":
        return header(qid, flags, 5) + question + record(pointer(12), rtype, rdata)
    if mode == "bad-rdlength":
        return header(qid, flags, 1) + question + record(pointer(12), rtype, rdata, rdlength=0xFFF0)
    if mode in ("tc-then-hostile-tcp", "huge-txt") and not over_tcp:
        return header(qid, flags, 0, tc=True) + question
    if mode == "tc-then-hostile-tcp":
        if variant == "garbage":
            return b"\xff" * 64
        return right_answer(qid, flags, question, qtype)  # framed short by serve_tcp
    if mode == "huge-txt":
        if qtype != TYPES["TXT"]:
            return header(qid, flags, 0) + question
        records = b""
        for i in range(HUGE_COUNT):
            text = (f"{i:04d}-" + "t" * HUGE_LEN)[:HUGE_LEN].encode()
            records += record(pointer(12), TYPES["TXT"], bytes([len(text)]) + text)
        return header(qid, flags, HUGE_COUNT) + question + records
    raise AssertionError(mode)


# ---- serving ------------------------------------------------------------------------------

def serve_udp(udp, opts):
    while True:
        try:
            data, peer = udp.recvfrom(65535)
        except OSError:
            continue
        query = parse_query(data)
        if query is None:
            continue
        reply = answer(opts.mode, opts.variant, query, over_tcp=False)
        if reply is not None:
            try:
                udp.sendto(reply, peer)
            except OSError:
                pass


def recv_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_conn(conn, opts):
    conn.settimeout(IDLE_LIMIT)
    try:
        while True:
            prefix = recv_exactly(conn, 2)
            if prefix is None:
                return
            data = recv_exactly(conn, struct.unpack("!H", prefix)[0])
            if data is None:
                return
            query = parse_query(data)
            if query is None or opts.mode == "silent":
                continue
            reply = answer(opts.mode, opts.variant, query, over_tcp=True)
            if reply is None:
                continue
            if opts.mode == "tc-then-hostile-tcp" and opts.variant == "short":
                conn.sendall(struct.pack("!H", len(reply) + 100) + reply)
                conn.shutdown(socket.SHUT_RDWR)
                return
            conn.sendall(struct.pack("!H", len(reply)) + reply)
    except OSError:
        pass
    finally:
        conn.close()


def serve_tcp(tcp, opts):
    tcp.listen(64)
    while True:
        try:
            conn, _ = tcp.accept()
        except OSError:
            continue
        threading.Thread(target=serve_conn, args=(conn, opts), daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=MODES)
    ap.add_argument("--variant")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--lifetime", type=float, default=120.0)
    opts = ap.parse_args()
    if opts.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("loopback addresses only")
    allowed = VARIANTS.get(opts.mode, ())
    if opts.variant is None:
        opts.variant = allowed[0] if allowed else None
    elif opts.variant not in allowed:
        ap.error(f"mode {opts.mode} takes no --variant {opts.variant}")
    threading.Timer(opts.lifetime, lambda: os._exit(0)).start()  # never outlive a test
    udp, tcp, port = bind_pair(opts.host)
    threading.Thread(target=serve_udp, args=(udp, opts), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(tcp, opts), daemon=True).start()
    print(f"PORT {port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
