-- stdlib/json.lua: what --json output is built with.
local t = dofile("tests/lua/testing.lua")
local json = require "smtpsh.json"

t.test("scalars", function()
  t.eq(json.encode(nil), "null")
  t.eq(json.encode(true), "true")
  t.eq(json.encode(42), "42")
  t.eq(json.encode(0.5), "0.5")
  -- Found by fuzz_json: "-0" decoded as the integer 0, losing the sign.
  t.eq(json.encode(-0.0), "-0.0")
  t.eq(1 / json.decode(json.encode(-0.0)), -math.huge)
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

-- json.null

t.test("json.null encodes as null, is unique and read-only", function()
  t.eq(json.encode(json.null), "null")
  t.eq(json.encode({ 1, json.null, 3 }), "[1,null,3]")
  t.eq(json.encode({ a = json.null }), '{"a":null}')
  t.eq(tostring(json.null), "json.null")
  t.ok(json.null ~= nil and json.null ~= false)
  t.raises(function() json.null.x = 1 end, "read%-only")
end)

-- decoding: values

t.test("decode scalars", function()
  t.eq(json.decode("true"), true)
  t.eq(json.decode("false"), false)
  t.eq(json.decode("null"), json.null)
  t.eq(json.decode('"abc"'), "abc")
  t.eq(json.decode('""'), "")
  t.eq(json.decode("  \t\r\n 7 \n"), 7)
end)

t.test("decode numbers: integers stay integers, the rest are floats", function()
  t.eq(math.type(json.decode("42")), "integer")
  t.eq(json.decode("42"), 42)
  t.eq(json.decode("-17"), -17)
  t.eq(json.decode("0"), 0)
  t.eq(math.type(json.decode("-0")), "integer")
  t.eq(json.decode("9223372036854775807"), math.maxinteger)
  t.eq(json.decode("-9223372036854775808"), math.mininteger)
  -- too big for an integer: a float
  t.eq(math.type(json.decode("9223372036854775808")), "float")
  t.eq(json.decode("9223372036854775808"), 9223372036854775808.0)
  t.eq(json.decode("2.5"), 2.5)
  t.eq(math.type(json.decode("1.0")), "float")
  t.eq(json.decode("1e2"), 100.0)
  t.eq(math.type(json.decode("1e2")), "float")
  t.eq(json.decode("1E+2"), 100.0)
  t.eq(json.decode("-1.5e-3"), -0.0015)
  t.eq(json.decode("0.1"), 0.1)
end)

t.test("decode string escapes", function()
  t.eq(json.decode([["\"\\\/\b\f\n\r\t"]]), "\"\\/\b\f\n\r\t")
  t.eq(json.decode([["\u0041\u00e9\u20AC"]]), "Aé€")
  t.eq(json.decode([["\u0000"]]), "\0")
  t.eq(json.decode([["a\u0000b"]]), "a\0b")
  -- a surrogate pair is one code point, four UTF-8 bytes
  t.eq(json.decode([["\ud83d\ude00"]]), "😀")
  t.eq(json.decode([["\uD834\uDD1E"]]), "\u{1D11E}")
  t.eq(json.decode([["x\uDBFF\uDFFFy"]]), "x\u{10FFFF}y")
  -- raw UTF-8 and DEL pass through
  t.eq(json.decode('"café 😀 \127"'), "café 😀 \127")
end)

t.test("decode arrays and objects", function()
  t.eq(json.decode("[]"), {})
  t.eq(json.decode("{}"), {})
  t.eq(json.decode("[1, 2 ,3]"), { 1, 2, 3 })
  t.eq(json.decode('[1,null,"x"]'), { 1, json.null, "x" })
  t.eq(json.decode('{"a": {"b": [true, {}]}, "c": null}'), { a = { b = { true, {} } }, c = json.null })
  -- keys are strings, even when they look like numbers
  t.eq(json.decode('{"1": "a"}'), { ["1"] = "a" })
  -- a repeated key: the last one wins
  t.eq(json.decode('{"a": 1, "a": 2}'), { a = 2 })
  t.eq(json.decode(' [ [ ] , { } ] '), { {}, {} })
end)

t.test("decoded arrays are marked, so [] encodes back as []", function()
  t.eq(json.encode(json.decode("[]")), "[]")
  t.eq(json.encode(json.decode("{}")), "{}")
  t.eq(json.encode(json.decode('{"list": [], "map": {}}')), '{"list":[],"map":{}}')
end)

t.test("a leading byte order mark is skipped", function()
  t.eq(json.decode("\239\187\191[1]"), { 1 })
end)

t.test("nesting up to 200 deep is fine", function()
  local text = string.rep("[", 200) .. string.rep("]", 200)
  local v = json.decode(text)
  for _ = 1, 199 do v = v[1] end
  t.eq(v, {})
  t.eq(json.encode(json.decode(text)), text)
  local objects = string.rep('{"a":', 199) .. "[]" .. string.rep("}", 199)
  t.ok(json.decode(objects))
end)

t.test("round trips: encode(decode(x)) == x for canonical text", function()
  for _, text in ipairs {
    "null", "true", "false", "0", "-1", "2.5", '"x"', "[]", "{}",
    '[1,2,[3,[4,[]]],{"a":null}]',
    '{"a":{"b":{"c":[true,false,null]}},"k":"v\\n\\"q\\""}',
    '"\\u0001\\u001f"', '"é€😀"',
    '{"":""}', "9223372036854775807", "-9223372036854775808",
  } do
    t.eq(json.encode(json.decode(text)), text, text)
  end
end)

t.test("round trips: decode(encode(v)) == v", function()
  local values = {
    { name = "mx", hosts = { "a.example", "b.example" }, ttl = 300, ok = true },
    { 1, 2.5, -3, "four", { five = 5 } },
    { nested = { deeper = { deepest = { "x" } } } },
    { text = "quote \" backslash \\ newline \n tab \t ctrl \1 nul \0 utf8 é😀" },
    { big = math.maxinteger, small = math.mininteger, float = 1 / 3, tiny = 5e-324 },
    { a = json.null, b = { json.null } },
  }
  for i, v in ipairs(values) do
    t.eq(json.decode(json.encode(v)), v, "value " .. i)
  end
  -- floats survive exactly (%.17g)
  for _, x in ipairs { 0.1, 1 / 3, 1e300, -2.2250738585072014e-308, 123456.789 } do
    t.eq(json.decode(json.encode(x)), x)
  end
end)

-- decoding: errors

local function fails(text, message)
  local v, err = json.decode(text)
  t.eq(v, nil, "value for " .. string.format("%q", text))
  t.eq(err, message, "error for " .. string.format("%q", text))
end

t.test("errors: empty and truncated text", function()
  fails("", "json: unexpected end of text at byte 1")
  fails("   ", "json: unexpected end of text at byte 4")
  fails("[", "json: unexpected end of text at byte 2")
  fails("[1", "json: unexpected end of text at byte 3")
  fails("[1,", "json: unexpected end of text at byte 4")
  fails("{", "json: unexpected end of text at byte 2")
  fails('{"a"', "json: unexpected end of text at byte 5")
  fails('{"a":', "json: unexpected end of text at byte 6")
  fails('{"a":1', "json: unexpected end of text at byte 7")
  fails('"abc', "json: unterminated string at byte 1")
  fails('["abc\\', "json: unterminated string at byte 2")
end)

t.test("errors: unexpected characters and bad literals", function()
  fails("[1,]", "json: unexpected character ']' at byte 4")
  fails("[,1]", "json: unexpected character ',' at byte 2")
  fails("]", "json: unexpected character ']' at byte 1")
  fails("'x'", "json: unexpected character ''' at byte 1")
  fails("+1", "json: unexpected character '+' at byte 1")
  fails(".5", "json: unexpected character '.' at byte 1")
  fails("NaN", "json: unexpected character 'N' at byte 1")
  fails("\1", "json: unexpected byte 0x01 at byte 1")
  fails("tru", "json: invalid literal at byte 1")
  fails("nul", "json: invalid literal at byte 1")
  fails("[True]", "json: unexpected character 'T' at byte 2")
  fails("[fals]", "json: invalid literal at byte 2")
end)

t.test("errors: missing separators", function()
  fails("[1 2]", "json: expected ',' or ']' but found character '2' at byte 4")
  fails('{"a":1 "b":2}', "json: expected ',' or '}' but found character '\"' at byte 8")
  fails('{"a" 1}', "json: expected ':' but found character '1' at byte 6")
  fails("{1:2}", "json: expected a string key but found character '1' at byte 2")
  fails('{"a":1,}', "json: expected a string key but found character '}' at byte 8")
  fails("{a:1}", "json: expected a string key but found character 'a' at byte 2")
end)

t.test("errors: invalid numbers", function()
  fails("01", "json: invalid number at byte 1")
  fails("-01", "json: invalid number at byte 1")
  fails("-", "json: invalid number at byte 1")
  fails("-a", "json: invalid number at byte 1")
  fails("1.", "json: invalid number at byte 1")
  fails("[1.e5]", "json: invalid number at byte 2")
  fails("1e", "json: invalid number at byte 1")
  fails("1e+", "json: invalid number at byte 1")
  fails("1e400", "json: number out of range at byte 1")
  fails("[-1e400]", "json: number out of range at byte 2")
  fails("0x10", "json: trailing garbage at byte 2")
end)

t.test("errors: bad strings", function()
  fails('"a\tb"', "json: control character 0x09 in string at byte 3")
  fails('"a\nb"', "json: control character 0x0a in string at byte 3")
  fails('"\0"', "json: control character 0x00 in string at byte 2")
  fails([["\x"]], [[json: invalid escape '\x' at byte 2]])
  fails([["\U0041"]], [[json: invalid escape '\U' at byte 2]])
  fails([["\u12"]], [[json: invalid \u escape at byte 2]])
  fails([["\u12G4"]], [[json: invalid \u escape at byte 2]])
  fails([["\ud800"]], [[json: high surrogate \ud800 not followed by a low surrogate at byte 2]])
  fails([["\ud800\u0041"]], [[json: high surrogate \ud800 not followed by a low surrogate at byte 2]])
  fails([["ab\udc00"]], [[json: low surrogate \udc00 without a high surrogate at byte 4]])
end)

t.test("errors: invalid UTF-8", function()
  fails('"\255"', "json: invalid UTF-8 at byte 2")
  fails('"caf\195"', "json: invalid UTF-8 at byte 5")
  fails('"\237\160\128"', "json: invalid UTF-8 at byte 2") -- an encoded surrogate
  fails('"\192\128"', "json: invalid UTF-8 at byte 2")     -- an overlong encoding
end)

t.test("errors: trailing garbage", function()
  fails("1 2", "json: trailing garbage at byte 3")
  fails("[] []", "json: trailing garbage at byte 4")
  fails('{"a":1}}', "json: trailing garbage at byte 8")
  fails("truex", "json: trailing garbage at byte 5")
  fails("null\0", "json: trailing garbage at byte 5")
end)

t.test("errors: nesting deeper than 200", function()
  fails(string.rep("[", 201) .. string.rep("]", 201), "json: nesting deeper than 200 at byte 201")
  fails(string.rep('{"a":', 201) .. "1" .. string.rep("}", 201), "json: nesting deeper than 200 at byte 1001")
  -- deep garbage is refused before the parser recurses into it
  fails(string.rep("[", 100000), "json: nesting deeper than 200 at byte 201")
end)

t.test("decode raises only for a non-string argument", function()
  t.raises(function() json.decode(nil) end, "text must be a string, got nil")
  t.raises(function() json.decode(42) end, "text must be a string, got number")
end)

t.run()
