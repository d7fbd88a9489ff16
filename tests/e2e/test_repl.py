"""smtpsh's interactive REPL, driven in a pseudo-terminal.

Typed lines are echoed by the terminal, so every expected output is built so that it
cannot match the echo (e.g. `error("repl" .. "-oops")` is expected to print `repl-oops`).

    /usr/bin/python3 -m unittest -v tests/e2e/test_repl.py     (SMTPSH=/path/to/smtpsh)
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Repl, SmtpshTestCase, peer, scratch_dir  # noqa: E402


def line(text):
    """A regex for `text` as a whole output line."""
    return r"(?m)^" + re.escape(text) + r"\n"


class ReplTestCase(SmtpshTestCase):
    def setUp(self):
        self.home = scratch_dir("smtpsh-home-")
        self.state = os.path.join(self.home, "state")
        os.makedirs(self.state)
        self.env = {"HOME": self.home, "XDG_STATE_HOME": self.state}

    def repl(self, args=(), term="dumb"):
        r = Repl(args, env=self.env, term=term)
        self.addCleanup(r.close)
        return r


class TestRepl(ReplTestCase):
    def test_expression_prints_value(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send("1+1")
        r.expect(line("2"))
        r.expect_prompt()
        r.send("10 * 4 + 2")
        r.expect(line("42"))
        r.expect_prompt()

    def test_table_expression(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send("{a=1}")
        r.expect(line("{ a = 1 }"))
        r.expect_prompt()

    def test_print_statement(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send('print("x" .. "y", 3)')
        r.expect(line("xy\t3"))
        r.expect_prompt()

    def test_globals_persist_between_lines(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send("g = 20")
        r.expect_prompt()
        r.send("g + 1")
        r.expect(line("21"))
        r.expect_prompt()

    def test_continuation_prompt(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send("function f()")
        r.expect_continuation()
        r.send("return 7")
        r.expect_continuation()
        r.send("end")
        r.expect_prompt()
        r.send("f()")
        r.expect(line("7"))
        r.expect_prompt()

    def test_error_then_next_line_works(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send('error("repl" .. "-oops")')
        r.expect(r"repl-oops")
        r.expect(r"stack traceback")
        r.expect_prompt()
        r.send("1+2")
        r.expect(line("3"))
        r.expect_prompt()

    def test_syntax_error_then_next_line_works(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send("x = = 1")
        got = r.expect_prompt()
        self.assertNotIn(">> ", got, "a syntax error is not an incomplete chunk")
        r.send("2+2")
        r.expect(line("4"))

    def test_ctrl_d_exits_0(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

    def test_ctrl_c_interrupts_sleep(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send("task.sleep(30)")
        time.sleep(0.5)  # let the line start running (the terminal is back in cooked mode)
        t0 = time.monotonic()
        r.ctrl_c()
        r.expect(r"interrupted", timeout=2)
        r.expect_prompt(timeout=2)
        self.assertLess(time.monotonic() - t0, 2.0)
        r.send("5+5")
        r.expect(line("10"))
        r.expect_prompt()
        # and a second interrupt works as well as the first
        r.send("task.sleep(30)")
        time.sleep(0.5)
        r.ctrl_c()
        r.expect(r"interrupted", timeout=2)
        r.expect_prompt(timeout=2)
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

    def test_ctrl_c_interrupts_blocked_receive(self):
        # Beyond task.sleep: a receive waiting on a silent peer (default timeout 30 s) must
        # be interruptible too, and the connection object must not wedge the REPL.
        with peer("silent") as port:
            r = self.repl()
            r.expect_prompt(timeout=10)
            r.send(f'c = net.connect("127.0.0.1", {port})')
            r.expect_prompt()
            r.send('c:receive("l")')
            time.sleep(0.5)
            t0 = time.monotonic()
            r.ctrl_c()
            r.expect(r"interrupted", timeout=2)
            r.expect_prompt(timeout=2)
            self.assertLess(time.monotonic() - t0, 2.0)
            r.send("6+6")
            r.expect(line("12"))
            r.expect_prompt()

    def test_ctrl_c_stops_a_busy_lua_loop(self):
        # No I/O to cancel here: the count hook set from the signal handler stops it.
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send("while true do end")
        time.sleep(0.5)
        t0 = time.monotonic()
        r.ctrl_c()
        r.expect(r"interrupted", timeout=2)
        r.expect_prompt(timeout=2)
        self.assertLess(time.monotonic() - t0, 2.0)
        r.send("3+4")
        r.expect(line("7"))

    def test_ctrl_c_closes_what_an_interrupted_task_held(self):
        # Two tasks take turns: when Ctrl-C comes one is running (stopped by the hook) and the
        # other waits for its turn (failed without running). Both must close their <close>
        # variables (a connection, say).
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.send('for _, name in ipairs{"a", "b"} do task.spawn(function() local g <close> = '
               'setmetatable({}, {__close = function() print("guard-" .. name .. "-" .. "closed") end}) '
               'while true do coroutine.yield() end end) end')
        time.sleep(0.5)
        r.ctrl_c()
        got = r.expect(r"guard-(a|b)-closed[\s\S]*guard-(a|b)-closed", timeout=3)
        self.assertIn("guard-a-closed", got)
        self.assertIn("guard-b-closed", got)
        r.expect_prompt(timeout=3)
        r.send("1+2")
        r.expect(line("3"))

    def test_tab_completes_fields_and_methods(self):
        r = self.repl()
        r.expect_prompt(timeout=10)
        r.wait_raw()
        r.write("net.con\t")
        r.expect(r"net\.connect", timeout=3)
        r.write("\x15")  # Ctrl-U: clear the line
        r.send('s = "x"')
        r.expect_prompt()
        r.wait_raw()
        r.write("s:upp\t")
        r.expect(r"s:upper", timeout=3)
        r.write("()\n")
        r.expect(line('"X"'))

    def test_history_saved_and_recalled(self):
        typed = "print(4200+42)"  # no blanks: survives any history file encoding
        r = self.repl(term="xterm")
        r.expect_prompt(timeout=10)
        r.send(typed)
        r.expect(line("4242"))
        r.expect_prompt()
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

        hist = os.path.join(self.state, "smtpsh", "history")
        self.assertTrue(os.path.isfile(hist), f"no history file at {hist}")
        with open(hist, "rb") as f:
            content = f.read().decode("utf-8", "replace")
        self.assertIn(typed, content)

        r2 = self.repl(term="xterm")
        r2.expect_prompt(timeout=10)
        r2.wait_raw()
        r2.write(b"\x1b[A")
        time.sleep(0.3)
        r2.write(b"\r")
        r2.expect(line("4242"))
        r2.expect_prompt()


class TestReplModes(ReplTestCase):
    def test_i_runs_file_then_repl(self):
        path = os.path.join(self.home, "init.lua")
        with open(path, "w") as f:
            f.write('from_file = 4242\nfunction twice(x) return 2 * x end\nprint("file" .. "-ran")\n')
        r = self.repl(["-i", path])
        r.expect(line("file-ran"), timeout=10)
        r.expect_prompt()
        r.send("from_file + 1")
        r.expect(line("4243"))
        r.expect_prompt()
        r.send("twice(21)")
        r.expect(line("42"))
        r.expect_prompt()
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

    def test_demo(self):
        r = self.repl(["--demo"])
        greeting = r.expect_prompt(timeout=10)
        r.send('print("PORT=" .. demo.port .. " HOST=" .. demo.host)')
        got = r.expect(r"(?m)^PORT=(\d+) HOST=(\S+)\n")
        m = re.search(r"PORT=(\d+) HOST=(\S+)", got.splitlines()[-1])
        port, host = m.group(1), m.group(2)
        self.assertIn(port, greeting, "the greeting should mention the demo port")
        self.assertIn(host, greeting, "the greeting should mention the demo host")
        r.expect_prompt()
        r.send("c = net.connect(demo.host, demo.port)")
        r.expect_prompt(timeout=5)
        r.send('c:receive("l")')
        # the value printer may quote strings (stdlib/pretty.lua does): "220 ..." is a 220 line
        r.expect(r'(?m)^"?220[ -]', timeout=5)
        r.expect_prompt()
        r.send("c:close()")
        r.expect_prompt()
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

    def test_ctrl_c_spares_the_demo_server(self):
        # The demo server runs a Lua state of its own on another thread. Ctrl-C is the REPL's:
        # it stops the REPL's tasks while both states are busy (the server answering them), and
        # the server's tasks go on (an interrupt shared by every state would stop them too).
        r = self.repl(["--demo"])
        r.expect_prompt(timeout=10)
        for attempt in range(3):
            r.send("s = smtp.connect(demo.target)")
            r.expect_prompt(timeout=5)
            r.send("task.spawn(function() while true do assert(s:noop()) end end) "
                   "while true do coroutine.yield() end")
            time.sleep(0.5)
            r.ctrl_c()
            r.expect(r"interrupted", timeout=2)
            r.expect_prompt(timeout=2)
            r.send(f'print(assert(smtp.connect(demo.target, {{timeout = 2}})):quit().code .. "-{attempt}")')
            r.expect(line(f"221-{attempt}"), timeout=5)
            r.expect_prompt()
        r.ctrl_d()
        self.assertEqual(r.wait_exit(timeout=5), 0, f"output: {r.text()!r}")

if __name__ == "__main__":
    unittest.main()
