-- stdlib/waterfall.lua: the drawing (pure), and diagnose.timing_bars, which feeds it from the
-- progress events of a diagnosis.
local t = dofile("tests/lua/testing.lua")
local waterfall = require "smtpsh.waterfall"
local diagnose = require "smtpsh.diagnose"

-- The bar area of a row: what lies between its two '|'.
local function area(line) return line:match("|(.*)|") end

-- The first and last column a row's bar covers (1-based), and the character it is drawn with.
local function extent(line)
  local a = area(line)
  local first, last = a:find("[#.]+")
  return first, last, a:sub(first, first)
end

t.test("the example of the header, line for line", function()
  t.eq(waterfall.render({
    { name = "connect", start = 0, finish = 0.02 },
    { name = "rcpt", start = 0.06, finish = 0.07 },
    { name = "wait", start = 0.07, finish = 58.1, wait = true },
    { name = "retry 1", start = 58.1, finish = 61.2 },
  }, 60), {
    "connect |#                                        |    20 ms",
    "rcpt    |#                                        |    10 ms",
    "wait    |.......................................  |   58.0 s",
    "retry 1 |                                      ###|    3.1 s",
    "         0                                  61.2 s",
  })
end)

t.test("no bars, no lines", function()
  t.eq(waterfall.render({}, 80), {})
end)

t.test("zero-length steps: each still one column, where it happened", function()
  local lines = waterfall.render({
    { name = "a", start = 5, finish = 5 },
    { name = "b", start = 5, finish = 5 },
  }, 40)
  t.eq(#lines, 3)
  for i = 1, 2 do
    t.eq({ extent(lines[i]) }, { 1, 1, "#" }, lines[i])
    t.ok(lines[i]:find("0 ms$"), lines[i])
  end
  t.ok(lines[3]:find("0 +0 ms$"), lines[3])

  -- A zero-length step after a long one sits in the last column, one wide.
  local later = waterfall.render({
    { name = "long", start = 0, finish = 10 },
    { name = "end", start = 10, finish = 10 },
  }, 40)
  local columns = #area(later[1])
  t.eq({ extent(later[2]) }, { columns, columns, "#" })
  t.eq({ extent(later[1]) }, { 1, columns, "#" })
end)

t.test("one huge step: it fills the axis, the short ones keep one column", function()
  local lines = waterfall.render({
    { name = "dns", start = 0, finish = 0.001 },
    { name = "wait", start = 0.001, finish = 3600, wait = true },
    { name = "rcpt", start = 3600, finish = 3600.002 },
  }, 80)
  local columns = #area(lines[1])
  t.eq({ extent(lines[1]) }, { 1, 1, "#" })
  t.eq({ extent(lines[2]) }, { 1, columns, "." })
  t.eq({ extent(lines[3]) }, { columns, columns, "#" })
  t.ok(lines[2]:find("3600 s$"), lines[2])
  t.ok(lines[4]:find("3600 s$"), lines[4])
end)

t.test("overlapping steps share columns, each on its own row", function()
  local lines = waterfall.render({
    { name = "session 1", start = 0, finish = 6 },
    { name = "session 2", start = 3, finish = 9 },
    { name = "dnsbl", start = 4, finish = 5 },
  }, 10 + 4 + 8 + 9)  -- a bar area of exactly 10 columns: 1 s = 10/9 columns
  t.eq(area(lines[1]), "#######   ")
  t.eq(area(lines[2]), "   #######")
  t.eq(area(lines[3]), "    ##    ")
end)

t.test("the origin is the earliest start, whatever the clock", function()
  local at_zero = waterfall.render({ { name = "x", start = 0, finish = 2 }, { name = "y", start = 1, finish = 3 } }, 50)
  local later = waterfall.render({ { name = "x", start = 1000, finish = 1002 }, { name = "y", start = 1001, finish = 1003 } }, 50)
  t.eq(later, at_zero)
end)

t.test("width: every row is exactly as wide as asked; the bar area never under min_bar", function()
  local bars = { { name = "connect", start = 0, finish = 1 }, { name = "rcpt", start = 1, finish = 2.5 } }
  for _, width in ipairs { 40, 61, 78, 80, 132, 200 } do
    local lines = waterfall.render(bars, width)
    for i = 1, #bars do t.eq(#lines[i], width, "width " .. width .. ": " .. lines[i]) end
    t.ok(#lines[#lines] <= width, lines[#lines])
  end
  for _, width in ipairs { 0, 5, 20 } do
    local lines = waterfall.render(bars, width)
    t.eq(#area(lines[1]), waterfall.min_bar, "width " .. width)
  end
  t.eq(#waterfall.render(bars)[1], 80, "80 columns by default")
end)

t.test("a long name is cut; a finish before its start is a zero-length step", function()
  local lines = waterfall.render({
    { name = string.rep("n", 40), start = 0, finish = 1 },
    { name = "backwards", start = 1, finish = 0.5 },
  }, 60)
  t.eq(lines[1]:sub(1, waterfall.max_name + 2), string.rep("n", waterfall.max_name) .. " |")
  t.eq(#lines[1], 60)
  local first, last = extent(lines[2])
  t.eq(first, last)
  t.ok(lines[2]:find(" 0 ms$"), lines[2])
end)

t.test("plain ASCII only: a ticket keeps it", function()
  local lines = waterfall.render({
    { name = "connect", start = 0, finish = 0.3 }, { name = "wait", start = 0.3, finish = 9, wait = true },
  }, 70)
  for _, line in ipairs(lines) do t.ok(not line:find("[^\32-\126]"), line) end
end)

t.test("durations people read", function()
  t.eq(waterfall.duration(0), "0 ms")
  t.eq(waterfall.duration(0.1204), "120 ms")
  t.eq(waterfall.duration(0.9994), "999 ms")
  t.eq(waterfall.duration(0.9996), "1.0 s")
  t.eq(waterfall.duration(61.23), "61.2 s")
  t.eq(waterfall.duration(299.6), "300 s")
end)

t.test("a malformed bar or width is a one-line error", function()
  t.raises(function() waterfall.render("x", 80) end, "bars must be a list, got string")
  t.raises(function() waterfall.render({ { name = "a", start = 0 } }, 80) end, "bar 1 needs a string name and number start and finish")
  t.raises(function() waterfall.render({ { name = "a", start = 0, finish = 0 / 0 } }, 80) end, "bar 1 needs")
  t.raises(function() waterfall.render({ { start = 0, finish = 1 } }, 80) end, "bar 1 needs")
  t.raises(function() waterfall.render({ { name = "a", start = 0, finish = 1 } }, "wide") end, "width must be a number")
end)

-- diagnose.timing_bars: the events gather.lua reports, as the rows people read.
local function step(name, started, finished, session, purpose, round)
  return { kind = "step", name = name, started = started, finished = finished, ok = true, detail = "",
           session = session, purpose = purpose, round = round }
end

t.test("timing bars: the probe's steps each a row, a wait dotted, a later session one row", function()
  local events = {
    step("dns", 0, 0.01),
    step("connect", 0.01, 0.02, 1, "probe"), step("banner", 0.02, 0.03, 1, "probe"),
    step("ptr", 0.03, 0.04),
    step("ehlo", 0.04, 0.05, 1, "probe"), step("mail", 0.05, 0.06, 1, "probe"), step("rcpt", 0.06, 0.07, 1, "probe"),
    { kind = "wait", reason = "rcpt: 450", seconds = 30, remaining = 30, started = 0.07, attempt = 1, of = 1 },
    { kind = "wait", reason = "rcpt: 450", seconds = 30, remaining = 29, started = 0.07, attempt = 1, of = 1 },
    { kind = "wait", reason = "rcpt: 450", seconds = 30, remaining = 0, started = 0.07, attempt = 1, of = 1 },
    step("connect", 30.1, 30.2, 2, "retry", 1), step("rcpt", 30.3, 30.4, 2, "retry", 1),
    step("dnsbl", 30.5, 31),
  }
  t.eq(diagnose.timing_bars(events), {
    { name = "dns", start = 0, finish = 0.01 },
    { name = "connect", start = 0.01, finish = 0.02 },
    { name = "banner", start = 0.02, finish = 0.03 },
    { name = "ptr", start = 0.03, finish = 0.04 },
    { name = "ehlo", start = 0.04, finish = 0.05 },
    { name = "mail", start = 0.05, finish = 0.06 },
    { name = "rcpt", start = 0.06, finish = 0.07 },
    { name = "wait", start = 0.07, finish = 30.07, wait = true },
    { name = "retry 1", start = 30.1, finish = 30.4 },
    { name = "dnsbl", start = 30.5, finish = 31 },
  })
  t.eq(diagnose.timing_bars({ step("connect", 0, 1, 1, "probe"), step("rcpt", 1, 2, 2, "again", 2),
                              step("rcpt", 2, 3, 3, "plain") }),
       { { name = "connect", start = 0, finish = 1 }, { name = "session 2", start = 1, finish = 2 },
         { name = "plain text", start = 2, finish = 3 } })
end)

t.test("slow: any row over diagnose.slow_step seconds", function()
  t.eq(diagnose.slow_step, 1)
  t.eq(diagnose.slow({ { name = "a", start = 0, finish = 1 }, { name = "b", start = 1, finish = 1.9 } }), false)
  t.eq(diagnose.slow({ { name = "a", start = 0, finish = 0.1 }, { name = "w", start = 0.1, finish = 1.2, wait = true } }), true)
  t.eq(diagnose.slow({}), false)
end)

t.run()
