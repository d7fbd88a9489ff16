-- explain_parse: what a bounce or a mail log says happened to a delivery, as facts. Text in,
-- facts out, no I/O, so every sample of tests/explain/ is a test case and the fuzz target
-- (tests/fuzz/fuzz_explain.cpp) can feed it anything.
--
--   explain_parse.parse(text) -> {
--     attempts = { attempt, ... },       in the order the text tells them
--     sources = { "postfix", ... },      the kinds of text recognised, each once
--     lines = N,                         the text's non-blank lines
--     used = N,                          of them, those that said something understood
--     truncated = BYTES | nil,           a text over max_bytes: its size (only its end was read)
--   }
--   attempt = {
--     source = "postfix" | "exim" | "dsn" | "exchange" | "reply",
--     line = the words it was read from (one line, bounded),
--     recipient = "user@example.com", domain = "example.com",
--     host = "mx.example.com", ip = "192.0.2.1", port = 25,
--     stage = "connect" | "banner" | "ehlo" | "starttls" | "auth" | "mail" | "rcpt" | "data" |
--             "dot" | "quit" | nil (not said),
--     event = "reply"           the server answered `reply` (code, enhanced)
--           | "refused"         the TCP connect was refused
--           | "connect_timeout" the TCP connect had no answer
--           | "unreachable"     no route to the host, network unreachable
--           | "lost"            the server closed the connection (at `stage` when said)
--           | "timeout"         the server stopped answering (at `stage`)
--           | "protocol"        the server's replies broke SMTP (Exim's -19)
--           | "tls_failed"      the TLS handshake failed (`tls_reason`: the library's words)
--           | "tls_not_offered" the sender required TLS; the server did not offer STARTTLS
--           | "dns"             the name did not resolve (`rcode`: "NXDOMAIN" or "SERVFAIL")
--           | "not_tried"       the sender did not try (a retry time not reached)
--           | "delayed"         a delay notice that gives no cause
--           | "delivered",
--     reply = "450 4.7.1 ..." (the server's words), code = 450, enhanced = "4.7.1",
--     status = "deferred" | "bounced" | "delivered" | nil, tls = true | false | nil,
--     tls_version = "TLSv1.3" | nil,
--   }
-- Understood: RFC 3464 delivery status notifications (inside a whole MIME message, quoted-
-- printable or not), Postfix smtp log lines, Exim main log lines, Exchange and Microsoft 365
-- NDRs and message tracking, the texts Gmail, Outlook.com and Yahoo put in their bounces, and
-- bare SMTP replies.

local tonumber, ipairs, type = tonumber, ipairs, type
local string_match, string_gsub, string_lower, string_find, string_sub, string_char =
  string.match, string.gsub, string.lower, string.find, string.sub, string.char
local string_gmatch, table_concat = string.gmatch, table.concat
local math_tointeger = math.tointeger

local explain_parse = {}
local recipient_in_prose, stage_in_prose  -- defined below, used by parse

-- Bounds: a pasted log may be long, a hostile one longer.
explain_parse.max_bytes = 4 << 20   -- of a longer text, only the last this many bytes are read
explain_parse.max_line = 2000       -- an evidence line is cut to this many bytes
explain_parse.max_read_line = 16384 -- a line of the text is read up to this many bytes

-- Helpers ---------------------------------------------------------------------------------------

local function trim(text)
  return (string_match(text, "^%s*(.-)%s*$"))
end

local function bounded(text)
  text = trim(string_gsub(text, "[%c]", " "))
  if #text > explain_parse.max_line then text = string_sub(text, 1, explain_parse.max_line) .. " ..." end
  return text
end

local function domain_of(address)
  local domain = address and string_match(address, "@([^@%s>]+)$")
  return domain and string_lower(domain) or nil
end

local function port_number(text)
  local port = math_tointeger(tonumber(text or ""))
  if port and port >= 1 and port <= 65535 then return port end
  return nil
end

-- "550 5.1.1 text" -> code, enhanced (nil when the text starts with no reply code).
local function reply_codes(text)
  local code = tonumber(string_match(text or "", "^([2-5]%d%d)[ %-]") or string_match(text or "", "^([2-5]%d%d)$"))
  if not code then return nil, nil end
  local enhanced = string_match(text, "^%d%d%d[ %-]([245]%.%d%d?%d?%.%d%d?%d?)%f[^%d.]")
  return code, enhanced
end

-- A multi-line reply pasted as "550-5.7.1 a\n550-5.7.1 b\n550 5.7.1 c" (or as Gmail wraps
-- it inside one line: "550-5.7.1 a 550-5.7.1 b") as one line of text with one code.
local function joined_reply(text)
  local code = string_match(text, "^(%d%d%d)[ %-]")
  if not code then return trim(text) end
  local parts = {}
  for piece in string_gmatch(string_gsub(text, "%s+" .. code .. "[ %-]", "\n" .. code .. "-"), "[^\n]+") do
    local words = string_match(piece, "^%d%d%d[ %-]%s*(.*)$") or piece
    local enhanced = string_match(words, "^([245]%.%d%d?%d?%.%d%d?%d?)%s+")
    if #parts > 0 and enhanced then words = string_sub(words, #enhanced + 2) end
    parts[#parts + 1] = trim(words)
  end
  return code .. " " .. table_concat(parts, " ")
end

-- An enhanced code in `text` (RFC 3463: one to three digits a part), or nil.
local function enhanced_in(text)
  return string_match(text or "", "%f[%d]([245]%.%d%d?%d?%.%d%d?%d?)%f[^%d.]")
end

-- Text quoted as the server's reply: a reply when it starts with a code, else the sender's
-- own words about it (kept as an event smtpsh does not know).
local function with_reply(attempt, text)
  if not reply_codes(trim(text)) then
    attempt.event, attempt.why = "unknown", bounded(text)
    return attempt
  end
  attempt.event = "reply"
  attempt.reply = bounded(joined_reply(text))
  attempt.code, attempt.enhanced = reply_codes(attempt.reply)
  return attempt
end

-- The step a sender names: Postfix's "in reply to RCPT TO command", "while sending RCPT TO",
-- Exim's "after RCPT TO:<...>", "in response to initial connection".
local stage_words = {
  { "initial server greeting", "banner" }, { "initial connection", "banner" }, { "greeting", "banner" },
  { "connect", "banner" }, { "banner", "banner" },
  { "starttls", "starttls" }, { "tls", "starttls" },
  { "ehlo", "ehlo" }, { "helo", "ehlo" }, { "lhlo", "ehlo" },
  { "auth", "auth" },
  { "mail from", "mail" }, { "mail", "mail" },
  { "rcpt to", "rcpt" }, { "rcpt", "rcpt" },
  { "end of data", "dot" }, { "end of message", "dot" }, { "message body", "data" },
  { "data block", "data" }, { "data", "data" },
  { "quit", "quit" },
}

local function stage_of(words)
  words = string_lower(words or "")
  for _, row in ipairs(stage_words) do
    if string_find(words, row[1], 1, true) then return row[2] end
  end
  return nil
end

-- "mx.example.com[192.0.2.1]" or "mx.example.com[192.0.2.1]:25" -> host, ip, port
local function bracketed(text)
  local host, ip, port = string_match(text or "", "^([^%s%[]+)%[([^%]]+)%]:?(%d*)")
  if not host then return nil end
  return host, ip, port_number(port)
end

-- Postfix ---------------------------------------------------------------------------------------

-- What follows "status=WORD (" in a Postfix log line, or what a user pasted of it.
local function postfix_detail(attempt, text)
  local rest = string_match(text, "^delivery temporarily suspended: (.*)$")
  if rest then text = rest end
  local host, ip, said, command = string_match(text, "^host (%S-)%[([^%]]+)%] said: (.-)%s*%(in reply to ([^()]-) command%)")
  if host then
    attempt.host, attempt.ip, attempt.stage = host, ip, stage_of(command)
    return with_reply(attempt, said)
  end
  host, ip, said = string_match(text, "^host (%S-)%[([^%]]+)%] refused to talk to me: (.*)$")
  if host then
    attempt.host, attempt.ip, attempt.stage = host, ip, "banner"
    return with_reply(attempt, said)
  end
  local while_ = nil
  host, ip, while_ = string_match(text, "^lost connection with (%S-)%[([^%]]+)%] while (.*)$")
  if host then
    attempt.host, attempt.ip, attempt.event, attempt.stage = host, ip, "lost", stage_of(while_)
    return attempt
  end
  host, ip, while_ = string_match(text, "^conversation with (%S-)%[([^%]]+)%] timed out while (.*)$")
  if host then
    attempt.host, attempt.ip, attempt.event, attempt.stage = host, ip, "timeout", stage_of(while_)
    return attempt
  end
  local port, why
  host, ip, port, why = string_match(text, "^connect to (%S-)%[([^%]]+)%]:(%d+): (.*)$")
  if host then
    attempt.host, attempt.ip, attempt.port, attempt.stage = host, ip, port_number(port), "connect"
    local lower = string_lower(why)
    attempt.event = string_find(lower, "refused", 1, true) and "refused"
      or string_find(lower, "timed out", 1, true) and "connect_timeout"
      or (string_find(lower, "unreachable", 1, true) or string_find(lower, "no route", 1, true)) and "unreachable"
      or "connect_timeout"
    attempt.why = bounded(why)
    return attempt
  end
  host, ip = string_match(text, "^TLS is required, but was not offered by host (%S-)%[([^%]]+)%]")
  if host then
    attempt.host, attempt.ip, attempt.event, attempt.stage = host, ip, "tls_not_offered", "starttls"
    return attempt
  end
  host, ip, said = string_match(text, "^TLS is required, but host (%S-)%[([^%]]+)%] refused to start TLS: (.*)$")
  if host then
    attempt.host, attempt.ip, attempt.stage = host, ip, "starttls"
    return with_reply(attempt, said)
  end
  if string_find(text, "^Cannot start TLS: ") then
    attempt.event, attempt.stage, attempt.tls_reason = "tls_failed", "starttls", bounded(string_sub(text, 19))
    return attempt
  end
  local name, why_dns = string_match(text, "^Host or domain name not found%. Name service error for name=(%S+) type=%w+: (.*)$")
  if name then
    attempt.event, attempt.stage, attempt.host = "dns", "dns", name
    attempt.rcode = string_find(why_dns, "try again", 1, true) and "SERVFAIL" or "NXDOMAIN"
    return attempt
  end
  if string_find(text, "^host %S+%[[^%]]+%] said: ") then
    host, ip, said = string_match(text, "^host (%S-)%[([^%]]+)%] said: (.*)$")
    attempt.host, attempt.ip = host, ip
    return with_reply(attempt, said)
  end
  return nil
end

local postfix_status = { deferred = "deferred", bounced = "bounced", sent = "delivered", expired = "bounced" }

-- One Postfix log line: "... postfix/smtp[123]: QID: to=<a@b>, relay=h[ip]:25, ..., status=X (...)",
-- and the lines of the same process that say more: "TLS connection established" before the
-- status line of that connection, "TLS library problem" before "Cannot start TLS".
local function postfix_status_line(line, fields, pid, context)
  local recipient = string_match(fields, "^to=<([^>]*)>")
  local relay = string_match(fields, "relay=([^,%s]+)")
  local status, detail = string_match(fields, "status=(%w+) %((.*)%)%s*$")
  status = status or string_match(fields, "status=(%w+)")
  local attempt = { source = "postfix", line = bounded(line), recipient = recipient, domain = domain_of(recipient),
                    status = postfix_status[status] or status }
  if relay and relay ~= "none" then attempt.host, attempt.ip, attempt.port = bracketed(relay) end
  local dsn = enhanced_in(string_match(fields, "dsn=(%S+)"))
  local tls = context.tls[pid]
  context.tls[pid] = nil  -- it belonged to this connection
  if tls then attempt.tls, attempt.tls_version = true, tls end
  if status == "sent" then
    attempt.event = "delivered"
  elseif not (detail and postfix_detail(attempt, detail)) then
    attempt.event, attempt.why = "unknown", detail and bounded(detail) or nil
  end
  attempt.enhanced = attempt.enhanced or dsn
  if attempt.event == "tls_failed" and context.tls_problem[pid] then attempt.tls_reason = context.tls_problem[pid] end
  return attempt
end

local function postfix_line(line, context)
  local pid, rest = string_match(line, "postfix[%w/%-_.]*/[%w%-]+%[(%d+)%]: (.*)$")
  if not pid then
    -- A status pasted without the log line's start, or only its text in parentheses.
    local fields = string_match(line, "(to=<[^>]*>, .*status=%w+.*)$")
    if fields then return postfix_status_line(line, fields, "-", context) end
    local attempt = { source = "postfix", line = bounded(line) }
    local detail = string_match(line, "status=%w+ %((.*)%)%s*$") or trim(line)
    if postfix_detail(attempt, detail) then return attempt end
    return nil
  end
  local fields = string_match(rest, "^%w+: (to=<.*)$")
  if fields then return postfix_status_line(line, fields, pid, context) end
  local version = string_match(rest, "TLS connection established to %S+: (TLSv[%d.]+)")
  if version then
    context.tls[pid] = version
    return "used"
  end
  local problem = string_match(rest, "^warning: TLS library problem: (.*)$")
  if problem then
    context.tls_problem[pid] = bounded(string_match(problem, "^error:%x+:SSL routines::(.-):") or problem)
    return "used"
  end
  if string_find(rest, "^SSL_connect error to ") then return "used" end
  -- "QID: Cannot start TLS: handshake failure", "QID: host h[ip] said: ...": an event of a
  -- delivery told on a line of its own.
  local attempt = { source = "postfix", line = bounded(line) }
  if postfix_detail(attempt, string_match(rest, "^%w+: (.*)$") or rest) then
    if attempt.event == "tls_failed" and context.tls_problem[pid] then attempt.tls_reason = context.tls_problem[pid] end
    return attempt
  end
  return nil
end

-- Exim ------------------------------------------------------------------------------------------

local exim_errno = {
  ["-18"] = "lost", ["-19"] = "protocol", ["-37"] = "tls_failed", ["-38"] = "tls_not_offered",
  ["-43"] = "connect_timeout", ["-53"] = "not_tried", ["110"] = "connect_timeout", ["111"] = "refused",
  ["113"] = "unreachable", ["101"] = "unreachable",
}

local function exim_line(line)
  local flag, recipient, rest = string_match(line, "%s([=%*][=>%*]) (%S+@%S+)(.*)$")
  if not flag or (flag ~= "==" and flag ~= "**" and flag ~= "=>") then return nil end
  recipient = string_match(recipient, "^<?([^<>]+)>?$")
  local attempt = { source = "exim", line = bounded(line), recipient = recipient, domain = domain_of(recipient),
                    status = flag == "==" and "deferred" or flag == "**" and "bounced" or "delivered" }
  local host, ip, port = string_match(rest, " H=(%S+) %[([%x:.]+)%]:?(%d*)")
  if host then attempt.host, attempt.ip, attempt.port = host, ip, port_number(port) end
  local tls = string_match(rest, " X=(TLS[%w.]+)")
  if tls then attempt.tls, attempt.tls_version = true, tls end
  if flag == "=>" then
    attempt.event = "delivered"
    return attempt
  end
  local errno = string_match(rest, " defer %((%-?%d+)%)")
  local message = string_match(rest, "%]:?%d*:? (.*)$") or string_match(rest, "%(%-?%d+%)[^:]*: (.*)$")
    or string_match(rest, ": (.*)$") or ""
  local after, said = string_match(message, "SMTP error from remote mail server after ([^:]-:?[^:]-): ([2-5]%d%d[ %-].*)$")
  if after then
    attempt.stage = stage_of(after)
    return with_reply(attempt, said)
  end
  local in_response = string_match(message, "[Rr]emote host closed connection in response to (.*)$")
    or string_match(message, "[Rr]emote host closed connection after (.*)$")
  if in_response then
    attempt.event, attempt.stage = "lost", stage_of(in_response)
    return attempt
  end
  local timed = string_match(message, "SMTP timeout after (.*)$")
  if timed then
    attempt.event, attempt.stage = "timeout", stage_of(timed)
    return attempt
  end
  local tls_words = string_match(message, "TLS session: (.*)$") or string_match(message, "TLS error on connection .-: (.*)$")
  if tls_words then
    attempt.event, attempt.stage, attempt.tls_reason = "tls_failed", "starttls", bounded(tls_words)
    return attempt
  end
  if string_find(message, "retry time not reached", 1, true) then
    attempt.event = "not_tried"
    return attempt
  end
  local lower = string_lower(message)
  if string_find(lower, "connection refused", 1, true) then
    attempt.event, attempt.stage = "refused", "connect"
  elseif string_find(lower, "connection timed out", 1, true) then
    attempt.event, attempt.stage = "connect_timeout", "connect"
  elseif string_find(lower, "all relevant mx records point to non%-existent hosts") or
         string_find(lower, "unrouteable address", 1, true) then
    attempt.event, attempt.stage, attempt.rcode = "dns", "dns", "NXDOMAIN"
  elseif errno and exim_errno[errno] then
    attempt.event = exim_errno[errno]
    if attempt.event == "refused" or attempt.event == "connect_timeout" then attempt.stage = "connect" end
    if attempt.event == "tls_failed" or attempt.event == "tls_not_offered" then attempt.stage = "starttls" end
  else
    local code = reply_codes(message)
    if code then return with_reply(attempt, message) end
    attempt.event, attempt.why = "unknown", bounded(message)
  end
  return attempt
end

-- Exchange and Microsoft 365 --------------------------------------------------------------------

local function exchange_text(text, context)
  local found = {}
  -- Message tracking: "LED=451 4.4.0 Primary target IP address responded with: "421 4.4.2 ...".
  --  Attempted failover ... The last endpoint attempted was 192.0.2.1:25};{FQDN=...};{IP=...}"
  for led in string_gmatch(text, "LED=([^}\n]*)") do
    local attempt = { source = "exchange", line = bounded("LED=" .. led), status = "deferred" }
    local inner = string_match(led, "[Pp]rimary target IP address responded with: \"(.-)\"")
    attempt.ip, attempt.port = string_match(led, "last endpoint attempted was ([%x.:]-):(%d+)")
    attempt.port = port_number(attempt.port)
    local fqdn = string_match(text, "{FQDN=([^}\n]*)}")
    if fqdn and fqdn ~= "" then attempt.host = fqdn end
    local ip = string_match(text, "{IP=([^}\n]*)}")
    if ip and ip ~= "" then attempt.ip = ip end
    found[#found + 1] = attempt
    context.exchange_reply(attempt, inner or led)
  end
  if #found > 0 then return found end
  for line in string_gmatch(text, "[^\n]+") do
    local inner = string_match(line, "[Pp]rimary target IP address responded with: \"(.-)\"")
      or string_match(line, "[Pp]rimary target IP address responded with: (.*)$")
    local server, ip, said = string_match(line, "[Rr]emote [Ss]erver at (%S+) %(([%x.:]+)%) returned '(.-)'")
    said = said or string_match(line, "[Rr]emote [Ss]erver returned '(.-)'")
    if inner or said then
      local attempt = { source = "exchange", line = bounded(line), host = server, ip = ip }
      local last_ip, last_port = string_match(line, "last endpoint attempted was ([%x.:]-):(%d+)")
      if last_ip then attempt.ip, attempt.port = last_ip, port_number(last_port) end
      context.exchange_reply(attempt, inner or said)
      found[#found + 1] = attempt
    elseif string_find(line, "4.4.7", 1, true) and string_find(string_lower(line), "delayed", 1, true) then
      found[#found + 1] = { source = "exchange", line = bounded(line), event = "delayed", enhanced = "4.4.7",
                            status = "deferred" }
    elseif string_find(line, "4.4.0", 1, true) and string_find(line, "DNS query failed", 1, true) then
      found[#found + 1] = { source = "exchange", line = bounded(line), event = "dns", stage = "dns",
                            enhanced = "4.4.0", rcode = "SERVFAIL", status = "deferred" }
    end
  end
  return found
end

-- What Exchange quotes: a real reply, or its own words for a dropped connection ("421 4.4.2
-- Connection dropped due to SocketError", which no server sent).
local function exchange_reply(attempt, said)
  local lower = string_lower(said)
  if string_find(lower, "socketerror", 1, true) or string_find(lower, "connection dropped", 1, true) then
    attempt.event, attempt.enhanced, attempt.why = "lost", enhanced_in(said), bounded(said)
    return attempt
  end
  if string_find(lower, "timed out", 1, true) or string_find(lower, "timeout", 1, true) then
    local code = reply_codes(said)
    if not code or code == 451 then
      attempt.event, attempt.why = "connect_timeout", bounded(said)
      attempt.stage = "connect"
      return attempt
    end
  end
  local code = reply_codes(said)
  if code then return with_reply(attempt, said) end
  attempt.event, attempt.why = "unknown", bounded(said)
  return attempt
end

-- RFC 3464 --------------------------------------------------------------------------------------

local dsn_fields = {
  ["reporting-mta"] = true, ["final-recipient"] = true, ["original-recipient"] = true, ["action"] = true,
  ["status"] = true, ["remote-mta"] = true, ["diagnostic-code"] = true, ["last-attempt-date"] = true,
  ["will-retry-until"] = true, ["x-postfix-sender"] = true, ["arrival-date"] = true,
  ["x-postfix-queue-id"] = true, ["x-display-name"] = true, ["received-from-mta"] = true,
}

-- The per-recipient fields of every delivery-status part, unfolded, in order: one attempt per
-- Final-Recipient.
local function dsn_attempts(lines)
  local found, current, last_field = {}, nil, nil
  local used = 0
  for _, line in ipairs(lines) do
    local name, value = string_match(line, "^([%a][%w%-]*):%s*(.*)$")
    local key = name and string_lower(name)
    if key and dsn_fields[key] then
      used = used + 1
      if key == "final-recipient" then
        current = { source = "dsn", fields = {} }
        found[#found + 1] = current
      end
      if current then
        current.fields[key] = value
        last_field = key
      end
    elseif current and last_field and string_find(line, "^[ \t]+%S") then
      current.fields[last_field] = current.fields[last_field] .. " " .. trim(line)
    else
      last_field = nil
    end
  end
  local attempts = {}
  for _, entry in ipairs(found) do
    local f = entry.fields
    local recipient = string_match(f["final-recipient"] or "", ";%s*<?([^<>%s]+)>?")
    local attempt = { source = "dsn", recipient = recipient, domain = domain_of(recipient) }
    local action = string_lower(trim(f.action or ""))
    attempt.status = action == "failed" and "bounced" or action == "delayed" and "deferred"
      or (action == "delivered" or action == "relayed" or action == "expanded") and "delivered" or nil
    attempt.enhanced = enhanced_in(f.status)
    local remote = string_match(f["remote-mta"] or "", ";%s*(.*)$")
    if remote then
      local name = string_match(remote, "^%[?([^%s%]%(]+)")
      if name then
        name = string_gsub(name, "%.$", "")
        if string_match(name, "^[%d.]+$") or string_find(name, ":", 1, true) then attempt.ip = name else attempt.host = name end
      end
      attempt.ip = attempt.ip or string_match(remote, "[%[%(]([%d.]+)[%],]") or string_match(remote, "[%[%(]([%x:]+:[%x:]+)[%],]")
    end
    local diagnostic = string_match(f["diagnostic-code"] or "", "^%s*[%w%-]+%s*;%s*(.*)$") or f["diagnostic-code"]
    attempt.line = bounded("Diagnostic-Code: " .. (diagnostic or f.status or "?"))
    if diagnostic and reply_codes(diagnostic) then
      with_reply(attempt, diagnostic)
      attempt.enhanced = attempt.enhanced or enhanced_in(f.status)
    elseif diagnostic then
      -- A sender's own words (Postfix puts them there too: "lost connection with ...").
      if not postfix_detail(attempt, trim(diagnostic)) then attempt.event, attempt.why = "unknown", bounded(diagnostic) end
    elseif attempt.status == "delivered" then
      attempt.event = "delivered"
    else
      attempt.event = attempt.status == "deferred" and "delayed" or "unknown"
    end
    attempts[#attempts + 1] = attempt
  end
  return attempts, used
end

-- Quoted-printable (RFC 2045): soft line breaks joined, =XX decoded. Applied to the whole text
-- when it says it is so encoded: bounces often quote the reply in a QP part.
local function unquote_printable(text)
  text = string_gsub(text, "=\r?\n", "")
  return (string_gsub(text, "=(%x%x)", function(hex) return string_char(tonumber(hex, 16)) end))
end

-- Providers' bounce texts: the reply they quote, after the words that introduce it.
local introductions = {
  "The response from the remote server was:",
  "The error that the other server returned was:",
  "The response was:",
  "Remote server returned:",
  "[Rr]emote host said:",
  "The mail server returned:",
}

local function quoted_replies(lines, already)
  local found = {}
  for i, line in ipairs(lines) do
    for _, words in ipairs(introductions) do
      if string_find(line, words) then
        local rest = trim(string_sub(line, (select(2, string_find(line, words)) or 0) + 1))
        -- The reply may follow on the same line or on the next lines, until a blank one.
        local parts = { rest }
        local j = i + 1
        while j <= #lines and #parts < 20 and reply_codes(trim(lines[j])) do
          parts[#parts + 1] = trim(lines[j])
          j = j + 1
        end
        local reply = trim(table_concat(parts, " "))
        if reply_codes(reply) and not already[reply] then
          found[#found + 1] = with_reply({ source = "reply", line = bounded(reply) }, reply)
        end
        break
      end
    end
  end
  return found
end

-- The recipient a bounce's prose names: "delivering your message to X", "wasn't delivered to
-- X", or an address alone on its line (Exchange's NDR lists them so). nil when none, or when
-- the lines name several.
local address_pattern = "([%w%.%-_+=']+@[%w%-]+%.[%w%.%-]+)"

recipient_in_prose = function(lines)
  local found
  for _, line in ipairs(lines) do
    local address = string_match(line, "message to " .. address_pattern)
      or string_match(line, "delivered to " .. address_pattern)
      or string_match(line, "^%s*<?" .. address_pattern .. ">?%s*$")
    if address then
      address = string_gsub(address, "%.$", "")
      if found and found ~= address then return nil end
      found = address
    end
  end
  return found
end

-- The step a bounce's prose names once ("(in reply to RCPT TO command)", wrapped over lines as
-- Postfix's notices do): the step of the DSN's reply, which its fields do not say.
stage_in_prose = function(text)
  local unfolded = string_gsub(text, "%s+", " ")
  local found
  for command in string_gmatch(unfolded, "%(in reply to ([^()]-) command%)") do
    local stage = stage_of(command)
    if found and found ~= stage then return nil end
    found = stage
  end
  return found
end

-- The whole text ----------------------------------------------------------------------------------

local function add_source(sources, seen, name)
  if not seen[name] then
    seen[name] = true
    sources[#sources + 1] = name
  end
end

function explain_parse.parse(text)
  if type(text) ~= "string" then error("explain_parse.parse: expected the text, got " .. type(text), 2) end
  -- A whole day's log is more than a delivery's story: its last part (the latest lines) is
  -- read, and the result says so.
  local truncated = nil
  if #text > explain_parse.max_bytes then
    truncated = #text
    text = string_sub(text, -explain_parse.max_bytes)
    text = string_match(text, "^[^\n]*\n(.*)$") or text  -- from the first whole line
  end
  -- Quoted-printable first: a decoded =0D is a line end like any other.
  if string_find(string_lower(text), "content%-transfer%-encoding:%s*quoted%-printable") then
    text = unquote_printable(text)
  end
  text = string_gsub(text, "\r\n?", "\n")
  local lines, count = {}, 0
  for line in string_gmatch(text, "[^\n]*") do
    -- No log line or header is this long: the rest of one is not read (and a pattern never
    -- spends long on it).
    if #line > explain_parse.max_read_line then line = string_sub(line, 1, explain_parse.max_read_line) end
    lines[#lines + 1] = line
    if string_find(line, "%S") then count = count + 1 end
  end
  local attempts, sources, seen = {}, {}, {}
  local used = 0
  local context = { tls = {}, tls_problem = {}, exchange_reply = exchange_reply }

  local dsn, dsn_used = dsn_attempts(lines)
  for _, attempt in ipairs(dsn) do attempts[#attempts + 1] = attempt end
  if #dsn > 0 then
    add_source(sources, seen, "dsn")
    used = used + dsn_used
  end

  local log_found = false
  for _, line in ipairs(lines) do
    if string_find(line, "%S") then
      local attempt = postfix_line(line, context)
      local source = "postfix"
      if not attempt then
        attempt, source = exim_line(line), "exim"
      end
      if attempt then
        used = used + 1
        log_found = true
        add_source(sources, seen, source)
        if attempt ~= "used" then attempts[#attempts + 1] = attempt end
      end
    end
  end

  if not log_found then
    local exchange = exchange_text(text, context)
    if #exchange > 0 then
      add_source(sources, seen, "exchange")
      for _, attempt in ipairs(exchange) do
        attempts[#attempts + 1] = attempt
        used = used + 1
      end
    end
  end

  -- Replies quoted in prose (Gmail, Outlook.com, Yahoo) when nothing above carried them.
  local already = {}
  for _, attempt in ipairs(attempts) do if attempt.reply then already[attempt.reply] = true end end
  for _, attempt in ipairs(quoted_replies(lines, already)) do
    if #dsn == 0 or not attempts[1].reply then
      attempts[#attempts + 1] = attempt
      already[attempt.reply] = true
      used = used + 1
      add_source(sources, seen, "reply")
    end
  end
  -- A bare reply line, pasted alone.
  if #attempts == 0 then
    local reply_lines = {}
    for _, line in ipairs(lines) do
      local stripped = trim(line)
      if reply_codes(stripped) then reply_lines[#reply_lines + 1] = stripped end
    end
    if #reply_lines > 0 and #reply_lines <= 20 then
      local reply = table_concat(reply_lines, " ")
      attempts[#attempts + 1] = with_reply({ source = "reply", line = bounded(reply) }, reply)
      used = used + #reply_lines
      add_source(sources, seen, "reply")
    end
  end
  local prose_recipient = recipient_in_prose(lines)
  local reply_stage = stage_in_prose(text)
  for _, attempt in ipairs(attempts) do
    if not attempt.recipient and (attempt.source == "reply" or attempt.source == "exchange") then
      attempt.recipient = prose_recipient
    end
    if attempt.source == "dsn" and attempt.event == "reply" and not attempt.stage then attempt.stage = reply_stage end
    if attempt.recipient and not attempt.domain then attempt.domain = domain_of(attempt.recipient) end
  end
  return { attempts = attempts, sources = sources, lines = count, used = used, truncated = truncated }
end

return explain_parse
