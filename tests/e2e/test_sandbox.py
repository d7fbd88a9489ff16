"""Hostile end-to-end tests of ``smtpsh --sandbox FILE.lua ARGS...`` (``smtpsh sandbox``).

The recipes here are an attacker's: each one tries a forbidden thing (a file, a process, the
environment, bytecode, package/debug, smtp.record, dns.servers), an escape (metatables, the
real module tables behind the read-only proxies, coroutines, tasks, error handlers, ``__gc``,
``__close``, ``_ENV``, the session object), a way past a limit (memory, instructions, CPU,
wall-clock time, tasks, connections) or past the destination rule (addresses, ports, DNS).
Where the attempt could do harm, it tries to create ``SCRATCH/pwned`` (or remove/rename a
file, or print a secret) and the test asserts that nothing happened. The expected outcome of
a stop is exit status 3 and exactly one line on stderr,
``smtpsh: the sandbox stopped the recipe: it ...`` naming what it tried and which rule or limit
stopped it, within a bounded wall time; a plain Lua error is exit 1 with one line.

Tests marked ``# FOUND:`` are escapes hostile testing found in the first build of the sandbox,
fixed since; their docstrings say how they were reproduced. The last three gaps (CPU spent
inside one pattern match, memory held in C++, a module's class metatable reachable and
writable) were closed after they had been kept here as expected failures.

Every process is bounded in time and killed (its whole process group) by the test that started
it; every peer (scenario servers, a silent TCP listener, a UDP socket, a fake DNS responder,
a TLS client, NSD for tests/peers/zones) listens on loopback only and is stopped by its test
or class. Limits are small (--max-cpu 1, --max-time 1 or 2) to keep the file short.

    cd /work/main && SMTPSH=/work/main/build/smtpsh /usr/bin/python3 -m unittest -v tests/e2e/test_sandbox.py
"""

import contextlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NsdTestCase, SMTPSH, SmtpshTestCase, TIME_SCALE, describe, merge_env, scenario,
                     scratch_dir, test_certs)  # noqa: E402

STOP_PREFIX = "smtpsh: the sandbox stopped the recipe: it "
# How long a run that should stop at a 1-2 s limit may take before the test kills it.
HANG_TIMEOUT = 3.5


def lua_string(text):
    """`text` as a Lua string literal (every byte escaped as needed)."""
    data = text.encode() if isinstance(text, str) else text
    out = []
    for b in data:
        c = chr(b)
        if c in "\\\"":
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_bounded(argv, timeout, cwd=None, keep_stdin_open=False):
    """Runs argv (smtpsh) in its own process group, killed (the group) after `timeout` s (times
    TIME_SCALE). Returns a CompletedProcess with .elapsed, .timed_out and .maxrss_kib (the
    peak RSS of the process, from wait4). With keep_stdin_open, stdin is a pipe nobody writes
    to and that stays open for the whole run; otherwise /dev/null."""
    timeout = timeout * TIME_SCALE
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if keep_stdin_open else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=merge_env(None),
                            cwd=cwd, start_new_session=True)
    chunks = {"out": [], "err": []}

    def drain(stream, key):
        for block in iter(lambda: stream.read(65536), b""):
            chunks[key].append(block)

    readers = [threading.Thread(target=drain, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, "err"), daemon=True)]
    for r in readers:
        r.start()
    timed_out = reaped = False
    status, usage = 0, None
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = True
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                break
            time.sleep(0.01)
    finally:
        if not reaped:  # timed out (or the test was interrupted): kill the run's group, reap it
            _kill_group(proc.pid)
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - t0
        for r in readers:
            r.join(5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()
    cp = subprocess.CompletedProcess(argv, proc.returncode,
                                     b"".join(chunks["out"]).decode("utf-8", "replace"),
                                     b"".join(chunks["err"]).decode("utf-8", "replace"))
    cp.elapsed, cp.timed_out = elapsed, timed_out
    cp.maxrss_kib = usage.ru_maxrss if usage else 0
    return cp


def show(cp):
    extra = f"\n--- wall time: {getattr(cp, 'elapsed', 0):.2f} s"
    if getattr(cp, "timed_out", False):
        extra += " (still running: killed by the test)"
    return describe(cp) + extra


@contextlib.contextmanager
def silent_listener():
    """A TCP listener on 127.0.0.1 that completes handshakes (backlog) but never answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]
    finally:
        s.close()


@contextlib.contextmanager
def udp_socket():
    """A UDP socket on 127.0.0.1 that only records what arrives (never answers)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        yield s
    finally:
        s.close()


@contextlib.contextmanager
def fake_dns(address):
    """A UDP DNS responder on 127.0.0.1 answering every question with one A record `address`
    (an attacker's name server). Yields its port; stopped on exit."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, peer = s.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            if len(data) < 12:
                continue
            i = 12
            while i < len(data) and data[i]:
                i += 1 + data[i]
            question = data[12:i + 5]
            answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
            s.sendto(data[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + answer, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield s.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        s.close()


class SandboxCase(SmtpshTestCase):
    """Writes recipes into a scratch directory and runs them sandboxed."""

    def setUp(self):
        super().setUp()
        self.dir = scratch_dir("smtpsh-sandbox-")
        self.canary = os.path.join(self.dir, "pwned")
        self.count = 0

    def recipe(self, code, name=None):
        self.count += 1
        path = os.path.join(self.dir, name or f"recipe{self.count}.lua")
        code = textwrap.dedent(code).replace("CANARY", lua_string(self.canary))
        with open(path, "w") as f:
            f.write(code)
        return path

    def sandbox(self, code, *args, limits=(), timeout=10, keep_stdin_open=False, form="flag"):
        """Runs `code` as `smtpsh --sandbox LIMITS FILE ARGS` (form "flag") or
        `smtpsh sandbox LIMITS -- FILE ARGS` (form "command")."""
        path = self.recipe(code)
        if form == "flag":
            argv = [SMTPSH, "--sandbox", *limits, path, *map(str, args)]
        else:
            argv = [SMTPSH, "sandbox", *limits, "--", path, *map(str, args)]
        return run_bounded(argv, timeout, cwd=self.dir, keep_stdin_open=keep_stdin_open)

    def assertFinished(self, cp):
        self.assertFalse(cp.timed_out, f"the run did not end: the test killed it{show(cp)}")

    def assertStopped(self, cp, *needles, within=None):
        """Exit 3, exactly one stderr line starting with the stop's words and holding every
        needle; with `within`, in at most that many seconds."""
        self.assertFinished(cp)
        self.assertEqual(cp.returncode, 3, f"expected the sandbox to stop it (exit 3){show(cp)}")
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"stderr should be exactly one line{show(cp)}")
        self.assertTrue(lines[0].startswith(STOP_PREFIX), f"stderr should start {STOP_PREFIX!r}{show(cp)}")
        for needle in needles:
            self.assertIn(needle, lines[0], f"the stop should name {needle!r}{show(cp)}")
        if within is not None:
            self.assertLessEqual(cp.elapsed, within * TIME_SCALE, f"stopped too late{show(cp)}")

    def assertFailed(self, cp, *needles):
        """Exit 1 with exactly one stderr line "smtpsh: ..." holding every needle."""
        self.assertFinished(cp)
        self.assertEqual(cp.returncode, 1, f"expected a plain failure (exit 1){show(cp)}")
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"stderr should be exactly one line{show(cp)}")
        self.assertTrue(lines[0].startswith("smtpsh: "), show(cp))
        for needle in needles:
            self.assertIn(needle, lines[0], show(cp))

    def assertRan(self, cp):
        self.assertFinished(cp)
        self.assertEqual(cp.returncode, 0, f"expected the recipe to run (exit 0){show(cp)}")
        self.assertEqual(cp.stderr, "", show(cp))

    def assertNoCanary(self, cp=None):
        self.assertFalse(os.path.exists(self.canary),
                         f"{self.canary} exists: the recipe did what it must not{show(cp) if cp else ''}")


# --------------------------------------------------------------------------------------------
# 1. Forbidden things, one recipe each


# name -> (recipe, words the stop names)
FORBIDDEN = {
    "os_execute": ('os.execute("touch " .. CANARY)', "os.execute"),
    "io_popen": ('io.popen("touch " .. CANARY)', "io.popen"),
    "io_open_write": ('local f = io.open(CANARY, "w") f:write("x") f:close()', "io.open"),
    "io_output": ('io.output(CANARY) io.write("x")', "io.output"),
    "io_tmpfile": ('local f = io.tmpfile() print(f)', "io.tmpfile"),
    "os_exit": ('os.exit(0)', "os.exit"),
    "os_tmpname": ('print(os.tmpname())', "os.tmpname"),
    "os_setlocale": ('print(os.setlocale("C"))', "os.setlocale"),
    "package": ('print(package.path)', "package"),
    "package_loadlib": ('local f = package.loadlib("/lib/x86_64-linux-gnu/libc.so.6", "system") f("touch " .. CANARY)',
                        "package"),
    "require_os": ('local os = require "os" os.execute("touch " .. CANARY)', 'require "os"'),
    "require_io": ('require("io").open(CANARY, "w")', 'require "io"'),
    "require_debug": ('require "debug"', 'require "debug"'),
    "require_cli": ('require("smtpsh.cli").fail("x", "y")', 'require "smtpsh.cli"'),
    "require_sandboxcore": ('require("smtpsh.sandboxcore").start{}', 'require "smtpsh.sandboxcore"'),
    "require_recordcore": ('require("smtpsh.recordcore").start(CANARY, {"x"})', 'require "smtpsh.recordcore"'),
    "require_server": ('require "smtpsh.server"', 'require "smtpsh.server"'),
    "require_sandbox": ('require "smtpsh.sandbox"', 'require "smtpsh.sandbox"'),
    "require_sys": ('require "smtpsh.sys"', 'require "smtpsh.sys"'),
    "require_trace": ('require "smtpsh.trace"', 'require "smtpsh.trace"'),
    "require_file": ('require "../../../tmp/x"', "require"),
    "debug": ('debug.sethook()', "debug"),
    "collectgarbage": ('collectgarbage("stop")', "collectgarbage"),
    "dofile": ('dofile(CANARY)', "dofile"),
    "loadfile": ('loadfile("/etc/passwd")', "loadfile"),
    "smtp_record": ('smtp.record(CANARY)', "smtp.record", "writes a file"),
    "smtp_record_required": ('require("smtpsh.smtp").record(CANARY)', "smtp.record"),
    "dns_servers": ('dns.servers{"127.0.0.1:53"}', "dns.servers"),
    "dns_trace": ('dns.trace(true)', "dns.trace"),
    "index_chain_to_proxy": ('local t = setmetatable({}, {__index = smtp}) t.record(CANARY)', "smtp.record"),
    "env_os": ('_ENV.os.execute("touch " .. CANARY)', "os.execute"),
    "g_rawget_os": ('rawget(_G, "os").execute("touch " .. CANARY)', "os.execute"),
    "modify_module": ('smtp.connect = function() end', "smtp.connect", "read-only"),
    "setmetatable_proxy": ('setmetatable(smtp, nil)', "replace a metatable"),
    "setmetatable_dns_proxy": ('setmetatable(dns, {__index = function() end})', "replace a metatable"),
    "setmetatable_json_null": ('setmetatable(require("json").null, {})', "replace a metatable"),
    "setmetatable_dns_error": ('setmetatable(dns.error("SERVFAIL", "x"), {})', "replace a metatable"),
    "gc_direct": ('setmetatable({}, {__gc = function() os.execute("touch " .. CANARY) end})', "__gc"),
    "gc_false": ('setmetatable({}, {__gc = false})', "__gc"),
    "load_mode_b": ('load("return 1", "x", "b")', "bytecode", "mode b"),
    "load_mode_bt": ('load("return 1", "x", "bt")', "bytecode", "mode bt"),
    "load_header": ('load("\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10")', "bytecode"),
    "load_header_with_env": ('load("\\27Lua", "x", "t", _G)', "bytecode"),
}


class ForbiddenTest(SandboxCase):
    """Every forbidden thing stops the run with exit 3 and its name, and does nothing."""

    def check_forbidden(self, code, *needles):
        cp = self.sandbox(code + '\nprint("WENT ON")\n')
        self.assertStopped(cp, *needles, within=5)
        self.assertNotIn("WENT ON", cp.stdout, show(cp))
        self.assertNoCanary(cp)

    def test_io_open_read_is_forbidden(self):
        """Reading is forbidden too (a documented choice: a recipe that read ~/.ssh could mail it)."""
        secret = os.path.join(self.dir, "secret.txt")
        with open(secret, "w") as f:
            f.write("TOP-SECRET-42\n")
        cp = self.sandbox(f'local f = io.open({lua_string(secret)}) print(f:read("a"))')
        self.assertStopped(cp, "io.open", within=5)
        self.assertNotIn("TOP-SECRET-42", cp.stdout, show(cp))

    def test_io_lines_is_forbidden(self):
        secret = os.path.join(self.dir, "secret.txt")
        with open(secret, "w") as f:
            f.write("TOP-SECRET-42\n")
        cp = self.sandbox(f'for line in io.lines({lua_string(secret)}) do print(line) end')
        self.assertStopped(cp, "io.lines", within=5)
        self.assertNotIn("TOP-SECRET-42", cp.stdout, show(cp))

    def test_os_remove_and_rename_leave_the_file(self):
        victim = os.path.join(self.dir, "victim")
        for verb, code in (("os.remove", f"os.remove({lua_string(victim)})"),
                           ("os.rename", f"os.rename({lua_string(victim)}, CANARY)")):
            with self.subTest(verb):
                with open(victim, "w") as f:
                    f.write("keep me")
                cp = self.sandbox(code)
                self.assertStopped(cp, verb, within=5)
                self.assertTrue(os.path.exists(victim), f"{verb} removed the file{show(cp)}")
                self.assertNoCanary(cp)

    def test_os_getenv_is_forbidden(self):
        cp = self.sandbox('print("HOME=" .. tostring(os.getenv("HOME")))')
        self.assertStopped(cp, "os.getenv", within=5)
        self.assertNotIn("HOME=", cp.stdout, show(cp))

    def test_string_dump_is_gone(self):
        """string.dump is not in the sandbox, nor reachable through a string's methods: calling
        it is a plain error, and no bytecode comes out."""
        for code in ('print(string.dump(print))',
                     'local d = ("").dump print(d(function() os.execute("touch " .. CANARY) end))',
                     'local s = "x" print(s.dump(function() end))'):
            with self.subTest(code):
                cp = self.sandbox(code)
                self.assertFailed(cp, "nil value")
                self.assertNoCanary(cp)

    def test_load_with_a_reader_of_bytecode_pieces(self):
        """A reader function handing out a real compiled chunk piece by piece: loaded as text
        only, so it is refused (exit 1: "attempt to load a binary chunk"), never run."""
        luac = shutil.which("luac5.4") or shutil.which("luac")
        if luac:
            src = os.path.join(self.dir, "evil_src.lua")
            out = os.path.join(self.dir, "evil.luac")
            with open(src, "w") as f:
                f.write(f'os.execute("touch " .. {lua_string(self.canary)})\n')
            subprocess.run([luac, "-o", out, src], check=True, timeout=10)
            with open(out, "rb") as f:
                chunk = f.read()
        else:
            chunk = b"\x1bLua\x54\x00\x19\x93\r\n\x1a\n"
        pieces = ", ".join(lua_string(chunk[i:i + 7]) for i in range(0, len(chunk), 7))
        cp = self.sandbox(f"""
            local pieces, i = {{ {pieces} }}, 0
            local f, err = load(function() i = i + 1 return pieces[i] end)
            assert(f, err)
            f()
            print("RAN BYTECODE")
        """)
        self.assertIn(cp.returncode, (1, 3), show(cp))
        self.assertIn("binary chunk" if cp.returncode == 1 else "bytecode", cp.stderr, show(cp))
        self.assertEqual(len(cp.stderr.splitlines()), 1, show(cp))
        self.assertNotIn("RAN BYTECODE", cp.stdout, show(cp))
        self.assertNoCanary(cp)

    def test_a_bytecode_file_is_refused(self):
        """FILE.lua itself compiled by luac: refused before it runs (exit 1, one line)."""
        luac = shutil.which("luac5.4") or shutil.which("luac")
        if not luac:
            self.skipTest("no luac")
        src = self.recipe('os.execute("touch " .. CANARY)\n', name="evil_src.lua")
        out = os.path.join(self.dir, "evil.lua")
        subprocess.run([luac, "-o", out, src], check=True, timeout=10)
        cp = run_bounded([SMTPSH, "--sandbox", out], 10, cwd=self.dir)
        self.assertFailed(cp, "bytecode")
        self.assertNoCanary(cp)

    def test_catching_a_stop_does_not_go_on(self):
        """pcall, xpcall (whose handler never sees the stop) and coroutine.resume around a
        forbidden call: the run still stops, and nothing after it runs."""
        for code in ('print(pcall(os.execute, "touch " .. CANARY))',
                     'print(xpcall(function() os.execute("touch " .. CANARY) end,'
                     ' function(e) print("HANDLER RAN") return e end))',
                     'print(coroutine.resume(coroutine.create(function() io.open(CANARY, "w") end)))',
                     'print(pcall(coroutine.wrap(function() io.open(CANARY, "w") end)))',
                     'local co = coroutine.create(function() local x <close> = setmetatable({},'
                     ' {__close = function() io.open(CANARY, "w") end}) coroutine.yield() end)'
                     ' coroutine.resume(co) print(coroutine.close(co))',
                     'print(select(2, load(function() io.open(CANARY, "w") end)))'):
            with self.subTest(code):
                cp = self.sandbox(code + '\nprint("WENT ON")\n')
                self.assertStopped(cp, within=5)
                self.assertNotIn("WENT ON", cp.stdout, show(cp))
                self.assertNotIn("HANDLER RAN", cp.stdout, show(cp))
                self.assertNoCanary(cp)


def _add_forbidden(name, code, needles):
    def test(self):
        self.check_forbidden(code, *needles)
    test.__doc__ = f"{code}  ->  exit 3 naming {', '.join(needles)}"
    setattr(ForbiddenTest, f"test_forbidden_{name}", test)


for _name, (_code, *_needles) in FORBIDDEN.items():
    _add_forbidden(_name, _code, _needles)


# --------------------------------------------------------------------------------------------
# 2. Escapes through the language: metatables, _ENV, coroutines, tasks, error handlers,
#    __gc and __close


class LanguageEscapeTest(SandboxCase):

    def test_metatables_of_smtpsh_values_are_hidden(self):
        """getmetatable never hands out smtpsh's metatables: strings (the real string table),
        module proxies, task handles, dns errors, json.null."""
        cp = self.sandbox("""
            local t = task.spawn(function() end)
            print(getmetatable(""), getmetatable(smtp), getmetatable(dns), getmetatable(net),
                  getmetatable(task), getmetatable(t), getmetatable(dns.error("SERVFAIL", "x")),
                  getmetatable(require("json").null), getmetatable(require("smtpsh.json")))
            print(rawget(smtp, "connect"), next(smtp), rawlen(smtp), rawget(dns, "servers"))
            print(("").dump, ("").evil, getfenv, setfenv, rawget(_G, "debug"), rawget(_G, "package"))
            local ok, err = pcall(function() getmetatable("").__index.evil = os.execute end)
            print(ok)
        """)
        self.assertRan(cp)
        self.assertEqual(cp.stdout.splitlines(),
                         ["nil\tnil\tnil\tnil\tnil\tnil\tnil\tnil\tnil", "nil\tnil\t0\tnil",
                          "nil\tnil\tnil\tnil\tnil\tnil", "false"], show(cp))

    def test_rawset_on_a_proxy_does_not_reach_the_module(self):
        """rawset writes into the proxy only: the forbidden function stays forbidden through
        another path (require gives the module anew), and the real module is unchanged."""
        cp = self.sandbox("""
            rawset(smtp, "describe", function() return "MINE" end)
            rawset(dns, "servers", nil)
            print(require("smtpsh.dns").servers)
        """)
        self.assertStopped(cp, "dns.servers", within=5)

    def test_load_cannot_reach_the_real_environment(self):
        """load's env argument: nil gives no globals at all, _G is the sandbox's own (its os is
        the guarded one); the chunk never sees the real os."""
        cp = self.sandbox("""
            print(pcall(load("return os", "x", "t", nil)))
            print(load("return rawget(_G, 'debug'), rawequal(_G, _ENV)", "x", "t", _G)())
            local f = load("return os.execute", "x", "t", _G)
            f()
        """)
        self.assertStopped(cp, "os.execute", within=5)
        self.assertIn("attempt to index a nil value", cp.stdout, show(cp))
        self.assertIn("nil\ttrue", cp.stdout, show(cp))

    def test_load_without_env_runs_in_the_sandbox_environment(self):
        # FOUND: load(text) without an env argument gets no environment at all
        """Found: the sandbox's load is meant to load text "into the sandbox" when no env is given,
        but it tests `select("#", chunk, name, mode, chunk_env) < 4`, which is never true (four
        named parameters are always four values), so chunk_env stays nil and the loaded chunk
        has _ENV = nil: no globals at all (safe, but every ordinary load breaks).

        Reproduce:  echo 'load("print(1)")()' > r.lua; smtpsh --sandbox r.lua
        Expected: prints 1, exit 0. Got: exit 1, "[string "print(1)"]:1: attempt to index a nil
        value (upvalue '_ENV')"."""
        cp = self.sandbox("""
            print(load("return 1 + 1")())
            load("print('from load', type(string), type(smtp))")()
            local f = load("os.execute(...)")
            print(pcall(f, "touch " .. CANARY))
        """)
        self.assertNoCanary(cp)
        self.assertIn("from load\ttable\ttable", cp.stdout, show(cp))
        self.assertStopped(cp, "os.execute")

    def test_arg_and_varargs_are_plain_strings(self):
        cp = self.sandbox("""
            local a, b = ...
            print(type(a), a, b, arg[1], arg[2], arg.n)
            arg[1] = "changed"
            for k, v in pairs(arg) do assert(type(v) ~= "table" and type(v) ~= "function") end
        """, "one", "two")
        self.assertRan(cp)
        self.assertEqual(cp.stdout, "string\tone\ttwo\tone\ttwo\t2\n", show(cp))

    def test_gc_added_after_setmetatable_never_runs(self):
        """A metatable that gets __gc after setmetatable (directly, or through __index): Lua
        does not mark the object, and no finalizer runs, during the run or at exit."""
        cp = self.sandbox("""
            local mt = {}
            local keep = {}
            for i = 1, 100 do keep[i] = setmetatable({}, mt) end
            mt.__gc = function() print("FINALIZER RAN") end
            local mt2 = {__index = {__gc = function() print("FINALIZER RAN") end}}
            for i = 1, 100 do setmetatable({}, mt2) end
            keep = nil
            for i = 1, 300000 do local _ = {i} end
            print("done")
        """)
        self.assertRan(cp)
        self.assertNotIn("FINALIZER RAN", cp.stdout, show(cp))

    def test_gc_through_a_module_class_metatable(self):
        # FOUND, FIXED: a real module metatable was reachable as obj.__index; __gc set on it
        # ran. The modules' objects now have metatables of their own ({__index = Class}).
        """Found: prometheus.registry() (also ratelimit.new{...}, report.checklist()) returns a
        table whose metatable is the module's class table with `Registry.__index = Registry`,
        so `prometheus.registry().__index` IS the real, writable metatable. Setting
        `R.__gc = f` there makes every registry the module creates afterwards carry the
        recipe's finalizer: __gc, which the sandbox forbids ("it would run after the limits
        are gone"), runs; finalizers run with hooks off, so `R.__gc = function() while true
        do end end` runs forever past --max-cpu and --max-time.

        Reproduce:  printf '%s\\n' 'local R = require("prometheus").registry().__index'
          'R.__gc = function() print("FINALIZER RAN") end'
          'for i = 1, 10 do require("prometheus").registry() end' > r.lua
          smtpsh --sandbox r.lua
        Expected: exit 3 (the sandbox refuses to change a module table / set __gc), no
        finalizer. Got: exit 0 and "FINALIZER RAN" ten times."""
        cp = self.sandbox("""
            local prometheus = require "prometheus"
            local R = prometheus.registry().__index
            R.__gc = function() print("FINALIZER RAN") end
            for i = 1, 10 do prometheus.registry() end
            for i = 1, 300000 do local _ = {i} end
        """, limits=("--max-cpu", "1", "--max-time", "2"), timeout=HANG_TIMEOUT)
        self.assertNotIn("FINALIZER RAN", cp.stdout, show(cp))
        self.assertFinished(cp)
        self.assertEqual(cp.returncode, 1, show(cp))  # R is nil: the recipe fails, no more
        self.assertIn("attempt to index a nil value (local 'R')", cp.stderr, show(cp))

    def test_no_module_object_hands_out_its_class(self):
        cp = self.sandbox("""
            local objects = {
              registry = require("prometheus").registry(),
              limiter = require("ratelimit").new{rate = 1},
              checklist = require("report").checklist(),
            }
            objects.family = objects.registry:counter("x_total", "x")
            for _, name in ipairs{"checklist", "family", "limiter", "registry"} do
              print(name, objects[name].__index, getmetatable(objects[name]))
            end
        """)
        self.assertRan(cp)
        self.assertEqual(cp.stdout.splitlines(), [f"{name}\tnil\tnil" for name in
                                                  ("checklist", "family", "limiter", "registry")], show(cp))

    def test_coroutine_infinite_loop_stops_at_the_cpu_limit(self):
        cp = self.sandbox("""
            local co = coroutine.create(function() local n = 0 while true do n = n + 1 end end)
            print(coroutine.resume(co))
            print("WENT ON")
        """, limits=("--max-cpu", "1"))
        self.assertStopped(cp, "1 s of CPU time", "--max-cpu", within=3)
        self.assertNotIn("WENT ON", cp.stdout, show(cp))

    def test_coroutine_that_catches_the_stop_goes_no_further(self):
        """A loop resuming fresh busy coroutines (and coroutine.wrap under pcall) after each
        stop: the resume re-raises the stop."""
        for code in ("""
                while true do
                  local co = coroutine.create(function() while true do end end)
                  print(coroutine.resume(co))
                end""", """
                while true do
                  print(pcall(coroutine.wrap(function() while true do end end)))
                end"""):
            with self.subTest(code):
                cp = self.sandbox(code, limits=("--max-cpu", "1"))
                self.assertStopped(cp, "--max-cpu", within=3)
                self.assertNotIn("false", cp.stdout, show(cp))

    def test_pcall_and_xpcall_in_a_loop_still_stop(self):
        """pcall in a tight loop around an infinite loop, xpcall with a handler that swallows
        and loops, load with a reader that loops: all stop at the CPU limit."""
        for code in ("while true do pcall(function() while true do end end) end",
                     "while true do xpcall(function() while true do end end,"
                     " function(e) while true do end end) end",
                     "while true do load(function() while true do end end) end",
                     "while true do pcall(error, setmetatable({},"
                     " {__tostring = function() while true do end end})) end"):
            with self.subTest(code):
                cp = self.sandbox(code, limits=("--max-cpu", "1"))
                self.assertStopped(cp, "1 s of CPU time", "--max-cpu", within=3)

    def test_close_variable_in_the_main_chunk_is_bounded(self):
        """A <close> variable whose __close loops, on the main chunk's error: the CPU limit
        still stops it."""
        cp = self.sandbox("""
            local x <close> = setmetatable({}, {__close = function() while true do end end})
            error("boom")
        """, limits=("--max-cpu", "1", "--max-time", "2"), timeout=HANG_TIMEOUT)
        self.assertStopped(cp, "--max-cpu", within=3)

    def test_spawned_task_that_loops_or_catches_stops(self):
        for code in ("local t = task.spawn(function() while true do end end) print(task.wait(t))",
                     "local t = task.spawn(function() while true do pcall(function() while true do end end) end end)"
                     " print(task.wait(t))",
                     "task.spawn(function() while true do end end) task.sleep(30)"):
            with self.subTest(code):
                cp = self.sandbox(code, limits=("--max-cpu", "1", "--max-time", "3"))
                self.assertStopped(cp, "--max-cpu", within=3)

    def test_spawned_task_forbidden_call_stops_the_run(self):
        cp = self.sandbox("""
            local t = task.spawn(function() os.execute("touch " .. CANARY) end)
            print(task.wait(t))
            print("WENT ON")
        """)
        self.assertStopped(cp, "os.execute", within=5)
        self.assertNotIn("WENT ON", cp.stdout, show(cp))
        self.assertNoCanary(cp)

    def test_task_forbidden_call_after_the_main_chunk_returned(self):
        # FOUND: a stop in a task that outlives the chunk is exit 1 with a traceback
        """Found: a task still running after the main chunk returned is stopped (good: no canary),
        but the stop is reported as "error in a task nobody waited for: ..." plus a stack
        traceback, exit 1, instead of the one line and exit 3.

        Reproduce:  printf '%s\\n' 'task.spawn(function() task.sleep(0.2) os.execute("id") end)'
          'return "main done"' > r.lua; smtpsh --sandbox r.lua; echo $?
        Expected: exit 3, one line "smtpsh: the sandbox stopped the recipe: it used os.execute ...".
        Got: exit 1, "smtpsh: error in a task nobody waited for: the sandbox stopped ..." and a
        3-line traceback."""
        cp = self.sandbox("""
            task.spawn(function() task.sleep(0.2) os.execute("touch " .. CANARY) end)
            return "main done"
        """)
        self.assertNoCanary(cp)
        self.assertStopped(cp, "os.execute", within=5)

    def test_task_that_loops_after_the_main_chunk_returned(self):
        # FOUND: same as above for the CPU limit
        """Found: `task.spawn(function() while true do end end) return 1` with --max-cpu 1: the
        task is stopped after 1 s, but reported as exit 1 with "error in a task nobody waited
        for" and a traceback. Expected: exit 3, one line naming --max-cpu."""
        cp = self.sandbox("task.spawn(function() while true do end end) return 'main done'",
                          limits=("--max-cpu", "1", "--max-time", "3"))
        self.assertStopped(cp, "--max-cpu", within=3)

    def test_close_in_a_failed_task_runs_unbounded_after_the_stop(self):
        # FOUND: the scheduler closes a failed task's <close> variables with the hook removed
        """Found: Scheduler::finish (bindings/scheduler.cpp) clears the failed task's hook
        (lua_sethook(co, nullptr, 0, 0)) before lua_resetthread closes its pending <close>
        variables. A task that holds a <close> value and then does something forbidden gets
        its __close run after the stop, without any hook: the recipe's code keeps running
        after the sandbox stopped it, forever, past --max-cpu and --max-time.

        Reproduce:  cat > r.lua <<'EOF'
          local t = task.spawn(function()
            local x <close> = setmetatable({}, {__close = function()
              for i = 1, 500 do print("CLOSE RAN AFTER THE STOP") end while true do end end})
            os.execute("id")
          end)
          task.wait(t)
          EOF
          timeout 10 smtpsh --sandbox --max-cpu 1 --max-time 2 r.lua
        Expected: exit 3 within ~2 s, nothing printed. Got: the marker lines, then it spins
        until killed."""
        cp = self.sandbox("""
            local t = task.spawn(function()
              local x <close> = setmetatable({}, {__close = function()
                for i = 1, 500 do print("CLOSE RAN AFTER THE STOP") end
                local n = 0 while true do n = n + 1 end
              end})
              os.execute("touch " .. CANARY)
            end)
            task.wait(t)
        """, limits=("--max-cpu", "1", "--max-time", "2"), timeout=HANG_TIMEOUT)
        self.assertNoCanary(cp)
        self.assertNotIn("CLOSE RAN AFTER THE STOP", cp.stdout, show(cp))
        self.assertStopped(cp, "os.execute", within=3)

    def test_tostring_of_a_failed_tasks_error_is_unbounded(self):
        # FOUND: a failed task's error object is turned to text on an unhooked thread
        """Found: when a task fails, Scheduler::finish calls the error object's __tostring on the
        scheduler's aux thread, created before the sandbox started and so without the count
        hook. The recipe's __tostring runs there with no CPU limit and the loop blocked (no
        --max-time either).

        Reproduce:  printf '%s\\n' 'local t = task.spawn(function() error(setmetatable({},'
          '{__tostring = function() while true do end end})) end) task.wait(t)' > r.lua
          timeout 10 smtpsh --sandbox --max-cpu 1 --max-time 2 r.lua
        Expected: exit 3 after ~1 s (--max-cpu). Got: spins at 100% CPU until killed.
        (A task spawned from inside that __tostring inherits the hookless thread's hook: none.)"""
        cp = self.sandbox("""
            local t = task.spawn(function()
              error(setmetatable({}, {__tostring = function() local n = 0 while true do n = n + 1 end end}))
            end)
            print(task.wait(t))
        """, limits=("--max-cpu", "1", "--max-time", "2"), timeout=HANG_TIMEOUT)
        self.assertStopped(cp, within=3)

    def test_error_object_with_looping_tostring(self):
        # FOUND: the chunk's error is turned to text outside the sandboxed call
        """Found: when the chunk fails with an error object, scripts/sandbox.lua calls
        tostring(err) after sandbox.run returned: the recipe's __tostring runs there, outside
        the protected run, and its stop escapes as a Lua error of the command: exit 1 with a
        stack traceback (4 lines), not the stop's one line.

        Reproduce:  echo 'error(setmetatable({}, {__tostring = function() while true do end end}))'
          > r.lua; smtpsh --sandbox --max-cpu 1 r.lua; echo $?
        Expected: exit 3, one line naming --max-cpu. Got: exit 1 and "stack traceback: ...
        [C]: in function 'tostring' embedded:scripts/sandbox.lua:104: in main chunk"."""
        cp = self.sandbox("error(setmetatable({}, {__tostring = function() while true do end end}))",
                          limits=("--max-cpu", "1", "--max-time", "3"))
        self.assertStopped(cp, "--max-cpu", within=3)

    def test_returned_value_with_looping_tostring(self):
        # FOUND: returned values are printed outside the sandboxed call
        """Found: the chunk's returned values are printed by scripts/sandbox.lua (pretty) after
        sandbox.run returned; a returned value's __tostring runs there and its stop is exit 1
        with a traceback through stdlib/pretty.lua.

        Reproduce:  echo 'return setmetatable({}, {__tostring = function() while true do end end})'
          > r.lua; smtpsh --sandbox --max-cpu 1 r.lua; echo $?
        Expected: exit 3, one line. Got: exit 1, 4 lines."""
        cp = self.sandbox("return setmetatable({}, {__tostring = function() while true do end end})",
                          limits=("--max-cpu", "1", "--max-time", "3"))
        self.assertStopped(cp, "--max-cpu", within=3)

    def test_a_task_cannot_close_the_sandboxs_own_thread(self):
        # FOUND: coroutine.close/resume work on threads the recipe did not make
        """Found: coroutine.running() in the main chunk is the task thread that runs
        scripts/sandbox.lua (smtpsh's own code around sandbox.run). A spawned task can
        coroutine.close (or coroutine.resume) it while it waits: the command's code is killed
        (or resumed out of turn by the recipe), the stop's reporting in sandboxcore.run never
        happens, and a forbidden call after that is reported as exit 1 with a traceback
        ("error in a task nobody waited for", "cannot resume dead coroutine").

        Reproduce:  cat > r.lua <<'EOF'
          local T = coroutine.running()
          task.spawn(function() coroutine.close(T) os.execute("id") end)
          task.sleep(0.5)
          EOF
          smtpsh --sandbox r.lua; echo $?
        Expected: exit 3 and one line (closing a thread the sandbox did not give it is refused,
        or the later os.execute is the stop). Got: exit 1, several lines."""
        cp = self.sandbox("""
            local T = coroutine.running()
            task.spawn(function()
              print("close:", coroutine.close(T))
              os.execute("touch " .. CANARY)
            end)
            task.sleep(0.5)
        """)
        self.assertNoCanary(cp)
        self.assertStopped(cp, within=5)


# --------------------------------------------------------------------------------------------
# 3. Limits


class LimitTest(SandboxCase):

    def test_max_memory(self):
        cp = self.sandbox("local t = {} for i = 1, 1e9 do t[i] = {i} end", limits=("--max-memory", "16"))
        self.assertStopped(cp, "more than 16 MiB of Lua memory", "--max-memory MIB", within=5)

    def test_max_memory_caught_allocation_goes_no_further(self):
        cp = self.sandbox('print(pcall(string.rep, "x", 64 << 20)) print("WENT ON")',
                          limits=("--max-memory", "16"))
        self.assertStopped(cp, "16 MiB", "--max-memory", within=5)
        self.assertNotIn("WENT ON", cp.stdout, show(cp))

    def test_max_instructions(self):
        cp = self.sandbox("local n = 0 while true do n = n + 1 end", limits=("--max-instructions", "100000"))
        self.assertStopped(cp, "more than 100000 Lua instructions", "--max-instructions N", within=5)

    def test_max_cpu(self):
        cp = self.sandbox("local n = 0 while true do n = n + 1 end", limits=("--max-cpu", "1"))
        self.assertStopped(cp, "more than 1 s of CPU time", "--max-cpu SECONDS", within=2.5)
        self.assertGreaterEqual(cp.elapsed, 0.9, show(cp))

    def test_max_cpu_busy_loop_in_pcall_in_a_loop(self):
        cp = self.sandbox("while true do pcall(function() local n = 0 while true do n = n + 1 end end) end",
                          limits=("--max-cpu", "1"), form="command")
        self.assertStopped(cp, "more than 1 s of CPU time", "--max-cpu SECONDS", within=2.5)

    def test_max_time_sleep(self):
        cp = self.sandbox("task.sleep(30) print('WOKE')", limits=("--max-time", "1"))
        self.assertStopped(cp, "ran longer than 1 s", "--max-time SECONDS", within=2.5)
        self.assertGreaterEqual(cp.elapsed, 0.9, show(cp))
        self.assertNotIn("WOKE", cp.stdout, show(cp))

    def test_max_time_waiting_on_a_silent_server(self):
        with silent_listener() as port:
            cp = self.sandbox("""
                local port = ...
                print(smtp.connect("127.0.0.1:" .. port, {timeout = 30}))
            """, port, f"127.0.0.1:{port}", limits=("--max-time", "1"))
        self.assertStopped(cp, "ran longer than 1 s", "--max-time", within=2.5)

    def test_max_time_busy_loop(self):
        # FOUND: --max-time is a timer on the event loop, which a busy loop never lets run
        """Found: the wall-clock limit is an asio timer on the scheduler's loop; a busy Lua loop
        never returns to the loop, so only --max-cpu stops it.

        Reproduce:  echo 'while true do end' > r.lua; time smtpsh --sandbox --max-cpu 3 --max-time 1 r.lua
        Expected: stopped after ~1 s naming --max-time. Got: stopped after 3 s naming --max-cpu
        (with the defaults, --max-time 30 lets a busy loop run 60 s)."""
        cp = self.sandbox("local n = 0 while true do n = n + 1 end",
                          limits=("--max-cpu", "3", "--max-time", "1"), timeout=6)
        self.assertStopped(cp, "--max-time", within=2.5)

    def test_io_read_is_forbidden(self):
        """io.read blocked the whole process in C on a stdin that never delivers, past
        --max-time: the sandbox has no io.read."""
        cp = self.sandbox("print(io.read())", limits=("--max-cpu", "1", "--max-time", "1"),
                          timeout=HANG_TIMEOUT, keep_stdin_open=True)
        self.assertStopped(cp, "io.read", within=2.5)

    def test_cpu_spent_inside_one_library_call(self):
        # FOUND: CPU spent in C (no Lua instruction) escapes --max-cpu and --max-time
        """Found: the CPU limit is looked at by a count hook every 1000 Lua instructions; one
        library call can burn CPU in C for ever without executing any: string.rep("", huge)
        loops in C, a backtracking pattern is exponential. Neither --max-cpu nor --max-time
        (the loop is blocked) stops it.

        Reproduce:  echo 'print(#string.rep("", 1 << 50))' > r.lua
          timeout 10 smtpsh --sandbox --max-cpu 1 --max-time 1 r.lua    (runs until killed)
          echo 'print(string.find(string.rep("a", 60), string.rep("a*", 12) .. "b"))' > r.lua
          timeout 10 smtpsh --sandbox --max-cpu 1 --max-time 1 r.lua    (runs until killed)
        (table.move({}, 1, 1 << 62, 2) is another: a C loop over 2^62 indices.)
        Expected: exit 3 after ~1 s. Got: 100% CPU until killed."""
        cp = self.sandbox('print(#string.rep("", 1 << 50))', limits=("--max-cpu", "1", "--max-time", "1"),
                          timeout=HANG_TIMEOUT)
        self.assertStopped(cp, "string.rep", within=2.5)

    def test_cpu_spent_inside_one_pattern_match(self):
        # FOUND, FIXED: a backtracking pattern runs in one C call; the hook never sees it.
        # A backstop thread now ends the process half a second past the limit.
        """A backtracking pattern is exponential inside one call of string.find: neither
        --max-cpu nor --max-time (the loop is blocked) stopped it (Redis has the same gap).

        Reproduce:  echo 'print(string.find(string.rep("a", 60), string.rep("a*", 12) .. "b"))' > r.lua
          timeout 10 smtpsh --sandbox --max-cpu 1 --max-time 1 r.lua    (runs until killed)"""
        cp = self.sandbox('print("BEFORE") print(string.find(string.rep("a", 60), string.rep("a*", 12) .. "b"))',
                          limits=("--max-cpu", "1", "--max-time", "1"), timeout=HANG_TIMEOUT)
        self.assertStopped(cp, "--max-", within=2.5)
        self.assertEqual(cp.stdout, "BEFORE\n", show(cp))  # what it printed before is not lost

    def test_cpu_in_one_pattern_match_stops_by_the_cpu_limit_too(self):
        cp = self.sandbox('print(string.find(string.rep("a", 60), string.rep("a*", 12) .. "b"))',
                          limits=("--max-cpu", "1"), timeout=HANG_TIMEOUT)
        self.assertStopped(cp, "more than 1 s of CPU time (--max-cpu SECONDS)", within=2.5)

    def test_max_tasks(self):
        cp = self.sandbox("""
            for i = 1, 10 do task.spawn(function() task.sleep(5) end) end
            print("SPAWNED 10")
        """, limits=("--max-tasks", "5"))
        self.assertStopped(cp, "more than 5 tasks at once", "--max-tasks N", within=5)
        self.assertNotIn("SPAWNED 10", cp.stdout, show(cp))

    def test_max_tasks_caught_spawn(self):
        cp = self.sandbox("""
            for i = 1, 10 do print(pcall(task.spawn, function() task.sleep(5) end)) end
            print("WENT ON")
        """, limits=("--max-tasks", "3"))
        self.assertStopped(cp, "more than 3 tasks", "--max-tasks", within=5)
        self.assertNotIn("WENT ON", cp.stdout, show(cp))


# --------------------------------------------------------------------------------------------
# 4. Destinations (and what a session hands out)


class DestinationTest(SandboxCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack = contextlib.ExitStack()
        cls.port = cls.stack.enter_context(scenario("accept"))

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        super().tearDownClass()

    EHLO = """
        local target = ...
        local s, err = smtp.connect(target)
        if not s then error(tostring(err), 0) end
        print("banner: " .. s.banner.code .. " " .. s.banner.text)
        local reply = assert(s:ehlo("sandbox.test"))
        print("ehlo: " .. reply.code)
        s:quit()
    """

    def test_named_address_and_port_may_be_reached(self):
        target = f"127.0.0.1:{self.port}"
        cp = self.sandbox(self.EHLO, target)
        self.assertRan(cp)
        self.assertIn("banner: 220 mx.accept.test", cp.stdout, show(cp))
        self.assertIn("ehlo: 250", cp.stdout.splitlines(), show(cp))

    def test_another_address_is_refused(self):
        """Told 127.0.0.2:PORT, it connects to 127.0.0.1:PORT (the scenario server): stopped."""
        cp = self.sandbox(f"""
            local told = ...
            local s, err = smtp.connect("127.0.0.1:{self.port}")
            print("CONNECTED", s, err)
        """, f"127.0.0.2:{self.port}")
        self.assertStopped(cp, f"connect to 127.0.0.1:{self.port}", "none of the hosts", "--allow HOST",
                           within=5)
        self.assertNotIn("CONNECTED", cp.stdout, show(cp))

    def test_net_connect_is_guarded_too(self):
        cp = self.sandbox(f"""
            local c, err = net.connect("127.0.0.1", {self.port})
            print("CONNECTED", c, err)
        """, f"127.0.0.2:{self.port}")
        self.assertStopped(cp, f"127.0.0.1:{self.port}", "--allow HOST", within=5)
        self.assertNotIn("CONNECTED", cp.stdout, show(cp))

    def test_ipv6_loopback_is_not_the_named_ipv4_address(self):
        cp = self.sandbox(f"""
            local c, err = net.connect("::1", {self.port})
            print("CONNECTED", c, err)
        """, f"127.0.0.1:{self.port}")
        self.assertStopped(cp, f"[::1]:{self.port}", within=5)

    def test_port_not_allowed(self):
        """127.0.0.1 is named (ports 25/465/587), the scenario's port is not."""
        cp = self.sandbox(f"""
            local s, err = smtp.connect("127.0.0.1:{self.port}")
            print("CONNECTED", s, err)
        """, "127.0.0.1")
        self.assertStopped(cp, f"127.0.0.1:{self.port}", "a port it may not use", "--allow-port PORT",
                           within=5)
        self.assertNotIn("CONNECTED", cp.stdout, show(cp))
        cp = self.sandbox("""
            local c, err = net.connect("127.0.0.1", 22)
            print("CONNECTED", c, err)
        """, "127.0.0.1:25")
        self.assertStopped(cp, "127.0.0.1:22", "--allow-port", within=5)

    def test_allow_and_allow_port_open_them(self):
        script = f'local s = assert(smtp.connect("127.0.0.1:{self.port}")) print("banner: " .. s.banner.code) s:quit()'
        cp = self.sandbox(script, limits=("--allow", "127.0.0.1", "--allow-port", str(self.port)))
        self.assertRan(cp)
        self.assertIn("banner: 220", cp.stdout, show(cp))
        cp = self.sandbox(script, limits=("--allow", "127.0.0.1"))
        self.assertStopped(cp, "--allow-port", within=5)
        cp = self.sandbox(script, limits=("--allow-port", str(self.port)))
        self.assertStopped(cp, "--allow HOST", within=5)
        cp = self.sandbox(script, limits=("--allow-any-host", "--allow-port", str(self.port)), form="command")
        self.assertRan(cp)
        cp = self.sandbox(script, limits=("--allow-any-host",))
        self.assertStopped(cp, "--allow-port", within=5)

    def test_named_localhost_is_reachable(self):
        # FOUND: a named host that resolves through /etc/hosts is never learned
        """Found: allow() in scripts/sandbox.lua takes "localhost" as a host on purpose, but the
        guard learns a name's addresses only from answers of the DNS engine's resolver watch;
        smtp.connect("localhost:PORT") resolves through /etc/hosts, so the named host is refused
        (safe, but the documented destination does not work).

        Reproduce (with `smtpsh serve accept --listen 127.0.0.1:2525` running):
          echo 'print(smtp.connect((...)))' > r.lua; smtpsh --sandbox r.lua localhost:2525
        Expected: connected (exit 0). Got: exit 3 "it tried to connect to 127.0.0.1:2525, which
        is none of the hosts it was given ..."."""
        cp = self.sandbox(self.EHLO, f"localhost:{self.port}", limits=("--max-time", "5"))
        self.assertRan(cp)
        self.assertIn("banner: 220 mx.accept.test", cp.stdout, show(cp))

    def test_max_connections(self):
        cp = self.sandbox("""
            local target = ...
            for i = 1, 5 do
              local s = assert(smtp.connect(target))
              print("connection " .. i)
              s:quit()
            end
        """, f"127.0.0.1:{self.port}", limits=("--max-connections", "2"))
        self.assertStopped(cp, "more than 2 connections", "--max-connections N", within=5)
        self.assertEqual(cp.stdout.splitlines(), ["connection 1", "connection 2"], show(cp))

    def test_a_port_given_with_a_host_is_that_hosts_only(self):
        """HOST:PORT opens PORT to HOST, not to every host the recipe may reach: given
        127.0.0.1:PORT and 127.0.0.2 (ports 25, 465 and 587), 127.0.0.2:PORT is refused."""
        cp = self.sandbox("""
            local one, two = ...
            local s = assert(smtp.connect(one, {timeout = 3}))
            s:quit()
            print("first ok")
            local port = one:match(":(%d+)$")
            print(smtp.connect("127.0.0.2:" .. port, {timeout = 3}))
        """, f"127.0.0.1:{self.port}", "127.0.0.2")
        self.assertStopped(cp, f"it tried to connect to 127.0.0.2:{self.port}, a port it may not use")
        self.assertEqual(cp.stdout.splitlines(), ["first ok"], show(cp))

    def test_max_open_counts_connections_open_at_once(self):
        """Three sessions open together pass a limit of three; a fourth open beside them is
        stopped; closed ones no longer count (six in turn pass)."""
        cp = self.sandbox("""
            local target = ...
            for i = 1, 6 do
              local s = assert(smtp.connect(target))
              s:quit()
            end
            print("six in turn")
            local open = {}
            for i = 1, 4 do
              open[i] = assert(smtp.connect(target))
              print("open " .. i)
            end
        """, f"127.0.0.1:{self.port}", limits=("--max-open", "3"))
        self.assertStopped(cp, "more than 3 connections open at once", "--max-open N", within=5)
        self.assertEqual(cp.stdout.splitlines(), ["six in turn", "open 1", "open 2", "open 3"],
                         show(cp))

    def test_session_object_hands_out_nothing_privileged(self):
        """The session's fields (core, transcript, ...) give no way to a file or the real
        environment; its metatables are hidden and cannot be replaced."""
        cp = self.sandbox("""
            local target = ...
            local s = assert(smtp.connect(target))
            assert(s:ehlo("sandbox.test"))
            print(getmetatable(s), getmetatable(s.core), s.record, s.core.record, rawget(s, "record"))
            print(type(s.transcript), type(s.core), s.core.__index, s.__index, s.__gc, s.__close)
            for _, key in ipairs{"record", "open", "execute", "servers", "dump", "loadlib"} do
              assert(s[key] == nil and s.core[key] == nil, key)
            end
            print(pcall(setmetatable, s, nil))
        """, f"127.0.0.1:{self.port}")
        self.assertStopped(cp, "replace a metatable", within=5)
        self.assertIn("nil\tnil\tnil\tnil\tnil", cp.stdout, show(cp))
        self.assertIn("table\tuserdata\tnil\tnil\tnil\tnil", cp.stdout, show(cp))

    def test_session_note_memory_is_counted(self):
        # FOUND, FIXED: C++ memory fed by the recipe escaped --max-memory; a session's
        # transcript lines are now charged to the recipe's memory
        """Found: --max-memory counts the Lua allocator only. s.core:note(text) copies text into
        the session's transcript (C++, unbounded): one 4 MiB Lua string noted 40 times is
        160 MiB the limit never sees (400 MiB with 100; without end with a loop).

        Reproduce (with `smtpsh serve accept --listen 127.0.0.1:2525` running):
          printf '%s\\n' 'local s = assert(smtp.connect("127.0.0.1:2525"))'
            'local big = string.rep("x", 4 << 20) for i = 1, 100 do s.core:note(big) end' > r.lua
          /usr/bin/time -v smtpsh --sandbox --max-memory 16 r.lua 127.0.0.1:2525
        Expected: exit 3 naming --max-memory (or the process staying near 16 MiB of data).
        Got: exit 0, maximum resident set size ~410 MiB."""
        cp = self.sandbox("""
            local target = ...
            local s = assert(smtp.connect(target))
            local big = string.rep("x", 4 << 20)
            for i = 1, 40 do s.core:note(big) end
            print("NOTED 160 MiB")
        """, f"127.0.0.1:{self.port}", limits=("--max-memory", "16"))
        self.assertFinished(cp)
        self.assertLess(cp.maxrss_kib, 100 * 1024,
                        f"peak RSS {cp.maxrss_kib // 1024} MiB with --max-memory 16{show(cp)}")
        self.assertStopped(cp, "--max-memory")
        self.assertNotIn("NOTED", cp.stdout, show(cp))

    def test_a_transcript_freed_is_memory_given_back(self):
        """Charged while the session lives, credited when it is collected: many sessions in
        turn, each with a transcript of 2 MiB, stay under a limit of 16 MiB."""
        cp = self.sandbox("""
            local target = ...
            local line = string.rep("x", 1 << 20)
            for i = 1, 20 do
              local s = assert(smtp.connect(target))
              s.core:note(line) s.core:note(line)
              s:quit()
            end
            print("TWENTY SESSIONS")
        """, f"127.0.0.1:{self.port}", limits=("--max-memory", "16"))
        self.assertRan(cp)
        self.assertIn("TWENTY SESSIONS", cp.stdout, show(cp))

    def test_dns_query_to_a_server_of_its_choice(self):
        # FOUND: dns.query{servers=...} sends packets to any address and port
        """Found: dns.servers is forbidden ("it changes where DNS questions go"), but
        dns.query(name, type, {servers = {"ADDR:PORT"}}) asks any server for this one query:
        a UDP datagram (data in the name) to any address and port, never checked by the
        destination guard (which only sees TCP connects).

        Reproduce:  nc -u -l 127.0.0.1 5300 &   (any UDP listener)
          echo 'dns.query("secret-data.example", "A", {servers = {"127.0.0.1:5300"}})' > r.lua
          smtpsh --sandbox --max-time 2 r.lua
        Expected: stopped at once naming 127.0.0.1:5300, nothing sent. Got: the listener
        receives the query for secret-data.example; the run only ends at --max-time."""
        with udp_socket() as udp:
            port = udp.getsockname()[1]
            cp = self.sandbox(f"""
                print(dns.query("secret-data.exfil.test", "A", {{servers = {{"127.0.0.1:{port}"}}}}))
            """, limits=("--max-time", "1"))
            try:
                datagram = udp.recv(4096)
            except BlockingIOError:
                datagram = None
        self.assertIsNone(datagram, f"a DNS query reached 127.0.0.1:{port}: {datagram!r}{show(cp)}")
        self.assertStopped(cp, "DNS servers of its own", within=2.5)

    def test_dns_answer_from_its_own_server_opens_an_address(self):
        # FOUND: answers from a server the recipe chose teach the guard new addresses
        """Found: the guard learns the addresses of the allowed names from every DNS answer,
        including answers to dns.query{servers = ...} from a server the recipe picked (an
        attacker's). Asked for an allowed name, that server answers any address, which then
        becomes reachable: any host on an allowed port.

        Reproduce: a DNS server on 127.0.0.1:5300 answering "A 127.0.0.1" for everything, a
        scenario server on 127.0.0.1:2525, and
          printf '%s\\n' 'dns.query("poisoned.test", "A", {servers = {"127.0.0.1:5300"}})'
            'print(smtp.connect("127.0.0.1:2525"))' > r.lua
          smtpsh --sandbox r.lua poisoned.test:2525
        Expected: exit 3 (127.0.0.1 is none of the hosts given). Got: exit 0, connected (the
        same recipe without the dns.query line is stopped)."""
        script = f"""
            local dns_port, poison = ...
            if poison == "poison" then
              local r, e = dns.query("poisoned.test", "A", {{servers = {{"127.0.0.1:" .. dns_port}}}})
              print("answer", r and r[1] and r[1].address, e)
            end
            local s, err = smtp.connect("127.0.0.1:{self.port}")
            print("CONNECTED", s and s.banner.text or err)
        """
        with fake_dns("127.0.0.1") as dns_port:
            control = self.sandbox(script, dns_port, "no", f"poisoned.test:{self.port}", limits=("--max-time", "3"))
            self.assertStopped(control, f"127.0.0.1:{self.port}", "none of the hosts")
            cp = self.sandbox(script, dns_port, "poison", f"poisoned.test:{self.port}", limits=("--max-time", "3"))
        self.assertNotIn("CONNECTED\tmx.accept.test", cp.stdout, show(cp))
        self.assertStopped(cp)

    def test_tls_ca_file_reads_a_file(self):
        # FOUND: ca_file is a file read (an oracle on any path), no connection needed
        """Found: no file may be read, but smtp.connect{tls = "implicit", ca_file = PATH}
        (also s:starttls{ca_file}, conn:starttls, ca_path) makes OpenSSL open PATH while the
        options are checked, before any connect (so with no destination at all), and the
        error tells apart "No such file or directory" from "no certificate or crl found": a
        probe of any path. A FIFO as ca_file blocks the process for ever (past --max-time).

        Reproduce:  echo 'print(pcall(smtp.connect, "127.0.0.1:1", {tls = "implicit", ca_file = (...)}))' > r.lua
          smtpsh --sandbox r.lua /etc/shadow ; smtpsh --sandbox r.lua /nonexistent
          mkfifo /tmp/f; timeout 10 smtpsh --sandbox --max-time 1 r.lua /tmp/f   (hangs)
        Expected: the sandbox stops the recipe (exit 3) naming ca_file; no file opened.
        Got: exit 0 and "cannot load CA certificates from '/etc/shadow': no certificate or crl
        found" vs "...: No such file or directory"."""
        secret = os.path.join(self.dir, "secret.txt")
        with open(secret, "w") as f:
            f.write("TOP-SECRET\n")
        recipe = 'print(pcall(smtp.connect, "127.0.0.1:1", {tls = "implicit", ca_file = (...)}))'
        present = self.sandbox(recipe, secret)
        absent = self.sandbox(recipe, os.path.join(self.dir, "nothing-here"))
        self.assertEqual(present.stdout.replace(secret, "PATH"),
                         absent.stdout.replace(os.path.join(self.dir, "nothing-here"), "PATH"),
                         "the recipe can tell whether a file exists (ca_file is read)"
                         f"{show(present)}{show(absent)}")
        self.assertStopped(present, "ca_file")

    def test_tls_ca_file_fifo_blocks_past_max_time(self):
        # FOUND: see test_tls_ca_file_reads_a_file
        """Found: ca_file naming a FIFO nobody writes to: open() blocks the whole process in C,
        past --max-time (see test_tls_ca_file_reads_a_file for the reproduction)."""
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)
        cp = self.sandbox(f'print(pcall(smtp.connect, "127.0.0.1:1",'
                          f' {{tls = "implicit", ca_file = {lua_string(fifo)}}}))',
                          limits=("--max-cpu", "1", "--max-time", "1"), timeout=HANG_TIMEOUT)
        self.assertStopped(cp, within=2.5)

    def test_accept_tls_reads_and_uses_a_key_file(self):
        # FOUND: conn:accept_tls{cert=, key=} reads any PEM files and serves them to the peer
        """Found: net's conn:accept_tls{cert = FILE, key = FILE} (the server side of TLS) reads the
        two files and does a TLS handshake with them over a connection the recipe made: a
        certificate file on disk goes to the peer, and the private key (say the host's
        /etc/ssl/private/*.key, when readable) signs the handshake for the peer.

        Reproduce: a TLS client waiting on 127.0.0.1:4443 (`openssl s_server` reversed: any
        listener that, once connected, starts a TLS client handshake, e.g. a few lines of
        Python), and
          printf '%s\\n' 'local c = assert(net.connect("127.0.0.1", 4443))'
            'print(c:accept_tls{cert = "/path/cert.pem", key = "/path/cert.key"})' > r.lua
          smtpsh --sandbox r.lua 127.0.0.1:4443
        Expected: exit 3 naming the file option (no file at all may be read). Got: exit 0, the
        handshake completes, the peer holds the certificate read from the file."""
        certs = test_certs()
        cert, key = os.path.join(certs, "mx1.pem"), os.path.join(certs, "mx1.key")
        with open(cert) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(8)
        port = listener.getsockname()[1]
        got = {}

        def tls_client():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                conn.settimeout(8)
                with ctx.wrap_socket(conn, server_hostname="peer.test") as tls:
                    got["der"] = tls.getpeercert(binary_form=True)
            except (OSError, ssl.SSLError) as e:
                got["error"] = repr(e)
                conn.close()

        thread = threading.Thread(target=tls_client, daemon=True)
        thread.start()
        try:
            cp = self.sandbox(f"""
                local c = assert(net.connect("127.0.0.1", {port}))
                print("accept_tls:", c:accept_tls{{cert = {lua_string(cert)}, key = {lua_string(key)}}})
            """, f"127.0.0.1:{port}", limits=("--max-time", "5"))
        finally:
            listener.close()
            thread.join(10)
        self.assertFalse(got.get("der") == der,
                         f"the peer received the certificate read from {cert} (the handshake used {key}){show(cp)}")
        self.assertStopped(cp)


class MxDestinationTest(NsdTestCase, SandboxCase):
    """MX hosts of an allowed domain become reachable (NSD serves tests/peers/zones:
    example.test MX 10 mx1, 20 mx2 (A 127.0.0.2), 20 mx3).

    The recipe's look-ups go to NSD through `--resolver` (set before the sandbox starts: the
    recipe itself may not choose its DNS servers)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mx2 = cls.stack.enter_context(scenario("accept", host="127.0.0.2"))

    def recipe_for(self, lookups):
        return f"""
            local function ask(name, rtype)
              local r, e = dns.query(name, rtype)
              print(rtype, name, r and #r, e)
              return r
            end
            {lookups}
            local s, err = smtp.connect("127.0.0.2:{self.mx2}")
            if not s then error(tostring(err), 0) end
            print("banner: " .. s.banner.code .. " " .. s.banner.text)
            s:quit()
        """

    def test_mx_host_of_an_allowed_domain_is_reachable(self):
        cp = self.sandbox(self.recipe_for('ask("example.test", "MX") ask("mx2.example.test", "A")'),
                          f"example.test:{self.mx2}", limits=("--resolver", self.resolver, "--max-time", "10"))
        self.assertRan(cp)
        self.assertIn("banner: 220 mx.accept.test", cp.stdout, show(cp))

    def test_a_host_that_is_no_mx_of_it_stays_unreachable(self):
        """Without the MX answer, mx2's address is not learned (only names the run was given,
        their MX hosts and CNAME targets are)."""
        cp = self.sandbox(self.recipe_for('ask("mx2.example.test", "A")'),
                          f"example.test:{self.mx2}", limits=("--resolver", self.resolver, "--max-time", "10"))
        self.assertStopped(cp, f"127.0.0.2:{self.mx2}", "none of the hosts", within=8)
        self.assertNotIn("banner:", cp.stdout, show(cp))


# --------------------------------------------------------------------------------------------
# 5. Usage


class UsageTest(SandboxCase):

    def run_usage(self, *args):
        return run_bounded([SMTPSH, *args], 10, cwd=self.dir)

    def assertUsage(self, cp, *needles):
        self.assertFinished(cp)
        self.assertEqual(cp.returncode, 2, f"expected a usage error (exit 2){show(cp)}")
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"stderr should be exactly one line{show(cp)}")
        self.assertTrue(lines[0].startswith("smtpsh"), show(cp))
        for needle in needles:
            self.assertIn(needle, lines[0], show(cp))
        self.assertEqual(cp.stdout, "", show(cp))

    def test_limit_without_sandbox(self):
        path = self.recipe('print("RAN")')
        for flag, value in (("--max-memory", "5"), ("--max-cpu", "1"), ("--allow", "x.test"),
                            ("--allow-port", "2525")):
            with self.subTest(flag):
                self.assertUsage(self.run_usage(flag, value, path), flag, "--sandbox")
        self.assertUsage(self.run_usage("--allow-any-host", path), "--allow-any-host")

    def test_sandbox_without_a_file(self):
        self.assertUsage(self.run_usage("--sandbox"), "--sandbox", "FILE.lua")
        self.assertUsage(self.run_usage("--sandbox", "--max-cpu", "1"), "FILE.lua")
        self.assertUsage(self.run_usage("sandbox"), "missing FILE.lua")
        self.assertUsage(self.run_usage("--sandbox", "--max-cpu"), "--max-cpu")

    def test_bad_limit_values(self):
        path = self.recipe('print("RAN")')
        self.assertUsage(self.run_usage("sandbox", "--max-memory", "0", path), "--max-memory")
        self.assertUsage(self.run_usage("sandbox", "--allow-port", "70000", path), "--allow-port")
        self.assertUsage(self.run_usage("sandbox", "--allow", "nohost", path), "--allow")

    def test_sandbox_help_lists_the_limits_with_defaults(self):
        cp = self.run_usage("sandbox", "--help")
        self.assertFinished(cp)
        self.assertEqual(cp.returncode, 0, show(cp))
        out = cp.stdout
        for flag, default in (("--max-memory MIB", "256"), ("--max-instructions N", "no limit"),
                              ("--max-cpu SECONDS", "60"), ("--max-time SECONDS", "600"),
                              ("--max-tasks N", "1000"), ("--max-connections N", "1000"),
                              ("--max-open N", "100")):
            line = next((l for l in out.splitlines() if flag in l), None)
            self.assertIsNotNone(line, f"{flag} missing{show(cp)}")
            self.assertIn(f"[default: {default}]", line, show(cp))
        for flag in ("--allow HOST", "--allow-port PORT", "--allow-any-host"):
            self.assertIn(flag, out, show(cp))


# --------------------------------------------------------------------------------------------
# 6. A normal recipe still works


class NormalRecipeTest(SandboxCase):

    def test_a_normal_recipe_runs(self):
        cp = self.sandbox("""
            local json = require "smtpsh.json"
            print("hello", ...)
            print(string.format("%05.1f|%s", math.pi, ("abc"):upper()), #arg, arg.n)
            local t = {3, 1, 2} table.sort(t) print(table.concat(t, ","))
            print(math.max(4, 9), math.tointeger(3.0), utf8.char(233), ("x"):rep(3, "-"))
            print(pcall(error, "plain"))
            print(pcall(error, {code = 5}))
            print(json.encode({a = 1, list = json.array{1, 2}}), json.decode('{"k":[true,null]}').k[1])
            local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
            print(co(1), co(10))
            local t1 = task.spawn(function(x) task.sleep(0.05) return x * 2 end, 21)
            print(task.wait(t1))
            print(type(os.time()), type(os.clock()), os.date("!%Y", 0))
            local mt = {__index = function(_, k) return k .. "!" end}
            local obj = setmetatable({}, mt)
            print(getmetatable(obj) == mt, obj.hey)
            io.write("written", "\\n")
            return 42, {ok = true}
        """, "arg1", "arg2")
        self.assertRan(cp)
        self.assertEqual(cp.stdout.splitlines(), [
            "hello\targ1\targ2",
            "003.1|ABC\t2\t2",
            "1,2,3",
            "9\t3\té\tx-x-x",
            "false\tplain",
            cp.stdout.splitlines()[5],  # the table's address
            '{"a":1,"list":[1,2]}\ttrue',
            "2\t20",
            "42",
            "number\tnumber\t1970",
            "true\they!",
            "written",
            "42\t{ ok = true }",
        ], show(cp))
        self.assertTrue(cp.stdout.splitlines()[5].startswith("false\ttable: "), show(cp))

    def test_failure_is_one_line_exit_1(self):
        cp = self.sandbox('local x = nil\nprint(x.y)')
        self.assertFailed(cp, "attempt to index a nil value")

    def test_stdin_is_not_read(self):
        path = self.recipe('print("got: " .. io.read("l"))')
        proc = subprocess.run([SMTPSH, "--sandbox", path], input="a line\n", capture_output=True,
                              text=True, timeout=10 * TIME_SCALE, cwd=self.dir, env=merge_env(None))
        self.assertEqual(proc.returncode, 3, proc.stderr)
        self.assertIn("it used io.read, which the sandbox forbids", proc.stderr)

if __name__ == "__main__":
    unittest.main()
