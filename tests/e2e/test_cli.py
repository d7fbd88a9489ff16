"""smtpsh's command line: options, scripts, arguments, exit statuses, subcommands, require.

    /usr/bin/python3 -m unittest -v tests/e2e/test_cli.py      (SMTPSH=/path/to/smtpsh)
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SmtpshTestCase, describe, peer, run_smtpsh, scratch_dir  # noqa: E402


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class TestOptions(SmtpshTestCase):
    def test_version(self):
        cp = run_smtpsh(["--version"])
        self.assertExit(cp, 0)
        self.assertRegex(cp.stdout, r"\Asmtpsh \d+\.\d+\.\d+", describe(cp))
        self.assertEqual(len(cp.stdout.splitlines()), 1, describe(cp))
        self.assertEqual(cp.stderr, "", describe(cp))

    def test_help(self):
        cp = run_smtpsh(["--help"])
        self.assertExit(cp, 0)
        for word in ("-e", "-i", "--demo"):
            self.assertRegex(cp.stdout, r"(?<![\w-])" + re.escape(word) + r"\b",
                             f"--help should mention {word}{describe(cp)}")

    def test_every_command_in_help_answers_help(self):
        cp = run_smtpsh(["--help"])
        listed = re.findall(r"^  (\w+) ", cp.stdout.split("commands built in", 1)[1], re.M)
        self.assertEqual(set(listed), {"diagnose", "explain", "verify", "dns", "blacklist", "tls", "banner", "raw",
                                       "send", "serve", "replay", "watch", "sandbox"})
        for name in listed:
            with self.subTest(command=name):
                sub = run_smtpsh([name, "--help"])
                self.assertExit(sub, 0)
                self.assertTrue(sub.stdout.startswith("usage: smtpsh " + name), describe(sub))

    def test_unknown_option(self):
        cp = run_smtpsh(["-x"])
        self.assertOneLineError(cp, 2, "smtpsh: unknown option '-x'")

    def test_unknown_long_option(self):
        cp = run_smtpsh(["--no-such-option"])
        self.assertOneLineError(cp, 2, "smtpsh: unknown option '--no-such-option'")

    def test_e_without_argument(self):
        cp = run_smtpsh(["-e"])
        self.assertOneLineError(cp, 2, "smtpsh: ")
        self.assertEqual(cp.stdout, "", describe(cp))


class TestChunks(SmtpshTestCase):
    def test_e_prints(self):
        cp = run_smtpsh(["-e", "print(1+1)"])
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "2\n", describe(cp))

    def test_e_error(self):
        cp = run_smtpsh(["-e", "local x = 1; error('kaboom-42')"])
        self.assertExit(cp, 1)
        self.assertIn("kaboom-42", cp.stderr, describe(cp))
        self.assertIn("stack traceback", cp.stderr, describe(cp))

    def test_e_runtime_error(self):
        cp = run_smtpsh(["-e", "local t = nil; return t.field"])
        self.assertExit(cp, 1)
        self.assertIn("stack traceback", cp.stderr, describe(cp))

    def test_e_syntax_error(self):
        cp = run_smtpsh(["-e", "print(("])
        self.assertExit(cp, 1)
        self.assertNotEqual(cp.stderr.strip(), "", describe(cp))

    def test_e_os_exit(self):
        cp = run_smtpsh(["-e", "io.write('before'); io.flush(); os.exit(5)"])
        self.assertExit(cp, 5)
        self.assertEqual(cp.stdout, "before", describe(cp))

    def test_stdin_script(self):
        cp = run_smtpsh([], stdin="print(42)\n")
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "42\n", describe(cp))

    def test_stdin_script_multiline_with_error(self):
        cp = run_smtpsh([], stdin="print('a')\nerror('from-stdin')\nprint('b')\n")
        self.assertExit(cp, 1)
        self.assertEqual(cp.stdout, "a\n", describe(cp))
        self.assertIn("from-stdin", cp.stderr, describe(cp))


class TestScripts(SmtpshTestCase):
    def setUp(self):
        self.dir = scratch_dir()

    def test_args(self):
        write(os.path.join(self.dir, "FILE.lua"), r"""
local function eq(got, want, what)
  if got ~= want then error(what .. ": got " .. tostring(got) .. ", want " .. tostring(want)) end
end
eq(arg[0], "FILE.lua", "arg[0]")
eq(arg[1], "a", "arg[1]")
eq(arg[2], "b c", "arg[2]")
eq(arg[3], nil, "arg[3]")
eq(#arg, 2, "#arg")
eq(select("#", ...), 2, "select('#', ...)")
local x, y = ...
eq(x, "a", "first vararg")
eq(y, "b c", "second vararg")
print("args ok")
""")
        cp = run_smtpsh(["FILE.lua", "a", "b c"], cwd=self.dir)
        self.assertOk(cp, "args ok")

    def test_no_args(self):
        write(os.path.join(self.dir, "noargs.lua"),
              'assert(arg[0] == "noargs.lua", tostring(arg[0]))\n'
              'assert(arg[1] == nil and select("#", ...) == 0)\nprint("none ok")\n')
        cp = run_smtpsh(["noargs.lua"], cwd=self.dir)
        self.assertOk(cp, "none ok")

    def test_absolute_path(self):
        path = write(os.path.join(self.dir, "abs.lua"), 'print("arg0=" .. arg[0])\n')
        cp = run_smtpsh([path, "z"])
        self.assertOk(cp, "arg0=" + path)

    def test_os_exit_status(self):
        write(os.path.join(self.dir, "exit3.lua"), "print('x')\nos.exit(3)\nprint('never')\n")
        cp = run_smtpsh(["exit3.lua"], cwd=self.dir)
        self.assertExit(cp, 3)
        self.assertEqual(cp.stdout, "x\n", describe(cp))

    def test_os_exit_true_false(self):
        write(os.path.join(self.dir, "exitf.lua"), "os.exit(false)\n")
        cp = run_smtpsh(["exitf.lua"], cwd=self.dir)
        self.assertExit(cp, 1)
        write(os.path.join(self.dir, "exitt.lua"), "os.exit(true)\n")
        cp = run_smtpsh(["exitt.lua"], cwd=self.dir)
        self.assertExit(cp, 0)

    def test_script_error(self):
        write(os.path.join(self.dir, "err.lua"), "local function f() error('script-broke') end\nf()\n")
        cp = run_smtpsh(["err.lua"], cwd=self.dir)
        self.assertExit(cp, 1)
        self.assertIn("script-broke", cp.stderr, describe(cp))
        self.assertIn("stack traceback", cp.stderr, describe(cp))

    def test_syntax_error(self):
        write(os.path.join(self.dir, "syntax.lua"), "print('fine')\nlocal = = 3\n")
        cp = run_smtpsh(["syntax.lua"], cwd=self.dir)
        self.assertExit(cp, 1)
        self.assertEqual(cp.stdout, "", f"nothing may run before a syntax error{describe(cp)}")
        self.assertIn("syntax.lua", cp.stderr, describe(cp))

    def test_missing_file(self):
        cp = run_smtpsh(["does-not-exist.lua"], cwd=self.dir)
        self.assertOneLineError(cp, 2, "smtpsh: cannot open")
        self.assertIn("does-not-exist.lua", cp.stderr, describe(cp))

    def test_unreadable_path_directory(self):
        os.makedirs(os.path.join(self.dir, "adir.lua"), exist_ok=True)
        cp = run_smtpsh(["adir.lua"], cwd=self.dir)
        self.assertOneLineError(cp, 2, "smtpsh: cannot ")


class TestSubcommands(SmtpshTestCase):
    def setUp(self):
        self.home = scratch_dir("smtpsh-home-")
        self.env = {"HOME": self.home}

    def user_dir(self, scripts=None, stdlib=None):
        d = scratch_dir("smtpsh-path-")
        for name, text in (scripts or {}).items():
            write(os.path.join(d, "scripts", name + ".lua"), text)
        for name, text in (stdlib or {}).items():
            write(os.path.join(d, "stdlib", name + ".lua"), text)
        return d

    def home_script(self, name, text):
        write(os.path.join(self.home, ".config", "smtpsh", "scripts", name + ".lua"), text)

    def test_banner(self):
        with peer("lines", "220 peer.test ESMTP ready") as port:
            cp = run_smtpsh(["banner", f"127.0.0.1:{port}"], env=self.env)
        self.assertExit(cp, 0)
        self.assertIn("220 peer.test ESMTP ready", cp.stdout.splitlines(), describe(cp))

    def test_banner_smtp_sink(self):
        with harness.smtp_sink() as port:
            cp = run_smtpsh(["banner", f"127.0.0.1:{port}"], env=self.env)
        self.assertExit(cp, 0)
        self.assertIn("220 smtp-sink ESMTP", cp.stdout, describe(cp))

    def test_banner_refused(self):
        port = harness.free_port()
        cp = run_smtpsh(["banner", f"127.0.0.1:{port}"], env=self.env)
        self.assertExit(cp, 1)
        self.assertEqual(len(cp.stderr.strip().splitlines()), 1,
                         f"one-line error expected{describe(cp)}")
        self.assertNotIn("stack traceback", cp.stderr, describe(cp))

    def test_unknown_command(self):
        cp = run_smtpsh(["nosuchcmd", "x"], env=self.env)
        self.assertOneLineError(cp, 2, "smtpsh: unknown command 'nosuchcmd'; available: ")
        self.assertIn("banner", cp.stderr.split("available:", 1)[1], describe(cp))

    def test_unknown_command_lists_user_commands(self):
        d = self.user_dir(scripts={"zz_user_cmd": "print('hi')\n"})
        cp = run_smtpsh(["nosuchcmd"], env={**self.env, "SMTPSH_PATH": d})
        self.assertOneLineError(cp, 2, "smtpsh: unknown command 'nosuchcmd'; available: ")
        listing = cp.stderr.split("available:", 1)[1]
        self.assertIn("banner", listing, describe(cp))
        self.assertIn("zz_user_cmd", listing, describe(cp))

    def test_smtpsh_path_overrides_embedded(self):
        d = self.user_dir(scripts={
            "banner": 'print("override-banner " .. table.concat({...}, "|"))\n'})
        cp = run_smtpsh(["banner", "h:1", "two"], env={**self.env, "SMTPSH_PATH": d})
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "override-banner h:1|two\n", describe(cp))

    def test_smtpsh_path_adds_command(self):
        d = self.user_dir(scripts={"hello": 'print("hello from user", ...)\n'})
        cp = run_smtpsh(["hello", "w"], env={**self.env, "SMTPSH_PATH": d})
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "hello from user\tw\n", describe(cp))

    def test_smtpsh_path_colon_separated_order(self):
        first = self.user_dir(scripts={"which": 'print("first")\n'})
        second = self.user_dir(scripts={"which": 'print("second")\n',
                                        "onlysecond": 'print("only-second")\n'})
        empty = scratch_dir("smtpsh-empty-")
        env = {**self.env, "SMTPSH_PATH": f"{empty}:{first}:{second}"}
        cp = run_smtpsh(["which"], env=env)
        self.assertOk(cp, "first")
        cp = run_smtpsh(["onlysecond"], env=env)
        self.assertOk(cp, "only-second")

    def test_home_config_overrides_embedded(self):
        self.home_script("banner", 'print("home-banner")\n')
        cp = run_smtpsh(["banner", "127.0.0.1:1"], env=self.env)
        self.assertOk(cp, "home-banner")

    def test_home_config_adds_command(self):
        self.home_script("homecmd", 'print("home-cmd", ...)\n')
        cp = run_smtpsh(["homecmd", "q"], env=self.env)
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "home-cmd\tq\n", describe(cp))

    def test_smtpsh_path_beats_home_config(self):
        self.home_script("clash", 'print("from-home")\n')
        d = self.user_dir(scripts={"clash": 'print("from-path")\n'})
        cp = run_smtpsh(["clash"], env={**self.env, "SMTPSH_PATH": d})
        self.assertOk(cp, "from-path")
        cp = run_smtpsh(["clash"], env=self.env)
        self.assertOk(cp, "from-home")

    def test_subcommand_error_exits_1(self):
        d = self.user_dir(scripts={"broken": 'error("subcommand-broke")\n'})
        cp = run_smtpsh(["broken"], env={**self.env, "SMTPSH_PATH": d})
        self.assertExit(cp, 1)
        self.assertIn("subcommand-broke", cp.stderr, describe(cp))

    def test_subcommand_os_exit(self):
        d = self.user_dir(scripts={"exits": 'os.exit(4)\n'})
        cp = run_smtpsh(["exits"], env={**self.env, "SMTPSH_PATH": d})
        self.assertExit(cp, 4)


class TestRequire(SmtpshTestCase):
    def setUp(self):
        self.home = scratch_dir("smtpsh-home-")
        self.env = {"HOME": self.home}

    def test_require_from_smtpsh_path(self):
        d = scratch_dir("smtpsh-path-")
        write(os.path.join(d, "stdlib", "mine.lua"),
              'return {answer = function() return 41 + 1 end}\n')
        cp = run_smtpsh(["-e", 'local m = require "smtpsh.mine"; print(m.answer())'],
                        env={**self.env, "SMTPSH_PATH": d})
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "42\n", describe(cp))

    def test_require_is_cached(self):
        d = scratch_dir("smtpsh-path-")
        write(os.path.join(d, "stdlib", "counted.lua"),
              'COUNT = (COUNT or 0) + 1\nreturn {}\n')
        cp = run_smtpsh(["-e", 'local a = require "smtpsh.counted"; local b = require "smtpsh.counted";'
                               ' print(COUNT, a == b)'],
                        env={**self.env, "SMTPSH_PATH": d})
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "1\ttrue\n", describe(cp))

    def test_require_from_home_config(self):
        write(os.path.join(self.home, ".config", "smtpsh", "stdlib", "homemod.lua"),
              'return "home-module"\n')
        cp = run_smtpsh(["-e", 'print((require "smtpsh.homemod"))'], env=self.env)
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "home-module\n", describe(cp))

    def test_require_smtpsh_path_beats_home(self):
        write(os.path.join(self.home, ".config", "smtpsh", "stdlib", "both.lua"), 'return "home"\n')
        d = scratch_dir("smtpsh-path-")
        write(os.path.join(d, "stdlib", "both.lua"), 'return "path"\n')
        cp = run_smtpsh(["-e", 'print((require "smtpsh.both"))'],
                        env={**self.env, "SMTPSH_PATH": d})
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "path\n", describe(cp))

    def test_require_missing_module(self):
        cp = run_smtpsh(["-e", 'require "smtpsh.no_such_module_xyz"'], env=self.env)
        self.assertExit(cp, 1)
        self.assertIn("no_such_module_xyz", cp.stderr, describe(cp))

    def test_require_from_script_file(self):
        d = scratch_dir("smtpsh-path-")
        write(os.path.join(d, "stdlib", "helper.lua"), 'return {twice = function(x) return 2 * x end}\n')
        script = write(os.path.join(d, "uses.lua"),
                       'local h = require "smtpsh.helper"\nprint(h.twice(tonumber(arg[1])))\n')
        cp = run_smtpsh([script, "21"], env={**self.env, "SMTPSH_PATH": d})
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "42\n", describe(cp))


if __name__ == "__main__":
    unittest.main()
