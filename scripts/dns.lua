-- dns: the mail DNS of a domain checked in one go: the MX set in order with each host's
-- addresses and their PTR names, SPF, DMARC, MTA-STS, and TLSA (DANE) per MX host, each
-- marked ok / warn / fail with the reason, and each record's TTL as drill and dig show it. A
-- domain that does not exist (NXDOMAIN) is that one finding: it has no policy to check.
--
-- usage:  smtpsh dns DOMAIN [--json] [--resolver ADDR[:PORT][,...]] [--timeout SECONDS]
--                    [--validate] [--trust-anchor FILE] [--no-color]
-- TLSA records are always validated by smtpsh's own DNSSEC validator (DANE uses only secure
-- ones); --validate validates every answer and shows each record set's state (secure,
-- insecure, bogus, indeterminate) beside the resolver's AD bit.
-- output: a checklist on stdout, or with --json one object:
--         {domain, resolver, ok, nxdomain?, mx = [...], spf, dmarc, mta_sts,
--          dnssec = [{name, type, state, reason, ad, chain = [{zone, state, how}]}] (with
--          --validate; the chain of trust from the anchor down, the first set's also as checks),
--          checks = [{name, status, detail}]}; every record carries its ttl (seconds): mx[i].ttl,
--          mx[i].addresses[j].ttl and .ptr_ttl, mx[i].tlsa[k].ttl, spf.ttl, dmarc.ttl, mta_sts.ttl
-- exit:   0 healthy (warnings allowed), 1 problems found, 2 on bad usage

local cli = require "smtpsh.cli"
local dns = require "smtpsh.dns"
local json = require "smtpsh.json"
local report = require "smtpsh.report"

local usage = [==[usage: smtpsh dns DOMAIN [OPTIONS]
  Checks DOMAIN's MX hosts (addresses, PTR, TLSA), SPF, DMARC and MTA-STS.
  Exit 0 healthy, 1 problems found, 2 bad usage.]==]

local options, words = cli.parse({ ... }, {
  name = "dns", usage = usage, min = 1, max = 1, missing = "missing DOMAIN; see --help",
  summary = "MX, addresses, PTR, TLSA, SPF, DMARC and MTA-STS of a domain: ok / warn / fail",
  options = {
    timeout = { default = "/etc/resolv.conf's, else 5", help = "the deadline of each DNS try" },
    validate = { "flag", help = "validate every answer with DNSSEC and show each record set's state" },
  },
  common = { "json", "resolver", "timeout", "trust-anchor", "no-color", "record" },
  example = "smtpsh dns example.com --json",
})
cli.apply_resolver(options, "dns")
local domain, problem = require("smtpsh.dns").canonical(words[1])
if not domain then cli.fail("dns", problem) end

local checks = report.checklist()
local servers = dns.servers()
local result = { domain = domain, mx = json.array(),
                 resolver = { servers = json.array { table.unpack(servers) }, timeout = servers.timeout,
                              attempts = servers.attempts } }

-- A DNS error as a check's words.
local function failed(err) return err.message or tostring(err) end

-- Items with their records' TTLs: one "(TTL n)" at the end when all share it (an RRset
-- should, RFC 2181 section 5.2), else one after each item.
local function ttl_suffix(ttl) return ttl and (" (TTL " .. ttl .. ")") or "" end
local function ttl_note(ttl) return ttl and (", TTL " .. ttl) or "" end
local function with_ttls(items, ttls)
  local first, same = ttls[1], true
  for i = 2, #items do if ttls[i] ~= first then same = false end end
  if same then return table.concat(items, ", ") .. ttl_suffix(first) end
  local out = {}
  for i, item in ipairs(items) do out[i] = item .. ttl_suffix(ttls[i]) end
  return table.concat(out, ", ")
end

-- The MX set --------------------------------------------------------------------------------

-- With --validate, each validated record set: {name, type, state, reason, ad}, in the order
-- asked (shown as "dnssec" checks after the others).
local validate = options.validate or nil
local validated = json.array()
local function note_dnssec(name, rtype, answer)
  if not answer or not answer.dnssec then return end
  validated[#validated + 1] = { name = name, type = rtype, state = answer.dnssec,
                                reason = answer.dnssec_reason, ad = answer.ad or false,
                                chain = answer.dnssec_chain and json.array(answer.dnssec_chain) or nil }
end

local mx, mx_err = dns.mx(domain, { validate = validate })
if validate then note_dnssec(domain, "MX", mx or mx_err) end
if not mx then
  if mx_err.rcode == "NXDOMAIN" then
    -- The one finding: a domain that does not exist has no SPF, DMARC or MTA-STS to miss.
    result.nxdomain = true
    checks:add("mx", "fail", domain .. " does not exist (NXDOMAIN): nobody can deliver mail to it")
  else
    checks:add("mx", "fail", "MX look-up failed: " .. failed(mx_err))
  end
elseif mx.null then
  checks:add("mx", "warn", "null MX (MX 0 .): " .. domain .. " accepts no mail (RFC 7505)")
elseif #mx == 0 then
  checks:add("mx", "fail", "no MX record and no address to fall back to: nobody can deliver mail to " .. domain)
else
  if mx.implicit then
    checks:add("mx", "warn", "no MX record: mail goes to " .. domain ..
      "'s own address (implicit MX, RFC 5321 section 5.1)")
  else
    local listed, ttls = {}, {}
    for i, entry in ipairs(mx) do listed[i], ttls[i] = entry.preference .. " " .. entry.host, entry.ttl end
    checks:add("mx", mx.mixed_null and "fail" or "ok",
      (mx.mixed_null and "a null MX beside real ones (RFC 7505 section 3): " or "") ..
      #mx .. (#mx == 1 and " host: " or " hosts: ") .. with_ttls(listed, ttls))
  end

  -- Each host's addresses, their PTR names and TLSA, all hosts at once.
  local jobs = {}
  for i, entry in ipairs(mx) do
    jobs[i] = task.spawn(function()
      local host = { preference = entry.preference, host = entry.host, implicit = entry.implicit,
                     ttl = entry.ttl, addresses = json.array(), tlsa = json.array() }
      local address_ttls = entry.address_ttls or {}
      if entry.error then host.error = failed(entry.error) end
      if entry.canonical then host.cname = entry.canonical end
      local reverse = {}
      for j, address in ipairs(entry.addresses or {}) do
        reverse[j] = task.spawn(dns.fcrdns, address)
      end
      for j, address in ipairs(entry.addresses or {}) do
        local fc, ferr = task.wait(reverse[j])
        host.addresses[j] = { address = address, ttl = address_ttls[address],
                              ptr = fc and json.array(fc.names) or json.array(), ptr_ttl = fc and fc.ttl,
                              confirmed = fc and fc.ok or false,
                              error = (not fc) and failed(ferr) or nil }
      end
      -- The TLSA answer's DNSSEC state, beside the host (not in its JSON).
      local tlsa_state
      if not entry.implicit then
        local tlsa, terr = dns.tlsa(entry.host, 25, { validate = true })
        local answer = tlsa or terr
        tlsa_state = { name = "_25._tcp." .. entry.host, type = "TLSA", state = answer.dnssec,
                       reason = answer.dnssec_reason, ad = answer.ad or false }
        if tlsa then
          for _, record in ipairs(tlsa) do
            host.tlsa[#host.tlsa + 1] = { usage = record.usage, selector = record.selector,
                                          matching_type = record.matching_type, data = record.data,
                                          ttl = record.ttl }
          end
          host.tlsa_ad = tlsa.ad
          host.tlsa_disagree = tlsa.ad_disagrees
        elseif terr.rcode ~= "NXDOMAIN" then
          host.tlsa_error = failed(terr)
        end
      end
      return host, tlsa_state
    end)
  end
  for i, job in ipairs(jobs) do
    local host, tlsa_state = task.wait(job)
    result.mx[i] = host
    if validate then
      local entry = mx[i]
      if entry.dnssec then
        validated[#validated + 1] = { name = entry.host, type = "A/AAAA", state = entry.dnssec,
                                      reason = entry.dnssec_reason }
      end
      if tlsa_state and tlsa_state.state then validated[#validated + 1] = tlsa_state end
    end
    local name = "mx " .. host.host
    if host.error then
      checks:add(name, "fail", "does not resolve: " .. host.error)
    elseif #host.addresses == 0 then
      checks:add(name, "fail", "has no A or AAAA record: senders cannot reach it")
    elseif host.cname then
      checks:add(name, "fail", "is an alias (CNAME) of " .. host.cname ..
        ": an MX must name a host, not an alias (RFC 2181 section 10.3)")
    else
      local addresses, ttls = {}, {}
      for i, a in ipairs(host.addresses) do addresses[i], ttls[i] = a.address, a.ttl end
      checks:add(name, "ok", with_ttls(addresses, ttls))
    end
    for _, a in ipairs(host.addresses) do
      local check = "ptr " .. a.address
      if a.error then
        checks:add(check, "warn", "PTR look-up failed: " .. a.error)
      elseif #a.ptr == 0 then
        checks:add(check, "warn", "no PTR record: receivers that check reverse DNS distrust this host")
      elseif not a.confirmed then
        checks:add(check, "warn", table.concat(a.ptr, ", ") .. " does not resolve back to " ..
          a.address .. " (not forward-confirmed" .. ttl_note(a.ptr_ttl) .. ")")
      else
        checks:add(check, "ok", table.concat(a.ptr, ", ") .. " (forward-confirmed" .. ttl_note(a.ptr_ttl) .. ")")
      end
    end
    if host.tlsa_error then
      checks:add("tlsa " .. host.host, "warn", "TLSA look-up failed: " .. host.tlsa_error)
    elseif #host.tlsa > 0 then
      local ttl
      for _, record in ipairs(host.tlsa) do if not ttl or record.ttl < ttl then ttl = record.ttl end end
      local count = #host.tlsa .. " TLSA record(s)" .. ttl_suffix(ttl)
      local state = tlsa_state and tlsa_state.state or "indeterminate"
      local why = tlsa_state and tlsa_state.reason
      local ad_text = host.tlsa_ad and "the resolver set AD" or "the resolver did not set AD"
      host.tlsa_dnssec_state, host.tlsa_dnssec_reason = state, why
      if state == "secure" then
        checks:add("tlsa " .. host.host, "ok", count .. ", DNSSEC-secure as smtpsh validated it (" .. ad_text .. ")")
      elseif state == "bogus" then
        checks:add("tlsa " .. host.host, "fail", count .. " that are DNSSEC-bogus (" .. tostring(why) ..
          "): DANE senders will not deliver")
      else
        checks:add("tlsa " .. host.host, "warn", count .. " that are " .. state .. " (" .. tostring(why) ..
          "): DANE senders ignore them; DANE needs DNSSEC (" .. ad_text .. ")")
      end
      if host.tlsa_disagree then
        checks:add("tlsa " .. host.host, "warn", "the resolver and smtpsh disagree: " .. ad_text ..
          ", smtpsh's validation says " .. state)
      end
    elseif not host.implicit and not host.error then
      checks:add("tlsa " .. host.host, "skip", "no TLSA record (no DANE)")
    end
  end
end

-- Policies ----------------------------------------------------------------------------------

if not result.nxdomain then
  local spf, spf_err = dns.spf(domain, { validate = validate })
  note_dnssec(domain, "TXT", spf or spf_err)
  if spf then
    result.spf = { record = spf.record, ttl = spf.ttl, lookups = spf.lookups, terms = json.array(spf.terms),
                   errors = json.array(spf.errors) }
    local all
    for _, term in ipairs(spf.terms) do if term.mechanism == "all" then all = term.qualifier end end
    if spf.lookups > 10 then
      checks:add("spf", "fail", "needs " .. spf.lookups ..
        " DNS look-ups; RFC 7208 section 4.6.4 allows 10 (receivers answer permerror)")
    elseif #spf.errors > 0 then
      checks:add("spf", "warn", table.concat(spf.errors, "; "))
    elseif all == "+" then
      checks:add("spf", "warn", "ends in +all: anyone may send as " .. domain)
    else
      checks:add("spf", "ok", spf.record .. " (" .. spf.lookups .. " DNS look-ups" .. ttl_note(spf.ttl) .. ")")
    end
  else
    result.spf = { error = failed(spf_err), rcode = spf_err.rcode }
    if spf_err.rcode == "none" then
      checks:add("spf", "warn", "no SPF record: receivers cannot tell who may send as " .. domain)
    else
      checks:add("spf", "fail", failed(spf_err))
    end
  end

  result.spf.dnssec = (spf or spf_err).dnssec
  local dmarc, dmarc_err = dns.dmarc(domain, { validate = validate })
  note_dnssec("_dmarc." .. domain, "TXT", dmarc or dmarc_err)
  if dmarc then
    result.dmarc = { record = dmarc.record, ttl = dmarc.ttl, tags = dmarc.tags }
    local policy = dmarc.tags.p
    if not policy then
      checks:add("dmarc", "fail", "the record has no p= tag (RFC 7489 section 6.3)")
    elseif policy == "none" then
      checks:add("dmarc", "warn", "p=none: reports only, nothing is enforced")
    else
      checks:add("dmarc", "ok", dmarc.record .. ttl_suffix(dmarc.ttl))
    end
  else
    result.dmarc = { error = failed(dmarc_err), rcode = dmarc_err.rcode }
    checks:add("dmarc", dmarc_err.rcode == "none" and "warn" or "fail",
      dmarc_err.rcode == "none" and ("no DMARC record at _dmarc." .. domain) or failed(dmarc_err))
  end

  result.dmarc.dnssec = (dmarc or dmarc_err).dnssec
  local sts, sts_err = dns.mta_sts(domain, { validate = validate })
  note_dnssec("_mta-sts." .. domain, "TXT", sts or sts_err)
  if sts then
    result.mta_sts = { record = sts.record, ttl = sts.ttl, tags = sts.tags }
    checks:add("mta-sts", sts.tags.id and "ok" or "warn",
      sts.tags.id and ("policy id " .. sts.tags.id .. ttl_suffix(sts.ttl))
      or "the record has no id= tag (RFC 8461 section 3.1)")
  else
    result.mta_sts = { error = failed(sts_err), rcode = sts_err.rcode }
    if sts_err.rcode == "none" then
      checks:add("mta-sts", "skip", "no MTA-STS record")
    else
      checks:add("mta-sts", "warn", failed(sts_err))
    end
  end
  result.mta_sts.dnssec = (sts or sts_err).dnssec
end

-- DNSSEC, with --validate ------------------------------------------------------------------

if validate then
  result.dnssec = validated
  local anchor, problem = dns.trust_anchor()
  result.trust_anchor = anchor and anchor.file or nil
  if not anchor then checks:add("dnssec", "warn", problem) end
  local status = { secure = "ok", insecure = "warn", indeterminate = "warn", bogus = "fail" }
  -- The chain of trust to the domain's zone, once: each zone and the keys that trusted it.
  local first = validated[1]
  for _, link in ipairs(first and first.chain or {}) do
    checks:add("chain " .. link.zone, status[link.state] or "warn", tostring(link.how))
  end
  for _, item in ipairs(validated) do
    local ad = item.ad and "AD set" or "no AD"
    local disagree = (item.ad and item.state ~= "secure") and "; the resolver's AD disagrees" or ""
    checks:add("dnssec " .. item.name .. " " .. item.type, status[item.state] or "warn",
      item.state .. (item.reason and (": " .. item.reason) or "") .. " (" .. ad .. disagree .. ")")
  end
end

-- Output ------------------------------------------------------------------------------------

result.checks = checks:list()
result.ok = checks:worst() ~= "fail"
if options.json then
  io.write(json.encode(result), "\n")
else
  io.write("smtpsh dns ", domain, " (resolver ", table.concat(result.resolver.servers, ", "), ")\n")
  io.write(report.render(checks, { colour = cli.colour(options) }))
  io.write(domain, ": ", report.summary(checks), "\n")
end
os.exit(result.ok and 0 or 1)
