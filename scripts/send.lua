-- send: one SMTP transaction from the command line, swaks-style (and with swaks' option names
-- where they fit), with the transcript shown: STARTTLS or implicit TLS, AUTH, attachments, a
-- raw message, pipelining.
--
-- usage:  smtpsh send --server HOST[:PORT] --from ADDR --to ADDR[,ADDR...] [OPTIONS]; --help
--         lists every option with its default.
-- output: the transcript (C/S/! lines) on stdout, or with --json one object:
--         {ok, stage, reply = {code, enhanced, text}, error, tls, refused, notes,
--          transcript = [{t, dir, line}]}
-- exit:   0 when every step got a 2xx/3xx reply, 1 otherwise (the server refused, a recipient
--         was refused, no connection, TLS failed), 2 on bad usage; with --swaks-exit swaks'
--         codes instead (`swaks_codes` below, and scripts/README.md).

local json = require "smtpsh.json"
local report = require "smtpsh.report"
local probe = require "smtpsh.probe"
local mime = require "smtpsh.mime"
local cli = require "smtpsh.cli"

local args = { ... }

-- Looked for before parsing, so that every usage error (cli.parse's too: an unknown option, a
-- bad number) exits with swaks' 1 under --swaks-exit.
local swaks_exit = false
for _, word in ipairs(args) do
  if word == "--swaks-exit" or word == "-swaks-exit" then swaks_exit = true end
end

local function fail_usage(message)
  io.stderr:write("smtpsh send: ", message, "\n")
  os.exit(swaks_exit and 1 or 2)
end

local usage = [==[usage: smtpsh send --server HOST[:PORT] --from ADDR --to ADDR[,ADDR...] [OPTIONS]
  One SMTP transaction, swaks-style, the transcript on stdout: STARTTLS (--tls, --tls-optional)
  or implicit TLS (--tls-on-connect), AUTH, attachments (--attach), a raw message (--data),
  pipelining (--pipeline). A swaks command line works as it is: -s -p -f -t -a -au -d -ah -q
  -tls -tlso -tlsc, single-dash long names (-server), --auth-user, --add-header, --ehlo (but
  the password comes from --password-file, never the command line; -h is --help).
  Exit 0 every step got 2xx/3xx, 1 the server refused something or the connection or TLS
  failed, 2 bad usage. With --swaks-exit, swaks' codes: 0 ok, 1 bad usage, 2 no connection,
  6 connection closed, 21 greeting, 22 EHLO/HELO, 23 MAIL, 24 no RCPT accepted, 25 DATA,
  26 message refused, 27 QUIT, 28 AUTH, 29 TLS, 32 EHLO after STARTTLS.]==]

local spec = {
  name = "send", usage = usage, min = 0, max = 0, usage_status = swaks_exit and 1 or nil,
  summary = "one SMTP transaction, swaks-style: TLS, AUTH, attachments, pipelining",
  options = {
    server = { "string", arg = "HOST[:PORT]", help = "the SMTP server (required)" },
    port = { "port", default = "25, 465 with --tls-on-connect", help = "the port, when --server names none" },
    from = { "string", arg = "ADDR", help = "the envelope sender, MAIL FROM (required)" },
    to = { "repeat", arg = "ADDR[,ADDR...]", help = "recipients, RCPT TO; repeatable (one required)" },
    helo = { "string", arg = "NAME", default = "this machine's host name", help = "the EHLO name" },
    header = { "repeat", arg = "'Name: value'", help = "a header line; repeatable; replaces a generated one" },
    body = { "string", arg = "TEXT|@FILE|-", default = "a one-line test text", help = "the message body" },
    attach = { "repeat", arg = "FILE", help = "attach FILE (base64, type from its extension); repeatable" },
    data = { "string", arg = "FILE|-", help = "the whole message as it is (no generated headers)" },
    auth = { "string", arg = "PLAIN|LOGIN|CRAM-MD5", default = "no AUTH", help = "authenticate before MAIL" },
    user = { "string", arg = "USER", help = "the AUTH user name" },
    ["password-file"] = { "string", arg = "FILE", help = "the AUTH password, alone on the first line of FILE" },
    tls = { "flag", help = "STARTTLS, required: fail when it is not offered or fails" },
    ["tls-optional"] = { "flag", help = "STARTTLS when offered, plain text when not; a failed handshake fails" },
    ["tls-optional-strict"] = { "flag", help = "the same as --tls-optional (swaks' name for it)" },
    ["tls-on-connect"] = { "flag", help = "implicit TLS from the first byte (port 465 unless given)" },
    ["tls-protocol"] = { "string", arg = "VERSIONS", default = "what OpenSSL allows",
                         help = "tlsv1_2,tlsv1_3 to use, or no_tlsv1,no_tlsv1_1 to avoid" },
    ["tls-cipher"] = { "string", arg = "CIPHERS", default = "OpenSSL's",
                       help = "OpenSSL cipher list; TLS_* names set the TLS 1.3 suites" },
    ["tls-verify"] = { "flag", default = "off", help = "fail unless the certificate verifies and names the server" },
    ["tls-ca-path"] = { "string", arg = "FILE|DIR", default = "the system's CAs",
                        help = "CA certificates for --tls-verify: a PEM file, or a hashed directory (c_rehash)" },
    ["tls-sni"] = { "string", arg = "NAME", default = "the --server host", help = "the name sent (SNI) and verified" },
    pipeline = { "flag", help = "MAIL, RCPT and DATA in one write when the server offers PIPELINING" },
    ["quit-after"] = { "string", arg = "STEP", default = "the whole transaction",
                       help = "stop after banner, ehlo, tls, auth, mail, rcpt or data" },
    ["swaks-exit"] = { "flag", default = "off", help = "swaks' exit codes instead of 0/1/2 (see above)" },
    timeout = { default = 30, help = "the deadline of each step" },
  },
  common = { "timeout", "resolver", "json", "trace", "record", "no-color" },
  example = "smtpsh send --server mail.example.com:587 --tls --auth PLAIN --user me " ..
            "--password-file ~/.smtp-pw --from me@example.com --to you@example.net --attach report.pdf",
}

-- A swaks command line pasted as it is: swaks' short names (-t, -s, -tls, -au ...), its
-- single-dash long names (-server) and its other spellings (--auth-user, --add-header) become
-- send's own. -h stays --help (swaks' -h is --helo: spelled out, it is taken). A password
-- is never taken from the command line, where every user of the machine sees it in ps.
local swaks_names = {
  ["-t"] = "--to", ["-f"] = "--from", ["-s"] = "--server", ["-p"] = "--port", ["-a"] = "--auth",
  ["-au"] = "--user", ["--auth-user"] = "--user", ["-d"] = "--data", ["-ah"] = "--header",
  ["--add-header"] = "--header", ["-q"] = "--quit-after", ["--ehlo"] = "--helo",
  ["-tls"] = "--tls", ["-tlso"] = "--tls-optional", ["-tlsos"] = "--tls-optional-strict",
  ["-tlsc"] = "--tls-on-connect", ["--tlsc"] = "--tls-on-connect", ["--tlso"] = "--tls-optional",
  ["--tlsos"] = "--tls-optional-strict",
}
local password_words = { ["-ap"] = true, ["--auth-password"] = true, ["-auth-password"] = true }
local takes_value = {}
for _, option in ipairs(cli.options_of(spec, true)) do
  takes_value["--" .. option.name] = option.kind ~= "flag"
end
local value_next = false  -- the word is an option's value: taken as it is
for i, word in ipairs(args) do
  local name = string.match(word, "^([^=]+)=") or word
  local rest = string.sub(word, #name + 1)
  if value_next then
    value_next = false
  else
    if password_words[name] then
      fail_usage(name .. ": a password on the command line is visible to every user in ps; " ..
        "put it alone on the first line of a file and give --password-file FILE")
    end
    if swaks_names[name] then
      args[i] = swaks_names[name] .. rest
    elseif string.match(name, "^%-%a[%w-]+$") and takes_value["-" .. name] ~= nil then
      args[i] = "-" .. word  -- -server: swaks' single-dash long name
    end
    name = string.match(args[i], "^([^=]+)=") or args[i]
    value_next = rest == "" and takes_value[name] == true
  end
end

local options = cli.parse(args, spec)

-- ---------------------------------------------------------------------------------------
-- The command line, checked before anything is sent

options.header, options.attach = options.header or {}, options.attach or {}

-- swaks takes "--to a@x,b@y"; a comma inside a quoted local part ("a,b"@x) is kept.
local function split_recipients(list)
  local out = {}
  for _, value in ipairs(list or {}) do
    local current, quoted = {}, false
    for char in value:gmatch(".") do
      if char == '"' then quoted = not quoted end
      if char == "," and not quoted then
        out[#out + 1] = table.concat(current)
        current = {}
      else
        current[#current + 1] = char
      end
    end
    out[#out + 1] = table.concat(current)
  end
  local kept = {}
  for _, to in ipairs(out) do
    to = to:match("^%s*(.-)%s*$")
    if to ~= "" then kept[#kept + 1] = to end
  end
  return kept
end
local recipients = split_recipients(options.to)

-- Nothing a caller gives may carry a line break into the SMTP dialogue or the message header:
-- "K: v\r\nBcc: x" would add a header, "a@b>\r\nRCPT TO:<c@d" a recipient. Refused before
-- anything is sent (the session layer refuses them too).
local function no_line_break(what, value)
  if value and value:find("[\r\n%z]") then
    fail_usage(what .. " must not contain a CR, LF or NUL: it would smuggle in another line")
  end
end
no_line_break("--from", options.from)
no_line_break("--helo", options.helo)
no_line_break("--auth", options.auth)
no_line_break("--user", options.user)
no_line_break("--tls-sni", options["tls-sni"])
no_line_break("--tls-cipher", options["tls-cipher"])
for _, to in ipairs(recipients) do no_line_break("--to", to) end
for _, header in ipairs(options.header) do no_line_break("--header", header) end

-- The steps in order; --quit-after also takes swaks' names for them.
local stages = { banner = 1, ehlo = 2, tls = 3, auth = 4, mail = 5, rcpt = 6, data = 7 }
local swaks_stage_names = { connect = "banner", ["first-helo"] = "ehlo", helo = "tls" }
local quit_after = options["quit-after"]
if quit_after then quit_after = swaks_stage_names[quit_after] or quit_after end
if quit_after and not stages[quit_after] then
  fail_usage("--quit-after must be banner, ehlo, tls, auth, mail, rcpt or data, got '" .. quit_after .. "'")
end
-- Whether the transaction goes on past `stage` (it stops after --quit-after's step).
local function goes_past(stage) return not quit_after or stages[quit_after] > stages[stage] end

if not options.server then fail_usage("--server HOST[:PORT] is required") end
if goes_past("auth") and not options.from then fail_usage("--from ADDR is required") end
if goes_past("mail") and #recipients == 0 then fail_usage("--to ADDR is required") end

-- One TLS mode at most: STARTTLS required, STARTTLS when offered, or implicit TLS.
local tls_mode
for _, mode in ipairs({ { "tls", "starttls" }, { "tls-optional", "optional" },
                        { "tls-optional-strict", "optional" }, { "tls-on-connect", "implicit" } }) do
  if options[mode[1]] then
    if tls_mode and tls_mode ~= mode[2] then
      fail_usage("choose one of --tls, --tls-optional and --tls-on-connect")
    end
    tls_mode = mode[2]
  end
end
for _, name in ipairs({ "tls-protocol", "tls-cipher", "tls-verify", "tls-ca-path", "tls-sni" }) do
  if options[name] and not tls_mode then
    fail_usage("--" .. name .. " needs --tls, --tls-optional or --tls-on-connect")
  end
end

-- HOST[:PORT] with --port: the port may be given once, in either place. Parsing with two
-- different default ports tells whether the target named one (one parser for every command).
local server_host, server_port = cli.target("send", options.server, tls_mode == "implicit" and 465 or 25)
local _, other_default = cli.target("send", options.server, server_port == 1 and 2 or 1)
local port_in_server = other_default == server_port
if options.port then
  if port_in_server and options.port ~= server_port then
    fail_usage("--server names port " .. server_port .. " and --port says " .. options.port .. ": give one")
  end
  server_port = options.port
end
local timeout = options.timeout or 30
cli.apply_resolver(options, "send")

-- A file's bytes ("-": stdin), or a usage error naming the file. A directory opens on Linux
-- but cannot be read, which is what read(0) finds out.
local function read_file(path, what)
  if path == "-" then return io.stdin:read("a") or "" end
  local file, err = io.open(path, "rb")
  local text = file and file:read("a")
  if file then file:close() end
  if not text then
    fail_usage("cannot read " .. what .. " " .. path .. ": " .. tostring(err or "it is a directory, or unreadable"))
  end
  return text
end

-- FILE, or swaks' @FILE.
local function file_argument(value)
  if value:sub(1, 1) == "@" and value ~= "@" then return value:sub(2) end
  return value
end

-- ---------------------------------------------------------------------------------------
-- TLS options, in the engine's words (stdlib/smtp.lua, s:starttls)

-- swaks' --tls-protocol names (tlsv1, tlsv1_1, tlsv1_2, tlsv1_3, sslv2, sslv3) and the
-- engine's (tls1.2, TLSv1.2) -> the engine's.
local versions = { "tls1", "tls1.1", "tls1.2", "tls1.3" }
local version_rank = { tls1 = 1, ["tls1.1"] = 2, ["tls1.2"] = 3, ["tls1.3"] = 4 }
local function version_name(word)
  local name = word:lower():gsub("^tlsv", "tls"):gsub("_", ".")
  return name
end

-- A list of versions to use ("tlsv1_2,tlsv1_3") or to avoid ("no_tlsv1,no_tlsv1_1"), as swaks
-- takes it -> min, max. The engine offers a range, so the versions allowed must be adjacent.
local function version_range(spec)
  local use, avoid, saw_use, saw_avoid = {}, {}, false, false
  for word in spec:gmatch("[^,%s]+") do
    local negated = word:lower():match("^no_") ~= nil
    local name = version_name(negated and word:sub(4) or word)
    if negated then saw_avoid = true else saw_use = true end
    if name == "sslv2" or name == "sslv3" then
      -- OpenSSL no longer speaks them: avoiding them is what happens anyway.
      if not negated then fail_usage("--tls-protocol: " .. word .. " is not supported (OpenSSL has dropped SSL)") end
    elseif not version_rank[name] then
      fail_usage("--tls-protocol: unknown version '" .. word .. "'; use tlsv1, tlsv1_1, tlsv1_2, tlsv1_3 (no_ before one avoids it)")
    else
      (negated and avoid or use)[name] = true
    end
  end
  if saw_use and saw_avoid then
    fail_usage("--tls-protocol: list versions to use or versions to avoid (no_...), not both")
  end
  local low, high
  for rank, name in ipairs(versions) do
    local allowed = saw_use and use[name] or (not saw_use and not avoid[name])
    if allowed then
      if high and high < rank - 1 then
        fail_usage("--tls-protocol: the versions allowed must be adjacent (smtpsh offers a range), " ..
          "and " .. versions[high] .. " and " .. name .. " are not")
      end
      low, high = low or rank, rank
    end
  end
  if not low then fail_usage("--tls-protocol " .. spec .. " leaves no TLS version to use") end
  -- Open ends stay unset (OpenSSL's own bounds), unless TLS 1.0 was asked for by name:
  -- a minimum of TLS 1.0 also lowers OpenSSL's security level, which only then is wanted.
  return (saw_use or low > 1) and versions[low] or nil, high < #versions and versions[high] or nil
end

-- OpenSSL keeps TLS 1.3 suites apart from the cipher list of TLS 1.2 and below: names that
-- start with TLS_ go to the first, the rest to the second, so one option sets both.
local function split_ciphers(spec)
  local list, suites = {}, {}
  for word in spec:gmatch("[^:,%s]+") do
    if word:find("^TLS_") then suites[#suites + 1] = word else list[#list + 1] = word end
  end
  return #list > 0 and table.concat(list, ":") or nil, #suites > 0 and table.concat(suites, ":") or nil
end

local function tls_options()
  if not tls_mode then return nil end
  local tls = { verify = options["tls-verify"] and "peer" or "none", sni = options["tls-sni"] }
  if options["tls-protocol"] then
    tls.min, tls.max = version_range(options["tls-protocol"])
  end
  if options["tls-cipher"] then tls.ciphers, tls.ciphersuites = split_ciphers(options["tls-cipher"]) end
  local ca = options["tls-ca-path"]
  if ca then
    local file = io.open(ca, "rb")
    if not file then read_file(ca, "the CA file") end  -- exits, naming why
    -- A directory opens on Linux and fails to read: it is OpenSSL's hashed CA directory
    -- (c_rehash), as swaks takes too; a file is a PEM bundle.
    local got, problem = file:read(0)
    file:close()
    if got == nil and problem then tls.ca_path = ca else tls.ca_file = ca end
  end
  return tls
end
local tls = tls_options()

-- ---------------------------------------------------------------------------------------
-- The message

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
  secret = read_file(options["password-file"], "the password file"):gsub("\r?\n$", "")
  if secret:find("[\r\n%z]") then
    fail_usage("the password file holds more than one line: put the password alone on its first line")
  end
  if secret == "" then fail_usage("the password file " .. options["password-file"] .. " is empty") end
end

-- --data: the message exactly as given; the engine makes line ends CRLF and doubles leading
-- dots. A last line of a lone "." is dropped: swaks allows the closing dot in its data.
local function raw_message()
  for _, other in ipairs({ "body", "attach", "header" }) do
    local given = options[other]
    if given and (type(given) ~= "table" or #given > 0) then
      fail_usage("--data is the whole message: it cannot go with --" .. other)
    end
  end
  local message = read_file(file_argument(options.data), "the message file")
  return (message:gsub("\r?\n%.\r?\n?$", "\n"):gsub("^%.\r?\n?$", ""))
end

-- Headers that say how the body is encoded belong to the MIME structure --attach builds.
local mime_headers = { ["content-type"] = true, ["mime-version"] = true, ["content-transfer-encoding"] = true }

local function header_lines()
  local headers, has = {}, {}
  for _, header in ipairs(options.header) do
    local key = header:match("^([!-9;-~]+):")
    if not key then fail_usage("--header must look like 'Name: value', got '" .. header .. "'") end
    if #options.attach > 0 and mime_headers[key:lower()] then
      fail_usage("--header " .. key .. " cannot go with --attach, which writes its own MIME headers")
    end
    has[key:lower()] = true
    headers[#headers + 1] = header
  end
  local function default(name, value)
    if not has[name:lower()] then headers[#headers + 1] = name .. ": " .. value end
  end
  default("From", "<" .. (options.from or "") .. ">")
  default("To", "<" .. table.concat(recipients, ">, <") .. ">")
  -- Made from the clock and at random, so kept in a recording and given back by its replay.
  local replayable = require "smtpsh.replayable"
  default("Subject", replayable.value("send.subject", function()
    return "smtpsh test " .. os.date("!%Y-%m-%d %H:%M:%S")
  end))
  default("Date", replayable.value("send.date", function()
    return os.date("!%a, %d %b %Y %H:%M:%S +0000")
  end))
  default("Message-Id", replayable.value("send.message_id", function()
    return string.format("<%d.%d@smtpsh>", os.time(), math.random(1, 1 << 30))
  end))
  return headers
end

local function build_message()
  if options.data then return raw_message() end
  local body = options.body or "This is a test message sent by smtpsh.\n"
  if body == "-" or (body:sub(1, 1) == "@" and body ~= "@") then
    body = read_file(file_argument(body), "the body file")
  end
  local headers = header_lines()
  if #options.attach == 0 then return table.concat(headers, "\r\n") .. "\r\n\r\n" .. body end
  local attachments = {}
  for i, value in ipairs(options.attach) do
    local path = file_argument(value)
    attachments[i] = { name = path:match("([^/]+)/*$") or path, data = read_file(path, "the attachment") }
  end
  -- The MIME boundary is random too: drawn from a seed a replay gives back, so a replayed
  -- message is byte for byte the recorded one.
  local state = math.tointeger(tonumber(require("smtpsh.replayable").value("send.boundary_seed", function()
    return math.random(1, (1 << 31) - 1)
  end))) or 1
  local function random(n)
    state = (state * 1103515245 + 12345) % (1 << 31)
    return (state >> 16) % n + 1  -- the high bits: an LCG's low bits repeat soon
  end
  return mime.multipart{ headers = headers, body = body, attachments = attachments, random = random }
end
-- Built (and every file read) before connecting: a missing file is a usage error, not a
-- half-finished session.
local message = goes_past("rcpt") and build_message() or nil

-- ---------------------------------------------------------------------------------------
-- The transaction

local session, last, failure, stage, early_transcript
-- Where it stopped, for swaks' exit codes: a stage, or "tls_ehlo" (EHLO after STARTTLS),
-- "message" (the message refused after DATA's 354), "quit".
local where
local refused = {}      -- {to, error} for each recipient refused
local notes = {}        -- {after = transcript length, t, line}: what the transcript cannot say

local function note(s, line)
  local transcript = s.transcript
  local latest = transcript[#transcript]
  notes[#notes + 1] = { after = #transcript, t = latest and latest.t or 0, line = line }
end
local tls_info

local function stop(at_stage, err, at_where)
  stage, failure, where = at_stage, err, at_where or at_stage
  if err and err.reply then last = err.reply end
end

-- Errors made here read as the session's own do (tostring is the sentence).
local error_meta = { __tostring = function(e) return e.message end }
local function new_error(kind, at_stage, message, reply)
  return setmetatable({ kind = kind, stage = at_stage, message = message, reply = reply }, error_meta)
end

local function one_line(reply) return (tostring(reply):gsub("\n", " | ")) end

-- A reply got through s:pipeline -> the reply, or nil, err as the session's own commands give.
local function checked_reply(at_stage, reply, allowed)
  if reply.code >= 400 then
    return nil, new_error("reply", at_stage, at_stage .. " refused: " .. one_line(reply), reply)
  end
  if not allowed[reply.code] then
    return nil, new_error("protocol", at_stage, at_stage .. " answered " .. one_line(reply) ..
      ", which it does not allow", reply)
  end
  return reply
end
local mail_codes, rcpt_codes, data_codes = { [250] = true }, { [250] = true, [251] = true }, { [354] = true }

local function angle(address)
  if address:match("^<.*>$") then return address end
  return "<" .. address .. ">"
end

local quit_refused
local function quit(s)
  if s.closed then return end
  local reply, err = s:quit()
  if not reply and err and err.reply then quit_refused = err end
end

local function open_session()
  local s, record, err = probe.open(server_host, server_port, {
    timeout = timeout, trace = options.trace, helo = options.helo, ehlo = goes_past("banner"),
    implicit = tls_mode == "implicit", tls = tls,
    starttls = (tls_mode == "starttls" or tls_mode == "optional") and goes_past("ehlo"),
  })
  if not s then
    early_transcript = err.transcript
    stop(record.stage, err, err.kind == "tls" and "tls" or record.stage)
    return nil
  end
  session = s
  tls_info = record.live.tls_info
  if record.stage ~= "open" then
    -- s:starttls says EHLO again after the handshake; its failure is swaks' 32, not 29.
    local after_tls = record.stage == "starttls" and err.stage == "ehlo"
    stop(record.stage, err, after_tls and "tls_ehlo" or record.stage)
    quit(s)
    return nil
  end
  stage, last = goes_past("banner") and "ehlo" or "banner", s.ehlo_reply or s.banner
  if tls_mode == "starttls" and goes_past("ehlo") and not record.starttls_offered then
    stop("starttls", new_error("tls", "starttls",
      "the server does not offer STARTTLS, and --tls requires it (--tls-optional goes on without)"))
    quit(s)
    return nil
  end
  if tls_mode == "optional" and goes_past("ehlo") and not record.starttls_offered then
    note(s, "STARTTLS not offered: going on in plain text (--tls-optional)")
  end
  if tls_info then stage = "tls" end
  return s
end

-- Each recipient's answer: swaks goes on to DATA when at least one was accepted.
local accepted = 0
local function count_rcpt(to, reply, err)
  if reply then
    accepted, last = accepted + 1, reply
  else
    refused[#refused + 1] = { to = to, error = err }
    if err.reply then last = err.reply end
  end
end

-- The message after DATA's 354, and what it gets.
local function send_message(s)
  stage = "data"
  local reply, err = s:message(message)
  if not reply then return stop("data", err, "message") end
  last = reply
end

local function envelope_step_by_step(s)
  stage = "mail"
  local reply, err = s:mail(options.from)
  if not reply then return stop("mail", err) end
  last = reply
  if not goes_past("mail") then return end
  stage = "rcpt"
  for _, to in ipairs(recipients) do
    count_rcpt(to, s:rcpt(to))
    if s.closed then break end
  end
  if accepted == 0 then return stop("rcpt", refused[#refused].error) end
  if not goes_past("rcpt") then return end
  stage = "data"
  local replies, perr = s:pipeline({ "DATA" })  -- DATA alone: a refused DATA is told from a refused message
  if not replies then return stop("data", perr) end
  local data_reply, derr = checked_reply("data", replies[1], data_codes)
  if not data_reply then return stop("data", derr) end
  last = data_reply
  send_message(s)
end

-- RFC 2920: MAIL, every RCPT and DATA in one write; the replies come back in order. When DATA
-- got its 354 although nothing can be delivered (MAIL or every RCPT refused), a lone "." ends
-- the empty message, as the RFC asks (section 3.1).
local function envelope_pipelined(s)
  local lines = { "MAIL FROM:" .. angle(options.from) }
  if goes_past("mail") then
    for _, to in ipairs(recipients) do lines[#lines + 1] = "RCPT TO:" .. angle(to) end
  end
  if goes_past("rcpt") then lines[#lines + 1] = "DATA" end
  stage = "mail"
  local replies, err = s:pipeline(lines)
  if not replies then return stop("mail", err, "pipeline") end
  local mail_reply, merr = checked_reply("mail", replies[1], mail_codes)
  for i, to in ipairs(goes_past("mail") and recipients or {}) do
    count_rcpt(to, checked_reply("rcpt", replies[i + 1], rcpt_codes))
  end
  local data_reply, derr
  if goes_past("rcpt") then data_reply, derr = checked_reply("data", replies[#replies], data_codes) end
  local deliverable = mail_reply and accepted > 0
  if data_reply and not deliverable then
    note(s, "DATA accepted with nothing to deliver: ending it empty")
    s:message("")
  end
  if not mail_reply then return stop("mail", merr) end
  last = mail_reply
  if not goes_past("mail") then return end
  stage = "rcpt"
  if accepted == 0 then return stop("rcpt", refused[#refused].error) end
  if not goes_past("rcpt") then return end
  stage = "data"
  if not data_reply then return stop("data", derr) end
  last = data_reply
  send_message(s)
end

local function run()
  local s = open_session()
  if not s or not goes_past("tls") then return s and quit(s) end
  if options.auth then
    stage = "auth"
    local reply, err = s:auth(options.auth, options.user, secret)
    if not reply then
      stop("auth", err)
      return quit(s)
    end
    last = reply
  end
  if goes_past("auth") then
    if options.pipeline and s.caps.PIPELINING then envelope_pipelined(s) else envelope_step_by_step(s) end
  end
  quit(s)
end
run()

-- ---------------------------------------------------------------------------------------
-- Output and exit status

local ok = failure == nil and last ~= nil and last.code < 400
local delivered_to_some = ok and #refused > 0   -- swaks calls that a success; smtpsh does not
local transcript = session and session.transcript or early_transcript or {}

-- swaks' exit codes (swaks(1), EXIT CODES) by the step that failed.
local swaks_codes = {
  connect = 2, banner = 21, ehlo = 22, starttls = 29, tls = 29, tls_ehlo = 32, auth = 28,
  mail = 23, rcpt = 24, data = 25, message = 26, quit = 27, pipeline = 6,
}
local function swaks_status()
  if ok then return quit_refused and swaks_codes.quit or 0 end
  if not failure then return 1 end
  -- A connection closed with no reply to blame is swaks' 6; at the greeting it is 21.
  if failure.kind == "closed" and not failure.reply and where ~= "connect" and where ~= "banner" then return 6 end
  return swaks_codes[where] or 1
end

local function refusal_line()
  local first = refused[1]
  return cli.error_message(first.error, "rcpt") .. " (" .. first.to .. ")" ..
    (#refused > 1 and (", and " .. (#refused - 1) .. " more recipient(s)") or "") ..
    "; delivered to the " .. accepted .. " other(s)"
end

if options.json then
  local entries = json.array()
  for _, entry in ipairs(transcript) do
    entries[#entries + 1] = { t = entry.t, dir = entry.dir, line = entry.line }
  end
  local note_lines = json.array()
  for i, n in ipairs(notes) do note_lines[i] = n.line end
  local refused_list = json.array()
  for i, r in ipairs(refused) do
    refused_list[i] = { to = r.to, reply = r.error.reply and probe.reply(r.error.reply) or nil,
                        message = tostring(r.error) }
  end
  print(json.encode({
    server = options.server,
    ok = ok and not delivered_to_some,
    stage = delivered_to_some and "rcpt" or stage,
    reply = last and { code = last.code, enhanced = last.enhanced, text = last.text } or nil,
    error = failure and { kind = failure.kind, stage = failure.stage, message = tostring(failure) } or nil,
    tls = tls_info and probe.tls(tls_info) or nil,
    refused = #refused > 0 and refused_list or nil,
    notes = #note_lines > 0 and note_lines or nil,
    transcript = entries,
  }))
else
  if not options.trace then
    local n = 1
    local function print_notes(upto)
      while n <= #notes and notes[n].after <= upto do
        print(string.format("! %7.3f  %s", notes[n].t, notes[n].line))
        n = n + 1
      end
    end
    for i, entry in ipairs(transcript) do
      print(string.format("%s %7.3f  %s", entry.dir, entry.t, report.visible(entry.line)))
      print_notes(i)
    end
    print_notes(math.huge)
  end
  if failure then
    io.stderr:write("smtpsh send: ", cli.error_message(failure, stage), "\n")
  elseif delivered_to_some then
    io.stderr:write("smtpsh send: ", refusal_line(), "\n")
  end
end
if swaks_exit then os.exit(swaks_status()) end
os.exit((ok and not delivered_to_some) and 0 or 1)
