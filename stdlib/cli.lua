-- cli: command-line parsing for subcommands, and the options every probing subcommand
-- honours (ARCHITECTURE.md, "Conventions").
--
--   local cli = require "smtpsh.cli"
--   local opts, words = cli.parse({...}, {
--     name = "dns", usage = "usage: smtpsh dns DOMAIN [--json]",
--     options = { json = "flag", dnsbl = "string", timeout = "seconds", port = "port" },
--     min = 1, max = 1,
--   })
--   cli.apply_resolver(opts)   -- --resolver and --timeout reach the DNS engine
--
-- Kinds: flag, string, list (repeatable, split at commas), repeat (repeatable, kept whole),
-- seconds, count, port.
-- A bad command line prints one line naming what to fix on stderr and exits 2; --help prints
-- the usage on stdout and exits 0.

local dns = require "smtpsh.dns"
local sys = require "smtpsh.sys"
local recordcore = require "smtpsh.recordcore"

local type, pairs, ipairs, tonumber, tostring, pcall, error =
  type, pairs, ipairs, tonumber, tostring, pcall, error
local string_match, string_gmatch, string_gsub = string.match, string.gmatch, string.gsub
local math_type, io_stderr, io_stdout, os_exit, os_getenv =
  math.type, io.stderr, io.stdout, os.exit, os.getenv

local cli = {}

-- Options of every probing subcommand; a subcommand's own spec adds to them.
cli.common = {
  resolver = "list", timeout = "seconds", json = "flag", trace = "flag", ["no-color"] = "flag",
  record = "string",
}

local function fail(name, message)
  io_stderr:write("smtpsh ", name, ": ", message, "\n")
  os_exit(2)
end
cli.fail = fail

local converters = {
  flag = function() return true end,
  string = function(value) return value end,
  list = function(value) return value end,
  ["repeat"] = function(value) return value end,
  seconds = function(value)
    local n = tonumber(value)
    if not n or n <= 0 or n ~= n or n == 1 / 0 then return nil, "a number of seconds above 0" end
    return n
  end,
  count = function(value)
    local n = math_type(tonumber(value)) == "integer" and tonumber(value)
    if not n or n < 0 then return nil, "a whole number, 0 or more" end
    return n
  end,
  port = function(value)
    local n = math_type(tonumber(value)) == "integer" and tonumber(value)
    if not n or n < 1 or n > 65535 then return nil, "a port from 1 to 65535" end
    return n
  end,
}

-- Returns the options (by name; "list" options as lists, split at commas too) and the
-- positional words.
function cli.parse(args, spec)
  local kinds = {}
  for name, kind in pairs(cli.common) do kinds[name] = kind end
  for name, kind in pairs(spec.options or {}) do kinds[name] = kind end
  local options, words = {}, {}
  local i = 1
  while i <= #args do
    local word = args[i]
    if word == "--help" or word == "-h" then
      io_stdout:write(spec.usage, "\n")
      os_exit(0)
    end
    local name, inline = string_match(word, "^%-%-([%w-]+)=(.*)$")
    if not name then name = string_match(word, "^%-%-([%w-]+)$") end
    if name then
      local kind = kinds[name]
      if not kind then fail(spec.name, "unknown option '--" .. name .. "'; see --help") end
      local value = true
      if kind ~= "flag" then
        value = inline
        if value == nil then
          i = i + 1
          value = args[i]
        end
        if value == nil then fail(spec.name, "--" .. name .. " needs a value; see --help") end
        local converted, expected = converters[kind](value)
        if converted == nil then
          fail(spec.name, "--" .. name .. " must be " .. expected .. ", got '" .. value .. "'")
        end
        value = converted
      elseif inline then
        fail(spec.name, "--" .. name .. " takes no value")
      end
      if kind == "list" then
        options[name] = options[name] or {}
        for item in string_gmatch(value, "[^,%s]+") do options[name][#options[name] + 1] = item end
      elseif kind == "repeat" then
        options[name] = options[name] or {}
        options[name][#options[name] + 1] = value
      else
        options[name] = value
      end
    elseif word:sub(1, 1) == "-" and word ~= "-" then
      fail(spec.name, "unknown option '" .. word .. "'; see --help")
    else
      words[#words + 1] = word
    end
    i = i + 1
  end
  local min, max = spec.min or 0, spec.max
  if #words < min then fail(spec.name, spec.missing or ("missing arguments; see --help")) end
  if max and #words > max then
    fail(spec.name, "unexpected argument '" .. words[max + 1] .. "'; see --help")
  end
  -- --trace: SMTP sessions and DNS answers live on stderr.
  if options.trace then
    require("smtpsh.smtp").defaults.trace = true
    dns.trace(true)
  end
  -- --record FILE: from here on, every DNS answer and SMTP line goes to FILE too.
  if options.record then
    local argv = { spec.name }
    for _, word in ipairs(args) do argv[#argv + 1] = word end
    local ok, err = recordcore.start(options.record, argv)
    if not ok then fail(spec.name, "--record: " .. err) end
  end
  return options, words
end

-- An error for a one-line report: its message with the stage first ("banner: connection
-- closed ..."), unless the message already starts with it ("rcpt refused: 550 ..."), and any
-- control byte a server sent shown as \xNN.
function cli.error_message(err, stage)
  local message = tostring(err)
  stage = type(err) == "table" and err.stage or stage
  if stage and message:sub(1, #stage) ~= stage then message = stage .. ": " .. message end
  return require("smtpsh.report").visible(message)
end

-- HOST[:PORT] as every subcommand takes it ("[v6]:port" for IPv6 with a port): host, port,
-- or exit 2 with one line naming what is wrong. One parser for every command (engine/net).
function cli.target(name, target, default_port)
  local host, port = require("smtpsh.smtpcore").parse_target(target, default_port or 25)
  if not host then fail(name, port .. "; expected HOST, HOST:PORT or [IPV6]:PORT") end
  return host, port
end

-- --source ADDR: an IP address this machine can send from, or exit 2 naming what is wrong.
-- Checked before anything is sent: a probe from an address this machine does not have would
-- otherwise fail in a way that looks like the network's fault.
function cli.source(name, source)
  if source == nil then return nil end
  local ok, problem = require("smtpsh.net").usable_source(source)
  if not ok then fail(name, "--source " .. source .. ": " .. problem) end
  return source
end

-- Points the DNS engine at --resolver (when given) with --timeout per try.
function cli.apply_resolver(options, name)
  local servers = {}
  for i, server in ipairs(options.resolver or {}) do servers[i] = server end
  if options.timeout then servers.timeout = options.timeout end
  if #servers == 0 and not servers.timeout then return end
  local ok, err = pcall(dns.servers, servers)
  if not ok then
    fail(name, (string_gsub(tostring(err), "^.-dns%.servers%b():%s*", "--resolver: ")))
  end
end

-- Whether output to `stream` ("stdout", "stderr") may be coloured: a terminal, no NO_COLOR
-- and no --no-color.
function cli.colour(options, stream)
  if options["no-color"] then return false end
  local no_color = os_getenv("NO_COLOR")
  if no_color and no_color ~= "" then return false end
  return sys.isatty(stream or "stdout")
end

return cli
