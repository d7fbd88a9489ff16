-- send: one SMTP transaction from the command line, swaks-style, with the transcript shown.
--
-- usage:  smtpsh send --server HOST[:PORT] --from ADDR --to ADDR [--to ADDR...]
--                     [--header 'Name: value']... [--body TEXT|@FILE] [--helo NAME]
--                     [--auth PLAIN|LOGIN|CRAM-MD5 --user USER --password-file FILE]
--                     [--quit-after banner|ehlo|mail|rcpt|data] [--timeout SECONDS]
--                     [--resolver ADDR[:PORT]] [--record FILE.jsonl] [--trace] [--json]
-- output: the transcript (C/S/! lines) on stdout, or with --json one object:
--         {ok, stage, reply = {code, enhanced, text}, error, transcript = [{t, dir, line}]}
-- exit:   0 when the last step got a 2xx/3xx reply, 1 otherwise, 2 on bad usage

local json = require "smtpsh.json"

local usage = [==[usage: smtpsh send --server HOST[:PORT] --from ADDR --to ADDR [--to ADDR...]
       [--header 'Name: value']... [--body TEXT|@FILE] [--helo NAME]
       [--auth PLAIN|LOGIN|CRAM-MD5 --user USER --password-file FILE]
       [--quit-after banner|ehlo|mail|rcpt|data] [--timeout SECONDS] [--resolver ADDR[:PORT]]
       [--record FILE.jsonl] [--trace] [--json]]==]

local function fail_usage(message)
  io.stderr:write("smtpsh send: ", message, "\n")
  os.exit(2)
end

local options = { to = {}, header = {} }
local takes_value = { server = true, from = true, to = true, header = true, body = true,
  helo = true, auth = true, user = true, ["password-file"] = true, ["quit-after"] = true,
  timeout = true, resolver = true, record = true }
local flags = { trace = true, json = true }
local args = { ... }
local i = 1
while i <= #args do
  local name = args[i]:match("^%-%-([%w-]+)$")
  if args[i] == "--help" then
    print(usage)
    os.exit(0)
  elseif name and flags[name] then
    options[name] = true
  elseif name and takes_value[name] then
    i = i + 1
    if args[i] == nil then fail_usage("--" .. name .. " needs a value; see --help") end
    if type(options[name]) == "table" then
      table.insert(options[name], args[i])
    else
      options[name] = args[i]
    end
  else
    fail_usage("unknown argument '" .. args[i] .. "'; see --help")
  end
  i = i + 1
end
if not options.server then fail_usage("--server HOST[:PORT] is required") end
local quit_after = options["quit-after"]
local stages = { banner = 1, ehlo = 2, mail = 3, rcpt = 4, data = 5 }
if quit_after and not stages[quit_after] then
  fail_usage("--quit-after must be banner, ehlo, mail, rcpt or data")
end
local needs_envelope = not quit_after or stages[quit_after] >= stages.mail
if needs_envelope and not options.from then fail_usage("--from ADDR is required") end
if needs_envelope and (not quit_after or stages[quit_after] >= stages.rcpt) and #options.to == 0 then
  fail_usage("--to ADDR is required")
end
local timeout = 30
if options.timeout then
  timeout = tonumber(options.timeout)
  if not timeout or timeout <= 0 then fail_usage("--timeout needs a number of seconds above 0") end
end
require("smtpsh.cli").apply_resolver({ resolver = options.resolver and { options.resolver } }, "send")
if options.record then
  local ok, rerr = require("smtpsh.recordcore").start(options.record, { "send", ... })
  if not ok then fail_usage("--record: " .. rerr) end
end

local secret
if options.auth then
  if not options.user or not options["password-file"] then
    fail_usage("--auth needs --user and --password-file")
  end
  local file, err = io.open(options["password-file"], "rb")
  if not file then fail_usage("cannot read the password file: " .. tostring(err)) end
  secret = (file:read("a") or ""):gsub("\r?\n$", "")
  file:close()
end

local body = options.body or "This is a test message sent by smtpsh.\n"
if body:sub(1, 1) == "@" then
  local file, err = io.open(body:sub(2), "rb")
  if not file then fail_usage("cannot read the body file: " .. tostring(err)) end
  body = file:read("a")
  file:close()
end
local function build_message()
  local headers = {}
  local has = {}
  for _, header in ipairs(options.header) do
    local key = header:match("^([^:%s]+):")
    if not key then fail_usage("--header must look like 'Name: value', got '" .. header .. "'") end
    has[key:lower()] = true
    headers[#headers + 1] = header
  end
  local function default(name, value)
    if not has[name:lower()] then headers[#headers + 1] = name .. ": " .. value end
  end
  default("From", "<" .. (options.from or "") .. ">")
  default("To", "<" .. table.concat(options.to, ">, <") .. ">")
  default("Subject", "smtpsh test " .. os.date("!%Y-%m-%d %H:%M:%S"))
  default("Date", os.date("!%a, %d %b %Y %H:%M:%S +0000"))
  default("Message-Id", string.format("<%d.%d@smtpsh>", os.time(), math.random(1, 1 << 30)))
  return table.concat(headers, "\r\n") .. "\r\n\r\n" .. body
end

-- The transaction, step by step; `last` is what decides the exit status.
local session, last, failure, stage
local function step(name, fn, ...)
  stage = name
  local reply, err = fn(...)
  if reply then last = reply else failure = err; last = err.reply end
  return reply ~= nil
end

local function run()
  local s, err = smtp.connect(options.server, { timeout = timeout, trace = options.trace, helo = options.helo })
  stage = "banner"
  if not s then
    failure = err
    stage = err.stage
    last = err.reply
    return
  end
  session = s
  last = s.banner
  if quit_after == "banner" then return s:quit() end
  if not step("ehlo", s.ehlo, s) or quit_after == "ehlo" then return s:quit() end
  if options.auth and not step("auth", s.auth, s, options.auth, options.user, secret) then return s:quit() end
  if not step("mail", s.mail, s, options.from) or quit_after == "mail" then return s:quit() end
  for _, to in ipairs(options.to) do
    if not step("rcpt", s.rcpt, s, to) then return s:quit() end
  end
  if quit_after == "rcpt" then return s:quit() end
  if not step("data", s.data, s, build_message()) then return s:quit() end
  s:quit()
end
run()

local ok = failure == nil and last ~= nil and last.code < 400
local transcript = session and session.transcript or {}
if options.json then
  local entries = json.array()
  for _, entry in ipairs(transcript) do
    entries[#entries + 1] = { t = entry.t, dir = entry.dir, line = entry.line }
  end
  print(json.encode({
    server = options.server,
    ok = ok,
    stage = stage,
    reply = last and { code = last.code, enhanced = last.enhanced, text = last.text } or nil,
    error = failure and { kind = failure.kind, stage = failure.stage, message = tostring(failure) } or nil,
    transcript = entries,
  }))
else
  if not options.trace then
    for _, entry in ipairs(transcript) do
      print(string.format("%s %7.3f  %s", entry.dir, entry.t, entry.line))
    end
  end
  if failure then io.stderr:write("smtpsh send: ", tostring(failure), "\n") end
end
os.exit(ok and 0 or 1)
