-- stdlib/smtp.lua: what needs no server (the end-to-end tests cover sessions).
local t = dofile("tests/lua/testing.lua")

t.test("reply codes and enhanced codes in words", function()
  local meaning, severity = smtp.describe("4.7.1")
  t.eq(severity, "transient")
  t.ok(meaning:find("greylisting", 1, true), meaning)
  t.eq(select(2, smtp.describe(550)), "permanent")
  t.eq(select(2, smtp.describe(354)), "intermediate")
  t.eq(smtp.describe(299), nil)
  t.eq(smtp.describe("9.9.9"), nil)
end)

t.test("bad targets and options raise before any network step", function()
  t.raises(function() smtp.connect("mx.example\r\nRSET") end, "CR or LF")
  t.raises(function() smtp.connect("mx.example:99999") end, "port '99999' is not a number from 1 to 65535")
  t.raises(function() smtp.connect("mx.example:x") end, "port 'x' is not a number from 1 to 65535")
  t.raises(function() smtp.connect("[mx.example]:25") end, "is not an IPv6 address")
  t.raises(function() smtp.connect("") end, "empty; expected HOST, HOST:PORT or %[IPV6%]:PORT")
  t.raises(function() smtp.connect("mx.example", { helo = "a\nb" }) end, "CR or LF")
  t.raises(function() smtp.connect(25) end, "must be a string")
end)

t.test("a refused connection is a value with its stage", function()
  -- Port 1 on loopback: nothing listens there on a test machine.
  local s, err = smtp.connect("127.0.0.1:1", { timeout = 2 })
  t.eq(s, nil)
  t.eq(err.kind, "refused")
  t.eq(err.stage, "connect")
  t.ok(tostring(err):find("refused", 1, true), tostring(err))
end)

t.run()
