-- Run from the repository root: lua5.4 tests/lua/pretty_test.lua
package.path = "stdlib/?.lua;" .. package.path
local t = dofile("tests/lua/testing.lua")
local ok, pretty = pcall(require, "smtpsh.pretty")
if not ok then pretty = dofile("stdlib/pretty.lua") end

local fmt = pretty.format

local function boom_tostring()
  return setmetatable({}, { __tostring = function() error("boom", 0) end })
end

-- Scalars -------------------------------------------------------------------

t.test("nil and booleans", function()
  t.eq(fmt(nil), "nil")
  t.eq(fmt(true), "true")
  t.eq(fmt(false), "false")
end)

t.test("numbers print like tostring", function()
  t.eq(fmt(1), "1")
  t.eq(fmt(-42), "-42")
  t.eq(fmt(1.5), "1.5")
  t.eq(fmt(1.0), "1.0")
  t.eq(fmt(-0.0), "-0.0")
  t.eq(fmt(1e100), "1e+100")
  t.eq(fmt(0.1), "0.1")
  t.eq(fmt(math.maxinteger), "9223372036854775807")
  t.eq(fmt(math.mininteger), "-9223372036854775808")
  t.eq(fmt(2^63), "9.2233720368548e+18")
  t.eq(fmt(math.huge), "inf")
  t.eq(fmt(-math.huge), "-inf")
  local nan = 0 / 0
  t.eq(fmt(nan), tostring(nan))
end)

t.test("plain strings are double-quoted", function()
  t.eq(fmt(""), '""')
  t.eq(fmt("hello"), '"hello"')
  t.eq(fmt("it's"), [["it's"]])
  t.eq(fmt("héllo ✓"), '"héllo ✓"', "UTF-8 stays readable")
end)

t.test("string escapes", function()
  t.eq(fmt("a\nb"), [["a\nb"]])
  t.eq(fmt("tab\there"), [["tab\there"]])
  t.eq(fmt("cr\r"), [["cr\r"]])
  t.eq(fmt('say "hi"'), [["say \"hi\""]])
  t.eq(fmt("back\\slash"), [["back\\slash"]])
  t.eq(fmt("\a\b\f\v"), [["\a\b\f\v"]])
  t.eq(fmt("\0"), [["\0"]])
  t.eq(fmt("\27[0m"), [["\27[0m"]])
  t.eq(fmt("\127"), [["\127"]])
end)

t.test("numeric escape before a digit is padded", function()
  t.eq(fmt("\0" .. "1"), [["\0001"]])
  t.eq(fmt("\27" .. "9"), [["\0279"]])
  t.eq(fmt("\n1"), [["\n1"]])
end)

t.test("quoted strings read back to the original", function()
  local samples = { "", "plain", "a\nb\tc", "\0\1\0029\27\127", 'q"q\\', "\r\n\v", "é\255" }
  for _, s in ipairs(samples) do
    t.eq(load("return " .. fmt(s))(), s, fmt(s))
  end
end)

t.test("functions, threads and userdata use tostring", function()
  local f = function() end
  t.eq(fmt(f), tostring(f))
  t.ok(fmt(f):find("^function: "))
  local co = coroutine.create(f)
  t.eq(fmt(co), tostring(co))
  t.eq(fmt(io.stdout), tostring(io.stdout))
end)

-- __tostring ----------------------------------------------------------------

t.test("__tostring on a table wins over its contents", function()
  local reply = setmetatable({ code = 250 }, { __tostring = function() return "250 OK" end })
  t.eq(fmt(reply), "250 OK")
  t.eq(fmt({ reply }), "{ 250 OK }")
  t.eq(fmt({ r = reply }), "{ r = 250 OK }")
end)

t.test("__tostring is honoured behind __metatable", function()
  local v = setmetatable({}, { __tostring = function() return "hidden" end, __metatable = false })
  t.eq(fmt(v), "hidden")
end)

t.test("__tostring that raises", function()
  t.eq(fmt(boom_tostring()), "<__tostring error: boom>")
  t.eq(fmt({ boom_tostring() }), "{ <__tostring error: boom> }")
end)

t.test("__tostring that raises a non-string", function()
  local v = setmetatable({}, { __tostring = function() error({}) end })
  t.ok(fmt(v):find("^<__tostring error: table: "), fmt(v))
  local w = setmetatable({}, { __tostring = function() error(boom_tostring()) end })
  t.eq(fmt(w), "<__tostring error: table>")
end)

t.test("__tostring returning a non-string", function()
  local v = setmetatable({}, { __tostring = function() return {} end })
  t.eq(fmt(v), "<__tostring error: '__tostring' must return a string>")
end)

t.test("__tostring is used regardless of depth", function()
  local reply = setmetatable({}, { __tostring = function() return "R" end })
  t.eq(fmt({ { reply } }, { depth = 1 }), "{ {...} }")
  t.eq(fmt(reply, { depth = 0 }), "R")
end)

t.test("other metatables do not change the printing", function()
  local v = setmetatable({ 1, 2 }, { __index = function() error("must not be called") end,
    __pairs = function() error("must not be called") end, __len = function() return 99 end })
  t.eq(fmt(v), "{ 1, 2 }")
end)

-- Tables --------------------------------------------------------------------

t.test("empty table", function()
  t.eq(fmt({}), "{}")
  t.eq(fmt({ {} }), "{ {} }")
end)

t.test("arrays print without keys", function()
  t.eq(fmt({ 1, 2, 3 }), "{ 1, 2, 3 }")
  t.eq(fmt({ "a", true, 1.5 }), '{ "a", true, 1.5 }')
end)

t.test("records print sorted with identifier keys", function()
  t.eq(fmt({ b = "x", a = 1 }), '{ a = 1, b = "x" }')
  t.eq(fmt({ _private = 1, Z = 2, a = 3 }), "{ Z = 2, _private = 1, a = 3 }")
end)

t.test("non-identifier keys are bracketed", function()
  t.eq(fmt({ ["a b"] = 1 }), '{ ["a b"] = 1 }')
  t.eq(fmt({ ["end"] = 1 }), '{ ["end"] = 1 }', "keywords are not identifiers")
  t.eq(fmt({ ["1x"] = 1 }), '{ ["1x"] = 1 }')
  t.eq(fmt({ [""] = 1 }), '{ [""] = 1 }')
  t.eq(fmt({ ["a\n"] = 1 }), '{ ["a\\n"] = 1 }')
  t.eq(fmt({ [3.5] = 1 }), "{ [3.5] = 1 }")
  t.eq(fmt({ [true] = 1 }), "{ [true] = 1 }")
end)

t.test("array part, then numbers, then strings, then others", function()
  local v = { 10, 20, b = 2, a = 1, [5] = 50, [0] = 0, [-1.5] = "neg", [true] = "t", ["1"] = "s" }
  t.eq(fmt(v, { width = 200 }),
    '{ 10, 20, [-1.5] = "neg", [0] = 0, [5] = 50, ["1"] = "s", a = 1, b = 2, [true] = "t" }')
end)

t.test("array part stops at the first hole", function()
  t.eq(fmt({ 1, nil, 3 }), "{ 1, [3] = 3 }")
  t.eq(fmt({ [2] = 2 }), "{ [2] = 2 }")
end)

t.test("table keys print their contents", function()
  t.eq(fmt({ [{ 1 }] = "k" }), '{ [{ 1 }] = "k" }')
end)

t.test("non-string keys other than numbers sort by tostring", function()
  local f = function() end
  local v = { [f] = 1, [false] = 2, [true] = 3 }
  local expected = { "[false] = 2", "[true] = 3", "[" .. tostring(f) .. "] = 1" }
  table.sort(expected, function(a, b) return a:sub(2) < b:sub(2) end)
  t.eq(fmt(v, { width = 200 }), "{ " .. table.concat(expected, ", ") .. " }")
end)

t.test("nested tables on one line", function()
  t.eq(fmt({ a = { b = { 1, 2 } }, c = {} }), "{ a = { b = { 1, 2 } }, c = {} }")
end)

-- Width ---------------------------------------------------------------------

t.test("a table exactly as wide as the width stays on one line", function()
  -- "{ 1, 2, 3 }" is 11 characters.
  t.eq(fmt({ 1, 2, 3 }, { width = 11 }), "{ 1, 2, 3 }")
  t.eq(fmt({ 1, 2, 3 }, { width = 10 }), "{\n  1,\n  2,\n  3,\n}")
end)

t.test("default width is 80", function()
  -- '{ s = "' + 70 x + '" }' is exactly 80 columns.
  local v = { s = string.rep("x", 70) }
  t.eq(fmt(v), '{ s = "' .. string.rep("x", 70) .. '" }')
  v.s = v.s .. "x"
  t.eq(fmt(v), '{\n  s = "' .. string.rep("x", 71) .. '",\n}')
end)

t.test("multi-line layout indents nested tables", function()
  local v = { "first", list = { 1, 2, 3 }, record = { name = "alice", tags = { "a", "b" } } }
  t.eq(fmt(v, { width = 30 }), table.concat({
    "{",
    '  "first",',
    "  list = { 1, 2, 3 },",
    "  record = {",
    '    name = "alice",',
    '    tags = { "a", "b" },',
    "  },",
    "}",
  }, "\n"))
end)

t.test("nested width accounts for indent, key and trailing comma", function()
  -- '  k = { 1, 2 },' is 15 columns: fits in 15, not in 14.
  local v = { k = { 1, 2 }, z = string.rep("z", 20) }
  t.eq(fmt(v, { width = 15 }), '{\n  k = { 1, 2 },\n  z = "' .. string.rep("z", 20) .. '",\n}')
  t.eq(fmt(v, { width = 14 }), '{\n  k = {\n    1,\n    2,\n  },\n  z = "' .. string.rep("z", 20) .. '",\n}')
end)

t.test("indent option shifts continuation lines", function()
  t.eq(fmt({ 1, 2 }, { width = 5, indent = 4 }), "{\n      1,\n      2,\n    }")
  t.eq(fmt({ 1, 2 }, { width = 14, indent = 4 }), "{ 1, 2 }")
end)

t.test("long scalars are never broken", function()
  local s = string.rep("y", 100)
  t.eq(fmt(s, { width = 10 }), '"' .. s .. '"')
  t.eq(fmt({ s }, { width = 10 }), '{\n  "' .. s .. '",\n}')
end)

t.test("large table prints every entry", function()
  local v = {}
  for i = 1, 1000 do v[i] = i end
  local out = fmt(v)
  local lines = select(2, out:gsub("\n", "\n")) + 1
  t.eq(lines, 1002)
  t.ok(out:find("\n  1000,\n}$"))
end)

-- Depth ---------------------------------------------------------------------

t.test("default depth is 4", function()
  t.eq(fmt({ { { { { 1 } } } } }), "{ { { { {...} } } } }")
  t.eq(fmt({ { { { 1 } } } }), "{ { { { 1 } } } }")
end)

t.test("depth option", function()
  t.eq(fmt({ a = { b = 1 } }, { depth = 1 }), "{ a = {...} }")
  t.eq(fmt({ a = { b = 1 } }, { depth = 0 }), "{...}")
  t.eq(fmt({ a = { b = 1 } }, { depth = 2 }), "{ a = { b = 1 } }")
  t.eq(fmt({ {} }, { depth = 1 }), "{ {...} }")
end)

t.test("depth beyond the default", function()
  local v = { 1 }
  for _ = 1, 9 do v = { v } end
  t.eq(fmt(v, { depth = math.huge }), "{ { { { { { { { { { 1 } } } } } } } } } }")
end)

t.test("invalid options fall back to defaults", function()
  t.eq(fmt({ { { { { 1 } } } } }, "nonsense"), "{ { { { {...} } } } }")
  t.eq(fmt({ 1 }, { depth = "deep", width = -3 }), "{ 1 }")
  t.eq(fmt({ 1 }, { depth = 0 / 0 }), "{ 1 }")
end)

-- Cycles and sharing ----------------------------------------------------------

t.test("self reference prints as <cycle>", function()
  local v = { name = "loop" }
  v.self = v
  t.eq(fmt(v), '{ name = "loop", self = <cycle> }')
end)

t.test("indirect cycle", function()
  local a, b = {}, {}
  a.b, b.a = b, a
  t.eq(fmt(a), "{ b = { a = <cycle> } }")
end)

t.test("cycle inside the array part and in multi-line layout", function()
  local v = { 1 }
  v[2] = v
  t.eq(fmt(v), "{ 1, <cycle> }")
  t.eq(fmt(v, { width = 5 }), "{\n  1,\n  <cycle>,\n}")
end)

t.test("cycle through a key", function()
  local v = {}
  v[v] = 1
  t.eq(fmt(v), "{ [<cycle>] = 1 }")
end)

t.test("a shared table is printed at each place", function()
  local shared = { 1 }
  t.eq(fmt({ a = shared, b = shared }), "{ a = { 1 }, b = { 1 } }")
  t.eq(fmt({ shared, shared, { shared } }), "{ { 1 }, { 1 }, { { 1 } } }")
end)

-- Robustness ------------------------------------------------------------------

t.test("deep nesting with unlimited depth does not raise", function()
  local v = {}
  local c = v
  for _ = 1, 300000 do
    c[1] = {}
    c = c[1]
  end
  local s = fmt(v, { depth = math.huge })
  t.eq(type(s), "string")
end)

t.test("format of a wide table with many keys is correct and sorted", function()
  local v = {}
  for i = 1, 500 do v["k" .. string.format("%03d", i)] = i end
  local out = fmt(v)
  t.ok(out:find('^{\n  k001 = 1,\n  k002 = 2,\n'))
  t.ok(out:find('\n  k500 = 500,\n}$'))
end)

-- print_values ----------------------------------------------------------------

local function capture(...)
  local chunks = {}
  pretty.print_values(function(s) chunks[#chunks + 1] = s end, ...)
  return table.concat(chunks)
end

t.test("print_values joins with tabs and ends with a newline", function()
  t.eq(capture(1, "a", { 1 }), '1\t"a"\t{ 1 }\n')
end)

t.test("print_values keeps nils in the middle and at the end", function()
  t.eq(capture(nil, 2, nil), "nil\t2\tnil\n")
  t.eq(capture(nil), "nil\n")
end)

t.test("print_values with no values writes an empty line", function()
  t.eq(capture(), "\n")
end)

t.test("print_values uses __tostring and never raises", function()
  local reply = setmetatable({}, { __tostring = function() return "250 OK" end })
  t.eq(capture(reply, boom_tostring()), "250 OK\t<__tostring error: boom>\n")
end)

t.run()
