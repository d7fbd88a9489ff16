-- The API reference of smtpsh.json (stdlib/json.lua); format: stdlib/apidoc.lua.
return {
  name = "json", require = "smtpsh.json",
  title = "JSON",
  summary = "JSON (RFC 8259) to and from Lua values, as --json writes it",
  entries = {
    { name = "encode", sig = "json.encode(value)", summary = "value as JSON text; object keys sorted, tables with keys 1..n are arrays",
      returns = "the text", errors = "raises on what cannot be JSON: functions, NaN, cycles",
      example = 'json.encode{verdict = "ok", hosts = {"mx1", "mx2"}}' },
    { name = "decode", sig = "json.decode(text)", summary = "JSON text as a Lua value: null is json.null, arrays json.array tables",
      returns = "the value", errors = "nil, \"json: <what> at byte N\"; raises on a non-string",
      example = [[json.decode('{"a":[1,2.5,null]}')]] },
    { name = "array", sig = "json.array([t])", summary = "marks t to encode as an array even when empty",
      returns = "t", errors = "none", example = "json.encode(json.array{})  --> []" },
    { name = "null", field = true, sig = "json.null", summary = "the sentinel that stands for JSON null inside tables",
      example = "if v == json.null then ... end" },
    { name = "quote", sig = "json.quote(s)", summary = "s as a JSON string, quotes included (for writers of a fixed shape)",
      returns = "the quoted string", errors = "raises on a non-string", example = 'json.quote("a\\"b")' },
  },
}
