-- A soak of the engine: CONCURRENCY SMTP sessions at once (each its own task; a finished one is
-- replaced by a new one) against a mix of faulty scenario servers and smtp-sink for SECONDS,
-- with the client's resident memory and open descriptors sampled before, during and after.
-- Run by tests/soak/soak.sh, which starts the servers:
--
--   smtpsh tests/soak/soak.lua [--sessions N] [--seconds S] [--warmup S] [--timeout S]
--                              [--expect-resource] [--ca-file F] NAME=HOST:PORT[*WEIGHT]...
--
-- NAME is a scenario of examples/servers/ or "sink" (smtp-sink); it says what a session does
-- (STARTTLS for accept, tls_old, tls_broken) and which outcomes are its normal ones. A session
-- is connect, EHLO, [STARTTLS, EHLO,] MAIL, RCPT, QUIT, each step with a deadline of TIMEOUT.
-- --ca-file F is the CA file of the STARTTLS handshakes (verify "none": only reported); without
-- it each handshake loads the system's CA bundle (about 50 ms of CPU and 1 MB per handshake,
-- which alone saturates the client at these concurrencies).
--
-- Phases: warm-up (full concurrency for WARMUP seconds, so that the allocator and the engine
-- reach their working size), drain, baseline measurement; load (SECONDS), drain, measurement.
-- Assertions (exit 1 when one fails, with the figures table printed first):
--   * every session started ended with an outcome (no Lua error, none lost), and the drains
--     ended within their deadline (no hang);
--   * every outcome is a normal one for its target (a timeout at the greeting of "slow", a 421
--     greeting of "busy", ...); with --expect-resource also kind "resource" (the descriptor
--     limit), and there must be at least one;
--   * RSS after the load <= max(baseline + 20 MiB, 1.25 x baseline), where baseline is taken
--     after the warm-up drained: the warm-up ran the same concurrency, so the heap has already
--     grown to its working size and what the load adds beyond it is a leak. glibc keeps freed
--     memory (no trim), so RSS is not compared with the figure before the warm-up; the margin
--     absorbs fragmentation. A leak of 250 bytes per session (35 MB over the ~140,000 sessions
--     of the full soak) exceeds it.
--   * the Lua heap after <= its baseline + 4 MiB (the counters are the only state kept);
--   * open descriptors after == baseline, within 2.
local USAGE = "usage: smtpsh tests/soak/soak.lua [--sessions N] [--seconds S] [--warmup S] "
  .. "[--timeout S] [--expect-resource] [--ca-file F] NAME=HOST:PORT[*WEIGHT]..."

local opts = { sessions = 5000, seconds = 60, warmup = 5, timeout = 3, expect_resource = false }
local targets = {}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local key = a:match("^%-%-([%w-]+)$")
    if key == "expect-resource" then
      opts.expect_resource = true
    elseif key == "ca-file" and arg[i + 1] then
      opts.ca_file = arg[i + 1]
      i = i + 1
    elseif key and opts[key] ~= nil then
      local v = tonumber(arg[i + 1])
      if not v or v <= 0 then
        io.stderr:write("soak.lua: --", key, " needs a number > 0\n", USAGE, "\n")
        os.exit(2)
      end
      opts[key] = v
      i = i + 1
    else
      local name, host, port, weight = a:match("^([%w_]+)=([%d%.]+):(%d+)%*?(%d*)$")
      if not name then io.stderr:write("soak.lua: bad argument '", a, "'\n", USAGE, "\n"); os.exit(2) end
      weight = tonumber(weight) or 1
      targets[#targets + 1] = { name = name, address = host .. ":" .. port, weight = weight }
    end
    i = i + 1
  end
end
if #targets == 0 then io.stderr:write("soak.lua: no target\n", USAGE, "\n"); os.exit(2) end
opts.sessions = math.floor(opts.sessions)
local T = opts.timeout

-- What each target's sessions normally end with: "ok", or err.kind/err.stage.
local normal = {
  sink = { ok = true },
  accept = { ok = true },
  busy = { ["reply/banner"] = true },
  drop_at = { ["closed/ehlo"] = true },
  drop_before_banner = { ["closed/banner"] = true },
  greylist = { ok = true, ["reply/rcpt"] = true },
  rate_limit = { ok = true, ["reply/banner"] = true },
  reject = { ["reply/rcpt"] = true },
  slow = { ["timeout/banner"] = true },
  tls_broken = { ["tls/starttls"] = true },
  tls_old = { ["tls/starttls"] = true },
}
local starttls = { accept = true, tls_broken = true, tls_old = true }
for _, t in ipairs(targets) do
  if not normal[t.name] then io.stderr:write("soak.lua: unknown target name '", t.name, "'\n"); os.exit(2) end
  t.tls = starttls[t.name]
end
-- A weighted round robin: slot i of the cycle -> target.
local cycle = {}
for _, t in ipairs(targets) do for _ = 1, t.weight do cycle[#cycle + 1] = t end end

------------------------------------------------------------------------------------------------
-- Measurements of this process

local function read_pid()
  local f = io.open("/proc/self/stat")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return tonumber(line and line:match("^(%d+)"))
end
local pid = assert(read_pid(), "cannot read /proc/self/stat")

-- VmRSS and VmHWM (the peak) in KiB, or nil when /proc cannot be opened (descriptor limit).
local function memory()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s+(%d+) kB")), tonumber(text:match("VmHWM:%s+(%d+) kB"))
end

-- Open descriptors: the entries of /proc/PID/fd, counted by ls in a child (smtpsh has no
-- directory listing), minus the pipe of io.popen itself; nil at the descriptor limit.
local function descriptors()
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  if not p then return nil end
  local n = tonumber(p:read("a"))
  p:close()
  return n and n - 1
end

local function settle()
  collectgarbage()
  collectgarbage()
end

local function snapshot()
  settle()
  local rss = memory()
  return { rss = rss, fds = descriptors(), lua = collectgarbage("count") }
end

------------------------------------------------------------------------------------------------
-- Sessions

local counts = {}          -- [phase] = { [outcome] = n }
local per_target = {}      -- [name] = { [outcome] = n } (load phase)
local unexpected = {}      -- [name .. " " .. outcome] = { n =, example = } (both phases)
local started, finished, active = { warmup = 0, load = 0 }, { warmup = 0, load = 0 }, 0
local lua_errors, first_lua_error = 0, nil
local spawning, slot = false, 0
local peak = { fds = 0, active = 0 }

local function outcome_of(err)
  if err == nil then return "ok" end
  return tostring(err.kind) .. "/" .. tostring(err.stage)
end

-- One session; returns nil (completed) or the error that ended it.
local function session(t, n)
  local s, err = smtp.connect(t.address, { timeout = T, helo = "client.soak.test" })
  if not s then return err end
  local _ <close> = s
  local ok
  ok, err = s:ehlo()
  if ok and t.tls then ok, err = s:starttls { ca_file = opts.ca_file } end
  if ok then ok, err = s:mail("sender@client.soak.test") end
  -- New recipients every 4 s: greylist (delay 2 s) refuses a triplet at first, then lets it in.
  if ok then ok, err = s:rcpt(string.format("rcpt%d-%d@soak.test", n % 8, task.now() // 4)) end
  if ok then ok, err = s:quit() end
  if not ok then return err end
  return nil
end

local run_one
local function start_one(phase)
  slot = slot + 1
  local t = cycle[(slot - 1) % #cycle + 1]
  started[phase] = started[phase] + 1
  active = active + 1
  t.active = (t.active or 0) + 1
  if active > peak.active then peak.active = active end
  task.spawn(run_one, phase, t, slot)
end

function run_one(phase, t, n)
  local called, err = pcall(session, t, n)
  active = active - 1
  t.active = t.active - 1
  finished[phase] = finished[phase] + 1
  local outcome
  if not called then
    lua_errors = lua_errors + 1
    first_lua_error = first_lua_error or tostring(err)
    outcome = "lua-error"
  else
    outcome = outcome_of(err)
  end
  local c = counts[phase]
  c[outcome] = (c[outcome] or 0) + 1
  if phase == "load" then
    local pt = per_target[t.name]
    pt[outcome] = (pt[outcome] or 0) + 1
  end
  if not (normal[t.name][outcome] or (opts.expect_resource and err and err.kind == "resource")) then
    local key = t.name .. " " .. outcome
    local u = unexpected[key]
    if not u then
      u = { n = 0, example = called and tostring(err) or first_lua_error }
      unexpected[key] = u
    end
    u.n = u.n + 1
  end
  -- A connect can fail at once (the descriptor limit): wait 10 ms before the replacement, so that
  -- replacing failed sessions cannot become a busy loop.
  if called and err and err.stage == "connect" then task.sleep(0.01) end
  if spawning == phase then start_one(phase) end
end

local samples = {}
local function sample(label)
  local rss, hwm = memory()
  local fds = descriptors()
  if fds and fds > peak.fds then peak.fds = fds end
  local busiest
  for _, t in ipairs(targets) do
    if (t.active or 0) > 0 and (not busiest or t.active > busiest.active) then busiest = t end
  end
  samples[#samples + 1] = { label = label, t = task.now(), rss = rss, hwm = hwm, fds = fds, active = active,
                            busiest = busiest and busiest.name .. "=" .. busiest.active }
end

-- Runs a phase: full concurrency for `seconds`, then no replacements until every session has
-- ended (or the drain deadline passed: a hang). Returns the elapsed time and whether it drained.
local drain_limit = 9 * T + 10 -- the steps of the longest session, each up to its deadline
local function run_phase(phase, seconds)
  counts[phase] = {}
  local t0 = task.now()
  spawning = phase
  for _ = 1, opts.sessions do start_one(phase) end
  local next_sample = t0
  while task.now() - t0 < seconds do
    if task.now() >= next_sample then
      sample(phase)
      next_sample = task.now() + 1
    end
    task.sleep(0.1)
  end
  spawning = false
  local drain_deadline = task.now() + drain_limit
  while active > 0 and task.now() < drain_deadline do
    if task.now() >= next_sample then
      sample(phase .. "-drain")
      next_sample = task.now() + 1
    end
    task.sleep(0.05)
  end
  return task.now() - t0, active == 0
end

------------------------------------------------------------------------------------------------
-- The run

for _, t in ipairs(targets) do per_target[t.name] = per_target[t.name] or {} end
local before = snapshot()
local warm_time, warm_drained = run_phase("warmup", opts.warmup)
local baseline = warm_drained and snapshot() or {}
local load_time, load_drained = 0, false
if warm_drained then load_time, load_drained = run_phase("load", opts.seconds) end
local after = load_drained and snapshot() or {}
local _, hwm = memory()

------------------------------------------------------------------------------------------------
-- Figures

local function mib(kib) return kib and string.format("%.1f MiB", kib / 1024) or "n/a" end
local function num(n) return n and tostring(n) or "n/a" end
local out = {}
local function row(k, v) out[#out + 1] = string.format("  %-34s %s", k, v) end
print(string.format(
  "soak: %d concurrent sessions, %.0f s load (+%.0f s warm-up), step timeout %g s, %d targets",
  opts.sessions, opts.seconds, opts.warmup, T, #targets))
row("sessions started (warm-up / load)", started.warmup .. " / " .. started.load)
row("sessions ended   (warm-up / load)", finished.warmup .. " / " .. finished.load)
row("load phase incl. drain", string.format("%.1f s, %.0f sessions/s", load_time,
  load_time > 0 and finished.load / load_time or 0))
row("peak concurrent sessions", tostring(peak.active))
row("RSS before / baseline / after", mib(before.rss) .. " / " .. mib(baseline.rss) .. " / " .. mib(after.rss))
row("RSS peak (VmHWM)", mib(hwm))
row("Lua heap baseline / after", mib(baseline.lua) .. " / " .. mib(after.lua))
row("fds before / baseline / peak / after", num(before.fds) .. " / " .. num(baseline.fds) .. " / "
  .. num(peak.fds) .. " / " .. num(after.fds))
for _, line in ipairs(out) do print(line) end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end
print("  outcomes (load phase, by err.kind/stage):")
local load_counts = counts.load or {}
for _, k in ipairs(sorted_keys(load_counts)) do print(string.format("    %-30s %8d", k, load_counts[k])) end
print("  outcomes per target (load phase):")
for _, name in ipairs(sorted_keys(per_target)) do
  local parts = {}
  for _, k in ipairs(sorted_keys(per_target[name])) do parts[#parts + 1] = k .. "=" .. per_target[name][k] end
  print(string.format("    %-20s %s", name, table.concat(parts, " ")))
end
local timeline = {}
local stride = math.max(1, math.ceil(#samples / 30)) -- at most 30 shown
for i, s in ipairs(samples) do
  if (i - 1) % stride ~= 0 and i ~= #samples then goto next end
  local draining = s.label:find("drain")
  timeline[#timeline + 1] = string.format("%s:%s/%s/%d%s", s.label:sub(1, 1) .. (draining and "d" or ""),
    s.rss and string.format("%.0f", s.rss / 1024) or "?", s.fds or "?", s.active,
    draining and s.busiest and "(" .. s.busiest .. ")" or "")
  ::next::
end
print("  samples (w/l = warm-up/load, d = draining; RSS MiB/fds/sessions (busiest target)): "
  .. table.concat(timeline, " "))

------------------------------------------------------------------------------------------------
-- Assertions

local failures = {}
local function check(ok, message) if not ok then failures[#failures + 1] = message end end
local stuck = {}
for _, t in ipairs(targets) do
  if (t.active or 0) > 0 then stuck[#stuck + 1] = t.name .. "=" .. t.active end
end
stuck = table.concat(stuck, " ")
check(warm_drained, string.format("warm-up: %d sessions still running %.0f s after it stopped (a hang): %s",
  active, drain_limit, stuck))
check(not warm_drained or load_drained, string.format(
  "load: %d sessions still running %.0f s after it stopped (a hang): %s", active, drain_limit, stuck))
for phase, drained in pairs { warmup = warm_drained, load = load_drained } do
  local sum = 0
  for _, n in pairs(counts[phase] or {}) do sum = sum + n end
  check(not drained or sum == started[phase],
    string.format("%s: %d sessions started but %d outcomes counted", phase, started[phase], sum))
end
check(lua_errors == 0, string.format("%d sessions raised a Lua error, the first: %s", lua_errors,
  tostring(first_lua_error)))
for _, key in ipairs(sorted_keys(unexpected)) do
  local u = unexpected[key]
  check(false, string.format("%d sessions to %s ended abnormally, e.g.: %s", u.n, key, u.example))
end
if opts.expect_resource then
  local resource = 0
  for _, phase in ipairs { "warmup", "load" } do
    for k, n in pairs(counts[phase] or {}) do if k:match("^resource/") then resource = resource + n end end
  end
  check(resource > 0, "no session failed with err.kind \"resource\" although the descriptor limit "
    .. "is below the concurrency")
end
if baseline.rss and after.rss then
  local limit = math.max(baseline.rss + 20 * 1024, baseline.rss * 1.25)
  check(after.rss <= limit, string.format("RSS after the load %s > limit %s (baseline %s + max(20 MiB, 25%%))",
    mib(after.rss), mib(limit), mib(baseline.rss)))
  check(after.lua <= baseline.lua + 4096, string.format("Lua heap after the load %s > baseline %s + 4 MiB",
    mib(after.lua), mib(baseline.lua)))
elseif warm_drained and load_drained then
  check(false, "could not read /proc/self/status after the load")
end
if baseline.fds and after.fds then
  check(math.abs(after.fds - baseline.fds) <= 2, string.format(
    "open descriptors after the load %d != baseline %d (+-2)", after.fds, baseline.fds))
elseif warm_drained and load_drained then
  check(false, "could not count the open descriptors after the load")
end

if #failures > 0 then
  for _, f in ipairs(failures) do print("FAIL " .. f) end
  io.stdout:flush()
  os.exit(1)
end
print("PASS soak")
