-- enhanced_status: what an enhanced status code (RFC 3463, "4.4.2") says, in words: its class
-- (success, a temporary or a permanent failure) and its subject and detail, as registered
-- with IANA (RFC 3463, 4468, 4954, 5248, 6531, 6710, 7293, 7372, 7505, 8689). Pure.
--
--   enhanced_status.describe("4.4.2") -> "temporary failure: bad connection" | nil
--   enhanced_status.parse("550 5.1.1 text") -> "5.1.1" | nil   (the code in a reply's text)

local string_match, tonumber = string.match, tonumber

local enhanced_status = {}

local classes = {
  ["2"] = "success",
  ["4"] = "temporary failure",
  ["5"] = "permanent failure",
}

-- subject.detail -> words. X.Y.0 are the "other" codes of each subject.
enhanced_status.details = {
  ["0.0"] = "other or undefined status",
  ["1.0"] = "other address status",
  ["1.1"] = "bad destination mailbox address (the mailbox does not exist)",
  ["1.2"] = "bad destination system address (the domain does not exist or takes no mail)",
  ["1.3"] = "bad destination mailbox address syntax",
  ["1.4"] = "destination mailbox address ambiguous",
  ["1.5"] = "destination address valid",
  ["1.6"] = "destination mailbox has moved, no forwarding address",
  ["1.7"] = "bad sender's mailbox address syntax",
  ["1.8"] = "bad sender's system address",
  ["1.10"] = "recipient address has a null MX (the domain takes no mail)",
  ["2.0"] = "other or undefined mailbox status",
  ["2.1"] = "mailbox disabled, not accepting messages",
  ["2.2"] = "mailbox full",
  ["2.3"] = "message length exceeds an administrative limit",
  ["2.4"] = "mailing list expansion problem",
  ["3.0"] = "other or undefined mail system status",
  ["3.1"] = "mail system full",
  ["3.2"] = "system not accepting network messages",
  ["3.3"] = "system not capable of selected features",
  ["3.4"] = "message too big for system",
  ["3.5"] = "system incorrectly configured",
  ["4.0"] = "other or undefined network or routing status",
  ["4.1"] = "no answer from host",
  ["4.2"] = "bad connection",
  ["4.3"] = "directory server failure (often DNS)",
  ["4.4"] = "unable to route",
  ["4.5"] = "mail system congestion",
  ["4.6"] = "routing loop detected",
  ["4.7"] = "delivery time expired (the sender gave up retrying)",
  ["5.0"] = "other or undefined protocol status",
  ["5.1"] = "invalid command",
  ["5.2"] = "syntax error",
  ["5.3"] = "too many recipients",
  ["5.4"] = "invalid command arguments",
  ["5.5"] = "wrong protocol version",
  ["5.6"] = "authentication exchange line is too long",
  ["6.0"] = "other or undefined media error",
  ["6.1"] = "media not supported",
  ["6.2"] = "conversion required and prohibited",
  ["6.3"] = "conversion required but not supported",
  ["6.4"] = "conversion with loss performed",
  ["6.5"] = "conversion failed",
  ["6.6"] = "message content not available",
  ["6.7"] = "non-ASCII addresses not permitted for that sender or recipient",
  ["6.8"] = "UTF-8 string reply is required, but not permitted by the client",
  ["6.9"] = "UTF-8 header message cannot be transferred to one or more recipients",
  ["7.0"] = "other or undefined security status",
  ["7.1"] = "delivery not authorized, message refused (a policy of the receiver)",
  ["7.2"] = "mailing list expansion prohibited",
  ["7.3"] = "security conversion required but not possible",
  ["7.4"] = "security features not supported",
  ["7.5"] = "cryptographic failure",
  ["7.6"] = "cryptographic algorithm not supported",
  ["7.7"] = "message integrity failure",
  ["7.8"] = "authentication credentials invalid",
  ["7.9"] = "authentication mechanism is too weak",
  ["7.10"] = "encryption needed",
  ["7.11"] = "encryption required for requested authentication mechanism",
  ["7.12"] = "a password transition is needed",
  ["7.13"] = "user account disabled",
  ["7.14"] = "trust relationship required",
  ["7.15"] = "priority level is too low",
  ["7.16"] = "message is too big for the specified priority",
  ["7.17"] = "mailbox owner has changed",
  ["7.18"] = "domain owner has changed",
  ["7.19"] = "RRVS test cannot be completed",
  ["7.20"] = "no passing DKIM signature found",
  ["7.21"] = "no acceptable DKIM signature found",
  ["7.22"] = "no valid author-matched DKIM signature found",
  ["7.23"] = "SPF validation failed",
  ["7.24"] = "SPF validation error",
  ["7.25"] = "reverse DNS validation failed (the sending IP's PTR)",
  ["7.26"] = "multiple authentication checks failed",
  ["7.27"] = "sender address has a null MX",
  ["7.28"] = "mail flood detected (too much mail from this sender or IP)",
  ["7.29"] = "ARC validation failure",
  ["7.30"] = "REQUIRETLS support required",
}

-- "4.4.2" -> "temporary failure: bad connection"; a code whose detail is not registered gets
-- its subject's "other" words. nil for what is no enhanced code.
function enhanced_status.describe(code)
  local class, subject, detail = string_match(tostring(code or ""), "^([245])%.(%d%d?%d?)%.(%d%d?%d?)$")
  if not class then return nil end
  local words = enhanced_status.details[subject .. "." .. detail]
  if not words then
    local other = enhanced_status.details[subject .. ".0"]
    words = other and (other .. " (detail " .. detail .. " is not registered)") or "a subject that is not registered"
  end
  return classes[class] .. ": " .. words
end

-- The enhanced code at the start of a reply's text ("550 5.1.1 ..." or "5.1.1 ..."), or nil.
function enhanced_status.parse(text)
  local code = string_match(tostring(text or ""), "^%d%d%d[ %-]([245]%.%d%d?%d?%.%d%d?%d?)%f[^%d.]")
    or string_match(tostring(text or ""), "^([245]%.%d%d?%d?%.%d%d?%d?)%f[^%d.]")
  if code and tonumber(code:sub(1, 1)) then return code end
  return nil
end

return enhanced_status
