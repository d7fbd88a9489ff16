-- stdlib/dns.lua and stdlib/cli.lua: what needs no server (tests/e2e/test_dns.py asks NSD).
local t = dofile("tests/lua/testing.lua")
local cli = require "smtpsh.cli"

t.test("SPF records are split into qualified mechanisms and modifiers", function()
  local spf = dns.parse_spf("v=spf1 ip4:192.0.2.0/24 -ip6:2001:db8::/32 a/24 mx:mail.test/28//64 " ..
    "~include:_spf.test ?exists:%{i}.x.test redirect=_r.test exp=explain.test -all")
  t.eq(spf.version, "v=spf1")
  t.eq(#spf.errors, 0)
  t.eq(spf.terms[1], { qualifier = "+", mechanism = "ip4", value = "192.0.2.0", cidr = "/24" })
  t.eq(spf.terms[2], { qualifier = "-", mechanism = "ip6", value = "2001:db8::", cidr = "/32" })
  t.eq(spf.terms[3], { qualifier = "+", mechanism = "a", cidr = "/24" })
  t.eq(spf.terms[4], { qualifier = "+", mechanism = "mx", value = "mail.test", cidr = "/28//64" })
  t.eq(spf.terms[5], { qualifier = "~", mechanism = "include", value = "_spf.test" })
  t.eq(spf.terms[6], { qualifier = "?", mechanism = "exists", value = "%{i}.x.test" })
  t.eq(spf.terms[7], { qualifier = "-", mechanism = "all" })
  t.eq(spf.modifiers, { redirect = "_r.test", exp = "explain.test" })
end)

t.test("SPF mistakes are named, not skipped", function()
  local spf = dns.parse_spf("v=spf2 include:x.test bogus:y -all")
  t.eq(#spf.errors, 2)
  t.ok(spf.errors[1]:find("v=spf1", 1, true), spf.errors[1])
  t.ok(spf.errors[2]:find("bogus:y", 1, true), spf.errors[2])
end)

t.test("tag lists (DMARC, MTA-STS) by name, in order", function()
  local tags, order = dns.parse_tags("v=DMARC1; p=reject;  RUA = mailto:a@test ; pct=50;")
  t.eq(tags, { v = "DMARC1", p = "reject", rua = "mailto:a@test", pct = "50" })
  t.eq(order, { "v", "p", "rua", "pct" })
  t.eq(dns.parse_tags("garbage"), {})
end)

t.test("reverse names and DNSBL labels", function()
  t.eq(dns.reverse_name("192.0.2.10"), "10.2.0.192.in-addr.arpa")
  t.eq(dns.reverse_name("127.0.0.2", true), "2.0.0.127")
  t.eq(dns.reverse_name("::1", true), "1" .. string.rep(".0", 31))
  local none, problem = dns.reverse_name("mx.example")
  t.eq(none, nil)
  t.ok(problem:find("not an IPv4 or IPv6 address", 1, true), problem)
  t.raises(function() dns.ptr("not-an-ip") end, "not an IPv4 or IPv6 address")
  t.raises(function() dns.dnsbl("127.0.0.2", 42) end, "zones must be a list")
  t.raises(function() dns.tlsa("mx.test", 0) end, "port must be an integer")
end)

t.test("bad names are values with kind dns and rcode invalid_name, before any query", function()
  local records, err = dns.query("bad name.test", "A")
  t.eq(records, nil)
  t.eq(err.kind, "dns")
  t.eq(err.rcode, "invalid_name")
  t.ok(tostring(err):find("space", 1, true), tostring(err))
  t.raises(function() dns.query("example.test", "NOPE") end, "unknown record type 'NOPE'")
  -- Reported at the caller's line, not inside stdlib/dns.lua's wrapper.
  local function at_caller() local records = dns.query("example.test", "NOPE"); return records end
  local err = t.raises(at_caller, "unknown record type")
  t.ok(tostring(err):find("dns_test.lua:%d+: ") and not tostring(err):find("stdlib/dns.lua", 1, true),
       tostring(err))
  t.raises(function() dns.query({}) end, "string expected")
end)

t.test("servers are addresses; a name or a bad option raises with the signature", function()
  local before = dns.servers()
  t.raises(function() dns.servers { "dns.example" } end, "is not an IP address")
  t.raises(function() dns.servers { "127.0.0.1", timeout = 0 } end, "timeout must be")
  t.raises(function() dns.servers { "127.0.0.1", attempts = 99 } end, "attempts must be")
  t.eq(dns.servers(), before)  -- a refused change changes nothing
  local set = dns.servers { "127.0.0.1:5353", "[::1]:53", timeout = 1.5, attempts = 3 }
  t.eq(set, { "127.0.0.1:5353", "[::1]:53", timeout = 1.5, attempts = 3 })
  t.eq(dns.servers("127.0.0.2")[1], "127.0.0.2:53")
  t.eq(dns.cache(), true)
  t.eq(dns.cache(false), false)
  t.eq(dns.cache(true), true)
end)

t.test("a query with servers of its own asks them, and the trace sees it", function()
  local dnscore = require "smtpsh.dnscore"
  local original = dns.servers()
  local before = dns.servers { "127.0.0.1:2", timeout = 1, attempts = 1 }
  local seen = {}
  dnscore.trace_sink(function(event) seen[#seen + 1] = event end)
  dnscore.trace(true)
  -- Nothing listens on port 1: the answer says which server was asked.
  local records, err = dns.query("own.example.test", "A", { servers = { "127.0.0.1:1" } })
  dnscore.trace(false)
  dnscore.trace_sink(false)
  t.eq(records, nil)
  t.ok(tostring(err):find("127.0.0.1:1", 1, true), tostring(err))
  t.ok(not tostring(err):find("127.0.0.1:2", 1, true), tostring(err))
  t.eq(#seen, 1)
  t.eq({ seen[1].name, seen[1].rcode }, { "own.example.test", err.rcode })
  t.eq(dns.servers(), before)
  dns.servers(original)
end)

t.test("the option parser: kinds, lists and values", function()
  local options, words = cli.parse({ "example.test", "--json", "--resolver", "127.0.0.1:53,[::1]:53",
    "--timeout=2.5", "--port", "2525" }, { name = "x", usage = "u", options = { port = "port" } })
  t.eq(words, { "example.test" })
  t.eq(options, { json = true, resolver = { "127.0.0.1:53", "[::1]:53" }, timeout = 2.5, port = 2525 })
end)

t.run()
