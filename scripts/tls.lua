-- tls: which TLS versions and ciphers an SMTP server accepts, what certificate it presents,
-- whether that verifies, and DANE when TLSA records exist. Each version from TLS 1.0 to 1.3
-- is tried on its own connection, so a version mismatch is named, not guessed.
--
-- usage:  smtpsh tls HOST[:PORT] [--implicit] [--ca-file FILE] [--sni NAME] [--helo NAME]
--                    [--json] [--timeout SECONDS] [--resolver ADDR[:PORT]] [--no-color]
-- output: per version accepted/refused (with the reason) and the cipher chosen, then the
--         certificate chain, the checks and a verdict line; with --json one object:
--         {target, host, port, mode, versions = [...], accepted, negotiated, chain, verify,
--          dane, checks, verdict, ok}
-- exit:   0 no problem found, 1 a problem (version mismatch, expired certificate, DANE
--         mismatch, no STARTTLS, cannot connect), 2 on bad usage

local cli = require "smtpsh.cli"
local json = require "smtpsh.json"
local report = require "smtpsh.report"
local smtp = require "smtpsh.smtp"
local dns = require "smtpsh.dns"

local usage = [==[usage: smtpsh tls HOST[:PORT] [--implicit] [--ca-file FILE] [--sni NAME] [--helo NAME] [--json] [--timeout SECONDS] [--resolver ADDR[:PORT]] [--no-color]
  Tries TLS 1.0, 1.1, 1.2 and 1.3 one by one (STARTTLS on port 25, or implicit TLS with
  --implicit, port 465), then shows the certificate, its verification and DANE.
  Exit 0 no problem found, 1 a problem, 2 bad usage.]==]

local options, words = cli.parse({ ... }, {
  name = "tls", usage = usage, min = 1, max = 1, missing = "missing HOST[:PORT]; see --help",
  options = { implicit = "flag", ["ca-file"] = "string", sni = "string", helo = "string" },
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
local target = (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port
local sni = options.sni or host

-- One connection and one handshake with `tls_options`; returns the TLS info, or nil and the
-- error, and the session's transcript for the record.
local function handshake(tls_options)
  local tls = { ca_file = options["ca-file"], sni = sni }
  for key, value in pairs(tls_options) do tls[key] = value end
  if implicit then
    tls.tls = "implicit"
    tls.timeout, tls.helo = timeout, options.helo
    local s, err = smtp.connect(target, tls)
    if not s then return nil, err end
    local info = s.tls
    s:quit()
    return info
  end
  local s, err = smtp.connect(target, { timeout = timeout, helo = options.helo })
  if not s then return nil, err end
  local ehlo, eerr = s:ehlo()
  if not ehlo then
    s.core:close()
    return nil, eerr
  end
  if not s.caps.STARTTLS then
    s:quit()
    return nil, setmetatable({ kind = "no_starttls", message = target .. " does not offer STARTTLS in its EHLO reply" },
                             { __tostring = function(e) return e.message end })
  end
  tls.ehlo = false
  local info, terr = s:starttls(tls)
  if not info then
    s.core:close()
    return nil, terr
  end
  s:quit()
  return info
end

local function days(n) return report.plural(n, "day") end

local result = { target = target, host = host, port = port, mode = implicit and "implicit" or "starttls",
                 versions = json.array(), accepted = json.array() }
local checks = report.checklist()

-- Each version on its own -------------------------------------------------------------------

local names = { "tls1", "tls1.1", "tls1.2", "tls1.3" }
local labels = { tls1 = "TLS 1.0", ["tls1.1"] = "TLS 1.1", ["tls1.2"] = "TLS 1.2", ["tls1.3"] = "TLS 1.3" }
local fatal
for _, version in ipairs(names) do
  local info, err = handshake { min = version, max = version }
  local entry = { version = version, accepted = info ~= nil }
  if info then
    entry.cipher, entry.group, entry.negotiated = info.cipher, info.group, info.version
    result.accepted[#result.accepted + 1] = version
  else
    entry.reason = err.reason or err.kind
    entry.error = tostring(err)
    -- Only a handshake that was tried has a reason. Nothing about TLS can be learnt from a
    -- server we cannot reach, or that has no STARTTLS or refuses it.
    if not err.reason then fatal = err end
  end
  result.versions[#result.versions + 1] = entry
  if fatal then break end
end

-- The default handshake: certificate, verification, DANE -------------------------------------

if not fatal then
  local info, err = handshake {}
  if info then
    result.negotiated = { version = info.version, cipher = info.cipher, group = info.group }
    result.chain = json.array(info.chain)
    for _, cert in ipairs(info.chain) do cert.names = json.array(cert.names) end
    result.verify = { verified = info.verified, result = info.verify_result, name = info.name,
                      name_matches = info.name_matches,
                      trust = options["ca-file"] and ("CA file " .. options["ca-file"]) or "system CAs" }
  else
    result.negotiated = { error = tostring(err) }
  end
  if not smtp.is_address(host) then
    local records, terr = dns.tlsa(host, port)
    if records and #records > 0 then
      local dane_info, derr = handshake { tlsa = records, dnssec = records.ad }
      result.dane = { records = #records, dnssec = records.ad,
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
  if fatal.kind == "no_starttls" then
    checks:add("starttls", "fail", fatal.message)
    verdict = target .. " offers no STARTTLS: mail to it goes unencrypted"
  elseif fatal.stage == "starttls" then
    checks:add("starttls", "fail", tostring(fatal))
    verdict = target .. " refuses STARTTLS: mail to it goes unencrypted"
  else
    checks:add("connect", "fail", tostring(fatal))
    verdict = "cannot probe TLS, TLS was never reached: " .. cli.error_message(fatal)
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
    checks:add("versions", "fail", "accepts only " .. range(accepted) .. ": modern senders refuse this")
    verdict = "accepts only " .. range(accepted) .. ": modern senders refuse this"
  elseif not has["tls1.2"] then
    checks:add("versions", "warn", "accepts only " .. range(accepted) ..
      ": senders limited to TLS 1.2 (many still are) fail the handshake")
    verdict = "accepts only " .. range(accepted) .. ": senders without TLS 1.3 cannot deliver over TLS"
  elseif has.tls1 or has["tls1.1"] then
    checks:add("versions", "warn", "accepts " .. range(accepted) .. ": TLS 1.0 and 1.1 are deprecated (RFC 8996)")
  else
    checks:add("versions", "ok", "accepts " .. range(accepted))
  end
  local leaf = result.chain and result.chain[1]
  if leaf then
    if leaf.days_left < 0 then
      checks:add("expiry", "fail", "expired on " .. leaf.not_after .. " (" .. days(-leaf.days_left) .. " ago)")
      verdict = verdict or ("the certificate expired on " .. leaf.not_after)
    elseif leaf.days_left < 14 then
      checks:add("expiry", "warn", "expires on " .. leaf.not_after .. " (" .. days(leaf.days_left) .. " left)")
    else
      checks:add("expiry", "ok", "valid until " .. leaf.not_after .. " (" .. days(leaf.days_left) .. " left)")
    end
    if result.verify.name_matches then
      checks:add("name", "ok", "the certificate names " .. result.verify.name)
    else
      checks:add("name", "warn", "the certificate does not name " .. tostring(result.verify.name) ..
        " (it names " .. table.concat(leaf.names, ", ") .. ")")
    end
    if result.verify.verified then
      checks:add("verify", "ok", "verified against the " .. result.verify.trust)
    else
      checks:add("verify", "warn", result.verify.result .. " (against the " .. result.verify.trust .. ")")
    end
  elseif result.negotiated and result.negotiated.error then
    checks:add("certificate", "fail", "the default handshake failed: " .. result.negotiated.error)
  end
  if result.dane then
    if result.dane.error then
      checks:add("dane", "warn", "TLSA look-up or DANE handshake failed: " .. result.dane.error)
    elseif result.dane.records == 0 then
      checks:add("dane", "skip", "no TLSA records for _" .. port .. "._tcp." .. host)
    elseif not result.dane.matched then
      checks:add("dane", "fail", "no TLSA record of _" .. port .. "._tcp." .. host .. " matches the certificate")
      verdict = verdict or "DANE fails: DANE senders will not deliver"
    elseif not result.dane.dnssec then
      checks:add("dane", "warn", "a TLSA record matches (" .. result.dane.record ..
        "), but the resolver did not validate it with DNSSEC (no AD bit)")
    else
      checks:add("dane", "ok", "a TLSA record matches (" .. result.dane.record .. "), DNSSEC-validated")
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
    io.write(string.format("  certificate %d: %s\n    issuer %s; %s to %s (%s left); %s\n    names %s\n    sha256 %s\n",
      i - 1, cert.subject, cert.issuer, cert.not_before, cert.not_after, days(cert.days_left), cert.key,
      #cert.names > 0 and table.concat(cert.names, ", ") or "(none)", cert.sha256))
  end
  io.write(report.render(checks, { colour = colour }))
  io.write("verdict: ", report.visible(verdict), "\n")
end
os.exit(result.ok and 0 or 1)
