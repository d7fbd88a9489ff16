"""Record and replay: `--record FILE.jsonl` writes every DNS answer and SMTP transcript line;
`smtpsh replay FILE` serves that remote side again on loopback (the recorded servers are
stopped first) and runs the command against it, reporting any line the client sends that
differs from the recording.

    /usr/bin/python3 -m unittest -v tests/e2e/test_replay.py      (SMTPSH=/path/to/smtpsh)
"""

import json
import os
import sys
import time
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

    # --- self-contained recordings: the recipe's text, TLS results, generated values ----------

    TLS_RECIPE = """\
-- a recipe that shows what TLS presented
return {
  name = "tlsprobe", description = "STARTTLS and the certificate seen",
  params = { { name = "target", kind = "host", help = "HOST[:PORT]" } },
  run = function(p)
    local s = assert(smtp.connect(p.target, { timeout = 5 }))
    assert(s:ehlo("probe.test"))
    local info = assert(s:starttls())
    s:quit()
    local leaf = info.chain[1]
    return { version = info.version, cipher = info.cipher, subject = leaf.subject,
             names = leaf.names, sha256 = leaf.sha256, spki = leaf.spki_sha256,
             not_before = leaf.not_before, not_after = leaf.not_after, serial = leaf.serial,
             verified = info.verified, verify = info.verify_result }
  end,
}
"""

    def version(self):
        cp = run_smtpsh(["--version"])
        return cp.stdout.split()[1]

    def record_recipe(self, source, name="tlsprobe.lua", scenario_name="accept"):
        """Records `smtpsh --sandbox RECIPE --target 127.0.0.1:PORT --json` against a scenario
        server, then deletes the recipe: (the JSON it printed, the recording, the work dir)."""
        work = scratch_dir("smtpsh-replay-")
        recipe = os.path.join(work, name)
        with open(recipe, "w") as f:
            f.write(source)
        recording = os.path.join(work, "recipe.jsonl")
        with scenario(scenario_name) as port:
            cp = run_smtpsh(["--record", recording, "--sandbox", recipe, "--target",
                             f"127.0.0.1:{port}", "--json"], timeout=30)
        self.assertExit(cp, 0)
        os.remove(recipe)
        return json.loads(cp.stdout), recording, work

    def test_a_recipe_replays_from_its_recording_alone_with_the_recorded_certificate(self):
        seen, recording, work = self.record_recipe(self.TLS_RECIPE)
        entries = read_jsonl(recording)
        self.assertEqual(entries[0]["smtpsh"], self.version())
        recipes = [e for e in entries if e["type"] == "recipe"]
        self.assertEqual(len(recipes), 1)
        self.assertEqual(recipes[0]["source"], self.TLS_RECIPE)
        self.assertEqual(recipes[0]["file"].rsplit("/", 1)[-1], "tlsprobe.lua")
        self.assertEqual(recipes[0]["args"][0], "--target")
        tls = [e for e in entries if e["type"] == "tls"]
        self.assertEqual(len(tls), 1)
        self.assertEqual(tls[0]["info"]["chain"][0]["sha256"], seen["sha256"])

        # The scenario server is gone and so is the recipe's file: only the recording is left.
        cp = run_smtpsh(["replay", recording], timeout=30, cwd=work)
        self.assertExit(cp, 0)
        replayed = json.loads(cp.stdout)
        # Every detail of the certificate as the recipe saw it then, not the replay's own.
        self.assertEqual(replayed, seen)
        self.assertEqual(replayed["subject"], "CN=mx.accept.test")
        self.assertIn("replay: the client sent exactly what was recorded", cp.stderr)
        self.assertNotIn("recorded by smtpsh", cp.stderr)  # the same version: nothing to say

    def test_implicit_tls_with_a_chain_replays_as_recorded(self):
        """Port-465 style TLS from the first byte, against aiosmtpd with a two-certificate
        chain: the replay reports the whole chain as recorded, with no handshake run."""
        work = scratch_dir("smtpsh-replay-")
        script = os.path.join(work, "implicit.lua")
        with open(script, "w") as f:
            f.write('local s = assert(smtp.connect(arg[1], {tls = "implicit", timeout = 5}))\n'
                    'local info = s.tls\n'
                    'for i, cert in ipairs(info.chain) do\n'
                    '  print(i, cert.subject, cert.issuer, cert.sha256, cert.not_after, table.concat(cert.names, ","))\n'
                    'end\n'
                    'print(info.version, info.verified, info.verify_result)\n'
                    's:quit()\n')
        recording = os.path.join(work, "implicit.jsonl")
        certs = harness.test_certs()
        with harness.tls_peer("aiosmtpd", "--cert", f"{certs}/mx1-chain.pem", "--key", f"{certs}/mx1.key",
                              "--implicit") as peer:
            cp = run_smtpsh(["--record", recording, script, f"127.0.0.1:{peer['implicit']}"], timeout=30)
        self.assertExit(cp, 0)
        seen = cp.stdout.splitlines()
        self.assertEqual(len(seen), 3, describe(cp))  # leaf, intermediate, the summary
        self.assertIn("mx1", seen[0])
        os.remove(script)
        cp = run_smtpsh(["replay", recording], timeout=30)
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout.splitlines(), seen)
        self.assertIn("replay: the client sent exactly what was recorded", cp.stderr)

    def test_a_replay_without_the_recorded_tls_result_runs_a_handshake_of_its_own(self):
        """Recordings from before TLS results were kept still replay, with the replay's own
        certificate: the recorded one shows only where it was recorded."""
        seen, recording, work = self.record_recipe(self.TLS_RECIPE)
        older = os.path.join(work, "older.jsonl")
        with open(recording) as f, open(older, "w") as out:
            out.writelines(line for line in f if '"type":"tls"' not in line)
        cp = run_smtpsh(["replay", older], timeout=30)
        self.assertExit(cp, 0)
        replayed = json.loads(cp.stdout)
        self.assertEqual(replayed["subject"], "CN=replay.smtpsh.test")
        self.assertNotEqual(replayed["sha256"], seen["sha256"])

    def test_the_replay_of_a_recipe_runs_in_the_sandbox(self):
        """A recording someone sends may hold any Lua: its replay runs it sandboxed, even
        when it was recorded as a plain script (which ran unsandboxed for its author)."""
        work = scratch_dir("smtpsh-replay-")
        script = os.path.join(work, "sneaky.lua")
        with open(script, "w") as f:
            f.write('local s = assert(smtp.connect(arg[1], {timeout = 3}))\n'
                    's:quit()\n'
                    'print("connected")\n'
                    'local f = io.open(arg[2], "w")\n'
                    'if f then f:write("written") f:close() print("wrote the file") end\n')
        target = os.path.join(work, "target.txt")
        recording = os.path.join(work, "sneaky.jsonl")
        with harness.smtp_sink() as port:
            cp = run_smtpsh(["--record", recording, script, f"127.0.0.1:{port}", target], timeout=30)
        self.assertOk(cp, "wrote the file")  # unsandboxed, as its author ran it
        os.remove(target)
        os.remove(script)
        cp = run_smtpsh(["replay", recording], timeout=30)
        self.assertIn("connected", cp.stdout.splitlines(), describe(cp))
        self.assertNotIn("wrote the file", cp.stdout, describe(cp))
        self.assertFalse(os.path.exists(target), "the replay wrote a file")
        self.assertIn("sandbox", cp.stderr, describe(cp))

    def test_show_prints_the_recording_and_runs_nothing(self):
        source = self.TLS_RECIPE.replace("-- a recipe", "-- a recipe \x1b[2J with an escape")
        _, recording, _ = self.record_recipe(source)
        cp = run_smtpsh(["replay", "--show", recording], timeout=10)
        self.assertExit(cp, 0)
        out = cp.stdout
        self.assertIn(f"recorded by: smtpsh {self.version()}", out)
        self.assertRegex(out, r"(?m)^command: smtpsh sandbox -- \S*tlsprobe\.lua --target 127\.0\.0\.1:\d+ --json$")
        self.assertRegex(out, r"(?m)^recipe: \S*tlsprobe\.lua \(16 lines\), arguments: --target 127\.0\.0\.1:\d+ --json$")
        self.assertIn('   1  -- a recipe \\x1b[2J with an escape', out)  # the escape shown, not obeyed
        self.assertNotIn("\x1b", out)
        self.assertIn('   6      local s = assert(smtp.connect(p.target, { timeout = 5 }))', out)
        self.assertRegex(out, r"(?m)^  \[ +\d+\.\d{3}\] -> EHLO probe\.test$")
        self.assertRegex(out, r"(?m)^  \[ +\d+\.\d{3}\] <- 220 mx\.accept\.test ")
        self.assertRegex(out, r"(?m)^  TLS: TLSv1\.3 \S+, certificate CN=mx\.accept\.test \(sha256 [0-9A-F:]{95}, valid until ")
        self.assertEqual(cp.stderr, "")  # nothing served, nothing run

    def test_a_recording_from_another_version_says_so(self):
        _, recording, work = self.record_recipe(self.TLS_RECIPE)
        other = os.path.join(work, "other.jsonl")
        entries = read_jsonl(recording)
        entries[0]["smtpsh"] = "0.0.1"
        with open(other, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in entries)
        cp = run_smtpsh(["replay", other], timeout=30)
        self.assertExit(cp, 0)
        self.assertIn(f"replay: recorded by smtpsh 0.0.1; this is smtpsh {self.version()}\n", cp.stderr)

    def test_a_recorded_send_replays_byte_for_byte(self):
        """send makes a Date, a Message-Id, a Subject and a MIME boundary from the clock and at
        random: the recording keeps them, so the replayed message is the recorded one."""
        work = scratch_dir("smtpsh-replay-")
        attachment = os.path.join(work, "report.txt")
        with open(attachment, "w") as f:
            f.write("the attached report\n")
        recording = os.path.join(work, "send.jsonl")
        with scenario("accept") as port:
            cp = run_smtpsh(["--record", recording, "send", "--server", f"127.0.0.1:{port}",
                             "--from", "a@sender.test", "--to", "b@rcpt.test", "--attach", attachment],
                            timeout=30)
        self.assertExit(cp, 0)
        entries = read_jsonl(recording)
        values = {e["name"]: e["value"] for e in entries if e["type"] == "value"}
        self.assertEqual(set(values), {"send.subject", "send.date", "send.message_id", "send.boundary_seed"})
        sent = [line for _, line in client_lines(entries)]
        self.assertIn(f"Message-Id: {values['send.message_id']}", sent)
        self.assertIn(f"Date: {values['send.date']}", sent)
        self.assertTrue(any(line.startswith("--=_smtpsh_") for line in sent), sent)
        time.sleep(1.1)  # a second later: a fresh Date would differ
        cp = run_smtpsh(["replay", recording], timeout=30)
        self.assertExit(cp, 0)
        self.assertIn("replay: the client sent exactly what was recorded", cp.stderr)

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
