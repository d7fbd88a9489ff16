"""Recipes (stdlib/recipe.lua) run with `smtpsh --sandbox`: a recipe declares its name, what it
does and its parameters; smtpsh gives it --help, checks the parameters before anything runs,
prints what it returns (or --json), and lets it reach only the hosts its parameters name.

The servers are smtpsh's scenario servers on 127.0.0.1; recipes are the ones in examples/ and
small ones written to a scratch directory.

    /usr/bin/python3 -m unittest -v tests/e2e/test_recipe.py     (SMTPSH=/path/to/smtpsh)
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO_ROOT, SmtpshTestCase, describe, run_smtpsh, scenario, scratch_dir  # noqa: E402

PROBE = os.path.join(REPO_ROOT, "examples", "probe.lua")
BANNERS = os.path.join(REPO_ROOT, "examples", "banners.lua")


def write(name, text):
    path = os.path.join(scratch_dir("smtpsh-recipe-"), name)
    with open(path, "w") as f:
        f.write(text)
    return path


class TestRecipes(SmtpshTestCase):
    def test_help_lists_the_parameters_with_kinds_and_defaults(self):
        cp = run_smtpsh(["--sandbox", PROBE, "--help"])
        self.assertExit(cp, 0)
        self.assertIn("usage: smtpsh --sandbox RECIPE.lua --target HOST --recipient ADDRESS [OPTIONS]", cp.stdout)
        self.assertIn("probe: greeting, EHLO", cp.stdout)
        self.assertRegex(cp.stdout, r"--timeout SECONDS +the deadline of each step \[default: 15\]")
        self.assertRegex(cp.stdout, r"--target HOST +the server, HOST\[:PORT\] \(required\)")

    def test_parameters_are_checked_before_anything_runs(self):
        cases = [
            (["--target", "bad host", "--recipient", "a@b.test"], "--target bad host: "),
            (["--target", "127.0.0.1:25"], "missing --recipient ADDRESS"),
            (["--target", "127.0.0.1:25", "--recipient", "nobody"], "--recipient nobody: not an address"),
            (["--target", "127.0.0.1:25", "--recipient", "a@b.test", "--timeout", "soon"], "--timeout soon: a number"),
            (["--nope", "x"], "unknown parameter --nope"),
            (["stray"], 'unexpected argument "stray"'),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                cp = run_smtpsh(["--sandbox", PROBE, *args])
                self.assertOneLineError(cp, 2, "smtpsh sandbox: probe: ")
                self.assertIn(words, cp.stderr)

    def test_runs_against_a_server_and_returns_json(self):
        with scenario("accept") as port:
            target = f"127.0.0.1:{port}"
            cp = run_smtpsh(["--sandbox", PROBE, "--target", target, "--recipient", "postmaster@example.test",
                             "--json"], timeout=30)
            both = run_smtpsh(["--sandbox", BANNERS, "--first", target, "--second", target], timeout=30)
        self.assertExit(cp, 0)
        doc = json.loads(cp.stdout)
        self.assertEqual(doc["target"], target)
        self.assertTrue(doc["banner"].startswith("220 mx.accept.test"), doc)
        self.assertEqual(doc["recipient"], "accepted: 250 2.1.5 Ok")
        self.assertIn("STARTTLS", doc["offers"])
        self.assertTrue(any(line.startswith("C ") and line.endswith("EHLO " + line.split()[-1])
                            for line in doc["transcript"]), doc["transcript"])
        self.assertExit(both, 0)
        self.assertEqual(both.stdout.count('greeting = "220 mx.accept.test'), 2, describe(both))

    def test_a_recipe_reaches_only_the_hosts_its_parameters_name(self):
        recipe = write("elsewhere.lua", """
return {
  name = "elsewhere", description = "connects somewhere it was not given",
  params = { { name = "target", kind = "host", help = "a server" }, { name = "other", kind = "string", help = "x" } },
  run = function(p) local s, err = smtp.connect(p.other, { timeout = 5 }); return { err = tostring(err) } end,
}
""")
        with scenario("accept") as port:
            target = f"127.0.0.1:{port}"
            cp = run_smtpsh(["--sandbox", recipe, "--target", f"127.0.0.2:{port}", "--other", target], timeout=30)
        self.assertOneLineError(cp, 3, "smtpsh: the sandbox stopped the recipe: it tried to connect to " + target)

    def test_a_default_is_no_destination(self):
        # Only what the user gives counts: a default is the recipe author's choice.
        with scenario("accept") as port:
            recipe = write("default.lua", f"""
return {{
  name = "default", description = "connects to its default",
  params = {{ {{ name = "target", kind = "host", default = "127.0.0.1:{port}", help = "a server" }} }},
  run = function(p) local s, err = smtp.connect(p.target, {{ timeout = 5 }}); return {{ ok = s ~= nil }} end,
}}
""")
            cp = run_smtpsh(["--sandbox", recipe], timeout=30)
            given = run_smtpsh(["--sandbox", recipe, "--target", f"127.0.0.1:{port}", "--json"], timeout=30)
        self.assertOneLineError(cp, 3, f"smtpsh: the sandbox stopped the recipe: it tried to connect to 127.0.0.1:{port}")
        self.assertExit(given, 0)
        self.assertEqual(json.loads(given.stdout), {"ok": True})

    def test_a_recipe_that_needs_more_than_the_sandbox_is_refused(self):
        recipe = write("needs.lua", """
return { name = "needs", description = "wants files", needs = { "files" }, params = {},
         run = function() return 1 end }
""")
        cp = run_smtpsh(["--sandbox", recipe])
        self.assertOneLineError(cp, 2, "smtpsh sandbox: recipe needs needs files beyond the sandbox, "
                                "which the sandbox never grants")

    def test_what_a_recipe_needs_runs_only_once_granted_on_the_command_line(self):
        recipe = write("wide.lua", """
return { name = "wide", description = "greets any server on port 2525 too",
         needs = { "any host", "port %d" }, params = { { name = "target", kind = "string", help = "HOST:PORT" } },
         run = function(p)
           local s, err = smtp.connect(p.target, { timeout = 5 })
           if not s then return { error = tostring(err) } end
           s:quit()
           return { banner = tostring(s.banner) }
         end }
""")
        with scenario("accept") as port:
            with open(recipe) as f:
                text = f.read() % port
            with open(recipe, "w") as f:
                f.write(text)
            target = f"127.0.0.1:{port}"  # a string parameter: no destination of its own
            cp = run_smtpsh(["--sandbox", recipe, "--target", target])
            self.assertOneLineError(cp, 2, f"smtpsh sandbox: recipe wide needs any host (--allow-any-host), "
                                    f"port {port} (--allow-port {port}): read it, then grant that")
            cp = run_smtpsh(["--sandbox", "--allow-any-host", recipe, "--target", target])
            self.assertOneLineError(cp, 2, f"smtpsh sandbox: recipe wide needs port {port} (--allow-port {port})")
            cp = run_smtpsh(["--sandbox", "--allow-any-host", "--allow-port", str(port), recipe,
                             "--target", target, "--json"], timeout=30)
            self.assertExit(cp, 0)
            self.assertIn("220 mx.accept.test", json.loads(cp.stdout)["banner"])

    def test_a_malformed_declaration_is_named(self):
        for body, words in (
            ('{ name = "x", run = function() end }', "needs a one-line description"),
            ('{ name = "bad name", description = "d", run = function() end }', "needs a name"),
            ('{ name = "x", description = "d", params = { { name = "p", kind = "ip" } }, run = function() end }',
             'parameter p has kind "ip"'),
        ):
            with self.subTest(body=body):
                cp = run_smtpsh(["--sandbox", write("bad.lua", "return " + body)])
                self.assertOneLineError(cp, 1, "smtpsh: ")
                self.assertIn(words, cp.stderr)

    def test_the_top_level_of_a_recipe_runs_sandboxed_too(self):
        # Reading the declaration runs the file: before --help is shown, a forbidden call stops it.
        recipe = write("evil.lua", 'os.execute("true")\nreturn { name = "x", description = "d", run = function() end }')
        cp = run_smtpsh(["--sandbox", recipe, "--help"])
        self.assertOneLineError(cp, 3, "smtpsh: the sandbox stopped the recipe: it used os.execute")


if __name__ == "__main__":
    unittest.main()
