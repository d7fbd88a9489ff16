-- verify: checks lists of addresses carefully and fast (stdlib/verify.lua): syntax first, the
-- MX set once per domain, one RCPT per address over shared sessions, catch-all detected per
-- domain, transient answers retried and never taken for "invalid".
--
-- usage:  smtpsh verify ADDRESS... | --input FILE | (addresses on stdin, one a line)
--                       [--json] [--unordered] [--concurrency N] [--per-domain N] [--rate R]
--                       [--timeout SECONDS] [--budget SECONDS] [--tries N] [--backoff SECONDS]
--                       [--helo NAME] [--from ADDR] [--source ADDR] [--port N] [--no-catch-all]
--                       [--resume FILE] [--resolver ADDR[:PORT]] [--trace]
-- output: a table, or with --json one object a line (JSON Lines) in input order (as decided
--         with --unordered): {address, is_reachable, reason, role_account, mx, reply, tries,
--         elapsed, catch_all}; on a terminal, a progress line and a summary on stderr
-- exit:   0 every address got an answer, 1 some stayed unknown, 2 could not run

-- A bulk run allocates a few small tables and strings per address while its live heap (the
-- list, the queues, the lines waiting for their turn) is large: collecting when the heap has
-- tripled rather than doubled took a quarter off the time of 100,000 addresses for about 40%
-- more peak memory (tests/bench/verify.sh: 95 -> 138 MiB, under its 200 MiB budget).
collectgarbage("setpause", 300)

local cli = require "smtpsh.cli"
local json = require "smtpsh.json"
local report = require "smtpsh.report"
local smtp = require "smtpsh.smtp"
local sys = require "smtpsh.sys"
local task = require "smtpsh.task"
local verify = require "smtpsh.verify"

local usage = [==[usage: smtpsh verify ADDRESS... | --input FILE | (addresses on stdin) [OPTIONS]
  One line an address in --input and on stdin; blank lines and # comments are skipped.
  Exit 0 every address got an answer, 1 some stayed unknown, 2 could not run.]==]

local options, words = cli.parse({ ... }, {
  name = "verify", usage = usage, min = 0,
  summary = "addresses in bulk: safe, risky, invalid or unknown, with a reason",
  options = {
    input = { "string", arg = "FILE", help = "addresses from FILE, one a line (# comments skipped)" },
    unordered = { "flag", help = "each result as soon as it is decided, not in input order" },
    concurrency = { "count", default = 100, help = "sessions open at once in all" },
    ["per-domain"] = { "count", default = 2, help = "sessions open at once per domain" },
    rate = { "seconds", arg = "R", default = "no limit", help = "new sessions a second per domain" },
    timeout = { default = 30, help = "the deadline of each step (a tarpit banner is waited this long)" },
    budget = { "seconds", default = 600, help = "seconds the retries of transient answers may take in all" },
    tries = { "count", default = 4, help = "tries per address in all" },
    backoff = { "seconds", default = 30, help = "seconds before the first retry, doubling after" },
    helo = { "string", arg = "NAME", default = "this machine's host name", help = "the EHLO name" },
    from = { "string", arg = "ADDR", default = "postmaster@HELO, or <> when HELO has no dot",
             help = "the MAIL FROM address" },
    source = { "string", arg = "ADDR", help = "the local IP address to connect from" },
    port = { "port", default = 25, help = "the SMTP port of the MX hosts" },
    ["no-catch-all"] = { "flag", help = "no probe of a random address per domain for catch-all" },
    resume = { "string", arg = "FILE", help = "skip the addresses a previous --json output FILE decided" },
    json = { help = "one JSON object a line (JSON Lines) instead of a table" },
  },
  common = { "json", "timeout", "resolver", "trace", "record" },
  example = "smtpsh verify --input list.txt --json --resume done.jsonl >> done.jsonl",
})
cli.apply_resolver(options, "verify")
if options.trace then smtp.defaults.trace = true end
for _, name in ipairs { "helo", "from", "source" } do
  if options[name] and options[name]:find("[\r\n%s]") then
    cli.fail("verify", "--" .. name .. " must not hold spaces, CR or LF")
  end
end
cli.source("verify", options.source)
for _, name in ipairs { "concurrency", "per-domain", "tries" } do
  if options[name] == 0 then cli.fail("verify", "--" .. name .. " must be at least 1") end
end

-- The addresses, from the arguments, --input or stdin.
local addresses = {}
local function add_lines(file, name)
  -- A directory opens, then fails to read: one line, not a traceback.
  local ok, err = pcall(function()
    for line in file:lines() do
      -- Most lines need no trimming; the pattern that trims costs more than the rest of a line.
      if line:find("^%s") or line:find("%s$") then line = line:match("^%s*(.-)%s*$") end
      if line ~= "" and not line:find("^#") then addresses[#addresses + 1] = line end
    end
  end)
  if not ok then cli.fail("verify", "cannot read " .. name .. ": " .. tostring(err):gsub("^.-:%d+: ", "")) end
end
for _, word in ipairs(words) do addresses[#addresses + 1] = word end
if options.input then
  local file = io.open(options.input)
  if not file then cli.fail("verify", "cannot read --input " .. options.input) end
  add_lines(file, "--input " .. options.input)
  file:close()
elseif #words == 0 then
  if sys.isatty("stdin") then cli.fail("verify", "no addresses: give ADDRESS..., --input FILE, or lines on stdin") end
  add_lines(io.stdin, "stdin")
end
if #addresses == 0 then cli.fail("verify", "no addresses to verify") end

-- --resume: addresses that already have an answer (not unknown) are skipped.
if options.resume then
  local file = io.open(options.resume)
  if not file then cli.fail("verify", "cannot read --resume " .. options.resume) end
  local answered = {}
  local n = 0
  local readable, problem = file:read(0)
  if readable == nil and problem then
    cli.fail("verify", "cannot read --resume " .. options.resume .. ": " .. problem)
  end
  for line in file:lines() do
    n = n + 1
    if line:find("%S") then
      local doc = json.decode(line)
      if type(doc) ~= "table" or type(doc.address) ~= "string" then
        cli.fail("verify", options.resume .. ": line " .. n .. " is not a verify --json result")
      end
      if doc.is_reachable ~= "unknown" then answered[doc.address] = true end
    end
  end
  file:close()
  local left = {}
  for _, a in ipairs(addresses) do if not answered[a] then left[#left + 1] = a end end
  addresses = left
end

-- Output -------------------------------------------------------------------------------------

local interactive = sys.isatty("stderr")
local width = 0
for _, a in ipairs(addresses) do width = math.max(width, math.min(#a, 40)) end

local function text_line(result)
  local reply = result.reply ~= json.null and result.reply or ""
  if #reply > 100 then reply = reply:sub(1, 100) .. "..." end
  local mx = result.mx ~= json.null and result.mx or "-"
  return string.format("%-" .. width .. "s  %-7s  %-15s  %-20s  %s", report.visible(result.address),
    result.is_reachable, result.reason, mx, report.visible(reply))
end

-- One JSON object a line, its keys in a fixed order: json.encode's generic walk and sort
-- would be most of the cost of a bulk run.
local quote, null = json.quote, json.null
-- The MX hosts and replies of a run are few and repeat on every line: each is quoted once.
local quoted, quoted_count = {}, 0
local function quote_repeated(s)
  local q = quoted[s]
  if q then return q end
  q = quote(s)
  if quoted_count >= 4096 then quoted, quoted_count = {}, 0 end
  quoted[s], quoted_count = q, quoted_count + 1
  return q
end

local function json_line(result)
  local address, role, mx, reply, catch_all = result.address, result.role_account, result.mx, result.reply,
                                              result.catch_all
  -- An address that passed the syntax check has no control character, and a quote or a
  -- backslash only inside a quoted local part. A role is a word of a fixed list, and
  -- is_reachable and reason words of verify's own.
  local plain = result.reason ~= "syntax" and string.byte(address, 1) ~= 34
  return '{"address":' .. (plain and '"' .. address .. '"' or quote(address)) ..
    ',"is_reachable":"' .. result.is_reachable ..
    '","reason":"' .. result.reason .. '","role_account":' .. (role == null and "null" or '"' .. role .. '"') ..
    ',"mx":' .. (mx == null and "null" or quote_repeated(mx)) ..
    ',"reply":' .. (reply == null and "null" or quote_repeated(reply)) ..
    ',"tries":' .. result.tries .. ',"elapsed":' .. string.format("%.4f", result.elapsed) ..
    ',"catch_all":' .. (catch_all == null and "null" or tostring(catch_all)) .. "}\n"
end

-- Not a terminal: stdout is written in blocks, flushed as results are decided (at most every
-- 0.2 s, and at the end), so nothing decided is lost for long and a big run is not a write a line.
if not sys.isatty("stdout") then io.stdout:setvbuf("full") end
local last_flush = 0
local function write(line)
  if interactive then io.stderr:write("\r\27[K") end
  io.write(line)
  local now = task.now()
  if now - last_flush > 0.2 or interactive then
    io.stdout:flush()
    last_flush = now
  end
end

local render = options.json and json_line or function(result) return text_line(result) .. "\n" end

-- In input order: a result waits (as its line) for the ones before it (unless --unordered).
local decided, next_out = {}, 1
local function on_result(result, index)
  if options.unordered then return write(render(result)) end
  decided[index] = render(result)
  while decided[next_out] do
    write(decided[next_out])
    decided[next_out] = nil
    next_out = next_out + 1
  end
end

local counts, done = {}, 0
local started = task.now()
local function progress_text()
  local elapsed = task.now() - started
  local rate = elapsed > 0 and done / elapsed or 0
  local parts = {}
  for _, name in ipairs { "safe", "risky", "invalid", "unknown" } do
    if counts[name] then parts[#parts + 1] = name .. " " .. counts[name] end
  end
  local eta = rate > 0 and (#addresses - done) / rate or nil
  return string.format("%d/%d done, %.0f/s, %s%s", done, #addresses, rate, table.concat(parts, ", "),
    eta and done < #addresses and string.format(", ETA %.0f s", eta) or "")
end

local function counted(result, index)
  done = done + 1
  counts[result.is_reachable] = (counts[result.is_reachable] or 0) + 1
  on_result(result, index)
end

if not options.json and #addresses > 0 then
  io.write(string.format("%-" .. width .. "s  %-7s  %-15s  %-20s  %s\n", "address", "result", "reason", "mx", "reply"))
end

local ticker
if interactive then
  ticker = task.spawn(function()
    while true do
      io.stderr:write("\r\27[K", progress_text())
      io.stderr:flush()
      task.sleep(0.5)
    end
  end)
end

local ok, err = pcall(verify.run, addresses, {
  concurrency = options.concurrency, per_domain = options["per-domain"], rate = options.rate,
  timeout = options.timeout, budget = options.budget, tries = options.tries, backoff = options.backoff,
  helo = options.helo, from = options.from, source = options.source, port = options.port,
  catch_all = not options["no-catch-all"], trace = options.trace,
}, counted)
local interrupted = not ok and tostring(err):find("interrupted", 1, true)
if not ok and not interrupted then cli.fail("verify", tostring(err)) end

-- Ctrl-C: what was decided is out; the rest stays unknown, and the summary says so.
if interactive then
  io.stderr:write("\r\27[K", progress_text(), interrupted and " (interrupted)" or "", "\n")
elseif interrupted then
  io.stderr:write("smtpsh verify: interrupted: ", done, " of ", #addresses,
                  " addresses decided (--resume FILE skips them next time)\n")
end
io.stdout:flush()
local unknown = (counts.unknown or 0) + (#addresses - done)
os.exit(unknown == 0 and 0 or 1)
