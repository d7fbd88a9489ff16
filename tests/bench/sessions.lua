-- SMTP sessions per second, one message each (what Postfix's smtp-source does): WORKERS
-- tasks, each running sessions back to back until TOTAL have been made. With "pipeline",
-- MAIL, RCPT and DATA go in one write when the server offers PIPELINING (RFC 2920); with
-- "starttls", each session does STARTTLS (no certificate check) and EHLO again before MAIL.
--   smtpsh tests/bench/sessions.lua PORT [TOTAL=20000] [WORKERS=50] [plain|pipeline|starttls]
local port, total, workers = tonumber(arg[1]), tonumber(arg[2]) or 20000, tonumber(arg[3]) or 50
local mode = arg[4] or "plain"
local pipelined, starttls = mode == "pipeline", mode == "starttls"
assert(port and (mode == "plain" or pipelined or starttls),
  "usage: smtpsh tests/bench/sessions.lua PORT [TOTAL] [WORKERS] [plain|pipeline|starttls]")
local target = "127.0.0.1:" .. port
local message = "From: <a@bench.test>\r\nTo: <b@bench.test>\r\nSubject: bench\r\n\r\nhello\r\n"
local started, cpu_started, done, failed = task.now(), os.clock(), 0, 0
local next, first_error = 0, nil

-- Each step returns a value or nil, err; the first failure's words are kept for the summary.
local function session()
  local s, err = smtp.connect(target, { timeout = 20, helo = "bench.test" })
  local ok = s ~= nil
  if ok then
    ok, err = s:ehlo()
    if ok and pipelined then
      local replies
      replies, err = s:pipeline { "MAIL FROM:<a@bench.test>", "RCPT TO:<b@bench.test>", "DATA" }
      ok = replies and replies[3].code == 354
      if ok then ok, err = s.core:message(message) end
    else
      if ok and starttls then ok, err = s:starttls { verify = "none" } end
      if ok then ok, err = s:mail("a@bench.test") end
      if ok then ok, err = s:rcpt("b@bench.test") end
      if ok then ok, err = s:data(message) end
    end
    s:quit()
  end
  if not ok then first_error = first_error or tostring(err or "no reply 354 to DATA") end
  return ok and true or false
end

local tasks = {}
for w = 1, workers do
  tasks[w] = task.spawn(function()
    while next < total do  -- bounded: each turn takes one of TOTAL numbers
      next = next + 1
      if session() then done = done + 1 else failed = failed + 1 end
    end
  end)
end
for _, t in ipairs(tasks) do task.wait(t) end
local seconds, cpu = task.now() - started, os.clock() - cpu_started
print(string.format("smtpsh (%s): %d sessions in %.2f s = %.0f/s (%d failed), %d at once, CPU %.0f us per session",
  pipelined and "pipelined" or starttls and "STARTTLS, one command at a time" or "one command at a time",
  done, seconds, done / seconds, failed, workers, cpu * 1e6 / math.max(1, done + failed)))
if first_error then io.stderr:write("smtpsh: first failure: ", first_error, "\n") end
os.exit(failed > total // 100 and 1 or 0)
