-- stdlib/classify.lua: real-world replies from big providers and common MTAs, and errors.
local t = dofile("tests/lua/testing.lua")
local classify = require "smtpsh.classify"

-- {expected class, expected transient, reply as the server sent it}
local samples = {
  -- Gmail
  { "rate_limit", true, "421-4.7.28 [192.0.2.1      15] Our system has detected an unusual rate of\n"
    .. "421-4.7.28 unsolicited mail originating from your IP address. To protect our\n"
    .. "421-4.7.28 users from spam, mail sent from your IP address has been temporarily\n"
    .. "421-4.7.28 rate limited. Please visit\n"
    .. "421 4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. a1si123 - gsmtp" },
  { "rate_limit", true, "421-4.7.0 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address." },
  { "policy", false, "550-5.7.1 [192.0.2.1] Our system has detected that this message is\n"
    .. "550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\n"
    .. "550 5.7.1 this message has been blocked. - gsmtp" },
  { "mailbox_unknown", false, "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
    .. "550-5.1.1 double-checking the recipient's email address for typos or\n"
    .. "550-5.1.1 unnecessary spaces. Learn more at\n"
    .. "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser x1si1 - gsmtp" },
  { "mailbox_full", true, "452-4.2.2 The email account that you tried to reach is over quota. Please direct\n"
    .. "452 4.2.2 the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp" },
  { "mailbox_full", false, "552-5.2.2 The email account that you tried to reach is over quota and inactive." },
  { "mailbox_disabled", false, "550-5.2.1 The email account that you tried to reach is disabled. Learn more at\n"
    .. "550 5.2.1  https://support.google.com/mail/?p=DisabledUser - gsmtp" },
  { "rate_limit", true, "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\n"
    .. "450 4.2.1 prevents additional messages from being delivered. - gsmtp" },
  { "rate_limit", false, "550 5.4.5 Daily user sending quota exceeded. - gsmtp" },
  { "size", false, "552-5.3.4 Your message exceeded Google's message size limits. - gsmtp" },
  { "dmarc", false, "550-5.7.26 Unauthenticated email from example.com is not accepted due to domain's\n"
    .. "550-5.7.26 DMARC policy. Please contact the administrator of example.com domain. - gsmtp" },
  { "spf", false, "550-5.7.26 This mail is unauthenticated, which poses a security risk to the\n"
    .. "550-5.7.26 sender and Gmail users, and has been blocked. The sender must\n"
    .. "550-5.7.26 authenticate with at least one of SPF or DKIM. - gsmtp" },
  { "spf", true, "421-4.7.26 This mail has been rate limited because it is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM." },
  { "spf", false, "550-5.7.27 Your email has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM. SPF check for [example.com] did not pass with ip: [192.0.2.1]." },
  { "ptr", false, "550-5.7.25 [192.0.2.1] The IP address sending this message does not have a\n"
    .. "550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not\n"
    .. "550-5.7.25 point to the sending IP. As a policy, Gmail does not accept messages\n"
    .. "550 5.7.25 from IPs with missing PTR records. - gsmtp" },
  { "ptr", true, "421-4.7.0 [2001:db8::1] This message does not meet IPv6 sending guidelines regarding PTR records and authentication." },
  { "tls_required", true, "421-4.7.29 Your email has been rate limited because this message wasn't sent over a TLS connection. Gmail requires all bulk email senders to use TLS/SSL for SMTP connections." },
  { "dmarc", false, "550-5.7.30 This message does not pass DKIM authentication checks." },
  { "tls_required", false, "530 5.7.0 Must issue a STARTTLS command first. - gsmtp" },
  { "auth", false, "530-5.5.1 Authentication Required. Learn more at https://support.google.com/mail/?p=WantAuthError - gsmtp" },
  { "auth", false, "535-5.7.8 Username and Password not accepted. Learn more at https://support.google.com/mail/?p=BadCredentials - gsmtp" },
  { "auth", false, "534-5.7.9 Application-specific password required. Learn more at https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp" },
  { "policy", false, "550-5.7.1 [192.0.2.1] The IP you're using to send mail is not authorized to send email directly to our servers. Please use the SMTP relay at your service provider instead." },
  { "policy", false, "550-5.7.1 The user or domain that you are sending to (or from) has a policy that prohibited the mail that you sent." },
  { "overload", true, "421-4.7.0 Try again later, closing connection. (EHLO) - gsmtp" },
  { "overload", true, "421-4.3.0 Temporary System Problem. Try again later (WS). - gsmtp" },
  { "temporary", true, "451-4.3.0 Mail server temporarily rejected message. - gsmtp" },
  { "rate_limit", true, "452-4.5.3 Your message has too many recipients. - gsmtp" },
  -- Outlook.com, Hotmail, Office 365
  { "policy", false, "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors." },
  { "policy", false, "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3140)." },
  { "policy", false, "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/ and follow the directions." },
  { "policy", false, "550 5.7.612 Access denied, banned sending IP" },
  { "policy", true, "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775)" },
  { "policy", false, "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP." },
  { "policy", false, "550 5.7.750 Service unavailable. Client blocked from sending from unregistered domains." },
  { "policy", false, "550 5.7.520 Access denied, Your organization does not allow external forwarding." },
  { "dmarc", false, "550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy of reject." },
  { "mailbox_unknown", false, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup" },
  { "relay_denied", false, "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [DB5EUR03FT037.eop-EUR03.prod.protection.outlook.com]" },
  { "relay_denied", false, "550 5.7.64 TenantAttribution; Relay Access Denied" },
  { "overload", true, "450 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77714) [Hostname=AM0PR01MB1234.eurprd01.prod.exchangelabs.com]" },
  { "overload", true, "452 4.3.1 Insufficient system resources" },
  { "mailbox_full", false, "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded" },
  { "auth", false, "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant." },
  { "auth", false, "535 5.7.3 Authentication unsuccessful" },
  { "auth", false, "530 5.7.57 Client not authenticated to send mail. [AM0PR01CA0001.eurprd01.prod.exchangelabs.com]" },
  { "dnsbl", false, "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. To request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1 AS(1450)" },
  { "policy", false, "550 SC-001 (BAY004-MC1F23) Unfortunately, messages from 192.0.2.1 weren't sent. Please contact your Internet service provider. You can tell them that Hotmail does not relay dynamically-assigned IP ranges." },
  { "rate_limit", true, "421 RP-001 (BAY004-MC1F31) Unfortunately, some messages from 192.0.2.1 weren't sent. Please try again. We have limits for how many messages can be sent per hour and per day." },
  -- Yahoo / AOL
  { "rate_limit", true, "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes" },
  { "rate_limit", true, "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints - 4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html" },
  { "rate_limit", true, "421 4.7.0 [TSS11] Excessive unknown recipients - possible Open Relay" },
  { "rate_limit", true, "421 4.7.0 [GL01] Message from (192.0.2.1) temporarily deferred - 4.16.50" },
  { "policy", false, "421 4.7.1 [TS03] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes" },
  { "policy", false, "553 5.7.2 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes" },
  { "policy", false, "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes" },
  { "policy", false, "554 5.7.9 [PH01] Email not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes" },
  { "dnsbl", false, "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list; see http://postmaster.yahoo.com/errors/550-bl23.html" },
  { "spf", false, "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM." },
  { "mailbox_unknown", false, "554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - mta1234.mail.ne1.yahoo.com" },
  { "mailbox_unknown", false, "552 1 Requested mail action aborted, mailbox not found" },
  -- Postfix, postgrey and other greylisting
  { "greylisting", true, "450 4.2.0 <x@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html" },
  { "greylisting", true, "450 4.7.1 <x@example.com>: Recipient address rejected: Greylisted for 300 seconds" },
  { "greylisting", true, "451 4.7.1 Greylisting in action, please come back in 00:05:00" },
  { "greylisting", true, "451 4.7.1 Please try again later" },
  { "greylisting", true, "450 4.7.1 Graylisted, please retry in 5 minutes" },
  { "greylisting", true, "451 Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451" },
  { "dnsbl", false, "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1" },
  { "dnsbl", false, "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using b.barracudacentral.org; http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.1" },
  { "dnsbl", false, "554 Service unavailable; Client host [192.0.2.1] blocked using Barracuda Reputation; http://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.1" },
  { "dnsbl", false, "550 5.7.1 Rejected: 192.0.2.1 listed at bl.spamcop.net" },
  { "dnsbl", false, "554 5.7.1 Rejected - 192.0.2.1 is listed in dnsbl.sorbs.net" },
  { "dnsbl", false, "554 resimta-ch2-18v.sys.comcast.net comcast 192.0.2.1 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001" },
  { "dnsbl", false, "550 5.7.1 Mail from IP 192.0.2.1 was rejected due to listing in Spamhaus PBL" },
  { "dnsbl", false, "550 rejected because 192.0.2.1 is in a black list at zen.spamhaus.org" },
  { "ptr", false, "550 5.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]" },
  { "ptr", true, "450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]" },
  { "ptr", true, "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]" },
  { "ptr", false, "550 5.7.1 No rDNS for 192.0.2.1, see RFC 1912 section 2.1" },
  { "ptr", false, "554 5.7.1 Your hostname does not resolve to your IP (FCrDNS failed)" },
  { "overload", true, "421 4.7.0 Too many connections" },
  -- Postfix's and Exim's per-client limits throttle this client; without "from", the limit is
  -- the server's own.
  { "rate_limit", true, "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.1" },
  { "rate_limit", true, "421 Too many concurrent SMTP connections from this IP address; please try again later." },
  { "overload", true, "421 Too many concurrent SMTP connections; please try again later." },
  { "rate_limit", true, "421 4.7.0 Too many connections from your IP, slow down" },
  { "overload", true, "421 4.3.2 Service not available, closing transmission channel" },
  { "overload", true, "421 mx.example.com Service not available - too busy" },
  { "rate_limit", true, "450 4.7.1 Error: too much mail from 192.0.2.1" },
  { "rate_limit", true, "452 4.5.3 Error: too many recipients" },
  { "relay_denied", false, "554 5.7.1 <x@example.org>: Relay access denied" },
  { "relay_denied", false, "550 relay not permitted" },
  { "mailbox_unknown", false, "550 5.1.1 <x@example.com>: Recipient address rejected: User unknown in virtual mailbox table" },
  { "mailbox_unknown", false, "550 5.1.1 <x@example.com>... User unknown" },
  { "mailbox_unknown", false, "550 Unrouteable address" },
  { "mailbox_unknown", false, "550 5.1.2 <x@nowhere.example>: Recipient address rejected: Domain not found" },
  { "policy", true, "450 4.1.8 <x@nowhere.example>: Sender address rejected: Domain not found" },
  { "policy", false, "550-Verification failed for <x@example.com>\n550-Unrouteable address\n550 Sender verify failed" },
  { "mailbox_full", true, "452 4.2.2 Mailbox full" },
  { "mailbox_full", false, "552 5.2.2 <x@example.com> Quota exceeded (mailbox for user is full)" },
  { "mailbox_disabled", false, "550 5.2.1 <x@example.com>: Recipient address rejected: Mailbox disabled" },
  { "size", false, "552 5.3.4 Message size exceeds fixed limit" },
  { "size", false, "552 Message too big" },
  { "tls_required", false, "530 5.7.0 Must issue a STARTTLS command first" },
  { "tls_required", false, "538 5.7.11 Encryption required for requested authentication mechanism" },
  { "auth", false, "535 5.7.8 Error: authentication failed: authentication failure" },
  { "auth", false, "530 5.7.0 Authentication required" },
  { "auth", true, "454 4.7.0 Temporary authentication failure" },
  { "spf", false, "550 5.7.23 The message was rejected because of Sender Policy Framework violation" },
  { "spf", false, "554 5.7.1 Rejected: SPF fail" },
  { "policy", false, "550 5.7.1 <x@example.com>: Sender address rejected: Access denied" },
  { "policy", false, "550 5.7.1 Message rejected as spam by Content Filtering." },
  { "policy", false, "550 Administrative prohibition" },
  { "policy", false, "554 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1" },
  { "policy", false, "554-Transaction failed\n554-Reject due to policy restrictions.\n554 For explanation visit https://postmaster.gmx.net/en/case?c=r0701&i=ip&v=192.0.2.1&r=1" },
  { "syntax", false, "503 5.5.1 Error: need RCPT command" },
  { "syntax", false, "501 5.5.4 Syntax: MAIL FROM:<address>" },
  { "syntax", false, "502 5.5.2 Error: command not recognized" },
  { "syntax", false, "500 5.5.1 Command unrecognized: \"XYZZY\"" },
  { "syntax", false, "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname" },
  { "syntax", false, "555 5.5.4 Unsupported option: SMTPUTF8" },
  { "syntax", false, "501 5.1.3 Bad recipient address syntax" },
  { "temporary", true, "451 4.3.0 Error: queue file write error" },
  { "temporary", true, "451 Temporary local problem - please try later" },
  { "temporary", true, "450 Requested mail action not taken" },
  { "permanent", false, "554 5.4.6 Too many hops" },
  { "permanent", false, "550 Requested action not taken" },
  { "ok", false, "250 2.1.5 Ok" },
  { "ok", false, "354 End data with <CR><LF>.<CR><LF>" },
  { "ok", false, "250-mx.example.com\n250-PIPELINING\n250-SIZE 10240000\n250 8BITMIME" },
}

for i, sample in ipairs(samples) do
  local class, transient, text = sample[1], sample[2], sample[3]
  local first_line = text:match("^[^\n]*")
  t.test(string.format("%02d %s: %s", i, class, first_line:sub(1, 70)), function()
    local got = classify.reply(text)
    t.eq(got.class, class, "class")
    t.eq(got.transient, transient, "transient")
    t.ok(type(got.meaning) == "string" and got.meaning:match("%.$"), "meaning is a sentence")
    t.ok(type(got.advice) == "string" and #got.advice > 0, "advice")
  end)
end

t.test("at least 40 real-world samples, every reply class covered", function()
  t.ok(#samples >= 40, #samples .. " samples")
  local seen = {}
  for _, sample in ipairs(samples) do seen[sample[1]] = true end
  for _, class in ipairs { "greylisting", "rate_limit", "tls_required", "mailbox_unknown", "mailbox_full",
                           "mailbox_disabled", "policy", "dnsbl", "ptr", "spf", "dmarc", "auth", "overload",
                           "relay_denied", "syntax", "size", "temporary", "permanent", "ok" } do
    t.ok(seen[class], "a sample of " .. class)
    t.ok(classify.classes[class], "classify.classes." .. class)
  end
end)

t.test("string input: code and enhanced code are parsed", function()
  local got = classify.reply("450 4.7.1 Greylisted, try again")
  t.eq(got.class, "greylisting")
  t.eq(got.code, 450)
  t.eq(got.enhanced, "4.7.1")
  t.eq(got.advice, "Retry after 5-15 minutes from the same IP; a real MTA will get through.")
  got = classify.reply("550-5.1.1 first\r\n550 5.1.1 second")
  t.eq({ got.class, got.code, got.enhanced }, { "mailbox_unknown", 550, "5.1.1" })
  got = classify.reply("421 Service not available")
  t.eq({ got.class, got.code, got.enhanced }, { "overload", 421, nil })
  got = classify.reply("220")
  t.eq({ got.class, got.code }, { "ok", 220 })
  -- no code at all: the words decide, the class tells transience
  got = classify.reply("Greylisted, please try again later")
  t.eq({ got.class, got.transient, got.code }, { "greylisting", true, nil })
  got = classify.reply("5.1.1 User unknown")
  t.eq({ got.class, got.transient, got.enhanced }, { "mailbox_unknown", false, "5.1.1" })
  got = classify.reply("4.2.2 Mailbox full")
  t.eq({ got.class, got.transient }, { "mailbox_full", true })
  got = classify.reply("something odd")
  t.eq(got.class, "permanent")
end)

t.test("table input as the smtp module gives it", function()
  -- the engine's text has no codes, one line per reply line
  local reply = { code = 550, enhanced = "5.7.1", text = "Service unavailable; Client host [192.0.2.1] blocked\nusing zen.spamhaus.org",
                  lines = { "5.7.1 Service unavailable; Client host [192.0.2.1] blocked", "5.7.1 using zen.spamhaus.org" },
                  ok = false, transient = false, permanent = true }
  local got = classify.reply(reply)
  t.eq({ got.class, got.transient, got.code, got.enhanced }, { "dnsbl", false, 550, "5.7.1" })
  -- lines are used when there is no text; code as a string is fine
  got = classify.reply({ code = "452", lines = { "4.2.2 The email account that you tried to reach is over quota." } })
  t.eq({ got.class, got.transient, got.code, got.enhanced }, { "mailbox_full", true, 452, "4.2.2" })
  -- a table whose text still starts with its codes
  got = classify.reply({ code = 421, text = "421 4.7.0 [TSS04] Messages temporarily deferred" })
  t.eq({ got.class, got.enhanced }, { "rate_limit", "4.7.0" })
  -- text that starts with other digits keeps them
  got = classify.reply({ code = 550, text = "123 recipients refused" })
  t.eq(got.class, "policy")
  -- only a code
  t.eq(classify.reply({ code = 552 }).class, "size")
  t.eq(classify.reply({ code = 535 }).class, "auth")
  t.eq(classify.reply({ code = 421 }).class, "overload")
  t.eq(classify.reply({ code = 450 }).class, "temporary")
  t.eq(classify.reply({ code = 554 }).class, "permanent")
  t.eq(classify.reply({ code = 250 }).class, "ok")
end)

t.test("case does not matter", function()
  t.eq(classify.reply("450 4.2.0 GREYLISTED").class, "greylisting")
  t.eq(classify.reply("554 5.7.1 BLOCKED USING ZEN.SPAMHAUS.ORG").class, "dnsbl")
  t.eq(classify.reply("421 4.7.0 [tss04] deferred").class, "rate_limit")
end)

t.test("a 2xx is ok whatever its text says", function()
  t.eq(classify.reply("250 2.0.0 Ok: queued, not spam, not blocked").class, "ok")
end)

-- errors

local function class_of(err) local got = classify.error(err); return { got.class, got.transient } end

t.test("error kinds", function()
  t.eq(class_of({ kind = "timeout", stage = "connect", message = "timed out" }), { "timeout", true })
  t.eq(class_of({ kind = "closed", stage = "data", message = "connection closed" }), { "dropped", true })
  t.eq(class_of({ kind = "refused", stage = "connect" }), { "connect_refused", false })
  t.eq(class_of({ kind = "unreachable", stage = "connect" }), { "connect_refused", false })
  t.eq(class_of({ kind = "dns", rcode = "NXDOMAIN" }), { "dns_failure", false })
  t.eq(class_of({ kind = "dns", rcode = "SERVFAIL" }), { "dns_failure", true })
  t.eq(class_of({ kind = "dns", rcode = "timeout" }), { "dns_failure", true })
  t.eq(class_of({ kind = "dns", rcode = "REFUSED" }), { "dns_failure", false })
  t.eq(class_of({ kind = "dns" }), { "dns_failure", false })
  t.eq(class_of({ kind = "tls", stage = "starttls", reason = "verify" }), { "tls_failure", false })
  t.eq(class_of({ kind = "tls", stage = "starttls" }), { "tls_failure", false })
  t.eq(class_of({ kind = "protocol", stage = "data" }), { "protocol", false })
  t.eq(class_of({ kind = "interrupted" }), { "permanent", false })
  t.eq(class_of({ kind = "other", message = "strange" }), { "permanent", false })
end)

t.test("error meanings say what happened", function()
  t.ok(classify.error({ kind = "timeout", stage = "connect" }).meaning:find("during connect", 1, true))
  t.ok(classify.error({ kind = "closed", stage = "data" }).meaning:find("during data", 1, true))
  t.ok(classify.error({ kind = "dns", rcode = "NXDOMAIN" }).meaning:find("NXDOMAIN", 1, true))
  t.ok(classify.error({ kind = "tls", reason = "verify" }).meaning:find("certificate", 1, true))
  t.ok(classify.error({ kind = "tls", reason = "version" }).meaning:find("version", 1, true))
  t.ok(classify.error({ kind = "other", message = "strange thing" }).meaning:find("strange thing", 1, true))
  for _, kind in ipairs { "timeout", "closed", "refused", "dns", "tls", "protocol" } do
    local got = classify.error({ kind = kind })
    t.ok(got.meaning:match("%.$") and #got.advice > 0, kind)
  end
end)

t.test("a reply error delegates to classify.reply", function()
  local err = { kind = "reply", stage = "rcpt", message = "RCPT refused: 450 4.2.0 Greylisted",
                reply = { code = 450, enhanced = "4.2.0", text = "<x@example.com>: Recipient address rejected: Greylisted" } }
  local got = classify.error(err)
  t.eq(got, classify.reply(err.reply))
  t.eq({ got.class, got.transient, got.code }, { "greylisting", true, 450 })
  -- without the reply table, the reply in the message
  got = classify.error({ kind = "reply", message = "RCPT refused: 550 5.1.1 User unknown" })
  t.eq({ got.class, got.code }, { "mailbox_unknown", 550 })
  -- a bare reply table and a plain string work too
  t.eq(classify.error({ code = 552, text = "Message size exceeds fixed limit" }).class, "size")
  t.eq(classify.error("421 4.7.0 Too many connections").class, "overload")
end)

t.test("bad input is an error", function()
  t.raises(function() classify.reply(42) end, "reply must be a table or a string")
  t.raises(function() classify.error(nil) end, "err must be a table or a string")
end)

t.run()
