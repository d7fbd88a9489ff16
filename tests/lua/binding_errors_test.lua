-- Every binding's error paths: bad arguments, and tables whose metamethods raise while a
-- binding reads them. Each must raise a clear error (or return nil, err) and, in the
-- sanitizer build (LeakSanitizer at exit), leave nothing behind: no C++ object may be alive
-- where Lua raises.
local t = dofile("tests/lua/testing.lua")
local servercore = require "smtpsh.servercore"

-- A table whose every field read raises.
local function hostile()
  return setmetatable({}, { __index = function(_, key) error("boom reading " .. tostring(key)) end,
                            __len = function() return 3 end })
end

local function raises(what, pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  t.eq(ok, false, what .. " must raise")
  t.ok(tostring(err):find(pattern), what .. ": " .. tostring(err))
end

t.test("servercore.redirect: bad entries and raising entries", function()
  raises("an entry without to", "each redirect needs from", servercore.redirect, { { from = "127.0.0.1:25" } })
  raises("a host name", "each redirect needs from", servercore.redirect,
         { { from = "mx.example:25", to = "127.0.0.1:2525" } })
  raises("an entry that raises", "boom reading", servercore.redirect, { hostile() })
  raises("a list that raises", "boom reading", servercore.redirect, hostile())
  -- A good map after the bad ones: the state is usable, and nothing leaked on the way.
  servercore.redirect({ { from = "127.0.0.1:1", to = "refuse" } })
  servercore.redirect({})
end)

t.test("dns.servers: bad servers and raising tables", function()
  raises("a number", "server 1 is not a string", dns.servers, { 53 })
  raises("a bad address", "dns.servers", dns.servers, { "not an address" })
  raises("NaN timeout", "timeout must be a finite number", dns.servers, { "127.0.0.1:5353", timeout = 0 / 0 })
  raises("attempts 0", "attempts must be an integer from 1 to 10", dns.servers, { "127.0.0.1:5353", attempts = 0 })
  raises("a list that raises", "boom reading", dns.servers, hostile())
  local set = dns.servers { "127.0.0.1:5353", timeout = 1, attempts = 2 }
  t.eq(set[1], "127.0.0.1:5353")
  t.eq(set.attempts, 2)
end)

t.test("dns.query's own servers: bad lists and raising tables, before any query", function()
  local before = dns.servers()
  local function query(options) return dns.query("example.test", "A", options) end
  raises("an empty list", "dns%.query: servers: the list is empty", query, { servers = {} })
  raises("a number", "dns%.query: servers: server 1 is not a string", query, { servers = { 53 } })
  raises("a later number", "dns%.query: servers: server 2 is not a string", query,
         { servers = { "127.0.0.1", {} } })
  raises("a host name", "dns%.query: servers: DNS server 'dns%.example' is not an IP address", query,
         { servers = { "dns.example" } })
  raises("a bad port", "dns%.query: servers: ", query, { servers = { "127.0.0.1:99999" } })
  raises("a string for a list", "dns%.query: servers: must be a list", query, { servers = "127.0.0.1" })
  raises("options not a table", "table of options expected", query, 42)
  raises("a list that raises", "boom reading", query, { servers = hostile() })
  raises("options that raise", "boom reading", query, hostile())
  raises("a bad list with a bad name", "dns%.query: servers: the list is empty", dns.query, "bad name", "A",
         { servers = {} })
  t.eq(dns.servers(), before)  -- the configured servers are untouched
  -- Options without servers, and no options, are the plain query.
  local records, err = dns.query("bad name.test", "A", {})
  t.eq(records, nil)
  t.eq(err.rcode, "invalid_name")
end)

t.test("net.connect and smtp.connect: options checked before anything starts", function()
  raises("net timeout NaN", "timeout must be a finite number", net.connect, "127.0.0.1", 9, { timeout = 0 / 0 })
  raises("net timeout string", "timeout must be a finite number", net.connect, "127.0.0.1", 9, { timeout = "abc" })
  raises("net port 0", "port must be 1..65535", net.connect, "127.0.0.1", 0)
  raises("smtp timeout -1", "timeout must be a finite number", smtp.connect, "127.0.0.1:9", { timeout = -1 })
  raises("smtp bad target", "bad target", smtp.connect, "127.0.0.1:abc")
  raises("smtp CR in target", "CR or LF", smtp.connect, "127.0.0.1\r\n:25")
  raises("smtp bad tls", "tls must be", smtp.connect, "127.0.0.1:9", { tls = "sometimes" })
  raises("smtp tls options that raise", "boom reading", smtp.connect, "127.0.0.1:9",
         setmetatable({ tls = "implicit" }, { __index = function(_, k) error("boom reading " .. k) end }))
end)

t.test("smtpcore.format_endpoint: the engine's one formatter, and its bad arguments", function()
  local smtpcore = require "smtpsh.smtpcore"
  t.eq(smtpcore.format_endpoint("mx.example.test", 25), "mx.example.test:25")
  t.eq(smtpcore.format_endpoint("127.0.0.1", 2525), "127.0.0.1:2525")
  t.eq(smtpcore.format_endpoint("::1", 587), "[::1]:587")
  t.eq({ smtpcore.parse_target(smtpcore.format_endpoint("2001:db8::25", 465)) }, { "2001:db8::25", 465 })
  raises("port 0", "port must be 1..65535", smtpcore.format_endpoint, "127.0.0.1", 0)
  raises("no port", "number expected", smtpcore.format_endpoint, "127.0.0.1")
  raises("a table for a host", "string expected", smtpcore.format_endpoint, {}, 25)
  raises("a host too long", "host longer than 255 bytes", smtpcore.format_endpoint, ("a"):rep(256), 25)
end)

t.run()
