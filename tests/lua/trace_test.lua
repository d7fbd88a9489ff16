-- stdlib/trace.lua: how trace events are shown, and the sink the bindings hand them to.
local t = dofile("tests/lua/testing.lua")
local trace = require "smtpsh.trace"
local smtpcore = require "smtpsh.smtpcore"
local dnscore = require "smtpsh.dnscore"

t.test("an SMTP line: time, arrow, text", function()
  t.eq(trace.render({ source = "smtp", t = 0.0125, dir = "C", line = "EHLO a.test" }),
       "[   0.013] -> EHLO a.test\n")
  t.eq(trace.render({ source = "smtp", t = 12.5, dir = "S", line = "250 ok" }),
       "[  12.500] <- 250 ok\n")
  t.eq(trace.render({ source = "smtp", t = 0, dir = "!", line = "closed" }),
       "[   0.000] == closed\n")
end)

t.test("colour by direction, reset before the newline", function()
  t.eq(trace.render({ source = "smtp", t = 1, dir = "C", line = "QUIT" }, true),
       "\27[36m[   1.000] -> QUIT\27[0m\n")
  t.eq(trace.render({ source = "smtp", t = 1, dir = "S", line = "221 bye" }, true),
       "\27[32m[   1.000] <- 221 bye\27[0m\n")
  t.eq(trace.render({ source = "smtp", t = 1, dir = "!", line = "closed" }, true),
       "\27[33m[   1.000] == closed\27[0m\n")
  t.eq(trace.render({ source = "dns", dir = "==", line = "MX a.test: NODATA" }, true),
       "\27[35m[     dns] == MX a.test: NODATA\27[0m\n")
end)

t.test("a peer's control bytes are shown, never sent to the terminal", function()
  t.eq(trace.render({ source = "smtp", t = 0, dir = "S", line = "220 a\0b\rc\27[2J\t\127" }),
       "[   0.000] <- 220 a\\x00b\\x0dc\\x1b[2J\\x09\\x7f\n")
end)

t.test("a DNS answer", function()
  t.eq(trace.render({ source = "dns", dir = "==", line = "MX a.test: 3 records, 127.0.0.1:53" }),
       "[     dns] == MX a.test: 3 records, 127.0.0.1:53\n")
end)

t.test("one sink per state, shared by smtpcore and dnscore", function()
  t.eq(smtpcore.trace_sink(), nil, "no sink until tracing is turned on")
  local function mine() end
  t.eq(smtpcore.trace_sink(mine), nil, "returns the sink before")
  t.eq(dnscore.trace_sink(), mine)
  trace.install(dnscore)
  t.eq(smtpcore.trace_sink(), mine, "install keeps a sink of one's own")
  t.eq(dnscore.trace_sink(false), mine)
  t.eq(smtpcore.trace_sink(), nil, "false removes it")
  trace.install(smtpcore)
  t.eq(dnscore.trace_sink(), trace.write)
  t.raises(function() smtpcore.trace_sink(42) end, "function or false expected")
  smtpcore.trace_sink(false)
end)

t.test("DNS answers reach the sink as tables; a sink that fails or yields is survived", function()
  local seen = {}
  dnscore.trace_sink(function(event) seen[#seen + 1] = event end)
  dnscore.servers({ "127.0.0.1:1", timeout = 1, attempts = 1 })
  dnscore.cache(false)
  dnscore.trace(true)
  local records, err = dnscore.query("trace.example.test", "MX")
  t.eq(records, nil)
  t.ok(err, "no server listens there")
  t.eq(#seen, 1)
  local event = seen[1]
  t.eq({ event.source, event.dir, event.type, event.name, event.rcode, event.cached },
       { "dns", "==", "MX", "trace.example.test", err.rcode, false })
  t.eq(event.line, "MX trace.example.test: " .. err.rcode
                   .. (event.server and ", " .. event.server or ""))
  -- A sink that raises or yields loses its event (reported on stderr), not the query.
  dnscore.trace_sink(function() error("sink broke") end)
  t.eq(select(2, dnscore.query("trace.example.test", "MX")).rcode, err.rcode)
  dnscore.trace_sink(function() coroutine.yield() end)
  t.eq(select(2, dnscore.query("trace.example.test", "MX")).rcode, err.rcode)
  dnscore.trace(false)
  dnscore.trace_sink(false)
end)

t.run()
