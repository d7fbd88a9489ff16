-- sandbox: running code one did not write (a recipe from a mailing list, a replay) without
-- trusting it, in the manner of Redis's Lua scripting: the code gets an environment of its
-- own holding only what is allowed, and limits it cannot lift (bindings/sandbox.cpp: memory,
-- instructions, CPU and wall-clock time, tasks, connections and where they may go).
--
--   local sandbox = require "smtpsh.sandbox"
--   local ok, result = sandbox.run(source, "=recipe.lua", {"example.com"}, {memory = 64 * 2^20, ...})
--
-- Allowed: the base functions that touch nothing outside (pairs, pcall, tostring, ...; load of
-- text only, into the sandbox), string (no dump), table, math, utf8, coroutine, os.clock /
-- time / date / difftime, print, io.write (not io.read: stdin could hold the run past its
-- wall-clock limit, inside one C call), and the smtpsh modules smtp, dns,
-- net and task as globals, plus `require` of the probing libraries (read-only copies).
-- Not there: os.execute / exit / getenv / remove / rename / tmpname, io.open / popen / lines
-- (no file at all, read or written: a recipe that could read ~/.ssh could mail it anywhere it
-- may connect), package, debug, string.dump, collectgarbage, bytecode, smtp.record,
-- dns.servers, the scenario server. getmetatable shows only the recipe's own metatables and
-- setmetatable cannot replace smtpsh's, nor set a __gc (a finalizer would run after the
-- limits are gone). A run that tries a forbidden thing, or crosses a limit, stops with one
-- line naming what it tried and what stopped it; catching that error does not let it go on.

local core = require "smtpsh.sandboxcore"

local type, pairs, ipairs, select, error, tostring, rawget, rawequal, rawlen, rawset, next =
  type, pairs, ipairs, select, error, tostring, rawget, rawequal, rawlen, rawset, next
local real_pcall, real_xpcall, real_load, real_getmetatable, real_setmetatable =
  pcall, xpcall, load, getmetatable, setmetatable
local string_byte, string_format = string.byte, string.format

local sandbox = {}

-- The libraries a sandboxed `require` gives, as read-only copies; the functions left out of
-- each, and why.
sandbox.modules = {
  smtp = { record = "it writes a file" },
  dns = { servers = "it changes where DNS questions go", trace = "it changes the process's trace",
          trust_anchor = "it reads a file" },
  net = {}, task = {}, json = {}, retry = {}, classify = {}, ratelimit = {}, diagnose = {},
  tlsscan = {}, address = {}, mime = {}, report = {}, waterfall = {}, prometheus = {},
}

-- The defaults of every limit (flags of `smtpsh --sandbox` change them).
sandbox.defaults = {
  memory = 256 * 1024 * 1024,  -- bytes of Lua memory (the whole state's)
  instructions = 0,            -- Lua instructions (0: no limit; cpu is the usual one)
  cpu = 60,                    -- seconds of CPU time
  seconds = 600,               -- seconds of wall-clock time
  tasks = 1000,                -- tasks at once
  connections = 1000,          -- connections in all
  open_connections = 100,      -- connections open at once
  ports = { 25, 465, 587 },
}

local function stop(what)
  core.stop("the sandbox stopped the recipe: " .. what)
end

-- A value the recipe may see of a module: reading gives the module's, writing is refused.
local function read_only(name, module)
  local denied = sandbox.modules[name] or {}
  local proxy = {}
  real_setmetatable(proxy, {
    __index = function(_, key)
      local why = denied[key]
      if why then stop(string_format("it used %s.%s, which the sandbox forbids (%s)", name, tostring(key), why)) end
      return module[key]
    end,
    __newindex = function(_, key)
      stop(string_format("it tried to change %s.%s (smtpsh's modules are read-only in the sandbox)", name,
        tostring(key)))
    end,
    __metatable = false,
  })
  return proxy
end

local function copy(t, leave_out)
  local out = {}
  for key, value in pairs(t) do
    if not (leave_out and leave_out[key]) then out[key] = value end
  end
  return out
end

-- A pcall, xpcall or coroutine.resume that returned false while the run is stopping raises
-- the stop again: catching it does not let the code go on.
local function rethrow_if_stopped(ok, ...)
  if not ok then
    local reason = core.stopped()
    if reason then error(reason, 0) end
  end
  return ok, ...
end

-- string.rep works inside one C call, where the hook cannot stop it: a result larger than
-- the memory limit, or ("").rep(1 << 50), stops the run before it starts. Installed in the
-- string table itself, as strings reach it through their methods.
local real_rep = string.rep
local rep_limit = math.maxinteger
local function checked_rep(text, n, sep)
  local count = math.tointeger(n) or 0
  if count > 0 and (count > rep_limit or (#tostring(text) + #tostring(sep or "")) * count > rep_limit) then
    stop(string_format("it asked string.rep for %d copies, more than the --max-memory limit (%d MiB) allows",
      count, rep_limit >> 20))
  end
  return real_rep(text, n, sep)
end

-- The environment a sandboxed chunk runs in (a fresh one per run).
function sandbox.environment(args)
  string.rep = checked_rep
  local env = {}
  local owned = real_setmetatable({}, { __mode = "k" })  -- the metatables the recipe set
  local modules = {}
  local function module_of(name)
    local cached = modules[name]
    if cached then return cached end
    if not sandbox.modules[name] then return nil end
    cached = read_only(name, require("smtpsh." .. name))
    modules[name] = cached
    return cached
  end

  for _, name in ipairs { "assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring",
                          "type", "rawequal", "rawlen", "rawget", "rawset", "print" } do
    env[name] = _G[name]
  end
  env._VERSION = _VERSION
  env.string = copy(string, { dump = true })
  env.table, env.math, env.utf8 = copy(table), copy(math), copy(utf8)
  env.os = { clock = os.clock, time = os.time, date = os.date, difftime = os.difftime }
  env.io = {}
  env.io.write = function(...)  -- never the file itself: its methods could close stdout
    io.write(...)
    return env.io
  end

  env.pcall = function(f, ...) return rethrow_if_stopped(real_pcall(f, ...)) end
  env.xpcall = function(f, handler, ...)
    return rethrow_if_stopped(real_xpcall(f, function(err)
      if core.stopped() then return err end  -- the stop passes by the recipe's handler
      return handler(err)
    end, ...))
  end
  -- Coroutines: only those the code made may be resumed or closed (coroutine.running() hands
  -- out the task's own thread, which is smtpsh's to drive).
  local made = real_setmetatable({}, { __mode = "k" })
  local function own(co, what)
    if not made[co] then stop("it tried to " .. what .. " a coroutine it did not create") end
    return co
  end
  env.coroutine = copy(coroutine)
  env.coroutine.create = function(f)
    local co = coroutine.create(f)
    made[co] = true
    return co
  end
  env.coroutine.wrap = function(f)
    local co = env.coroutine.create(f)
    return function(...)
      local results = table.pack(rethrow_if_stopped(coroutine.resume(co, ...)))
      if not results[1] then error(results[2], 0) end
      return table.unpack(results, 2, results.n)
    end
  end
  env.coroutine.resume = function(co, ...) return rethrow_if_stopped(coroutine.resume(own(co, "resume"), ...)) end
  env.coroutine.close = function(co) return rethrow_if_stopped(coroutine.close(own(co, "close"))) end

  env.load = function(chunk, name, mode, ...)
    if mode ~= nil and mode ~= "t" then stop("it tried to load bytecode (mode " .. tostring(mode) .. ")") end
    if type(chunk) == "string" and string_byte(chunk, 1) == 27 then stop("it tried to load bytecode") end
    local chunk_env = env  -- without a fourth argument: the sandbox's, never smtpsh's
    if select("#", ...) > 0 then chunk_env = ... end
    return real_load(chunk, name, "t", chunk_env)
  end
  env.getmetatable = function(value)
    local mt = real_getmetatable(value)
    if type(mt) == "table" and owned[mt] then return mt end
    return nil
  end
  env.setmetatable = function(t, mt)
    if type(t) ~= "table" then error("bad argument #1 to 'setmetatable' (table expected)", 2) end
    local current = real_getmetatable(t)
    if current ~= nil and not (type(current) == "table" and owned[current]) then
      stop("it tried to replace a metatable smtpsh set (setmetatable on one of smtpsh's objects)")
    end
    if mt ~= nil then
      if type(mt) ~= "table" then error("bad argument #2 to 'setmetatable' (nil or table expected)", 2) end
      if rawget(mt, "__gc") ~= nil then
        stop("it tried to set a __gc finalizer (it would run after the sandbox's limits are gone)")
      end
      owned[mt] = true
    end
    return real_setmetatable(t, mt)
  end
  env.require = function(name)
    local short = type(name) == "string" and (name:match("^smtpsh%.([%w_]+)$") or name:match("^([%w_]+)$"))
    local module = short and module_of(short)
    if not module then
      stop(string_format("it tried to require %q, which is not one of the libraries the sandbox allows", tostring(name)))
    end
    return module
  end
  for _, name in ipairs { "smtp", "dns", "net", "task" } do env[name] = module_of(name) end
  env.arg = copy(args or {})
  env._G = env
  return env
end

-- What the sandbox refuses outright, by name, so that reaching for it says why.
local forbidden = {
  os = { execute = true, exit = true, getenv = true, remove = true, rename = true, tmpname = true,
         setlocale = true },
  io = { open = true, popen = true, lines = true, output = true, input = true, close = true, tmpfile = true,
         read = true },
}
local forbidden_globals = { debug = true, package = true, collectgarbage = true, dofile = true, loadfile = true,
                            server = true }

-- Unknown globals read as nil, but the well-known dangerous ones stop the run with their name.
local function guard_environment(env)
  for table_name, names in pairs(forbidden) do
    real_setmetatable(env[table_name], {
      __index = function(_, key)
        if names[key] then
          stop(string_format("it used %s.%s, which the sandbox forbids", table_name, tostring(key)))
        end
      end,
      __metatable = false,
    })
  end
  real_setmetatable(env, {
    __index = function(_, key)
      if forbidden_globals[key] then stop(string_format("it used %s, which the sandbox forbids", tostring(key))) end
    end,
    __metatable = false,
  })
  env.string.dump = nil
end

-- Starts the limits for the rest of this process's life (a sandboxed run is the process's
-- last word: there is no leaving the sandbox). limits: sandbox.defaults' fields, and names
-- (hosts and domains it may reach, with their MX hosts), addresses, any_address.
function sandbox.start(limits)
  local settings = copy(sandbox.defaults)
  for key, value in pairs(limits or {}) do settings[key] = value end
  -- string.dump would reach bytecode through any string's methods: gone for every code.
  string.dump = nil
  rep_limit = settings.memory and settings.memory > 0 and settings.memory or math.maxinteger
  core.start(settings)
end

-- Runs `source` (the text of a Lua chunk) sandboxed with `args` as `...` and `arg`: true and its
-- results, or false and the error of a chunk that failed. When the sandbox stopped it, the
-- process ends there with the one line naming why on stderr (exit status 3): after a stop,
-- no more Lua code may run.
function sandbox.run(source, chunkname, args, limits)
  local chunk, problem = sandbox.load(source, chunkname, args)
  if not chunk then return false, problem end
  sandbox.start(limits)
  return core.run(chunk, table.unpack(args or {}, 1, args and (args.n or #args) or 0))
end

-- The chunk of `source` compiled into a fresh sandbox environment (text only), not run yet;
-- nil, problem for bytecode or a syntax error.
function sandbox.load(source, chunkname, args)
  if type(source) ~= "string" then error("sandbox.load: source must be a string", 2) end
  if string_byte(source, 1) == 27 then return nil, "the sandbox refuses bytecode: give the recipe's Lua text" end
  local env = sandbox.environment(args or {})
  local chunk, problem = real_load(source, chunkname, "t", env)
  if not chunk then return nil, problem end
  guard_environment(env)
  return chunk
end

-- Calls fn(...) inside the started sandbox: true, results | false, error; a stop ends the
-- process with its one line (exit 3).
sandbox.call = core.run
-- Another host, domain, address or port the run may reach (a recipe's parameters).
sandbox.allow = core.allow

sandbox.stopped = core.stopped

return sandbox
