-- The dns module against a real DNS server: run by tests/e2e/test_dns.py as
--   smtpsh tests/lua/dns_nsd.lua NSD_PORT SILENT_PORT SMTP_PORT
-- with NSD serving tests/peers/zones, a peer that never answers, and smtp-sink.
local t = dofile("tests/lua/testing.lua")
local nsd, silent, smtp_port = arg[1], arg[2], tonumber(arg[3])
local server = "127.0.0.1:" .. nsd
dns.servers { server, timeout = 2, attempts = 1 }

local function sorted(list)
  local copy = { table.unpack(list) }
  table.sort(copy)
  return copy
end

t.test("records carry name, type, TTL, RDATA and typed fields", function()
  local mx = assert(dns.query("example.test", "MX"))
  t.eq(#mx, 3)
  t.eq(mx.ad, false)
  t.eq(mx.server, server)
  t.eq(mx.tcp, false)
  local first
  for _, record in ipairs(mx) do if record.preference == 10 then first = record end end
  t.eq(first, { name = "example.test", type = "MX", ttl = 300, rdata = "10 mx1.example.test.",
                preference = 10, host = "mx1.example.test" })
  local txt = assert(dns.query("multi.example.test", "TXT"))
  t.eq(txt[1].strings, { "part one ", "part two" })
  t.eq(txt[1].text, "part one part two")
  t.eq(dns.txt("multi.example.test"), { "part one part two" })
  local tlsa = assert(dns.tlsa("mx1.example.test", 25))
  t.eq(tlsa[1].usage, 3)
  t.eq(tlsa[1].selector, 1)
  t.eq(tlsa[1].matching_type, 1)
  t.eq(tlsa[1].data, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
  local soa = assert(dns.query("example.test", "SOA"))
  t.eq(soa[1].minimum, 60)
end)

t.test("a truncated answer comes over TCP, whole", function()
  local big = assert(dns.query("big.example.test", "A"))
  t.eq(#big, 100)
  t.eq(big.tcp, true)
end)

t.test("NXDOMAIN, NODATA, REFUSED, SERVFAIL and timeout", function()
  local none, err = dns.query("nope.example.test", "A")
  t.eq(none, nil)
  t.eq(err.kind, "dns")
  t.eq(err.rcode, "NXDOMAIN")
  t.eq(err.name, "nope.example.test")
  t.eq(err.type, "A")
  t.ok(tostring(err):find("does not exist", 1, true), tostring(err))

  local empty = assert(dns.query("nodata.example.test", "A"))
  t.eq(#empty, 0)
  t.eq(dns.a("nodata.example.test"), {})

  local _, refused = dns.query("www.unknown-zone.invalid", "A")
  t.eq(refused.rcode, "REFUSED")
  local _, servfail = dns.query("x.broken.test", "A")
  t.eq(servfail.rcode, "SERVFAIL")

  dns.servers { "127.0.0.1:" .. silent, timeout = 0.3, attempts = 2 }
  local started = task.now()
  local _, timeout = dns.query("example.test", "A")
  local took = task.now() - started
  dns.servers { server, timeout = 2, attempts = 1 }
  t.eq(timeout.rcode, "timeout")
  t.ok(took >= 0.55 and took < 3, "took " .. took)

  -- A silent first server costs one timeout; the second answers.
  dns.servers { "127.0.0.1:" .. silent, server, timeout = 0.3, attempts = 1 }
  local answered = assert(dns.query("mx2.example.test", "A"))
  dns.servers { server, timeout = 2, attempts = 1 }
  t.eq(answered[1].address, "127.0.0.2")
  t.eq(answered.server, server)
end)

t.test("dns.mx: ordered by preference, ties shuffled, with addresses", function()
  local seen = {}
  for _ = 1, 40 do
    local mx = assert(dns.mx("example.test"))
    t.eq(mx.implicit, false)
    t.eq(mx.null, false)
    t.eq(mx[1].host, "mx1.example.test")
    t.eq(mx[1].preference, 10)
    t.eq(mx[1].addresses, { "127.0.0.1", "::1" })
    t.eq(mx[2].preference, 20)
    t.eq(mx[3].preference, 20)
    t.eq(sorted { mx[2].host, mx[3].host }, { "mx2.example.test", "mx3.example.test" })
    seen[mx[2].host] = true
  end
  t.ok(seen["mx2.example.test"] and seen["mx3.example.test"], "both orders of the tie appear")
end)

t.test("dns.mx: implicit MX, null MX, a CNAME target, a dead target, no domain", function()
  local implicit = assert(dns.mx("implicit.example.test"))
  t.eq(implicit.implicit, true)
  t.eq(#implicit, 1)
  t.eq(implicit[1].host, "implicit.example.test")
  t.eq(implicit[1].addresses, { "127.0.0.1", "::1" })

  local null = assert(dns.mx("nullmx.example.test"))
  t.eq(null.null, true)
  t.eq(#null, 0)

  local alias = assert(dns.mx("cnamemx.example.test"))
  t.eq(alias[1].host, "alias.example.test")
  t.eq(alias[1].canonical, "mx1.example.test")
  t.eq(alias[1].addresses, { "127.0.0.1", "::1" })

  local dead = assert(dns.mx("deadmx.example.test"))
  t.eq(dead[1].addresses, {})
  t.eq(dead[1].error.rcode, "NXDOMAIN")

  local none, err = dns.mx("nope.example.test")
  t.eq(none, nil)
  t.eq(err.rcode, "NXDOMAIN")
  -- NODATA for MX and for the address: nothing to deliver to, not an error.
  local nothing = assert(dns.mx("nodata.example.test"))
  t.eq(#nothing, 0)
  t.eq(nothing.implicit, false)
end)

t.test("PTR and forward-confirmed reverse DNS, IPv4 and IPv6", function()
  t.eq(dns.ptr("127.0.0.1"), { "mx1.example.test" })
  t.eq(dns.ptr("::1"), { "mx1.example.test" })
  local _, err = dns.ptr("127.0.0.4")
  t.eq(err.rcode, "NXDOMAIN")

  local good = assert(dns.fcrdns("127.0.0.1"))
  t.eq(good.ok, true)
  t.eq(good.names, { "mx1.example.test" })
  t.eq(good.confirmed, { "mx1.example.test" })
  t.eq(good.addresses["mx1.example.test"], { "127.0.0.1", "::1" })
  t.eq(assert(dns.fcrdns("::1")).ok, true)

  local liar = assert(dns.fcrdns("127.0.0.3"))
  t.eq(liar.ok, false)
  t.eq(liar.names, { "liar.example.test" })
  t.eq(liar.addresses["liar.example.test"], { "127.0.0.99" })
  t.ok(liar.reason:find("does not resolve back", 1, true) or liar.reason:find("resolves back", 1, true), liar.reason)

  local missing = assert(dns.fcrdns("127.0.0.4"))
  t.eq(missing.ok, false)
  t.eq(missing.names, {})
end)

t.test("DNSBL: listed with codes and reason, clean, IPv6", function()
  local hits = dns.dnsbl("127.0.0.2", { "dnsbl.test", "bl2.test" })
  t.eq(hits[1], { zone = "dnsbl.test", query = "2.0.0.127.dnsbl.test", listed = true,
                  codes = { "127.0.0.2" }, reason = "listed for testing: see https://dnsbl.test/127.0.0.2" })
  t.eq(hits[2].listed, true)
  t.eq(sorted(hits[2].codes), { "127.0.0.10", "127.0.0.11" })
  t.eq(hits[2].reason, nil)
  local clean = dns.dnsbl("127.0.0.9", "dnsbl.test,bl2.test")
  t.eq(clean[1].listed, false)
  t.eq(clean[2].listed, false)
  local v6 = dns.dnsbl("::1", { "dnsbl.test" })
  t.eq(v6[1].listed, true)
  t.eq(v6[1].codes, { "127.0.0.4" })
  local unknown = dns.dnsbl("127.0.0.2", { "not-served.invalid" })
  t.eq(unknown[1].listed, nil)
  t.ok(unknown[1].error:find("REFUSED", 1, true), unknown[1].error)
end)

t.test("SPF, DMARC and MTA-STS records, parsed", function()
  local spf = assert(dns.spf("example.test"))
  t.eq(spf.record, "v=spf1 ip4:127.0.0.0/8 mx include:_spf.example.test -all")
  t.eq(spf.lookups, 3)  -- mx, include, and the included record's a
  t.eq(spf.includes["_spf.example.test"].record, "v=spf1 a ~all")
  t.eq(spf.terms[1].mechanism, "ip4")
  t.eq(assert(dns.spf("example.test", { follow = false })).lookups, 2)
  t.eq(assert(dns.spf("toomany.example.test")).lookups, 22)
  local _, two = dns.spf("twospf.example.test")
  t.eq(two.rcode, "permerror")
  t.ok(tostring(two):find("2 SPF records", 1, true), tostring(two))
  local _, none = dns.spf("implicit.example.test")
  t.eq(none.rcode, "none")

  local dmarc = assert(dns.dmarc("example.test"))
  t.eq(dmarc.tags.p, "reject")
  t.eq(dmarc.tags.pct, "100")
  t.eq(dmarc.name, "_dmarc.example.test")
  t.eq(select(2, dns.dmarc("implicit.example.test")).rcode, "none")

  local sts = assert(dns.mta_sts("example.test"))
  t.eq(sts.tags.id, "20260101T000000")
end)

t.test("answers are cached until dns.cache(false)", function()
  dns.cache(true)
  dns.cache("clear")
  t.eq(assert(dns.query("mx3.example.test", "A")).cached, false)
  t.eq(assert(dns.query("mx3.example.test", "A")).cached, true)
  dns.cache(false)
  t.eq(assert(dns.query("mx3.example.test", "A")).cached, false)
  t.eq(assert(dns.query("mx3.example.test", "A")).cached, false)
  dns.cache(true)
end)

t.test("many look-ups from many tasks at once", function()
  dns.cache(false)
  local tasks = {}
  for i = 1, 200 do
    tasks[i] = task.spawn(function() return dns.query("bench" .. i .. ".example.test", "MX") end)
  end
  for i = 1, 200 do
    local records, err = task.wait(tasks[i])
    t.ok(records and #records == 1 and records[1].host == "mx1.example.test", tostring(err))
  end
  dns.cache(true)
end)

t.test("net.connect and smtp.connect resolve host names through the same servers", function()
  local conn = assert(net.connect("mx1.example.test", smtp_port, { timeout = 5 }))
  t.eq(conn.remote_addr, "127.0.0.1:" .. smtp_port)
  conn:close()
  local s = assert(smtp.connect("mx1.example.test:" .. smtp_port, { timeout = 5 }))
  t.eq(s.banner.code, 220)
  s:quit()
  local none, err = net.connect("nowhere.example.test", smtp_port, { timeout = 5 })
  t.eq(none, nil)
  t.eq(err.kind, "dns")
  t.ok(tostring(err):find("NXDOMAIN", 1, true), tostring(err))
  local _, serr = smtp.connect("nowhere.example.test:" .. smtp_port, { timeout = 5 })
  t.eq(serr.kind, "dns")
  t.eq(serr.stage, "connect")
end)

t.run()
