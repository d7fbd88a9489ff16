-- stdlib/verify.lua: what an RCPT reply says about an address, and the delay a reply asks for.
-- (tests/e2e/test_verify.py runs the whole command against real servers.)
local t = dofile("tests/lua/testing.lua")
local verify = require "smtpsh.verify"

local function reply(code, text)
  return { code = code, enhanced = text:match("^(%d%.%d+%.%d+) "), text = text }
end

local cases = {
  -- What the address is
  { 250, "2.1.5 Ok", "accepted" },
  { 251, "2.1.5 User not local; will forward", "accepted" },
  { 550, "5.1.1 <x@example.com>: Recipient address rejected: User unknown in virtual mailbox table", "unknown" },
  { 550, "5.1.1 The email account that you tried to reach does not exist.", "unknown" },
  { 550, "Requested action not taken: mailbox unavailable", "unknown" },
  { 553, "sorry, that domain isn't in my list of allowed rcpthosts", "sender" },
  { 550, "5.2.1 The email account that you tried to reach is disabled.", "disabled" },
  { 552, "5.2.2 Mailbox full", "full" },
  { 452, "4.2.2 The email account that you tried to reach is over quota.", "full" },
  -- Not about the address: a new envelope
  { 452, "4.5.3 Too many recipients", "too_many" },
  { 452, "Too many recipients received this hour", "too_many" },
  { 552, "5.5.3 Too many recipients", "too_many" },
  -- Ask again later, never invalid
  { 450, "4.2.0 <x@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html", "transient", "greylisted" },
  { 451, "4.7.1 Please try again later", "transient", "greylisted" },
  { 421, "4.7.0 Too many connections from your IP, slow down", "transient", "rate_limited" },
  { 421, "4.3.2 System resources exhausted", "transient", "server_busy" },
  { 450, "4.7.1 Client host rejected: cannot find your reverse hostname", "transient", "rejected_sender" },
  { 451, "4.3.0 Temporary lookup failure", "transient", "greylisted" },
  -- A refusal of us, the sender, not of the address
  { 554, "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "sender" },
  { 550, "5.7.1 Client host rejected: cannot find your reverse hostname", "sender" },
  { 554, "5.7.1 <x@example.com>: Relay access denied", "sender" },
  { 550, "5.7.23 SPF validation failed", "sender" },
  { 554, "5.7.1 Message rejected for policy reasons", "sender" },
}

for _, case in ipairs(cases) do
  t.test(case[1] .. " " .. case[2], function()
    local answer, reason = verify.rcpt_answer(reply(case[1], case[2]))
    t.eq(answer, case[3])
    if case[4] then t.eq(reason, case[4]) end
  end)
end

t.test("every reason maps to one of the four answers", function()
  local allowed = { safe = true, risky = true, invalid = true, unknown = true }
  local n = 0
  for reason, reachable in pairs(verify.reachable) do
    n = n + 1
    t.ok(allowed[reachable], reason)
  end
  t.ok(n >= 15, n .. " reasons")
  -- A transient reason is never invalid.
  for _, reason in ipairs { "greylisted", "rate_limited", "server_busy", "timeout", "connect_failed" } do
    t.eq(verify.reachable[reason], "unknown", reason)
  end
end)

t.test("the delay a reply asks for", function()
  t.eq(verify.retry_after(reply(450, "4.2.0 Greylisted, please try again in 300 seconds")), 300)
  t.eq(verify.retry_after(reply(450, "4.7.1 Try again in 5 minutes")), 300)
  t.eq(verify.retry_after(reply(451, "4.7.1 Greylisted for 60s")), 60)
  t.eq(verify.retry_after(reply(450, "4.2.0 see RFC 6647 for 2 reasons, retry in 10 sec")), 10)
  t.eq(verify.retry_after(reply(450, "4.2.0 Greylisted")), nil)
  t.eq(verify.retry_after(nil), nil)
end)

t.test("syntax errors are decided without the network, in input order", function()
  local seen = {}
  local summary = verify.run({ "no-at-sign", "two@@example.com", "x@[300.1.1.1]" }, {}, function(result, index)
    seen[#seen + 1] = index
    t.eq(result.is_reachable, "invalid")
    t.eq(result.reason, "syntax")
    t.eq(result.tries, 0)
  end)
  t.eq(seen, { 1, 2, 3 })
  t.eq(summary.total, 3)
  t.eq(summary.counts.invalid, 3)
end)

t.run()
