-- Memory per idle SMTP session: opens COUNT sessions to PORT (each connected, greeted and
-- past EHLO; with "starttls", also past STARTTLS without a certificate check and the EHLO
-- after it), holds them idle, and prints the resident memory they added. OPENERS tasks open
-- them (default 200), so that the server's accept queue never overflows. Given the server's
-- process id, its resident memory is shown too.
--   smtpsh tests/bench/idle_sessions.lua PORT [COUNT=1000] [plain|starttls] [OPENERS=200] [SERVER_PID]
local port, count = tonumber(arg[1]), tonumber(arg[2]) or 1000
local mode = arg[3] or "plain"
local openers = math.min(count, tonumber(arg[4]) or 200)
assert(port and (mode == "plain" or mode == "starttls"),
  "usage: smtpsh tests/bench/idle_sessions.lua PORT [COUNT] [plain|starttls] [OPENERS]")
local starttls = mode == "starttls"
local server_pid = tonumber(arg[5])

local function rss_kib(pid)
  local file = io.open("/proc/" .. (pid or "self") .. "/status")
  if not file then return 0 end
  for line in file:lines() do
    local kib = line:match("^VmRSS:%s+(%d+) kB")
    if kib then
      file:close()
      return tonumber(kib)
    end
  end
  file:close()
  return 0
end

local function open()
  local s, err = smtp.connect("127.0.0.1:" .. port, { timeout = 60, helo = "bench.test" })
  if not s then return nil, err end
  local ok, serr = s:ehlo()
  if ok and starttls then ok, serr = s:starttls { verify = "none" } end
  if ok then return s end
  s.core:close()
  return nil, serr
end

collectgarbage()
local before, server_before = rss_kib(), server_pid and rss_kib(server_pid)
local sessions, failed, first_error = {}, 0, nil
local started, next = task.now(), 0
local tasks = {}
for i = 1, openers do
  tasks[i] = task.spawn(function()
    while next < count do  -- bounded: each turn takes one of COUNT numbers
      next = next + 1
      local s, err = open()
      if s then
        sessions[#sessions + 1] = s
      else
        failed = failed + 1
        first_error = first_error or tostring(err)
      end
    end
  end)
end
for i = 1, openers do task.wait(tasks[i]) end
local seconds = task.now() - started
tasks = nil
collectgarbage()
collectgarbage()
local after, server_after = rss_kib(), server_pid and rss_kib(server_pid)
print(string.format("smtpsh: %d idle sessions%s (%d failed), opened in %.1f s: RSS %d KiB -> %d KiB, %.1f KiB per session",
  #sessions, starttls and " past STARTTLS" or "", failed, seconds, before, after,
  (after - before) / math.max(1, #sessions)))
if server_pid then
  print(string.format("server (pid %d): RSS %d KiB -> %d KiB, %.1f KiB per session", server_pid,
    server_before, server_after, (server_after - server_before) / math.max(1, #sessions)))
end
if first_error then print("first failure: " .. first_error) end
for _, s in ipairs(sessions) do s.core:close() end
