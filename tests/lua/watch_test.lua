-- stdlib/watch.lua and its parts: the HTTP request reader (fed line by line, and over a real
-- loopback socket with each request split at every byte offset), the configuration checks, the
-- metrics made from records, certificate times, and the schedule (intervals kept, never two
-- probes of a target at once, overruns counted, a raising probe is a failed probe).
local t = dofile("tests/lua/testing.lua")
local http_server = require "smtpsh.http_server"
local watch = require "smtpsh.watch"
local watch_probe = require "smtpsh.watch_probe"
local watch_metrics = require "smtpsh.watch_metrics"
local watch_page = require "smtpsh.watch_page"
local net = require "smtpsh.net"
local task = require "smtpsh.task"

-- A line source over a list, as conn:receive("l") would give them.
local function lines_of(list)
  local i = 0
  return function()
    i = i + 1
    if list[i] == nil then return nil, "closed" end
    return list[i]
  end
end

t.test("a request head: method, path, query decoded, headers by lower-case name", function()
  local request = assert(http_server.read_request(lines_of {
    "GET /last?target=a%40b.test&probe=tls&x=1+2 HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json", "",
  }))
  t.eq(request.method, "GET")
  t.eq(request.path, "/last")
  t.eq(request.query, { target = "a@b.test", probe = "tls", x = "1 2" })
  t.eq(request.headers.accept, "application/json")
end)

t.test("each malformed request gets its own status", function()
  local function status(list)
    local request, code, reason = http_server.read_request(lines_of(list))
    t.eq(request, nil)
    t.ok(type(reason) == "string" and #reason > 0)
    return code
  end
  t.eq(status { "garbage" }, 400)
  t.eq(status { "GET /x HTTP/2.0", "" }, 505)
  t.eq(status { "GET " .. string.rep("a", 3000) .. " HTTP/1.1", "Host: x", "" }, 414)
  t.eq(status { "GET /x HTTP/1.1", "" }, 400)                       -- no Host in HTTP/1.1
  t.eq(status { "GET /x HTTP/1.1", "Host: a", "Host: b", "" }, 400)
  t.eq(status { "GET /x HTTP/1.1", "Host: a", "Content-Length: 5", "" }, 400)
  t.eq(status { "GET /x HTTP/1.1", "Host: a", "bad header line", "" }, 400)
  t.eq(status { "GET /x?a=%zz HTTP/1.1", "Host: a", "" }, 400)
  t.eq(status { "GET http://x/ HTTP/1.1", "Host: a", "" }, 400)
  t.eq(status { "GET /x HTTP/1.1", "Host: a" }, 400)               -- ended before the blank line
  local many = { "GET /x HTTP/1.1", "Host: a" }
  for i = 1, 70 do many[#many + 1] = "X-" .. i .. ": y" end
  many[#many + 1] = ""
  t.eq(status(many), 431)
  t.eq(status { "GET /x HTTP/1.1", "Host: a", "X-Big: " .. string.rep("y", 9000), "" }, 431)
  local timed_out = http_server.read_request(function() return nil, "timeout" end)
  t.eq(timed_out, nil)
  t.eq(select(2, http_server.read_request(function() return nil, "timeout" end)), 408)
end)

t.test("a response: status line, sorted headers, Content-Length, Connection: close; no header injection", function()
  t.eq(http_server.response(200, "hi\n", { ["X-B"] = "2", ["Content-Type"] = "text/html" }),
    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-B: 2\r\nContent-Length: 3\r\nConnection: close\r\n" ..
    "X-Content-Type-Options: nosniff\r\n\r\nhi\n")
  local head = http_server.response(404, "gone", nil, true)
  t.ok(head:find("Content-Length: 4\r\n", 1, true) and head:sub(-4) == "\r\n\r\n", "HEAD: the length, no body")
  t.raises(function() http_server.response(200, "", { ["X"] = "a\r\nSet-Cookie: x" }) end, "CR or LF")
end)

t.test("over a real socket: each request split at every byte offset is read the same", function()
  local seen = {}
  local srv = assert(http_server.listen("127.0.0.1", 0, function(request)
    seen[#seen + 1] = request.path .. "?" .. (request.query.target or "")
    return 200, request.query.target or "", {}
  end))
  local request = "GET /probe?target=mx%2Eexample.test HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
  for cut = 1, #request - 1 do
    local c = assert(net.connect("127.0.0.1", srv.port, { timeout = 5 }))
    c:settimeout(5)
    assert(c:send(request:sub(1, cut)))
    task.sleep(0.002)
    assert(c:send(request:sub(cut + 1)))
    local status = assert(c:receive("l"))
    t.eq(status, "HTTP/1.1 200 OK", "cut at " .. cut)
    local body
    while true do
      local line = c:receive("l")
      if line == "" then break end
      t.ok(line, "headers end at cut " .. cut)
    end
    body = c:receive(#"mx.example.test")
    t.eq(body, "mx.example.test", "cut at " .. cut)
    c:close()
  end
  t.eq(#seen, #request - 1)
  srv:close()
end)

t.test("over a real socket: POST is refused with 405 and Allow, a silent client gets 408", function()
  local srv = assert(http_server.listen("127.0.0.1", 0, function() return 200, "never", {} end,
                                        { request_timeout = 0.3 }))
  local c = assert(net.connect("127.0.0.1", srv.port, { timeout = 5 }))
  c:settimeout(5)
  c:send("POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
  t.eq(c:receive("l"), "HTTP/1.1 405 Method Not Allowed")
  local allow
  for _ = 1, 20 do
    local line = c:receive("l")
    if not line or line == "" then break end
    allow = allow or line:match("^Allow: (.*)$")
  end
  t.eq(allow, "GET, HEAD")
  c:close()
  local silent = assert(net.connect("127.0.0.1", srv.port, { timeout = 5 }))
  silent:settimeout(5)
  local started = task.now()
  t.eq(silent:receive("l"), "HTTP/1.1 408 Request Timeout")
  t.ok(task.now() - started < 3, "answered at the deadline, not later")
  silent:close()
  srv:close()
end)

t.test("certificate times: RFC 3339 UTC to Unix time, as timegm", function()
  t.eq(watch_probe.utc_seconds("1970-01-01T00:00:00Z"), 0)
  t.eq(watch_probe.utc_seconds("2000-03-01T00:00:00Z"), 951868800)
  t.eq(watch_probe.utc_seconds("2024-02-29T23:59:59Z"), 1709251199)
  t.eq(watch_probe.utc_seconds("2026-01-31T12:00:00Z"), 1769860800)
  t.eq(watch_probe.utc_seconds("1999-12-31T23:59:59Z"), 946684799)
  t.eq(watch_probe.utc_seconds("31/01/2026"), nil)
  t.eq(watch_probe.utc_seconds("2026-13-01T00:00:00Z"), nil)
end)

t.test("configuration mistakes are one line each", function()
  local function problem(config)
    local targets, why = watch.configure(config)
    t.eq(targets, nil)
    t.ok(type(why) == "string" and not why:find("\n"), tostring(why))
    return why
  end
  t.ok(problem({}):find("no targets"))
  t.ok(problem({ targets = { "a.test" }, every = -1 }):find("every must be"))
  t.ok(problem({ targets = { "a.test" }, jitter = 1 }):find("jitter"))
  t.ok(problem({ targets = { { target = "a.test", every = 0.5 } } }):find("every must be 1 s or more"))
  t.ok(problem({ targets = { { target = "a.test", probe = "nope" } } }):find('unknown probe "nope"'))
  t.ok(problem({ targets = { "a.test", "a.test" } }):find("listed twice"))
  t.ok(problem({ targets = { "bad target" } }):find("space"))
  t.ok(problem({ targets = { { target = "not-an-address", probe = "verify" } } }):find("no address"))
  t.ok(problem({ targets = { "a.test" }, probes = { tls = function() end } }):find("built%-in"))
  local targets, settings = assert(watch.configure { targets = { "a.test", { target = "a.test", probe = "tls", every = 5 } } })
  t.eq(#targets, 2)
  t.eq(targets[1].every, 60)
  t.eq(targets[1].probe, "diagnose")
  t.eq(targets[2].every, 5)
  t.eq(settings.max_in_flight, 256)
end)

-- A record as watch_probe.run makes them.
local function record(fields)
  local r = { target = "mx.test:25", probe = "diagnose", started = 1700000000, duration = 0.5, success = false,
              result = "failure", steps = {}, replies = {}, tls = {}, transcript = {} }
  for key, value in pairs(fields) do r[key] = value end
  return r
end

local function series(text, name)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, #name) == name and line:sub(#name + 1, #name + 1):match("[{ ]") then out[#out + 1] = line end
  end
  return out
end

t.test("metrics from a record: exactly one verdict is 1, replies counted, TLS version replaced", function()
  local m = watch_metrics.new("0.0-test")
  m:announce("mx.test:25", "diagnose")
  m:observe(record { verdict = "rate_limited", replies = { { stage = "banner", code = "421", enhanced = "4.7.0" } },
                     steps = { { name = "banner", seconds = 0.2 } }, tls = { version = "TLSv1.2", not_after = 1800000000 } })
  m:observe(record { verdict = "ok", success = true, result = "success",
                     replies = { { stage = "banner", code = "421", enhanced = "4.7.0" } }, tls = { version = "TLSv1.3" } })
  local text = m:render({ in_flight = 0, targets = 1 })
  local ones = {}
  for _, line in ipairs(series(text, "smtpsh_verdict")) do
    if line:match(" 1$") then ones[#ones + 1] = line end
  end
  t.eq(ones, { 'smtpsh_verdict{target="mx.test:25",verdict="ok"} 1' })
  t.eq(#series(text, "smtpsh_verdict"), #watch_metrics.verdicts)
  t.eq(#watch_metrics.verdicts, 17)
  t.ok(text:find('smtpsh_replies_total{target="mx.test:25",stage="banner",code="421",enhanced="4.7.0"} 2\n', 1, true), text)
  t.eq(series(text, "smtpsh_tls_version_info"), { 'smtpsh_tls_version_info{target="mx.test:25",version="TLSv1.3"} 1' })
  t.ok(text:find('smtpsh_cert_expiry_timestamp_seconds{target="mx.test:25"} 1800000000\n', 1, true))
  t.ok(text:find('smtpsh_probes_total{target="mx.test:25",probe="diagnose",result="error"} 0\n', 1, true),
    "announced at 0 before any error")
  t.ok(text:find('smtpsh_probes_total{target="mx.test:25",probe="diagnose",result="success"} 1\n', 1, true))
  t.ok(text:find('smtpsh_step_duration_seconds_count{target="mx.test:25",step="banner"} 1\n', 1, true))
  t.ok(text:find('smtpsh_build_info{version="0.0-test"} 1\n', 1, true))
  t.ok(text:find("\nprocess_resident_memory_bytes %d+\n"), "the process's memory")
end)

t.test("a target's distinct reply series are capped; the rest count as enhanced=\"other\"", function()
  local m = watch_metrics.new()
  local replies = {}
  for i = 1, watch_metrics.max_reply_series + 10 do
    replies[i] = { stage = "rcpt", code = "550", enhanced = "5.1." .. i }
  end
  m:observe(record { replies = replies, verdict = "rejected" })
  local text = m:render()
  t.eq(#series(text, "smtpsh_replies_total"), watch_metrics.max_reply_series + 1)
  t.ok(text:find('enhanced="other"} 10\n', 1, true), text)
end)

t.test("DNSBL listings per zone of the source address", function()
  local m = watch_metrics.new()
  m:observe(record { verdict = "dnsbl_listed", dnsbl = { ip = "192.0.2.7", zones = { "a.test", "b.test" },
                                                          listed = { ["b.test"] = true } } })
  t.eq(series(m:render(), "smtpsh_dnsbl_listed"), {
    'smtpsh_dnsbl_listed{ip="192.0.2.7",zone="a.test"} 0', 'smtpsh_dnsbl_listed{ip="192.0.2.7",zone="b.test"} 1' })
end)

t.test("a raising probe function is a failed probe with its error, never a raise", function()
  local r = watch_probe.run({ target = "x.test", probe = function() error("no luck today") end, name = "custom" })
  t.eq(r.result, "error")
  t.eq(r.success, false)
  t.ok(r.error:find("no luck today"), r.error)
  local bad = watch_probe.run({ target = "x.test", probe = function() return 42 end, name = "custom" })
  t.eq(bad.result, "error")
  t.ok(bad.error:find("returned a number"), bad.error)
end)

t.test("the schedule: intervals kept, never two probes of a target at once, overruns counted", function()
  local running, most, calls, slow_calls = 0, 0, 0, 0
  local w = assert(watch.new {
    every = 1, jitter = 0,
    targets = {
      { target = "fast.test", probe = function()
        calls = calls + 1
        running = running + 1
        most = math.max(most, running)
        task.sleep(0.05)
        running = running - 1
        return { success = true, verdict = "ok" }
      end, name = "fast" },
      { target = "slow.test", probe = function()
        slow_calls = slow_calls + 1
        task.sleep(2.2)
        return { success = false, verdict = "slow_server" }
      end, name = "slow" },
    },
  })
  w:start()
  -- Beside the schedule, /probe-style runs of the fast target: they wait their turn.
  local extra = task.spawn(function()
    task.sleep(0.2)
    for _ = 1, 3 do w:probe(w.targets[1]) end
  end)
  task.sleep(4.6)
  w:stop()
  task.wait(extra)
  t.eq(most, 1, "never two probes of one target at once")
  local report = w:schedule_report()
  t.ok(report[1].runs >= 4 and report[1].runs <= 6, "fast runs: " .. report[1].runs)
  t.ok(math.abs(report[1].mean_interval - 1) < 0.2, "mean interval " .. tostring(report[1].mean_interval))
  t.eq(report[1].overruns, 0)
  t.ok(report[2].overruns >= 2, "slow overruns: " .. report[2].overruns)
  t.ok(slow_calls <= 3, "the slow target was not probed again while it ran: " .. slow_calls)
  local text = w:metrics_text()
  t.ok(text:find('smtpsh_watch_overruns_total{target="slow.test"} [2-9]'), "overruns in the metrics")
  t.ok(text:find('smtpsh_verdict{target="slow.test",verdict="slow_server"} 1', 1, true) or slow_calls < 2)
  t.ok(w:status_html():find('data-target="fast.test"', 1, true))
end)

-- The three built-in probes against scenario servers in this process (loopback only; no DNS:
-- HOST:PORT targets, an address literal for verify).
t.test("built-in probes: diagnose, tls and verify give records with replies, steps and TLS facts", function()
  local server = require "smtpsh.server"
  local dns = require "smtpsh.dns"
  dns.servers { "127.0.0.1:1" }  -- nothing leaves loopback: the source's PTR look-up fails at once
  local good = assert(server.listen { port = 0, hostname = "mx.good.test", tls = { self_signed = "mx.good.test" },
    on_rcpt = function(_, to) if to:find("^nobody@") then return "550 5.1.1 <" .. to .. ">: no such user" end end })
  local busy = assert(server.listen { port = 0, hostname = "mx.busy.test",
    on_connect = function() return "421 4.3.2 mx.busy.test too busy" end })
  local old = assert(server.listen { port = 0, hostname = "mx.old.test", tls = { self_signed = "mx.old.test",
    min = "tls1", max = "tls1.1" } })
  local options = { timeout = 5, dnsbl = {}, sessions = 1 }
  local ok = watch_probe.run { target = "127.0.0.1:" .. good.port, probe = "diagnose", options = options }
  t.eq(ok.result, "success", ok.summary)
  t.eq(ok.verdict, "ok")
  local stages = {}
  for _, step in ipairs(ok.steps) do stages[#stages + 1] = step.name end
  t.eq(stages, { "connect", "banner", "ehlo", "starttls", "mail", "rcpt" })
  t.eq(ok.tls.version, "TLSv1.3")
  t.ok(ok.tls.not_after and ok.tls.not_after > os.time(), "the certificate's expiry")
  t.ok(ok.text:find("verdict: ok", 1, true), ok.text)

  local refused = watch_probe.run { target = "127.0.0.1:" .. busy.port, probe = "diagnose", options = options }
  t.eq(refused.verdict, "server_busy")
  t.eq(refused.result, "failure")
  t.eq(refused.replies[1], { stage = "banner", code = "421", enhanced = "4.3.2" })

  local tls = watch_probe.run { target = "127.0.0.1:" .. good.port, probe = "tls", options = options }
  t.eq(tls.result, "success", tls.summary)
  t.eq(tls.tls.version, "TLSv1.3")
  local mismatch = watch_probe.run { target = "127.0.0.1:" .. old.port, probe = "tls", options = options }
  t.eq(mismatch.verdict, "tls_version_mismatch", mismatch.summary)
  t.eq(mismatch.tls.failed, true)

  local verify_options = { timeout = 5, port = good.port }
  local canary = watch_probe.run { target = "someone@[127.0.0.1]", probe = "verify", options = verify_options }
  t.eq(canary.result, "success", canary.summary)
  local gone = watch_probe.run { target = "nobody@[127.0.0.1]", probe = "verify", options = verify_options }
  t.eq(gone.result, "failure", gone.summary)
  t.eq(gone.replies[1], { stage = "rcpt", code = "550", enhanced = "5.1.1" })
  good:close()
  busy:close()
  old:close()
end)

t.test("the status page escapes what a server said", function()
  local html = watch_page.status({ { target = "<x>.test", probe = "diagnose", every = 60,
    record = record { target = "<x>.test", verdict = "rejected", summary = '550 "no" <script>' } } }, { now = 1700000100 })
  t.ok(not html:find("<script>", 1, true), "no markup from a reply")
  t.ok(html:find("&lt;script&gt;", 1, true))
  t.ok(html:find("1 min ago", 1, true))
end)

t.run()
