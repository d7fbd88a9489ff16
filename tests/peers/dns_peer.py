#!/usr/bin/python3
"""DNS servers for smtpsh's tests: a real NSD serving the test zones, or a scripted UDP peer.

    /usr/bin/python3 tests/peers/dns_peer.py nsd [--host 127.0.0.1] [--zones DIR] [--no-rrl]
    /usr/bin/python3 tests/peers/dns_peer.py silent|mismatch|wrongq [--host 127.0.0.1]

Every mode picks a port free for both UDP and TCP on the host, prints ``PORT <n>`` on stdout
(flushed) once it answers, and stays until SIGTERM/SIGINT, until stdin reaches end of file
(when stdin is a pipe), or until its parent process goes away. Then it cleans up and exits 0.

Modes:
  nsd       runs ``nsd -d`` with a generated nsd.conf in a fresh temp dir, serving every
            ``*.zone`` file of DIR (default: ``zones/`` beside this script; the zone is the file
            name without ``.zone``), plus ``broken.test`` whose zone file is missing (NSD answers
            SERVFAIL under it). --no-rrl turns response rate limiting off (for benchmarks).
            If NSD does not answer ``example.test SOA`` over UDP within 10 s, prints its log
            to stderr and exits 1.
  silent    UDP and TCP on the same port; reads and discards datagrams, accepts connections
            and holds them open; never answers.
  mismatch  UDP: answers each query with a response whose ID is the query's ID XOR 0xFFFF
            (A 127.0.0.66), then 100 ms later the right response (A 127.0.0.42, TTL 60).
  wrongq    UDP: answers each query with the right ID but the question ``other.test``
            (A 127.0.0.66), then 100 ms later the right response (A 127.0.0.42, TTL 60).
"""

import argparse
import ctypes
import os
import selectors
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NSD = "/usr/sbin/nsd"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
BROKEN_ZONE = "broken.test"

stop_requested = False


def request_stop(signum, frame):
    global stop_requested
    stop_requested = True


# ---- DNS wire format --------------------------------------------------------------------

def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def build_query(qid, name, qtype):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD, one question
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)


def split_query(data):
    """Returns (id, flags, question bytes) of a query, or None when it does not parse."""
    if len(data) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    pos = 12
    while pos < len(data) and data[pos] != 0:
        if data[pos] & 0xC0:
            return None
        pos += data[pos] + 1
    end = pos + 1 + 4
    if end > len(data):
        return None
    return qid, flags, data[12:end]


def build_answer(qid, query_flags, question, address):
    """A NOERROR response to `question` with one A record (TTL 60) for the question name."""
    flags = 0x8400 | (query_flags & 0x0100)  # QR, AA, RD copied
    header = struct.pack("!HHHHHH", qid, flags, 1, 1, 0, 0)
    record = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
    return header + question + record


# ---- ports and loops ----------------------------------------------------------------------

def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_pair(host):
    """A UDP socket and a TCP socket bound to the same free port (not yet listening)."""
    family = family_of(host)
    for _ in range(100):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.bind((host, 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((host, port))
            return udp, tcp, port
        except OSError:
            udp.close()
            tcp.close()
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


def wait_until_stopped(extra_check=None):
    """Blocks until a signal, EOF on a stdin pipe, the parent's death or extra_check() fails."""
    parent = os.getppid()
    watch_stdin = stat.S_ISFIFO(os.fstat(0).st_mode)
    sel = selectors.DefaultSelector()
    if watch_stdin:
        sel.register(0, selectors.EVENT_READ)
    wakeup_read, wakeup_write = os.pipe()  # a signal writes to it: no waiting for the timeout
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    sel.register(wakeup_read, selectors.EVENT_READ)
    while not stop_requested:
        for key, _ in sel.select(timeout=0.2):
            if not os.read(key.fd, 4096) and key.fd == 0:
                return
        if os.getppid() != parent:
            return
        if extra_check is not None and not extra_check():
            return


# ---- nsd mode -----------------------------------------------------------------------------

def write_conf(tmp, host, port, zones, no_rrl):
    lines = [
        "# generated by tests/peers/dns_peer.py",
        "server:",
        '  username: ""',
        '  chroot: ""',
        '  database: ""',
        f'  zonesdir: "{tmp}"',
        f'  zonelistfile: "{tmp}/zone.list"',
        f'  xfrdir: "{tmp}"',
        f'  pidfile: "{tmp}/nsd.pid"',
        f'  logfile: "{tmp}/nsd.log"',
        f'  cookie-secret-file: "{tmp}/cookie-secrets.txt"',
        f"  ip-address: {host}@{port}",
        f"  port: {port}",
        "  server-count: 1",
        "  verbosity: 0",
        "  hide-version: yes",
        "  hide-identity: yes",
    ]
    if no_rrl:
        lines += ["  rrl-ratelimit: 0", "  rrl-whitelist-ratelimit: 0"]
    lines += ["remote-control:", "  control-enable: no"]
    for zone in zones:
        lines += ["zone:", f"  name: {zone}", f'  zonefile: "{zone}.zone"']
    # Configured, but its file does not exist: NSD answers SERVFAIL for names under it.
    if BROKEN_ZONE not in zones:
        lines += ["zone:", f"  name: {BROKEN_ZONE}", f'  zonefile: "{BROKEN_ZONE}.zone"']
    path = os.path.join(tmp, "nsd.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def prctl(option, value):
    if _prctl is not None:
        _prctl(option, value, 0, 0, 0)


def set_parent_death_signal():
    # Runs in the child between fork and exec: NSD gets SIGKILL when this script dies.
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def answers(host, port, timeout):
    """Whether a UDP query for example.test SOA gets any response with the right ID."""
    qid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(build_query(qid, "example.test", 6), (host, port))
            data = s.recv(65535)
        except OSError:
            return False
    return len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid and data[2] & 0x80


def own_children():
    pids = []
    for task in os.listdir("/proc/self/task"):
        pids += read_text(f"/proc/self/task/{task}/children").split()
    return [int(pid) for pid in pids]


def stop_nsd(proc):
    """Stops NSD and reaps all its processes: as a subreaper, this script inherits the ones
    whose parent exits first (NSD's server child outlives its main process)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for _ in range(2):
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(0.02)
            except ChildProcessError:
                return
        for orphan in own_children():  # still there: SIGKILL them and wait once more
            try:
                os.kill(orphan, signal.SIGKILL)
            except OSError:
                pass


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def start_nsd(tmp, opts, zones):
    """Starts NSD on a fresh free port: (process, port, None), or (None, None, log)."""
    udp, tcp, port = bind_pair(opts.host)
    udp.close()
    tcp.close()
    conf = write_conf(tmp, opts.host, port, zones, opts.no_rrl)
    for name in ("nsd.out", "nsd.log"):  # from an earlier attempt
        if os.path.exists(os.path.join(tmp, name)):
            os.remove(os.path.join(tmp, name))
    output = open(os.path.join(tmp, "nsd.out"), "wb")
    proc = subprocess.Popen([NSD, "-d", "-c", conf], stdin=subprocess.DEVNULL, stdout=output,
                            stderr=subprocess.STDOUT, preexec_fn=set_parent_death_signal)
    output.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None and not stop_requested:
        if answers(opts.host, port, 0.2):
            return proc, port, None
        time.sleep(0.05)
    if proc.poll() is not None:
        why = f"nsd exited with status {proc.returncode}"
    else:
        why = f"nsd did not answer within {START_TIMEOUT:g} s"
    stop_nsd(proc)
    log = (f"dns_peer.py: {why}; its output and log:\n" + read_text(os.path.join(tmp, "nsd.out"))
           + read_text(os.path.join(tmp, "nsd.log")))
    return None, None, log


def run_nsd(opts):
    zones_dir = opts.zones or os.path.join(HERE, "zones")
    zone_files = sorted(f for f in os.listdir(zones_dir) if f.endswith(".zone"))
    zones = [f[:-len(".zone")] for f in zone_files]
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    tmp = tempfile.mkdtemp(prefix="smtpsh-nsd-")
    proc = None
    try:
        # NSD reads its copies, so nothing it might write can touch the source tree.
        for f in zone_files:
            shutil.copy(os.path.join(zones_dir, f), tmp)
        # The port was free a moment ago; somebody may have taken it since: try again.
        for _ in range(3):
            proc, port, log = start_nsd(tmp, opts, zones)
            if proc is not None or stop_requested or "can't bind" not in log:
                break
        if proc is None:
            sys.stderr.write(log)
            return 1
        print(f"PORT {port}", flush=True)
        wait_until_stopped(lambda: proc.poll() is None)
        return 0
    finally:
        if proc is not None:
            stop_nsd(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- scripted modes -----------------------------------------------------------------------

def serve_scripted(udp, mode):
    right = "127.0.0.42"
    wrong = "127.0.0.66"
    while True:
        try:
            data, peer = udp.recvfrom(65535)
        except OSError:
            return
        parsed = split_query(data)
        if parsed is None:
            continue
        qid, flags, question = parsed
        if mode == "mismatch":
            first = build_answer(qid ^ 0xFFFF, flags, question, wrong)
        else:
            other = encode_name("other.test") + question[-4:]
            first = build_answer(qid, flags, other, wrong)
        correct = build_answer(qid, flags, question, right)
        try:
            udp.sendto(first, peer)
        except OSError:
            pass
        timer = threading.Timer(0.1, send_quietly, args=(udp, correct, peer))
        timer.daemon = True
        timer.start()


def send_quietly(udp, data, peer):
    try:
        udp.sendto(data, peer)
    except OSError:
        pass


def serve_silent(udp, tcp):
    tcp.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ)
    sel.register(tcp, selectors.EVENT_READ)
    held = []
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            try:
                if sock is udp:
                    udp.recvfrom(65535)
                elif sock is tcp:
                    conn, _ = tcp.accept()
                    held.append(conn)
                    sel.register(conn, selectors.EVENT_READ)
                elif not sock.recv(65536):
                    sel.unregister(sock)  # the client closed: let it go
                    held.remove(sock)
                    sock.close()
            except OSError:
                pass


def run_scripted(opts):
    udp, tcp, port = bind_pair(opts.host)
    if opts.mode == "silent":
        target, args = serve_silent, (udp, tcp)
    else:
        tcp.close()
        target, args = serve_scripted, (udp, opts.mode)
    threading.Thread(target=target, args=args, daemon=True).start()
    print(f"PORT {port}", flush=True)
    wait_until_stopped()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["nsd", "silent", "mismatch", "wrongq"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--zones", help="directory of <zone>.zone files (nsd mode)")
    parser.add_argument("--no-rrl", action="store_true", help="no rate limiting (nsd mode)")
    opts = parser.parse_args()
    if opts.mode != "nsd" and (opts.zones or opts.no_rrl):
        parser.error("--zones and --no-rrl are for the nsd mode")
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return run_nsd(opts) if opts.mode == "nsd" else run_scripted(opts)


if __name__ == "__main__":
    sys.exit(main())
