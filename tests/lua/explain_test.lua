-- stdlib/explain_parse.lua, stdlib/explain.lua, stdlib/enhanced_status.lua: text in, facts and
-- a verdict out. Every sample of tests/explain/corpus/ is a case, checked against its row of
-- tests/explain/expected.lua; the Postfix samples are lines a real Postfix 3.7 logged while
-- delivering to smtpsh's scenario servers (tests/e2e/test_scenarios_postfix.py).
local t = dofile("tests/lua/testing.lua")
local explain = require "smtpsh.explain"
local explain_parse = require "smtpsh.explain_parse"
local enhanced_status = require "smtpsh.enhanced_status"
local judge = require "smtpsh.judge"

local function matches(text, pattern)
  t.ok(type(text) == "string" and text:find(pattern) ~= nil,
    string.format("%q does not match %q", tostring(text), pattern))
end

local corpus = "tests/explain/corpus/"
local expected = dofile("tests/explain/expected.lua")

local function read(name)
  local file = assert(io.open(corpus .. name, "rb"))
  local text = file:read("a")
  file:close()
  return text
end

local fields = { "source", "event", "stage", "code", "enhanced", "host", "ip", "port", "recipient", "status",
                 "tls", "tls_version" }

-- What explain makes of a text, in the shape of an expected row.
local function row_of(text)
  local understood = explain.read(text)
  if not understood then return { understood = false } end
  local row = {}
  for _, key in ipairs(fields) do row[key] = understood.attempt[key] end
  local verdict = explain.offline(understood)
  if verdict then row.verdict = verdict.verdict else row.undecided = true end
  return row
end

local samples = {}
for name in pairs(expected) do samples[#samples + 1] = name end
table.sort(samples)

for _, name in ipairs(samples) do
  t.test("sample " .. name, function()
    t.eq(row_of(read(name)), expected[name], name)
  end)
end

t.test("every sample in the corpus has its expected row", function()
  local listing = io.popen("ls " .. corpus)
  local count = 0
  for name in listing:lines() do
    count = count + 1
    t.ok(expected[name], "tests/explain/expected.lua has no row for " .. name)
  end
  listing:close()
  t.eq(count, #samples, "rows without a sample")
end)

t.test("CRLF line ends read as LF ones", function()
  for _, name in ipairs { "dsn_postfix_bounce.eml", "postfix_tls_version.log", "gmail_ratelimit.txt" } do
    local text = read(name)
    t.eq(row_of((text:gsub("\n", "\r\n"))), expected[name], name)
  end
end)

t.test("a sample's lines among other log lines still decide", function()
  local noise = "Dec  2 10:00:00 mail postfix/qmgr[99]: 6B105501CB: from=<a@b.test>, size=300, nrcpt=1 (queue active)\n"
  local text = noise .. read("postfix_greylist_rcpt.log") .. noise
  t.eq(row_of(text), expected["postfix_greylist_rcpt.log"])
end)

t.test("the last failure decides, a later delivery of another message does not hide it", function()
  local text = read("postfix_drop_banner.log") .. read("postfix_sent_tls.log")
  local understood = explain.read(text)
  t.eq(understood.attempt.event, "lost")
  t.eq(understood.others, 1)
end)

t.test("a line saying the sender waits gives way to the line saying why", function()
  local text = read("exim_greylist_44.log") .. read("exim_retry_53.log")
  t.eq(explain.read(text).attempt.event, "reply")
  t.eq(explain.offline(explain.read(text)).verdict, "greylisted")
end)

t.test("text it cannot understand is said so, with what it recognised", function()
  local understood, parsed = explain.read(read("not_understood.txt"))
  t.eq(understood, nil)
  t.eq(parsed.lines, 3)
  matches(explain.recognised(parsed), "^nothing: no delivery status")
  -- A Postfix line that is no delivery: recognised as Postfix, no attempt.
  understood, parsed = explain.read("Dec  2 10:00:00 mail postfix/smtp[1]: SSL_connect error to x[192.0.2.1]:25: -1\n")
  t.eq(understood, nil)
  t.eq(explain.recognised(parsed), "postfix text, but no delivery attempt in it")
end)

t.test("hostile input: long, binary, no line ends; bounded and never raising", function()
  local huge = string.rep("x", 6 << 20)
  local parsed = explain_parse.parse(huge)
  t.eq(#parsed.attempts, 0)
  local long_reply = "550 5.1.1 " .. string.rep("a", 100000)
  local understood = explain.read(long_reply)
  t.ok(#understood.attempt.reply <= explain_parse.max_line + 4, "the reply is bounded")
  t.ok(explain_parse.parse(string.rep("\0\1\2\255", 1000)))
  t.raises(function() explain_parse.parse(nil) end, "expected the text")
end)

t.test("what the fuzzer found: no reply without a code, no code describe refuses, no line breaks in fields", function()
  local understood = explain.read("host mx[192.0.2.1] said: hello\n")
  t.eq(understood.attempt.event, "unknown")  -- a reply with no code is no reply
  t.eq(understood.attempt.code, nil)
  local a = explain_parse.parse("to=<a@b.c>, dsn=4.4.2607, status=deferred\n").attempts[1]
  t.eq(a.enhanced, nil)  -- four digits are no RFC 3463 detail
  a = explain_parse.parse("LED=x};{FQDN=mx\nz}").attempts[1]
  t.ok(a.host == nil or not a.host:find("[\r\n]"), "a host with a line break")
  a = explain_parse.parse("Content-Transfer-Encoding: quoted-printable\n\nto=<a=0D@b.c>, status=sent\n").attempts[1]
  t.ok(a == nil or a.recipient == nil or not a.recipient:find("[\r\n]"), "a recipient with a line break")
end)

t.test("Exim's -19: the server broke the protocol", function()
  local u = explain.read("2026-12-02 10:10:12 1vQz2g-000AbC-9z == user@example.com R=dnslookup T=remote_smtp defer (-19) H=mx.example.com [192.0.2.1]: SMTP protocol error\n")
  t.eq(u.attempt.event, "protocol")
  t.eq(explain.offline(u).verdict, "protocol_error")
end)

t.test("a text longer than max_bytes: its end is read, and the result says so", function()
  local line = read("postfix_drop_banner.log")
  local filler = string.rep("Dec  2 10:00:00 mail postfix/qmgr[9]: ABC: removed\n", (explain_parse.max_bytes // 40) + 10)
  local parsed = explain_parse.parse(read("postfix_greylist_rcpt.log") .. filler .. line)
  t.eq(#parsed.attempts, 1)
  t.eq(parsed.attempts[1].event, "lost")  -- the last lines, not the first
  t.ok(parsed.truncated > explain_parse.max_bytes)
  t.eq(explain_parse.parse(line).truncated, nil)
end)

t.test("patterns that could backtrack on hostile text run once each", function()
  -- Each of these took minutes before the patterns were bounded; now they end.
  for _, text in ipairs {
    "host a[b] said: " .. string.rep("(in reply to x", 20000),
    string.rep("(in reply to x ", 20000),
    string.rep("host a[b] said: 550 (in reply to x\n", 5000),
  } do
    t.ok(explain_parse.parse(text))
  end
end)

t.test("enhanced status codes in words (RFC 3463 and later registrations)", function()
  t.eq(enhanced_status.describe("4.4.2"), "temporary failure: bad connection")
  t.eq(enhanced_status.describe("5.1.1"), "permanent failure: bad destination mailbox address (the mailbox does not exist)")
  t.eq(enhanced_status.describe("5.7.25"), "permanent failure: reverse DNS validation failed (the sending IP's PTR)")
  t.eq(enhanced_status.describe("4.7.99"), "temporary failure: other or undefined security status (detail 99 is not registered)")
  t.eq(enhanced_status.describe("3.1.1"), nil)
  t.eq(enhanced_status.describe("4.4"), nil)
  t.eq(enhanced_status.parse("550-5.7.26 text"), "5.7.26")
  t.eq(enhanced_status.parse("250 ok"), nil)
end)

-- The judge weighs the text's finding with a live probe's facts --------------------------------

local function live_facts(over)
  local f = {
    version = 1, target = "192.0.2.1:25", kind = "host", host = "192.0.2.1", port = 25, helo = "probe.example.test",
    hosts = { { host = "192.0.2.1", addresses = { "192.0.2.1" } } },
    sessions = { { purpose = "probe", host = "192.0.2.1", address = "192.0.2.1", port = 25, stage = "done",
                   rcpt_reply = { code = 250, text = "2.1.5 Ok", line = "250 2.1.5 Ok" }, transcript = {}, steps = {} } },
    deciding = 1,
    source = { ip = "198.51.100.7", ptr = { names = { "probe.example.test" }, confirmed = { "probe.example.test" }, ok = true },
               dnsbl = { zones = { "zen.spamhaus.org" }, listed = {}, errors = {} } },
  }
  for key, value in pairs(over or {}) do f[key] = value end
  return f
end

t.test("a drop at the greeting in the log and a listing seen now: dnsbl_listed, with both as evidence", function()
  local understood = explain.read(read("postfix_drop_banner.log"))
  local facts = live_facts()
  facts.source.dnsbl.listed = { { zone = "zen.spamhaus.org", codes = { "127.0.0.2" } } }
  local verdict, reproduces = explain.weigh(understood, facts)
  t.eq(verdict.verdict, "dnsbl_listed")
  t.eq(verdict.stage, "banner")
  local text = table.concat(verdict.evidence, "\n")
  matches(text, "listed on zen%.spamhaus%.org")
  matches(text, "log: .*lost connection with 127%.0%.0%.1%[127%.0%.0%.1%] while receiving the initial server greeting")
  t.eq(reproduces, false)  -- the probe itself got through: the drop did not happen now
end)

t.test("a drop seen again reproduces, though a listing then decides", function()
  local facts = live_facts()
  facts.sessions[1].stage = "banner"
  facts.sessions[1].error = { kind = "closed", stage = "banner", message = "the server closed the connection" }
  facts.source.dnsbl.listed = { { zone = "zen.spamhaus.org", codes = { "127.0.0.2" } } }
  local verdict, reproduces = explain.weigh(explain.read(read("postfix_drop_banner.log")), facts)
  t.eq(verdict.verdict, "dnsbl_listed")
  t.eq(reproduces, true)
end)

t.test("the log's greylisting and a probe that passes now: greylisted, not reproduced", function()
  local verdict, reproduces = explain.weigh(explain.read(read("postfix_greylist_rcpt.log")), live_facts())
  t.eq(verdict.verdict, "greylisted")
  t.eq(reproduces, false)
end)

t.test("the same finding live: reproduced", function()
  local facts = live_facts()
  facts.sessions[1].stage = "banner"
  facts.sessions[1].error = { kind = "closed", stage = "banner", message = "the server closed the connection" }
  local verdict, reproduces = explain.weigh(explain.read(read("postfix_drop_banner.log")), facts)
  t.eq(verdict.verdict, "dropped_before_banner")
  t.eq(reproduces, true)
end)

t.test("a text that decides nothing leaves the verdict to the probe", function()
  local understood = explain.read(read("exchange_socketerror.txt"))
  t.eq(understood.finding, nil)
  matches(understood.undecided, "step where the connection dropped")
  local verdict, reproduces = explain.weigh(understood, live_facts())
  t.eq(verdict.verdict, "ok")
  t.eq(reproduces, nil)
end)

t.test("judge.verdict without facts: the reported finding alone", function()
  local v = judge.verdict(nil, { kind = "slow_server", stage = "banner", evidence = { "log: x" } })
  t.eq(v.verdict, "slow_server")
  t.eq(v.evidence[1], "log: x")
end)

t.test("where the live probe goes: the address and port the sender reached, else the host, else the domain", function()
  t.eq(explain.read(read("postfix_greylist_rcpt.log")).target, "127.0.0.1:39919")
  t.eq(explain.read(read("dsn_postfix_bounce.eml")).target, "mx.reject.example:25")
  t.eq(explain.read(read("exim_refused_111.log")).target, "example.com")
  t.eq(explain.read(read("exim_ratelimit_banner.log")).target, "192.0.2.1:2525")
  t.eq(explain.read(read("postfix_greylist_rcpt.log")).rcpt, "user@greylist.test")
end)

t.run()
