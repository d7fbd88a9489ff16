"""Record and replay: `--record FILE.jsonl` writes every DNS answer and SMTP transcript line;
`smtpsh replay FILE` serves that remote side again on loopback (the recorded servers are
stopped first) and runs the command against it, reporting any line the client sends that
differs from the recording.

    /usr/bin/python3 -m unittest -v tests/e2e/test_replay.py      (SMTPSH=/path/to/smtpsh)
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SmtpshTestCase, describe, dns_peer, run_smtpsh, scenario, scratch_dir  # noqa: E402


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def client_lines(entries):
    """The client's side of every session, in order: what must replay byte for byte."""
    return [(e["session"], e["line"]) for e in entries if e["type"] == "smtp" and e["dir"] == "C"]


class TestReplay(SmtpshTestCase):
    def record(self, name, sets, *args):
        """Runs diagnose against scenario NAME with NSD, recording; returns (doc, recording,
        the command's arguments without --record)."""
        work = scratch_dir("smtpsh-replay-")
        recording = os.path.join(work, "probe.jsonl")
        with dns_peer("nsd") as dns_port, scenario(name, *sets) as port:
            argv = ["diagnose", f"127.0.0.1:{port}", "--json", "--resolver", f"127.0.0.1:{dns_port}",
                    "--dnsbl", "dnsbl.test", "--timeout", "3", *args]
            cp = run_smtpsh(argv + ["--record", recording], timeout=60)
        self.assertIn(cp.returncode, (0, 1), describe(cp))
        return json.loads(cp.stdout), recording, argv, work

    def test_greylisting_round_trip(self):
        doc, recording, argv, work = self.record("greylist", ["delay=1"], "--retries", "3",
                                                 "--backoff", "0.6")
        self.assertEqual(doc["verdict"], "greylisted")
        entries = read_jsonl(recording)
        self.assertEqual(entries[0]["type"], "start")
        self.assertEqual(entries[0]["argv"][0], "diagnose")
        dns_lines = [e for e in entries if e["type"] == "dns"]
        self.assertTrue(dns_lines and all(e["wire"] for e in dns_lines), "DNS answers are recorded")
        self.assertTrue(any(e["type"] == "smtp" and e["dir"] == "S" for e in entries))

        # The scenario and NSD are gone now: everything comes from the recording.
        again = os.path.join(work, "replayed.jsonl")
        cp = run_smtpsh(["replay", recording, "--", *argv, "--record", again], timeout=60)
        self.assertExit(cp, 1)  # the verdict is not ok
        replayed = json.loads(cp.stdout)
        self.assertEqual(replayed["verdict"], "greylisted")
        self.assertEqual(replayed["stage"], doc["stage"])
        self.assertEqual(client_lines(read_jsonl(again)), client_lines(entries))
        self.assertIn("replay: the client sent exactly what was recorded", cp.stderr)

    def test_replay_runs_the_recorded_command(self):
        doc, recording, _, _ = self.record("drop_at", ["at=rcpt"])
        self.assertEqual(doc["verdict"], "dropped_mid_session")
        cp = run_smtpsh(["replay", recording], timeout=60)
        self.assertExit(cp, 1)
        replayed = json.loads(cp.stdout)
        self.assertEqual((replayed["verdict"], replayed["stage"]), ("dropped_mid_session", "rcpt"))

    def test_ok_with_starttls_replays(self):
        doc, recording, _, _ = self.record("accept", [], "--source", "127.0.0.1")
        self.assertEqual(doc["verdict"], "ok")
        cp = run_smtpsh(["replay", recording], timeout=60)
        self.assertExit(cp, 0)
        self.assertEqual(json.loads(cp.stdout)["verdict"], "ok")

    def test_a_client_that_strays_is_reported(self):
        doc, recording, argv, _ = self.record("reject", [])
        cp = run_smtpsh(["replay", recording, "--", *argv, "--helo", "other.example.test"], timeout=60)
        self.assertExit(cp, 1)
        self.assertIn("mismatch(es) between the client and the recording", cp.stderr)
        self.assertIn('expected the client to send "EHLO ', cp.stderr)
        self.assertIn('got "EHLO other.example.test"', cp.stderr)

    def test_a_refused_connect_replays_refused(self):
        work = scratch_dir("smtpsh-replay-")
        recording = os.path.join(work, "refused.jsonl")
        port = harness.free_port()
        # The resolver is a closed loopback port: nothing may leave this machine.
        cp = run_smtpsh(["diagnose", f"127.0.0.1:{port}", "--json", "--dnsbl", "none",
                         "--resolver", f"127.0.0.1:{harness.free_port()}", "--timeout", "2",
                         "--record", recording], timeout=30)
        self.assertEqual(json.loads(cp.stdout)["verdict"], "connect_refused")
        cp = run_smtpsh(["replay", recording], timeout=30)
        self.assertEqual(json.loads(cp.stdout)["verdict"], "connect_refused", describe(cp))

    def test_a_script_recorded_with_the_shell_option_replays(self):
        work = scratch_dir("smtpsh-replay-")
        script = os.path.join(work, "probe.lua")
        with open(script, "w") as f:
            f.write('local s = assert(smtp.connect(arg[1], {timeout = 3}))\n'
                    'assert(s:ehlo("probe.test"))\n'
                    'local r, err = s:rcpt("x@example.test")\n'
                    'print("RCPT", r and r.code or err.reply.code)\n'
                    's:quit()\n')
        recording = os.path.join(work, "script.jsonl")
        with harness.smtp_sink() as port:
            cp = run_smtpsh(["--record", recording, script, f"127.0.0.1:{port}"], timeout=30)
        self.assertOk(cp, "RCPT\t503")  # smtp-sink: RCPT before MAIL
        self.assertEqual(read_jsonl(recording)[0]["argv"], [script, f"127.0.0.1:{port}"])
        cp = run_smtpsh(["replay", recording], timeout=30)
        self.assertOk(cp, "RCPT\t503")
        self.assertIn("exactly what was recorded", cp.stderr)

    def test_bad_usage(self):
        cp = run_smtpsh(["replay", "/nonexistent.jsonl"])
        self.assertOneLineError(cp, 2, "smtpsh replay: cannot read /nonexistent.jsonl")
        cp = run_smtpsh(["replay"])
        self.assertOneLineError(cp, 2, "smtpsh replay: missing FILE.jsonl")
        work = scratch_dir("smtpsh-replay-")
        cp = run_smtpsh(["replay", work])
        self.assertOneLineError(cp, 2, f"smtpsh replay: cannot read {work}: it is a directory")
        for name, text, error in (
                ("nostart.jsonl", '{"type":"smtp","session":1,"st":0,"dir":"S","line":"220 x"}\n',
                 "is not a recording: it has no start line"),
                ("number.jsonl", '{"type":"start","argv":["banner"]}\n1\n', "line 2: expected a JSON object"),
                ("endpoint.jsonl", '{"type":"start","argv":["banner"]}\n'
                 '{"type":"smtp","session":1,"st":0,"dir":"!","line":"connected to nowhere from x"}\n',
                 "names an endpoint that is not IP:PORT")):
            path = os.path.join(work, name)
            with open(path, "w") as f:
                f.write(text)
            cp = run_smtpsh(["replay", path])
            self.assertOneLineError(cp, 2, f"smtpsh replay: {path} ")
            self.assertIn(error, cp.stderr)


if __name__ == "__main__":
    unittest.main()
