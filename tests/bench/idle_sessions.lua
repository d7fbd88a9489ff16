-- Memory per idle SMTP session: opens COUNT sessions to PORT (each connected, greeted and
-- past EHLO), holds them idle, and prints the resident memory they added.
--   smtpsh tests/bench/idle_sessions.lua PORT [COUNT=1000]
local port, count = tonumber(arg[1]), tonumber(arg[2]) or 1000
assert(port, "usage: smtpsh tests/bench/idle_sessions.lua PORT [COUNT]")

local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local kib = line:match("^VmRSS:%s+(%d+) kB")
    if kib then return tonumber(kib) end
  end
end

collectgarbage()
local before = rss_kib()
local sessions, failed = {}, 0
local tasks = {}
for i = 1, count do
  tasks[i] = task.spawn(function()
    local s = smtp.connect("127.0.0.1:" .. port, { timeout = 20, helo = "bench.test" })
    if s and s:ehlo() then return s end
  end)
end
for i = 1, count do
  local s = task.wait(tasks[i])
  if s then sessions[#sessions + 1] = s else failed = failed + 1 end
end
tasks = nil
collectgarbage()
collectgarbage()
local after = rss_kib()
print(string.format("smtpsh: %d idle sessions (%d failed): RSS %d KiB -> %d KiB, %.1f KiB per session",
  #sessions, failed, before, after, (after - before) / math.max(1, #sessions)))
for _, s in ipairs(sessions) do s.core:close() end
