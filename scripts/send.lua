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
local report = require "smtpsh.report"
local probe = require "smtpsh.probe"

local usage = [==[usage: smtpsh send --server HOST[:PORT] --from ADDR --to ADDR [--to ADDR...]
       [--header 'Name: value']... [--body TEXT|@FILE] [--helo NAME]
       [--auth PLAIN|LOGIN|CRAM-MD5 --user USER --password-file FILE]
       [--quit-after banner|ehlo|mail|rcpt|data] [--timeout SECONDS] [--resolver ADDR[:PORT]]
       [--record FILE.jsonl] [--trace] [--json]]==]

local cli = require "smtpsh.cli"
local function fail_usage(message) cli.fail("send", message) end

local options = cli.parse({ ... }, {
  name = "send", usage = usage, min = 0, max = 0,
  options = { server = "string", from = "string", to = "repeat", header = "repeat",
              body = "string", helo = "string", auth = "string", user = "string",
              ["password-file"] = "string", ["quit-after"] = "string" },
})
options.to, options.header = options.to or {}, options.header or {}
if not options.server then fail_usage("--server HOST[:PORT] is required") end
local server_host, server_port = cli.target("send", options.server)
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
local timeout = options.timeout or 30
cli.apply_resolver(options, "send")

-- Nothing a caller gives may carry a line break into the SMTP dialogue or the message header:
-- "K: v\r\nBcc: x" would add a header, "a@b>\r\nRCPT TO:<c@d" a recipient. Refused before
-- anything is sent.
local function no_line_break(what, value)
  if value and value:find("[\r\n%z]") then
    fail_usage(what .. " must not contain a CR, LF or NUL: it would smuggle in another line")
  end
end
no_line_break("--from", options.from)
no_line_break("--helo", options.helo)
no_line_break("--auth", options.auth)
no_line_break("--user", options.user)
for _, to in ipairs(options.to) do no_line_break("--to", to) end
for _, header in ipairs(options.header) do no_line_break("--header", header) end

local mechanisms = { PLAIN = true, LOGIN = true, ["CRAM-MD5"] = true }
local secret
if options.auth then
  options.auth = options.auth:upper()
  if not mechanisms[options.auth] then
    fail_usage("--auth must be PLAIN, LOGIN or CRAM-MD5, got '" .. options.auth .. "'")
  end
  if not options.user or not options["password-file"] then
    fail_usage("--auth needs --user and --password-file")
  end
  local file, err = io.open(options["password-file"], "rb")
  local text = file and file:read("a")
  if file then file:close() end
  if not text then
    fail_usage("cannot read the password file " .. options["password-file"] .. ": " ..
      tostring(err or "it is a directory, or unreadable"))
  end
  secret = text:gsub("\r?\n$", "")
  if secret:find("[\r\n%z]") then
    fail_usage("the password file holds more than one line: put the password alone on its first line")
  end
  if secret == "" then fail_usage("the password file " .. options["password-file"] .. " is empty") end
end

local body = options.body or "This is a test message sent by smtpsh.\n"
if body:sub(1, 1) == "@" then
  local name = body:sub(2)
  local file, err = io.open(name, "rb")
  body = file and file:read("a")
  if file then file:close() end
  if not body then
    fail_usage("cannot read the body file " .. name .. ": " .. tostring(err or "it is a directory, or unreadable"))
  end
end
local function build_message()
  local headers = {}
  local has = {}
  for _, header in ipairs(options.header) do
    local key = header:match("^([!-9;-~]+):")
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
local session, last, failure, stage, early_transcript
local function step(name, fn, ...)
  stage = name
  local reply, err = fn(...)
  if reply then last = reply else failure = err; last = err.reply end
  return reply ~= nil
end

local function run()
  -- The one session opener every probing command uses: connect, greeting, EHLO.
  local s, record, err = probe.open(server_host, server_port, {
    timeout = timeout, trace = options.trace, helo = options.helo, ehlo = quit_after ~= "banner" })
  stage = record.stage == "open" and (quit_after == "banner" and "banner" or "ehlo") or record.stage
  if not s then
    failure, last, early_transcript = err, err.reply, err.transcript
    return
  end
  session = s
  if record.stage ~= "open" then
    failure, last = err, err.reply
    return s:quit()
  end
  last = s.ehlo_reply or s.banner
  if quit_after == "banner" or quit_after == "ehlo" then return s:quit() end
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
local transcript = session and session.transcript or early_transcript or {}
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
      print(string.format("%s %7.3f  %s", entry.dir, entry.t, report.visible(entry.line)))
    end
  end
  if failure then
    io.stderr:write("smtpsh send: ", cli.error_message(failure, stage), "\n")
  end
end
os.exit(ok and 0 or 1)
