-- SMTP sessions per second, one message each (what Postfix's smtp-source does): WORKERS
-- tasks, each running sessions back to back until TOTAL have been made. With "pipeline",
-- MAIL, RCPT and DATA go in one write when the server offers PIPELINING (RFC 2920).
--   smtpsh tests/bench/sessions.lua PORT [TOTAL=20000] [WORKERS=50] [plain|pipeline]
local port, total, workers = tonumber(arg[1]), tonumber(arg[2]) or 20000, tonumber(arg[3]) or 50
local pipelined = arg[4] == "pipeline"
assert(port, "usage: smtpsh tests/bench/sessions.lua PORT [TOTAL] [WORKERS]")
local target = "127.0.0.1:" .. port
local message = "From: <a@bench.test>\r\nTo: <b@bench.test>\r\nSubject: bench\r\n\r\nhello\r\n"
local started, done, failed = task.now(), 0, 0
local next = 0

local function session()
  local s = smtp.connect(target, { timeout = 20, helo = "bench.test" })
  if not s then return false end
  local ok
  if pipelined and s:ehlo() then
    local replies = s:pipeline { "MAIL FROM:<a@bench.test>", "RCPT TO:<b@bench.test>", "DATA" }
    ok = replies and replies[3].code == 354 and s.core:message(message)
  else
    ok = s:ehlo() and s:mail("a@bench.test") and s:rcpt("b@bench.test") and s:data(message)
  end
  s:quit()
  return ok and true or false
end

local tasks = {}
for w = 1, workers do
  tasks[w] = task.spawn(function()
    while next < total do
      next = next + 1
      if session() then done = done + 1 else failed = failed + 1 end
    end
  end)
end
for _, t in ipairs(tasks) do task.wait(t) end
local seconds = task.now() - started
print(string.format("smtpsh (%s): %d sessions in %.2f s = %.0f/s (%d failed), %d at once",
  pipelined and "pipelined" or "one command at a time", done, seconds, done / seconds, failed, workers))
os.exit(failed > total // 100 and 1 or 0)
