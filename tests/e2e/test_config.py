"""The user's configuration: ~/.config/smtpsh/init.lua at REPL start, ~/.config/smtpsh/scripts/
NAME.lua as a subcommand (and stdlib/NAME.lua for require "smtpsh.NAME"), and SMTPSH_PATH's
folders searched first. HOME is a fresh temporary directory in every test."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Repl, SmtpshTestCase, run_smtpsh, scratch_dir  # noqa: E402


def line(text):
    """A regex for `text` as a whole output line."""
    return r"(?m)^" + re.escape(text) + r"\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class ConfigTestCase(SmtpshTestCase):
    def setUp(self):
        self.home = scratch_dir("smtpsh-home-")
        self.config = os.path.join(self.home, ".config", "smtpsh")
        self.env = {"HOME": self.home, "XDG_STATE_HOME": os.path.join(self.home, "state")}

    def repl(self, args=(), env=None):
        r = Repl(args, env={**self.env, **(env or {})})
        self.addCleanup(r.close)
        return r

    def smtpsh(self, args, env=None, **kw):
        return run_smtpsh(args, env={**self.env, **(env or {})}, **kw)


class TestInitFile(ConfigTestCase):
    def test_init_runs_at_repl_start(self):
        write(os.path.join(self.config, "init.lua"),
              'from_init = 4242\n'
              'function twice(x) return 2 * x end\n'
              'task.sleep(0.01)  -- init runs as a task: blocking calls work\n'
              'print("init" .. "-ran")\n')
        r = self.repl()
        r.expect(line("init-ran"), timeout=10)
        r.expect_prompt()
        r.send("from_init + twice(1)")
        r.expect(line("4244"))
        r.expect_prompt()
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

    def test_init_runs_after_i_script_and_sees_demo(self):
        write(os.path.join(self.config, "init.lua"),
              'print("init sees demo: " .. tostring(demo ~= nil) .. ", script ran: " .. tostring(script_ran))\n')
        script = os.path.join(self.home, "first.lua")
        write(script, "script_ran = true\n")
        r = self.repl(["--demo", "-i", script])
        r.expect(line("init sees demo: true, script ran: true"), timeout=10)
        r.expect_prompt()
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

    def test_xdg_config_home_wins(self):
        write(os.path.join(self.config, "init.lua"), 'print("from-home-config")\n')
        xdg = os.path.join(self.home, "xdg")
        write(os.path.join(xdg, "smtpsh", "init.lua"), 'print("from-" .. "xdg")\n')
        r = self.repl(env={"XDG_CONFIG_HOME": xdg})
        r.expect(line("from-xdg"), timeout=10)
        r.expect_prompt()
        self.assertNotIn("from-home-config", r.text())

    def test_error_in_init_is_reported_and_the_repl_goes_on(self):
        path = os.path.join(self.config, "init.lua")
        write(path, 'error("init " .. "broke")\n')
        r = self.repl()
        r.expect(r"init broke", timeout=10)
        r.expect_prompt()
        self.assertIn(path, r.text(), "the error names the init file")
        r.send("1 + 1")
        r.expect(line("2"))
        r.expect_prompt()
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

    def test_syntax_error_in_init(self):
        write(os.path.join(self.config, "init.lua"), "this is not lua\n")
        r = self.repl()
        r.expect(r"init\.lua:1:", timeout=10)
        r.expect_prompt()
        r.send("40 + 2")
        r.expect(line("42"))
        r.expect_prompt()

    def test_init_is_not_run_outside_the_repl(self):
        write(os.path.join(self.config, "init.lua"), 'print("init-ran")\nfrom_init = 1\n')
        cp = self.smtpsh(["-e", "print(rawget(_G, 'from_init'))"])
        self.assertOk(cp, "nil")
        self.assertNotIn("init-ran", cp.stdout)
        cp = self.smtpsh([], stdin="print('from stdin')\n")
        self.assertOk(cp, "from stdin")
        self.assertNotIn("init-ran", cp.stdout)


class TestUserScripts(ConfigTestCase):
    def test_config_script_is_a_subcommand(self):
        write(os.path.join(self.config, "scripts", "hello.lua"),
              'local lib = require "smtpsh.greeting"\n'
              'print(lib.greet(...))\n'
              'os.exit(select("#", ...) == 2 and 0 or 3)\n')
        write(os.path.join(self.config, "stdlib", "greeting.lua"),
              'return {greet = function(a, b) return "hello " .. a .. " and " .. b end}\n')
        cp = self.smtpsh(["hello", "alice", "bob"])
        self.assertOk(cp, "hello alice and bob")

    def test_unknown_command_lists_the_users(self):
        write(os.path.join(self.config, "scripts", "mine.lua"), "print(1)\n")
        cp = self.smtpsh(["nosuchcommand"])
        self.assertOneLineError(cp, 2, "smtpsh: unknown command 'nosuchcommand'")
        self.assertIn("mine", cp.stderr)
        self.assertIn("banner", cp.stderr)

    def test_config_script_shadows_a_built_in(self):
        write(os.path.join(self.config, "scripts", "banner.lua"), 'print("my banner", ...)\n')
        cp = self.smtpsh(["banner", "x"])
        self.assertOk(cp, "my banner\tx")

    def test_without_the_file_the_built_in_runs(self):
        cp = self.smtpsh(["banner", "--help"])
        self.assertOk(cp)
        self.assertIn("usage: smtpsh banner", cp.stdout)


class TestSmtpshPath(ConfigTestCase):
    def test_folders_are_searched_in_order_before_the_config(self):
        first = os.path.join(self.home, "first")
        second = os.path.join(self.home, "second")
        write(os.path.join(first, "scripts", "which.lua"), 'print("first")\n')
        write(os.path.join(second, "scripts", "which.lua"), 'print("second")\n')
        write(os.path.join(second, "scripts", "only_second.lua"), 'print("only in second")\n')
        write(os.path.join(self.config, "scripts", "which.lua"), 'print("config")\n')
        write(os.path.join(self.config, "scripts", "only_config.lua"), 'print("only in config")\n')
        env = {"SMTPSH_PATH": f"{first}::{second}"}  # an empty entry is ignored
        self.assertOk(self.smtpsh(["which"], env=env), "first")
        self.assertOk(self.smtpsh(["only_second"], env=env), "only in second")
        self.assertOk(self.smtpsh(["only_config"], env=env), "only in config")
        self.assertOk(self.smtpsh(["which"], env={"SMTPSH_PATH": second}), "second")
        self.assertOk(self.smtpsh(["which"]), "config")

    def test_stdlib_module_from_the_path(self):
        lib = os.path.join(self.home, "lib")
        write(os.path.join(lib, "stdlib", "extra", "util.lua"), 'return {answer = 42}\n')
        cp = self.smtpsh(["-e", 'print(require("smtpsh.extra.util").answer)'],
                         env={"SMTPSH_PATH": lib})
        self.assertOk(cp, "42")
        cp = self.smtpsh(["-e", 'print(pcall(require, "smtpsh.extra.util"))'])
        self.assertOk(cp)
        self.assertTrue(cp.stdout.startswith("false"), cp.stdout)

    def test_path_overrides_the_embedded_stdlib(self):
        lib = os.path.join(self.home, "lib")
        write(os.path.join(lib, "stdlib", "json.lua"),
              'return {encode = function() return "overridden" end}\n')
        cp = self.smtpsh(["-e", 'print(require("smtpsh.json").encode({}))'],
                         env={"SMTPSH_PATH": lib})
        self.assertOk(cp, "overridden")


if __name__ == "__main__":
    unittest.main()
