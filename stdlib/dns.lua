-- dns: DNS look-ups for scripts and the REPL, on the engine's resolver (smtpsh.dnscore).
--
--   dns.servers{"127.0.0.1:5353", timeout = 2, attempts = 2}   -- else /etc/resolv.conf
--   dns.query("example.com", "MX")  -> { {name, type, ttl, rdata, preference, host}, ad = false }
--   dns.query(name, "A", {servers = {"192.0.2.53:53"}})  -- asks these instead; no cache
--   dns.mx("example.com")           -> { {preference, host, addresses = {...}}, ... }
--   dns.ptr("192.0.2.1"), dns.fcrdns(ip), dns.dnsbl(ip, {"zen.spamhaus.org"}), dns.spf(domain)
--
-- A look-up returns its result, or nil, err: err.kind is "dns" and err.rcode tells NXDOMAIN,
-- SERVFAIL, REFUSED, timeout (and invalid_name, none for a missing policy record) apart. An
-- empty answer (NODATA) is an empty list, not an error. Independent look-ups run at once as
-- tasks, so dns.mx asks for every host's addresses in parallel.

local core = require "smtpsh.dnscore"
local task = require "smtpsh.task"
local trace = require "smtpsh.trace"

local type, ipairs, pairs, tostring, tonumber, error, setmetatable, select =
  type, ipairs, pairs, tostring, tonumber, error, setmetatable, select
local string_find, string_match, string_lower, string_sub, string_gmatch, string_format =
  string.find, string.match, string.lower, string.sub, string.gmatch, string.format
local table_sort, table_concat, math_random, math_type = table.sort, table.concat, math.random, math.type

local dns = {}

local dnssec  -- stdlib/dnssec.lua, loaded by the first look-up that validates

local function validator()
  dnssec = dnssec or require "smtpsh.dnssec"
  return dnssec
end

-- dns.query(name [, type [, options]]): options.validate = true validates the answer with
-- smtpsh's own DNSSEC validator (stdlib/dnssec.lua): records.dnssec and friends.
function dns.query(name, rtype, options)
  if type(options) == "table" and options.validate then
    if options.servers then
      error("dns.query: validate and servers cannot be combined (validation asks the configured resolvers)", 2)
    end
    return validator().query(name, rtype)
  end
  -- Called through pcall so that a bad argument is reported at the caller's line, as when
  -- dns.query was dnscore.query itself (a Lua frame between them would be named instead).
  local ok, records, err = pcall(core.query, name, rtype, options)
  if not ok then error(records, 2) end
  return records, err
end

-- dns.trust_anchor([file]) -> {zone, file} | nil, problem: the DNSSEC trust anchor (DS or
-- DNSKEY records, as drill -k takes) that validation starts from; without a file, the one in
-- use (by default the root's, from Debian's dns-root-data).
function dns.trust_anchor(file)
  return validator().trust_anchor(file)
end

dns.servers = core.servers
dns.cache = core.cache
dns.reverse_name = core.reverse_name
-- dns.canonical(name) -> the name in canonical form (lower case, no final dot) | nil, problem
dns.canonical = core.canonical
-- dns.trace(true): every answer on stderr as it comes (--trace); dns.trace() -> whether on
function dns.trace(on)
  if on then trace.install(core) end
  return core.trace(on)
end

local error_meta = { __tostring = function(e) return e.message end }

-- An error of our own making, shaped like the engine's.
local function dns_error(rcode, message, name, rtype)
  return setmetatable({ kind = "dns", stage = "dns", rcode = rcode, message = message,
                        name = name, type = rtype }, error_meta)
end
dns.error = dns_error

-- Runs each function as a task at once; returns their first results and errors, in order.
local function parallel(fns)
  local tasks = {}
  for i, fn in ipairs(fns) do tasks[i] = task.spawn(fn) end
  local values, errors = {}, {}
  for i, t in ipairs(tasks) do
    local value, err = task.wait(t)
    -- A look-up that raised is a bug in the caller's arguments: raise it here too.
    if t:status() == "failed" then error(err, 0) end
    values[i], errors[i] = value, err
  end
  return values, errors
end

local function check_string(what, value, level)
  if type(value) ~= "string" then
    error(what .. " must be a string, got " .. type(value), level or 3)
  end
  return value
end

local function field_list(records, field)
  local out = {}
  for _, record in ipairs(records) do
    if record[field] ~= nil then out[#out + 1] = record[field] end
  end
  return out
end

-- The smallest TTL of an answer's records (how long a cache keeps the set), or nil.
local function min_ttl(records)
  local ttl
  for _, record in ipairs(records) do
    if record.ttl and (not ttl or record.ttl < ttl) then ttl = record.ttl end
  end
  return ttl
end

-- One query, validated by smtpsh's DNSSEC validator when `validate` is set.
local function lookup(name, rtype, validate)
  if validate then return validator().query(name, rtype) end
  return core.query(name, rtype)
end

-- What validation found, as a result (or an error) carries it.
local dnssec_fields = { "dnssec", "dnssec_reason", "bogus_reason", "dnssec_chain" }

-- Copies what validation found on `from` (records or an error) onto `to`; returns `to`.
local function copy_dnssec(to, from)
  if from and from.dnssec then
    for _, field in ipairs(dnssec_fields) do to[field] = from[field] end
  end
  return to
end

-- The same, taken off `from` (a list the caller hands on without it).
local function move_dnssec(to, from)
  copy_dnssec(to, from)
  for _, field in ipairs(dnssec_fields) do from[field] = nil end
  return to
end

-- Copies the finding of `from` onto `to` when it is the worse of the two.
local function take_worse_dnssec(to, from)
  if not from or not from.dnssec then return end
  local rank = validator().rank
  if to.dnssec and rank[to.dnssec] >= rank[from.dnssec] then return end
  copy_dnssec(to, from)
end

-- One field of every record of an answer, and the answer's TTL: {names}, nil, ttl | nil, err
-- With `validate`, the answer itself comes fourth (its dnssec fields).
local function query_field_ttl(name, rtype, field, validate)
  local records, err = lookup(name, rtype, validate)
  if not records then return nil, err end
  return field_list(records, field), nil, min_ttl(records), records
end

-- One field of every record of an answer: {addresses}, {names}, ... | nil, err
local function query_field(name, rtype, field)
  local list, err = query_field_ttl(name, rtype, field)
  return list, err
end

-- dns.a(host), dns.aaaa(host) -> list of address strings | nil, err
function dns.a(host) return query_field(check_string("host", host), "A", "address") end
function dns.aaaa(host) return query_field(check_string("host", host), "AAAA", "address") end

-- Both families at once: IPv4 first, then IPv6. An error only when neither answered; the
-- result's `canonical` says where a CNAME chain led. Inside this module a third result maps
-- each address to its record's TTL.
local function addresses_ttl(host, validate)
  local results, errors = parallel {
    function() return lookup(host, "A", validate) end,
    function() return lookup(host, "AAAA", validate) end,
  }
  local v4, v6 = results[1], results[2]
  -- task.wait gives a task's results; the query's own nil, err are its first two.
  if not v4 and not v6 then return nil, errors[1] or errors[2] end
  local out, ttls = {}, {}
  for _, set in ipairs { v4 or {}, v6 or {} } do
    for _, record in ipairs(set) do
      out[#out + 1] = record.address
      ttls[record.address] = record.ttl
    end
  end
  out.canonical = (v4 and v4.canonical) or (v6 and v6.canonical)
  if not v4 or not v6 then out.partial = (errors[1] or errors[2]) end
  if validate then
    take_worse_dnssec(out, v4 or errors[1])
    take_worse_dnssec(out, v6 or errors[2])
  end
  return out, nil, ttls
end

-- dns.addresses(host [, {validate = true}]) -> {addresses..., canonical?, dnssec?} | nil, err
function dns.addresses(host, options)
  local out, err = addresses_ttl(check_string("host", host), type(options) == "table" and options.validate)
  return out, err
end

-- dns.ptr(ip) -> list of names | nil, err
function dns.ptr(ip)
  local name, problem = core.reverse_name(check_string("ip", ip))
  if not name then error("dns.ptr(ip): " .. problem, 2) end
  return query_field(name, "PTR", "host")
end

-- dns.txt(name) -> list of texts, one per record, its strings joined | nil, err
function dns.txt(name) return query_field(check_string("name", name), "TXT", "text") end

-- dns.tlsa(host, port [, protocol] [, {validate = true}]) -> TLSA records of
-- _PORT._PROTOCOL.HOST | nil, err
function dns.tlsa(host, port, protocol, options)
  if type(protocol) == "table" then protocol, options = nil, protocol end
  check_string("host", host)
  port = math_type(port) == "integer" and port or tonumber(port)
  if not port or port < 1 or port > 65535 or math_type(port) ~= "integer" then
    error("dns.tlsa(host, port [, protocol]): port must be an integer 1..65535", 2)
  end
  return lookup(string_format("_%d._%s.%s", port, protocol or "tcp", host), "TLSA",
                type(options) == "table" and options.validate)
end

-- RFC 5321 section 5.1: the MX set by preference, ties in random order (so load spreads as
-- senders spread it); no MX at all means the domain's own address stands in (implicit MX);
-- a lone "MX 0 ." means the domain accepts no mail (RFC 7505).
--
-- dns.mx(domain [, {addresses = false, validate = true}]) -> { {preference, host, ttl,
--   addresses, address_ttls, error?, canonical?, dnssec?}, implicit = bool, null = bool,
--   ad = bool, dnssec? } | nil, err
--   (ttl: the MX record's; address_ttls: address -> the TTL of its A/AAAA record; with
--   validate, dnssec is the MX answer's state and each host's the worse of its A and AAAA)
function dns.mx(domain, options)
  check_string("domain", domain)
  local want_addresses = not (options and options.addresses == false)
  local validate = options and options.validate
  local records, err = lookup(domain, "MX", validate)
  if not records then return nil, err end
  local out = { implicit = false, null = false, ad = records.ad }
  if validate then take_worse_dnssec(out, records) end
  if #records == 0 then
    local addresses, aerr, ttls = addresses_ttl(domain, validate)
    if not addresses then
      -- NODATA for the address too is "no mail here"; a failure is the resolver's.
      if aerr.rcode == "NXDOMAIN" then return out end
      return nil, aerr
    end
    if #addresses == 0 then return out end
    out.implicit = true
    out[1] = move_dnssec({ preference = 0, host = domain, addresses = addresses, address_ttls = ttls,
                           implicit = true }, addresses)
    return out
  end
  for _, record in ipairs(records) do
    if record.host == "." then
      out.null = true
    else
      out[#out + 1] = { preference = record.preference, host = record.host, ttl = record.ttl,
                        [0] = math_random() }
    end
  end
  -- A null MX beside real ones is a misconfiguration (RFC 7505 section 3): keep the real ones
  -- and say so.
  if out.null and #out > 0 then out.null, out.mixed_null = false, true end
  table_sort(out, function(x, y)
    if x.preference ~= y.preference then return x.preference < y.preference end
    return x[0] < y[0]
  end)
  for _, entry in ipairs(out) do entry[0] = nil end
  if want_addresses and #out > 0 then
    local lookups = {}
    for i, entry in ipairs(out) do
      lookups[i] = function()
        local found, err, ttls = addresses_ttl(entry.host, validate)
        entry.address_ttls = ttls
        return found, err
      end
    end
    local found, errors = parallel(lookups)
    for i, entry in ipairs(out) do
      if found[i] then
        entry.addresses = found[i]
        -- RFC 2181 section 10.3: an MX must name a host, not an alias.
        if found[i].canonical and found[i].canonical ~= entry.host then
          entry.canonical = found[i].canonical
        end
        move_dnssec(entry, found[i])
        found[i].canonical, found[i].partial = nil, nil
      else
        entry.addresses = {}
        entry.error = errors[i]
      end
    end
  end
  return out
end

-- Forward-confirmed reverse DNS: the IP's PTR names, and which of those resolve back to it.
-- dns.fcrdns(ip) -> {ok = bool, names = {...}, ttl, addresses = {name = {...}}, confirmed = {...}}
--   | nil, err (when the PTR look-up itself failed; a missing PTR is ok = false, names = {});
--   ttl is the PTR record's
function dns.fcrdns(ip)
  local reverse, problem = core.reverse_name(check_string("ip", ip))
  if not reverse then error("dns.fcrdns(ip): " .. problem, 2) end
  local names, err, ttl = query_field_ttl(reverse, "PTR", "host")
  if not names then
    if err.rcode == "NXDOMAIN" then
      return { ok = false, names = {}, addresses = {}, confirmed = {}, reason = "no PTR record" }
    end
    return nil, err
  end
  local result = { ok = false, names = names, ttl = ttl, addresses = {}, confirmed = {} }
  if #names == 0 then
    result.reason = "no PTR record"
    return result
  end
  local lookups = {}
  for i, name in ipairs(names) do lookups[i] = function() return dns.addresses(name) end end
  local found, errors = parallel(lookups)
  local wanted = core.reverse_name(ip)
  for i, name in ipairs(names) do
    result.addresses[name] = found[i] or {}
    for _, address in ipairs(found[i] or {}) do
      -- Compared as reverse names, so "::1" and "0:0::1" are the same address.
      if core.reverse_name(address) == wanted then
        result.confirmed[#result.confirmed + 1] = name
        break
      end
    end
    if not found[i] and errors[i] then result.errors = result.errors or {}; result.errors[name] = errors[i] end
  end
  result.ok = #result.confirmed > 0
  if not result.ok then
    result.reason = "no PTR name (" .. table_concat(names, ", ") .. ") resolves back to " .. ip
  end
  return result
end

-- Return codes that are not listings: Spamhaus and others answer 127.255.255.x to say they
-- refuse the query (a public resolver, too many queries), not that the IP is listed.
local function dnsbl_error_code(code)
  if code == "127.255.255.252" then return "typing error in the DNSBL name" end
  if code == "127.255.255.254" then return "query refused: sent through a public or open resolver" end
  if code == "127.255.255.255" then return "query refused: too many queries (rate limited)" end
  if not string_find(code, "^127%.") then
    return "answered " .. code .. ", outside 127.0.0.0/8: the zone is probably dead or wildcarded"
  end
end

-- dns.dnsbl(ip, zones) -> { {zone, query, listed = true|false|nil, codes = {...}, reason,
--   error}, ... } in the order of `zones` (a list, or a string "z1,z2")
function dns.dnsbl(ip, zones)
  check_string("ip", ip)
  if type(zones) == "string" then
    local list = {}
    for zone in string_gmatch(zones, "[^,%s]+") do list[#list + 1] = zone end
    zones = list
  end
  if type(zones) ~= "table" then error("dns.dnsbl(ip, zones): zones must be a list of zone names", 2) end
  local labels, problem = core.reverse_name(ip, true)
  if not labels then error("dns.dnsbl(ip, zones): " .. problem, 2) end
  local checks = {}
  for i, zone in ipairs(zones) do
    check_string("zone", zone)
    checks[i] = function()
      local name = labels .. "." .. zone
      local entry = { zone = zone, query = name, codes = {} }
      local records, err = core.query(name, "A")
      if not records then
        if err.rcode == "NXDOMAIN" then
          entry.listed = false
        else
          entry.error = tostring(err)
        end
        return entry
      end
      for _, record in ipairs(records) do entry.codes[#entry.codes + 1] = record.address end
      if #entry.codes == 0 then
        entry.listed = false
        return entry
      end
      for _, code in ipairs(entry.codes) do
        local refusal = dnsbl_error_code(code)
        if refusal then
          entry.error = refusal
          return entry
        end
      end
      entry.listed = true
      local texts = core.query(name, "TXT")
      if texts and #texts > 0 then
        local reasons = {}
        for _, record in ipairs(texts) do reasons[#reasons + 1] = record.text end
        entry.reason = table_concat(reasons, "; ")
      end
      return entry
    end
  end
  return (parallel(checks))
end

-- "k=v; k2=v2" tag lists (DMARC, MTA-STS, DKIM): tags by name, in lower case, and in order.
function dns.parse_tags(text)
  check_string("text", text)
  local tags, order = {}, {}
  for part in string_gmatch(text, "[^;]+") do
    local key, value = string_match(part, "^%s*([%w_%-]+)%s*=%s*(.-)%s*$")
    if key then
      key = string_lower(key)
      if tags[key] == nil then order[#order + 1] = key end
      tags[key] = value
    end
  end
  return tags, order
end

-- The terms of an SPF record (RFC 7208 section 4.6): mechanisms in order, modifiers by name.
-- dns.parse_spf(text) -> {version, terms = { {qualifier, mechanism, value, cidr}, ... },
--   modifiers = {redirect=, exp=}, errors = {...}}
local spf_mechanisms = { all = true, include = true, a = true, mx = true, ptr = true, ip4 = true,
                         ip6 = true, exists = true }
function dns.parse_spf(text)
  check_string("text", text)
  local result = { terms = {}, modifiers = {}, errors = {} }
  local first = true
  for word in string_gmatch(text, "%S+") do
    if first then
      first = false
      if string_lower(word) ~= "v=spf1" then
        result.errors[#result.errors + 1] = "does not start with v=spf1"
      end
      result.version = word
    else
      local name, value = string_match(word, "^([%w_%.%-]+)=(.*)$")
      if name and not spf_mechanisms[string_lower(name)] then
        result.modifiers[string_lower(name)] = value
      else
        local qualifier, rest = string_match(word, "^([%+%-~%?]?)(.+)$")
        local mechanism, arg = string_match(rest, "^([%a%d]+)(.*)$")
        mechanism = mechanism and string_lower(mechanism)
        if not mechanism or not spf_mechanisms[mechanism] then
          result.errors[#result.errors + 1] = "unknown term '" .. word .. "'"
        else
          local term = { qualifier = qualifier ~= "" and qualifier or "+", mechanism = mechanism }
          local body = string_match(arg, "^:(.*)$")
          local cidr
          if mechanism ~= "ip4" and mechanism ~= "ip6" then
            local stem, slash = string_match(body or arg, "^(.-)(/[%d/]+)$")
            if slash then body, cidr = (body and stem or nil), slash end
          else
            local stem, slash = string_match(body or "", "^(.-)/(%d+)$")
            if slash then body, cidr = stem, "/" .. slash end
          end
          term.value, term.cidr = body, cidr
          result.terms[#result.terms + 1] = term
        end
      end
    end
  end
  return result
end

-- The mechanisms and modifiers that cost a DNS look-up (RFC 7208 section 4.6.4).
local costs_lookup = { include = true, a = true, mx = true, ptr = true, exists = true }

-- The TXT records of `name` that start with `prefix` (compared without case), nil, their TTL.
local function policy_records(name, prefix, validate)
  local texts, err, ttl, answer = query_field_ttl(name, "TXT", "text", validate)
  if not texts then return nil, err end
  local found = {}
  for _, text in ipairs(texts) do
    local head = string_lower(string_sub(text, 1, #prefix))
    if head == prefix and (#text == #prefix or string_find(string_sub(text, #prefix + 1, #prefix + 1), "[%s;]")) then
      found[#found + 1] = text
    end
  end
  return found, nil, ttl, answer
end

-- The one policy record at `name`, nil, its TTL, the answer | nil, err
local function single_policy(name, prefix, what, rfc, validate)
  local found, err, ttl, answer = policy_records(name, prefix, validate)
  if not found then
    if err.rcode == "NXDOMAIN" then
      return nil, copy_dnssec(dns_error("none", name .. " publishes no " .. what .. " record (NXDOMAIN)", name, "TXT"), err)
    end
    return nil, err
  end
  if #found == 0 then
    return nil, copy_dnssec(dns_error("none", name .. " publishes no " .. what .. " record", name, "TXT"), answer)
  end
  if #found > 1 then
    return nil, copy_dnssec(dns_error("permerror", string_format("%s publishes %d %s records; %s allows one",
      name, #found, what, rfc), name, "TXT"), answer)
  end
  return found[1], nil, ttl, answer
end

-- dns.spf(domain [, {follow = false, validate = true}]) -> {record, ttl, terms, modifiers, errors, lookups,
--   includes = {domain = parsed}} | nil, err (err.rcode "none" without a record, "permerror"
--   for more than one). `lookups` counts the DNS look-ups evaluation needs, following include
--   and redirect (the limit is 10, RFC 7208 section 4.6.4). With validate, the record's own
--   answer is validated (dnssec fields on the result or the error), not those it includes.
function dns.spf(domain, options)
  check_string("domain", domain)
  local record, err, ttl, answer = single_policy(domain, "v=spf1", "SPF", "RFC 7208 section 4.5",
                                                 options and options.validate)
  if not record then return nil, err end
  local result = copy_dnssec(dns.parse_spf(record), answer)
  result.record, result.ttl = record, ttl
  result.lookups = 0
  if options and options.follow == false then
    for _, term in ipairs(result.terms) do
      if costs_lookup[term.mechanism] then result.lookups = result.lookups + 1 end
    end
    if result.modifiers.redirect then result.lookups = result.lookups + 1 end
    return result
  end
  -- Breadth first through include/redirect, each domain once, at most 30 records read.
  local seen, queue, reads = { [string_lower(domain)] = true }, { { domain, result } }, 0
  result.includes = {}
  while #queue > 0 and reads < 30 do
    local current = table.remove(queue, 1)[2]
    reads = reads + 1
    local targets = {}
    for _, term in ipairs(current.terms) do
      if costs_lookup[term.mechanism] then result.lookups = result.lookups + 1 end
      if term.mechanism == "include" and term.value then targets[#targets + 1] = term.value end
    end
    if current.modifiers.redirect then
      result.lookups = result.lookups + 1
      targets[#targets + 1] = current.modifiers.redirect
    end
    for _, target in ipairs(targets) do
      local key = string_lower(target)
      if not seen[key] and not string_find(target, "%%") then
        seen[key] = true
        local included, ierr = single_policy(target, "v=spf1", "SPF", "RFC 7208 section 4.5")
        if included then
          local parsed = dns.parse_spf(included)
          parsed.record = included
          result.includes[target] = parsed
          queue[#queue + 1] = { target, parsed }
        else
          result.errors[#result.errors + 1] = "include/redirect " .. target .. ": " .. tostring(ierr)
        end
      end
    end
  end
  return result
end

-- A tag-list policy record at LABEL.DOMAIN: {record, ttl, name, tags, order} | nil, err.
-- With options.validate, the result (or the error) carries dnssec and dnssec_reason.
local function tag_policy(label, domain, prefix, what, rfc, options)
  check_string("domain", domain, 4)
  local name = label .. "." .. domain
  local validate = type(options) == "table" and options.validate
  local record, err, ttl, answer = single_policy(name, prefix, what, rfc, validate)
  if not record then return nil, err end
  local tags, order = dns.parse_tags(record)
  return copy_dnssec({ record = record, ttl = ttl, name = name, tags = tags, order = order }, answer)
end

-- dns.dmarc(domain [, {validate = true}]) -> {record, ttl, tags = {v, p, rua, ...},
--   name = "_dmarc.DOMAIN", dnssec?} | nil, err
function dns.dmarc(domain, options)
  return tag_policy("_dmarc", domain, "v=dmarc1", "DMARC", "RFC 7489 section 6.6.3", options)
end

-- dns.mta_sts(domain [, {validate = true}]) -> {record, ttl, tags = {v, id},
--   name = "_mta-sts.DOMAIN", dnssec?} | nil, err
-- (the TXT record of RFC 8461 section 3.1; the HTTPS policy file is not fetched)
function dns.mta_sts(domain, options)
  return tag_policy("_mta-sts", domain, "v=stsv1", "MTA-STS", "RFC 8461 section 3.1", options)
end

return dns
