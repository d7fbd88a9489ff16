-- banner: connect to an SMTP server and print its greeting line, with the time it took.
--
-- usage:  smtpsh banner HOST[:PORT] [--timeout SECONDS] [--resolver ADDR[:PORT]]
-- output: the greeting line on stdout; timing on stderr
-- exit:   0 when a greeting arrived, 1 when it did not, 2 on bad usage

local cli = require "smtpsh.cli"

local usage = [==[usage: smtpsh banner HOST[:PORT] [OPTIONS]
  Connects to HOST (port 25 unless given) and prints the greeting line; timing on stderr.
  Exit 0 a greeting arrived, 1 it did not, 2 bad usage.]==]
local options, words = cli.parse({ ... }, {
  name = "banner", usage = usage, min = 1, max = 1, missing = "missing HOST[:PORT]; see --help",
  summary = "the greeting line and how long connect and greeting took",
  options = { timeout = { default = 30, help = "the deadline of the connect, and of the greeting" } },
  common = { "timeout", "resolver" },
  example = "smtpsh banner mx.example.com:25",
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
