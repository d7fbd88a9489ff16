-- stdlib/judge.lua: the verdict as a pure function of facts. Each case is a facts table, built
-- the way stdlib/gather.lua writes them, with the verdict, stage and words it must give. The
-- replies' wording is that of real MTAs (Postfix, Exim, postgrey, Exchange) where it matters.
local t = dofile("tests/lua/testing.lua")
local judge = require "smtpsh.judge"
local json = require "smtpsh.json"

-- Builders ---------------------------------------------------------------------------------

local function reply(code, text)
  local enhanced = text:match("^(%d%.%d+%.%d+) ")
  return { code = code, enhanced = enhanced, text = text, line = code .. " " .. text }
end

local function reply_error(stage, code, text)
  local r = reply(code, text)
  return { kind = "reply", stage = stage, message = stage .. " refused: " .. r.line, reply = r }
end

local MX1, MX2, IP1, IP2 = "mx1.example.test", "mx2.example.test", "192.0.2.10", "192.0.2.20"

-- A session that passed every step, over STARTTLS; `over` replaces fields.
local function passed(over)
  local s = {
    purpose = "probe", host = MX1, address = IP1, port = 25, stage = "done", at = 0,
    local_addr = "198.51.100.7:40000", banner = reply(220, MX1 .. " ESMTP Postfix"),
    ehlo = reply(250, MX1), caps = { "PIPELINING", "STARTTLS" }, starttls_offered = true,
    tls = { version = "TLSv1.3", cipher = "TLS_AES_256_GCM_SHA384", verify_result = "ok" },
    rcpt_reply = reply(250, "2.1.5 Ok"),
    steps = { { stage = "banner", seconds = 0.02 }, { stage = "ehlo", seconds = 0.01 } },
    transcript = { "S 220 " .. MX1 .. " ESMTP Postfix", "C EHLO probe.example.test", "S 250 " .. MX1 },
  }
  -- false stands for "absent" (a nil could not sit in `over`).
  for key, value in pairs(over or {}) do s[key] = value or nil end
  return s
end

-- A session that stopped at `stage` with `err`.
local function stopped(stage, err, over)
  local s = passed { stage = stage, error = err, reply = err.reply, rcpt_reply = false }
  s.rcpt_reply = nil
  if stage == "banner" and err.kind ~= "reply_after_banner" then
    s.banner, s.ehlo, s.caps, s.tls, s.starttls_offered, s.local_addr = nil, nil, nil, nil, nil, s.local_addr
    s.steps = {}
  elseif stage == "ehlo" then
    s.ehlo, s.caps, s.tls, s.starttls_offered = nil, nil, nil, nil
  end
  s.transcript = { "S 220 " .. MX1 .. " ESMTP", err.reply and ("S " .. err.reply.line) or ("! " .. err.message) }
  for key, value in pairs(over or {}) do s[key] = value end
  return s
end

local function no_connect(kind, address, host)
  return { purpose = "probe", host = host or MX1, address = address or IP1, port = 25, stage = "connect",
           error = { kind = kind, stage = "connect", message = (kind == "refused" and "connection refused by " or
             "connect timed out to ") .. (address or IP1) .. ":25" }, transcript = {}, steps = {} }
end

local function clean_source(over)
  local source = { local_ip = "198.51.100.7", ip = "198.51.100.7", ip_from = "local",
                   ptr = { names = { "probe.example.test" }, confirmed = { "probe.example.test" }, ok = true },
                   dnsbl = { zones = { "zen.spamhaus.org" }, listed = {}, errors = {} } }
  for key, value in pairs(over or {}) do source[key] = value end
  return source
end

local listed = { zones = { "zen.spamhaus.org" }, errors = {},
                 listed = { { zone = "zen.spamhaus.org", codes = { "127.0.0.2" }, reason = "https://check.spamhaus.org" } } }
local no_ptr = { names = {}, confirmed = {}, ok = false, reason = "no PTR record" }

-- Facts for address target user@example.test with two MX hosts; `over` replaces fields.
-- `sessions` is the list of sessions; `deciding` defaults to the first probe session that
-- answered TCP (or the first that passed).
local function facts(over)
  local f = {
    version = 1, target = "user@example.test", kind = "address", domain = "example.test", port = 25,
    rcpt = "user@example.test", rcpt_given = true, from = "postmaster@probe.example.test",
    helo = "probe.example.test", helo_from = "ptr",
    settings = { timeout = 10, retries = 1, backoff = 60, sessions = 2, dnsbl = { "zen.spamhaus.org" } },
    dns = { mx = { name = "example.test", records = { { preference = 10, host = MX1 }, { preference = 20, host = MX2 } } } },
    hosts = { { host = MX1, preference = 10, addresses = { IP1 } }, { host = MX2, preference = 20, addresses = { IP2 } } },
    sessions = { passed() }, source = clean_source(),
  }
  for key, value in pairs(over or {}) do
    if value == false and key ~= "deciding" then value = nil end  -- false: absent
    f[key] = value
  end
  if f.deciding == nil then
    for i, s in ipairs(f.sessions) do
      if s.purpose == "probe" and s.stage == "done" then f.deciding = i break end
    end
    for i, s in ipairs(f.sessions) do
      if not f.deciding and s.purpose == "probe" and s.stage ~= "connect" then f.deciding = i end
    end
  elseif f.deciding == false then
    f.deciding = nil
  end
  return f
end

-- A deciding session at `stage` refused with a 4xx, then `tries` retries with their sessions.
local function retried(first, retries, cleared)
  local sessions, tries = { first }, {}
  for i, s in ipairs(retries) do
    s.purpose = "retry"
    sessions[#sessions + 1] = s
    tries[i] = { attempt = i, session = #sessions, at = 60.0 * i }
  end
  return facts { sessions = sessions, deciding = 1,
                 retries = { stage = first.stage, planned = #retries, cleared = cleared, tries = tries } }
end

local function again(stop_at, planned, last)
  local sessions, indices = { passed() }, {}
  for n = 2, stop_at do
    local s = n == stop_at and last or passed()
    s.purpose = "again"
    sessions[#sessions + 1] = s
    indices[#indices + 1] = #sessions
  end
  return facts { sessions = sessions, again = { planned = planned, sessions = indices,
                                                 stopped = last and stop_at or nil } }
end

local function with(f, over)
  for key, value in pairs(over) do f[key] = value end
  return f
end

-- The cases -------------------------------------------------------------------------------

local cases = {
  -- DNS
  { "NXDOMAIN for the domain", facts { dns = { mx = { name = "example.test", rcode = "NXDOMAIN",
      error = { kind = "dns", rcode = "NXDOMAIN", message = "example.test: NXDOMAIN" }, records = {} } },
      hosts = {}, sessions = {}, source = false },
    verdict = "no_mx", stage = "dns", evidence = "NXDOMAIN", check = { "mx", "fail", "does not exist" } },
  { "SERVFAIL for the MX look-up", facts { dns = { mx = { name = "example.test", rcode = "SERVFAIL",
      error = { kind = "dns", rcode = "SERVFAIL", message = "SERVFAIL from 127.0.0.1" }, records = {} } },
      hosts = {}, sessions = {}, source = false },
    verdict = "dns_failure", stage = "dns", transient = true, evidence = "SERVFAIL" },
  { "a null MX is the owner saying no mail", facts { dns = { mx = { name = "example.test", null = true, records = {} } },
      hosts = {}, sessions = {}, source = false },
    verdict = "no_mx", stage = "dns", advice = "null MX", lacks = "publish MX records",
    check = { "mx", "fail", "RFC 7505" } },
  { "no MX and no address", facts { dns = { mx = { name = "example.test", records = {} } }, hosts = {}, sessions = {},
      source = false },
    verdict = "no_mx", stage = "dns", advice = "publish MX records" },
  { "every MX host's address look-up fails", facts { hosts = {
      { host = MX1, preference = 10, addresses = {}, error = { kind = "dns", rcode = "SERVFAIL", message = MX1 .. ": SERVFAIL" } },
      { host = MX2, preference = 20, addresses = {}, error = { kind = "dns", rcode = "timeout", message = MX2 .. ": timed out" } } },
      sessions = {}, source = false },
    verdict = "dns_failure", stage = "dns", evidence = "SERVFAIL" },
  { "every MX host is NXDOMAIN", facts { hosts = {
      { host = MX1, preference = 10, addresses = {}, error = { kind = "dns", rcode = "NXDOMAIN", message = MX1 .. ": NXDOMAIN" } } },
      sessions = {}, source = false },
    verdict = "no_mx", stage = "dns", evidence = "no MX host has an address" },
  { "a host target whose name does not resolve", facts { kind = "host", host = "mx.nowhere.test", dns = false,
      hosts = { { host = "mx.nowhere.test", preference = 0, addresses = {}, error = { kind = "dns", rcode = "SERVFAIL", message = "SERVFAIL" } } },
      sessions = {}, source = false },
    verdict = "dns_failure", stage = "dns", check = { "mx", "skip", "directly" } },

  -- Connect
  { "every MX refuses TCP", facts { sessions = { no_connect("refused"), no_connect("refused", IP2, MX2) }, source = false },
    verdict = "connect_refused", stage = "connect", evidence = "connection refused by 192.0.2.20:25",
    check = { "connect 192.0.2.10:25", "fail", "refused" } },
  { "every MX is silent", facts { sessions = { no_connect("timeout"), no_connect("timeout", IP2, MX2) }, source = false },
    verdict = "connect_timeout", stage = "connect", advice = "port 25" },
  { "refused first, then silent", facts { sessions = { no_connect("refused"), no_connect("timeout", IP2, MX2) }, source = false },
    verdict = "connect_refused", stage = "connect" },
  { "silent first, then refused", facts { sessions = { no_connect("timeout"), no_connect("refused", IP2, MX2) }, source = false },
    verdict = "connect_timeout", stage = "connect" },
  { "the primary refuses TCP and the fallback MX accepts", facts { sessions = { no_connect("refused"),
      passed { host = MX2, address = IP2 } } },
    verdict = "ok", check = { "connect 192.0.2.10:25", "fail", "refused" } },
  { "the primary defers and the fallback MX accepts", facts { sessions = {
      stopped("rcpt", reply_error("rcpt", 451, "4.3.0 Temporary lookup failure")), passed { host = MX2, address = IP2 } } },
    verdict = "ok", check = { "mx " .. MX1, "warn", "a fallback MX accepted" } },
  { "an IPv6 address that refused is shown in brackets", facts { sessions = { no_connect("refused", "2001:db8::10") },
      source = false },
    verdict = "connect_refused", check = { "connect [2001:db8::10]:25", "fail", "refused" } },

  -- The greeting
  { "a drop before the greeting", facts { sessions = { stopped("banner", { kind = "closed", stage = "banner",
      message = "the server closed the connection before its greeting" }) } },
    verdict = "dropped_before_banner", stage = "banner", transient = true, evidence = "closed the connection",
    no_evidence = "^0$", check = { "source ptr", "ok", "no EHLO was sent" }, facts_helo = false },
  { "a greeting that never comes", facts { sessions = { stopped("banner", { kind = "timeout", stage = "banner",
      message = "no greeting within 10 s" }) } },
    verdict = "slow_server", stage = "banner", transient = true },
  { "a malformed greeting", facts { sessions = { stopped("banner", { kind = "protocol", stage = "banner",
      message = "the greeting is not an SMTP reply: 'SSH-2.0-OpenSSH_9.2'" }) } },
    verdict = "protocol_error", stage = "banner", evidence = "SSH%-2%.0" },
  { "421 greeting of load", facts { sessions = { stopped("banner", reply_error("banner", 421, "4.3.2 Service not available, closing transmission channel")) } },
    verdict = "server_busy", stage = "banner", transient = true, evidence = "421 4%.3%.2" },
  { "421 too many connections from your IP", facts { sessions = { stopped("banner", reply_error("banner", 421, "4.7.0 Too many connections from your IP, slow down")) } },
    verdict = "rate_limited", stage = "banner", advice = "fewer parallel sessions from this IP" },
  { "Exim's per-host concurrency limit", facts { sessions = { stopped("banner", reply_error("banner", 421,
      "Too many concurrent SMTP connections from this IP address; please try again later.")) } },
    verdict = "rate_limited", stage = "banner" },
  { "Exim's server-wide concurrency limit", facts { sessions = { stopped("banner", reply_error("banner", 421,
      "Too many concurrent SMTP connections; please try again later.")) } },
    verdict = "server_busy", stage = "banner", advice = "421/4xx" },
  { "Postfix's per-client connection limit", facts { sessions = { stopped("banner", reply_error("banner", 421,
      "4.7.0 mx1.example.test Error: too many connections from 127.0.0.1")) } },
    verdict = "rate_limited", stage = "banner" },
  { "554 greeting naming a blocklist, no listing found", facts { sessions = { stopped("banner", reply_error("banner", 554,
      "5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org")) } },
    verdict = "rejected", stage = "banner", advice = "list of its own" },
  { "554 greeting naming a blocklist, and the listing found", facts { sessions = { stopped("banner", reply_error("banner", 554,
      "5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org")) },
      source = clean_source { dnsbl = listed } },
    verdict = "dnsbl_listed", stage = "banner", evidence = "zen%.spamhaus%.org" },
  { "550 greeting about reverse DNS", facts { sessions = { stopped("banner", reply_error("banner", 550,
      "5.7.25 The IP address sending this message does not have a PTR record setup")) } },
    verdict = "ptr_mismatch", stage = "banner" },
  { "a 554 greeting of no known cause", facts { sessions = { stopped("banner", reply_error("banner", 554, "5.3.2 No SMTP service here")) } },
    verdict = "rejected", stage = "banner", transient = false },
  { "a drop before the greeting beside a listing", facts { sessions = { stopped("banner", { kind = "closed",
      stage = "banner", message = "the server closed the connection before its greeting" }) },
      source = clean_source { dnsbl = listed } },
    verdict = "dnsbl_listed", stage = "banner", check = { "dnsbl", "fail", "listed on zen.spamhaus.org" } },
  { "a drop before the greeting beside a missing PTR", facts { sessions = { stopped("banner", { kind = "closed",
      stage = "banner", message = "closed before greeting" }) }, source = clean_source { ptr = no_ptr } },
    verdict = "ptr_mismatch", stage = "banner", evidence = "no PTR record" },

  -- Later steps
  { "a drop after EHLO", facts { sessions = { stopped("ehlo", { kind = "closed", stage = "ehlo", message = "the server closed the connection" }) } },
    verdict = "dropped_mid_session", stage = "ehlo", advice = "Seen at EHLO" },
  { "a drop at RCPT", facts { sessions = { stopped("rcpt", { kind = "closed", stage = "rcpt", message = "the server closed the connection" }) } },
    verdict = "dropped_mid_session", stage = "rcpt", transient = true },
  { "a drop at RCPT beside a listing", facts { sessions = { stopped("rcpt", { kind = "closed", stage = "rcpt",
      message = "closed" }) }, source = clean_source { dnsbl = listed } },
    verdict = "dnsbl_listed", stage = "rcpt" },
  { "a reply no command asked for", facts { sessions = { stopped("mail", { kind = "protocol", stage = "mail",
      message = "mail answered 334 VXNlcm5hbWU6, which it does not allow" }) } },
    verdict = "protocol_error", stage = "mail" },
  { "a protocol error beside a listing stays a protocol error", facts { sessions = { stopped("rcpt", { kind = "protocol",
      stage = "rcpt", message = "a reply line of 70000 bytes" }) }, source = clean_source { dnsbl = listed } },
    verdict = "protocol_error", stage = "rcpt" },
  { "a reply that comes too late", facts { sessions = { stopped("rcpt", { kind = "timeout", stage = "rcpt", message = "no reply within 10 s" }) } },
    verdict = "slow_server", stage = "rcpt", transient = true },
  { "a slow server beside a listing stays slow", facts { sessions = { stopped("rcpt", { kind = "timeout", stage = "rcpt",
      message = "no reply" }) }, source = clean_source { dnsbl = listed } },
    verdict = "slow_server", stage = "rcpt" },

  -- TLS
  { "a TLS 1.0/1.1-only server", with(facts { sessions = { stopped("starttls", { kind = "tls", stage = "starttls", reason = "alert",
      message = "TLS handshake failed: unsupported protocol" }, { tls_failed = true, starttls_offered = true }),
      passed { purpose = "plain", tls = false } }, deciding = 1 }, {
      tls_versions = { accepted = { "tls1", "tls1.1" }, entries = {
        { version = "tls1", accepted = true }, { version = "tls1.1", accepted = true },
        { version = "tls1.2", accepted = false, reason = "alert", error = "protocol version" },
        { version = "tls1.3", accepted = false, reason = "alert", error = "protocol version" } } }, plain = 2 }),
    verdict = "tls_version_mismatch", stage = "starttls", advice = "TLS 1%.0 and TLS 1%.1", lacks = "share no version",
    check = { "plain text", "ok", "opportunistic senders get through" } },
  { "a handshake that fails with every version", with(facts { sessions = { stopped("starttls", { kind = "tls",
      stage = "starttls", reason = "alert", message = "handshake failure" }, { tls_failed = true, starttls_offered = true }) },
      deciding = 1 }, { tls_versions = { accepted = {}, entries = { { version = "tls1.2", accepted = false, reason = "alert", error = "x" } } } }),
    verdict = "tls_handshake_failed", stage = "starttls", check = { "tls versions", "fail", "no TLS version works" } },
  { "a drop right after STARTTLS", with(facts { sessions = { stopped("starttls", { kind = "tls", stage = "starttls",
      reason = "closed", message = "the server closed the connection during the TLS handshake" }, { tls_failed = true,
      starttls_offered = true }) }, deciding = 1 }, { tls_versions = { accepted = {}, entries = {} } }),
    verdict = "tls_handshake_failed", stage = "starttls", evidence = "during the TLS handshake" },
  { "a TLS failure where plain text is refused too", with(facts { sessions = { stopped("starttls", { kind = "tls",
      stage = "starttls", reason = "alert", message = "handshake failure" }, { tls_failed = true, starttls_offered = true }),
      stopped("mail", reply_error("mail", 530, "5.7.0 Must issue a STARTTLS command first"), { purpose = "plain" }) },
      deciding = 1 }, { tls_versions = { accepted = {}, entries = {} }, plain = 2 }),
    verdict = "tls_handshake_failed", check = { "plain text", "fail", "plain%-text senders are refused" } },
  { "a TLS failure beside a listing stays a TLS failure", with(facts { sessions = { stopped("starttls", { kind = "tls",
      stage = "starttls", reason = "alert", message = "x" }, { tls_failed = true }) }, deciding = 1,
      source = clean_source { dnsbl = listed } }, { tls_versions = { accepted = {}, entries = {} } }),
    verdict = "tls_handshake_failed" },
  { "a STARTTLS failure whose scan never reached TLS", with(facts { sessions = { stopped("starttls", { kind = "tls",
      stage = "starttls", reason = "closed", message = "x" }, { tls_failed = true }) }, deciding = 1 },
      { tls_versions = { accepted = {}, entries = {}, never_reached = { stage = "banner", kind = "reply", message = "greeting refused: 421 busy" } } }),
    verdict = "tls_handshake_failed", check = { "tls versions", "warn", "never reached TLS" } },

  -- A 4xx at MAIL or RCPT, and its retries
  { "greylisting that clears on retry", retried(stopped("rcpt", reply_error("rcpt", 450,
      "4.2.0 <user@example.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.test.html")),
      { passed() }, true),
    verdict = "greylisted", stage = "rcpt", transient = true, evidence = "retry 1 after 60%.0 s: S 250",
    check = { "rcpt", "warn", "accepted on retry 1" } },
  { "greylisting words that never clear", retried(stopped("rcpt", reply_error("rcpt", 450, "4.2.0 Greylisted, please try again later")),
      { stopped("rcpt", reply_error("rcpt", 450, "4.2.0 Greylisted, please try again later")) }, false),
    verdict = "greylisted", stage = "rcpt", advice = "no retry was accepted", lacks = "a retry after a delay is accepted",
    check = { "rcpt", "fail", "still refused after 1 retry: 450" } },
  { "a generic 4xx that never clears is not greylisting", retried(stopped("rcpt", reply_error("rcpt", 451, "4.3.0 Temporary lookup failure")),
      { stopped("rcpt", reply_error("rcpt", 451, "4.3.0 Temporary lookup failure")) }, false),
    verdict = "server_busy", stage = "rcpt", advice = "does not say why", lacks = "reylist" },
  { "a generic 4xx that clears on retry", retried(stopped("rcpt", reply_error("rcpt", 451, "4.3.0 Try again later")),
      { passed() }, true),
    verdict = "greylisted", stage = "rcpt" },
  { "a 421 at RCPT of load", retried(stopped("rcpt", reply_error("rcpt", 421, "4.3.2 System resources exhausted, try later")),
      { stopped("rcpt", reply_error("rcpt", 421, "4.3.2 System resources exhausted, try later")) }, false),
    verdict = "server_busy", stage = "rcpt", advice = "RCPT TO", lacks = "greeted",
    check = { "rcpt", "fail", "after 1 retry: 421" } },
  { "a 421 at RCPT naming the client's rate", retried(stopped("rcpt", reply_error("rcpt", 421, "4.7.0 Rate limit exceeded, slow down")),
      { stopped("rcpt", reply_error("rcpt", 421, "4.7.0 Rate limit exceeded, slow down")) }, false),
    verdict = "rate_limited", stage = "rcpt" },
  { "rate-limit words that clear on retry stay rate limiting", retried(stopped("rcpt", reply_error("rcpt", 450, "4.7.1 Too many messages, slow down")),
      { passed() }, true),
    verdict = "rate_limited", stage = "rcpt" },
  { "Postfix's relay access denied (454) is a refusal", facts { sessions = { stopped("rcpt", reply_error("rcpt", 454,
      "4.7.1 <postmaster@example.test>: Relay access denied")) } },
    verdict = "rejected", stage = "rcpt", transient = false, advice = "relay", lacks = "reylist" },
  { "a greylisting 4xx with --retries 0", with(facts { sessions = { stopped("rcpt", reply_error("rcpt", 450, "4.7.1 Greylisted")) } },
      { retries = { stage = "rcpt", planned = 0, cleared = false, tries = {} } }),
    verdict = "greylisted", check = { "rcpt", "warn", "no retry: %-%-retries 0" } },
  { "a 4xx naming a blocklist, no listing found", facts { sessions = { stopped("rcpt", reply_error("rcpt", 450,
      "4.7.1 Client host rejected: listed on a blacklist")) } },
    verdict = "rejected", advice = "list of its own" },
  { "a 4xx at MAIL", retried(stopped("mail", reply_error("mail", 451, "4.7.1 Greylisted for 5 minutes")),
      { stopped("mail", reply_error("mail", 451, "4.7.1 Greylisted for 5 minutes")) }, false),
    verdict = "greylisted", stage = "mail", advice = "MAIL FROM" },
  { "two retries that never clear say 2 retries", retried(stopped("rcpt", reply_error("rcpt", 450, "4.7.1 Greylisted")),
      { stopped("rcpt", reply_error("rcpt", 450, "4.7.1 Greylisted")), stopped("rcpt", reply_error("rcpt", 450, "4.7.1 Greylisted")) }, false),
    verdict = "greylisted", evidence = "after 2 retries: 450", check = { "rcpt", "fail", "after 2 retries" } },
  { "a retry that drops", retried(stopped("rcpt", reply_error("rcpt", 450, "4.7.1 Greylisted")),
      { stopped("rcpt", { kind = "closed", stage = "rcpt", message = "the server closed the connection" }) }, false),
    verdict = "greylisted", evidence = "closed the connection" },
  { "greylisting beside a listing stays greylisting", with(retried(stopped("rcpt", reply_error("rcpt", 450, "4.7.1 Greylisted")),
      { passed() }, true), { source = clean_source { dnsbl = listed } }),
    verdict = "greylisted" },

  -- Permanent refusals
  { "550 user unknown", facts { sessions = { stopped("rcpt", reply_error("rcpt", 550, "5.1.1 <user@example.test>: Recipient address rejected: User unknown in virtual mailbox table")) } },
    verdict = "rejected", stage = "rcpt", transient = false, evidence = "5%.1%.1" },
  { "550 beside a listing", facts { sessions = { stopped("rcpt", reply_error("rcpt", 550, "5.7.1 Message rejected")) },
      source = clean_source { dnsbl = listed } },
    verdict = "dnsbl_listed", stage = "rcpt" },
  { "550 beside a missing PTR", facts { sessions = { stopped("rcpt", reply_error("rcpt", 550, "5.7.1 Message rejected")) },
      source = clean_source { ptr = no_ptr } },
    verdict = "ptr_mismatch", stage = "rcpt", check = { "source ptr", "fail", "no PTR record" } },
  { "554 relay access denied", facts { sessions = { stopped("rcpt", reply_error("rcpt", 554, "5.7.1 <user@example.test>: Relay access denied")) } },
    verdict = "rejected", advice = "relay" },
  { "553 at MAIL", facts { sessions = { stopped("mail", reply_error("mail", 553, "5.7.1 Sender address rejected: not logged in")) } },
    verdict = "rejected", stage = "mail", advice = "Seen at MAIL FROM" },
  { "Exim's local blacklist is the receiver's own list", facts { sessions = { stopped("rcpt", reply_error("rcpt", 550,
      "sender IP address 127.0.0.1 is locally blacklisted here. If you think this is wrong, get in touch with postmaster")) } },
    verdict = "rejected", advice = "list of its own", lacks = "delisting" },
  { "a reply about reverse DNS beside a listing keeps the receiver's words", facts { sessions = { stopped("rcpt",
      reply_error("rcpt", 550, "5.7.1 Client host rejected: cannot find your reverse hostname")) },
      source = clean_source { dnsbl = listed } },
    verdict = "ptr_mismatch" },

  -- An MX that accepted
  { "everything passes", facts {},
    verdict = "ok", transient = false, evidence = "S 250 2%.1%.5 Ok", check = { "starttls", "ok", "TLSv1%.3" } },
  { "ok, but the IP is listed", facts { source = clean_source { dnsbl = listed } },
    verdict = "dnsbl_listed", stage = nil, check = { "dnsbl", "fail", "127%.0%.0%.2" } },
  { "ok, but the IP has no PTR", facts { source = clean_source { ptr = no_ptr } },
    verdict = "ptr_mismatch" },
  { "ok, but the EHLO name is not the PTR name", facts { helo = "laptop.local" },
    verdict = "ptr_mismatch", evidence = "EHLO name laptop%.local" },
  { "a listing outranks a PTR problem", facts { source = clean_source { dnsbl = listed, ptr = no_ptr } },
    verdict = "dnsbl_listed" },
  { "ok for a domain target warns that postmaster is exempt", facts { kind = "domain", target = "example.test",
      rcpt = "postmaster@example.test", rcpt_given = false },
    verdict = "ok", check = { "recipient", "warn", "postmaster@example%.test" } },
  { "no STARTTLS offered", facts { sessions = { passed { tls = false, starttls_offered = false, caps = { "PIPELINING" } } } },
    verdict = "ok", check = { "starttls", "warn", "unencrypted" } },
  { "a slow greeting is a warning", facts { sessions = { passed { steps = { { stage = "banner", seconds = 7.5 } } } } },
    verdict = "ok", check = { "banner", "warn", "7500 ms" } },

  -- Back-to-back sessions
  { "one session per client IP", again(2, 2, stopped("banner", reply_error("banner", 421, "4.7.0 Too many connections from your IP, slow down"))),
    verdict = "rate_limited", stage = "banner", transient = true,
    check = { "sessions", "fail", "session 1 succeeded, session 2 stopped at banner" } },
  { "the third session is refused", again(3, 3, stopped("rcpt", reply_error("rcpt", 452, "4.3.1 Insufficient system storage"))),
    verdict = "rate_limited", stage = "rcpt", check = { "sessions", "fail", "sessions 1%-2 succeeded" } },
  { "back-to-back sessions all accepted", again(3, 3, nil),
    verdict = "ok", check = { "sessions", "ok", "3 back%-to%-back sessions" } },
  { "a rate limit beside a listing stays a rate limit", with(again(2, 2, stopped("banner", reply_error("banner", 421, "4.7.0 slow down"))),
      { source = clean_source { dnsbl = listed } }),
    verdict = "rate_limited" },

  -- The source address
  { "behind NAT with no echo: PTR and DNSBL unknown, not ok", facts { source = { local_ip = "192.168.1.20", private = true } },
    verdict = "ok", check = { "source ptr", "warn", "unknown: 192%.168%.1%.20 is a private address" } },
  { "behind NAT, the public address from the greeting", facts { source = clean_source { local_ip = "10.0.0.5",
      private = true, ip = "203.0.113.5", ip_from = "greeting" } },
    verdict = "ok", check = { "source ptr", "ok", "as the server echoed it" } },
  { "a PTR look-up that failed is a warning, not a finding", facts { source = clean_source { ptr = {
      error = { kind = "dns", rcode = "SERVFAIL", message = "SERVFAIL" } } } },
    verdict = "ok", check = { "source ptr", "warn", "failed" } },
  { "DNSBL zones that did not answer", facts { source = clean_source { dnsbl = { zones = { "zen.spamhaus.org" }, listed = {},
      errors = { { zone = "zen.spamhaus.org", error = "query refused: sent through a public or open resolver" } } } } },
    verdict = "ok", check = { "dnsbl", "warn", "no answer from zen%.spamhaus%.org" } },
  { "DNSBL checks turned off", facts { source = clean_source { dnsbl = { zones = {}, listed = {}, errors = {} } } },
    verdict = "ok", check = { "dnsbl", "skip", "%-%-dnsbl none" } },
}

-- Running them ----------------------------------------------------------------------------

local function find_check(checks, name)
  for _, check in ipairs(checks) do if check.name == name then return check end end
end

for _, case in ipairs(cases) do
  t.test(case[1], function()
    local f = case[2]
    if case.facts_helo == false then f.helo = nil end
    local v = judge.verdict(f)
    t.eq(v.verdict, case.verdict, "verdict")
    if case.stage ~= nil or case.verdict == "ok" then t.eq(v.stage, case.stage, "stage") end
    if case.transient ~= nil then t.eq(v.transient, case.transient, "transient") end
    t.eq(v.transient, judge.verdicts[v.verdict][1], "transience comes from the vocabulary")
    t.ok(#v.evidence > 0, "a verdict needs evidence")
    local evidence = table.concat(v.evidence, "\n")
    if case.evidence then t.ok(evidence:find(case.evidence), "evidence lacks '" .. case.evidence .. "':\n" .. evidence) end
    for _, line in ipairs(v.evidence) do
      t.eq(type(line), "string")
      if case.no_evidence then t.ok(not line:find(case.no_evidence), "stray evidence line " .. line) end
    end
    if case.advice then t.ok(v.advice:find(case.advice), "advice lacks '" .. case.advice .. "': " .. v.advice) end
    if case.lacks then t.ok(not v.advice:find(case.lacks, 1, true), "advice says '" .. case.lacks .. "': " .. v.advice) end
    if case.check then
      local checks = judge.checks(f, v.verdict)
      local check = find_check(checks, case.check[1])
      t.ok(check, "no check named " .. case.check[1])
      t.eq(check.status, case.check[2], "status of check " .. case.check[1] .. ": " .. check.detail)
      t.ok(check.detail:find(case.check[3]), "check " .. case.check[1] .. " lacks '" .. case.check[3] .. "': " .. check.detail)
    end
  end)
end

t.test("at least 60 cases, and every verdict of the vocabulary is among them", function()
  t.ok(#cases >= 60, #cases .. " cases")
  local seen = {}
  for _, case in ipairs(cases) do seen[case.verdict] = true end
  for verdict in pairs(judge.verdicts) do t.ok(seen[verdict], "no case gives " .. verdict) end
end)

t.test("every precedence row names a verdict, each finding once", function()
  local kinds = {}
  for _, row in ipairs(judge.precedence) do
    t.ok(judge.verdicts[row[2]], row[2])
    t.ok(not kinds[row[1]], "twice: " .. row[1])
    t.ok(type(row[3]) == "string" and #row[3] > 10, "a reason for " .. row[1])
    kinds[row[1]] = true
  end
end)

t.test("the judge is pure: facts are not changed, and the same facts give the same verdict", function()
  local f = retried(stopped("rcpt", reply_error("rcpt", 450, "4.7.1 Greylisted")), { passed() }, true)
  local before = json.encode(f)
  local first = judge.verdict(f)
  judge.checks(f)
  t.eq(json.encode(f), before)
  t.eq(judge.verdict(f), first)
end)

t.test("facts survive JSON: the verdict judged again from --json's text is the same", function()
  for _, case in ipairs(cases) do
    local again = json.decode(json.encode(case[2]))
    t.eq(judge.verdict(again).verdict, case.verdict, case[1])
  end
end)

t.test("evidence stays bounded however long the transcript", function()
  local lines = {}
  for i = 1, 500 do lines[i] = "S 250-" .. string.rep("x", i % 2 == 0 and 10 or 5000) end
  local f = facts { sessions = { stopped("rcpt", { kind = "protocol", stage = "rcpt", message = "too many lines" },
    { transcript = lines }) } }
  local v = judge.verdict(f)
  t.ok(#v.evidence <= 60, #v.evidence .. " lines")
  for _, line in ipairs(v.evidence) do t.ok(#line <= 340, #line .. " bytes") end
end)

t.run()
