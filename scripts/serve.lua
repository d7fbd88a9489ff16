-- serve: run a scenario server until Ctrl-C: a remote side that greylists, throttles, speaks
-- only old TLS, drops, or answers whatever a scenario says (examples/servers/).
--
-- usage:  smtpsh serve SCENARIO [--listen HOST:PORT] [--set NAME=VALUE]...
--         SCENARIO is a file (my_scenario.lua) or the name of a built-in one (greylist)
-- output: "listening on HOST:PORT (SCENARIO)" on stdout once it accepts connections
-- exit:   0 after Ctrl-C, 1 when it cannot listen, 2 on bad usage

local cli = require "smtpsh.cli"
local embedded = require "smtpsh.embedded"
local server = require "smtpsh.server"

local usage = [==[usage: smtpsh serve SCENARIO [OPTIONS]
  SCENARIO: a Lua file returning server.listen options, or a built-in name:
  accept, demo, greylist, rate_limit, tls_old, tls_broken, busy, drop_before_banner,
  drop_at, slow, reject (see examples/servers/README.md).]==]

local args, sets = {}, {}
local raw = { ... }
local i = 1
while i <= #raw do
  if raw[i] == "--set" then
    local name, value = (raw[i + 1] or ""):match("^([%w_]+)=(.*)$")
    if not name then cli.fail("serve", "--set needs NAME=VALUE") end
    sets[name] = value
    i = i + 2
  else
    args[#args + 1] = raw[i]
    i = i + 1
  end
end
local options, words = cli.parse(args, {
  name = "serve", usage = usage, min = 1, max = 1, missing = "missing SCENARIO; see --help",
  summary = "a scenario server (greylist, rate_limit, tls_old, ...) until Ctrl-C",
  options = {
    listen = { "string", arg = "ADDRESS[:PORT]", default = "127.0.0.1:2525",
               help = "where to listen (port 0: any free one, printed)" },
    -- Taken out of the arguments above, before parsing; here so --help lists it.
    set = { "repeat", arg = "NAME=VALUE", help = "a scenario setting (repeatable), e.g. delay=60" },
  },
  common = {},
  example = "smtpsh serve greylist --listen 127.0.0.1:2525 --set delay=60",
})

local scenario = words[1]
local chunk, err
if scenario:match("%.lua$") or scenario:find("/", 1, true) then
  chunk, err = loadfile(scenario)
else
  chunk, err = embedded.load("examples/servers/" .. scenario .. ".lua")
end
if not chunk then cli.fail("serve", "cannot load scenario: " .. err) end
local ok, spec = pcall(chunk, sets)
if not ok then cli.fail("serve", "scenario " .. scenario .. " failed: " .. tostring(spec)) end
if type(spec) ~= "table" then cli.fail("serve", "scenario " .. scenario .. " must return a table of server.listen options") end

local host, port = "127.0.0.1", 2525
if options.listen then
  -- Port 0 is allowed here: the system picks a free port, and the line printed tells it.
  local h, p = options.listen:match("^%[(.+)%]:(%d+)$")
  if not h then h, p = options.listen:match("^([^:]+):(%d+)$") end
  host, port = h or options.listen, tonumber(p) or 2525
  if not require("smtpsh.smtp").is_address(host) or port > 65535 then
    cli.fail("serve", "--listen must be ADDRESS[:PORT] (an IP address; port 0 for any free one), got '" .. options.listen .. "'")
  end
end
spec.host, spec.port = host, port
local srv, lerr = server.listen(spec)
if not srv then
  io.stderr:write("smtpsh serve: ", lerr, "\n")
  os.exit(1)
end
io.write("listening on ", srv.address, " (", scenario, ")\n")
io.flush()
srv:wait()
