"""smtpsh's `smtp` module, `smtpsh raw`, `:raw` and `smtpsh send` against real loopback
SMTP servers: postfix's smtp-sink (with its fault options) and aiosmtpd
(tests/peers/aiosmtpd_peer.py: AUTH PLAIN/LOGIN/CRAM-MD5, a spool of received messages).

The Lua side of each test is a small script written to a scratch file and run as
`smtpsh SCRIPT TESTING_LUA PORT [ARGS...]`; it uses tests/lua/testing.lua (t.test, t.eq,
t.run), so a failure names the Lua assertion. Python checks the exit status and that every
Lua test ran and passed, plus what only Python can see (spool files, stderr, timing).

What smtp-sink answers (Postfix 3.7, checked by hand): greeting `220 smtp-sink ESMTP`
(`220 smtp-sink` with -e); EHLO `250-smtp-sink` ... `250-DSN` then an empty `250 `;
MAIL `250 2.1.0 Ok`; RCPT `250 2.1.5 Ok`; DATA `354 End data with <CR><LF>.<CR><LF>`;
end of data, NOOP, VRFY `250 2.0.0 Ok`; RSET `250 2.1.0 Ok`; HELP, EXPN, unknown commands
`500 5.5.1 Error: unknown command`; QUIT `221 Bye`; -r `450 4.3.0 Error: command failed`;
-f `500 5.3.0 Error: command failed` (-r and -f imply -p: no PIPELINING); -Q
`421 4.0.0 Server closing connection` then close; -q close without a reply.

    /usr/bin/python3 -m unittest -v tests/e2e/test_smtp.py      (SMTPSH=/path/to/smtpsh)
"""

import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (LUA_DIR, PYTHON, REPO_ROOT, Repl, SmtpshTestCase, describe,  # noqa: E402
                     free_port, run_smtpsh, scratch_dir, smtp_sink, timed_run)

TESTING_LUA = os.path.join(LUA_DIR, "testing.lua")
AIOSMTPD_PEER = os.path.join(REPO_ROOT, "tests", "peers", "aiosmtpd_peer.py")
USER = "alice"
PASSWORD = "s3cret!pw"
WRONG_PASSWORD = "wr0ng!guess"

SINK_EHLO = ["250-smtp-sink", "250-PIPELINING", "250-8BITMIME", "250-AUTH PLAIN LOGIN",
             "250-XCLIENT NAME HELO", "250-XFORWARD NAME ADDR PROTO HELO",
             "250-ENHANCEDSTATUSCODES", "250-DSN", "250 "]


@contextlib.contextmanager
def aiosmtpd(*options, startup_timeout=15):
    """Runs tests/peers/aiosmtpd_peer.py OPTIONS on 127.0.0.1; yields its port; kills it."""
    errlog = os.path.join(scratch_dir("smtpsh-aiosmtpd-"), "stderr")
    with open(errlog, "wb") as err:
        proc = subprocess.Popen([PYTHON, AIOSMTPD_PEER, *options], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
    try:
        line = harness._read_line_with_deadline(proc.stdout,
                                                time.monotonic() + startup_timeout)
        m = re.match(r"PORT (\d+)\s*$", line)
        if not m:
            with open(errlog, errors="replace") as f:
                raise RuntimeError(f"aiosmtpd_peer {options} did not report its port: "
                                   f"{line!r}\n{f.read()}")
        yield int(m.group(1))
    finally:
        proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()


def wait_for_file(path, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return os.path.exists(path)


def crlf(message):
    """What a receiver stores for `message` sent with s:data(): every line end CRLF, and a
    CRLF added when the last line has none (dot-stuffing is undone by the receiver)."""
    out = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def secret_forms(secret, user=USER):
    """The secret and the base64 forms an AUTH exchange would carry it in."""
    s, u = secret.encode(), user.encode()
    blobs = [s, b"\0" + u + b"\0" + s, u + b"\0" + u + b"\0" + s]
    return [secret] + [base64.b64encode(b).decode() for b in blobs]


# Loaded before every Lua test body: arg[1] is testing.lua, arg[2] the port.
LUA_PRELUDE = r'''
local t = dofile(arg[1])
local PORT = assert(math.tointeger(tonumber(arg[2])), "port argument")
local TARGET = "127.0.0.1:" .. PORT

-- The transcript lines going in direction `dir` ("C", "S" or "!"), as a plain list.
local function lines(s, dir)
  local out = {}
  for _, e in ipairs(s.transcript) do
    if e.dir == dir then out[#out + 1] = e.line end
  end
  return out
end

local function list(v)
  local out = {}
  for i, x in ipairs(v) do out[i] = x end
  return out
end

local function caps_of(s)
  local out = {}
  for k, v in pairs(s.caps) do out[k] = list(v) end
  return out
end

local function connect(opts, target)
  local s, err = smtp.connect(target or TARGET, opts or {timeout = 5})
  if not s then error("smtp.connect(" .. (target or TARGET) .. ") failed: " .. tostring(err), 2) end
  return s
end

local function must(what, r, err)
  if r == nil then error(what .. " failed: " .. tostring(err), 2) end
  return r
end

-- Checks a reply: want = {code, enhanced, text, str (tostring), lines (optional)}.
local function reply_is(what, r, want)
  t.ok(r ~= nil, what .. ": no reply")
  t.eq(r.code, want.code, what .. ".code")
  t.eq(math.type(r.code), "integer", what .. ".code should be an integer")
  t.eq(r.enhanced, want.enhanced, what .. ".enhanced")
  t.eq(r.text, want.text, what .. ".text")
  t.eq(tostring(r), want.str, "tostring(" .. what .. ")")
  if want.lines then t.eq(list(r.lines), want.lines, what .. ".lines") end
  local class = want.code // 100
  t.eq(r.ok, class == 2 or class == 3, what .. ".ok")
  t.eq(r.transient, class == 4, what .. ".transient")
  t.eq(r.permanent, class == 5, what .. ".permanent")
  return r
end

-- `r, err` must be a failure of `kind` at `stage`; code: the reply's code (nil: no reply).
local function fails(what, kind, stage, code, r, err)
  t.eq(r, nil, what .. ": first value should be nil")
  t.ok(err ~= nil, what .. ": err missing")
  t.eq(err.kind, kind, what .. ": err.kind (" .. tostring(err) .. ")")
  t.eq(err.stage, stage, what .. ": err.stage (" .. tostring(err) .. ")")
  if code == nil then
    t.eq(err.reply, nil, what .. ": err.reply")
  else
    t.ok(err.reply ~= nil, what .. ": err.reply missing (" .. tostring(err) .. ")")
    t.eq(err.reply.code, code, what .. ": err.reply.code")
  end
  local msg = tostring(err)
  t.ok(type(msg) == "string" and #msg > 10 and not msg:find("^table: "),
       what .. ": tostring(err) should be a sentence, got " .. tostring(msg))
  return err
end
'''


class SmtpTestCase(SmtpshTestCase):
    def run_lua(self, body, port, *extra, timeout=20):
        """Runs LUA_PRELUDE + body + t.run(); asserts exit 0 and that all the body's
        t.test cases ran and passed. Returns (CompletedProcess, seconds)."""
        n = body.count("t.test(")
        self.assertGreater(n, 0, "a Lua body without t.test")
        path = os.path.join(scratch_dir("smtpsh-lua-"), "body.lua")
        with open(path, "w") as f:
            f.write(LUA_PRELUDE + body + "\nt.run()\n")
        cp, elapsed = timed_run([path, TESTING_LUA, str(port), *map(str, extra)],
                                timeout=timeout)
        self.assertExit(cp, 0)
        self.assertIn(f"{n} passed, 0 failed", cp.stdout.splitlines(), describe(cp))
        return cp, elapsed

    def assertInOrder(self, text, needles, cp=None):
        """Each of `needles` occurs in `text`, each after the previous one."""
        pos = 0
        for needle in needles:
            i = text.find(needle, pos)
            self.assertNotEqual(i, -1, f"{needle!r} missing (in order, after offset {pos})"
                                       f"\n--- text:\n{text}" + (describe(cp) if cp else ""))
            pos = i + len(needle)

    def assertNoSecret(self, text, secret, what):
        for form in secret_forms(secret):
            self.assertNotIn(form, text, f"{what} leaks the secret as {form!r}:\n{text}")
        # any base64-looking token that decodes to something containing the secret
        for token in re.findall(r"[A-Za-z0-9+/]{8,}={0,2}", text):
            try:
                decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
            except ValueError:
                continue
            self.assertNotIn(secret.encode(), decoded,
                             f"{what} leaks the secret in base64 {token!r}:\n{text}")


# ============================================================================================
# The smtp module against smtp-sink

class TestSmtpSession(SmtpTestCase):
    def test_full_session(self):
        body = r'''
t.test("full session", function()
  local s = connect({helo = "client.example.test", timeout = 5})
  reply_is("banner", s.banner, {code = 220, text = "smtp-sink ESMTP",
    str = "220 smtp-sink ESMTP", lines = {"smtp-sink ESMTP"}})
  local ehlo_lines = {"smtp-sink", "PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN",
    "XCLIENT NAME HELO", "XFORWARD NAME ADDR PROTO HELO", "ENHANCEDSTATUSCODES", "DSN", ""}
  -- smtp-sink ends its EHLO reply with "250 " (a space, no text); tostring shows the reply in
  -- its canonical form, a bare "250", while the transcript keeps the bytes as sent.
  local canonical = {table.unpack(SINK_EHLO)}
  canonical[#canonical] = "250"
  reply_is("ehlo", must("ehlo", s:ehlo()), {code = 250, text = table.concat(ehlo_lines, "\n"),
    str = table.concat(canonical, "\n"), lines = ehlo_lines})
  t.eq(caps_of(s), {PIPELINING = {}, ["8BITMIME"] = {}, AUTH = {"PLAIN", "LOGIN"},
    XCLIENT = {"NAME", "HELO"}, XFORWARD = {"NAME", "ADDR", "PROTO", "HELO"},
    ENHANCEDSTATUSCODES = {}, DSN = {}}, "s.caps")
  reply_is("mail", must("mail", s:mail("sender@example.test")), {code = 250,
    enhanced = "2.1.0", text = "Ok", str = "250 2.1.0 Ok", lines = {"2.1.0 Ok"}})
  reply_is("rcpt", must("rcpt", s:rcpt("rcpt@example.test")), {code = 250,
    enhanced = "2.1.5", text = "Ok", str = "250 2.1.5 Ok", lines = {"2.1.5 Ok"}})
  reply_is("data", must("data", s:data("Subject: hello\nFrom: <sender@example.test>\n\n" ..
    "first body line\nsecond body line\n")),
    {code = 250, enhanced = "2.0.0", text = "Ok", str = "250 2.0.0 Ok"})
  reply_is("quit", must("quit", s:quit()), {code = 221, text = "Bye", str = "221 Bye",
    lines = {"Bye"}})

  t.eq(lines(s, "C"), {"EHLO client.example.test", "MAIL FROM:<sender@example.test>",
    "RCPT TO:<rcpt@example.test>", "DATA", "Subject: hello", "From: <sender@example.test>", "",
    "first body line", "second body line", ".", "QUIT"}, "client lines of the transcript")
  local server = {"220 smtp-sink ESMTP"}
  for _, l in ipairs(SINK_EHLO) do server[#server + 1] = l end
  for _, l in ipairs({"250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>",
                      "250 2.0.0 Ok", "221 Bye"}) do server[#server + 1] = l end
  t.eq(lines(s, "S"), server, "server lines of the transcript")

  local last = 0
  for i, e in ipairs(s.transcript) do
    t.ok(e.dir == "C" or e.dir == "S" or e.dir == "!", "transcript[" .. i .. "].dir: " .. tostring(e.dir))
    t.eq(type(e.line), "string", "transcript[" .. i .. "].line")
    t.eq(type(e.t), "number", "transcript[" .. i .. "].t")
    t.ok(e.t >= last, "transcript t values must not decrease: " .. e.t .. " after " .. last)
    t.ok(math.abs(e.t * 1000 - math.floor(e.t * 1000 + 0.5)) < 1e-6,
         "transcript t has ms resolution, got " .. e.t)
    last = e.t
  end
  t.ok(last < 5, "the whole session took " .. last .. " s")
end)
'''
        with smtp_sink() as port:
            self.run_lua("local SINK_EHLO = {" + ", ".join(json.dumps(x) for x in SINK_EHLO)
                         + "}\n" + body, port)

    def test_other_commands_and_params(self):
        body = r'''
t.test("rset noop vrfy cmd, params as string and table, null sender", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  reply_is("mail", must("mail", s:mail("", {SIZE = 123, BODY = "8BITMIME", SMTPUTF8 = true})),
    {code = 250, enhanced = "2.1.0", text = "Ok", str = "250 2.1.0 Ok"})
  must("rcpt", s:rcpt("b@example.test", "NOTIFY=NEVER"))
  must("rcpt", s:rcpt("c@example.test", {NOTIFY = "SUCCESS"}))
  reply_is("rset", must("rset", s:rset()), {code = 250, enhanced = "2.1.0", text = "Ok", str = "250 2.1.0 Ok"})
  reply_is("noop", must("noop", s:noop()), {code = 250, enhanced = "2.0.0", text = "Ok", str = "250 2.0.0 Ok"})
  reply_is("vrfy", must("vrfy", s:vrfy("postmaster")), {code = 250, enhanced = "2.0.0", text = "Ok", str = "250 2.0.0 Ok"})
  reply_is("cmd", must("cmd", s:cmd("NOOP now")), {code = 250, enhanced = "2.0.0", text = "Ok", str = "250 2.0.0 Ok"})
  local e = fails("help", "reply", "help", 500, s:help())
  reply_is("help err.reply", e.reply, {code = 500, enhanced = "5.5.1",
    text = "Error: unknown command", str = "500 5.5.1 Error: unknown command"})
  fails("expn", "reply", "expn", 500, s:expn("list"))
  fails("cmd XYZZY", "reply", "cmd", 500, s:cmd("XYZZY"))
  must("quit", s:quit())

  local c = lines(s, "C")
  t.eq(c[1], "EHLO me.example.test", "EHLO line")
  local mail = {}
  for w in c[2]:gmatch("%S+") do mail[#mail + 1] = w end
  t.eq(mail[1] .. " " .. mail[2], "MAIL FROM:<>", "MAIL line: " .. c[2])
  table.remove(mail, 1); table.remove(mail, 1); table.sort(mail)
  t.eq(mail, {"BODY=8BITMIME", "SIZE=123", "SMTPUTF8"}, "MAIL params: " .. c[2])
  t.eq({table.unpack(c, 3)}, {"RCPT TO:<b@example.test> NOTIFY=NEVER",
    "RCPT TO:<c@example.test> NOTIFY=SUCCESS", "RSET", "NOOP", "VRFY postmaster", "NOOP now",
    "HELP", "EXPN list", "XYZZY", "QUIT"}, "client lines after MAIL")
end)
'''
        with smtp_sink() as port:
            self.run_lua(body, port)

    def test_bdat_without_chunking(self):
        body = r'''
t.test("bdat when CHUNKING is not offered", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  t.eq(s.caps.CHUNKING, nil, "smtp-sink does not offer CHUNKING")
  fails("bdat", "protocol", "bdat", nil, s:bdat("Subject: x\n\nbody\n"))
  reply_is("noop", must("noop", s:noop()), {code = 250, enhanced = "2.0.0", text = "Ok", str = "250 2.0.0 Ok"})
  must("quit", s:quit())
  t.eq(lines(s, "C"), {"EHLO me.example.test", "NOOP", "QUIT"}, "no BDAT was sent")
end)
'''
        with smtp_sink() as port:
            self.run_lua(body, port)

    def test_help_with_topic_and_success(self):
        body = r'''
t.test("help against aiosmtpd", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  local r = must("help", s:help())
  t.eq(r.code, 250, "help code")
  t.eq(r.text, "Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY", "help text")
  r = must("help MAIL", s:help("MAIL"))
  t.eq(r.code, 250, "help MAIL code")
  t.eq(lines(s, "C")[3], "HELP MAIL", "HELP with a topic")
  must("quit", s:quit())
end)
'''
        with aiosmtpd() as port:
            self.run_lua(body, port)

    def test_trace_on_stderr(self):
        body = r'''
t.test("trace = true", function()
  local s = connect({timeout = 5, trace = true, helo = "trace.example.test"})
  must("ehlo", s:ehlo())
  must("mail", s:mail("a@example.test"))
  must("quit", s:quit())
end)
'''
        with smtp_sink() as port:
            cp, _ = self.run_lua(body, port)
        self.assertInOrder(cp.stderr, ["220 smtp-sink ESMTP", "EHLO trace.example.test",
                                       "250-PIPELINING", "250-DSN", "MAIL FROM:<a@example.test>",
                                       "250 2.1.0 Ok", "QUIT", "221 Bye"], cp)
        self.assertNotIn("EHLO", cp.stdout, "the trace goes to stderr" + describe(cp))

    def test_connect_forms_and_failures(self):
        refused = free_port()
        body = r'''
local REFUSED = arg[3]
t.test("host:port with a source address", function()
  local s = connect({timeout = 5, source = "127.0.0.1"})
  t.eq(s.banner.code, 220, "banner")
  must("quit", s:quit())
end)
t.test("refused", function()
  local s, err = smtp.connect("127.0.0.1:" .. REFUSED, {timeout = 5})
  fails("connect to a closed port", "refused", "connect", nil, s, err)
end)
'''
        with smtp_sink() as port:
            self.run_lua(body, port, refused)

    @unittest.skipUnless(harness.ipv6_loopback_available(), "no IPv6 loopback (::1)")
    def test_ipv6_target(self):
        body = r'''
t.test("[::1]:port", function()
  local s = connect({timeout = 5}, "[::1]:" .. PORT)
  t.eq(tostring(s.banner), "220 smtp-sink ESMTP", "banner")
  must("ehlo", s:ehlo("v6.example.test"))
  must("quit", s:quit())
end)
'''
        with smtp_sink(host="::1") as port:
            self.run_lua(body, port)


class TestSmtpFaults(SmtpTestCase):
    def test_soft_reject_at_rcpt(self):
        body = r'''
t.test("-r RCPT", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  t.eq(s.caps.PIPELINING, nil, "-r implies -p")
  must("mail", s:mail("a@example.test"))
  local e = fails("rcpt", "reply", "rcpt", 450, s:rcpt("b@example.test"))
  reply_is("err.reply", e.reply, {code = 450, enhanced = "4.3.0", text = "Error: command failed",
    str = "450 4.3.0 Error: command failed", lines = {"4.3.0 Error: command failed"}})
  t.eq(s.closed, false, "a 450 does not close the session")
  reply_is("rset after 450", must("rset", s:rset()), {code = 250, enhanced = "2.1.0", text = "Ok", str = "250 2.1.0 Ok"})
  t.eq(must("quit", s:quit()).code, 221, "quit")
end)
'''
        with smtp_sink("-r", "RCPT") as port:
            self.run_lua(body, port)

    def test_hard_reject_at_mail(self):
        body = r'''
t.test("-f MAIL", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  local e = fails("mail", "reply", "mail", 500, s:mail("a@example.test"))
  reply_is("err.reply", e.reply, {code = 500, enhanced = "5.3.0", text = "Error: command failed",
    str = "500 5.3.0 Error: command failed"})
  local e2 = fails("rcpt without MAIL", "reply", "rcpt", 503, s:rcpt("b@example.test"))
  t.eq(e2.reply.enhanced, "5.5.1", "503 enhanced")
  t.eq(must("quit", s:quit()).code, 221, "quit")
end)
'''
        with smtp_sink("-f", "MAIL") as port:
            self.run_lua(body, port)

    def test_silent_disconnect_at_rcpt(self):
        body = r'''
t.test("-q RCPT", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  must("mail", s:mail("a@example.test"))
  fails("rcpt", "closed", "rcpt", nil, s:rcpt("b@example.test"))
  t.eq(s.closed, true, "s.closed after the server hung up")
  fails("noop after the hang-up", "closed", "noop", nil, s:noop())
end)
'''
        with smtp_sink("-q", "RCPT") as port:
            self.run_lua(body, port)

    def test_421_at_mail_closes_the_session(self):
        body = r'''
t.test("-Q MAIL", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  t.eq(s.closed, false, "open before the 421")
  local e = fails("mail", "reply", "mail", 421, s:mail("a@example.test"))
  reply_is("err.reply", e.reply, {code = 421, enhanced = "4.0.0",
    text = "Server closing connection", str = "421 4.0.0 Server closing connection"})
  t.eq(s.closed, true, "s.closed after a 421")
  fails("rcpt after 421", "closed", "rcpt", nil, s:rcpt("b@example.test"))
  fails("noop after 421", "closed", "noop", nil, s:noop())
  t.eq(lines(s, "C"), {"EHLO me.example.test", "MAIL FROM:<a@example.test>"},
       "nothing is sent after the 421")
end)
'''
        with smtp_sink("-Q", "MAIL") as port:
            self.run_lua(body, port)

    def test_421_greeting(self):
        body = r'''
t.test("-Q CONNECT", function()
  local s, err = smtp.connect(TARGET, {timeout = 5})
  local e = fails("connect", "reply", "banner", 421, s, err)
  t.eq(tostring(e.reply), "421 4.0.0 Server closing connection", "the greeting")
end)
'''
        with smtp_sink("-Q", "CONNECT") as port:
            self.run_lua(body, port)

    def test_5xx_greeting(self):
        body = r'''
t.test("-f CONNECT", function()
  local s, err = smtp.connect(TARGET, {timeout = 5})
  local e = fails("connect", "reply", "banner", 500, s, err)
  reply_is("the greeting", e.reply, {code = 500, enhanced = "5.3.0",
    text = "Error: command failed", str = "500 5.3.0 Error: command failed"})
end)
'''
        with smtp_sink("-f", "CONNECT") as port:
            self.run_lua(body, port)

    def test_ehlo_falls_back_to_helo(self):
        body = r'''
t.test("-e: no ESMTP", function()
  local s = connect({timeout = 5, helo = "old.example.test"})
  t.eq(tostring(s.banner), "220 smtp-sink", "banner without ESMTP")
  reply_is("ehlo (HELO fallback)", must("ehlo", s:ehlo()), {code = 250, text = "smtp-sink",
    str = "250 smtp-sink", lines = {"smtp-sink"}})
  t.eq(caps_of(s), {}, "caps after a HELO fallback")
  reply_is("helo", must("helo", s:helo("other.example.test")), {code = 250, text = "smtp-sink", str = "250 smtp-sink"})
  must("quit", s:quit())
  t.eq(lines(s, "C"), {"EHLO old.example.test", "HELO old.example.test",
    "HELO other.example.test", "QUIT"}, "client lines")
  t.eq(lines(s, "S")[2], "500 5.5.1 Error: unknown command", "the EHLO reply is in the transcript")
end)
'''
        with smtp_sink("-e") as port:
            self.run_lua(body, port)

    def test_timeout_at_rcpt(self):
        body = r'''
t.test("-W RCPT:3 with timeout = 1", function()
  local s = connect({timeout = 1})
  must("ehlo", s:ehlo("me.example.test"))
  must("mail", s:mail("a@example.test"))
  local t0 = task.now()
  fails("rcpt", "timeout", "rcpt", nil, s:rcpt("b@example.test"))
  local dt = task.now() - t0
  t.ok(dt >= 0.9 and dt < 2.0, "rcpt timed out after " .. dt .. " s, want about 1 s")
end)
'''
        with smtp_sink("-W", "RCPT:3") as port:
            cp, elapsed = self.run_lua(body, port)
        if harness.TIME_SCALE == 1:  # the start-up alone takes seconds under valgrind
            self.assertLess(elapsed, 2.9, f"took {elapsed:.2f}s{describe(cp)}")

    def test_timeout_at_data(self):
        body = r'''
t.test("-w 3 (slow DATA reply) with timeout = 1", function()
  local s = connect({timeout = 1})
  must("ehlo", s:ehlo("me.example.test"))
  must("mail", s:mail("a@example.test"))
  must("rcpt", s:rcpt("b@example.test"))
  local t0 = task.now()
  fails("data", "timeout", "data", nil, s:data("Subject: slow\n\nbody\n"))
  local dt = task.now() - t0
  t.ok(dt >= 0.9 and dt < 2.0, "data timed out after " .. dt .. " s, want about 1 s")
end)
'''
        with smtp_sink("-w", "3") as port:
            cp, elapsed = self.run_lua(body, port)
        if harness.TIME_SCALE == 1:  # the start-up alone takes seconds under valgrind
            self.assertLess(elapsed, 2.9, f"took {elapsed:.2f}s{describe(cp)}")


class TestSmtpPipeline(SmtpTestCase):
    BODY = r'''
local WANT_PIPELINED = arg[3] == "pipelined"
t.test("pipeline", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  t.eq(s.caps.PIPELINING ~= nil, WANT_PIPELINED, "PIPELINING offered")
  local before = #s.transcript
  local replies = s:pipeline{"MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>",
                             "RCPT TO:<c@example.test>"}
  t.eq(#replies, 3, "one reply per command")
  local got = {}
  for i, r in ipairs(replies) do got[i] = r.code .. "|" .. tostring(r) end
  t.eq(got, {"250|250 2.1.0 Ok", "250|250 2.1.5 Ok", "250|250 2.1.5 Ok"}, "replies")
  local dirs = {}
  for i = before + 1, #s.transcript do
    local e = s.transcript[i]
    if e.dir ~= "!" then dirs[#dirs + 1] = e.dir end
  end
  t.eq(table.concat(dirs), WANT_PIPELINED and "CCCSSS" or "CSCSCS",
       "order of commands and replies in the transcript")

  -- a 5xx in the middle is just a reply in the list
  must("rset", s:rset())
  replies = s:pipeline{"MAIL FROM:<a@example.test>", "HELP", "RCPT TO:<b@example.test>"}
  got = {}
  for i, r in ipairs(replies) do got[i] = tostring(r) end
  t.eq(got, {"250 2.1.0 Ok", "500 5.5.1 Error: unknown command", "250 2.1.5 Ok"}, "replies with a 500 inside")
  t.eq(replies[2].permanent, true, "the 500 is permanent")
  t.eq(must("quit", s:quit()).code, 221, "quit")
end)
'''

    def test_pipelining_offered(self):
        with smtp_sink() as port:
            self.run_lua(self.BODY, port, "pipelined")

    def test_pipelining_not_offered(self):
        with smtp_sink("-p") as port:
            self.run_lua(self.BODY, port, "one-at-a-time")


class TestSmtpInjection(SmtpTestCase):
    def test_cr_lf_in_arguments_raise_before_sending(self):
        body = r'''
t.test("CR or LF in arguments", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  must("mail", s:mail("a@example.test"))
  local n = #s.transcript
  local attempts = {
    {"rcpt CRLF", function() return s:rcpt("a@b\r\nRSET") end},
    {"rcpt LF", function() return s:rcpt("a@b\nRSET") end},
    {"rcpt CR", function() return s:rcpt("a@b\rRSET") end},
    {"mail", function() return s:mail("x@y\r\nRSET") end},
    {"rcpt params string", function() return s:rcpt("b@example.test", "NOTIFY=NEVER\r\nRSET") end},
    {"rcpt params table", function() return s:rcpt("b@example.test", {NOTIFY = "NEVER\r\nRSET"}) end},
    {"ehlo", function() return s:ehlo("x\r\nRSET") end},
    {"helo", function() return s:helo("x\nRSET") end},
    {"vrfy", function() return s:vrfy("x\r\nRSET") end},
    {"cmd", function() return s:cmd("NOOP\r\nRSET") end},
    {"auth user", function() return s:auth("PLAIN", "al\r\nRSET", "pw") end},
    {"auth secret", function() return s:auth("LOGIN", "alice", "pw\r\nRSET") end},
  }
  for _, a in ipairs(attempts) do
    t.raises(a[2], "CR or LF", a[1])
  end
  t.eq(#s.transcript, n, "nothing entered the transcript")
  for _, l in ipairs(lines(s, "C")) do
    t.ok(not l:find("RSET"), "RSET in the transcript: " .. l)
  end
  -- the server saw nothing: had RSET gone out, its `250 2.1.0 Ok` would come first
  reply_is("noop", must("noop", s:noop()), {code = 250, enhanced = "2.0.0", text = "Ok", str = "250 2.0.0 Ok"})
  reply_is("rcpt", must("rcpt", s:rcpt("b@example.test")), {code = 250, enhanced = "2.1.5", text = "Ok", str = "250 2.1.5 Ok"})
  t.eq(must("quit", s:quit()).code, 221, "quit")
  t.eq(lines(s, "C"), {"EHLO me.example.test", "MAIL FROM:<a@example.test>", "NOOP",
    "RCPT TO:<b@example.test>", "QUIT"}, "client lines")
end)
'''
        with smtp_sink() as port:
            self.run_lua(body, port)


# ============================================================================================
# AUTH and DATA against aiosmtpd

class TestSmtpAuth(SmtpTestCase):
    BODY = r'''
local MECH, SECRET, GOOD = arg[3], arg[4], arg[5] == "good"
t.test("auth " .. MECH .. (GOOD and " right" or " wrong") .. " secret", function()
  local s = connect({timeout = 5, trace = true})
  must("ehlo", s:ehlo("me.example.test"))
  t.eq(list(s.caps.AUTH), {"CRAM-MD5", "LOGIN", "PLAIN"}, "caps.AUTH")
  t.eq(list(s.caps.SIZE), {"33554432"}, "caps.SIZE")
  if GOOD then
    reply_is("auth", must("auth", s:auth(MECH, "alice", SECRET)), {code = 235,
      enhanced = "2.7.0", text = "Authentication successful",
      str = "235 2.7.0 Authentication successful"})
    reply_is("mail after auth", must("mail", s:mail("a@example.test")),
      {code = 250, text = "OK", str = "250 OK"})
  else
    local e = fails("auth", "reply", "auth", 535, s:auth(MECH, "alice", SECRET))
    t.eq(tostring(e.reply), "535 5.7.8 Authentication credentials invalid", "err.reply")
    t.eq(e.reply.enhanced, "5.7.8", "err.reply.enhanced")
    -- not authenticated: the server still wants AUTH
    fails("mail", "reply", "mail", 530, s:mail("a@example.test"))
  end
  must("quit", s:quit())
  local c = lines(s, "C")
  t.eq(c[1], "EHLO me.example.test", "first client line")
  t.ok(c[2]:find("^AUTH " .. MECH:gsub("%-", "%%-")), "second client line starts the AUTH: " .. c[2])
  local stars = false
  for _, e in ipairs(s.transcript) do
    t.ok(not e.line:find(SECRET, 1, true), "secret in the transcript: " .. e.line)
    if e.line:find("***", 1, true) then stars = true end
    print("T " .. e.dir .. " " .. e.line)
  end
  if MECH ~= "CRAM-MD5" then t.ok(stars, "*** stands for the secret in the transcript") end
end)
'''

    def check_auth(self, mech, good):
        secret = PASSWORD if good else WRONG_PASSWORD
        with aiosmtpd("--auth") as port:
            cp, _ = self.run_lua(self.BODY, port, mech, secret, "good" if good else "bad")
        self.assertNoSecret(cp.stdout, secret, "the transcript")
        self.assertNoSecret(cp.stderr, secret, "the trace")
        self.assertInOrder(cp.stderr, ["EHLO me.example.test", "250", f"AUTH {mech}",
                                       "235" if good else "535", "QUIT", "221"], cp)

    def test_plain_right(self):
        self.check_auth("PLAIN", True)

    def test_plain_wrong(self):
        self.check_auth("PLAIN", False)

    def test_login_right(self):
        self.check_auth("LOGIN", True)

    def test_login_wrong(self):
        self.check_auth("LOGIN", False)

    def test_cram_md5_right(self):
        self.check_auth("CRAM-MD5", True)

    def test_cram_md5_wrong(self):
        self.check_auth("CRAM-MD5", False)

    def test_old_auth_form_merged(self):
        body = r'''
t.test("AUTH= merged into AUTH", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  local mechs = list(s.caps.AUTH)
  table.sort(mechs)
  local uniq = {}
  for _, m in ipairs(mechs) do if uniq[#uniq] ~= m then uniq[#uniq + 1] = m end end
  t.eq(uniq, {"CRAM-MD5", "LOGIN", "PLAIN"}, "caps.AUTH (sorted, without duplicates)")
  for k in pairs(s.caps) do t.ok(not k:find("="), "caps key " .. k) end
  t.eq(must("auth", s:auth("LOGIN", "alice", arg[3])).code, 235, "auth")
  must("quit", s:quit())
end)
'''
        with aiosmtpd("--auth", "--old-auth") as port:
            self.run_lua(body, port, PASSWORD)


class TestSmtpData(SmtpTestCase):
    MESSAGES = [
        (b"Subject: dots and line ends\n"
         b".starts with one dot\n"
         b"..starts with two dots\n"
         b".\n"
         b"the line above is a lone dot; this one ends in CRLF\r\n"
         b"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x93\xa7 UTF-8 line\n"
         b"\n"
         b"last line without a line end"),
        b"Subject: ends with CRLF\r\n\r\nbody\r\n",
        b"Subject: last line is dotted\n\n.last",
        b"Subject: ends with a lone dot line\n\nabove\n.\n",
    ]

    def test_data_byte_for_byte(self):
        spool = os.path.join(scratch_dir("smtpsh-spool-"), "spool")
        files = []
        d = scratch_dir("smtpsh-msg-")
        for i, m in enumerate(self.MESSAGES, 1):
            files.append(os.path.join(d, f"m{i}"))
            with open(files[-1], "wb") as f:
                f.write(m)
        body = r'''
t.test("data", function()
  local s = connect()
  must("ehlo", s:ehlo("me.example.test"))
  for i = 3, #arg do
    local f = assert(io.open(arg[i], "rb"))
    local msg = f:read("a")
    f:close()
    must("mail", s:mail("sender@example.test"))
    must("rcpt", s:rcpt("rcpt" .. (i - 2) .. "@example.test"))
    reply_is("data " .. (i - 2), must("data", s:data(msg)), {code = 250, enhanced = "2.0.0",
      text = "Message accepted", str = "250 2.0.0 Message accepted"})
  end
  must("quit", s:quit())
end)
'''
        with aiosmtpd("--spool", spool) as port:
            self.run_lua(body, port, *files)
            for i, m in enumerate(self.MESSAGES, 1):
                meta_path = os.path.join(spool, f"{i}.json")
                self.assertTrue(wait_for_file(meta_path), f"message {i} not spooled")
                with open(meta_path) as f:
                    meta = json.load(f)
                self.assertEqual((meta["mail_from"], meta["rcpt_tos"]),
                                 ("sender@example.test", [f"rcpt{i}@example.test"]))
                with open(os.path.join(spool, f"{i}.eml"), "rb") as f:
                    stored = f.read()
                self.assertEqual(stored, crlf(m), f"message {i} as stored by the server")
            self.assertFalse(os.path.exists(os.path.join(spool, f"{len(self.MESSAGES) + 1}.eml")))

    def test_crlf_helper(self):
        # the expectation itself: fixed bytes, so a mistake in crlf() cannot hide one in smtpsh
        self.assertEqual(crlf(self.MESSAGES[2]), b"Subject: last line is dotted\r\n\r\n.last\r\n")
        self.assertEqual(crlf(self.MESSAGES[1]), self.MESSAGES[1])
        self.assertEqual(crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc\r\n")


# ============================================================================================
# smtpsh raw and :raw

class TestRaw(SmtpTestCase):
    def test_raw_from_stdin(self):
        with smtp_sink() as port:
            cp = run_smtpsh(["raw", f"127.0.0.1:{port}"], stdin="EHLO x\nR\nRSET\nQUIT\n",
                            timeout=15)
        self.assertExit(cp, 0)
        self.assertInOrder(cp.stdout, ["220 smtp-sink ESMTP", "250-smtp-sink", "250-PIPELINING",
                                       "250-DSN", "500 5.5.1 Error: unknown command",
                                       "250 2.1.0 Ok", "221 Bye"], cp)

    def test_raw_colon_quit_leaves(self):
        with smtp_sink() as port:
            cp = run_smtpsh(["raw", f"127.0.0.1:{port}"], stdin="NOOP\n:quit\nRSET\n",
                            timeout=15)
        self.assertExit(cp, 0)
        self.assertInOrder(cp.stdout, ["220 smtp-sink ESMTP", "250 2.0.0 Ok"], cp)
        self.assertNotIn("2.1.0", cp.stdout, "RSET after :quit was sent" + describe(cp))

    def test_raw_in_repl_sets_last(self):
        with smtp_sink() as port:
            r = Repl([], env={"HOME": scratch_dir("smtpsh-home-")})
            self.addCleanup(r.close)
            r.expect_prompt(timeout=10)
            r.send(f":raw 127.0.0.1:{port}")
            r.expect(r"220 smtp-sink ESMTP")
            r.send("NOOP")
            r.expect(r"250 2\.0\.0 Ok")
            r.send("RSET")
            r.expect(r"250 2\.1\.0 Ok")
            r.send(":quit")
            r.expect_prompt()
            r.send('print("LAST-" .. tostring(last.banner.code) .. "-" .. #last.transcript)')
            got = r.expect(r"LAST-(\d+)-(\d+)\n")
            m = re.search(r"LAST-(\d+)-(\d+)\n", got)
            self.assertEqual(m.group(1), "220")
            self.assertGreaterEqual(int(m.group(2)), 5)  # banner, NOOP + reply, RSET + reply
            r.expect_prompt()
            r.send("cl = {}")
            r.expect_prompt()
            r.send("for _, e in ipairs(last.transcript) do cl[#cl+1] = e.dir .. e.line end")
            r.expect_prompt()
            r.send('print("C" .. "L=" .. table.concat(cl, "|"))')
            got = r.expect(r"CL=.*\n")
            self.assertIn("|CNOOP|", got)
            self.assertIn("|CRSET|", got)
            self.assertIn("S220 smtp-sink ESMTP|", got)


# ============================================================================================
# smtpsh send

class TestSend(SmtpTestCase):
    def send(self, port, *args, timeout=20):
        return run_smtpsh(["send", "--server", f"127.0.0.1:{port}", *args], timeout=timeout)

    @staticmethod
    def client_lines(doc):
        return [e["line"] for e in doc["transcript"] if e["dir"] == "C"]

    def test_send_ok(self):
        with smtp_sink() as port:
            cp = self.send(port, "--from", "a@example.test", "--to", "b@example.test")
        self.assertExit(cp, 0)
        self.assertInOrder(cp.stdout, ["220 smtp-sink ESMTP", "EHLO ", "250-PIPELINING",
                                       "MAIL FROM:<a@example.test>", "250 2.1.0 Ok",
                                       "RCPT TO:<b@example.test>", "250 2.1.5 Ok", "DATA",
                                       "354 ", "250 2.0.0 Ok", "QUIT", "221 Bye"], cp)

    def test_send_rejected_rcpt(self):
        with smtp_sink("-r", "RCPT") as port:
            cp = self.send(port, "--from", "a@example.test", "--to", "b@example.test")
        self.assertExit(cp, 1)
        self.assertInOrder(cp.stdout, ["RCPT TO:<b@example.test>", "450 4.3.0 Error: command failed"], cp)
        self.assertNotIn("354 ", cp.stdout, describe(cp))

    def test_send_json_rejected_rcpt(self):
        with smtp_sink("-r", "RCPT") as port:
            cp = self.send(port, "--from", "a@example.test", "--to", "b@example.test", "--json")
        self.assertExit(cp, 1)
        doc = json.loads(cp.stdout)
        self.assertIs(doc["ok"], False, describe(cp))
        self.assertEqual(doc["stage"], "rcpt", describe(cp))
        self.assertEqual(doc["reply"], {"code": 450, "enhanced": "4.3.0",
                                        "text": "Error: command failed"}, describe(cp))
        c = self.client_lines(doc)
        self.assertTrue(c[0].startswith("EHLO "), describe(cp))
        self.assertEqual(c[1:3], ["MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>"],
                         describe(cp))
        self.assertNotIn("DATA", c, describe(cp))
        last = -1.0
        for e in doc["transcript"]:
            self.assertIn(e["dir"], ("C", "S", "!"))
            self.assertIsInstance(e["line"], str)
            self.assertIsInstance(e["t"], (int, float))
            self.assertGreaterEqual(e["t"], last)
            last = e["t"]
        self.assertIn("450 4.3.0 Error: command failed",
                      [e["line"] for e in doc["transcript"] if e["dir"] == "S"])

    def test_send_json_ok(self):
        with smtp_sink() as port:
            cp = self.send(port, "--from", "a@example.test", "--to", "b@example.test", "--json")
        self.assertExit(cp, 0)
        doc = json.loads(cp.stdout)
        self.assertIs(doc["ok"], True, describe(cp))
        self.assertEqual(doc["reply"]["code"] // 100, 2, describe(cp))
        self.assertEqual(self.client_lines(doc)[1:4],
                         ["MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"])

    def test_send_quit_after_ehlo(self):
        with smtp_sink() as port:
            cp = self.send(port, "--from", "a@example.test", "--to", "b@example.test",
                           "--quit-after", "ehlo", "--json")
        self.assertExit(cp, 0)
        doc = json.loads(cp.stdout)
        c = self.client_lines(doc)
        self.assertTrue(c[0].startswith("EHLO "), describe(cp))
        self.assertFalse(any(x.startswith("MAIL") for x in c), describe(cp))
        self.assertEqual(c[-1], "QUIT", describe(cp))
        self.assertEqual(len(c), 2, describe(cp))
        self.assertIs(doc["ok"], True, describe(cp))

    def test_send_headers_and_body_file(self):
        spool = os.path.join(scratch_dir("smtpsh-spool-"), "spool")
        body = os.path.join(scratch_dir("smtpsh-body-"), "body.txt")
        with open(body, "wb") as f:
            f.write(b"line one\n.dotted line\nline three\n")
        with aiosmtpd("--spool", spool) as port:
            cp = self.send(port, "--from", "a@example.test", "--to", "b@example.test",
                           "--header", "Subject: from smtpsh send",
                           "--header", "X-Smtpsh-Test: yes", "--body", "@" + body)
            self.assertExit(cp, 0)
            self.assertTrue(wait_for_file(os.path.join(spool, "1.json")), describe(cp))
        with open(os.path.join(spool, "1.json")) as f:
            meta = json.load(f)
        self.assertEqual((meta["mail_from"], meta["rcpt_tos"]), ("a@example.test", ["b@example.test"]))
        with open(os.path.join(spool, "1.eml"), "rb") as f:
            stored = f.read()
        head, sep, tail = stored.partition(b"\r\n\r\n")
        self.assertEqual(sep, b"\r\n\r\n", f"no header/body separator in {stored!r}")
        self.assertIn(b"Subject: from smtpsh send", head.split(b"\r\n"), stored)
        self.assertIn(b"X-Smtpsh-Test: yes", head.split(b"\r\n"), stored)
        self.assertEqual(tail, b"line one\r\n.dotted line\r\nline three\r\n", stored)

    def check_send_auth(self, password, status):
        pwfile = os.path.join(scratch_dir("smtpsh-pw-"), "pw")
        with open(pwfile, "w") as f:
            f.write(password)
        os.chmod(pwfile, 0o600)
        with aiosmtpd("--auth") as port:
            cp = self.send(port, "--from", "a@example.test", "--to", "b@example.test",
                           "--auth", "PLAIN", "--user", USER, "--password-file", pwfile,
                           "--trace")
            cpj = self.send(port, "--from", "a@example.test", "--to", "b@example.test",
                            "--auth", "PLAIN", "--user", USER, "--password-file", pwfile,
                            "--json")
        for run in (cp, cpj):
            self.assertExit(run, status)
            self.assertNoSecret(run.stdout, password, "stdout")
            self.assertNoSecret(run.stderr, password, "stderr")
        # --trace: the transcript goes to stderr live (whether stdout repeats it is open)
        self.assertInOrder(cp.stdout + cp.stderr,
                           ["AUTH PLAIN", "235 2.7.0" if status == 0 else "535 5.7.8"], cp)
        doc = json.loads(cpj.stdout)
        self.assertIs(doc["ok"], status == 0, describe(cpj))
        return doc

    def test_send_auth_plain(self):
        doc = self.check_send_auth(PASSWORD, 0)
        self.assertTrue(any("***" in e["line"] for e in doc["transcript"]), doc)

    def test_send_auth_plain_wrong(self):
        doc = self.check_send_auth(WRONG_PASSWORD, 1)
        self.assertEqual(doc["stage"], "auth")
        self.assertEqual(doc["reply"]["code"], 535)

    def test_send_missing_to(self):
        cp = run_smtpsh(["send", "--server", f"127.0.0.1:{free_port()}", "--from", "a@example.test"])
        self.assertOneLineError(cp, 2, "smtpsh send: ")
        self.assertIn("--to", cp.stderr, describe(cp))
        self.assertEqual(cp.stdout, "", describe(cp))


if __name__ == "__main__":
    unittest.main()


class TestBdatWithChunking(harness.SmtpshTestCase):
    """s:bdat against a server that offers CHUNKING: smtpsh's own demo server (--demo)."""

    def test_bdat_sends_a_chunk_and_the_transcript_shows_it(self):
        lines = "\n".join([
            's = assert(smtp.connect(demo.target, {timeout = 5}))',
            'assert(s:ehlo("x")) assert(s.caps.CHUNKING, "CHUNKING offered")',
            'assert(s:mail("a@example.test")) assert(s:rcpt("b@example.test"))',
            'r, err = s:bdat("Subject: t\\n\\n.kept as is\\n") print("BDAT-RESULT", r and r.code, r and r.text or tostring(err))',
            'for _, e in ipairs(s.transcript) do if e.dir == "C" then print("C-LINE", e.line) end end',
            '',
        ])
        cp = harness.run_smtpsh(["--demo"], stdin=lines)
        self.assertEqual(cp.returncode, 0, harness.describe(cp))
        self.assertRegex(cp.stdout, r"BDAT-RESULT\t250\tOk: 27 octets, queued as [0-9A-F]+", harness.describe(cp))
        client = [line.split("\t", 1)[1] for line in cp.stdout.splitlines() if line.startswith("C-LINE\t")]
        self.assertEqual(client, ["EHLO x", "MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>",
                                  "BDAT 27 LAST", "Subject: t", "", ".kept as is"], harness.describe(cp))


class TestMalformedServers(harness.SmtpshTestCase):
    """Servers that do not speak SMTP: a clear protocol error naming the stage, never a hang."""

    def connect_error(self, *lines):
        with harness.peer("lines", *lines) as port:
            code = (f'local s, err = smtp.connect("127.0.0.1:{port}", {{timeout = 3}}) '
                    'print("RESULT", s, err and err.kind, err and err.stage, tostring(err))')
            cp = harness.run_smtpsh(["-e", code], timeout=15)
        self.assertEqual(cp.returncode, 0, harness.describe(cp))
        result = [line for line in cp.stdout.splitlines() if line.startswith("RESULT\t")]
        self.assertEqual(len(result), 1, harness.describe(cp))
        return result[0].split("\t")[1:]

    def test_a_greeting_that_is_not_a_reply(self):
        session, kind, stage, message = self.connect_error("hello from a web server")
        self.assertEqual((session, kind, stage), ("nil", "protocol", "banner"))
        self.assertIn("does not start with a three-digit code from 200 to 599", message)

    def test_a_reply_whose_lines_disagree_on_the_code(self):
        session, kind, stage, message = self.connect_error("220-mx.example.test", "550 go away")
        self.assertEqual((session, kind, stage), ("nil", "protocol", "banner"))
        self.assertIn("has code 550, the reply began with 220", message)

    def test_a_command_answered_with_garbage(self):
        # The peer echoes what it gets: "EHLO x" is not a reply either.
        with harness.peer("lines", "220 mx.example.test ESMTP") as port:
            code = (f'local s = assert(smtp.connect("127.0.0.1:{port}", {{timeout = 3}})) '
                    'local r, err = s:ehlo("x") '
                    'print("RESULT", r, err.kind, err.stage, s.closed)')
            cp = harness.run_smtpsh(["-e", code], timeout=15)
        self.assertIn("RESULT\tnil\tprotocol\tehlo\ttrue", cp.stdout, harness.describe(cp))
