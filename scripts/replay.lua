-- replay: serve the remote side of a recording (`--record FILE.jsonl`) on loopback, DNS and
-- SMTP with the recorded delays and drops, and run the command against it: a probe recorded
-- against a real server reproduces offline. What the client sends is compared with what was
-- recorded, line by line; every difference is reported.
--
-- usage:  smtpsh replay FILE.jsonl [-- COMMAND [ARGS...]]
--         smtpsh replay --show FILE.jsonl
--         without COMMAND, the recorded command runs again. A recipe or script recorded
--         with its text (--record keeps it) runs from that text, in the sandbox: a replay
--         needs nothing but the recording, and trusts nothing in it. --show prints the
--         recording (who made it, the command, the recipe's text, the transcript) and runs
--         nothing.
-- output: the command's own output; "replay: ..." lines on stderr (what was served, and
--         every mismatch)
-- exit:   the command's exit status; 1 when it succeeded but the client strayed from the
--         recording; 2 on bad usage or an unreadable recording

local embedded = require "smtpsh.embedded"
local record_file = require "smtpsh.record_file"
local server = require "smtpsh.server"
local dns = require "smtpsh.dns"

local usage = [==[usage: smtpsh replay FILE.jsonl [-- COMMAND [ARGS...]]
       smtpsh replay --show FILE.jsonl
  Serves the recording's DNS and SMTP on loopback and runs COMMAND against it (without one,
  the recorded command). A recipe recorded with its text runs from that text, sandboxed.
  --show prints the recording (command, recipe, transcript) and runs nothing.
  Exit: the command's status; 1 when the client strayed from the recording; 2 bad usage or
  an unreadable recording.]==]
local function fail(message)
  io.stderr:write("smtpsh replay: ", message, "\n")
  os.exit(2)
end

-- Parsed by hand (what follows -- is another command line), so only --help goes to cli.
local help = {
  name = "replay", usage = usage, options = {}, common = {},
  summary = "a recording (--record FILE) served offline, the probe run again against it",
  example = { "smtpsh --record gmail.jsonl diagnose user@gmail.com",
              "smtpsh replay gmail.jsonl -- diagnose user@gmail.com --json",
              "smtpsh replay --show shared.jsonl" },
}
local args = { ... }
if args[1] == "--help" or args[1] == "-h" then require("smtpsh.cli").help(help) end
local show = false
if args[1] == "--show" then
  show = true
  table.remove(args, 1)
  if args[2] then fail("--show takes only FILE.jsonl") end
end
local path = args[1]
if not path or path:sub(1, 2) == "--" then fail("missing FILE.jsonl; see --help") end
local command
if args[2] == "--" then
  command = { table.unpack(args, 3) }
  if #command == 0 then fail("nothing after --: give a COMMAND") end
elseif args[2] then
  fail("unexpected '" .. args[2] .. "': put the command after --")
end

-- The recording ---------------------------------------------------------------------------------

local file, ferr = io.open(path)
if not file then fail("cannot read " .. path .. ": " .. tostring(ferr)) end
-- A directory opens (on Linux) but does not read: errno 21, EISDIR.
local text, rerr, code = file:read("a")
file:close()
if not text then
  fail("cannot read " .. path .. ": " .. (code == 21 and "it is a directory" or tostring(rerr)))
end
local recording, perr = record_file.parse(text)
if not recording then
  fail(path .. (perr:match("^line %d") and " " or " is ") .. perr)
end
local start, answers, order = recording.start, recording.answers, recording.order
local recipe = recording.recipe
if show then
  io.write(require("smtpsh.replay_show").text(path, recording))
  os.exit(0)
end
local recorded_by, this_version = start.smtpsh, require("smtpsh.sys").version
if type(recorded_by) == "string" and recorded_by ~= this_version then
  io.stderr:write(string.format("replay: recorded by smtpsh %s; this is smtpsh %s\n", recorded_by, this_version))
end
if not command then
  command = {}
  for i, word in ipairs(start.argv or {}) do command[i] = word end
  -- Recording again over the recording being replayed would destroy it.
  for i = #command, 1, -1 do
    if command[i] == "--record" then table.remove(command, i) table.remove(command, i) end
  end
  if #command == 0 or command[1] == "script" then fail(path .. " does not say which command made it: give one after --") end
end
-- Someone else's Lua, a recipe above all, runs in the sandbox: a replay trusts nothing in
-- the recording. The recorded text stands in for the file, which need not exist here.
if command[1]:match("%.lua$") then table.insert(command, 1, "sandbox") end
if recipe then require("smtpsh.replayable").provide(recipe.file, recipe.source) end
require("smtpsh.replayable").serve(recording.values)
-- The replay's resolver replaces the recorded one.
for i = #command, 1, -1 do
  if command[i] == "--resolver" then table.remove(command, i) table.remove(command, i) end
end

-- Where each session connected, or how its connect failed.
local endpoints, failures = {}, {}
for _, session in ipairs(order) do
  for i, e in ipairs(session.events) do
    local remote = e.dir == "!" and e.line:match("^connected to (%S+) from ")
    if remote then
      session.remote, session.first = remote, i + 1
      session.connected_st = e.st
      endpoints[remote] = endpoints[remote] or { sessions = {}, next = 1 }
      table.insert(endpoints[remote].sessions, session)
      break
    end
    local refused = e.dir == "!" and e.line:match("^connection refused by (%S+)$")
    local silent = e.dir == "!" and e.line:match("^connect to (%S+) timed out")
    if refused or silent then failures[refused or silent] = refused and "refuse" or "blackhole" end
  end
end

-- The SMTP side: each recorded session played back to the client --------------------------------

local mismatches = {}
local function mismatch(session, expected, got)
  mismatches[#mismatches + 1] = string.format("session %d: expected the client to send %q, got %q",
    session.id, expected, tostring(got))
end

local function same(expected, got)
  if expected == got then return true end
  -- A redacted secret ("AUTH PLAIN ***") matches whatever secret is sent now.
  local prefix = expected:match("^(.-)%*%*%*$")
  return prefix ~= nil and got ~= nil and got:sub(1, #prefix) == prefix
end

local function play(session, conn)
  local last = session.connected_st or 0
  local events = session.events
  for i = session.first or 1, #events do
    local e = events[i]
    local delay = e.st - last
    if e.dir == "S" then
      if delay > 0 then task.sleep(math.min(delay, 60)) end
      last = e.st
      if not conn:send(e.line .. "\r\n") then return end
    elseif e.dir == "C" then
      local got = conn:receive("l")
      last = e.st
      if got == nil then
        mismatch(session, e.line, "nothing: the client closed")
        return
      end
      if not same(e.line, got) then mismatch(session, e.line, got) end
    else
      local more = tonumber(e.line:match("^(%d+) more message lines not shown$"))
      if more then
        for _ = 1, more do conn:receive("l") end
      elseif e.line:match("^TLS handshake") and not session.tls then
        -- No recorded result (an older recording, a failed handshake): a real handshake,
        -- with a certificate of the replay's own. With one, the client takes the recorded
        -- result instead (engine/net/connect_hook.hpp) and neither side runs a handshake.
        local ok = conn:accept_tls { self_signed = "replay.smtpsh.test" }
        if not ok then return end
      elseif e.line:match("timed out") then
        -- The server was silent here: stay so until the client gives up.
        while conn:receive("l") do end
        return
      elseif e.line:match("closed") then
        return
      end
    end
  end
end

local listeners, redirects = {}, {}
for remote, endpoint in pairs(endpoints) do
  local listener, lerr = server.accept("127.0.0.1", 0, function(conn)
    local session = endpoint.sessions[endpoint.next]
    endpoint.next = endpoint.next + 1
    if session then
      local ok, err = pcall(play, session, conn)
      if not ok then mismatches[#mismatches + 1] = "session " .. session.id .. ": replay failed: " .. tostring(err) end
    else
      mismatches[#mismatches + 1] = "the client connected to " .. remote .. " more often than recorded"
    end
    conn:close()
  end)
  if not listener then fail("cannot listen on loopback: " .. lerr) end
  listeners[#listeners + 1] = listener
  -- Each session's recorded TLS result, in the order the client connects.
  local tls = {}
  for i, session in ipairs(endpoint.sessions) do tls[i] = session.tls or false end
  redirects[#redirects + 1] = { from = remote, to = listener:address(), tls = tls }
end
for remote, action in pairs(failures) do
  if not endpoints[remote] and pcall(server.redirect, { { from = remote, to = action } }) then
    redirects[#redirects + 1] = { from = remote, to = action }
  end
end
-- Anything else the command tries to reach is refused: a replay never leaves this machine.
-- The endpoints come from "connected to IP:PORT" lines: a hand-edited one may be no endpoint.
local redirected, redirect_err = pcall(server.redirect, redirects, "refuse")
if not redirected then
  fail(path .. " names an endpoint that is not IP:PORT in a \"connected to\" line (" .. tostring(redirect_err) .. ")")
end

local dns_server = server.dns_replay(answers)
dns.servers { "127.0.0.1:" .. dns_server:port(), attempts = 1 }
io.stderr:write(string.format("replay: %d DNS answers, %d SMTP sessions from %s\n", #answers, #order, path))

-- DNSSEC signatures are checked at the time of the recording (they may have expired since):
-- the recorded start time, moving on as the replay does.
if math.type(start.time) == "integer" then
  local replay_started = os.time()
  require("smtpsh.dnssec").now = function() return start.time + (os.time() - replay_started) end
end

-- The command, in this process ------------------------------------------------------------------

local name = command[1]
local chunk, cerr = embedded.load("scripts/" .. name .. ".lua")
if not chunk then fail("cannot run " .. name .. ": " .. tostring(cerr)) end
local real_exit = os.exit
local exit_marker = {}
os.exit = function(code) error({ [exit_marker] = true, code = code }, 0) end
arg = { [0] = name, table.unpack(command, 2) }
local ok, err = pcall(chunk, table.unpack(command, 2))
os.exit = real_exit
local status = 0
if not ok then
  if type(err) == "table" and err[exit_marker] then
    status = err.code == true and 0 or (err.code == false and 1 or (tonumber(err.code) or 0))
  else
    io.stderr:write("smtpsh replay: ", name, " failed: ", tostring(err), "\n")
    status = 1
  end
end
io.stdout:flush()
for _, listener in ipairs(listeners) do listener:close() end
dns_server:close()

if #mismatches > 0 then
  io.stderr:write("replay: ", #mismatches, " mismatch(es) between the client and the recording:\n")
  for _, line in ipairs(mismatches) do io.stderr:write("replay:   ", line, "\n") end
  if status == 0 then status = 1 end
else
  io.stderr:write("replay: the client sent exactly what was recorded\n")
end
os.exit(status)
