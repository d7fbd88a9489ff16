-- MX look-ups per second of smtpsh's DNS engine against one DNS server on loopback, with
-- INFLIGHT look-ups in flight (INFLIGHT worker tasks, each one query at a time), the answer
-- cache off. Names cycle through bench1..bench1000.example.test; a look-up is ok when its
-- answer is exactly one MX with host mx1.example.test. A warm-up of 1000 look-ups is not
-- counted. Prints one line; exits 1 when more than 1% failed. Run by tests/bench/dns_mx.sh:
--
--   build/smtpsh tests/bench/dns_mx.lua PORT [SECONDS=5] [INFLIGHT=1000]
local port, seconds, inflight = tonumber(arg[1]), tonumber(arg[2] or 5), tonumber(arg[3] or 1000)
if not port or not seconds or not inflight or inflight < 1 then
  io.stderr:write("usage: smtpsh tests/bench/dns_mx.lua PORT [SECONDS=5] [INFLIGHT=1000]\n")
  os.exit(2)
end
inflight = math.floor(inflight)
local MAX_QUERIES = 5000000 -- a bound on top of the time limit

dns.servers { "127.0.0.1:" .. port, timeout = 2, attempts = 2 }
dns.cache(false)

-- Runs `workers` tasks until `limit` look-ups have started or `duration` seconds have passed;
-- returns ok, failed, elapsed seconds (until the last look-up finished). A look-up that raises
-- (Ctrl-C interrupts them all) stops every worker, and run raises its error once.
local function run(workers, limit, duration)
  local started, ok, failed, raised = 0, 0, 0, nil
  local t0 = task.now()
  local deadline = t0 + duration
  local function worker()
    while not raised and started < limit and task.now() < deadline do
      started = started + 1
      local name = "bench" .. ((started - 1) % 1000 + 1) .. ".example.test"
      local called, records = pcall(dns.query, name, "MX")
      if not called then
        raised = raised or records
      elseif records and #records == 1 and records[1].host == "mx1.example.test" then
        ok = ok + 1
      else
        failed = failed + 1
      end
    end
  end
  local tasks = {}
  for i = 1, workers do tasks[i] = task.spawn(worker) end
  for i = 1, workers do task.wait(tasks[i]) end
  if raised then error(raised, 0) end
  return ok, failed, task.now() - t0
end

run(math.min(inflight, 1000), 1000, 10) -- warm-up
local ok, failed, elapsed = run(inflight, MAX_QUERIES, seconds)
print(string.format("smtpsh: %d look-ups in %.2f s = %.0f/s (%d failed), %d in flight",
  ok, elapsed, ok / elapsed, failed, inflight))
if failed > (ok + failed) / 100 then os.exit(1) end
