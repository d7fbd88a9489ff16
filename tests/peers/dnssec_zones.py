#!/usr/bin/python3
"""A signed DNS hierarchy of the test suite's own, served by NSD on loopback: the fixture of
DNSSEC validation tests (tests/e2e/test_dnssec_zones.py checks it with drill and Unbound).

    /usr/bin/python3 tests/peers/dnssec_zones.py [--host 127.0.0.1] [--record "ZONE LINE"]...

In a fresh temp dir it writes the zones below, signs them bottom-up with ldns (ldns-keygen:
an ECDSAP256SHA256 KSK and ZSK per signed zone; ldns-signzone with explicit inception and
expiration; ldns-key2ds for the DS records in each parent), serves all of them from one NSD on
a free port of the host, prints

    DIR <the temp dir>
    ANCHOR <DIR/root.ds: the root KSK's DS record, one line of zone file text>
    CASES <DIR/cases.json>
    PORT <n>

(flushed; PORT last, so whoever waits for it has the rest) and stays until SIGTERM/SIGINT,
until stdin reaches end of file (when stdin is a pipe) or until its parent goes away; then
it stops NSD, removes the temp dir and exits 0. From Python, `signed_hierarchy()` runs it
and yields a `Hierarchy` (port, anchor, directory, cases).

The trust anchor: DIR/root.ds holds one line `.<TAB>3600<TAB>IN<TAB>DS<TAB><tag> 13 2 <hex
SHA-256 digest>` (ldns-key2ds -2), and DIR/root.dnskey the same root KSK as `.<TAB>IN<TAB>
DNSKEY<TAB>257 3 13 <base64 key> ;{id = <tag> (ksk), size = 256b}`; both are accepted by
`drill -k FILE` and by Unbound's `trust-anchor-file:`. DIR/cases.json is {"server":
"127.0.0.1", "port": n, "anchor": path, "anchor_dnskey": path, "zones": [every zone, the root
last], "cases": {name: {"qname", "qtype", "state", "rcode", "reason"}}}, where "rcode" is
the response code of the data (NSD's, or a validator's with CD; a validating resolver
answers SERVFAIL for the bogus cases). DIR/keys holds the keys, DIR/<zone>.zone the unsigned
text and DIR/<zone>.zone.signed the served file (root.zone* for the root).

A validator that asks 127.0.0.1:PORT for everything (drill -S, or a stub validator) walks
the whole hierarchy. A recursive resolver needs a stub zone at 127.0.0.1@PORT for every zone
of "zones": the referrals name 127.0.0.1, which it would ask on port 53.

The hierarchy. One NSD answers authoritatively for every zone, the root included; each zone
is signed on its own and delegated from its parent with NS + glue (127.0.0.1: the one server)
and, when signed, DS. Every zone has an SOA and an NS `ns.<zone>` with an A 127.0.0.1 in the
zone itself (the root's NS is ns.test.).
  .                    the test root, NSEC. Its KSK is the trust anchor. Delegates test.
  test.                NSEC. Delegates the zones below: with DS, except unsigned.test.
  example.test.        NSEC. MX 10 mx.example.test; mx A 127.0.0.25; TLSA 3 1 1 for
                       _25._tcp.mx; alias CNAME mx.nsec3.test. (a secure chain into a
                       sibling zone); insecure-alias CNAME mx.unsigned.test. (into the
                       unsigned zone).
  nsec3.test.          like example.test, signed with NSEC3 (-n, 0 iterations, no salt).
  optout.test.         NSEC3 with the opt-out flag on every NSEC3 (-n -p), and an unsigned
                       delegation deleg.optout.test. added after signing, so that no NSEC3
                       matches it: its DS is denied only by the opt-out NSEC3 covering it.
  deleg.optout.test.   unsigned, delegated from optout.test. (opt-out, above).
  unsigned.test.       unsigned, delegated from test. without DS: an island of insecurity.
  expired.test.        signed with inception and expiration in the past (40 and 10 days ago).
  tampered.test.       signed, then the address of mx.tampered.test A changed in the signed
                       file (127.0.0.25 -> 127.0.0.66): its RRSIG no longer matches.
  wrongds.test.        signed, but its DS in test. is made from another key (a KSK generated
                       for wrongds.test and never used): no DNSKEY matches the DS.
  nosig.test.          signed, then the RRSIG of mx.nosig.test A deleted from the signed file.

The cases (RFC 4035 section 4.3 states; `CASES` below: name -> (qname, qtype, state, reason);
`RCODES` the expected response code when it is not NOERROR):
  secure_mx        example.test MX                  secure: MX 10 mx.example.test.
  secure_a         mx.example.test A                secure: 127.0.0.25
  secure_tlsa      _25._tcp.mx.example.test TLSA    secure: 3 1 1 ...
  secure_nsec3     mx.nsec3.test A                  secure, in an NSEC3 zone
  insecure_a       mx.unsigned.test A               insecure: unsigned.test has no DS
  insecure_tlsa    _25._tcp.mx.unsigned.test TLSA   insecure, same zone
  insecure_optout  mx.deleg.optout.test A           insecure: the missing DS is proven by
                                                    an opt-out NSEC3 covering deleg
  bogus_expired    mx.expired.test A                bogus: every signature has expired
  bogus_tampered   mx.tampered.test A               bogus: the RRSIG does not verify
  bogus_wrongds    mx.wrongds.test A                bogus: no DNSKEY matches the DS
  bogus_nosig      mx.nosig.test A                  bogus: the RRSIG is missing
  nxdomain_nsec    nope.example.test A              secure NXDOMAIN, NSEC
  nodata_nsec      mx.example.test TXT              secure NODATA, NSEC
  nxdomain_nsec3   nope.nsec3.test A                secure NXDOMAIN, NSEC3
  nodata_nsec3     mx.nsec3.test TXT                secure NODATA, NSEC3
  nodata_optout    mx.optout.test TXT               secure NODATA: an NSEC3 matches mx
  nxdomain_optout  nope.optout.test A               insecure NXDOMAIN: the NSEC3 covering
                                                    the next closer name has opt-out set,
                                                    so an unsigned delegation could be
                                                    there (RFC 5155 section 12.2; Unbound
                                                    says insecure, but drill -S, which
                                                    ignores the flag, says secure)
  cname_secure     alias.example.test A             secure: CNAME mx.nsec3.test., A
  cname_insecure   insecure-alias.example.test A    insecure: CNAME into unsigned.test.
"""

import argparse
import collections
import contextlib
import hashlib
import json
import os
import re
import select
import socket
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dns_peer  # noqa: E402  (NSD's start and stop, port pairs, the stop conditions)

NSD = dns_peer.NSD
PYTHON = "/usr/bin/python3"
TOOLS = ("/usr/bin/ldns-keygen", "/usr/bin/ldns-signzone", "/usr/bin/ldns-key2ds", NSD)
ALGORITHM = "ECDSAP256SHA256"
TOOL_TIMEOUT = 20.0
START_TIMEOUT = 10.0
DAY = 86400
TTL = 300
ADDRESS = "127.0.0.1"       # every NS (glue and in-zone) points here: the one server
MX_ADDRESS = "127.0.0.25"
TAMPERED_ADDRESS = "127.0.0.66"
TLSA_DATA = "3 1 1 " + hashlib.sha256(b"smtpsh dnssec test key").hexdigest()

Case = collections.namedtuple("Case", "qname qtype state reason")

CASES = {
    "secure_mx": Case("example.test", "MX", "secure", "MX in the NSEC-signed example.test"),
    "secure_a": Case("mx.example.test", "A", "secure", "A in the NSEC-signed example.test"),
    "secure_tlsa": Case("_25._tcp.mx.example.test", "TLSA", "secure",
                        "TLSA 3 1 1 in the NSEC-signed example.test"),
    "secure_nsec3": Case("mx.nsec3.test", "A", "secure", "A in the NSEC3-signed nsec3.test"),
    "insecure_a": Case("mx.unsigned.test", "A", "insecure",
                       "unsigned.test is delegated from test. without DS (NSEC proves it)"),
    "insecure_tlsa": Case("_25._tcp.mx.unsigned.test", "TLSA", "insecure",
                          "TLSA in unsigned.test, delegated without DS"),
    "insecure_optout": Case("mx.deleg.optout.test", "A", "insecure",
                            "deleg.optout.test has no DS and no NSEC3 of its own: the opt-out "
                            "NSEC3 covering it proves the delegation insecure"),
    "bogus_expired": Case("mx.expired.test", "A", "bogus",
                          "expired.test's signatures all expired ten days ago"),
    "bogus_tampered": Case("mx.tampered.test", "A", "bogus",
                           f"the A record was changed to {TAMPERED_ADDRESS} after signing"),
    "bogus_wrongds": Case("mx.wrongds.test", "A", "bogus",
                          "the DS of wrongds.test in test. matches none of its DNSKEYs"),
    "bogus_nosig": Case("mx.nosig.test", "A", "bogus",
                        "the RRSIG of this A RRset was deleted from the signed zone"),
    "nxdomain_nsec": Case("nope.example.test", "A", "secure", "NXDOMAIN proven by NSEC"),
    "nodata_nsec": Case("mx.example.test", "TXT", "secure", "NODATA proven by NSEC"),
    "nxdomain_nsec3": Case("nope.nsec3.test", "A", "secure", "NXDOMAIN proven by NSEC3"),
    "nodata_nsec3": Case("mx.nsec3.test", "TXT", "secure", "NODATA proven by NSEC3"),
    "nodata_optout": Case("mx.optout.test", "TXT", "secure",
                          "NODATA proven by the NSEC3 matching mx.optout.test (opt-out zone)"),
    "nxdomain_optout": Case("nope.optout.test", "A", "insecure",
                            "NXDOMAIN, but the NSEC3 covering the next closer name has the "
                            "opt-out flag: an unsigned delegation could exist there"),
    "cname_secure": Case("alias.example.test", "A", "secure",
                         "CNAME mx.nsec3.test. then its A: both zones signed"),
    "cname_insecure": Case("insecure-alias.example.test", "A", "insecure",
                           "signed CNAME into unsigned.test: the A is insecure"),
}
RCODES = {"nxdomain_nsec": "NXDOMAIN", "nxdomain_nsec3": "NXDOMAIN",
          "nxdomain_optout": "NXDOMAIN"}


def rcode(case_name):
    return RCODES.get(case_name, "NOERROR")


# ---- the zones ----------------------------------------------------------------------------

def soa_ns(zone):
    """SOA and NS records of `zone` (relative names: the file has $ORIGIN)."""
    ns = "ns.test." if zone == "." else "ns"
    mbox = "hostmaster.test." if zone == "." else "hostmaster"
    lines = [f"@ SOA {ns} {mbox} 1 3600 600 86400 {TTL}", f"@ NS {ns}"]
    if zone != ".":
        lines.append(f"ns A {ADDRESS}")
    return lines


def mail_records():
    return ["@ MX 10 mx", f"mx A {MX_ADDRESS}", f"_25._tcp.mx TLSA {TLSA_DATA}"]


def delegation(child, ds_lines=()):
    """NS + glue for `child` (absolute), and its DS lines (absolute owner names)."""
    return [f"{child} NS ns.{child}", f"ns.{child} A {ADDRESS}", *ds_lines]


class Zone:
    def __init__(self, name, records, signed=True, nsec3=False, optout=False, dates=None):
        self.name = name                    # "." or "example.test." (absolute)
        self.records = records              # lines relative to $ORIGIN
        self.signed = signed
        self.nsec3 = nsec3
        self.optout = optout
        self.dates = dates                  # (inception, expiration) or None: the default
        self.after_signing = []             # lines appended to the signed file
        self.ksk = self.zsk = None

    @property
    def file_stem(self):
        return "root" if self.name == "." else self.name.rstrip(".")


def run_tool(argv, cwd):
    cp = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                        text=True, timeout=TOOL_TIMEOUT)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({cp.returncode}): {cp.stderr.strip()}")
    return cp.stdout


def keygen(keys, zone, ksk):
    argv = ["ldns-keygen", "-a", ALGORITHM, "-r", "/dev/urandom"] + (["-k"] if ksk else [])
    return os.path.join(keys, run_tool(argv + [zone], keys).strip())


def key2ds(keys, key_base):
    """The DS record (SHA-256) of the key `key_base`.key, as one line of zone file text."""
    lines = [l for l in run_tool(["ldns-key2ds", "-n", "-2", key_base + ".key"], keys)
             .splitlines() if l.strip() and not l.startswith(";")]
    if len(lines) != 1:
        raise RuntimeError(f"ldns-key2ds printed {lines!r}")
    return lines[0]


def read_key_rr(key_base):
    with open(key_base + ".key") as f:
        lines = [l.strip() for l in f if l.strip() and not l.startswith(";")]
    return lines[0]


def rr_fields(line):
    """(owner, ttl, class, type, rdata fields) of a line of ldns-signzone's output."""
    f = line.split()
    return f[0].lower(), f[1], f[2], f[3].upper(), f[4:]


def edit_signed(path, edit):
    """Rewrites the signed zone file line by line; `edit(line)` returns the new line or None
    to delete it. Returns how many lines changed or went, so a no-op edit is caught."""
    with open(path) as f:
        lines = f.read().splitlines()
    out, changed = [], 0
    for line in lines:
        new = edit(line) if line.strip() and not line.startswith(";") else line
        if new != line:
            changed += 1
        if new is not None:
            out.append(new)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return changed


def tamper(line):
    owner, _, _, rtype, _ = rr_fields(line)
    if owner == "mx.tampered.test." and rtype == "A":
        return line.replace(MX_ADDRESS, TAMPERED_ADDRESS)
    return line


def drop_rrsig(line):
    owner, _, _, rtype, rdata = rr_fields(line)
    if owner == "mx.nosig.test." and rtype == "RRSIG" and rdata[0].upper() == "A":
        return None
    return line


def build(directory, now=None, extra=()):
    """Writes, signs and links the hierarchy into `directory`; returns the zones (a list of
    Zone, the root last) after writing DIR/root.ds and DIR/root.dnskey. `extra`: pairs (zone,
    line) of records added to a zone before it is signed ("example.test.", "_2525._tcp.mx
    TLSA 3 1 1 ..."), for a test's own records such as TLSA of its TLS peer."""
    now = int(time.time()) if now is None else now
    current = (now - DAY, now + 30 * DAY)
    # Far past: a validator forgives an expiry within its clock skew (Unbound: up to a day).
    expired = (now - 40 * DAY, now - 10 * DAY)
    keys = os.path.join(directory, "keys")
    os.makedirs(keys, exist_ok=True)

    # Leaves first: a parent's DS lines come from its children's KSKs.
    deleg = Zone("deleg.optout.test.", soa_ns("deleg.optout.test.") + mail_records(),
                 signed=False)
    unsigned = Zone("unsigned.test.", soa_ns("unsigned.test.") + mail_records(), signed=False)
    example = Zone("example.test.", soa_ns("example.test.") + mail_records() + [
        "alias CNAME mx.nsec3.test.", "insecure-alias CNAME mx.unsigned.test."])
    nsec3 = Zone("nsec3.test.", soa_ns("nsec3.test.") + mail_records(), nsec3=True)
    optout = Zone("optout.test.", soa_ns("optout.test.") + mail_records(), nsec3=True,
                  optout=True)
    # After signing, so the NSEC3 chain has no record for it (opt-out allows that).
    optout.after_signing = [f"deleg.optout.test. {TTL} IN NS ns.deleg.optout.test.",
                            f"ns.deleg.optout.test. {TTL} IN A {ADDRESS}"]
    expired_zone = Zone("expired.test.", soa_ns("expired.test.") + mail_records(),
                        dates=expired)
    tampered = Zone("tampered.test.", soa_ns("tampered.test.") + mail_records())
    wrongds = Zone("wrongds.test.", soa_ns("wrongds.test.") + mail_records())
    nosig = Zone("nosig.test.", soa_ns("nosig.test.") + mail_records())
    children_of_test = [example, nsec3, optout, unsigned, expired_zone, tampered, wrongds,
                        nosig]
    test = Zone("test.", soa_ns("test."))
    root = Zone(".", soa_ns("."))
    zones = [deleg, unsigned, example, nsec3, optout, expired_zone, tampered, wrongds, nosig,
             test, root]

    by_name = {zone.name: zone for zone in zones}
    for zone_name, line in extra:
        if zone_name not in by_name:
            raise ValueError(f"--record: no zone {zone_name!r} in the hierarchy")
        by_name[zone_name].records.append(line)

    for zone in zones:
        if zone.signed:
            zone.zsk = keygen(keys, zone.name, ksk=False)
            zone.ksk = keygen(keys, zone.name, ksk=True)
    wrong_key = keygen(keys, "wrongds.test.", ksk=True)  # never signs anything

    for child in children_of_test:
        if not child.signed:
            ds = []
        elif child is wrongds:
            ds = [key2ds(keys, wrong_key)]
        else:
            ds = [key2ds(keys, child.ksk)]
        test.records += delegation(child.name, ds)
    root.records += delegation("test.", [key2ds(keys, test.ksk)])

    for zone in zones:
        sign(directory, zone, zone.dates or current)
    changes = {tampered: tamper, nosig: drop_rrsig}
    for zone, edit in changes.items():
        if edit_signed(zone_path(directory, zone), edit) != 1:
            raise RuntimeError(f"editing {zone.name} did not change exactly one line")

    with open(os.path.join(directory, "root.ds"), "w") as f:
        f.write(key2ds(keys, root.ksk) + "\n")
    with open(os.path.join(directory, "root.dnskey"), "w") as f:
        f.write(read_key_rr(root.ksk) + "\n")
    return zones


def zone_path(directory, zone):
    """The file NSD serves: the signed one for a signed zone."""
    return os.path.join(directory, zone.file_stem + (".zone.signed" if zone.signed else ".zone"))


def sign(directory, zone, dates):
    source = os.path.join(directory, zone.file_stem + ".zone")
    with open(source, "w") as f:
        f.write(f"$ORIGIN {zone.name}\n$TTL {TTL}\n" + "\n".join(zone.records) + "\n")
    if not zone.signed:
        return
    target = zone_path(directory, zone)
    argv = ["ldns-signzone", "-i", str(dates[0]), "-e", str(dates[1]), "-o", zone.name,
            "-f", target]
    if zone.nsec3:
        argv += ["-n", "-t", "0"] + (["-p"] if zone.optout else [])
    run_tool(argv + [source, zone.zsk, zone.ksk], directory)
    if zone.after_signing:
        with open(target, "a") as f:
            f.write("\n".join(zone.after_signing) + "\n")


# ---- serving ------------------------------------------------------------------------------

def write_conf(directory, host, port, zones):
    lines = [
        "# generated by tests/peers/dnssec_zones.py",
        "server:",
        '  username: ""',
        '  chroot: ""',
        '  database: ""',
        f'  zonesdir: "{directory}"',
        f'  zonelistfile: "{directory}/zone.list"',
        f'  xfrdir: "{directory}"',
        f'  pidfile: "{directory}/nsd.pid"',
        f'  logfile: "{directory}/nsd.log"',
        f'  cookie-secret-file: "{directory}/cookie-secrets.txt"',
        f"  ip-address: {host}@{port}",
        f"  port: {port}",
        "  server-count: 1",
        "  verbosity: 0",
        "  hide-version: yes",
        "  hide-identity: yes",
        "  rrl-ratelimit: 0",
        "  rrl-whitelist-ratelimit: 0",
        "remote-control:",
        "  control-enable: no",
    ]
    for zone in zones:
        lines += ["zone:", f'  name: "{zone.name}"',
                  f'  zonefile: "{os.path.basename(zone_path(directory, zone))}"']
    path = os.path.join(directory, "nsd.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def answers(host, port, timeout):
    """Whether NSD answers `test. SOA` over UDP (NOERROR, so the zones are loaded)."""
    qid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(dns_peer.family_of(host), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(dns_peer.build_query(qid, "test.", 6), (host, port))
            data = s.recv(65535)
        except OSError:
            return False
    return (len(data) >= 12 and int.from_bytes(data[:2], "big") == qid and data[2] & 0x80
            and data[3] & 0x0F == 0)


def start_nsd(directory, host, zones):
    """Starts NSD on a fresh free port: (process, port, None), or (None, None, log)."""
    udp, tcp, port = dns_peer.bind_pair(host)
    udp.close()
    tcp.close()
    conf = write_conf(directory, host, port, zones)
    for name in ("nsd.out", "nsd.log"):  # from an earlier attempt
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, name))
    output = open(os.path.join(directory, "nsd.out"), "wb")
    proc = subprocess.Popen([NSD, "-d", "-c", conf], stdin=subprocess.DEVNULL, stdout=output,
                            stderr=subprocess.STDOUT,
                            preexec_fn=dns_peer.set_parent_death_signal)
    output.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None and not dns_peer.stop_requested:
        if answers(host, port, 0.2):
            return proc, port, None
        time.sleep(0.05)
    why = (f"nsd exited with status {proc.returncode}" if proc.poll() is not None
           else f"nsd did not answer within {START_TIMEOUT:g} s")
    dns_peer.stop_nsd(proc)
    log = (f"dnssec_zones.py: {why}; its output and log:\n"
           + dns_peer.read_text(os.path.join(directory, "nsd.out"))
           + dns_peer.read_text(os.path.join(directory, "nsd.log")))
    return None, None, log


def write_cases(directory, host, port, zones):
    doc = {"server": host, "port": port,
           "anchor": os.path.join(directory, "root.ds"),
           "anchor_dnskey": os.path.join(directory, "root.dnskey"),
           "zones": [z.name for z in zones],
           "cases": {name: {**c._asdict(), "rcode": rcode(name)} for name, c in CASES.items()}}
    path = os.path.join(directory, "cases.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return path


def serve(opts):
    missing = missing_tools()
    if missing:
        sys.stderr.write(f"dnssec_zones.py: missing {', '.join(missing)}\n")
        return 2
    dns_peer.prctl(dns_peer.PR_SET_CHILD_SUBREAPER, 1)
    directory = tempfile.mkdtemp(prefix="smtpsh-dnssec-")
    proc = None
    try:
        extra = [tuple(r.split(" ", 1)) for r in opts.record]
        zones = build(directory, extra=extra)
        for _ in range(3):  # the port was free a moment ago; somebody may have taken it
            proc, port, log = start_nsd(directory, opts.host, zones)
            if proc is not None or dns_peer.stop_requested or "can't bind" not in log:
                break
        if proc is None:
            sys.stderr.write(log)
            return 1
        cases = write_cases(directory, opts.host, port, zones)
        print(f"DIR {directory}\nANCHOR {os.path.join(directory, 'root.ds')}\n"
              f"CASES {cases}\nPORT {port}", flush=True)
        dns_peer.wait_until_stopped(lambda: proc.poll() is None)
        return 0
    finally:
        if proc is not None:
            dns_peer.stop_nsd(proc)
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--record", action="append", default=[],
                        help='"ZONE LINE": a record added to ZONE before signing '
                             '("example.test. _2525._tcp.mx TLSA 3 1 1 ...")')
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, dns_peer.request_stop)
    signal.signal(signal.SIGINT, dns_peer.request_stop)
    return serve(opts)


# ---- from Python --------------------------------------------------------------------------

Hierarchy = collections.namedtuple(
    "Hierarchy", "host port server anchor anchor_dnskey directory zones cases")
Hierarchy.__doc__ = """What signed_hierarchy() yields. host: "127.0.0.1"; port: NSD's (UDP and
TCP); server: "127.0.0.1:<port>"; anchor: path of the root KSK's DS (drill -k, Unbound's
trust-anchor-file); anchor_dnskey: the same key as a DNSKEY; directory: the fixture's temp dir
(removed when it stops); zones: every zone NSD serves, root last; cases: CASES."""


def missing_tools():
    """The tools the fixture needs that are not installed (a test skips when any is)."""
    return [t for t in TOOLS if not os.access(t, os.X_OK)]


def _read_line(stream, deadline):
    fd, buf = stream.fileno(), b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf.decode("utf-8", "replace")


@contextlib.contextmanager
def signed_hierarchy(host="127.0.0.1", startup_timeout=30, records=()):
    """Runs this script (building the zones and starting NSD takes ~1 s); yields a Hierarchy;
    stops it (SIGTERM, then SIGKILL), which stops NSD and removes the directory. `records`:
    (zone, line) pairs added before signing (see build)."""
    extra = [arg for zone, line in records for arg in ("--record", f"{zone} {line}")]
    proc = subprocess.Popen([PYTHON, os.path.abspath(__file__),
                             "--host", host, *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + startup_timeout
        info = {}
        while "PORT" not in info:
            line = _read_line(proc.stdout, deadline)
            m = re.match(r"(DIR|ANCHOR|CASES|PORT) (.+?)\s*$", line)
            if not m:
                proc.kill()
                _, err = proc.communicate(timeout=5)
                raise RuntimeError(f"dnssec_zones.py did not start: {line!r} "
                                   f"{err.decode('utf-8', 'replace')}")
            info[m.group(1)] = m.group(2)
        with open(info["CASES"]) as f:
            doc = json.load(f)
        port = int(info["PORT"])
        yield Hierarchy(host, port, f"{host}:{port}", info["ANCHOR"], doc["anchor_dnskey"],
                        info["DIR"], doc["zones"], dict(CASES))
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


if __name__ == "__main__":
    sys.exit(main())
