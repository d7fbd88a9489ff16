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

t.run()
