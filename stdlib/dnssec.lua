-- dnssec: smtpsh validates DNS answers itself (RFC 4033-4035, RFC 5155), from a trust anchor
-- down, instead of trusting a resolver's AD bit. The steps that need no network (verifying
-- signatures, matching keys to DS records, reading NSEC and NSEC3 denials) are native
-- (smtpsh.dnsseccore); this module asks the questions, on the same resolver, cache and
-- deadlines as every other look-up, and walks the chain:
--
--   the anchor's DNSKEYs -> for each label below: DS (or its proven absence) -> DNSKEY -> ...
--   -> the answer's RRSIGs, or the NSEC/NSEC3 records that prove the name or type absent.
--
--   dnssec.query(name, type) -> records | nil, err, each with
--     dnssec = "secure" | "insecure" | "bogus" | "indeterminate"   (RFC 4035 section 4.3)
--     dnssec_reason  (why, in words: always for bogus, insecure and indeterminate)
--     bogus_reason   (the same, set only when bogus)
--     dnssec_chain   ({zone, state, how} from the anchor down: which keys trusted each zone)
--     ad             (the resolver's AD bit, shown beside our own result)
--     zone           (the zone whose keys signed it, when secure)
--   dnssec.trust_anchor(FILE) -> {zone, file} | nil, problem   -- DS or DNSKEY records
--   dnssec.trust_anchor()     -> the anchor in use (default: dns-root-data's root.ds)
--
-- The answers are asked with the DO bit; when a validating resolver refuses one with SERVFAIL
-- (it found it bogus), it is asked again with CD so that we can say why.

local core = require "smtpsh.dnscore"
local vcore = require "smtpsh.dnsseccore"

local type, ipairs, tostring, os_time, io_open, string_gsub, string_sub =
  type, ipairs, tostring, os.time, io.open, string.gsub, string.sub

local dnssec = {}

-- Where Debian's dns-root-data keeps the root zone's trust anchor (DS records).
dnssec.default_anchor_files = { "/usr/share/dns/root.ds", "/usr/share/dns/root.key" }

local anchor          -- {zone, records, file}
local anchor_problem  -- why there is none, when there is none

-- A trust anchor is a few lines: more than this is not one (and /dev/zero never ends).
local max_anchor_bytes = 1024 * 1024

-- The file's text | nil, why (io.open's and read's words name the file).
local function read_file(path)
  local file, err = io_open(path, "rb")
  if not file then return nil, err end
  local text, read_err = file:read(max_anchor_bytes + 1)
  file:close()
  if not text and read_err then return nil, path .. ": " .. read_err end
  text = text or ""  -- an empty file: its parse says what is missing
  if #text > max_anchor_bytes then return nil, path .. ": over 1 MiB, too large for DS or DNSKEY records" end
  return text
end

local function load_anchor(path)
  local text, err = read_file(path)
  if not text then return nil, "cannot read the trust anchor " .. tostring(err) end
  local parsed, problem = vcore.anchor(text)
  if not parsed then return nil, "the trust anchor " .. path .. " is not DS or DNSKEY records: " .. problem end
  parsed.file = path
  return parsed
end

-- Zones already validated (or found insecure), so that a second question below them does
-- not walk the chain again: name -> {state, zone, keys, reason, cut, expires}.
local zones, zone_count, max_zones = {}, 0, 2000

function dnssec.clear()
  zones, zone_count = {}, 0
end

function dnssec.trust_anchor(path)
  if path == nil then
    if not anchor and not anchor_problem then
      for _, candidate in ipairs(dnssec.default_anchor_files) do
        local found = load_anchor(candidate)
        if found then anchor = found break end
      end
      if not anchor then
        anchor_problem = "no trust anchor: install Debian's dns-root-data (" ..
          dnssec.default_anchor_files[1] .. ") or give one with --trust-anchor FILE"
      end
    end
    if not anchor then return nil, anchor_problem end
    return { zone = anchor.zone, file = anchor.file }
  end
  if type(path) ~= "string" then
    error("dns.trust_anchor(file): file must be a string, got " .. type(path), 2)
  end
  local found, problem = load_anchor(path)
  if not found then return nil, problem end
  anchor, anchor_problem = found, nil
  dnssec.clear()
  return { zone = anchor.zone, file = anchor.file }
end

-- The time signatures are checked against.
dnssec.now = os_time

local rank = { secure = 1, insecure = 2, indeterminate = 3, bogus = 4 }

-- The worse of two findings.
local function worse(a, b)
  if not a then return b end
  if not b then return a end
  return rank[b.state] > rank[a.state] and b or a
end

local function finding(state, reason, zone, entry)
  return { state = state, reason = reason, zone = zone, entry = entry }
end

-- The chain of trust down to a zone entry, from the anchor: {zone, state, how} each, `how`
-- saying which keys trusted it (or, for the last when it is not secure, why not).
local function chain_of(entry)
  local out, at = {}, entry
  while at and #out < 64 do
    table.insert(out, 1, { zone = at.zone or "?", state = at.state,
                           how = at.state == "secure" and at.how or at.reason })
    at = at.parent
  end
  return out
end

-- Asks with the DO bit; again with CD after a SERVFAIL (a validating resolver's "bogus").
local function ask(name, rtype)
  local records, err = core.query(name, rtype, { dnssec = true })
  if records or err.rcode ~= "SERVFAIL" then return records, err end
  local again, again_err = core.query(name, rtype, { dnssec = true, checking_disabled = true })
  if not again and not (again_err and again_err.wire) then return records, err end
  -- The resolver refused it without CD: it validates, and found the answer bogus.
  local out = again or again_err
  out.resolver_servfail = true
  return again, again_err
end

local function wire_of(records, err)
  return (records and records.wire) or (err and err.wire)
end

-- The ancestors of `name` below `zone` down to the name itself: "mx.example.com" below
-- "com" -> {"example.com", "mx.example.com"}.
local function labels_below(name, zone)
  local out = {}
  local at = name
  while at ~= zone and at ~= "." and at ~= "" do
    table.insert(out, 1, at)
    local dot = at:find(".", 1, true)
    at = dot and string_sub(at, dot + 1) or "."
  end
  return out
end

local function is_below(name, zone)
  if zone == "." then return true end
  return name == zone or string_sub(name, -#zone - 1) == "." .. zone
end

local function remember(name, entry, ttl)
  if zone_count >= max_zones then dnssec.clear() end
  if not zones[name] then zone_count = zone_count + 1 end
  entry.expires = os_time() + math.min(ttl or 300, 3600)
  zones[name] = entry
end

local function remembered(name)
  local entry = zones[name]
  if entry and entry.expires > os_time() then return entry end
  return nil
end

local function min_ttl(records)
  local ttl
  for _, record in ipairs(records or {}) do
    if record.ttl and (not ttl or record.ttl < ttl) then ttl = record.ttl end
  end
  return ttl
end

-- The anchor zone's keys, trusted from the anchor's DS or DNSKEY records.
local function anchor_keys()
  local known, problem = dnssec.trust_anchor()
  if not known then return finding("indeterminate", problem) end
  local cached = remembered(anchor.zone)
  if cached then return cached end
  local records, err = ask(anchor.zone, "DNSKEY")
  local wire = wire_of(records, err)
  if not records or not wire then
    return finding("indeterminate", "no DNSKEY answer for the trust anchor " .. anchor.zone ..
      ": " .. tostring(err and err.message or "no DNSSEC records in the answer"))
  end
  if not vcore.signer(wire, "answer", anchor.zone, "DNSKEY") then
    return finding("indeterminate", "the resolver " .. tostring(records.server) ..
      " returns no RRSIG records (it does not pass DNSSEC data on): nothing to validate")
  end
  local keys, matched, unsupported = vcore.trust_keys(wire, anchor.zone, anchor.records, dnssec.now())
  if not keys then
    return finding(unsupported and "insecure" or "bogus", "the trust anchor: " .. matched)
  end
  local entry = { state = "secure", zone = anchor.zone, keys = keys,
                  how = "the trust anchor " .. anchor.file .. ": " .. matched }
  remember(anchor.zone, entry, min_ttl(records))
  return entry
end

-- The secure zone a name lies in, with its keys, found by walking down from the anchor: a
-- DS (validated with the parent's keys) and a DNSKEY set it matches make a child zone secure;
-- a proven absence of DS either means no zone cut there (walk on) or an unsigned delegation
-- (insecure from there down).
local function zone_for(name)
  local zone = anchor_keys()
  if zone.state ~= "secure" then return zone end
  if not is_below(name, zone.zone) then
    return finding("indeterminate", name .. " is outside the trust anchor's zone " .. zone.zone)
  end
  for _, child in ipairs(labels_below(name, zone.zone)) do
    local known = remembered(child)
    if known then
      if known.cut == false then goto continue end
      if known.stop then return zone end
      if known.state ~= "secure" then return known end
      zone = known
      goto continue
    end
    do
      local records, err = ask(child, "DS")
      local wire = wire_of(records, err)
      if not wire then
        return finding("indeterminate", "no answer for the DS of " .. child .. ": " ..
          tostring(err and err.message))
      end
      if records and #records > 0 then
        local ok, why = vcore.verify(wire, "answer", child, "DS", zone.zone, zone.keys, dnssec.now())
        if not ok then return finding("bogus", "the DS records of " .. child .. ": " .. why) end
        local key_records, key_err = ask(child, "DNSKEY")
        local key_wire = wire_of(key_records, key_err)
        if not key_records or not key_wire then
          return finding("bogus", child .. " has a DS record but no DNSKEY answer (" ..
            tostring(key_err and key_err.message) .. ")")
        end
        local keys, matched, unsupported =
          vcore.trust_keys(key_wire, child, vcore.rrset(wire, child, "DS"), dnssec.now())
        if not keys then
          local state = unsupported and "insecure" or "bogus"
          local entry = finding(state, matched, child)
          entry.parent = zone
          remember(child, entry, min_ttl(records))
          return entry
        end
        zone = { state = "secure", zone = child, keys = keys, parent = zone,
                 how = "its DS in " .. zone.zone .. ": " .. matched }
        remember(child, zone, math.min(min_ttl(records) or 300, min_ttl(key_records) or 300))
      elseif records and records.aliases then
        -- A CNAME owns the name: nothing lies below it, and its zone is the one above.
        remember(child, { cut = false, stop = true })
        return zone
      else
        local rcode = records and 0 or (err.rcode == "NXDOMAIN" and 3) or nil
        if not rcode then
          return finding("indeterminate", "the DS of " .. child .. ": " .. tostring(err.message))
        end
        local proof, why = vcore.denial(wire, child, "DS", rcode, zone.zone, zone.keys, dnssec.now())
        if proof == "nodata" then
          remember(child, { cut = false })
        elseif proof == "delegation" or proof == "opt_out" then
          local entry = finding("insecure", why, child)
          entry.parent = zone
          remember(child, entry)
          return entry
        elseif proof == "nxdomain" then
          return zone  -- nothing exists below: the answer itself will prove it
        else
          return finding("bogus", "the absence of a DS for " .. child .. " is not proven: " .. why)
        end
      end
    end
    ::continue::
  end
  return zone
end

local max_chain = 8

-- What an answer (or its error) proves, with the zone it lies in.
local function judge(name, rtype, records, err, depth)
  local zone = zone_for(name)
  if zone.state ~= "secure" then return zone end
  local finding = function(state, reason, at) return finding(state, reason, at, zone) end
  local wire = wire_of(records, err)
  if not wire then
    return finding("indeterminate", tostring(err and err.message or "no answer"))
  end
  local now = dnssec.now()
  if records and records.aliases and #records.aliases > 0 then
    local alias = records.aliases[1]
    local ok, why = vcore.verify(wire, "answer", name, "CNAME", zone.zone, zone.keys, now)
    if not ok then return finding("bogus", why) end
    if depth >= max_chain then
      return finding("indeterminate", "the CNAME chain is longer than " .. max_chain .. " links")
    end
    local target = string_gsub(alias.target or "", "%.$", "")
    local next_records, next_err = ask(target, rtype)
    local rest = judge(target, rtype, next_records, next_err, depth + 1)
    return worse(finding("secure", nil, zone.zone), rest)
  end
  if records and #records > 0 then
    local ok, why_or_labels = vcore.verify(wire, "answer", name, rtype, zone.zone, zone.keys, now)
    if not ok then return finding("bogus", why_or_labels) end
    if why_or_labels then
      local proof, why = vcore.denial(wire, name, rtype, 0, zone.zone, zone.keys, now, why_or_labels)
      if proof ~= "wildcard" then return finding("bogus", why) end
    end
    return finding("secure", nil, zone.zone)
  end
  local rcode = records and 0 or (err.rcode == "NXDOMAIN" and 3) or nil
  if not rcode then return finding("indeterminate", tostring(err.message)) end
  local proof, why = vcore.denial(wire, name, rtype, rcode, zone.zone, zone.keys, now)
  if proof == "nxdomain" and rcode == 3 then return finding("secure", why, zone.zone) end
  if (proof == "nodata" or proof == "delegation") and rcode == 0 then
    return finding("secure", why, zone.zone)
  end
  if proof == "opt_out" then return finding("insecure", why, zone.zone) end
  if proof == "nxdomain" or proof == "nodata" then
    return finding("bogus", "the response code does not match its proof: " .. why)
  end
  return finding("bogus", why)
end

-- Sets what validation found on a result (records or error).
local function annotate(target, found)
  target.dnssec = found.state
  target.dnssec_reason = found.reason
  -- How far trust reached: the zones from the anchor down, each with the keys that made it.
  local last = found.entry or ((found.parent or found.how) and found) or nil
  if last then target.dnssec_chain = chain_of(last) end
  target.bogus_reason = found.state == "bogus" and found.reason or nil
  if found.state == "secure" then target.zone = found.zone end
  -- The resolver's own verdict beside ours: AD set on what we do not call secure, or a
  -- SERVFAIL (its "bogus") for what we call secure.
  if (target.ad and found.state ~= "secure") or (target.resolver_servfail and found.state == "secure") then
    target.ad_disagrees = true
  end
  target.wire = nil
  return target
end

-- dnssec.query(name, type) -> records | nil, err, validated (see the top).
function dnssec.query(name, rtype)
  local canonical = core.canonical(name)
  if not canonical then return core.query(name, rtype) end  -- the usual invalid_name error
  local records, err = ask(canonical, rtype or "A")
  local found = judge(canonical, rtype or "A", records, err, 0)
  if records then return annotate(records, found) end
  return nil, annotate(err, found)
end

-- The states in order of how bad they are (dns.lua keeps the worse of two with it).
dnssec.rank = rank

return dnssec
