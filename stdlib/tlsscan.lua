-- tlsscan: which TLS versions an SMTP server accepts, each version tried alone on its own
-- connection (connect, EHLO, STARTTLS with min = max = that version; or implicit TLS), so a
-- version mismatch is named, not guessed. Shared by `smtpsh tls` and the diagnosis.
--
--   local tlsscan = require "smtpsh.tlsscan"
--   local scan = tlsscan.versions("mx.example:25", {timeout = 10, helo = "probe.example"})
--   scan.accepted        -> {"tls1.2", "tls1.3"}
--   scan.entries[1]      -> {version = "tls1", label = "TLS 1.0", accepted = false,
--                            reason = "alert", error = "TLS handshake failed: ..."}
--   scan.never_reached   -> nil, or {stage, kind, message} when no handshake could be tried
--   scan.best            -> the TLS info (as s.tls gives it) of the newest accepted version
--
-- opts (all optional): timeout (seconds, default 10), helo, sni (a name; false sends none and
-- checks no name), source, implicit (TLS from the first byte, port-465 style), ca_file.
--
-- tlsscan.versions(target, opts) -> { entries = {...}, accepted = {...}, reached = bool,
--   never_reached = nil | {stage, kind, message, code?}, stopped = nil | {stage, kind, message,
--   code?, version}, best = tls info | nil }
--   never_reached: TLS was never reached (connect failed, the greeting refused service, EHLO
--   failed, no STARTTLS offered, STARTTLS refused with a reply); the scan stops there and no
--   version is listed. stopped: the same kind of failure after some version's handshake was
--   tried (a server that starts refusing connections half-way); the versions after it are
--   not listed.
-- tlsscan.handshake(target, opts [, tls_options]) -> tls info | nil, err: one connection and one
--   handshake with tls_options ({min, max, ciphers, verify, tlsa, dnssec, ...}) over opts.
--   A non-handshake failure keeps the session's error (kind, stage, reply); a server without
--   STARTTLS is err.kind "no_starttls" (stage "ehlo").

local smtp = require "smtpsh.smtp"
local probe = require "smtpsh.probe"

local pairs, ipairs, tostring, setmetatable = pairs, ipairs, tostring, setmetatable

local tlsscan = {}

tlsscan.names = { "tls1", "tls1.1", "tls1.2", "tls1.3" }
tlsscan.labels = { tls1 = "TLS 1.0", ["tls1.1"] = "TLS 1.1", ["tls1.2"] = "TLS 1.2", ["tls1.3"] = "TLS 1.3" }

local error_meta = { __tostring = function(e) return e.message end }

function tlsscan.handshake(target, opts, tls_options)
  opts = opts or {}
  local host, port = smtp.parse_target(target, opts.implicit and 465 or 25)
  if not host then error("tlsscan.handshake: " .. port, 2) end
  local tls = { ca_file = opts.ca_file, sni = opts.sni }
  for key, value in pairs(tls_options or {}) do tls[key] = value end
  if not opts.implicit then tls.ehlo = false end
  -- The one session opener; <close>: the session is closed on every way out (a failed
  -- handshake leaves nothing to QUIT).
  local s <close>, record, err = probe.open(host, port, {
    timeout = opts.timeout or 10, helo = opts.helo, source = opts.source, tls = tls,
    implicit = opts.implicit, ehlo = not opts.implicit, starttls = not opts.implicit })
  if record.stage ~= "open" then return nil, err end
  if not opts.implicit and not record.starttls_offered then
    s:quit()
    return nil, setmetatable({ kind = "no_starttls", stage = "ehlo",
                               message = target .. " does not offer STARTTLS in its EHLO reply" }, error_meta)
  end
  local info = record.live.tls_info
  s:quit()
  return info
end

-- A failure that is not a handshake's, as a plain table.
local function failure(err)
  return { stage = err.stage, kind = err.kind, message = tostring(err),
           code = err.reply and err.reply.code or nil }
end

function tlsscan.versions(target, opts)
  opts = opts or {}
  local scan = { entries = {}, accepted = {}, reached = false }
  for _, version in ipairs(tlsscan.names) do
    local info, err = tlsscan.handshake(target, opts, { min = version, max = version })
    -- Only a handshake that was tried has a reason. Nothing about TLS can be learnt from a
    -- server we cannot reach, or that has no STARTTLS or refuses it.
    if not info and not err.reason then
      if scan.reached then
        scan.stopped = failure(err)
        scan.stopped.version = version
      else
        scan.never_reached = failure(err)
      end
      break
    end
    scan.reached = true
    local entry = { version = version, label = tlsscan.labels[version], accepted = info ~= nil }
    if info then
      entry.negotiated, entry.cipher, entry.group = info.version, info.cipher, info.group
      scan.accepted[#scan.accepted + 1] = version
      scan.best = info
    else
      entry.reason = err.reason
      entry.error = tostring(err)
    end
    scan.entries[#scan.entries + 1] = entry
  end
  return scan
end

return tlsscan
