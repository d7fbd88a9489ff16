-- The API reference (stdlib/apidoc.lua, stdlib/apidoc/) against the code: every public
-- function and field of every module is documented and every documented name exists, the
-- session and connection methods included; help() answers; every subcommand's --help lists
-- its options with help and an example; and the man page and README's API section are what
-- doc/generate.lua makes of it now. Run from the repository root (ctest does).
local t = dofile("tests/lua/testing.lua")
local apidoc = require "smtpsh.apidoc"
local cli = require "smtpsh.cli"

local SMTPSH = arg[-1]  -- this binary, as it was started

local function lines_of(command)
  local pipe = assert(io.popen(command))
  local out = {}
  for line in pipe:lines() do out[#out + 1] = line end
  local _, _, status = pipe:close()
  return out, status
end

local function set_of(list)
  local set = {}
  for _, name in ipairs(list) do set[name] = true end
  return set
end

-- Names in `live` missing from `documented`, and the reverse, as two sorted lists.
local function differences(live, documented)
  local missing, stale = {}, {}
  for name in pairs(live) do if not documented[name] then missing[#missing + 1] = name end end
  for name in pairs(documented) do if not live[name] then stale[#stale + 1] = name end end
  table.sort(missing)
  table.sort(stale)
  return missing, stale
end

local function check_names(what, live, documented)
  local missing, stale = differences(live, documented)
  t.eq(missing, {}, what .. ": public names without an entry in stdlib/apidoc/ (document them)")
  t.eq(stale, {}, what .. ": documented names that do not exist (stale docs)")
end

-- The documented names of a module reference: name -> entry (the call entry left out).
local function documented_names(doc)
  local names = {}
  for _, entry in ipairs(doc.entries) do
    if not entry.call then names[entry.name] = entry end
  end
  return names
end

-- A module table's public keys: strings not starting with "_".
local function public_keys(module)
  local keys = {}
  for key in pairs(module) do
    if type(key) == "string" and key:sub(1, 1) ~= "_" then keys[key] = true end
  end
  return keys
end

t.test("every stdlib module is documented or listed as internal, and no listed one is gone", function()
  local files = {}
  for _, line in ipairs(lines_of("ls stdlib")) do
    local name = line:match("^(.+)%.lua$")
    if name then files[name] = true end
  end
  t.ok(files.smtp and files.dns, "stdlib/ is listed")
  local listed = {}
  for name in pairs(apidoc.internal) do listed[name] = true end
  for _, doc in apidoc.each() do
    if doc.require then listed[doc.require:match("^smtpsh%.(.+)$")] = true end
  end
  -- Modules of the bindings (C) are documented but have no file.
  for _, binding in ipairs { "task", "net" } do listed[binding] = nil end
  check_names("stdlib modules", files, listed)
end)

t.test("every entry has a signature, a summary, returns, errors and an example", function()
  for _, doc in apidoc.each() do
    t.ok(doc.title and doc.summary and #doc.entries > 0, doc.name .. ": title, summary and entries")
    for _, entry in ipairs(doc.entries) do
      local full = apidoc.full_name(doc, entry)
      t.ok(type(entry.summary) == "string" and entry.summary ~= "", full .. ": summary")
      t.ok(type(entry.example) == "string" and entry.example ~= "", full .. ": example")
      t.ok(entry.sig:sub(1, #full) == full, full .. ": the signature starts with the name, got " .. entry.sig)
      if not entry.field then
        t.ok(type(entry.returns) == "string" and type(entry.errors) == "string", full .. ": returns and errors")
      end
    end
  end
end)

t.test("every public function and field of every module is documented, and nothing else", function()
  for _, doc in apidoc.each() do
    if doc.require then
      local module = require(doc.require)
      check_names(doc.require, public_keys(module), documented_names(doc))
      for name, entry in pairs(documented_names(doc)) do
        local kind = type(module[name])
        if entry.field then
          t.ok(kind ~= "function", doc.name .. "." .. name .. " is documented as a field but is a function")
        else
          t.eq(kind, "function", doc.name .. "." .. name .. " is documented as a function")
        end
      end
      for _, entry in ipairs(doc.entries) do
        if entry.call then
          local meta = getmetatable(module)
          t.ok(meta and meta.__call, doc.require .. " is documented as callable")
        end
      end
    end
  end
end)

-- A real session to a scenario server on loopback: its methods and fields are what a user gets.
local function live_session()
  local srv = assert(server.listen { port = 0 })
  local s = assert(smtp.connect("127.0.0.1:" .. srv.port, { timeout = 5 }))
  assert(s:ehlo())
  return s, srv
end

-- What a session is never documented with: the engine object behind it (scripts must not use it).
local undocumented_session_fields = { core = true }

t.test("every session method and field is documented, and nothing else", function()
  local s, srv = live_session()
  local live = {}
  for name in pairs(getmetatable(s).__fields) do live[name] = true end
  for name in pairs(s) do
    if not undocumented_session_fields[name] then live[name] = true end
  end
  check_names("session", live, documented_names(apidoc.module("session")))
  s:quit()
  srv:close()
end)

t.test("every connection method and field is documented, and nothing else", function()
  require "smtpsh.net"
  local meta = debug.getregistry()["smtpsh.conn"]
  t.ok(meta and meta.__fields, "the connection metatable")
  check_names("connection", public_keys(meta.__fields), documented_names(apidoc.module("connection")))
end)

t.test("help is a global; help() lists every module", function()
  t.eq(type(help), "function")
  local text, found = require("smtpsh.help").text()
  t.ok(found)
  for _, name in ipairs(apidoc.modules) do
    t.ok(text:find("\n  " .. name .. " ", 1, true), "help() lists " .. name)
  end
end)

t.test("help finds a topic by name, by bare name, by value and for a session", function()
  local text = require("smtpsh.help").text
  local function shows(topic, pattern)
    local out, found = text(topic)
    t.ok(found, tostring(topic) .. " found")
    t.ok(out:find(pattern, 1, true), tostring(topic) .. " shows " .. pattern .. ", got:\n" .. out)
    return out
  end
  local connect = shows("smtp.connect", "smtp.connect(target [, opts])")
  t.ok(connect:find("returns:", 1, true) and connect:find("errors:", 1, true) and connect:find("example:", 1, true))
  shows(smtp.connect, "smtp.connect(target [, opts])")
  shows("starttls", "s:starttls([opts])")
  shows("session:ehlo", "s:ehlo([name])")
  shows("dns", "dns.mx(domain [, opts])")
  shows(dns, "dns.mx(domain [, opts])")
  shows(require "smtpsh.json", "json.encode(value)")
  local s, srv = live_session()
  shows(s, "s:pipeline{line, ...}")
  s:quit()
  srv:close()
end)

t.test("an unknown topic is one line suggesting close matches", function()
  local out, found = require("smtpsh.help").text("statls")
  t.eq(found, false)
  t.eq(select(2, out:gsub("\n", "")), 1, "one line: " .. out)
  t.ok(out:find("no topic 'statls'", 1, true) and out:find("starttls", 1, true), out)
  out = require("smtpsh.help").text("qqqqqqqqqq")
  t.ok(out:find("help() lists the modules", 1, true), out)
end)

t.test("the executable's own options are the documented ones", function()
  local out = lines_of(SMTPSH .. " --help")
  local live = {}
  for _, line in ipairs(out) do
    local option = line:match("^  (%-%-?[%w-]+)")
    if option then live[option] = true end
  end
  local documented = {}
  for _, option in ipairs(apidoc.shell.options) do documented[option[1]:match("^%S+")] = true end
  check_names("smtpsh --help", live, documented)
end)

-- Subcommands whose owners have not given their options help and an example yet; each must
-- leave this list once it does (the test below fails until then).
local pending = {}

t.test("the documented subcommands are the scripts, each --help with option help and an example", function()
  local files = {}
  for _, line in ipairs(lines_of("ls scripts")) do
    local name = line:match("^(.+)%.lua$")
    if name then files[name] = true end
  end
  check_names("scripts/", files, set_of(apidoc.commands))
  for _, name in ipairs(apidoc.commands) do
    local spec = assert(cli.spec_of(assert(loadfile("scripts/" .. name .. ".lua"))))
    local complete = spec.example ~= nil and spec.summary ~= nil
    for _, option in ipairs(cli.options_of(spec)) do
      if not option.help then complete = false end
    end
    if pending[name] then
      t.ok(not complete, name .. " now documents its options: take it off the pending list")
    else
      t.ok(complete, name .. ": every option needs help =, and the spec summary = and example =")
    end
  end
end)

t.test("cli: a kind alone still parses; a table gives help, default and example", function()
  local spec = {
    name = "x", usage = "usage: smtpsh x HOST", common = { "timeout" }, example = "smtpsh x mx.example",
    options = { port = { "port", default = 25, help = "the port" }, json = "flag", timeout = { default = 7 } },
  }
  local options, words = cli.parse({ "--port", "2525", "--json", "--timeout=2", "h" }, spec)
  t.eq(options, { port = 2525, json = true, timeout = 2 })
  t.eq(words, { "h" })
  local text = cli.help_text(spec)
  t.ok(text:find("^usage: smtpsh x HOST\n"), text)
  t.ok(text:find("%-%-port PORT +the port %[default: 25%]"), text)
  t.ok(text:find("%-%-timeout SECONDS +the deadline of each network step %[default: 7%]"), text)
  t.ok(text:find("example:\n  smtpsh x mx.example\n", 1, true), text)
  t.ok(not text:find("--resolver", 1, true), "only the listed common options: " .. text)
  t.raises(function() cli.help_text { usage = "u", options = { y = "nonsense" } } end, "no known kind")
  local captured = cli.spec_of(function(...)
    cli.parse({ ... }, spec)
    error("not reached")
  end)
  t.ok(captured == spec, "spec_of hands back the very spec")
end)

-- The generator's check, as its own process (it reads the working tree).
local function generator_check(extra)
  local out, status = lines_of(SMTPSH .. " doc/generate.lua --check " .. (extra or "") .. " 2>&1")
  return status, table.concat(out, "\n")
end

t.test("doc/smtpsh.1 and README's API section are what doc/generate.lua writes", function()
  local status, out = generator_check()
  t.ok(status == 0, out)
end)

t.test("the generator's check catches a stale README section", function()
  local readme = assert(io.open("README.md")):read("a")
  local stale = os.tmpname()
  local file = assert(io.open(stale, "w"))
  file:write((readme:gsub("smtp%.connect%(target", "smtp.connect(old_target", 1)))
  file:close()
  local status, out = generator_check("--readme " .. stale)
  os.remove(stale)
  t.eq(status, 1, out)
  t.ok(out:find("is out of date: run `build/smtpsh doc/generate.lua` to regenerate", 1, true), out)
end)

t.run()
