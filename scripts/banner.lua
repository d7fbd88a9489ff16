-- banner: connect to an SMTP server and print its greeting line, with the time it took.
--
-- usage:  smtpsh banner HOST[:PORT] [--timeout SECONDS] [--resolver ADDR[:PORT]]
-- output: the greeting line on stdout; timing on stderr
-- exit:   0 when a greeting arrived, 1 when it did not, 2 on bad usage

local cli = require "smtpsh.cli"

local usage = "usage: smtpsh banner HOST[:PORT] [--timeout SECONDS] [--resolver ADDR[:PORT]]"
local options, words = cli.parse({ ... }, {
  name = "banner", usage = usage, min = 1, max = 1, missing = "missing HOST[:PORT]; see --help",
})
cli.apply_resolver(options, "banner")
local target, timeout = words[1], options.timeout

local host, port = cli.target("banner", target)

local started = task.now()
local conn, err = net.connect(host, port, { timeout = timeout or 30 })
if not conn then
  io.stderr:write("smtpsh banner: ", tostring(err), "\n")
  os.exit(1)
end
local connected = task.now()
local line, rerr = conn:receive("l")
local greeted = task.now()
conn:close()
if not line then
  io.stderr:write("smtpsh banner: no greeting: ", tostring(rerr), "\n")
  os.exit(1)
end
print(line)
io.stderr:write(string.format("connected to %s in %.0f ms, greeting after %.0f ms more\n",
  conn.remote_addr or target, (connected - started) * 1000, (greeted - connected) * 1000))
