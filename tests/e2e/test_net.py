"""smtpsh's net module against real loopback peers (tests/peers/tcp_peer.py, smtp-sink).

The assertions live in tests/lua/net_*.lua (error() on mismatch, an `OK name` line on
success); this module starts the peers, runs the scripts and bounds their wall time.

    /usr/bin/python3 -m unittest -v tests/e2e/test_net.py      (SMTPSH=/path/to/smtpsh)
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LUA_DIR, SmtpshTestCase, describe, peer, run_smtpsh, timed_run  # noqa: E402


def lua(name):
    return os.path.join(LUA_DIR, name)


class TestNet(SmtpshTestCase):
    def run_lua(self, script, *args, marker=None, timeout=20):
        cp, elapsed = timed_run([lua(script), *map(str, args)], timeout=timeout)
        self.assertOk(cp, marker or "OK " + script[:-4])
        return cp, elapsed

    def timed_inside(self, cp, name):
        """The seconds a script measured itself (task.now) and printed after its OK."""
        self.assertExit(cp, 0)
        m = re.search(rf"(?m)^OK {name} (\d+\.\d+)$", cp.stdout)
        self.assertIsNotNone(m, describe(cp))
        return float(m.group(1))

    def test_line_io(self):
        with peer("lines", "hello world", "second line") as port:
            self.run_lua("net_lines.lua", port)

    def test_bare_lf(self):
        with peer("bare-lf") as port:
            self.run_lua("net_bare_lf.lua", port)

    def test_partial_at_eof(self):
        with peer("partial") as port:
            self.run_lua("net_partial.lua", port)

    def test_receive_n(self):
        with peer("bytes") as port:
            self.run_lua("net_bytes.lua", port)

    def test_send_to_closed_peer(self):
        with peer("partial") as port:
            self.run_lua("net_send_closed.lua", port)

    def test_refused(self):
        self.run_lua("net_refused.lua", harness.free_port())

    def test_connect_timeout(self):
        with peer("backlog") as port:
            cp, _ = timed_run([lua("net_connect_timeout.lua"), str(port)], timeout=20)
        took = self.timed_inside(cp, "net_connect_timeout")
        self.assertGreaterEqual(took, 0.45, f"{took:.3f}s{describe(cp)}")
        self.assertLess(took, 1.5, f"{took:.3f}s{describe(cp)}")

    def test_receive_timeout(self):
        with peer("silent") as port:
            cp, _ = timed_run([lua("net_receive_timeout.lua"), str(port)], timeout=20)
        took = self.timed_inside(cp, "net_receive_timeout")
        self.assertGreaterEqual(took, 0.95, f"{took:.3f}s{describe(cp)}")
        self.assertLess(took, 2.5, f"{took:.3f}s{describe(cp)}")

    @harness.skip_if_slowed
    def test_receive_timeouts_overlap_across_tasks(self):
        with peer("silent") as port:
            cp, elapsed = self.run_lua("net_concurrent.lua", port)
        self.assertGreaterEqual(elapsed, 0.45, f"{elapsed:.3f}s{describe(cp)}")
        self.assertLess(elapsed, 1.2, f"not concurrent: {elapsed:.3f}s{describe(cp)}")

    def test_line_too_long(self):
        with peer("longline", "70000") as port:
            self.run_lua("net_longline.lua", port)

    def test_long_line_under_limit(self):
        n = 60000
        with peer("lines", "y" * n) as port:
            self.run_lua("net_bigline.lua", port, n)

    def test_addresses(self):
        with peer("lines", "hi") as port:
            cp, _ = timed_run([lua("net_addrs.lua"), str(port)])
        self.assertExit(cp, 0)
        self.assertRegex(cp.stdout, r"(?m)^OK net_addrs \d+ \d+$", describe(cp))

    @unittest.skipUnless(harness.ipv6_loopback_available(), "no IPv6 loopback (::1)")
    def test_ipv6(self):
        with peer("lines", "v6 hello", host="::1") as port:
            self.run_lua("net_ipv6.lua", port)

    def test_smtp_sink_exchange(self):
        with harness.smtp_sink() as port:
            cp, _ = timed_run([lua("net_smtp_sink.lua"), str(port)])
        self.assertExit(cp, 0)
        self.assertRegex(cp.stdout, r"(?m)^OK net_smtp_sink \d+$", describe(cp))

    def test_connect_returns_nil_err_not_raise(self):
        # a failed connect is a value, not an exception: pcall is not needed
        port = harness.free_port()
        cp = run_smtpsh(["-e", f"local c, e = net.connect('127.0.0.1', {port}); "
                               "print(c, e.kind, type(tostring(e)))"])
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "nil\trefused\tstring\n", describe(cp))


if __name__ == "__main__":
    unittest.main()
