-- sandbox: runs a Lua file someone else wrote with the sandbox's rules and limits
-- (stdlib/sandbox.lua). `smtpsh --sandbox [LIMITS] FILE.lua ARGS...` comes here too.
--
-- usage:  smtpsh sandbox [LIMITS] [--] FILE.lua [ARGS...]
-- output: what the file prints; its returned values printed as the REPL prints them
-- exit:   0 it ran to the end, 1 it failed, 2 bad usage, 3 the sandbox stopped it (one line on
--         stderr naming what it tried and which rule or limit stopped it)

local cli = require "smtpsh.cli"
local sandbox = require "smtpsh.sandbox"
local smtp = require "smtpsh.smtp"

local usage = [==[usage: smtpsh sandbox [LIMITS] [--] FILE.lua [ARGS...]
       smtpsh --sandbox [LIMITS] FILE.lua [ARGS...]
  Runs FILE.lua without trusting it: no files, no processes, no environment, smtpsh's modules
  read-only, network only through smtpsh to the hosts and domains named in ARGS (their MX
  hosts and addresses too) on ports 25, 465 and 587 (and, to that host only, a port an ARG names: HOST:PORT),
  within limits of memory, CPU, time, tasks and connections. A recipe (a file that returns
  {name, description, params, run}) takes --NAME VALUE parameters, checked against its
  declaration; --help shows them, --json prints what it returns; its host, domain and
  address parameters are where it may go.
  Exit 0 it ran, 1 it failed, 2 bad usage, 3 the sandbox stopped it (one line says why).]==]

local spec = {
  name = "sandbox", usage = usage, min = 0, max = 0,
  summary = "runs a Lua file one did not write: no files or processes, limited memory, time and network",
  options = {
    ["max-memory"] = { "count", arg = "MIB", default = "256", help = "Lua memory, in MiB" },
    ["max-instructions"] = { "count", arg = "N", default = "no limit", help = "Lua instructions (a deterministic CPU limit)" },
    ["max-cpu"] = { "seconds", default = "60", help = "CPU time" },
    ["max-time"] = { "seconds", default = "600", help = "wall-clock time" },
    ["max-tasks"] = { "count", arg = "N", default = "1000", help = "tasks at once" },
    ["max-connections"] = { "count", arg = "N", default = "1000", help = "connections in all" },
    ["max-open"] = { "count", arg = "N", default = "100", help = "connections open at once" },
    allow = { "list", arg = "HOST[,HOST...]", help = "another host, domain or address it may reach (repeatable)" },
    ["allow-port"] = { "list", arg = "PORT[,PORT...]", help = "another port it may connect to (repeatable)" },
    ["allow-any-host"] = { "flag", help = "any address (still only the allowed ports)" },
  },
  common = { "resolver", "trust-anchor" },
  example = { "smtpsh --sandbox recipe.lua example.com", "smtpsh sandbox --max-time 30 probe.lua mx.example.com:2525" },
}

-- The options stop at "--" or at the first word that is not one (FILE.lua): what follows is
-- the recipe's, however it looks.
local raw, mine, rest = { ... }, {}, {}
local i = 1
while i <= #raw do
  local word = raw[i]
  if word == "--" then
    i = i + 1
    break
  end
  if word:sub(1, 2) ~= "--" then break end
  mine[#mine + 1] = word
  if not word:find("=", 1, true) and word ~= "--allow-any-host" and word ~= "--help" then
    i = i + 1
    mine[#mine + 1] = raw[i]
  end
  i = i + 1
end
for j = i, #raw do rest[#rest + 1] = raw[j] end
local options = cli.parse(mine, spec)
if #rest == 0 then cli.fail("sandbox", "missing FILE.lua; see --help") end
local file = rest[1]
local args = { n = #rest - 1 }
for j = 2, #rest do args[j - 1] = rest[j] end

-- A replay hands over the recipe's recorded text; otherwise it is read from the file.
local replayable = require "smtpsh.replayable"
local source = replayable.source(file)
if not source then
  local handle, open_problem = io.open(file, "rb")
  if not handle then cli.fail("sandbox", "cannot read " .. file .. ": " .. tostring(open_problem)) end
  source = handle:read("a")
  handle:close()
  -- Kept whole in a recording (--record): its replay needs no file.
  replayable.keep(file, source, { table.unpack(args, 1, args.n) })
end

-- Where it may connect: what the arguments name, what --allow adds.
local names, addresses, ports = {}, {}, {}
local host_ports = {}  -- { {host, port}, ... }: a port named with a host is that host's only
for _, port in ipairs(sandbox.defaults.ports) do ports[#ports + 1] = port end
local function allow(text)
  local domain = text:match("^[^@%s]+@([^@%s]+)$")
  if domain then
    names[#names + 1] = domain:lower()
    return true
  end
  local host, port = smtp.parse_target(text, 25)
  if not host or not (host:find(".", 1, true) or host:find(":", 1, true) or host == "localhost") then return false end
  if smtp.is_address(host) then addresses[#addresses + 1] = host else names[#names + 1] = host:lower() end
  if port ~= 25 then host_ports[#host_ports + 1] = { host, port } end
  return true
end
-- Positional words only: "--name value" pairs are a recipe's parameters, and a recipe's
-- destinations are those of its declared kinds (host, domain, address), added once read.
do
  local j = 1
  while j <= args.n do
    if args[j]:sub(1, 2) == "--" then
      if not args[j]:find("=", 1, true) then j = j + 1 end  -- its value is no destination
    else
      allow(args[j])
    end
    j = j + 1
  end
end
for _, host in ipairs(options.allow or {}) do
  if not allow(host) then cli.fail("sandbox", "--allow " .. host .. ": expected a host, a domain or an address") end
end
for _, port in ipairs(options["allow-port"] or {}) do
  local n = math.tointeger(tonumber(port))
  if not n or n < 1 or n > 65535 then cli.fail("sandbox", "--allow-port " .. port .. ": expected a port from 1 to 65535") end
  ports[#ports + 1] = n
end

-- Set before the sandbox starts: the recipe itself may not choose where DNS questions go.
cli.apply_resolver(options, "sandbox")

local limits = {
  memory = (options["max-memory"] or 256) * 1024 * 1024, instructions = options["max-instructions"],
  cpu = options["max-cpu"], seconds = options["max-time"], tasks = options["max-tasks"],
  connections = options["max-connections"], open_connections = options["max-open"], names = names, addresses = addresses, ports = ports,
  any_address = options["allow-any-host"] or false,
}
if limits.memory == 0 then cli.fail("sandbox", "--max-memory must be 1 MiB or more") end

-- What the recipe gave (an error object, a spec, returned values) is its own code's to
-- describe: __tostring, __index and the like run inside the sandbox, through sandbox.call.
local function inside(fn, ...)
  local results = table.pack(sandbox.call(fn, ...))
  if not results[1] then
    io.stderr:write("smtpsh: a recipe's value failed: cannot describe it\n")
    os.exit(1)
  end
  return table.unpack(results, 2, results.n)
end

local function failed(message)
  local text = inside(tostring, message)
  io.stderr:write("smtpsh: ", (tostring(text):gsub("%s*[\r\n]+%s*", " ")), "\n")
  os.exit(1)
end

local chunk, problem = sandbox.load(source, "@" .. file, args)
if not chunk then failed(problem) end
sandbox.start(limits)
for _, pair in ipairs(host_ports) do sandbox.allow(pair[1], pair[2]) end
local results = table.pack(sandbox.call(chunk, table.unpack(args, 1, args.n)))
if not results[1] then failed(results[2]) end

-- A recipe (stdlib/recipe.lua): its declaration says what ARGS mean, and the hosts they name
-- are where it may go. Its top level ran sandboxed above, so reading it trusted nothing.
local recipe = require "smtpsh.recipe"
local spec = results[2]
local is_recipe, bad = inside(recipe.check, spec)
if bad then failed(file .. ": " .. bad) end
if is_recipe then
  local values, own = inside(recipe.parse, spec, args)
  if not values then cli.fail("sandbox", inside(tostring, spec.name) .. ": " .. own) end
  if own.help then
    io.write(inside(recipe.help, spec))
    os.exit(0)
  end
  -- What it asks beyond the sandbox runs only when granted here, by whoever runs it.
  local granted_ports = {}
  for _, port in ipairs(ports) do granted_ports[port] = true end
  local ungranted = inside(recipe.ungranted, spec, { any_host = limits.any_address, ports = granted_ports })
  if ungranted then cli.fail("sandbox", ungranted) end
  for _, host in ipairs(inside(recipe.destinations, spec, values, own.given)) do
    local domain = host:match("^[^@]+@(.+)$")
    if domain then
      sandbox.allow(domain)
    else
      local name, port = smtp.parse_target(host, 25)
      sandbox.allow(name, port)
    end
  end
  results = table.pack(sandbox.call(spec.run, values))
  if not results[1] then failed(results[2]) end
  if own.json then
    local json = require "smtpsh.json"
    io.write(inside(json.encode, results[2] == nil and json.null or results[2]), "\n")
    os.exit(0)
  end
end
if results.n > 1 then
  local pretty = require "smtpsh.pretty"
  inside(pretty.print_values, io.write, table.unpack(results, 2, results.n))
end
