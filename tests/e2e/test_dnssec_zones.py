"""The signed DNS hierarchy of tests/peers/dnssec_zones.py is what it claims to be: two
independent validators, drill (ldns: `drill -S`, chasing signatures up to the test root's
anchor) and Unbound (a validating resolver of the test's own on loopback), judge each of its
cases secure, insecure or bogus (RFC 4035 section 4.3), as the fixture says, and agree.

    /usr/bin/python3 -m unittest -v tests/e2e/test_dnssec_zones.py

Needs nsd, unbound, ldnsutils (ldns-keygen, ldns-signzone, ldns-key2ds, drill); skips
without them. The smtpsh binary is not used. Set SMTPSH_DNSSEC_TABLE=1 to print the table of
cases with what each validator said.
"""

import base64
import contextlib
import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "peers"))
import harness  # noqa: E402
import dnssec_zones  # noqa: E402
from dnssec_zones import CASES, TLSA_DATA, MX_ADDRESS, TAMPERED_ADDRESS  # noqa: E402

UNBOUND = "/usr/sbin/unbound"
UNBOUND_CHECKCONF = "/usr/sbin/unbound-checkconf"
DRILL = "/usr/bin/drill"
DRILL_TIMEOUT = 20
QUERY_TIMEOUT = 5.0
START_TIMEOUT = 10.0

# What drill -S prints as "first error was: ..." for each bogus case.
DRILL_ERRORS = {
    "bogus_expired": "DNSSEC signature has expired",
    "bogus_tampered": "Bogus DNSSEC signature",
    "bogus_wrongds": "No DNSSEC public key(s)",
    "bogus_nosig": "RR not covered by the given NSEC RRs",
}
# What Unbound logs (val-log-level: 2) for each bogus case: "validation failure <NAME TYPE
# IN>: REASON".
UNBOUND_REASONS = {
    "bogus_expired": "signature expired",
    "bogus_tampered": "signature crypto failed",
    "bogus_wrongds": "no keys have a DS with algorithm ECDSAP256SHA256",
    "bogus_nosig": "no signatures",
}
# The Extended DNS Error (RFC 8914) Unbound puts in each SERVFAIL (ede: yes): 7 Signature
# Expired, 6 DNSSEC Bogus, 9 DNSKEY Missing, 10 RRSIGs Missing.
UNBOUND_EDE = {"bogus_expired": 7, "bogus_tampered": 6, "bogus_wrongds": 9, "bogus_nosig": 10}
# The one case where drill does not judge as the fixture (and Unbound) do: its chase accepts
# the opt-out NSEC3 covering nope.optout.test as a denial of the name and never looks at the
# opt-out flag, while Unbound (val_nsec3.c: "nc has optout") calls the NXDOMAIN insecure,
# since an unsigned delegation could be hidden in the opt-out span (RFC 5155 section 12.2).
DRILL_DIFFERS = {"nxdomain_optout": "secure"}
# The data each positive answer must hold (the last RRset of the answer, CNAMEs followed).
EXPECTED_DATA = {
    "secure_mx": "10 mx.example.test.",
    "secure_a": MX_ADDRESS,
    "secure_tlsa": TLSA_DATA,
    "secure_nsec3": MX_ADDRESS,
    "insecure_a": MX_ADDRESS,
    "insecure_tlsa": TLSA_DATA,
    "insecure_optout": MX_ADDRESS,
    "cname_secure": MX_ADDRESS,
    "cname_insecure": MX_ADDRESS,
}
# With the CD bit, Unbound hands out the bogus data, unvalidated.
BOGUS_DATA = {"bogus_expired": MX_ADDRESS, "bogus_tampered": TAMPERED_ADDRESS,
              "bogus_wrongds": MX_ADDRESS, "bogus_nosig": MX_ADDRESS}
STATE_ORDER = {"secure": 0, "insecure": 1, "bogus": 2}


# ---- a small DNS client ------------------------------------------------------------------

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "DS": 43,
         "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "NSEC3": 50, "TLSA": 52, "OPT": 41}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
FLAG_TC, FLAG_RD, FLAG_AD, FLAG_CD = 0x0200, 0x0100, 0x0020, 0x0010


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def build_query(qid, name, qtype, rd=True, cd=False):
    """A query with AD set (RFC 6840 5.7: tell me whether it validated) and EDNS0 DO."""
    flags = (FLAG_RD if rd else 0) | FLAG_AD | (FLAG_CD if cd else 0)
    header = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1)
    opt = b"\0" + struct.pack("!HHIH", TYPES["OPT"], 1232, 0x8000, 0)  # DO
    return header + encode_name(name) + struct.pack("!HH", TYPES[qtype], 1) + opt


def read_name(data, pos):
    labels, jumps, end = [], 0, None
    while True:
        length = data[pos]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("compression loop")
            continue
        pos += 1
        if length == 0:
            break
        labels.append(data[pos:pos + length].decode("ascii", "replace").lower())
        pos += length
    return ".".join(labels) + ".", (end if end is not None else pos)


def rdata_text(data, rtype, start, length):
    rdata = data[start:start + length]
    if rtype == TYPES["A"]:
        return socket.inet_ntoa(rdata)
    if rtype in (TYPES["CNAME"], TYPES["NS"]):
        return read_name(data, start)[0]
    if rtype == TYPES["MX"]:
        return f"{struct.unpack('!H', rdata[:2])[0]} {read_name(data, start + 2)[0]}"
    if rtype == TYPES["TLSA"]:
        return f"{rdata[0]} {rdata[1]} {rdata[2]} {rdata[3:].hex()}"
    return rdata.hex()


class Response:
    def __init__(self, data):
        self.raw = data
        qid, self.flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
        self.rcode = RCODES.get(self.flags & 0x0F, str(self.flags & 0x0F))
        self.ad = bool(self.flags & FLAG_AD)
        pos = 12
        for _ in range(qd):
            pos = read_name(data, pos)[1] + 4
        self.answer, self.authority, self.ede = [], [], []
        for section, count in ((self.answer, an), (self.authority, ns), (None, ar)):
            for _ in range(count):
                owner, pos = read_name(data, pos)
                rtype, _, _, length = struct.unpack("!HHIH", data[pos:pos + 10])
                pos += 10
                if section is not None:
                    section.append((owner, TYPE_NAMES.get(rtype, str(rtype)),
                                    rdata_text(data, rtype, pos, length)))
                elif rtype == TYPES["OPT"]:
                    self.ede += parse_ede(data[pos:pos + length])
                pos += length

    def data(self, qtype):
        return [rdata for _, rtype, rdata in self.answer if rtype == qtype]

    def summary(self):
        flags = "AD" if self.ad else "no AD"
        ede = "".join(f", EDE {code}{' ' + text if text else ''}" for code, text in self.ede)
        return f"{self.rcode}, {flags}, {len(self.answer)} answer RRs{ede}"


def parse_ede(options):
    """(info code, extra text) of each Extended DNS Error option (RFC 8914) in OPT data."""
    found, pos = [], 0
    while pos + 4 <= len(options):
        code, length = struct.unpack("!HH", options[pos:pos + 4])
        value = options[pos + 4:pos + 4 + length]
        if code == 15 and length >= 2:
            found.append((struct.unpack("!H", value[:2])[0],
                          value[2:].decode("utf-8", "replace")))
        pos += 4 + length
    return found


def query(port, name, qtype, rd=True, cd=False, timeout=QUERY_TIMEOUT):
    """Asks 127.0.0.1:port over UDP (TCP when the answer is truncated); bounded by timeout."""
    qid = int.from_bytes(os.urandom(2), "big")
    packet = build_query(qid, name, qtype, rd=rd, cd=cd)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.send(packet)
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            data = s.recv(65535)
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid and data[2] & 0x80:
                break
    if not struct.unpack("!H", data[2:4])[0] & FLAG_TC:
        return Response(data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack("!H", len(packet)) + packet)
        buf = b""
        while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65535)
            if not chunk:
                raise OSError("TCP answer cut short")
            buf += chunk
    return Response(buf[2:])


# ---- Unbound -----------------------------------------------------------------------------

def unbound_conf(directory, port, hierarchy):
    """A validating resolver that can only ever reach NSD: every zone of the hierarchy is a
    stub zone at 127.0.0.1@NSD (referrals name 127.0.0.1, which would mean port 53); the stub
    for "." replaces the built-in root hints (no root-hints file: Unbound would read it first,
    ignore the stub and prime the root at port 53); outgoing queries leave from 127.0.0.1,
    IPv4 only. Verbosity 3 logs every query sent ("sending to target: <zone> ADDR#PORT"), so
    the test can check where they went."""
    lines = [
        "server:",
        "  interface: 127.0.0.1",
        f"  port: {port}",
        "  do-ip6: no",
        "  do-udp: yes",
        "  do-tcp: yes",
        "  outgoing-interface: 127.0.0.1",
        "  do-not-query-localhost: no",
        f'  trust-anchor-file: "{hierarchy.anchor}"',
        "  trust-anchor-signaling: no",
        "  root-key-sentinel: no",
        '  username: ""',
        '  chroot: ""',
        f'  directory: "{directory}"',
        f'  pidfile: "{directory}/unbound.pid"',
        "  use-syslog: no",
        f'  logfile: "{directory}/unbound.log"',
        "  verbosity: 3",
        '  module-config: "validator iterator"',
        "  val-log-level: 2",
        "  harden-dnssec-stripped: yes",
        "  qname-minimisation: no",
        "  aggressive-nsec: no",
        "  prefetch: no",
        "  num-threads: 1",
        "  so-reuseport: no",
        "  ede: yes",
        # Unbound serves test. itself (an RFC 6761 name) unless told not to.
        '  local-zone: "test." nodefault',
        "remote-control:",
        "  control-enable: no",
    ]
    for zone in hierarchy.zones:
        lines += ["stub-zone:", f'  name: "{zone}"',
                  f"  stub-addr: {hierarchy.host}@{hierarchy.port}"]
    path = os.path.join(directory, "unbound.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def unbound_answers(port):
    try:
        return query(port, "localhost.", "A", timeout=0.3).rcode == "NOERROR"
    except OSError:
        return False


@contextlib.contextmanager
def unbound(hierarchy):
    """Runs `unbound -d -c CONF` on a free 127.0.0.1 port; yields (port, log path); stops it."""
    directory = harness.scratch_dir("smtpsh-unbound-")
    log = os.path.join(directory, "unbound.log")
    for _ in range(3):  # the free port may be taken before Unbound binds it: try again
        for name in (log, os.path.join(directory, "unbound.out")):  # an earlier attempt's
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)
        port = harness.free_port()
        conf = unbound_conf(directory, port, hierarchy)
        check = subprocess.run([UNBOUND_CHECKCONF, conf], capture_output=True, text=True,
                               timeout=20)
        if check.returncode != 0:
            raise RuntimeError(f"unbound-checkconf: {check.stdout}{check.stderr}")
        with open(os.path.join(directory, "unbound.out"), "wb") as out:
            proc = subprocess.Popen([UNBOUND, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline and not unbound_answers(port):
            time.sleep(0.05)
        if proc.poll() is None and unbound_answers(port):
            break
        stop(proc)
        text = read_text(log) + read_text(os.path.join(directory, "unbound.out"))
        if "bind" not in text:
            raise RuntimeError(f"unbound did not start:\n{text}")
    else:
        raise RuntimeError("unbound could not bind a free port in 3 tries")
    try:
        yield port, log
    finally:
        stop(proc)


def die_with_parent():
    # Unbound gets SIGKILL should this test process die without stopping it.
    dnssec_zones.dns_peer.set_parent_death_signal()


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# ---- the test ----------------------------------------------------------------------------

class TestDnssecZones(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        needed = [UNBOUND, UNBOUND_CHECKCONF, DRILL]
        missing = dnssec_zones.missing_tools() + [p for p in needed if not os.access(p, os.X_OK)]
        if missing:
            raise unittest.SkipTest(f"not installed: {', '.join(missing)}")
        cls.t0 = time.monotonic()
        cls.stack = contextlib.ExitStack()
        try:
            cls.h = cls.stack.enter_context(dnssec_zones.signed_hierarchy())
            cls.fixture_seconds = time.monotonic() - cls.t0
            cls.unbound_port, cls.unbound_log = cls.stack.enter_context(unbound(cls.h))
        except BaseException:
            cls.stack.close()
            raise
        cls.drill_results = {}
        cls.unbound_results = {}

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        if os.environ.get("SMTPSH_DNSSEC_TABLE"):
            cls.print_table()
        super().tearDownClass()

    # -- drill -S

    def drill(self, name, qtype):
        argv = [DRILL, "-S", "-k", self.h.anchor, "-p", str(self.h.port), f"@{self.h.host}",
                name, qtype]
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=DRILL_TIMEOUT,
                            stdin=subprocess.DEVNULL)
        return cp.returncode, cp.stdout + cp.stderr

    def chase(self, name, qtype):
        """drill -S NAME TYPE read as ("secure" | "unsigned" | "bogus", error, output)."""
        status, out = self.drill(name, qtype)
        if status == 0 and ";; Chase successful" in out:
            return "secure", None, out
        error = re.search(r"first error was: (.*)", out)
        self.assertIn(";; Chase failed.", out, f"drill -S {name} {qtype}: unexpected output")
        self.assertIsNotNone(error, out)
        self.assertNotEqual(status, 0, out)
        # Nothing signed in the answer: drill has no tree to show.
        if re.search(r"DNSSEC Trust tree:\n<no data>\n", out):
            return "unsigned", error.group(1), out
        return "bogus", error.group(1), out

    def zone_of(self, name):
        """The zone of the hierarchy that holds `name` (the longest suffix among its zones)."""
        name = name.rstrip(".").lower() + "."
        zones = [z for z in self.h.zones if z == "." or name == z or name.endswith("." + z)]
        return max(zones, key=len)

    def drill_verdict(self, case_name):
        """drill's state for a case: each link of a CNAME chain chased in turn; an unsigned
        answer is insecure only when drill also proves that its zone's DS does not exist."""
        if case_name in self.drill_results:
            return self.drill_results[case_name]
        case = CASES[case_name]
        name, links, printed = case.qname, [], []
        for _ in range(8):
            state, error, out = self.chase(name, case.qtype)
            printed.append(f"{name} {case.qtype}: " + (
                "Chase successful" if state == "secure" else f"Chase failed, {error}"
                + (" (<no data>)" if state == "unsigned" else "")))
            if state == "unsigned":
                cut = self.zone_of(name)
                ds_state, ds_error, ds_out = self.chase(cut, "DS")
                proven = ds_state == "secure" and "Existence is denied by:" in ds_out
                printed.append(f"{cut} DS: " + ("Existence is denied by ..., Chase successful"
                                                if proven else f"{ds_state} {ds_error}"))
                state = "insecure" if proven else "bogus"
            links.append(state)
            if state != "secure" or not re.search(
                    rf"^{re.escape(name.rstrip('.'))}\.? \(CNAME\)$", out, re.M):
                break
            # The chase covered the CNAME only: follow it (NSD tells where it points).
            targets = query(self.h.port, name, case.qtype, rd=False).data("CNAME")
            self.assertEqual(len(targets), 1, f"{name}: CNAME expected")
            name = targets[0]
        verdict = (max(links, key=STATE_ORDER.get), error if links[-1] == "bogus" else None,
                   "; ".join(printed))
        self.drill_results[case_name] = verdict
        return verdict

    def test_drill_chases_each_case(self):
        for case_name, case in CASES.items():
            with self.subTest(case=case_name, qname=case.qname, qtype=case.qtype):
                state, error, printed = self.drill_verdict(case_name)
                self.assertEqual(state, DRILL_DIFFERS.get(case_name, case.state), printed)
                if case.state == "bogus":
                    self.assertEqual(error, DRILL_ERRORS[case_name], printed)

    def test_drill_output_details(self):
        # Secure: the trust tree ends at the root KSK of the anchor.
        with open(self.h.anchor) as f:
            tag = f.read().split()[4]
        _, out = self.drill("mx.example.test", "A")
        self.assertIn(f"|---. (DNSKEY keytag: {tag} alg: 13 flags: 257)", out)
        self.assertIn("|---example.test. (DS keytag:", out)
        # NXDOMAIN/NODATA: drill shows the NSEC or NSEC3 records that deny.
        _, out = self.drill("nope.example.test", "A")
        self.assertIn("Existence is denied by:", out)
        self.assertRegex(out, r"\(NSEC \S+ ")
        _, out = self.drill("nope.nsec3.test", "A")
        self.assertRegex(out, r"[0-9a-v]{32}\.nsec3\.test\. \(NSEC3\)")
        # The DS of wrongds.test is in test., but matches no key: no DS in drill's tree.
        _, out = self.drill("mx.wrongds.test", "A")
        self.assertIn("wrongds.test. (DNSKEY keytag:", out)
        self.assertNotIn("wrongds.test. (DS keytag:", out)
        # The tampered record: drill prints the RRset it could not verify.
        _, out = self.drill("mx.tampered.test", "A")
        self.assertRegex(out, rf"mx\.tampered\.test\.\s+300\s+IN\s+A\s+{TAMPERED_ADDRESS}")

    # -- Unbound

    def unbound_verdict(self, case_name):
        """Unbound's state for a case: SERVFAIL (and the data with CD) is bogus, AD secure,
        an answer without AD insecure. Returns (state, response, CD response or None)."""
        if case_name in self.unbound_results:
            return self.unbound_results[case_name]
        case = CASES[case_name]
        r = query(self.unbound_port, case.qname, case.qtype)
        cd = None
        if r.rcode == "SERVFAIL":
            cd = query(self.unbound_port, case.qname, case.qtype, cd=True)
            state = "bogus"
        else:
            state = "secure" if r.ad else "insecure"
        self.unbound_results[case_name] = (state, r, cd)
        return state, r, cd

    def test_unbound_validates_each_case(self):
        for case_name, case in CASES.items():
            with self.subTest(case=case_name, qname=case.qname, qtype=case.qtype):
                state, r, cd = self.unbound_verdict(case_name)
                self.assertEqual(state, case.state, r.summary())
                if case.state == "bogus":
                    self.assertEqual(r.rcode, "SERVFAIL")
                    self.assertFalse(r.ad)
                    self.assertEqual(r.answer, [])
                    self.assertEqual([code for code, _ in r.ede], [UNBOUND_EDE[case_name]],
                                     r.summary())
                    # With CD the resolver hands the data over, never with AD.
                    self.assertEqual(cd.rcode, "NOERROR", cd.summary())
                    self.assertFalse(cd.ad, cd.summary())
                    self.assertEqual(cd.data(case.qtype), [BOGUS_DATA[case_name]])
                    continue
                self.assertEqual(r.rcode, dnssec_zones.rcode(case_name), r.summary())
                self.assertEqual(r.ad, case.state == "secure", r.summary())
                self.assertEqual(r.ede, [], r.summary())
                if case_name in EXPECTED_DATA:
                    self.assertEqual(r.data(case.qtype), [EXPECTED_DATA[case_name]], r.answer)
                else:  # NXDOMAIN or NODATA: nothing in the answer, the proof in authority
                    self.assertEqual(r.answer, [])
                    denial = "NSEC3" if "nsec3" in case_name or "optout" in case_name else "NSEC"
                    self.assertIn(denial, [t for _, t, _ in r.authority], r.authority)
                if case_name.startswith("cname"):
                    self.assertEqual(len(r.data("CNAME")), 1, r.answer)

    def test_unbound_logs_why_bogus(self):
        for case_name, reason in UNBOUND_REASONS.items():
            self.unbound_verdict(case_name)
        deadline = time.monotonic() + 5
        while True:
            log = read_text(self.unbound_log)
            missing = [n for n, reason in UNBOUND_REASONS.items()
                       if not re.search(rf"validation failure <{re.escape(CASES[n].qname)}\. "
                                        rf"{CASES[n].qtype} IN>: {re.escape(reason)}", log)]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(missing, [], log)
        # Only the bogus cases failed validation.
        failed = set(re.findall(r"validation failure <(\S+)\. ", log))
        self.assertEqual(failed, {CASES[n].qname for n in UNBOUND_REASONS}, log)

    def test_unbound_asked_nsd_only(self):
        for case_name in CASES:
            self.unbound_verdict(case_name)
        log = read_text(self.unbound_log)
        targets = re.findall(r"sending to target: <[^>]*> (\S+)", log)
        self.assertGreater(len(targets), len(CASES), "Unbound logged no query it sent")
        self.assertEqual(set(targets), {f"{self.h.host}#{self.h.port}"})

    # -- both

    def test_drill_and_unbound_agree(self):
        for case_name, case in CASES.items():
            with self.subTest(case=case_name):
                drill_state = self.drill_verdict(case_name)[0]
                unbound_state = self.unbound_verdict(case_name)[0]
                if case_name in DRILL_DIFFERS:
                    # Known and asserted: see DRILL_DIFFERS.
                    self.assertEqual((drill_state, unbound_state),
                                     (DRILL_DIFFERS[case_name], case.state))
                else:
                    self.assertEqual(drill_state, unbound_state)
                    self.assertEqual(unbound_state, case.state)

    # -- the fixture itself

    def test_trust_anchor_files(self):
        """root.ds is the SHA-256 DS of the KSK in root.dnskey (RFC 4034 5.1.4, appendix B),
        computed here without ldns."""
        with open(self.h.anchor) as f:
            ds = f.read().split()
        with open(self.h.anchor_dnskey) as f:
            key = f.read().split(";")[0].split()
        d, k = ds.index("DS"), key.index("DNSKEY")
        self.assertEqual((ds[0], ds[d - 1], key[0], key[k - 1]), (".", "IN", ".", "IN"))
        flags, protocol, algorithm = (int(x) for x in key[k + 1:k + 4])
        rdata = (struct.pack("!HBB", flags, protocol, algorithm)
                 + base64.b64decode("".join(key[k + 4:])))
        tag = sum(b << 8 if i % 2 == 0 else b for i, b in enumerate(rdata))
        tag = (tag + (tag >> 16)) & 0xFFFF
        self.assertEqual((flags, protocol, algorithm), (257, 3, 13))
        self.assertEqual(ds[d + 1:d + 4], [str(tag), "13", "2"])
        self.assertEqual("".join(ds[d + 4:]).lower(), hashlib.sha256(b"\0" + rdata).hexdigest())

    def test_fixture_api(self):
        self.assertEqual(self.h.server, f"127.0.0.1:{self.h.port}")
        self.assertTrue(os.path.isfile(os.path.join(self.h.directory, "cases.json")))
        self.assertEqual(self.h.zones[-1], ".")
        for case in CASES.values():
            self.assertIn(case.state, STATE_ORDER)
        # NSD answers for every zone, with the DNSSEC records when asked (DO).
        for zone in self.h.zones:
            with self.subTest(zone=zone):
                r = query(self.h.port, zone, "SOA", rd=False)
                self.assertEqual(r.rcode, "NOERROR")
                self.assertEqual(len(r.data("SOA")), 1)
                signed = zone not in ("unsigned.test.", "deleg.optout.test.")
                self.assertEqual(bool(r.data("RRSIG")), signed, r.answer)
        # Opt-out for real: no NSEC3 of optout.test matches deleg.optout.test (SHA-1, no salt,
        # 0 extra iterations: RFC 5155 5), the one denying its DS covers it with opt-out set.
        owner_hash = base64.b32hexencode(
            hashlib.sha1(encode_name("deleg.optout.test")).digest()).decode().lower()
        r = query(self.h.port, "deleg.optout.test", "DS", rd=False)
        nsec3 = [(owner, bytes.fromhex(rdata)) for owner, rtype, rdata in r.authority
                 if rtype == "NSEC3"]
        self.assertTrue(nsec3, r.authority)
        for owner, rdata in nsec3:
            self.assertNotEqual(owner, f"{owner_hash}.optout.test.")
            self.assertEqual((rdata[0], rdata[1] & 1, rdata[2:4]), (1, 1, b"\0\0"), owner)

    @classmethod
    def print_table(cls):
        rows = [("case", "query", "expected", "drill -S", "Unbound")]
        for case_name, case in CASES.items():
            drill = cls.drill_results.get(case_name)
            ub = cls.unbound_results.get(case_name)
            ub_text = "-"
            if ub:
                ub_text = f"{ub[0]}: {ub[1].summary()}"
                if ub[2] is not None:
                    ub_text += f"; with CD: {ub[2].summary()}"
            rows.append((case_name, f"{case.qname} {case.qtype}",
                         f"{case.state} {dnssec_zones.rcode(case_name)}",
                         f"{drill[0]}: {drill[2]}" if drill else "-", ub_text))
        sys.stderr.write(f"\nfixture up in {cls.fixture_seconds:.2f} s\n")
        for row in rows:
            sys.stderr.write(" | ".join(row) + "\n")


if __name__ == "__main__":
    unittest.main()
