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

t.run()
