-- watch: probes mail servers on a schedule and serves Prometheus metrics, so a rising 421
-- rate or a failing TLS handshake is seen before users see it (stdlib/watch.lua).
--
-- usage:  smtpsh watch CONFIG.lua [OPTIONS]
--         smtpsh watch TARGET... [--every 60s] [--probe diagnose|tls|verify] [OPTIONS]
-- output: "serving http://HOST:PORT/ (N targets)" on stdout once it listens; a line per probe
--         on stderr (--quiet: none). With --once: each target probed once, the metrics on
--         stdout, then exit.
-- exit:   runs until stopped (0 after Ctrl-C); with --once 0 when every probe passed, else 1;
--         2 on bad usage or a configuration that does not load, 1 when it cannot listen

local cli = require "smtpsh.cli"
local watch = require "smtpsh.watch"
local smtp = require "smtpsh.smtp"
local task = require "smtpsh.task"

local usage = [==[usage: smtpsh watch CONFIG.lua [OPTIONS]
       smtpsh watch TARGET... [--every 60s] [--probe diagnose|tls|verify] [OPTIONS]
  Probes each target on its own interval (with jitter; never two probes of one target at once)
  and serves HTTP: /metrics (Prometheus), /probe?target=T&probe=P (one probe now, the blackbox
  exporter's multi-target pattern), /last?target=T (the last checklist and transcript), / (a
  status page). CONFIG.lua returns {targets = {...}, every =, options = {...}, probes = {...}}
  (see examples/watch.lua); options given here apply to every target of a CONFIG too.
  Exit: runs until stopped; --once: 0 every probe passed, 1 not; 2 bad usage.]==]

local options, words = cli.parse({ ... }, {
  name = "watch", usage = usage, min = 0, missing = "missing CONFIG.lua or TARGET; see --help",
  summary = "probes on a schedule and serves Prometheus metrics, a status page and the last transcript",
  options = {
    every = { "string", arg = "DURATION", default = "60s (a CONFIG's every)", help = "the interval: 30s, 5m, 1h or seconds" },
    probe = { "string", arg = "diagnose|tls|verify", default = "diagnose", help = "what each TARGET gets" },
    listen = { "string", arg = "HOST:PORT", default = "127.0.0.1:9125", help = "where HTTP is served (port 0: a free one)" },
    jitter = { "string", arg = "FRACTION", default = "0.1", help = "each start moves by up to this share of the interval" },
    once = { "flag", help = "probe each target once, print the metrics, exit (0 all passed, 1 not)" },
    quiet = { "flag", help = "no line per probe on stderr" },
    helo = { "string", arg = "NAME", default = "this machine's host name", help = "the EHLO name of the probes" },
    from = { "string", arg = "ADDR", default = "postmaster@HELO", help = "the MAIL FROM of the probes" },
    dnsbl = { "list", arg = "ZONE,...|none", default = "diagnose's zones", help = "the blocklists diagnose asks" },
    timeout = { default = 10, help = "the deadline of each step of a probe" },
  },
  common = { "timeout", "resolver", "trace" },
  example = { "smtpsh watch example.com mx.example.net:25 --every 5m",
              "smtpsh watch examples/watch.lua --listen 127.0.0.1:9125" },
})
if #words == 0 then cli.fail("watch", "missing CONFIG.lua or TARGET; see --help") end

-- "90", "90s", "5m", "1h" -> seconds
local function duration(text, name)
  local number, unit = tostring(text):match("^(%d+%.?%d*)([smh]?)$")
  local seconds = number and tonumber(number) * ({ [""] = 1, s = 1, m = 60, h = 3600 })[unit]
  if not seconds or seconds <= 0 then cli.fail("watch", "--" .. name .. " " .. text .. ": expected 30s, 5m, 1h or seconds") end
  return seconds
end

local config
if #words == 1 and words[1]:match("%.lua$") then
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(words[1], "t", env)
  if not chunk then cli.fail("watch", "cannot load " .. words[1] .. ": " .. tostring(err)) end
  local ok, value = pcall(chunk)
  if not ok then cli.fail("watch", words[1] .. " failed: " .. tostring(value)) end
  if type(value) ~= "table" then cli.fail("watch", words[1] .. " must return a table {targets = {...}, ...}") end
  config = value
else
  config = { targets = words }
end
if options.every then config.every = duration(options.every, "every") end
if options.probe then config.probe = options.probe end
if options.jitter then
  config.jitter = tonumber(options.jitter)
  if not config.jitter then cli.fail("watch", "--jitter " .. options.jitter .. ": expected a fraction such as 0.1") end
end
config.options = config.options or {}
for _, name in ipairs { "helo", "from", "timeout" } do
  if options[name] ~= nil then config.options[name] = options[name] end
end
if config.options.timeout == nil then config.options.timeout = 10 end
if options.dnsbl then
  local zones = options.dnsbl
  if #zones == 1 and zones[1] == "none" then zones = {} end
  config.options.dnsbl = zones
end
for _, name in ipairs { "helo", "from" } do
  local value = config.options[name]
  if value ~= nil and (type(value) ~= "string" or value:find("[\r\n%s]")) then
    cli.fail("watch", name .. " must be a string without spaces, CR or LF")
  end
end
cli.apply_resolver(options, "watch")
if options.trace then smtp.defaults.trace = true end

local quiet = options.quiet
config.on_result = function(record)
  if quiet then return end
  io.stderr:write(string.format("%s %s %s %s %.2fs %s\n", os.date("!%H:%M:%SZ", record.started), record.target,
    record.probe, record.verdict or record.result, record.duration or 0, record.summary or ""))
  io.stderr:flush()
end

local watcher, problem = watch.new(config)
if not watcher then cli.fail("watch", problem) end

if options.once then
  local all_passed = true
  local running = {}
  for i, t in ipairs(watcher.targets) do running[i] = task.spawn(function() return watcher:probe(t) end) end
  for _, handle in ipairs(running) do
    local record = task.wait(handle)
    if not record or not record.success then all_passed = false end
  end
  io.write(watcher:metrics_text())
  io.stdout:flush()
  os.exit(all_passed and 0 or 1)
end

local listen = options.listen or config.listen or "127.0.0.1:9125"
local host, port
do
  local h, p = listen:match("^%[(.+)%]:(%d+)$")
  if not h then h, p = listen:match("^([^:]+):(%d+)$") end
  port = tonumber(p)
  if not h or not port or port > 65535 then
    cli.fail("watch", "--listen " .. listen .. ": expected HOST:PORT or [IPV6]:PORT (port 0: a free one)")
  end
  host = h
end
local address, err = watcher:listen(host, port, function(problem)
  io.stderr:write("smtpsh watch: a page failed: ", (tostring(problem):gsub("%s*[\r\n]+%s*", " ")), "\n")
end)
if not address then
  local message = tostring(err)
  if not message:find("listen", 1, true) then message = "cannot listen on " .. listen .. ": " .. message end
  io.stderr:write("smtpsh watch: ", message, "\n")
  os.exit(1)
end
io.write(string.format("serving http://%s/ (%d targets)\n", address, #watcher.targets))
io.stdout:flush()
watcher:start()
local ok, problem = pcall(function()
  for _, loop in ipairs(watcher.loops) do
    local done, err = task.wait(loop)
    if done == nil and err ~= nil then error(err, 0) end
  end
end)
watcher:stop()
if not ok and not tostring(problem):find("interrupted", 1, true) then
  io.stderr:write("smtpsh watch: ", (tostring(problem):gsub("%s*[\r\n]+%s*", " ")), "\n")
  os.exit(1)
end
io.stderr:write("smtpsh watch: stopped\n")
