-- stdlib/diagnose.lua: what needs no server (tests/e2e/test_diagnose.py runs every verdict).
local t = dofile("tests/lua/testing.lua")
local diagnose = require "smtpsh.diagnose"

t.test("targets: an address, a domain, a host with a port, an address literal", function()
  t.eq(diagnose.parse_target("User@Example.COM", {}), { kind = "address", domain = "example.com", rcpt = "User@Example.COM" })
  t.eq(diagnose.parse_target("Example.com.", {}), { kind = "domain", domain = "example.com" })
  t.eq(diagnose.parse_target("mx.example.com:2525", {}), { kind = "host", host = "mx.example.com", port = 2525 })
  t.eq(diagnose.parse_target("[::1]:25", {}), { kind = "host", host = "::1", port = 25 })
  t.eq(diagnose.parse_target("192.0.2.1", { port = 587 }), { kind = "host", host = "192.0.2.1", port = 587 })
  t.eq(diagnose.parse_target("::1", {}), { kind = "host", host = "::1", port = 25 })
  local none, problem = diagnose.parse_target("mx:99999", {})
  t.eq(none, nil)
  t.ok(problem:find("port '99999' is not a number from 1 to 65535", 1, true), problem)
  -- One HOST[:PORT] parser everywhere: a broken target is refused, never looked up in DNS.
  local _, unclosed = diagnose.parse_target("[::1", {})
  t.ok(unclosed:find("missing ']'", 1, true), unclosed)
  local _, letters = diagnose.parse_target("127.0.0.1:abc", {})
  t.ok(letters:find("port 'abc'", 1, true), letters)
  t.eq(select(2, diagnose.parse_target("", {})), "empty TARGET")
  t.ok(select(2, diagnose.parse_target("a..b", {})):find("empty label", 1, true))
end)

t.test("the vocabulary: seventeen verdicts, each with its transience and advice", function()
  local names = {}
  for name, info in pairs(diagnose.verdicts) do
    names[#names + 1] = name
    t.eq(type(info[1]), "boolean", name)
    t.ok(type(info[2]) == "string" and #info[2] > 40, name)
  end
  table.sort(names)
  t.eq(names, { "connect_refused", "connect_timeout", "dns_failure", "dnsbl_listed",
                "dropped_before_banner", "dropped_mid_session", "greylisted", "no_mx", "ok",
                "protocol_error", "ptr_mismatch", "rate_limited", "rejected", "server_busy", "slow_server",
                "tls_handshake_failed", "tls_version_mismatch" })
  t.eq(diagnose.verdicts.greylisted[1], true)
  t.eq(diagnose.verdicts.tls_version_mismatch[1], false)
end)

t.test("a target that cannot be diagnosed is a value, not a raise", function()
  local none, err = diagnose.run("bad name.test", {})
  t.eq(none, nil)
  t.ok(err:find("space", 1, true), err)
end)

t.test("behind NAT: private addresses, and the public one a server echoes", function()
  local gather = require "smtpsh.gather"
  for _, ip in ipairs { "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.20", "100.64.0.1", "169.254.1.1",
                        "fd00::1", "fc12::5", "fe80::1" } do
    t.ok(gather.is_private(ip), ip)
  end
  for _, ip in ipairs { "127.0.0.1", "172.32.0.1", "100.128.0.1", "203.0.113.5", "2001:db8::1", "::1" } do
    t.ok(not gather.is_private(ip), ip)
  end
  local exim = { ehlo = { text = "mx.example.org Hello me.example [203.0.113.5]\nSIZE 52428800" } }
  t.eq(gather.echoed_address(exim), "203.0.113.5")
  local exchange = { banner = { text = "mx ready" }, ehlo = { text = "mx Hello [IPv6:2001:db8::5]" } }
  t.eq(gather.echoed_address(exchange), "2001:db8::5")
  -- An echo of a private address (a proxy in front) teaches nothing.
  t.eq(gather.echoed_address({ ehlo = { text = "mx Hello [10.0.0.5]" } }), nil)
  t.eq(gather.echoed_address({ ehlo = { text = "mx Hello [999.1.1.1]" } }), nil)
end)

t.run()
