-- How fast smtpsh validates DNSSEC (tests/bench/dnssec.sh runs it against the signed test
-- hierarchy): ROUNDS times every case of CASES_JSON, cold (the resolver's cache and the
-- validated zones cleared before each round: every DS, DNSKEY and RRSIG checked again) and
-- warm (validated zones kept, answers cached). Prints "cold N lookups S seconds" and
-- "warm N lookups S seconds"; exits 1 when a case's state differs from the fixture's.
--   smtpsh tests/bench/dnssec.lua SERVER ANCHOR CASES_JSON [ROUNDS]
local json = require "smtpsh.json"
local dnssec = require "smtpsh.dnssec"
local server, anchor, cases_file, rounds = ...
rounds = tonumber(rounds) or 20
dns.servers { server }
assert(dns.trust_anchor(anchor))
local file = assert(io.open(cases_file))
local cases = json.decode(file:read("a")).cases
file:close()

local function round()
  local n = 0
  for name, case in pairs(cases) do
    local r, e = dns.query(case.qname, case.qtype, { validate = true })
    local state = (r or e).dnssec
    if state ~= case.state then
      io.stderr:write(name, ": ", tostring(state), ", expected ", case.state, "\n")
      os.exit(1)
    end
    n = n + 1
  end
  return n
end

for _, mode in ipairs { "cold", "warm" } do
  local lookups, started = 0, os.clock()
  local wall = task.now()
  for _ = 1, rounds do
    if mode == "cold" then dns.cache("clear"); dnssec.clear() end
    lookups = lookups + round()
  end
  print(string.format("%s %d lookups %.3f seconds %.3f cpu", mode, lookups, task.now() - wall, os.clock() - started))
end
