-- smtpsh.so in Debian's stock lua5.4 (tests/module/run.sh starts it, with smtpsh's scenario
-- server `accept` on loopback as SMTPSH_TEST_TARGET): the module table, smtpsh.run, blocking
-- calls at the top level, an SMTP exchange with a real peer, the stdlib searcher, errors.
local t = dofile("tests/lua/testing.lua")

t.ok(not rawget(_G, "smtp"), "this must run in a stock lua5.4, not in the smtpsh shell")
local smtpsh = require "smtpsh"
local target = assert(os.getenv("SMTPSH_TEST_TARGET"), "SMTPSH_TEST_TARGET is not set (run.sh sets it)")
local host, port = target:match("^(.+):(%d+)$")
port = tonumber(port)

-- A loopback port nobody listens on: one the scenario server's neighbours are unlikely to own.
local function closed_port()
  local p = smtpsh.run(function()
    local srv = assert(smtpsh.server.listen { host = "127.0.0.1", port = 0 })
    local number = srv.port
    srv:close()
    return number
  end)
  return p
end

t.test("the module table offers the engine modules and the stdlib", function()
  for _, name in ipairs { "smtp", "dns", "net", "task", "server", "retry", "classify" } do
    t.eq(type(smtpsh[name]), "table", "smtpsh." .. name)
  end
  t.eq(type(smtpsh.run), "function")
  t.ok(smtpsh._VERSION:match("^smtpsh %d+%.%d+"), "smtpsh._VERSION")
  t.eq(smtpsh.no_such_module, nil, "an unknown name is nil, not an error")
  t.ok(smtpsh.smtp == require "smtpsh.smtp", "smtpsh.smtp is the module require gives")
  t.ok(require "smtpsh" == smtpsh, "require twice gives the same table")
end)

t.test("smtpsh.run returns the function's results, its tasks driven to the end", function()
  local a, b, c = smtpsh.run(function(x, y) return x + y, "two", nil end, 40, 2)
  t.eq({ a, b, c }, { 42, "two", nil })
  local finished = {}
  local sum = smtpsh.run(function()
    local task = smtpsh.task
    local t1 = task.spawn(function() task.sleep(0.05); finished[#finished + 1] = "slow"; return 1 end)
    local t2 = task.spawn(function() finished[#finished + 1] = "fast"; return 2 end)
    -- a task nobody waits for still runs to its end before run returns
    task.spawn(function() task.sleep(0.02); finished[#finished + 1] = "background" end)
    return task.wait(t1) + task.wait(t2)
  end)
  t.eq(sum, 3)
  t.eq(finished, { "fast", "background", "slow" })
end)

t.test("an SMTP exchange with the scenario server, inside smtpsh.run", function()
  local code, version, caps = smtpsh.run(function()
    local s = assert(smtpsh.smtp.connect(target, { helo = "module.test", timeout = 10 }))
    t.eq(s.banner.code, 220)
    assert(s:ehlo())
    local caps = s.caps.STARTTLS ~= nil
    local info = assert(s:starttls { verify = "none" })
    assert(s:mail("sender@module.test"))
    local reply = assert(s:rcpt("rcpt@module.test"))
    assert(s:data("Subject: from the module\n\nhello\n.dot\n"))
    s:quit()
    return reply.code, info.version, caps
  end)
  t.eq(code, 250)
  t.ok(version and version:match("^TLSv1"), "a TLS version, got " .. tostring(version))
  t.eq(caps, true, "the accept scenario offers STARTTLS")
end)

t.test("blocking calls at the top level drive the loop themselves", function()
  local s = assert(smtpsh.smtp.connect(target, { timeout = 10 }))
  t.eq(s.banner.code, 220)
  local reply = assert(s:ehlo("top.level.test"))
  t.eq(reply.code, 250)
  t.eq(assert(s:noop()).code, 250)
  s:quit()

  local c = assert(smtpsh.net.connect(host, port, { timeout = 10 }))
  local line = assert(c:receive("l"))
  t.ok(line:match("^220 "), "a greeting line, got " .. line)
  t.eq(c.remote_addr, target)
  c:close()

  -- a task spawned at the top level runs when the loop next runs; its handle's wait drives it
  local handle = smtpsh.task.spawn(function(x) smtpsh.task.sleep(0.01); return x * 2 end, 21)
  t.eq(handle:wait(), 42)
  local t0 = smtpsh.task.now()
  smtpsh.task.sleep(0.05)
  t.ok(smtpsh.task.now() - t0 >= 0.04, "task.sleep at the top level waits")
end)

t.test("require 'smtpsh.retry' works, and retries through the loop", function()
  local retry = require "smtpsh.retry"
  t.ok(retry == smtpsh.retry)
  local attempts = 0
  local value, extra, log = smtpsh.run(function()
    return retry.run(function(attempt)
      attempts = attempt
      if attempt < 3 then return nil, { kind = "timeout", message = "try again" } end
      return "done"
    end, { tries = 5, backoff = 0.01, jitter = 0 })
  end)
  t.eq(value, "done")
  t.eq(extra, nil)
  t.eq(attempts, 3)
  t.eq(#log, 3)
  t.eq(require("smtpsh.classify") == smtpsh.classify, true)
end)

t.test("errors: network failures are values, raised errors are raised", function()
  local s, err = smtpsh.smtp.connect("127.0.0.1:" .. closed_port(), { timeout = 5 })
  t.eq(s, nil)
  t.eq(err.kind, "refused")
  t.eq(err.stage, "connect")
  t.ok(tostring(err):match("refused"), "err reads as a sentence: " .. tostring(err))

  t.raises(function() smtpsh.run(function() error("boom") end) end, "boom")
  local e = t.raises(function() smtpsh.run(function() error({ code = 7 }) end) end)
  t.eq(e, { code = 7 }, "a table error is raised as it was")
  t.raises(function() smtpsh.run(42) end, "function expected")
  t.raises(function() smtpsh.run(function() smtpsh.task.spawn(function() error("lost") end) end) end,
           "nobody waited for.*lost")
  t.raises(function() smtpsh.smtp.connect(target, { timeout = -1 }) end, "timeout")
  -- the loop still works after all that
  t.eq(smtpsh.run(function() return "alive" end), "alive")
end)

t.test("nesting: run inside a task calls through; inside a task's coroutine it says why not", function()
  t.eq(smtpsh.run(function() return smtpsh.run(function(x) return x + 1 end, 4) end), 5)
  t.raises(function()
    smtpsh.run(function()
      return coroutine.wrap(function() return smtpsh.run(function() return 1 end) end)()
    end)
  end, "cannot run inside a coroutine of a running task")
  -- a blocking call there gets the binding's own error (a coroutine cannot be suspended by it)
  t.raises(function()
    smtpsh.run(function()
      return coroutine.wrap(function() return smtpsh.task.sleep(0) end)()
    end)
  end, "must be called from a task")
end)

t.run()
