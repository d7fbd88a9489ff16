-- Run from the repository root: lua5.4 tests/lua/complete_test.lua
package.path = "stdlib/?.lua;" .. package.path
local t = dofile("tests/lua/testing.lua")
local ok, complete = pcall(require, "smtpsh.complete")
if not ok then complete = dofile("stdlib/complete.lua") end

local cands = complete.candidates

local function trap()
  error("user code must not run during completion")
end

-- A class-style object: methods on the metatable's __index, data on the instance.
local Conn = {}
Conn.__index = Conn
function Conn.receive() end
function Conn.close() end
function Conn.send() end
Conn.retries = 3

-- A userdata-like object with computed fields, as the shell's bindings expose them.
local function computed(fields, methods)
  return setmetatable({}, { __index = trap, __newindex = trap, __fields = fields, __methods = methods })
end

local function new_env()
  return {
    net = {
      connect = function() end,
      config = { timeout = 30 },
      connections = 2,
      ["not valid"] = 1,
      ["end"] = 1,
      [1] = "array",
      [true] = "bool",
    },
    conn = setmetatable({ host = "mx.example", port = 25 }, Conn),
    print = print,
    printf = function() end,
    pairs = pairs,
    x = 1,
  }
end

-- Words ----------------------------------------------------------------------

t.test("field of a global table", function()
  t.eq(cands("net.con", new_env()), { "net.config", "net.connect", "net.connections" })
  t.eq(cands("net.conn", new_env()), { "net.connect", "net.connections" })
end)

t.test("only the last word of the line counts", function()
  t.eq(cands("print(net.con", new_env()), { "net.config", "net.connect", "net.connections" })
  t.eq(cands("x = net.config.ti", new_env()), { "net.config.timeout" })
  t.eq(cands("local a, b = x, pri", new_env()), { "print", "printf" })
  t.eq(cands("f(1,conn:re", new_env()), { "conn:receive" })
end)

t.test("everything after a dot", function()
  t.eq(cands("net.", new_env()), { "net.config", "net.connect", "net.connections" })
  t.eq(cands("net.config.", new_env()), { "net.config.timeout" })
end)

t.test("exact match is offered too", function()
  t.eq(cands("net.connect", new_env()), { "net.connect", "net.connections" })
  t.eq(cands("net.config", new_env()), { "net.config" })
end)

t.test("no match gives an empty list", function()
  t.eq(cands("net.zzz", new_env()), {})
end)

t.test("non-identifier and keyword keys are not offered", function()
  local all = cands("net.", new_env())
  for _, word in ipairs(all) do
    t.ok(word:find("^net%.[%a_][%w_]*$"), word)
  end
  t.eq(cands("net.e", new_env()), {})
  t.eq(cands("net.n", new_env()), {})
end)

-- Bare words and keywords ----------------------------------------------------

t.test("bare word offers globals and keywords", function()
  t.eq(cands("pr", new_env()), { "print", "printf" })
  t.eq(cands("wh", new_env()), { "while" })
  t.eq(cands("f", { foo = 1 }), { "false", "foo", "for", "function" })
  t.eq(cands("re", {}), { "repeat", "return" })
  t.eq(cands("e", {}), { "else", "elseif", "end" })
end)

t.test("empty word offers everything", function()
  local all = cands("", { alpha = 1 })
  t.eq(#all, 23)
  t.eq(all[1], "alpha")
  t.eq(all[#all], "while")
  t.eq(cands("print(", { alpha = 1 })[1], "alpha")
end)

t.test("keywords are not offered after a dot or colon", function()
  t.eq(cands("net.f", { net = { foo = 1 } }), { "net.foo" })
  t.eq(cands("s.e", { s = {} }), {})
end)

t.test("a global shadowing a keyword prefix is listed once", function()
  t.eq(cands("whil", { whilst = 1 }), { "while", "whilst" })
end)

-- Methods --------------------------------------------------------------------

t.test("colon offers only functions, including the metatable's", function()
  t.eq(cands("conn:", new_env()), { "conn:close", "conn:receive", "conn:send" })
  t.eq(cands("conn:s", new_env()), { "conn:send" })
end)

t.test("dot offers data and methods, without metamethods", function()
  t.eq(cands("conn.", new_env()),
    { "conn.close", "conn.host", "conn.port", "conn.receive", "conn.retries", "conn.send" })
end)

t.test("metamethod names appear when asked for", function()
  t.eq(cands("conn.__", new_env()), { "conn.__index" })
end)

t.test("an instance field shadows a method of the same name", function()
  local env = new_env()
  env.conn.send = "not a function"
  t.eq(cands("conn:", env), { "conn:close", "conn:receive" })
  t.eq(cands("conn.se", env), { "conn.send" })
end)

t.test("string values complete string methods", function()
  t.eq(cands("name:up", { name = "alice" }), { "name:upper" })
  t.eq(cands("name:re", { name = "alice" }), { "name:rep", "name:reverse" })
end)

-- __index chains ---------------------------------------------------------------

t.test("inheritance through up to three __index tables", function()
  local A = { a = function() end }
  local B = setmetatable({ b = function() end }, { __index = A })
  local C = setmetatable({ c = function() end }, { __index = B })
  local obj = setmetatable({}, { __index = C })
  t.eq(cands("obj:", { obj = obj }), { "obj:a", "obj:b", "obj:c" })
end)

t.test("a fourth __index level is not followed", function()
  local A = { a = function() end }
  local B = setmetatable({ b = function() end }, { __index = A })
  local C = setmetatable({ c = function() end }, { __index = B })
  local D = setmetatable({ d = function() end }, { __index = C })
  local obj = setmetatable({}, { __index = D })
  t.eq(cands("obj:", { obj = obj }), { "obj:b", "obj:c", "obj:d" })
end)

t.test("a cyclic __index chain terminates", function()
  local A = {}
  A.__index = A
  setmetatable(A, A)
  A.m = function() end
  t.eq(cands("A:", { A = A }), { "A:m" })
end)

t.test("path segments resolve through __index tables", function()
  local Proto = { sub = { leaf = 1 } }
  local obj = setmetatable({}, { __index = Proto })
  t.eq(cands("obj.sub.l", { obj = obj }), { "obj.sub.leaf" })
end)

t.test("globals reached through the environment's __index table", function()
  local env = setmetatable({ mine = 1 }, { __index = { string = string } })
  t.eq(cands("str", env), { "string" })
  t.eq(cands("string.up", env), { "string.upper" })
  t.eq(cands("mi", env), { "mine" })
end)

t.test("__metatable protection does not hide members", function()
  local obj = setmetatable({}, { __index = { m = function() end }, __metatable = "locked" })
  t.eq(cands("obj:", { obj = obj }), { "obj:m" })
end)

-- Computed fields ----------------------------------------------------------------

t.test("__fields names are offered and __index functions never run", function()
  local msg = computed({ subject = true, from = true, size = true })
  t.eq(cands("msg.s", { msg = msg }), { "msg.size", "msg.subject" })
  t.eq(cands("msg.", { msg = msg }), { "msg.from", "msg.size", "msg.subject" })
end)

t.test("__fields names count as methods after a colon", function()
  local msg = computed({ reply = true })
  t.eq(cands("msg:", { msg = msg }), { "msg:reply" })
end)

t.test("__fields given as a list of names", function()
  local msg = computed({ "subject", "from" })
  t.eq(cands("msg.", { msg = msg }), { "msg.from", "msg.subject" })
end)

t.test("__fields combine with __index tables", function()
  local obj = setmetatable({}, { __index = { close = function() end }, __fields = { state = true } })
  t.eq(cands("obj.", { obj = obj }), { "obj.close", "obj.state" })
  t.eq(cands("obj:", { obj = obj }), { "obj:close", "obj:state" })
end)

t.test("computed fields cannot be resolved further", function()
  local msg = computed({ headers = true })
  t.eq(cands("msg.headers.", { msg = msg }), {})
end)

t.test("real userdata with a metatable", function()
  t.eq(cands("f:clo", { f = io.stdout }), { "f:close" })
  t.eq(cands("f:", { f = io.stdout }), {
    "f:close", "f:flush", "f:lines", "f:read", "f:seek", "f:setvbuf", "f:write",
  })
end)

-- No user code, no errors --------------------------------------------------------

t.test("__index functions on the path are not called", function()
  local proxy = setmetatable({}, { __index = trap })
  t.eq(cands("p.x", { p = proxy }), {})
  t.eq(cands("p.a.b", { p = proxy }), {})
  local env = setmetatable({}, { __index = trap })
  t.eq(cands("pr", env), {})
  t.eq(cands("wh", env), { "while" })
end)

t.test("__pairs and __len are not used", function()
  local v = setmetatable({ real = 1 }, { __pairs = trap, __len = trap })
  t.eq(cands("v.", { v = v }), { "v.real" })
end)

t.test("unresolvable words give an empty list", function()
  local env = new_env()
  t.eq(cands("nothere.x", env), {})
  t.eq(cands("x.y", env), {}, "a number has no fields")
  t.eq(cands("net.connections.", env), {})
  t.eq(cands("a:b.c", env), {}, "a method call must be last")
  t.eq(cands("conn:close:x", env), {})
  t.eq(cands("net..c", env), {})
  t.eq(cands(".x", env), {})
  t.eq(cands("foo().ba", env), {})
  t.eq(cands("t[1].b", { t = { { b = 1 } } }), {})
  t.eq(cands("1.5", env), {})
  t.eq(cands("x = 12", env), {})
end)

t.test("bad arguments give an empty list", function()
  t.eq(cands(nil, {}), {})
  t.eq(cands(42, {}), {})
  t.eq(cands("x", nil), {})
  t.eq(cands("x", "env"), {})
  t.eq(cands(), {})
end)

t.test("completion never raises", function()
  local weird = setmetatable({}, {
    __index = setmetatable({}, { __index = trap }),
    __fields = setmetatable({}, { __pairs = trap, __index = trap }),
    __eq = trap, __lt = trap, __le = trap, __concat = trap, __tostring = trap,
  })
  local env = setmetatable({ w = weird }, { __index = trap, __newindex = trap })
  t.eq(cands("w.", env), {})
  t.eq(cands("w:", env), {})
  t.eq(cands("w.a.b.c", env), {})
  weird.fields_ok = 1
  getmetatable(weird).__fields = { ok = true }
  t.eq(cands("w.", env), { "w.fields_ok", "w.ok" })
end)

t.test("results are sorted and unique", function()
  local obj = setmetatable({ dup = 1 }, { __index = { dup = 2, other = 3 }, __fields = { dup = true } })
  t.eq(cands("o.", { o = obj }), { "o.dup", "o.other" })
end)

t.run()
