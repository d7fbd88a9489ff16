-- tls: which TLS versions and ciphers an SMTP server accepts, what certificate it presents,
-- whether that verifies, and DANE when TLSA records exist. Each version from TLS 1.0 to 1.3
-- is tried on its own connection, so a version mismatch is named, not guessed.
--
-- usage:  smtpsh tls HOST[:PORT] [--implicit] [--ca-file FILE] [--sni NAME] [--helo NAME]
--                    [--json] [--timeout SECONDS] [--resolver ADDR[:PORT]] [--no-color]
-- output: per version accepted/refused (with the reason) and the cipher chosen, then the
--         certificate chain, the checks and a verdict line; with --json one object:
--         {target, host, port, mode, versions = [...], accepted, negotiated, chain, verify,
--          certificate_from, never_reached, stopped, dane, checks, verdict, ok}; dane is
--         {records, usable, dnssec, dnssec_reason, ad, ad_disagrees, chain, matched, record, error}
--         The versions come from smtpsh.tlsscan. When TLS was never reached (no connection,
--         a 421 greeting, no STARTTLS) one check says why and no version is listed. When the
--         default handshake fails but an old version worked (a TLS 1.0/1.1-only server), the
--         chain is that handshake's (certificate_from names the version). For an address
--         target the handshakes check no name: verification is the chain's, and a certificate
--         that does not name the address is a note (senders check the MX host name).
-- exit:   0 no problem found, 1 a problem (version mismatch, expired certificate, DANE
--         mismatch, no STARTTLS, cannot connect), 2 on bad usage

local cli = require "smtpsh.cli"
local json = require "smtpsh.json"
local report = require "smtpsh.report"
local smtp = require "smtpsh.smtp"
local dns = require "smtpsh.dns"
local tlsscan = require "smtpsh.tlsscan"

local usage = [==[usage: smtpsh tls HOST[:PORT] [OPTIONS]
  Tries TLS 1.0, 1.1, 1.2 and 1.3 one by one (STARTTLS on port 25, or implicit TLS with
  --implicit, port 465), then shows the certificate, its verification and DANE.
  Exit 0 no problem found, 1 a problem, 2 bad usage.]==]

local options, words = cli.parse({ ... }, {
  name = "tls", usage = usage, min = 1, max = 1, missing = "missing HOST[:PORT]; see --help",
  summary = "TLS versions, ciphers, certificate, verification and DANE of an SMTP server",
  options = {
    implicit = { "flag", help = "TLS from the first byte (port 465 unless given), not STARTTLS" },
    ["ca-file"] = { "string", arg = "FILE", default = "the system's CAs",
                    help = "CA certificates (PEM) the chain is verified against" },
    sni = { "string", arg = "NAME", default = "HOST (none for an address)",
            help = "the server name sent and checked in the certificate" },
    helo = { "string", arg = "NAME", default = "this machine's host name", help = "the EHLO name" },
    timeout = { default = 10, help = "the deadline of each step of each handshake" },
  },
  common = { "json", "timeout", "resolver", "trust-anchor", "no-color", "trace", "record" },
  example = "smtpsh tls mx.example.com --json",
})
cli.apply_resolver(options, "tls")
local implicit = options.implicit
local host, port = cli.target("tls", words[1], implicit and 465 or 25)
if options["ca-file"] then
  local file = io.open(options["ca-file"])
  if not file then cli.fail("tls", "cannot read --ca-file " .. options["ca-file"]) end
  file:close()
end
local timeout = options.timeout or 10
local target = smtp.endpoint(host, port)
local sni = options.sni or host

-- For an address the certificate's names are not checked in the handshakes (senders check the
-- MX host name, never an address): verification is about the chain; the name is a note below.
local by_address = smtp.is_address(host) and not options.sni
local scan_options = { timeout = timeout, helo = options.helo, implicit = implicit,
                       ca_file = options["ca-file"], sni = sni }
if by_address then scan_options.sni = false end
local function handshake(tls_options) return tlsscan.handshake(target, scan_options, tls_options) end

local function days(n) return report.plural(n, "day") end

local result = { target = target, host = host, port = port, mode = implicit and "implicit" or "starttls",
                 versions = json.array(), accepted = json.array() }
local checks = report.checklist()

-- Each version on its own -------------------------------------------------------------------

local labels = tlsscan.labels
local scan = tlsscan.versions(target, scan_options)
for _, entry in ipairs(scan.entries) do
  result.versions[#result.versions + 1] = { version = entry.version, accepted = entry.accepted,
    negotiated = entry.negotiated, cipher = entry.cipher, group = entry.group, reason = entry.reason,
    error = entry.error }
end
for _, version in ipairs(scan.accepted) do result.accepted[#result.accepted + 1] = version end
local fatal = scan.never_reached
result.never_reached = fatal
result.stopped = scan.stopped

-- The name check of a handshake that checked none (an address target): is the address among
-- the certificate's names? Compared as reverse names, so "::1" matches "0:0:0:0:0:0:0:1".
local function names_address(cert, address)
  local wanted = dns.reverse_name(address)
  for _, name in ipairs(cert.names) do
    if smtp.is_address(name) and dns.reverse_name(name) == wanted then return true end
  end
  return false
end

-- The certificate and its verification from one handshake's TLS info.
local function take_certificate(info)
  result.chain = json.array(info.chain)
  for _, cert in ipairs(info.chain) do cert.names = json.array(cert.names) end
  result.verify = { verified = info.verified, result = info.verify_result, name = info.name,
                    name_matches = info.name_matches,
                    trust = options["ca-file"] and ("CA file " .. options["ca-file"]) or "system CAs" }
  if by_address and info.chain[1] then
    result.verify.name, result.verify.name_matches = host, names_address(info.chain[1], host)
  end
end

-- The default handshake: certificate, verification, DANE -------------------------------------

if not fatal then
  local info, err = handshake {}
  if info then
    result.negotiated = { version = info.version, cipher = info.cipher, group = info.group }
    take_certificate(info)
  else
    result.negotiated = { error = tostring(err) }
    -- A server that only speaks TLS 1.0/1.1 fails the default handshake here (OpenSSL 3 at its
    -- default security level refuses their SHA-1 signatures), yet its certificate is known from
    -- the legacy handshake that worked.
    if scan.best then
      take_certificate(scan.best)
      result.certificate_from = scan.accepted[#scan.accepted]
    end
  end
  if not smtp.is_address(host) then
    local records, terr = dns.tlsa(host, port, { validate = true })
    if records and #records > 0 then
      -- The records are tried whatever their DNSSEC state, so the report can say whether they
      -- would match; only secure ones count (RFC 7672 section 2.2), as the checks below say.
      local dane_info, derr = handshake { tlsa = records, dnssec = records.dnssec == "secure" }
      local usable = 0
      for _, record in ipairs(records) do
        if record.usage == 2 or record.usage == 3 then usable = usable + 1 end
      end
      result.dane = { records = #records, usable = usable, dnssec = records.dnssec, dnssec_reason = records.dnssec_reason,
                      ad = records.ad, ad_disagrees = records.ad_disagrees or nil,
                      chain = records.dnssec_chain and json.array(records.dnssec_chain) or nil,
                      matched = dane_info and dane_info.dane and dane_info.dane.matched or false,
                      record = dane_info and dane_info.dane and dane_info.dane.record,
                      error = (not dane_info) and tostring(derr) or nil }
    elseif records then
      result.dane = { records = 0 }
    elseif terr.rcode ~= "NXDOMAIN" then
      result.dane = { error = tostring(terr) }
    else
      result.dane = { records = 0 }
    end
  end
end

-- Checks and the verdict ------------------------------------------------------------------------

local function range(list)
  if #list == 0 then return "none" end
  local first, last = labels[list[1]], labels[list[#list]]
  return first == last and first or (first .. "-" .. last:gsub("^TLS ", ""))
end

local verdict
if fatal then
  -- One check: why TLS was never reached. No version was tried, so none is called refused.
  local why = "TLS was never reached: " .. fatal.message
  if fatal.kind == "no_starttls" then
    checks:add("starttls", "fail", why)
    verdict = target .. " offers no STARTTLS: mail to it goes unencrypted"
  elseif fatal.stage == "starttls" then
    checks:add("starttls", "fail", why)
    verdict = target .. " refuses STARTTLS: mail to it goes unencrypted"
  else
    checks:add(fatal.stage == "banner" and "greeting" or fatal.stage or "connect", "fail", why)
    verdict = "cannot probe TLS, TLS was never reached: " .. cli.error_message(fatal.message, fatal.stage)
  end
else
  local accepted = result.accepted
  local has = {}
  for _, version in ipairs(accepted) do has[version] = true end
  if #accepted == 0 then
    local reasons = {}
    for _, entry in ipairs(result.versions) do reasons[#reasons + 1] = labels[entry.version] .. ": " .. entry.reason end
    checks:add("versions", "fail", "no TLS version accepted (" .. table.concat(reasons, ", ") .. ")")
    verdict = "accepts no TLS version: every handshake failed"
  elseif not has["tls1.2"] and not has["tls1.3"] then
    -- Who is hurt: senders that insist on TLS 1.2+ (OpenSSL 3 at its default security level,
    -- MTA-STS and DANE senders with modern settings). Opportunistic senders that still allow
    -- TLS 1.0/1.1 deliver: Postfix on Debian 12 with its defaults does, over TLS 1.1.
    checks:add("versions", "fail", "accepts only " .. range(accepted) .. " (deprecated, RFC 8996): " ..
      "senders that require TLS 1.2 or newer fail the handshake; opportunistic senders that allow " ..
      "older versions (e.g. Postfix on Debian 12 with its defaults) still deliver, over " ..
      labels[accepted[#accepted]])
    verdict = "accepts only " .. range(accepted) .. ": senders that require TLS 1.2 or newer cannot deliver over TLS"
  elseif not has["tls1.2"] then
    checks:add("versions", "warn", "accepts only " .. range(accepted) ..
      ": senders limited to TLS 1.2 (many still are) fail the handshake")
    verdict = "accepts only " .. range(accepted) .. ": senders without TLS 1.3 cannot deliver over TLS"
  elseif has.tls1 or has["tls1.1"] then
    checks:add("versions", "warn", "accepts " .. range(accepted) .. ": TLS 1.0 and 1.1 are deprecated (RFC 8996)")
  else
    checks:add("versions", "ok", "accepts " .. range(accepted))
  end
  if scan.stopped then
    checks:add("scan", "warn", labels[scan.stopped.version] .. " and newer were not tried: " ..
      cli.error_message(scan.stopped.message, scan.stopped.stage))
  end
  local leaf = result.chain and result.chain[1]
  if leaf and result.certificate_from then
    local why = result.negotiated.error:find("legacy sigalg", 1, true)
      and ": OpenSSL 3 at its default security level refuses the SHA-1 signatures of TLS 1.0/1.1" or ""
    checks:add("handshake", "skip", "the default handshake failed (" .. result.negotiated.error .. why ..
      "); the certificate above is from the " .. labels[result.certificate_from] .. " handshake")
  end
  if leaf then
    if leaf.days_left < 0 then
      checks:add("expiry", "fail", "expired on " .. leaf.not_after .. " (" .. days(-leaf.days_left) .. " ago)")
      verdict = verdict or ("the certificate expired on " .. leaf.not_after)
    elseif leaf.days_left < 14 then
      checks:add("expiry", "warn", "expires on " .. leaf.not_after .. " (" .. days(leaf.days_left) .. " left)")
    else
      checks:add("expiry", "ok", "valid until " .. leaf.not_after .. " (" .. days(leaf.days_left) .. " left)")
    end
    -- The names are in the certificate block above: a long list (39 names) is not printed twice.
    local count = #leaf.names
    local names = count == 0 and "it names nothing"
      or (not by_address and count <= 3) and ("it names " .. table.concat(leaf.names, ", "))
      or ("its " .. report.plural(count, "name") .. (count == 1 and " is" or " are") .. " listed above")
    if result.verify.name_matches then
      checks:add("name", "ok", "the certificate names " .. result.verify.name)
    elseif by_address then
      -- Senders verify the MX host name, never an address: normal for SMTP, only a note.
      checks:add("name", "skip", "the certificate does not name " .. host .. " (an IP address; " .. names ..
        "): normal for SMTP, senders check the MX host name; --sni NAME checks a name")
    else
      checks:add("name", "warn", "the certificate does not name " .. tostring(result.verify.name) ..
        " (" .. names .. ")")
    end
    if result.verify.verified then
      checks:add("verify", "ok", "verified against the " .. result.verify.trust ..
        (by_address and " (the chain; an address has no name to check)" or ""))
    else
      checks:add("verify", "warn", result.verify.result .. " (against the " .. result.verify.trust .. ")")
    end
  elseif result.negotiated and result.negotiated.error then
    checks:add("certificate", "fail", "the default handshake failed: " .. result.negotiated.error)
  end
  if result.dane then
    local dane, tlsa_name = result.dane, "_" .. port .. "._tcp." .. host
    local ad_text = dane.ad and "the resolver set AD" or "the resolver did not set AD"
    if dane.error and not dane.records then
      checks:add("dane", "warn", "TLSA look-up failed: " .. dane.error)
    elseif dane.records == 0 then
      checks:add("dane", "skip", "no TLSA records for " .. tlsa_name)
    elseif dane.dnssec == "bogus" then
      checks:add("dane", "fail", "the TLSA records of " .. tlsa_name .. " are DNSSEC-bogus (" ..
        tostring(dane.dnssec_reason) .. "): DANE senders will not deliver")
      verdict = verdict or "DANE fails: the TLSA records are bogus, DANE senders will not deliver"
    elseif dane.dnssec ~= "secure" then
      local would = dane.matched and "they would match" or "they would not match either"
      checks:add("dane", "warn", dane.records .. " TLSA record(s) of " .. tlsa_name .. " are " ..
        dane.dnssec .. " (" .. tostring(dane.dnssec_reason) .. "): DANE senders ignore them (" ..
        would .. "; " .. ad_text .. ")")
    elseif dane.usable == 0 then
      -- RFC 7672 sections 2.2 and 3.1.3: without a usable record (PKIX usages 0 and 1 are not),
      -- DANE senders still require TLS but authenticate nothing.
      checks:add("dane", "warn", "none of the " .. dane.records .. " TLSA record(s) of " .. tlsa_name ..
        " is usable for SMTP (only DANE-TA(2) and DANE-EE(3) are, RFC 7672 section 3.1.3): " ..
        "DANE senders require TLS here but authenticate nothing")
    elseif dane.error and not dane.matched then
      checks:add("dane", "fail", "no TLSA record of " .. tlsa_name .. " matches the certificate (" .. dane.error .. ")")
      verdict = verdict or "DANE fails: DANE senders will not deliver"
    elseif not dane.matched then
      checks:add("dane", "fail", "no TLSA record of " .. tlsa_name .. " matches the certificate")
      verdict = verdict or "DANE fails: DANE senders will not deliver"
    else
      checks:add("dane", "ok", "a TLSA record matches (" .. dane.record .. "), DNSSEC-secure as smtpsh validated it (" ..
        ad_text .. ")")
    end
    if dane.ad_disagrees then
      checks:add("dnssec", "warn", "the resolver and smtpsh disagree on " .. tlsa_name .. ": " .. ad_text ..
        ", smtpsh's validation says " .. dane.dnssec)
    end
  end
  verdict = verdict or (checks:worst() == "ok" and "TLS is healthy" or ("TLS works; " .. report.summary(checks)))
end
result.checks = checks:list()
result.verdict = verdict
result.ok = checks:worst() ~= "fail"

if options.json then
  io.write(json.encode(result), "\n")
else
  local colour = cli.colour(options)
  io.write("smtpsh tls ", target, " (", implicit and "implicit TLS" or "STARTTLS", ")\n")
  for _, entry in ipairs(result.versions) do
    local state = entry.accepted and "accepted" or "refused "
    if colour then state = (entry.accepted and "\27[32m" or "\27[31m") .. state .. "\27[0m" end
    local detail = entry.accepted and (entry.cipher .. (entry.group and (" (" .. entry.group .. ")") or ""))
      or (entry.reason .. ": " .. entry.error)
    io.write(string.format("  %-7s %s  %s\n", labels[entry.version], state, detail))
  end
  for i, cert in ipairs(result.chain or {}) do
    local left = report.days_left(cert.days_left)
    io.write(string.format("  certificate %d: %s\n    issuer %s; %s to %s (%s); %s\n    names %s\n    sha256 %s\n",
      i - 1, cert.subject, cert.issuer, cert.not_before, cert.not_after, left, cert.key,
      #cert.names > 0 and table.concat(cert.names, ", ") or "(none)", cert.sha256))
  end
  io.write(report.render(checks, { colour = colour }))
  io.write("verdict: ", report.visible(verdict), "\n")
end
os.exit(result.ok and 0 or 1)
