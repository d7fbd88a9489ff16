-- stdlib/server_command.lua: how the scenario server splits a command line.
local t = dofile("tests/lua/testing.lua")
local server_command = require "smtpsh.server_command"
local parse = server_command.parse

local function both(line) return { parse(line) } end

t.test("a verb, upper-cased, and the rest of the line", function()
  t.eq(both("EHLO client.example"), { "EHLO", "client.example" })
  t.eq(both("mail FROM:<a@b> SIZE=10"), { "MAIL", "FROM:<a@b> SIZE=10" })
  t.eq(both("QUIT"), { "QUIT", "" })
  t.eq(both("NOOP\tx"), { "NOOP", "x" })
  t.eq(both("EHLO  two spaces"), { "EHLO", " two spaces" })
  t.eq(both("EHLO-x"), { "EHLO", "-x" })
  t.eq(both("EHLO\0x"), { "EHLO", "\0x" })
end)

t.test("no letter first: no verb, the 502 reply", function()
  for _, line in ipairs { "", " EHLO x", "1234", "\22\3\1", "\195\137HLO x", "-" } do
    t.eq(both(line), { nil, "502 5.5.2 Error: command not recognized" })
  end
  t.eq(server_command.unrecognized, "502 5.5.2 Error: command not recognized")
end)

t.run()
