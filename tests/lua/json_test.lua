-- stdlib/json.lua: what --json output is built with.
local t = dofile("tests/lua/testing.lua")
local json = require "smtpsh.json"

t.test("scalars", function()
  t.eq(json.encode(nil), "null")
  t.eq(json.encode(true), "true")
  t.eq(json.encode(42), "42")
  t.eq(json.encode(0.5), "0.5")
  t.eq(json.encode("a\"b\\c\n\t\1"), '"a\\"b\\\\c\\n\\t\\u0001"')
  t.eq(json.encode("café"), '"café"')
end)

t.test("arrays and objects, keys sorted", function()
  t.eq(json.encode({ 1, 2, 3 }), "[1,2,3]")
  t.eq(json.encode({ b = 1, a = { x = false } }), '{"a":{"x":false},"b":1}')
  t.eq(json.encode({}), "{}")
  t.eq(json.encode(json.array()), "[]")
  t.eq(json.encode({ [1] = "a", [3] = "c" }), '{"1":"a","3":"c"}')
end)

t.test("what cannot be JSON is an error, not garbage", function()
  t.raises(function() json.encode(0 / 0) end, "cannot encode")
  t.raises(function() json.encode(print) end, "cannot encode a function")
  local loop = {}
  loop.self = loop
  t.raises(function() json.encode(loop) end, "contains itself")
  t.raises(function() json.encode({ [true] = 1 }) end, "keys must be strings or numbers")
end)

t.run()
