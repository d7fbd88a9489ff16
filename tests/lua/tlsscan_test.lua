-- stdlib/tlsscan.lua against scenario servers in this process (stdlib/server.lua):
-- tests/e2e/test_tls.py runs `smtpsh tls` on top of it against independent peers.
local t = dofile("tests/lua/testing.lua")
local server = require "smtpsh.server"
local tlsscan = require "smtpsh.tlsscan"

local opts = { timeout = 5, helo = "tlsscan.test" }

local function listen(spec)
  local srv = assert(server.listen(spec))
  return srv, "127.0.0.1:" .. srv.port
end

t.test("a TLS 1.0/1.1-only server: two accepted, two refused, the newest accepted is best", function()
  local srv, target = listen { hostname = "mx.old.test", tls = { self_signed = "mx.old.test", min = "tls1", max = "tls1.1" } }
  local scan = tlsscan.versions(target, opts)
  srv:close()
  t.eq(scan.reached, true)
  t.eq(scan.never_reached, nil)
  t.eq(scan.accepted, { "tls1", "tls1.1" })
  t.eq(#scan.entries, 4)
  local first, second, third = scan.entries[1], scan.entries[2], scan.entries[3]
  t.eq({ first.version, first.label, first.accepted, first.negotiated }, { "tls1", "TLS 1.0", true, "TLSv1" })
  t.ok(type(first.cipher) == "string" and first.reason == nil, first.cipher)
  t.eq({ second.version, second.negotiated }, { "tls1.1", "TLSv1.1" })
  t.eq({ third.version, third.label, third.accepted, third.reason }, { "tls1.2", "TLS 1.2", false, "version" })
  t.ok(third.error:find("TLS handshake failed", 1, true), third.error)
  t.eq(scan.entries[4].accepted, false)
  -- The certificate is known although every modern handshake fails.
  t.eq(scan.best.version, "TLSv1.1")
  t.eq(scan.best.chain[1].subject, "CN=mx.old.test")
  t.eq(scan.best.chain[1].names, { "mx.old.test" })
end)

t.test("a modern server: TLS 1.2 and 1.3; best is TLS 1.3", function()
  local srv, target = listen { tls = { self_signed = "mx.new.test" } }
  local scan = tlsscan.versions(target, opts)
  srv:close()
  t.eq(scan.accepted, { "tls1.2", "tls1.3" })
  t.eq(scan.best.version, "TLSv1.3")
  t.eq(scan.entries[1].accepted, false)
  t.ok(scan.entries[1].reason, "a refused version has a reason")
end)

t.test("a 421 greeting: TLS never reached, no version listed", function()
  local srv, target = listen { tls = { self_signed = "mx.busy.test" },
                               on_connect = function() return "421 4.3.2 too busy" end }
  local scan = tlsscan.versions(target, opts)
  srv:close()
  t.eq(scan.reached, false)
  t.eq(scan.entries, {})
  t.eq(scan.accepted, {})
  t.eq(scan.best, nil)
  t.eq({ scan.never_reached.stage, scan.never_reached.kind, scan.never_reached.code }, { "banner", "reply", 421 })
  t.ok(scan.never_reached.message:find("421 4.3.2 too busy", 1, true), scan.never_reached.message)
end)

t.test("a refused connection, no STARTTLS, STARTTLS refused: never reached", function()
  local closed, refused_target = listen {}
  closed:close()
  local scan = tlsscan.versions(refused_target, opts)
  t.eq({ scan.reached, #scan.entries, scan.never_reached.stage, scan.never_reached.kind },
       { false, 0, "connect", "refused" })

  local plain, plain_target = listen {}
  scan = tlsscan.versions(plain_target, opts)
  plain:close()
  t.eq({ #scan.entries, scan.never_reached.kind, scan.never_reached.stage }, { 0, "no_starttls", "ehlo" })
  t.ok(scan.never_reached.message:find("does not offer STARTTLS", 1, true), scan.never_reached.message)

  local refusing, refusing_target = listen { tls = { self_signed = "mx.refuse.test" },
                                             on_starttls = function() return "454 4.7.0 TLS not available" end }
  scan = tlsscan.versions(refusing_target, opts)
  refusing:close()
  t.eq({ #scan.entries, scan.never_reached.kind, scan.never_reached.stage, scan.never_reached.code },
       { 0, "reply", "starttls", 454 })
end)

t.test("a server that starts refusing half-way: the scan stops, the tried versions stay", function()
  local srv, target
  srv, target = listen { tls = { self_signed = "mx.half.test" },
    on_connect = function(s) if s.server.sessions > 2 then return "421 4.7.0 too many connections" end end }
  local scan = tlsscan.versions(target, opts)
  srv:close()
  t.eq(scan.reached, true)
  t.eq(scan.never_reached, nil)
  t.eq(#scan.entries, 2)
  t.eq({ scan.stopped.version, scan.stopped.stage, scan.stopped.code }, { "tls1.2", "banner", 421 })
end)

t.test("handshake: one connection, the TLS options given, and implicit TLS", function()
  local srv, target = listen { tls = { self_signed = "mx.one.test" } }
  local info = assert(tlsscan.handshake(target, opts, { min = "tls1.2", max = "tls1.2" }))
  t.eq(info.version, "TLSv1.2")
  t.eq(info.name, "127.0.0.1")  -- an address target: checked against the IP names
  local unnamed = assert(tlsscan.handshake(target, { timeout = 5, sni = false }))
  t.eq(unnamed.name, nil)
  local none, err = tlsscan.handshake(target, opts, { min = "tls1", max = "tls1" })
  t.eq(none, nil)
  t.eq(err.kind, "tls")
  t.ok(err.reason, "a handshake failure has a reason")
  local implicit = tlsscan.versions(target, { timeout = 5, implicit = true })
  srv:close()
  -- Not a TLS server from the first byte: every handshake is tried and fails.
  t.eq(implicit.reached, true)
  t.eq(implicit.accepted, {})
end)

t.run()
