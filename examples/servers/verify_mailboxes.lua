-- verify_mailboxes: a domain's MX with real mailboxes, for `smtpsh verify`. Each RCPT is
-- answered by what its local part is; each list is a parameter (comma separated, "user*" is
-- every local part starting with "user", case does not matter), its default in brackets:
--   mailboxes (alice,bob,carol,postmaster,user*)  250 2.1.5 Ok
--   disabled  (disabled*)   550 5.2.1 mailbox disabled
--   full      (full*)       452 4.2.2 Mailbox full
--   overquota (overquota*)  552 5.2.2 Mailbox full, over quota
--   grey      (grey*)       450 4.2.0 Greylisted, please try again in N seconds, until grey_delay
--                           seconds (1) have passed since that recipient was first asked, then
--                           250 (grey_delay=never: never); N is grey_say, by default grey_delay
--                           (300 for never)
--   tempfail  (tempfail*)   450 4.1.1 User unknown (a soft bounce: Postfix's soft_bounce, or
--                           unknown_local_recipient_reject_code = 450)
--   any other local part    550 5.1.1 User unknown; 250 with catch_all=1
-- Every 250 to RCPT says which session it came in and how many RCPTs the server has had
-- ("Ok, session 3, rcpt 12"), so a test can tell how many of each a client needed.
-- What the server does besides, each a parameter:
--   max_rcpts=K           the RCPTs after K in one envelope get 452 4.5.3 Too many recipients
--   per_ip=N              a session beyond N at once from one client IP gets
--                         421 4.7.0 Too many connections from your IP
--   banner_delay=D        the greeting after D seconds (a tarpit, a greet-pause)
--   rcpt_delay=D          every RCPT answered after D seconds (a slow recipient look-up)
--   silent=STAGE          no answer at all at banner, ehlo, mail or rcpt (the client times out)
--   mail=reject           550 5.7.1 Sender address rejected to every MAIL FROM
--   mail=tls              530 5.7.0 Must issue a STARTTLS command first, to MAIL over plain text
--   rcpt_sender=unlisted  every RCPT refused because of the sender, as Postfix does with
--                         reject_unlisted_sender (smtpd_delay_reject: sender checks at RCPT):
--                         550 5.1.0 <FROM>: Sender address rejected: User unknown in ...
--   starttls=ok           STARTTLS offered, with a self-signed certificate
--   starttls=broken       STARTTLS offered; 220, then bytes that are not TLS
--   starttls=refuse       STARTTLS offered; 454 4.7.0 TLS not available
--
--   smtpsh serve verify_mailboxes --listen 127.0.0.1:2525 --set catch_all=1 --set max_rcpts=1
local params = ... or {}
local hostname = params.hostname or "mx.mailboxes.test"

local function list(value, default)
  local names = {}
  for name in (value or default):gmatch("[^,%s]+") do names[#names + 1] = name:lower() end
  return names
end

local function listed(names, local_part)
  for _, name in ipairs(names) do
    local prefix = name:match("^(.*)%*$")
    if local_part == name or (prefix and local_part:sub(1, #prefix) == prefix) then return true end
  end
  return false
end

local mailboxes = list(params.mailboxes, "alice,bob,carol,postmaster,user*")
local disabled = list(params.disabled, "disabled*")
local full = list(params.full, "full*")
local overquota = list(params.overquota, "overquota*")
local grey = list(params.grey, "grey*")
local tempfail = list(params.tempfail, "tempfail*")
local catch_all = params.catch_all == "1" or params.catch_all == "true"
local grey_delay = params.grey_delay == "never" and math.huge or tonumber(params.grey_delay) or 1
local grey_say = tonumber(params.grey_say) or (grey_delay == math.huge and 300 or math.ceil(grey_delay))
local max_rcpts = tonumber(params.max_rcpts)
local per_ip = tonumber(params.per_ip)
local banner_delay = tonumber(params.banner_delay) or 0
local rcpt_delay = tonumber(params.rcpt_delay) or 0
local silent = params.silent
local mail = params.mail
local rcpt_sender = params.rcpt_sender
local starttls = params.starttls

local first_asked = {}  -- recipient -> when greylisting first deferred it
local rcpts_seen = 0     -- RCPT commands, all sessions
local sessions_of = {}  -- client IP -> the sessions from it that were let in

local function ip_of(peer)
  return (peer or ""):match("^%[?([^%]]*)%]?:%d+$") or peer
end

-- The sessions from `ip` still open: the server closes a session's connection when it ends,
-- and a closed net.conn says so when printed.
local function open_sessions(ip)
  local still = {}
  for _, s in ipairs(sessions_of[ip] or {}) do
    if tostring(s.conn) ~= "net.conn (closed)" then still[#still + 1] = s end
  end
  sessions_of[ip] = still
  return still
end

local function rcpt_answer(s, to)
  local local_part = (to:match("^(.*)@") or to):lower()
  if rcpt_sender == "unlisted" then
    return "550 5.1.0 <" .. (s.from or "") .. ">: Sender address rejected: "
      .. "User unknown in virtual mailbox table"
  end
  if listed(disabled, local_part) then
    return "550 5.2.1 <" .. to .. ">: Recipient address rejected: mailbox disabled"
  end
  if listed(full, local_part) then
    return "452 4.2.2 <" .. to .. ">: Recipient address rejected: Mailbox full"
  end
  if listed(overquota, local_part) then
    return "552 5.2.2 <" .. to .. ">: Recipient address rejected: Mailbox full, over quota"
  end
  if listed(tempfail, local_part) then
    return "450 4.1.1 <" .. to .. ">: Recipient address rejected: User unknown in local recipient table"
  end
  if listed(grey, local_part) then
    local key, now = to:lower(), task.now()
    first_asked[key] = first_asked[key] or now
    if now - first_asked[key] < grey_delay then
      return "450 4.2.0 <" .. to .. ">: Greylisted, please try again in " .. grey_say .. " seconds"
    end
  elseif not (catch_all or listed(mailboxes, local_part)) then
    return "550 5.1.1 <" .. to .. ">: Recipient address rejected: User unknown in virtual mailbox table"
  end
  return "250 2.1.5 Ok, session " .. s.n .. ", rcpt " .. rcpts_seen
end

local spec = {
  hostname = hostname,
  on_connect = function(s)
    if per_ip then
      local ip = ip_of(s.peer)
      local others = open_sessions(ip)
      if #others >= per_ip then
        return "421 4.7.0 " .. hostname .. " Error: too many connections from your IP"
      end
      others[#others + 1] = s
    end
    if silent == "banner" then return "silent" end
    return { delay = banner_delay, reply = "220 " .. hostname .. " ESMTP" }
  end,
  on_ehlo = function() if silent == "ehlo" then return "silent" end end,
  on_mail = function(s, from)
    s.state.rcpts = 0
    if silent == "mail" then return "silent" end
    if mail == "reject" then
      return "550 5.7.1 <" .. from .. ">: Sender address rejected: Access denied"
    end
    if mail == "tls" and not s.tls then return "530 5.7.0 Must issue a STARTTLS command first" end
  end,
  on_rset = function(s) s.state.rcpts = 0 end,
  on_rcpt = function(s, to)
    if silent == "rcpt" then return "silent" end
    s.state.rcpts = (s.state.rcpts or 0) + 1
    rcpts_seen = rcpts_seen + 1
    if max_rcpts and s.state.rcpts > max_rcpts then
      return { delay = rcpt_delay, reply = "452 4.5.3 Error: too many recipients" }
    end
    return { delay = rcpt_delay, reply = rcpt_answer(s, to) }
  end,
}

if starttls then
  spec.tls = { self_signed = hostname }
  if starttls == "broken" then
    spec.on_starttls = function()
      return { reply = "220 2.0.0 Ready to start TLS", raw = "this is not TLS\r\n", close = true }
    end
  elseif starttls == "refuse" then
    spec.on_starttls = function() return "454 4.7.0 TLS not available due to local problem" end
  end
end

return spec
