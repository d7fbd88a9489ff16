-- A recipe: greets several SMTP servers at once (one task each) and returns each greeting with
-- how long it took.
--   smtpsh --sandbox examples/banners.lua --first mx1.example.com --second mx2.example.com:2525
return {
  name = "banners",
  description = "the greeting of two servers, asked at once, with its time",
  params = {
    { name = "first", kind = "host", help = "a server, HOST[:PORT]" },
    { name = "second", kind = "host", help = "another server, HOST[:PORT]" },
    { name = "timeout", kind = "seconds", default = 10, help = "the deadline of each step" },
  },
  run = function(p)
    local function greet(target)
      local host, port = smtp.parse_target(target, 25)
      local started = task.now()
      local conn, err = net.connect(host, port, { timeout = p.timeout })
      if not conn then return { target = target, error = tostring(err) } end
      local line, rerr = conn:receive("l")
      conn:close()
      return { target = target, greeting = line or tostring(rerr), ms = math.floor((task.now() - started) * 1000) }
    end
    local results = task.all { task.spawn(greet, p.first), task.spawn(greet, p.second) }
    return { results[1][1], results[2][1] }
  end,
}
