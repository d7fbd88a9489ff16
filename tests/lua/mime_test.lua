-- stdlib/mime.lua: base64 lines, file name parameters, content types, boundaries and the
-- multipart/mixed message `smtpsh send --attach` sends. The message itself is also parsed back
-- by Python's email package in tests/e2e/test_send.py.
local t = dofile("tests/lua/testing.lua")
local mime = require "smtpsh.mime"
-- An independent base64 encoder (the engine's, used for AUTH) to cross-check the Lua one.
local core = require "smtpsh.smtpcore"

-- The encoded text without its line ends.
local function joined(text) return (text:gsub("\r\n", "")) end

t.test("base64: the RFC 4648 test vectors, each line ended by CRLF", function()
  local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
                    fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }
  for plain, encoded in pairs(vectors) do
    t.eq(mime.base64(plain), encoded == "" and "" or encoded .. "\r\n", plain)
  end
end)

t.test("base64: 76-character lines, every byte value, the same bytes as the engine's encoder", function()
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
  local all = table.concat(bytes)
  for _, length in ipairs({ 1, 2, 3, 56, 57, 58, 113, 114, 115, 256, 1000, 4096 }) do
    local data = all:rep(20):sub(1, length)
    local text = mime.base64(data)
    t.eq(text:sub(-2), "\r\n", "ends in CRLF, length " .. length)
    for line in text:gmatch("(.-)\r\n") do
      t.ok(#line <= 76 and #line > 0, "line of " .. #line .. " characters, length " .. length)
    end
    t.ok(not text:gsub("\r\n", ""):find("[\r\n]"), "no bare CR or LF, length " .. length)
    t.eq(joined(text), core.b64encode(data), "same as the engine, length " .. length)
  end
  -- 57 bytes make exactly one full line.
  t.eq(#mime.base64(("x"):rep(57)), 78)
  t.eq(select(2, mime.base64(("x"):rep(58)):gsub("\r\n", "")), 2)
end)

t.test("content types: guessed from the extension, any case; otherwise octet-stream", function()
  t.eq(mime.content_type("report.pdf"), "application/pdf")
  t.eq(mime.content_type("Photo.JPG"), "image/jpeg")
  t.eq(mime.content_type("data.tar.gz"), "application/gzip")
  t.eq(mime.content_type("notes.txt"), "text/plain")
  t.eq(mime.content_type("archive.unknownext"), "application/octet-stream")
  t.eq(mime.content_type("Makefile"), "application/octet-stream")
  t.eq(mime.content_type("dir.d/noext"), "application/octet-stream")
  t.eq(mime.content_type("message.eml"), "application/octet-stream")  -- base64 is not allowed there
  t.eq(mime.content_type(nil), "application/octet-stream")
end)

t.test("file name parameters: quoted ASCII with escapes, RFC 2231 for anything else", function()
  t.eq(mime.parameter("filename", "report.pdf"), 'filename="report.pdf"')
  t.eq(mime.parameter("filename", 'a "b" \\c.txt'), 'filename="a \\"b\\" \\\\c.txt"')
  t.eq(mime.parameter("filename", "café.pdf"), "filename*=UTF-8''caf%C3%A9.pdf")
  -- A line break or a semicolon in a name can never end the header or the parameter.
  t.eq(mime.parameter("name", "a\r\nBcc: x;y"), "name*=UTF-8''a%0D%0ABcc%3A%20x%3By")
end)

t.test("boundary: never one that occurs in a part", function()
  -- A random source that first repeats what the text holds, then moves on.
  local calls = 0
  local function replaying(n)
    calls = calls + 1
    return calls <= 24 and 1 or 2
  end
  local clash = "=_smtpsh_" .. ("0"):rep(24)
  local b = mime.boundary({ "text with " .. clash .. " inside\r\n" }, replaying)
  t.eq(b, "=_smtpsh_" .. ("1"):rep(24), "the second candidate")
  t.eq(calls, 48)
  t.raises(function() mime.boundary({ clash }, function() return 1 end) end, "no boundary free")
end)

-- The message split at its boundary: the parts, each with its headers and content.
local function split(message)
  local boundary = message:match('boundary="([^"]+)"')
  t.ok(boundary, "a boundary parameter")
  local parts = {}
  local rest = message:match("\r\n\r\n(.*)$")
  local delimiter = "\r\n--" .. boundary
  local pieces = {}
  local from = 1
  while true do
    local s, e = rest:find(delimiter, from, true)
    if not s then break end
    pieces[#pieces + 1] = rest:sub(from, s - 1)
    from = e + 1
  end
  t.eq(rest:sub(from), "--\r\n", "closing delimiter last")
  for i = 2, #pieces do
    local head, content = pieces[i]:match("^\r\n(.-)\r\n\r\n(.*)$")
    t.ok(head, "part " .. (i - 1) .. " has headers, a blank line and content: " .. pieces[i])
    parts[#parts + 1] = { head = head, content = content }
  end
  return parts, boundary
end

t.test("multipart: headers, text part, base64 attachments, CRLF everywhere", function()
  local binary = {}
  for i = 0, 255 do binary[#binary + 1] = string.char(i) end
  binary = table.concat(binary):rep(3)
  local message = mime.multipart{
    headers = { "From: <a@example.test>", "Subject: files" },
    body = "hello\nsecond line\n",
    attachments = { { name = "data.bin", data = binary }, { name = "r.pdf", data = "%PDF-1.4\n" },
                    { name = "empty.txt", data = "" } },
  }
  t.ok(message:find("^From: <a@example.test>\r\nSubject: files\r\nMIME%-Version: 1%.0\r\n" ..
    'Content%-Type: multipart/mixed; boundary="=_smtpsh_%w+"\r\n\r\n'), message)
  t.ok(not message:gsub("\r\n", ""):find("[\r\n]"), "no bare CR or LF")
  local parts = split(message)
  t.eq(#parts, 4)
  t.eq(parts[1].head, "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit")
  t.eq(parts[1].content, "hello\r\nsecond line\r\n", "its last line end kept")
  t.eq(parts[2].head, 'Content-Type: application/octet-stream; name="data.bin"\r\n' ..
    'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="data.bin"')
  t.eq(joined(parts[2].content), core.b64encode(binary))
  t.eq(parts[3].head, 'Content-Type: application/pdf; name="r.pdf"\r\n' ..
    'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="r.pdf"')
  t.eq(parts[3].content, core.b64encode("%PDF-1.4\n") .. "\r\n")
  t.eq(parts[4].content, "", "an empty attachment is an empty part")
end)

t.test("multipart: a UTF-8 or long-lined body goes in base64; an explicit type wins", function()
  local utf8_body = "caf\xc3\xa9\n"
  local parts = split(mime.multipart{ body = utf8_body, attachments = { { name = "x", data = "1", type = "text/x-custom" } } })
  t.eq(parts[1].head, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64")
  t.eq(parts[1].content, core.b64encode("caf\xc3\xa9\r\n") .. "\r\n", "canonical CRLF form, then base64")
  t.ok(parts[2].head:find("^Content%-Type: text/x%-custom; "), parts[2].head)
  local long = ("x"):rep(999)
  parts = split(mime.multipart{ body = long })
  t.ok(parts[1].head:find("base64"), "a 999-byte line is not sent as 7bit")
  parts = split(mime.multipart{ body = ("x"):rep(998) })
  t.ok(parts[1].head:find("7bit"), "998 bytes are fine")
  parts = split(mime.multipart{ body = "" })
  t.eq(parts[1].content, "", "an empty body")
end)

t.test("multipart: a body holding a would-be boundary line cannot end the part", function()
  local calls = 0
  local body = "--=_smtpsh_" .. ("0"):rep(24) .. "--\n"
  local message = mime.multipart{ body = body, random = function()
    calls = calls + 1
    return calls <= 24 and 1 or 3
  end }
  local parts, boundary = split(message)
  t.eq(boundary, "=_smtpsh_" .. ("2"):rep(24))
  t.eq(#parts, 1)
  t.eq(parts[1].content, body:sub(1, -2) .. "\r\n")
end)

t.test("multipart: bad arguments raise", function()
  t.raises(function() mime.multipart{} end, "body must be a string")
  t.raises(function() mime.multipart{ body = "", attachments = { { name = "x" } } } end, "data must be a string")
end)

t.run()
