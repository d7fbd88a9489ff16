-- Greets several SMTP servers at once (one task each) and prints each greeting with its time.
-- usage: smtpsh examples/banners.lua HOST:PORT [HOST:PORT...]

local function greet(target)
  local host, port = target:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = target:match("^(.+):(%d+)$") end
  host, port = host or target, tonumber(port) or 25
  local started = task.now()
  local conn, err = net.connect(host, port, { timeout = 10 })
  if not conn then return target, tostring(err) end
  local line, rerr = conn:receive("l")
  conn:close()
  return target, line or tostring(rerr), task.now() - started
end

local tasks = {}
for i, target in ipairs(arg) do tasks[i] = task.spawn(greet, target) end
for _, result in ipairs(task.all(tasks)) do
  local target, text, seconds = table.unpack(result, 1, result.n)
  print(string.format("%-24s %s%s", target, text, seconds and string.format("  (%.0f ms)", seconds * 1000) or ""))
end
