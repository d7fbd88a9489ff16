-- blacklist: is this IP listed on DNS blocklists? Each zone is asked at once; a listing shows
-- its return codes and the list's TXT reason. Answers that are refusals rather than listings
-- (Spamhaus's 127.255.255.x for queries through public resolvers) are reported as errors.
--
-- usage:  smtpsh blacklist IP [--dnsbl ZONE[,ZONE...]] [--json] [--resolver ADDR[:PORT]]
--                          [--timeout SECONDS] [--no-color]
-- output: one line per zone (listed / clean / error), or with --json one object:
--         {ip, listed, zones = [{zone, query, listed, codes, reason, error}]}
-- exit:   0 listed nowhere (every zone answered), 1 listed somewhere or a zone could not be
--         checked, 2 on bad usage

local cli = require "smtpsh.cli"
local dns = require "smtpsh.dns"
local json = require "smtpsh.json"

local usage = [==[usage: smtpsh blacklist IP [OPTIONS]
  Checks IP (IPv4 or IPv6) against DNS blocklists (default: a list of well-known ones).
  Exit 0 listed nowhere, 1 listed or not checkable, 2 bad usage.]==]

-- Well-known public lists. Most refuse queries that come through big public resolvers: use
-- your own resolver (--resolver) for trustworthy answers.
local default_zones = {
  "zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "dnsbl.sorbs.net",
  "psbl.surriel.com", "bl.mailspike.net", "dnsbl-1.uceprotect.net", "ix.dnsbl.manitu.net",
}

local options, words = cli.parse({ ... }, {
  name = "blacklist", usage = usage, min = 1, max = 1, missing = "missing IP; see --help",
  summary = "the DNSBL listings of an IP address, with return codes and reasons",
  options = {
    dnsbl = { "list", arg = "ZONE[,ZONE...]", default = "eight well-known lists (zen.spamhaus.org, ...)",
              help = "the blocklists to ask" },
    timeout = { default = "/etc/resolv.conf's, else 5", help = "the deadline of each DNS try" },
  },
  common = { "json", "resolver", "timeout", "no-color" },
  example = "smtpsh blacklist 192.0.2.1 --dnsbl zen.spamhaus.org,bl.spamcop.net --resolver 127.0.0.1",
})
cli.apply_resolver(options, "blacklist")
local ip = words[1]
if not dns.reverse_name(ip) then cli.fail("blacklist", "'" .. ip .. "' is not an IPv4 or IPv6 address") end
local zones = options.dnsbl or default_zones
for _, zone in ipairs(zones) do
  local ok, problem = require("smtpsh.dns").canonical(zone)
  if not ok then cli.fail("blacklist", "--dnsbl: " .. problem) end
end

local entries = dns.dnsbl(ip, zones)
local listed, unknown = false, false
for _, entry in ipairs(entries) do
  entry.codes = json.array(entry.codes)
  if entry.listed then listed = true end
  if entry.listed == nil then unknown = true end
end

if options.json then
  io.write(json.encode({ ip = ip, listed = listed, zones = json.array(entries) }), "\n")
else
  local colour = cli.colour(options)
  local paint = function(code, text) return colour and ("\27[" .. code .. "m" .. text .. "\27[0m") or text end
  local width = 0
  for _, entry in ipairs(entries) do width = math.max(width, #entry.zone) end
  for _, entry in ipairs(entries) do
    local state, detail
    if entry.listed then
      state = paint("31", "listed")
      detail = table.concat(entry.codes, ", ") .. (entry.reason and ("  " .. entry.reason) or "")
    elseif entry.listed == false then
      state, detail = paint("32", "clean "), ""
    else
      state, detail = paint("33", "error "), entry.error or "no answer"
    end
    local line = string.format("  %s  %-" .. width .. "s  %s", state, entry.zone, detail)
    io.write((line:gsub("%s+$", "")), "\n")
  end
  local count = 0
  for _, entry in ipairs(entries) do if entry.listed then count = count + 1 end end
  io.write(ip, ": ", listed and ("listed on " .. count .. " of " .. #entries .. " lists")
    or (unknown and "not listed where checked, but some lists did not answer") or
    ("listed on none of " .. #entries .. " lists"), "\n")
end
os.exit((listed or unknown) and 1 or 0)
