-- s:starttls and implicit TLS against real servers: run by tests/e2e/test_tls.py as
--   smtpsh tests/lua/tls_api.lua CERTS_DIR STARTTLS_PORT IMPLICIT_PORT GARBAGE_PORT
--          CLOSE_PORT SILENT_PORT REFUSE_PORT
-- (aiosmtpd with the test CA's mx1 certificate, and tests/peers/tls_peer.py's bad servers).
local t = dofile("tests/lua/testing.lua")
local certs = arg[1]
local port = { starttls = arg[2], implicit = arg[3], garbage = arg[4], close = arg[5],
               silent = arg[6], refuse = arg[7] }
local ca = certs .. "/ca.pem"
local spki = assert(io.open(certs .. "/mx1.spki.sha256")):read("a")

local function session(which)
  local s = assert(smtp.connect("127.0.0.1:" .. port[which], { timeout = 5, helo = "probe.test" }))
  assert(s:ehlo())
  return s
end

t.test("STARTTLS: the handshake, the certificate, and EHLO again", function()
  local s = session("starttls")
  t.eq(s.caps.STARTTLS ~= nil, true)
  t.eq(s.tls, nil)
  local info = assert(s:starttls { ca_file = ca, verify = "peer" })
  t.eq(info.version, "TLSv1.3")
  t.ok(#info.cipher > 0, info.cipher)
  t.eq(info.verified, true)
  t.eq(info.verify_result, "ok")
  t.eq(info.name, "127.0.0.1")
  t.eq(info.name_matches, true)
  local leaf = info.chain[1]
  t.eq(leaf.subject, "CN=mx1.example.test")
  t.eq(leaf.issuer, "CN=smtpsh test CA")
  t.eq(leaf.names, { "mx1.example.test", "localhost", "127.0.0.1" })
  t.eq(leaf.spki_sha256, spki)
  t.ok(leaf.days_left > 800 and leaf.days_left <= 825, leaf.days_left)
  t.ok(leaf.sha256:match("^%x%x:") and #leaf.sha256 == 95, leaf.sha256)
  t.eq(leaf.key, "RSA 2048")
  -- RFC 3207: the EHLO after TLS is new; aiosmtpd offers AUTH only now, and no STARTTLS.
  t.eq(s.caps.STARTTLS, nil)
  t.ok(s.caps.AUTH ~= nil, "AUTH after TLS")
  t.eq(s.tls.version, "TLSv1.3")
  t.eq(assert(s:mail("a@example.test")).code, 250)
  local lines = {}
  for _, e in ipairs(s.transcript) do lines[#lines + 1] = e.dir .. " " .. e.line end
  local text = table.concat(lines, "\n")
  t.ok(text:find("! TLS TLSv1.3", 1, true), text)
  s:quit()
end)

t.test("a plain net.conn switches to TLS with conn:starttls", function()
  local conn = assert(net.connect("127.0.0.1", tonumber(port.starttls), { timeout = 5 }))
  t.ok(assert(conn:receive("l")):match("^220 "), "greeting")
  assert(conn:send("EHLO probe.test\r\n"))
  repeat local line = assert(conn:receive("l")) until line:match("^250 ")
  assert(conn:send("STARTTLS\r\n"))
  t.ok(assert(conn:receive("l")):match("^220 "), "ready for TLS")
  local info = assert(conn:starttls { ca_file = ca, verify = "peer", sni = "mx1.example.test" })
  t.eq(info.version, "TLSv1.3")
  t.eq(info.name_matches, true)
  assert(conn:send("NOOP\r\n"))
  t.ok(assert(conn:receive("l")):match("^250"), "NOOP over TLS")
  conn:close()
end)

t.test("versions and ciphers are pinned as asked", function()
  local s = session("starttls")
  local info = assert(s:starttls { max = "tls1.2", ciphers = "ECDHE-RSA-AES128-GCM-SHA256" })
  t.eq(info.version, "TLSv1.2")
  t.eq(info.cipher, "ECDHE-RSA-AES128-GCM-SHA256")
  s:quit()
  s = session("starttls")
  info = assert(s:starttls { min = "tls1.3", ciphersuites = "TLS_CHACHA20_POLY1305_SHA256" })
  t.eq(info.cipher, "TLS_CHACHA20_POLY1305_SHA256")
  s:quit()
  -- The server (Python's defaults on Debian) refuses TLS 1.0 and 1.1 with an alert.
  s = session("starttls")
  local none, err = s:starttls { min = "tls1", max = "tls1.1" }
  t.eq(none, nil)
  t.eq(err.kind, "tls")
  t.eq(err.stage, "starttls")
  t.eq(err.reason, "alert")
  t.eq(s.closed, true)
end)

t.test("verify = peer fails on an unknown CA and on a wrong name; none reports it", function()
  local s = session("starttls")
  local _, err = s:starttls { verify = "peer" }
  t.eq(err.reason, "verify")
  t.ok(tostring(err):find("did not verify", 1, true), tostring(err))
  s = session("starttls")
  _, err = s:starttls { verify = "peer", ca_file = ca, sni = "other.example.test" }
  t.eq(err.reason, "verify")
  t.ok(tostring(err):find("hostname mismatch", 1, true), tostring(err))
  s = session("starttls")
  local info = assert(s:starttls { sni = "other.example.test", ca_file = ca })
  t.eq(info.verified, false)
  t.eq(info.name_matches, false)
  t.eq(info.verify_result, "hostname mismatch")
  s:quit()
end)

t.test("DANE: a matching TLSA record verifies, a wrong one fails", function()
  local good = { { usage = 3, selector = 1, matching_type = 1, data = spki } }
  local s = session("starttls")
  local info = assert(s:starttls { verify = "dane", tlsa = good })
  t.eq(info.dane.matched, true)
  t.eq(info.dane.record, "3 1 1 " .. spki)
  t.eq(info.dane.dnssec, false)
  s:quit()
  local bad = { { usage = 3, selector = 1, matching_type = 1, data = string.rep("00", 32) } }
  s = session("starttls")
  local none, err = s:starttls { verify = "dane", tlsa = bad }
  t.eq(none, nil)
  t.eq(err.reason, "verify")
  s = session("starttls")
  info = assert(s:starttls { tlsa = bad })  -- verify = none: reported, not enforced
  t.eq(info.dane.matched, false)
  s:quit()
end)

t.test("implicit TLS from the first byte", function()
  local s = assert(smtp.connect("127.0.0.1:" .. port.implicit, { tls = "implicit", ca_file = ca, verify = "peer", timeout = 5 }))
  t.eq(s.banner.code, 220)
  t.eq(s.tls.version, "TLSv1.3")
  t.eq(s.tls.verified, true)
  assert(s:ehlo())
  s:quit()
  -- Implicit TLS against a plain SMTP port: the server's banner is not TLS.
  local none, err = smtp.connect("127.0.0.1:" .. port.starttls, { tls = "implicit", timeout = 5 })
  t.eq(none, nil)
  t.eq(err.kind, "tls")
  t.eq(err.stage, "connect")
  t.eq(err.reason, "not_tls")
end)

t.test("servers that break STARTTLS: garbage, a close, silence, a refusal", function()
  local _, err = session("garbage"):starttls()
  t.eq(err.kind, "tls")
  t.eq(err.reason, "not_tls")
  t.ok(tostring(err):find("not TLS", 1, true), tostring(err))

  _, err = session("close"):starttls()
  t.eq(err.kind, "tls")
  t.eq(err.reason, "closed")
  t.ok(tostring(err):find("before answering the ClientHello", 1, true), tostring(err))

  local s = assert(smtp.connect("127.0.0.1:" .. port.silent, { timeout = 1 }))
  assert(s:ehlo())
  local started = task.now()
  _, err = s:starttls()
  t.eq(err.kind, "timeout")
  t.eq(err.reason, "timeout")
  t.ok(tostring(err):find("never answered", 1, true), tostring(err))
  t.ok(task.now() - started < 3, "bounded by the timeout")

  _, err = session("refuse"):starttls()
  t.eq(err.kind, "reply")
  t.eq(err.stage, "starttls")
  t.eq(err.reply.code, 454)
end)

t.test("bad TLS options raise before anything is sent", function()
  local s = session("starttls")
  t.raises(function() s:starttls { min = "tls9" } end, "min must be")
  t.raises(function() s:starttls { verify = "always" } end, "verify must be")
  t.raises(function() s:starttls { verify = "dane", tlsa = {} } end, "needs TLSA records")
  t.raises(function() s:starttls { tlsa = { { usage = 3 } } } end, "needs usage, selector")
  t.raises(function() s:starttls { ciphers = "NO-SUCH-CIPHER" } end, "no TLS cipher matches")
  t.raises(function() s:starttls { min = "tls1.3", max = "tls1.2" } end, "is above max version")
  -- Nothing was sent: the session still works in plain text.
  t.eq(assert(s:noop()).code, 250)
  s:quit()
end)

t.run()
