-- diagnose: names the cause of a failed delivery (a 421, a drop, a refusal) with evidence,
-- probing from this machine's own IP: DNS, every MX in order, banner, EHLO, STARTTLS (each
-- TLS version on its own when it fails), MAIL and RCPT, retries of transient answers,
-- back-to-back sessions, and the source address's PTR and DNSBL listings.
--
-- usage:  smtpsh diagnose TARGET... [--json] [--resolver ADDR[:PORT]] [--port N] [--source ADDR]
--                         [--helo NAME] [--from ADDR] [--rcpt ADDR] [--timeout SECONDS]
--                         [--retries N] [--backoff SECONDS] [--sessions N]
--                         [--dnsbl ZONE[,ZONE]|none] [--public-ip ADDR] [--trace] [--no-color]
--         smtpsh diagnose --rejudge FILE.json   (the verdict again from a saved --json's facts)
--         TARGET: a domain, an address (its domain; the address is the probe recipient), or
--         HOST[:PORT]; several targets are diagnosed one after the other
-- output: a checklist and the verdict with advice; with --json one object (a line each for
--         several targets): {target, verdict,
--         transient, stage, checks = [{name, status, detail}], evidence, advice, facts, ...}
--         (facts: everything the probe saw, from which the verdict was judged)
-- exit:   0 every verdict ok, 1 any other verdict, 2 the diagnosis could not run

local cli = require "smtpsh.cli"
local diagnose = require "smtpsh.diagnose"
local json = require "smtpsh.json"
local report = require "smtpsh.report"
local smtp = require "smtpsh.smtp"

local usage = [==[usage: smtpsh diagnose TARGET... [--json] [--resolver ADDR[:PORT]] [--port N] [--source ADDR]
                       [--helo NAME] [--from ADDR] [--rcpt ADDR] [--timeout SECONDS]
                       [--retries N] [--backoff SECONDS] [--sessions N (default 2)] [--dnsbl ZONE,...|none]
                       [--public-ip ADDR] [--trace] [--no-color]
       smtpsh diagnose --rejudge FILE.json [--json]
  TARGET: a domain, an address (user@domain: also the probe recipient), or HOST[:PORT].
  --public-ip ADDR|dns: the address receivers see when this machine is behind NAT (for PTR and
    DNSBL), or "dns" to ask DNS echo services (myip.opendns.com). Behind NAT without it, the
    address a server echoes in its greeting is used, else the DNS echo services.
  --rejudge: judge again the facts of a saved `diagnose --json` (one object a line), offline.
  Exit 0 verdict ok, 1 another verdict, 2 could not run.]==]

local options, words = cli.parse({ ... }, {
  name = "diagnose", usage = usage, min = 0, missing = "missing TARGET; see --help",
  options = { port = "port", source = "string", helo = "string", from = "string", rcpt = "string",
              retries = "count", backoff = "seconds", sessions = "count", dnsbl = "list",
              ["public-ip"] = "string", rejudge = "string" },
})
if not options.rejudge and #words == 0 then cli.fail("diagnose", "missing TARGET; see --help") end
if options.rejudge and #words > 0 then cli.fail("diagnose", "--rejudge FILE takes no TARGET") end
local public_ip = options["public-ip"]
if public_ip and public_ip ~= "dns" and not smtp.is_address(public_ip) then
  local server = public_ip:match("^dns@(.+)$")
  if not server or not smtp.parse_target(server, 53) then
    cli.fail("diagnose", "--public-ip " .. public_ip .. ": expected an IPv4 or IPv6 address, dns, or dns@SERVER[:PORT]")
  end
end
cli.apply_resolver(options, "diagnose")
if options.trace then smtp.defaults.trace = true end
for _, name in ipairs { "helo", "from", "rcpt", "source" } do
  if options[name] and options[name]:find("[\r\n%s]") then
    cli.fail("diagnose", "--" .. name .. " must not hold spaces, CR or LF")
  end
end
cli.source("diagnose", options.source)
local zones = options.dnsbl
if zones and #zones == 1 and zones[1] == "none" then zones = {} end

local settings = {
  port = options.port, source = options.source, helo = options.helo, from = options.from,
  rcpt = options.rcpt, timeout = options.timeout or 10,
  retries = options.retries == nil and 1 or options.retries, backoff = options.backoff or 60,
  sessions = options.sessions or 2, dnsbl = zones, trace = options.trace, public_ip = options["public-ip"],
}
for _, target in ipairs(words) do
  local ok, problem = diagnose.parse_target(target, settings)
  if not ok then cli.fail("diagnose", problem) end
end

-- The results to print: a diagnosis per TARGET, or the saved facts judged again.
local function results()
  if options.rejudge then
    local file = io.open(options.rejudge)
    if not file then cli.fail("diagnose", "cannot read --rejudge " .. options.rejudge) end
    local list = {}
    for line in file:lines() do
      if line:find("%S") then
        local saved, problem = json.decode(line)
        if not saved then cli.fail("diagnose", options.rejudge .. ": " .. problem) end
        local facts = saved.facts or saved
        if type(facts) ~= "table" or facts.version ~= 1 or type(facts.sessions) ~= "table" then
          cli.fail("diagnose", options.rejudge .. ": no facts (version 1) in it: save `diagnose --json` output")
        end
        list[#list + 1] = function() return diagnose.judge(facts) end
      end
    end
    file:close()
    return list
  end
  local list = {}
  for _, target in ipairs(words) do
    list[#list + 1] = function()
      local run = {}
      for key, value in pairs(settings) do run[key] = value end
      local result, err = diagnose.run(target, run)
      if not result then cli.fail("diagnose", err) end
      return result
    end
  end
  return list
end

-- Several targets: one after the other, a JSON line (or a report) each.
local all_ok = true
for _, next_result in ipairs(results()) do
  local result = next_result()
  all_ok = all_ok and result.verdict == "ok"
  local checklist = result.checklist
  result.checklist = nil
  result.checks = json.array(result.checks)
  result.evidence = json.array(result.evidence)
  if options.json then
    io.write(json.encode(result), "\n")
  else
    local colour = cli.colour(options)
    io.write("smtpsh diagnose ", result.target or "", "\n")
    io.write(report.render(checklist, { colour = colour }))
    local label = result.verdict .. (result.stage and result.verdict ~= "ok" and (" (at " .. result.stage .. ")") or "")
    if colour then label = (result.verdict == "ok" and "\27[32m" or "\27[31m") .. label .. "\27[0m" end
    io.write("verdict: ", label, result.transient and ", transient" or "", "\n")
    if #result.evidence > 0 then
      io.write("evidence:\n")
      for _, line in ipairs(result.evidence) do io.write("  ", report.visible(line), "\n") end
    end
    io.write("advice: ", result.advice, "\n")
  end
  io.stdout:flush()
end
os.exit(all_ok and 0 or 1)
