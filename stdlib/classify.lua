-- classify: what an SMTP reply or a failure means, in a word (the class) and in words.
--
--   local classify = require "smtpsh.classify"
--   classify.reply("450 4.7.1 Greylisted, try again in 300 seconds")
--     -> {class = "greylisting", transient = true, code = 450, enhanced = "4.7.1",
--         meaning = "The server is greylisting: ...",
--         advice = "Retry after 5-15 minutes from the same IP; a real MTA will get through."}
--   classify.error(err)   -- an err from smtp.connect, s:rcpt(...), dns.mx(...)
--
-- classify.reply(reply) -> {class, transient, meaning, advice, code, enhanced}
--   reply is a reply table as the smtp module gives it ({code =, enhanced =, text =}, text
--   may have several lines; `lines` is used when there is no text) or a plain string such as
--   "550-5.1.1 The email account...\n550 5.1.1 ..." from which code and enhanced code are
--   read. code and enhanced in the result are the parsed ones (nil when absent).
-- classify.error(err) -> the same shape, for error tables {kind, stage, reply, rcode,
--   reason, message}: kind "reply" is classify.reply(err.reply); a table with a `code` and
--   no kind is taken for a reply; a string is taken for a reply text.
-- classify.classes -> {name = {meaning =, advice =, transient =}}: every class and its
--   default words.
--
-- Reply classes: greylisting, rate_limit, tls_required, mailbox_unknown, mailbox_full,
-- mailbox_disabled, policy, dnsbl, ptr, spf, dmarc, auth, overload, relay_denied, syntax,
-- size, temporary (other 4xx), permanent (other 5xx), ok (2xx/3xx).
-- Error classes: timeout, dropped (closed), connect_refused (refused, unreachable),
-- dns_failure, tls_failure, protocol; other kinds (interrupted, ...) are "permanent".
--
-- How a reply is matched, case-insensitively, the first rule that fits winning:
--   1. 2xx/3xx is ok, whatever the text says;
--   2. texts particular to one big provider (Gmail, Outlook/Office 365, Yahoo, Mimecast,
--      Proofpoint): their codes say less than their words ("[TSS04]", "(S3150)", ...);
--   3. specific enhanced codes (RFC 3463, 7372, 7505, 8689 and providers' own: X.1.1 unknown,
--      X.2.2 full, X.7.25 PTR, X.7.26 authentication, 4.7.650 Outlook reputation, ...),
--      some only with words to match (4.7.1 with a delay is greylisting);
--   4. generic words, in this order: dnsbl, ptr, dmarc, spf, dkim (as dmarc), tls_required,
--      relay_denied, auth, greylisting, rate_limit, mailbox_full, mailbox_unknown,
--      mailbox_disabled, size, overload (not on a 5xx), syntax, policy;
--   5. broad enhanced codes (X.7.x is policy, X.5.x syntax);
--   6. the basic code: 421 overload, 4xx temporary, 530/534/535 auth, 538 tls_required,
--      500-504/555 syntax, 552 size, 5xx permanent.
-- transient follows the code (4xx yes, 5xx and 2xx/3xx no; without a code the enhanced
-- code's class), except where a provider says otherwise (Yahoo "[TS03] ... Retrying will
-- NOT succeed" is a 421 that is not transient).

local type, ipairs, pairs, tonumber, tostring, error =
  type, ipairs, pairs, tonumber, tostring, error
local string_find, string_match, string_lower, string_gsub, string_gmatch, string_sub =
  string.find, string.match, string.lower, string.gsub, string.gmatch, string.sub
local table_concat, math_floor = table.concat, math.floor

local classify = {}

-- Every class: its default meaning, advice and (when there is no code to tell) whether a
-- retry may succeed.
local classes = {
  ok = { false, "The server accepted the command.", "Nothing to do." },
  greylisting = { true,
    "The server is greylisting: it defers the first attempt from an unknown sender and IP and accepts a retry after a while.",
    "Retry after 5-15 minutes from the same IP; a real MTA will get through." },
  rate_limit = { true,
    "The server is limiting how much mail it accepts from this sender or IP.",
    "Slow down (fewer connections and messages per minute), retry later with backoff, and keep complaint rates low; warm up new IPs gradually." },
  tls_required = { false,
    "The server requires an encrypted connection (STARTTLS) before this command.",
    "Issue STARTTLS after EHLO (or use implicit TLS on port 465) before AUTH or MAIL, and check that the sending side supports TLS." },
  mailbox_unknown = { false,
    "The recipient address does not exist.",
    "Check the address for typos and remove it from mailing lists; retrying will not help." },
  mailbox_full = { false,
    "The recipient's mailbox is over its quota.",
    "Retry later if it was a 4xx; otherwise tell the recipient by another channel. A mailbox that stays full is often abandoned." },
  mailbox_disabled = { false,
    "The recipient's mailbox exists but is disabled or inactive.",
    "Do not retry; remove the address or reach the recipient another way." },
  policy = { false,
    "The server refused the mail by policy: spam filtering, reputation or a local block.",
    "Check the sending IP's and domain's reputation, the content and the authentication (SPF, DKIM, DMARC); follow the link in the reply to request delisting if there is one." },
  dnsbl = { false,
    "The sending IP is listed on a DNS blocklist the server uses.",
    "Look the IP up on the list named in the reply (e.g. https://check.spamhaus.org), fix the cause (compromised host, open relay, spam) and request delisting." },
  ptr = { false,
    "The server refuses the sending IP because its reverse DNS (PTR) is missing or does not match its forward DNS (FCrDNS).",
    "Give the sending IP a PTR record naming a host whose A/AAAA record points back to the same IP, and use that name in EHLO." },
  spf = { false,
    "The message failed the sender domain's SPF check: the sending IP is not authorised for the envelope sender's domain.",
    "Add the sending IP (or its provider's include:) to the SPF record of the MAIL FROM domain, or send through a server the record allows." },
  dmarc = { false,
    "The message failed sender authentication (DMARC): neither SPF nor DKIM passed for a domain aligned with the From: header.",
    "Sign with DKIM for the From: domain and align SPF or DKIM with it; check the DMARC record (p=) of the From: domain." },
  auth = { false,
    "The server requires authentication, or refused the credentials or mechanism given.",
    "AUTH with valid credentials after STARTTLS; check the username, the password (or app password), the mechanism and that SMTP AUTH is enabled for the account." },
  overload = { true,
    "The server is busy or temporarily not accepting connections.",
    "Retry later with backoff and fewer parallel connections." },
  relay_denied = { false,
    "The server will not relay: it does not host the recipient's domain and you are not authorised to send through it.",
    "Deliver to the recipient domain's own MX, or authenticate (AUTH) to use this server as your relay." },
  syntax = { false,
    "The server did not understand or accept the command, its parameters or their order.",
    "Check the command syntax, the order (EHLO, MAIL, RCPT, DATA) and the extensions the server announced in EHLO." },
  size = { false,
    "The message is larger than the server accepts.",
    "Check the SIZE limit announced in EHLO and send a smaller message (links instead of large attachments)." },
  temporary = { true,
    "A temporary failure: the server asks to try again later.",
    "Retry later with backoff; the reply text may say what is wrong." },
  permanent = { false,
    "A permanent failure: sending the same thing again will not succeed.",
    "Read the reply text for the cause and fix it before trying again." },
  timeout = { true,
    "The server did not answer in time.",
    "Retry later; if it keeps happening check connectivity to port 25 (firewalls, outbound port blocking) and whether the server tarpits this IP." },
  dropped = { true,
    "The server closed the connection unexpectedly.",
    "Retry later; a server that keeps dropping the connection may be overloaded or silently blocking this IP (check its reputation and blocklists)." },
  connect_refused = { false,
    "Nothing accepts connections at that address and port (connection refused).",
    "Check the host and port; the server may be down, or mail may be handled by another MX." },
  dns_failure = { false,
    "A DNS look-up failed.",
    "Check the name for typos and the domain's DNS (its name servers and records)." },
  tls_failure = { false,
    "The TLS handshake failed.",
    "Check the server's TLS versions, ciphers and certificate (smtpsh tls HOST), and the client's TLS options." },
  protocol = { false,
    "The server broke the SMTP protocol (a malformed or unexpected reply).",
    "Look at the transcript: the server (or something between, such as a firewall doing SMTP inspection) is not speaking SMTP properly." },
}


classify.classes = {}
for name, c in pairs(classes) do
  classify.classes[name] = { transient = c[1], meaning = c[2], advice = c[3] }
end

-- Rules. Fields: class; p = patterns of which one must match the lowercased text (Lua
-- patterns, whitespace runs in the text are single spaces); np = patterns none of which
-- may match; enh = "subject.detail" codes (any class digit); range = {subject, low, high}
-- for the detail; digit = 4 or 5, what the code (or enhanced class) must be; not5 = not on
-- a 5xx; transient, meaning, advice override the class's.

local function rule(class, r)
  r.class = class
  if r.enh then
    local set = {}
    for _, code in ipairs(r.enh) do set[code] = true end
    r.enh = set
  end
  return r
end

local MICROSOFT_DELIST = "Fix the cause, then request delisting: Office 365 at https://sender.office.com, "
  .. "Outlook.com/Hotmail through https://olcsupport.office.com; watch the IP in SNDS."
local YAHOO_CODES = "see https://senders.yahooinc.com/smtp-error-codes"

-- 2. Texts particular to a provider.
local provider_rules = {
  -- Gmail
  rule("rate_limit", { p = { "unusual rate" },
    meaning = "Gmail is rate-limiting the sending IP: it saw an unusual rate of unsolicited mail from it.",
    advice = "Lower the rate and volume from this IP, check spam rates in Google Postmaster Tools and list hygiene, and retry later with backoff." }),
  rule("rate_limit", { p = { "receiving mail at a rate" },
    meaning = "The recipient is receiving mail faster than the server accepts for one mailbox.",
    advice = "Retry later and slow down mail to this recipient." }),
  rule("rate_limit", { p = { "sending quota", "sending limit exceeded", "exceeded the sending limit" },
    meaning = "The sending account's quota (messages per day) is used up.",
    advice = "Wait for the quota to reset (Gmail: a rolling 24 hours) or spread the sending over more time." }),
  rule("ptr", { p = { "ipv6 sending guidelines" },
    meaning = "Gmail requires a PTR record and authentication for mail sent over IPv6.",
    advice = "Give the IPv6 address a PTR record that resolves back to it and authenticate with SPF and DKIM, or send over IPv4." }),
  rule("tls_required", { p = { "sent over a tls", "sent over tls", "senders to use tls" },
    meaning = "Gmail requires bulk senders to use TLS; this message came over an unencrypted connection." }),
  rule("policy", { p = { "likely unsolicited mail", "not authorized to send email directly",
                         "has a policy that prohibited", "very low reputation" } }),
  rule("auth", { p = { "application%-specific password", "log in via your web browser",
                       "username and password not accepted", "smtpclientauthentication is disabled",
                       "basic authentication is disabled" } }),
  -- Outlook.com / Hotmail / Office 365
  rule("policy", { p = { "%f[%w]s3140%f[%W]", "%f[%w]s3150%f[%W]", "part of their network is on our block list",
                         "%f[%w]sc%-00%d", "%f[%w]dy%-00%d", "%f[%w]ou%-00%d", "banned sending ip",
                         "traffic not accepted from this ip" },
    meaning = "Microsoft (Outlook.com / Office 365) blocks mail from this IP or its network range.",
    advice = MICROSOFT_DELIST }),
  rule("rate_limit", { p = { "%f[%w]rp%-00%d" },
    meaning = "Outlook.com limits how many messages it accepts from this IP per hour and per day.",
    advice = "Send less per hour from this IP, retry later, and check the IP in SNDS." }),
  rule("mailbox_unknown", { p = { "recipientnotfound", "recipient not found by smtp address lookup" } }),
  rule("mailbox_full", { p = { "quotaexceededexception" } }),
  -- Yahoo / AOL
  rule("policy", { p = { "%f[%w]ts03%f[%W]", "%f[%w]tss09%f[%W]", "retrying will not succeed" },
    transient = false,
    meaning = "Yahoo has permanently deferred all mail from this IP: retrying will not succeed.",
    advice = "Stop retrying; fix the IP's reputation (complaints, spam, authentication) and contact Yahoo sender support (" .. YAHOO_CODES .. ")." }),
  rule("rate_limit", { p = { "%f[%w]tss04%f[%W]", "%f[%w]ts0[12]%f[%W]", "%f[%w]tss11%f[%W]", "%f[%w]gl01%f[%W]" },
    meaning = "Yahoo is deferring mail from this IP because of unexpected volume or user complaints.",
    advice = "Slow down, retry later with backoff, lower complaint rates (Yahoo's feedback loop) and authenticate with SPF, DKIM and DMARC; " .. YAHOO_CODES .. "." }),
  rule("policy", { p = { "%f[%w]ph01%f[%W]" },
    meaning = "Yahoo refused the message for policy reasons (content or reputation).",
    advice = "Review the content and the sender's reputation and authentication; " .. YAHOO_CODES .. "." }),
  rule("dnsbl", { p = { "%f[%w]bl2[123]%f[%W]" },
    meaning = "Yahoo refuses the IP because Spamhaus lists it.",
    advice = "Look the IP up at https://check.spamhaus.org, fix the cause and request delisting there." }),
  rule("mailbox_unknown", { p = { "doesn't have a [%w%.%-]+ account", "does not have a [%w%.%-]+ account" } }),
  -- Mimecast greylists with these words
  rule("greylisting", { p = { "internal resource temporarily unavailable" },
    meaning = "Mimecast is greylisting: it defers the first attempt from an unknown sender." }),
  -- Proofpoint's IP reputation
  rule("policy", { p = { "ipcheck%.proofpoint%.com" },
    meaning = "Proofpoint blocks the sending IP because of its reputation.",
    advice = "Check the IP and request delisting at https://ipcheck.proofpoint.com after fixing the cause." }),
  -- Exim and others: the sender address failed verification (the words that follow, such as
  -- "Unrouteable address", are about the sender, not the recipient)
  rule("policy", { p = { "sender verify failed", "sender verification failed", "sender address verification" },
    meaning = "The server could not verify the sender address (a callout to its domain's MX failed).",
    advice = "Make sure the MAIL FROM address exists and its domain's MX accepts RCPT for it." }),
}

-- 3. Specific enhanced codes.
local GREY_DELAY = { "try again later", "try later", "retry later", "come back", "try again in",
                     "retry in", "%d+ ?seconds", "%d+ ?secs", "%d+ ?minutes", "%d+ ?mins" }
local NOT_GREY = { "rate", "too many", "too much", "spamhaus", "block", "reverse", "ptr", "hostname",
                   "spf", "dmarc", "reputation", "spam" }

local enhanced_rules = {
  -- Microsoft's own ranges
  rule("policy", { enh = { "7.650", "7.651" },
    meaning = "Microsoft is throttling the IP because of its reputation.",
    advice = "Slow down and improve the IP's reputation (complaints, list hygiene, SNDS and JMRP); new IPs need warming up." }),
  rule("overload", { range = { 7, 500, 699 }, digit = 4,
    meaning = "The Microsoft server is busy (4.7.500-699).", advice = "Retry later with backoff." }),
  rule("dmarc", { enh = { "7.509", "7.515" } }),
  rule("policy", { range = { 7, 606, 649 }, digit = 5,
    meaning = "Office 365 has banned the sending IP (5.7.606-649).", advice = MICROSOFT_DELIST }),
  rule("policy", { range = { 7, 500, 999 }, digit = 5,
    meaning = "Office 365 refused the message or the sending IP (access denied)." }),
  -- Authentication and encryption (RFC 4954, 8689; Gmail, Office 365)
  rule("auth", { enh = { "7.8", "7.57", "7.139", "7.12", "7.14" } }),
  rule("tls_required", { enh = { "7.10", "7.11" } }),
  rule("dmarc", { enh = { "7.30" }, p = { "dkim" },
    meaning = "The message has no DKIM signature that verifies." }),
  rule("tls_required", { enh = { "7.30" },
    meaning = "The message asks for REQUIRETLS, which this path cannot honour." }),
  rule("tls_required", { enh = { "7.29" }, p = { "tls" } }),
  rule("dmarc", { enh = { "7.29" }, meaning = "ARC validation failed (RFC 8617)." }),
  -- Sender authentication (RFC 7372, 7505)
  rule("dmarc", { enh = { "7.20", "7.21", "7.22" },
    meaning = "The message has no valid DKIM signature (for the author's domain)." }),
  rule("spf", { enh = { "7.23", "7.24" } }),
  rule("ptr", { enh = { "7.25" } }),
  rule("dmarc", { enh = { "7.26" }, p = { "dmarc" } }),
  rule("spf", { enh = { "7.26" }, p = { "%f[%w]spf%f[%W]" },
    meaning = "The message is unauthenticated: SPF (or DKIM) did not pass for the sender.",
    advice = "Publish an SPF record that covers the sending IP and sign with DKIM; bulk senders need both and DMARC." }),
  rule("dmarc", { enh = { "7.26" }, meaning = "The message failed several authentication checks (SPF, DKIM, DMARC)." }),
  rule("policy", { enh = { "7.27" }, p = { "null mx" },
    meaning = "The sender's domain publishes a null MX: it says it sends and receives no mail." }),
  rule("spf", { enh = { "7.27" } }),
  rule("rate_limit", { enh = { "7.28" } }),
  rule("dmarc", { enh = { "7.32" } }),
  rule("mailbox_disabled", { enh = { "7.13" } }),
  -- 4.7.1 with a delay is most often greylisting
  rule("greylisting", { enh = { "7.1" }, digit = 4, p = GREY_DELAY, np = NOT_GREY }),
  -- Mailboxes and addresses (RFC 3463)
  rule("mailbox_full", { enh = { "2.2" } }),
  rule("mailbox_disabled", { enh = { "2.1" } }),
  rule("size", { enh = { "2.3", "3.4" } }),
  rule("mailbox_unknown", { enh = { "1.2" },
    meaning = "The recipient's domain does not exist or does not receive mail.",
    advice = "Check the domain for typos (and its MX records); retrying will not help." }),
  rule("mailbox_unknown", { enh = { "1.1", "1.10", "1.6" } }),
  rule("policy", { enh = { "1.8" },
    meaning = "The server refuses the sender address: its domain does not resolve or is not accepted.",
    advice = "Use a MAIL FROM address whose domain has MX or A records and accepts bounces." }),
  rule("relay_denied", { enh = { "4.1" }, p = { "access denied", "relay" } }),
  rule("overload", { enh = { "3.1", "3.2", "4.5" } }),
  rule("rate_limit", { enh = { "5.3" },
    meaning = "Too many recipients for one message (or one connection).",
    advice = "Send to fewer recipients per transaction: split the RCPT list and send the rest in another transaction." }),
}

-- 4. Generic words.
local word_rules = {
  rule("dnsbl", { p = { "spamhaus", "spamcop", "barracuda", "sorbs", "blocklist", "block list", "blacklist",
                        "black list", "%f[%w]rbls?%f[%W]", "dnsbl", "blocked using", "listed at", "listed on",
                        "is listed in", "uceprotect", "psbl", "spamrats", "mailspike", "abuseat",
                        "invaluement", "realtime blackhole" } }),
  rule("ptr", { p = { "reverse dns", "reverse%-dns", "reverse lookup", "reverse hostname", "reverse host name",
                      "reverse name", "reverse mapping", "reverse address", "no reverse", "%f[%w]rdns%f[%W]",
                      "%f[%w]ptr%f[%W]", "fcrdns", "forward%-confirmed", "forward confirmed",
                      "find your hostname", "find your host name", "hostname does not resolve",
                      "host name does not resolve", "hostname doesn't resolve", "does not resolve to your" } }),
  rule("dmarc", { p = { "dmarc" } }),
  rule("spf", { p = { "%f[%w]spf%f[%W]", "sender policy framework" } }),
  rule("dmarc", { p = { "dkim", "domainkeys" }, meaning = "The message's DKIM signature is missing or does not verify." }),
  rule("tls_required", { p = { "must issue a starttls", "starttls first", "starttls is required", "starttls required",
                               "requires starttls", "use starttls", "tls required", "tls is required", "requires tls",
                               "require tls", "requiretls", "encryption required", "encryption is required",
                               "encryption needed", "must use tls", "secure connection required",
                               "tls connection required" } }),
  rule("relay_denied", { p = { "relay access denied", "relay access is denied", "relaying denied", "relay denied",
                               "relay not permitted", "relaying not permitted", "relay not allowed",
                               "relaying not allowed", "relaying is not allowed", "relaying disallowed",
                               "relay prohibited", "relaying prohibited", "not permitted to relay",
                               "not allowed to relay", "unable to relay", "cannot relay", "we do not relay",
                               -- qmail: "553 sorry, that domain isn't in my list of allowed rcpthosts"
                               "allowed rcpthosts" } }),
  rule("auth", { p = { "authentication required", "authentication is required", "auth required",
                       "authentication failed", "authentication failure", "authentication unsuccessful",
                       "authentication credentials", "authentication rejected", "invalid credentials",
                       "bad credentials", "not authenticated", "authenticate first", "please authenticate",
                       "login required", "password", "log in" } }),
  rule("greylisting", { p = { "gr[ae]y[%- ]?list", "postgrey", "sqlgrey" } }),
  rule("rate_limit", { p = { "rate limit", "rate%-limit", "ratelimit", "too many messages", "too many mails",
                             "too many emails", "too many e%-mails", "too much mail", "too many recipients",
                             "number of recipients", "message rate", "sending rate", "connection rate",
                             "throttl", "slow down", "rate exceeded", "exceeded the rate", "per hour", "per day",
                             "hourly", "daily limit", "sending limit", "unexpected volume", "high volume",
                             -- a limit on this client, not the server's load (Postfix, Exim)
                             "connections from", "from your ip", "from this ip", "from your host",
                             "from this host", "per ip", "per client" } }),
  rule("mailbox_full", { p = { "mailbox full", "mailbox is full", "mailbox has exceeded", "mailbox size limit",
                               "inbox is full", "full mailbox", "over quota", "overquota", "quota", "mailbox is over",
                               "user is over", "out of storage", "storage limit" } }),
  rule("mailbox_unknown", { p = { "user unknown", "unknown user", "unknown recipient", "recipient unknown",
                                  "addressee unknown", "address unknown", "unknown address", "no such user",
                                  "no such mailbox", "no such recipient", "no such address", "mailbox not found",
                                  "does not exist", "doesn't exist", "not exist", "recipient not found",
                                  "user not found", "address not found", "unrouteable address",
                                  "unroutable address", "invalid recipient", "invalid mailbox",
                                  "not a valid mailbox", "not a valid recipient", "no mailbox",
                                  "unknown or illegal alias", "undeliverable address", "unknown local part" } }),
  rule("mailbox_disabled", { p = { "mailbox disabled", "mailbox is disabled", "account disabled", "is disabled",
                                   "has been disabled", "disabled account", "inactive", "suspended",
                                   "deactivated", "no longer active", "no longer in use", "account locked",
                                   "account is locked" } }),
  rule("size", { p = { "too big", "too large", "message size", "size limit", "size exceeds", "exceed[%w ]-size",
                       "maximum size", "message length exceeds", "message is larger" } }),
  rule("overload", { not5 = true,
                     p = { "too many connections", "too many concurrent", "too many simultaneous",
                           "too many sessions", "connection limit", "service not available",
                           "service unavailable", "temporarily unavailable", "try again later",
                           "please retry later", "server busy", "server is busy", "system busy", "too busy",
                           "overload", "insufficient system", "system resources", "resources temporarily",
                           "temporary system problem", "closing transmission channel", "shutting down",
                           "maintenance", "load average" } }),
  rule("syntax", { p = { "syntax", "unrecognized command", "command unrecognized", "command not recognized",
                         "unknown command", "not implemented", "bad sequence", "out of sequence",
                         "invalid command", "line too long" } }),
  rule("policy", { p = { "spam", "polic[yi]", "block", "reputation", "not accepted", "prohibit", "banned",
                         "denied", "refused", "not allowed", "not authori[sz]ed", "not permitted",
                         "unsolicited", "junk", "abuse", "complaint", "bulk", "phish", "virus", "malware",
                         "content", "suspicious", "sender verify", "verification failed", "dynamic",
                         "dial%-?up", "residential", "filter", "untrusted" } }),
}

-- 5. Broad enhanced codes.
local broad_rules = {
  rule("policy", { range = { 7, 0, 999 }, digit = 5 }),
  rule("policy", { enh = { "7.1" }, digit = 4 }),
  rule("syntax", { range = { 5, 0, 999 } }),
  rule("syntax", { enh = { "1.3", "1.7" } }),
}

-- Parsing.

-- "5.1.1 text" -> "5.1.1", "text"; nil when the line does not start with an enhanced code.
local function split_enhanced(line)
  local code, rest = string_match(line, "^([245]%.%d%d?%d?%.%d%d?%d?)(.*)$")
  if not code then return nil end
  if rest ~= "" and not string_find(rest, "^%s") then return nil end
  return code, string_match(rest, "^%s*(.-)$")
end

-- reply (table or string) -> {code = int|nil, enhanced = str|nil, digit, subject, detail, text}
local function parse(reply)
  local code, enhanced, raw
  if type(reply) == "string" then
    raw = reply
  elseif type(reply) == "table" then
    code = tonumber(reply.code)
    if code then code = math_floor(code) end
    enhanced = type(reply.enhanced) == "string" and reply.enhanced ~= "" and reply.enhanced or nil
    raw = reply.text
    if type(raw) ~= "string" then
      raw = type(reply.lines) == "table" and table_concat(reply.lines, "\n") or ""
    end
  else
    error("classify.reply: reply must be a table or a string, got " .. type(reply), 3)
  end
  local text = {}
  local given = code and tostring(code)
  for line in string_gmatch(raw, "[^\r\n]+") do
    -- A line may still carry its reply code and enhanced code ("550-5.1.1 text"); when the
    -- table gave the code, only that code is taken off the text.
    local c, rest = string_match(line, "^(%d%d%d)[ %-](.*)$")
    if not c then c, rest = string_match(line, "^(%d%d%d)$"), "" end
    if c and (not given or c == given) then
      code = code or tonumber(c)
      line = rest
    end
    local e, after = split_enhanced(line)
    if e then
      enhanced = enhanced or e
      line = after
    end
    text[#text + 1] = line
  end
  local r = { code = code, enhanced = enhanced }
  r.s = string_gsub(string_lower(table_concat(text, " ")), "%s+", " ")
  if enhanced then
    local d, subject, detail = string_match(enhanced, "^(%d)%.(%d+)%.(%d+)$")
    if d then
      r.edigit, r.subject, r.detail = tonumber(d), tonumber(subject), tonumber(detail)
      r.sd = r.subject .. "." .. r.detail
    end
  end
  if code then r.digit = math_floor(code / 100) else r.digit = r.edigit end
  return r
end

local function any(s, patterns)
  for _, pattern in ipairs(patterns) do
    if string_find(s, pattern) then return true end
  end
  return false
end

local function fits(r, rule)
  if rule.digit and r.digit ~= rule.digit then return false end
  if rule.not5 and r.digit == 5 then return false end
  if rule.enh and not (r.sd and rule.enh[r.sd]) then return false end
  if rule.range then
    local range = rule.range
    if r.subject ~= range[1] or not r.detail or r.detail < range[2] or r.detail > range[3] then return false end
  end
  if rule.p and not any(r.s, rule.p) then return false end
  if rule.np and any(r.s, rule.np) then return false end
  return true
end

local function first(r, rules)
  for _, rule in ipairs(rules) do
    if fits(r, rule) then return rule end
  end
end

local function result(class, r, rule)
  local c = classes[class]
  local transient
  if rule and rule.transient ~= nil then transient = rule.transient
  elseif r and r.digit == 4 then transient = true
  elseif r and r.digit and r.digit >= 2 and r.digit <= 5 then transient = false
  else transient = c[1] end
  return { class = class, transient = transient,
           meaning = rule and rule.meaning or c[2], advice = rule and rule.advice or c[3],
           code = r and r.code, enhanced = r and r.enhanced }
end

local function by_code(r)
  local code, digit = r.code, r.digit
  if digit == 2 or digit == 3 then return "ok" end
  if code == 421 then return "overload" end
  if digit == 4 then return "temporary" end
  if code == 530 or code == 534 or code == 535 then return "auth" end
  if code == 538 then return "tls_required" end
  if code and (code >= 500 and code <= 504 or code == 555) then return "syntax" end
  if code == 552 then return "size" end
  return "permanent"
end

function classify.reply(reply)
  local r = parse(reply)
  if r.digit == 2 or r.digit == 3 then return result("ok", r) end
  local found = first(r, provider_rules) or first(r, enhanced_rules) or first(r, word_rules)
    or first(r, broad_rules)
  if found then return result(found.class, r, found) end
  return result(by_code(r), r)
end

-- Errors.

local dns_words = {
  NXDOMAIN = { "The name does not exist (NXDOMAIN).",
               "Check the domain for typos; a domain that does not exist cannot receive mail." },
  SERVFAIL = { "The domain's name servers failed to answer (SERVFAIL): often broken DNSSEC or lame delegation.",
               "Retry later; if it persists check the domain's DNSSEC chain and its name servers (dig +dnssec, dig +cd)." },
  timeout = { "No DNS server answered in time.",
              "Retry later; check the resolver (--resolver) and that the domain's name servers are reachable." },
  REFUSED = { "The DNS server refused the query (REFUSED).",
              "Use a resolver that serves you, or check the domain's delegation." },
  invalid_name = { "The name is not a valid domain name.", "Check the name for typos or stray characters." },
  none = { "The record that was looked for does not exist.", "Publish the record if it should exist." },
}

local tls_words = {
  verify = "The server's certificate did not verify (expired, self-signed, wrong name or unknown CA).",
  version = "Client and server have no TLS version in common.",
  alert = "The server refused the TLS handshake with an alert (often no cipher or version in common).",
  not_tls = "The server answered the TLS handshake with something that is not TLS.",
  closed = "The server closed the connection during the TLS handshake (often no TLS version or cipher in common).",
  timeout = "The server stopped answering during the TLS handshake.",
}

local function with_stage(sentence, stage)
  if type(stage) ~= "string" or stage == "" then return sentence end
  return string_sub(sentence, 1, -2) .. " (during " .. stage .. ")."
end

local function error_result(class, meaning, advice, transient)
  local c = classes[class]
  if transient == nil then transient = c[1] end
  return { class = class, transient = transient, meaning = meaning or c[2], advice = advice or c[3] }
end

function classify.error(err)
  if type(err) == "string" then return classify.reply(err) end
  if type(err) ~= "table" then
    error("classify.error: err must be a table or a string, got " .. type(err), 2)
  end
  local kind = err.kind
  if kind == nil and err.code ~= nil then return classify.reply(err) end
  local stage = err.stage
  if kind == "reply" then
    if type(err.reply) == "table" or type(err.reply) == "string" then return classify.reply(err.reply) end
    if type(err.message) == "string" and string_find(err.message, "%d%d%d") then
      return classify.reply(string_match(err.message, "%d%d%d.*$"))
    end
    return error_result("protocol", "A reply error without the reply.")
  elseif kind == "timeout" then
    return error_result("timeout", with_stage(classes.timeout[2], stage))
  elseif kind == "closed" then
    return error_result("dropped", with_stage(classes.dropped[2], stage))
  elseif kind == "refused" then
    return error_result("connect_refused")
  elseif kind == "unreachable" then
    return error_result("connect_refused", "There is no route to the host (network or host unreachable).",
      "Check routing and the address family (an IPv6 address without IPv6 connectivity?) and firewalls.")
  elseif kind == "dns" then
    local words = dns_words[err.rcode]
    local transient = err.rcode == "SERVFAIL" or err.rcode == "timeout"
    if words then return error_result("dns_failure", words[1], words[2], transient) end
    return error_result("dns_failure", nil, nil, transient)
  elseif kind == "tls" then
    return error_result("tls_failure", tls_words[err.reason])
  elseif kind == "protocol" then
    return error_result("protocol")
  end
  local message = type(err.message) == "string" and err.message or tostring(kind or "unknown") .. " error"
  if kind == "interrupted" then
    return error_result("permanent", "The operation was interrupted before it finished.",
      "Run it again if the interruption was not meant.")
  end
  return error_result("permanent", "An error smtpsh cannot classify: " .. message .. ".",
    "Read the error message and the transcript.")
end

return classify
