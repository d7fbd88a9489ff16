#!/usr/bin/python3
"""A real TCP server with one scripted behaviour per mode, for smtpsh's end-to-end tests.

    /usr/bin/python3 tests/peers/tcp_peer.py MODE [ARGS...] [--host 127.0.0.1] [--lifetime 60]

Binds port 0 on the host, prints ``PORT <n>`` on stdout (flushed) and serves until it is
killed, or exits by itself after ``--lifetime`` seconds (default 60) as a safety net.

Modes (every connection gets the same treatment):
  lines TEXT...   send each TEXT followed by CRLF, then echo back every line received
                  (CRLF-terminated) until the client closes
  bare-lf         send ``one\\ntwo\\r\\nthree\\n`` then wait (read and discard) until the client closes
  partial         send ``abc`` without a newline, then close
  silent          accept, read and discard, never send
  longline N      send N bytes of ``x`` with no newline, then wait until the client closes
  bytes           send exactly ``0123456789`` then close
  backlog         listen with backlog 0 and never accept; 3 filler connections to itself
                  fill the accept queue so that further connects stall (connect timeout
                  on loopback)
"""

import argparse
import os
import socket
import sys
import threading
import time

READ_CHUNK = 65536
CONN_IDLE_LIMIT = 60.0  # no connection lives longer than the process anyway


def sendall(conn, data):
    try:
        conn.sendall(data)
        return True
    except OSError:
        return False


def drain(conn):
    """Reads and discards until the client closes (or an error, or the idle limit)."""
    conn.settimeout(CONN_IDLE_LIMIT)
    try:
        while conn.recv(READ_CHUNK):
            pass
    except OSError:
        pass


def close(conn):
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


def serve_lines(conn, texts):
    for text in texts:
        if not sendall(conn, text.encode("utf-8", "surrogateescape") + b"\r\n"):
            return
    conn.settimeout(CONN_IDLE_LIMIT)
    buf = b""
    try:
        while True:
            data = conn.recv(READ_CHUNK)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not sendall(conn, line + b"\r\n"):
                    return
    except OSError:
        return


def handle(conn, mode, args):
    try:
        if mode == "lines":
            serve_lines(conn, args)
        elif mode == "bare-lf":
            if sendall(conn, b"one\ntwo\r\nthree\n"):
                drain(conn)
        elif mode == "partial":
            sendall(conn, b"abc")
        elif mode == "silent":
            drain(conn)
        elif mode == "longline":
            if sendall(conn, b"x" * int(args[0])):
                drain(conn)
        elif mode == "bytes":
            sendall(conn, b"0123456789")
    finally:
        close(conn)


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["lines", "bare-lf", "partial", "silent", "longline",
                                         "bytes", "backlog"])
    parser.add_argument("args", nargs="*")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--lifetime", type=float, default=60.0)
    opts = parser.parse_args()
    if opts.mode == "longline":
        if len(opts.args) != 1 or not opts.args[0].isdigit():
            parser.error("longline needs one argument: the number of bytes")
    elif opts.mode != "lines" and opts.args:
        parser.error(f"mode {opts.mode} takes no arguments")
    return opts


def main():
    opts = parse()
    # Safety net: never outlive a test that forgot us.
    threading.Timer(opts.lifetime, lambda: os._exit(0)).start()

    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((opts.host, 0))
    port = srv.getsockname()[1]

    if opts.mode == "backlog":
        srv.listen(0)
        fillers = []
        for _ in range(3):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((opts.host, port))
            except (BlockingIOError, InterruptedError):
                pass
            fillers.append(s)
        # Let the handshakes that can complete complete, so that the queue is full
        # before anybody else is told the port.
        time.sleep(0.2)
        print(f"PORT {port}", flush=True)
        while True:
            time.sleep(3600)

    srv.listen(16)
    print(f"PORT {port}", flush=True)
    while True:
        try:
            conn, _ = srv.accept()
        except InterruptedError:
            continue
        threading.Thread(target=handle, args=(conn, opts.mode, opts.args), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
