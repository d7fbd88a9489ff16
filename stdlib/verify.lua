-- verify: checks lists of addresses carefully and fast. One RCPT per address over sessions
-- shared by all the addresses of a domain, with the MX set resolved once per domain, catch-all
-- detected once per domain, and every transient answer retried (never taken for "invalid").
--
--   local verify = require "smtpsh.verify"
--   local summary = verify.run({"a@example.com", "b@example.org"}, {concurrency = 100},
--     function(result, index) print(index, result.address, result.is_reachable, result.reason) end)
--
-- A result: {address, is_reachable = "safe"|"risky"|"invalid"|"unknown", reason, role_account,
--   mx, reply, tries, elapsed, catch_all} (the values check-if-email-exists uses, so its users can
--   switch). Reasons: deliverable, mailbox_unknown, disabled, full_inbox, catch_all, no_mx,
--   null_mx, syntax, greylisted, rate_limited, server_busy, connect_failed, tls_required,
--   timeout, rejected_sender, dns_failure.
--
-- How the work is shared: `concurrency` runner tasks; a runner takes a domain that has
-- addresses waiting and fewer than `per_domain` sessions, opens one session to its MX set (in
-- preference order, falling back when an MX refuses or is silent), and asks RCPT for its
-- addresses one after another in envelopes of its own. A 452 "too many recipients" starts a new
-- envelope and asks again. A transient answer puts the address aside until its retry time (the
-- server's "try again in N seconds" when it says so), within the run's time budget.
--
-- options: concurrency (100), per_domain (2), rate (new sessions a second per domain; none),
--   timeout (30 s a step: a tarpit banner is waited for this long), budget (600 s for retries),
--   tries (4 in all per address), backoff (30 s before the first retry, doubling), helo, from
--   (the MAIL FROM, default postmaster@<helo>, or <> when helo has no dot), source, port (25),
--   catch_all (true),
--   trace, now/sleep (for tests).

local address = require "smtpsh.address"
local classify = require "smtpsh.classify"
local json = require "smtpsh.json"
local probe = require "smtpsh.probe"
local ratelimit = require "smtpsh.ratelimit"
local smtp = require "smtpsh.smtp"
local task = require "smtpsh.task"

local null = json.null

local ipairs, pairs, tonumber, tostring = ipairs, pairs, tonumber, tostring
local string_match, string_lower, string_find, string_gsub = string.match, string.lower, string.find, string.gsub
local math_min, math_max, math_huge = math.min, math.max, math.huge

local verify = {}

-- The four answers and what each reason means for a sender.
verify.reachable = {
  deliverable = "safe", catch_all = "risky", full_inbox = "risky",
  mailbox_unknown = "invalid", disabled = "invalid", no_mx = "invalid", null_mx = "invalid", syntax = "invalid",
  greylisted = "unknown", rate_limited = "unknown", server_busy = "unknown", connect_failed = "unknown",
  tls_required = "unknown", timeout = "unknown", rejected_sender = "unknown", dns_failure = "unknown",
}

-- What an RCPT reply says about the address: "accepted", "unknown", "disabled", "full",
-- "too_many" (not about the address: a new envelope is needed), "transient" (ask again later;
-- the second value names the reason), or "sender" (a refusal of us, the sender, not of the
-- address: its words speak of a blocklist, reverse DNS, SPF, relaying or policy).
local policy_classes = { dnsbl = true, ptr = true, spf = true, dmarc = true, policy = true, relay_denied = true,
                         auth = true, tls_required = true }

function verify.rcpt_answer(reply)
  local code = reply.code
  if code >= 200 and code < 300 then return "accepted" end
  local text = string_lower(reply.text or "")
  if (code == 452 or code == 552) and (reply.enhanced == "4.5.3" or reply.enhanced == "5.5.3"
      or string_find(text, "too many recipients", 1, true)) then
    return "too_many"
  end
  -- Postfix checks the sender at RCPT time: "550 5.1.0 <us@...>: Sender address rejected: User
  -- unknown" and reject_unverified_sender's "undeliverable address" speak of us, not of the
  -- address asked about.
  local enhanced = reply.enhanced or ""
  if string_find(text, "sender address rejected", 1, true) or string_find(text, "undeliverable address", 1, true)
     or string_find(enhanced, "^%d%.1%.[78]$") then
    if code < 500 then return "transient", "rejected_sender" end
    return "sender"
  end
  local class = classify.reply(reply).class
  if class == "mailbox_full" then return "full" end
  if code >= 400 and code < 500 then
    if class == "rate_limit" then return "transient", "rate_limited" end
    if class == "overload" then return "transient", "server_busy" end
    if class == "greylisting" then return "transient", "greylisted" end
    if policy_classes[class] then return "transient", "rejected_sender" end
    return "transient", code == 421 and "server_busy" or "greylisted"
  end
  if class == "mailbox_unknown" then return "unknown" end
  if class == "mailbox_disabled" then return "disabled" end
  if policy_classes[class] then return "sender" end
  -- A bare 550/551/553 is what a server says of an address it does not know.
  if code == 550 or code == 551 or code == 553 then return "unknown" end
  return "sender"
end

-- The delay a reply asks for ("try again in 300 seconds", "retry in 5 minutes"), or nil.
function verify.retry_after(reply)
  -- Not from the address the reply quotes (<grey5min@example.com>), only from its words.
  local text = string_gsub(string_lower(reply and reply.text or ""), "<[^>]*>", "")
  local n, unit = string_match(text, "(%d+)%s*(%a+)")
  while n do
    n = tonumber(n)
    if string_find(unit, "^sec") or unit == "s" then return n end
    if string_find(unit, "^min") then return n * 60 end
    if string_find(unit, "^hour") then return n * 3600 end
    text = string_match(text, "%d+%s*%a+(.*)$") or ""
    n, unit = string_match(text, "(%d+)%s*(%a+)")
  end
end

-- Decides an address. mx, reply and catch_all (true, false, or nil when not known: not asked,
-- or the domain never answered it) are plain arguments: a bulk run decides 100,000 of these.
local function finish(state, item, reason, mx, reply, catch_all)
  if item.result then return end
  local reachable = verify.reachable[reason]
  local result = {
    address = item.address, is_reachable = reachable, reason = reason,
    role_account = item.role or null, mx = mx or null, reply = reply or null, tries = item.tries,
    elapsed = state.now() - (item.started or state.started),  -- since its domain's work began
    catch_all = catch_all == nil and null or catch_all,
  }
  item.result = result
  state.pending = state.pending - 1
  local counts = state.counts
  counts[reachable] = (counts[reachable] or 0) + 1
  state.on_result(result, item.index)
end

-- Queues of addresses: first/last indices, so taking from the front costs nothing however
-- long the queue (a list dominated by one domain is common).
local function queue() return { first = 1, last = 0 } end
local function q_len(q) return q.last - q.first + 1 end
local function q_push(q, item) q.last = q.last + 1; q[q.last] = item end
local function q_push_front(q, item) q.first = q.first - 1; q[q.first] = item end
local function q_pop(q)
  if q.first > q.last then return nil end
  local item = q[q.first]
  q[q.first], q.first = nil, q.first + 1
  return item
end

-- Domains ------------------------------------------------------------------------------------

local function domain_job(state, key, literal)
  local job = state.domains[key]
  if not job then
    job = { key = key, literal = literal, queue = queue(), later = {}, sessions = 0, state = "new",
            limit = state.options.per_domain }
    state.domains[key] = job
    state.active[#state.active + 1] = job
  end
  return job
end

-- The MX set, once per domain: invalid for every address when the domain takes no mail.
local function resolve(state, job)
  job.state = "resolving"
  local hosts
  if job.literal then
    local ip = string_match(job.literal, "^[Ii][Pp][Vv]6:(.+)$") or job.literal
    hosts = { { host = ip, addresses = { ip } } }
  else
    local said
    said, hosts = probe.mx_hosts(job.key)
    local problem
    if said.error then
      problem = said.rcode == "NXDOMAIN" and "no_mx" or "dns_failure"
    elseif said.null then
      problem = "null_mx"
    elseif #hosts == 0 then
      problem = "no_mx"
    else
      local any = false
      for _, host in ipairs(hosts) do any = any or #host.addresses > 0 end
      if not any then problem = hosts[1].error and hosts[1].error.rcode ~= "NXDOMAIN" and "dns_failure" or "no_mx" end
    end
    if problem then
      local why = said.error and said.error.message or (said.null and "null MX (RFC 7505)") or "no MX and no address"
      local item = q_pop(job.queue)
      while item do
        finish(state, item, problem, nil, "dns " .. job.key .. ": " .. why)
        item = q_pop(job.queue)
      end
      job.state = "done"
      return
    end
  end
  job.hosts, job.state = hosts, "ready"
end

-- Sessions -----------------------------------------------------------------------------------

-- Opens a session to the job's MX set and starts an envelope (MAIL FROM). Returns s, host, or
-- nil, reason, err when no MX gave a session that takes MAIL from us.
local function open(state, job)
  local o = state.options
  if state.limiter then state.limiter:wait(job.key) end
  local opened
  local answered, failed = probe.each_mx(job.hosts, function(entry, ip)
    local _, record = probe.open(ip, o.port or 25, {
      timeout = o.timeout, source = o.source, trace = o.trace, helo = state.helo, starttls = job.needs_tls })
    record.host = entry.host
    return record
  end, function(record) return record.stage == "open" end)
  for _, record in ipairs(answered) do
    local s = record.live.s
    if record.stage == "open" then opened = record elseif s and not s.closed then s:quit() end
  end
  if not opened then
    local last = answered[#answered] or failed[#failed]
    local err = last and last.live.err
    job.tried = last and last.host  -- the MX that answered last, for the results
    if not err then return nil, "connect_failed" end
    if err.kind == "timeout" then return nil, "timeout", err end
    -- The server requires TLS (530 to plain MAIL) and STARTTLS then fails, is refused (454)
    -- or is not offered: we cannot meet its requirement.
    if last.tls_failed or err.stage == "starttls" then return nil, "tls_required", err end
    if err.kind == "reply" and err.reply then
      local kind, reason = verify.rcpt_answer(err.reply)
      return nil, kind == "transient" and reason or "rejected_sender", err
    end
    return nil, "connect_failed", err
  end
  local s = opened.live.s
  local mail, merr = s:mail(state.from)
  if mail then return s, opened.host end
  if not s.closed then s:quit() end
  local class = merr.reply and classify.reply(merr.reply).class
  if class == "tls_required" and not job.needs_tls then
    job.needs_tls = true  -- 530 5.7.0 to plain MAIL: again, over STARTTLS
    return open(state, job)
  end
  if class == "tls_required" then return nil, "tls_required", merr end
  if merr.kind == "reply" and merr.reply and merr.reply.code < 500 then
    local _, reason = verify.rcpt_answer(merr.reply)
    return nil, reason or "server_busy", merr
  end
  return nil, merr.kind == "timeout" and "timeout" or "rejected_sender", merr
end

-- Catch-all, once per domain, in an envelope of its own: a random local part accepted means
-- the domain accepts every address (and an accepted address says nothing). Returns whether the
-- session is still usable. A 4xx to the random address (a greylisting catch-all) leaves it
-- unknown: the domain then waits, and asks again when the retry is due, before any other
-- address's acceptance is believed.
local function probe_catch_all(state, job, s)
  -- The same random address on every try: greylisting is per recipient.
  job.random_local = job.random_local or address.random_local()
  local reply, err = s:rcpt(job.random_local .. "@" .. job.key)
  reply = reply or (err and err.reply)
  if reply and reply.code >= 400 and reply.code < 500 then
    job.catch_all_tries = (job.catch_all_tries or 0) + 1
    local at = state.now() + (verify.retry_after(reply) or state.options.backoff * 2 ^ (job.catch_all_tries - 1))
    if job.catch_all_tries < state.options.tries and at <= state.deadline then
      job.wait_until = at
      return false
    end
    -- It never cleared: the domain's answers are taken as they come, catch-all unknown.
    job.catch_all_checked = true
  elseif reply then
    job.catch_all_checked, job.catch_all = true, reply.code < 300
  else
    return false  -- the session broke
  end
  s:rset()
  if s.closed then return false end
  return s:mail(state.from) ~= nil
end

local function set_aside(state, job, item, reason, reply)
  item.reason, item.reply = reason, reply and probe.one_line(reply) or item.reply
  local delay = verify.retry_after(reply) or state.options.backoff * 2 ^ (item.tries - 1)
  local at = state.now() + delay
  if item.tries >= state.options.tries or at > state.deadline then
    return finish(state, item, reason, item.mx, item.reply)
  end
  item.not_before = at
  job.later[#job.later + 1] = item
end


-- Why no session came up, and whether asking again later may help: a refused or silent MX, a
-- refusal of us as sender or a TLS requirement we cannot meet stay so; a 4xx may clear.
local final_reasons = { connect_failed = true, timeout = true, tls_required = true, rejected_sender = true }

-- RCPTs sent at once when the server offers PIPELINING (RFC 2920): the replies come back in one
-- read, which is where bulk verification's speed comes from.
local batch_most = 50

-- Puts items[from..] back at the front of the queue, in order, their tries not counted.
local function requeue(job, items, from, broken)
  for i = #items, from, -1 do
    local item = items[i]
    if broken then item.broken = (item.broken or 0) + 1 end
    q_push_front(job.queue, item)
  end
end

-- A reply as one line. A one-line reply is rebuilt from its parts (what tostring gives, without
-- the engine round trip: bulk verification quotes every reply).
local function reply_line(reply)
  local text = reply.text
  if string_find(text, "\n", 1, true) then return probe.one_line(reply) end
  local enhanced = reply.enhanced
  if enhanced then return reply.code .. " " .. enhanced .. " " .. text end
  return reply.code .. " " .. text
end

-- The answer to one RCPT: the address is decided, set aside, or (returned true) the envelope
-- is full and a new one is needed.
local function answer(state, job, item, reply, host, first_in_envelope)
  local kind, reason = verify.rcpt_answer(reply)
  if kind == "too_many" and not first_in_envelope then return true end
  item.tries, item.mx = item.tries + 1, host
  local line = reply_line(reply)
  if kind == "accepted" then
    if job.catch_all then
      finish(state, item, "catch_all", host, line, true)
    else
      finish(state, item, "deliverable", host, line, job.catch_all)
    end
  elseif kind == "unknown" then
    finish(state, item, "mailbox_unknown", host, line)
  elseif kind == "disabled" then
    finish(state, item, "disabled", host, line)
  elseif kind == "full" then
    finish(state, item, "full_inbox", host, line)
  elseif kind == "sender" then
    finish(state, item, "rejected_sender", host, line)
  else
    -- A 4xx, or a "too many recipients" to the first RCPT of an envelope (no limit explains it).
    set_aside(state, job, item, reason or "server_busy", reply)
  end
  return false
end

-- One session of a runner on `job`: RCPT for the waiting addresses until none is left.
local function serve(state, job)
  local s, host, err = open(state, job)
  if not s then
    -- Another session of this domain is open: the server allows no more at once from this
    -- client (a per-IP limit). That one serves the rest; no more are opened.
    if job.sessions > 1 then
      job.limit = math_max(1, job.sessions - 1)
      return
    end
    local reason = host
    local reply = err and err.reply
    local line = reply and probe.one_line(reply) or (err and ("! " .. tostring(err))) or json.null
    local item = q_pop(job.queue)
    while item do
      item.tries = item.tries + 1
      if final_reasons[reason] then
        finish(state, item, reason, job.tried, line)
      else
        item.mx = job.tried
        set_aside(state, job, item, reason, reply)
      end
      item = q_pop(job.queue)
    end
    return
  end
  if state.options.catch_all ~= false and not job.catch_all_checked then
    if not probe_catch_all(state, job, s) then
      if not job.wait_until then
        -- The session broke over the random address: once more in a new session, then without.
        job.catch_all_breaks = (job.catch_all_breaks or 0) + 1
        job.catch_all_checked = job.catch_all_breaks >= 2
      end
      if not s.closed then s:quit() end
      return
    end
  end
  local pipelining = s.caps.PIPELINING ~= nil
  local in_envelope = 0  -- RCPTs sent in this envelope
  while q_len(job.queue) > 0 and not s.closed do
    local items, lines = {}, {}
    local now = state.now()
    -- A batch never goes past the envelope's known recipient limit.
    local room = job.envelope_limit and (job.envelope_limit - in_envelope) or batch_most
    if room <= 0 then
      s:rset()
      if s.closed or not s:mail(state.from) then break end
      in_envelope, room = 0, job.envelope_limit
    end
    for i = 1, pipelining and math_min(batch_most, room, q_len(job.queue)) or 1 do
      local item = q_pop(job.queue)
      item.started = item.started or now
      items[i], lines[i] = item, "RCPT TO:<" .. item.address .. ">"
    end
    local replies, rerr
    if #items == 1 then
      local reply, e = s:rcpt(items[1].address)
      reply = reply or (e and e.reply)
      if reply then replies = { reply } else rerr = e end
    else
      replies, rerr = s:pipeline(lines)
    end
    if not replies then
      -- The session broke (closed, timeout): these are asked again in a new session; an
      -- address that breaks three sessions is decided by what broke them.
      for _, item in ipairs(items) do
        if (item.broken or 0) >= 2 then
          item.tries = item.tries + 1
          finish(state, item, rerr.kind == "timeout" and "timeout" or "server_busy", host, "! " .. tostring(rerr))
          item.done = true
        end
      end
      local left = {}
      for _, item in ipairs(items) do if not item.done then left[#left + 1] = item end end
      requeue(job, left, 1, true)
      break
    end
    local full
    for i, item in ipairs(items) do
      local reply = replies[i]
      if not reply then
        requeue(job, items, i, true)  -- the server closed before answering these
        break
      end
      if answer(state, job, item, reply, host, in_envelope == 0) then
        -- A limit of recipients per envelope, not an answer about the address: this one and
        -- the rest of the batch go again in a new envelope, and later batches stay within it.
        job.envelope_limit = math_min(job.envelope_limit or math_huge, in_envelope)
        requeue(job, items, i)
        full = true
        break
      end
      in_envelope = in_envelope + 1
    end
    if full then
      s:rset()
      if s.closed or not s:mail(state.from) then break end
      in_envelope = 0
    end
  end
  if not s.closed then s:quit() end
end

-- Runners ------------------------------------------------------------------------------------

-- A job is over when nothing of it waits, is set aside or is in a session.
local function over(job)
  return job.state == "done" or (job.state == "ready" and q_len(job.queue) == 0 and #job.later == 0
                                 and job.sessions == 0)
end

-- The next domain with work for one more session, and the earliest time set-aside work is due.
-- Jobs that are over leave the active list (so a long run scans only what is left).
local function pick(state)
  local now, due = state.now(), math_huge
  local active = state.active
  local i, scanned = state.cursor, 0
  while scanned < #active do
    if i > #active then i = 1 end
    local job = active[i]
    scanned = scanned + 1
    if over(job) then
      job.state = "done"
      active[i] = active[#active]
      active[#active] = nil
      scanned = scanned - 1
      if #active == 0 then break end
    else
      if job.wait_until and job.wait_until > now then
        due = math_min(due, job.wait_until)  -- a domain waiting for its catch-all retry
      elseif job.state ~= "resolving" then
        job.wait_until = nil
        -- Set-aside addresses whose time has come wait in the queue again.
        if #job.later > 0 then
          local still = {}
          for _, item in ipairs(job.later) do
            if item.not_before <= now then q_push(job.queue, item) else
              still[#still + 1] = item
              due = math_min(due, item.not_before)
            end
          end
          job.later = still
        end
        if q_len(job.queue) > 0 and (job.state == "new" or job.sessions < job.limit) then
          state.cursor = i + 1
          return job, due
        end
      end
      i = i + 1
    end
  end
  return nil, due
end

local function runner(state)
  while state.pending > 0 and not state.stopped do
    local job, due = pick(state)
    if job then
      if not job.started then
        job.started = state.now()
        for i = job.queue.first, job.queue.last do job.queue[i].started = job.started end
      end
      job.sessions = job.sessions + 1
      if job.state == "new" then
        state.resolving = state.resolving + 1
        resolve(state, job)
        state.resolving = state.resolving - 1
      end
      if job.state == "ready" then serve(state, job) end
      job.sessions = job.sessions - 1
    else
      -- Nothing to do now. With work set aside, sleep until it is due; without, what is left
      -- is in the sessions of other runners, which finish it: this runner is not needed.
      if due == math_huge and state.resolving == 0 then return end
      local wait = due < math_huge and math_max(0.01, math_min(due - state.now(), 1)) or 0.05
      state.sleep(wait)
    end
  end
end

-- verify.run(addresses, options, on_result) -> summary {total, counts = {safe =, ...}, elapsed}
-- on_result(result, index) is called once per address as soon as it is decided.
function verify.run(addresses, options, on_result)
  local o = {}
  for key, value in pairs(options or {}) do o[key] = value end
  o.concurrency, o.per_domain = o.concurrency or 100, o.per_domain or 2
  o.timeout, o.budget, o.tries, o.backoff = o.timeout or 30, o.budget or 600, o.tries or 4, o.backoff or 30
  local now = o.now or task.now
  local helo = o.helo or smtp.hostname()
  local state = {
    options = o, now = now, sleep = o.sleep or task.sleep, started = now(), on_result = on_result,
    domains = {}, active = {}, cursor = 1, pending = 0, resolving = 0, counts = {}, helo = helo,
    -- An unqualified host name makes a sender address many servers refuse (Postfix's
    -- reject_non_fqdn_sender): the null sender then, which RFC 5321 says must be accepted.
    from = o.from or (string_find(helo, ".", 1, true) and ("postmaster@" .. helo) or ""),
  }
  state.deadline = state.started + o.budget
  if o.rate then state.limiter = ratelimit.new { rate = o.rate, burst = 1 } end
  state.pending = #addresses
  for index, text in ipairs(addresses) do
    local item = { index = index, address = text, tries = 0 }
    local local_part, ascii_domain, literal = address.parts(text)
    if not local_part then
      finish(state, item, "syntax", nil, ascii_domain)
    else
      item.role = address.role(local_part) or false
      local job = domain_job(state, ascii_domain, literal)
      q_push(job.queue, item)
    end
  end
  local runners = {}
  for i = 1, math_min(o.concurrency, math_max(1, #state.active * o.per_domain)) do
    runners[i] = task.spawn(runner, state)
  end
  for _, t in ipairs(runners) do
    local ok, err = task.wait(t)
    if ok == nil and err ~= nil then state.stopped = true; error(err, 0) end
  end
  return { total = #addresses, counts = state.counts, elapsed = now() - state.started }
end

return verify
