-- stdlib/record_file.lua: what `smtpsh replay` reads from a recording.
local t = dofile("tests/lua/testing.lua")
local record_file = require "smtpsh.record_file"

local start = '{"argv":["banner","127.0.0.1:2525"],"type":"start","version":1}'

local function smtp(session, dir, line)
  return string.format('{"dir":"%s","line":"%s","session":%d,"st":0.5,"t":0.6,"type":"smtp"}',
    dir, line, session)
end

t.test("a recording: its start, its answers, its sessions in order", function()
  local text = table.concat({
    start,
    '{"name":"example.com","qtype":15,"type":"dns","wire":"abcd"}',
    '{"name":"mx.example.com","qtype":1,"type":"dns","wire":""}',
    smtp(2, "!", "connected to 127.0.0.1:2525 from 127.0.0.1:4000"),
    smtp(1, "S", "220 mx"),
    smtp(2, "C", "QUIT"),
    "",
    '{"type":"later","x":1}',
  }, "\n") .. "\n"
  local r, err = record_file.parse(text)
  t.eq(err, nil)
  t.eq(r.start.argv, { "banner", "127.0.0.1:2525" })
  t.eq(r.answers, { { name = "example.com", qtype = 15, wire = "abcd" } })
  t.eq(#r.order, 2)
  t.eq(r.order[1].id, 2)
  t.eq(r.order[2], r.sessions[1])
  t.eq(#r.sessions[2].events, 2)
  t.eq(r.sessions[2].events[2].line, "QUIT")
end)

t.test("the lines of a file give the same recording as its text", function()
  local text = start .. "\n" .. smtp(1, "S", "220 mx") .. "\n"
  local r = record_file.parse(string.gmatch(text, "[^\n]+"))
  t.eq(r.sessions[1].events[1].line, "220 mx")
end)

t.test("what is wrong is one line naming the line", function()
  local function err(text) return select(2, record_file.parse(text)) end
  t.eq(err(""), "not a recording: it has no start line")
  t.eq(err(smtp(1, "S", "220 mx")), "not a recording: it has no start line")
  t.eq(err(start .. "\n{bad"),
    "line 2: json: expected a string key but found character 'b' at byte 2")
  t.eq(err(start .. "\n\n[1]"), "line 3: expected a JSON object")
  t.eq(err(start .. "\n1"), "line 2: expected a JSON object")
  t.eq(err(start .. "\nnull"), "line 2: expected a JSON object")
  t.eq(err('{"type":"start","argv":"banner"}'), "line 1: start: argv must be a list of strings")
  t.eq(err('{"type":"start","argv":[1]}'), "line 1: start: argv must be a list of strings")
  t.eq(err(start .. '\n{"type":"dns","name":"a","qtype":1,"wire":"abc"}'),
    "line 2: dns: wire must be hexadecimal, two digits a byte")
  t.eq(err(start .. '\n{"type":"dns","name":"a","qtype":0,"wire":"ab"}'),
    "line 2: dns: qtype must be a number from 1 to 65535")
  t.eq(err(start .. '\n{"type":"dns","qtype":1,"wire":"ab"}'), "line 2: dns: name must be a string")
  t.eq(err(start .. '\n{"type":"smtp","session":"1","dir":"S","line":"x","st":0}'),
    "line 2: smtp: session must be an integer")
  t.eq(err(start .. '\n{"type":"smtp","session":1,"dir":"X","line":"x","st":0}'),
    'line 2: smtp: dir must be "S", "C" or "!"')
  t.eq(err(start .. '\n{"type":"smtp","session":1,"dir":"S","line":2,"st":0}'),
    "line 2: smtp: line must be a string")
  t.eq(err(start .. '\n{"type":"smtp","session":1,"dir":"S","line":"x"}'),
    "line 2: smtp: st must be a number of seconds")
  -- A control byte after a backslash stays out of the message's line structure.
  t.eq(err(start .. '\n"\\\r"'), "line 2: json: invalid escape '\\ ' at byte 2")
end)

t.test("a recipe, generated values and TLS results come back with the recording", function()
  local text = table.concat({
    start,
    '{"type":"recipe","file":"probe.lua","args":["--target","mx.test"],"source":"return 1\\n"}',
    smtp(1, "!", "connected to 127.0.0.1:25 from 127.0.0.1:4000"),
    '{"type":"value","name":"send.date","value":"Wed"}',
    '{"type":"tls","session":1,"info":{"version":"TLSv1.3","chain":[{"subject":"CN=mx.test"}]}}',
    '{"type":"tls","session":7,"info":{"version":"TLSv1.2"}}',
    '{"type":"value","name":"send.date","value":"Thu"}',
  }, "\n")
  local r, err = record_file.parse(text)
  t.eq(err, nil)
  t.eq(r.recipe, { file = "probe.lua", args = { "--target", "mx.test" }, source = "return 1\n" })
  t.eq(r.values, { { name = "send.date", value = "Wed" }, { name = "send.date", value = "Thu" } })
  t.eq(r.sessions[1].tls.version, "TLSv1.3")
  t.eq(r.sessions[1].tls.chain[1].subject, "CN=mx.test")
  t.eq(r.sessions[7], nil)  -- a TLS result of no session is dropped
  -- No recipe line: none.
  t.eq(record_file.parse(start).recipe, nil)
end)

t.test("a recipe, value or TLS line that replay could not use is refused, naming the line", function()
  local function err(line) return select(2, record_file.parse(start .. "\n" .. line)) end
  t.eq(err('{"type":"recipe","file":"x.lua"}'), "line 2: recipe: source must be a string")
  t.eq(err('{"type":"recipe","file":"","source":""}'), "line 2: recipe: file must be a file name")
  t.eq(err('{"type":"recipe","file":"x.lua","source":"","args":[1]}'),
    "line 2: recipe: args must be a list of strings")
  t.eq(err('{"type":"value","name":"a","value":1}'), "line 2: value: name and value must be strings")
  t.eq(err('{"type":"tls","session":"1","info":{}}'), "line 2: tls: session must be an integer")
  t.eq(err('{"type":"tls","session":1,"info":[]}'), "line 2: tls: info must be an object")
  t.eq(err('{"type":"tls","session":1,"info":{"chain":3}}'), "line 2: tls: info.chain must be a list")
  t.eq(err('{"type":"tls","session":1,"info":{"chain":[3]}}'),
    "line 2: tls: info.chain must be a list of objects")
end)

t.test("only a text or a line iterator", function()
  t.raises(function() record_file.parse(nil) end, "expected a text or a line iterator")
end)

t.run()
