-- mime: a multipart/mixed message built from a text body and attachments (RFC 2045-2047,
-- RFC 2183, RFC 2231), for `smtpsh send --attach`. Pure: bytes in, text out, no I/O.
--
--   local mime = require "smtpsh.mime"
--   local text = mime.multipart{
--     headers = { "From: <a@example>", "Subject: report" },   -- lines without line ends
--     body = "see the attachment\n",
--     attachments = { { name = "report.pdf", data = bytes } },  -- type guessed from the name
--   }
--
-- Every line of the result ends in CRLF; base64 lines are 76 characters at most; the boundary
-- never occurs in any part (RFC 2046 section 5.1.1).

local type, error, ipairs, tostring = type, error, ipairs, tostring
local string_byte, string_find, string_format, string_gsub, string_match, string_sub,
      string_lower, string_rep =
  string.byte, string.find, string.format, string.gsub, string.match, string.sub,
  string.lower, string.rep
local table_concat = table.concat
local math_random = math.random

local mime = {}

-- Content types by file extension: the common ones people attach. Anything else is
-- application/octet-stream, which every client can save. message/rfc822 (.eml) is left out on
-- purpose: RFC 2046 forbids base64 for it, and an attachment is always base64 here.
mime.types = {
  txt = "text/plain", text = "text/plain", log = "text/plain", csv = "text/csv",
  htm = "text/html", html = "text/html", css = "text/css", ics = "text/calendar",
  md = "text/markdown", xml = "application/xml", json = "application/json",
  pdf = "application/pdf", zip = "application/zip", gz = "application/gzip",
  tgz = "application/gzip", tar = "application/x-tar", ["7z"] = "application/x-7z-compressed",
  doc = "application/msword", xls = "application/vnd.ms-excel",
  ppt = "application/vnd.ms-powerpoint",
  docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  pptx = "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  odt = "application/vnd.oasis.opendocument.text",
  ods = "application/vnd.oasis.opendocument.spreadsheet",
  png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", svg = "image/svg+xml", bmp = "image/bmp", tif = "image/tiff",
  tiff = "image/tiff", ico = "image/vnd.microsoft.icon",
  mp3 = "audio/mpeg", wav = "audio/wav", ogg = "audio/ogg", mp4 = "video/mp4",
  p7s = "application/pkcs7-signature", asc = "application/pgp-signature",
  pem = "application/x-pem-file", crt = "application/x-x509-ca-cert",
}

-- "report.PDF" -> "application/pdf"; no or unknown extension -> "application/octet-stream".
function mime.content_type(name)
  local extension = string_match(name or "", "%.([^./]+)$")
  return extension and mime.types[string_lower(extension)] or "application/octet-stream"
end

-- Base64 (RFC 2045 section 6.8): lines of 76 characters (57 bytes each), every line ending in
-- CRLF; "" for no bytes.
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
-- Two output characters per 12 bits: a table of 4096 pairs, so each 3 bytes cost two look-ups.
local pairs12 = {}
for i = 0, 4095 do
  local high, low = i >> 6, i & 63
  pairs12[i] = string_sub(alphabet, high + 1, high + 1) .. string_sub(alphabet, low + 1, low + 1)
end

local function encode_line(data, from, to)
  local out, n = {}, 0
  local i = from
  while i + 2 <= to do
    local a, b, c = string_byte(data, i, i + 2)
    local bits = (a << 16) | (b << 8) | c
    n = n + 1
    out[n] = pairs12[bits >> 12] .. pairs12[bits & 4095]
    i = i + 3
  end
  local left = to - i + 1
  if left == 1 then
    local a = string_byte(data, i)
    n = n + 1
    out[n] = pairs12[a << 4] .. "=="
  elseif left == 2 then
    local a, b = string_byte(data, i, i + 1)
    local bits = (a << 10) | (b << 2)
    n = n + 1
    out[n] = pairs12[bits >> 6] .. string_sub(alphabet, (bits & 63) + 1, (bits & 63) + 1) .. "="
  end
  return table_concat(out)
end

function mime.base64(data)
  local lines = {}
  for from = 1, #data, 57 do
    lines[#lines + 1] = encode_line(data, from, from + 56 < #data and from + 56 or #data)
    lines[#lines + 1] = "\r\n"
  end
  return table_concat(lines)
end

-- A parameter (RFC 2045 section 5.1, RFC 2231 section 4) with a file name as its value:
-- a quoted-string when the name is printable ASCII, else the RFC 2231 form
-- `name*=UTF-8''caf%C3%A9.pdf`, so no byte of a name can break the header line.
function mime.parameter(key, value)
  if not string_find(value, "[^ -~]") then
    return key .. '="' .. string_gsub(value, '(["\\])', "\\%1") .. '"'
  end
  local encoded = string_gsub(value, "[^%w!#$&+%-.^_`|~]", function(char)
    return string_format("%%%02X", string_byte(char))
  end)
  return key .. "*=UTF-8''" .. encoded
end

-- Text as CRLF lines: bare LF and bare CR become CRLF, the last line is terminated.
local function crlf_lines(text)
  text = string_gsub(string_gsub(text, "\r\n", "\n"), "\r", "\n")
  text = string_gsub(text, "\n", "\r\n")
  if text ~= "" and string_sub(text, -2) ~= "\r\n" then text = text .. "\r\n" end
  return text
end

-- A part: its header lines, the blank line, the content (which ends in CRLF, or is empty).
local function part(headers, content)
  return headers .. "\r\n" .. content
end

-- The text body as a part: 7bit as it is when it is ASCII with lines a server takes (at most
-- 998 bytes, RFC 5322 section 2.1.1); otherwise UTF-8 in base64, which survives any relay
-- (8bit would need 8BITMIME on every hop). Text is base64-encoded in its canonical CRLF form.
local function text_part(body)
  local lines = crlf_lines(body)
  local long_line = string_find(lines, string_rep("[^\r\n]", 999))
  if not string_find(lines, "[\128-\255%z]") and not long_line then
    return part("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n",
      lines)
  end
  return part("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
    mime.base64(lines))
end

local function attachment_part(attachment)
  local name = attachment.name or "attachment"
  local content_type = attachment.type or mime.content_type(name)
  return part("Content-Type: " .. content_type .. "; " .. mime.parameter("name", name) .. "\r\n" ..
    "Content-Transfer-Encoding: base64\r\n" ..
    "Content-Disposition: attachment; " .. mime.parameter("filename", name) .. "\r\n",
    mime.base64(attachment.data))
end

-- A boundary found in none of `parts` (RFC 2046: it must not occur in the encapsulated text).
-- "=_" cannot occur in base64, so only a text part could ever hold one; the check is what
-- makes it certain. `random(n)` -> 1..n (math.random by default; tests pass their own).
local boundary_chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
function mime.boundary(parts, random)
  random = random or math_random
  for _ = 1, 100 do
    local chars = {}
    for i = 1, 24 do
      local k = random(#boundary_chars)
      chars[i] = string_sub(boundary_chars, k, k)
    end
    local candidate = "=_smtpsh_" .. table_concat(chars)
    local clash = false
    for _, part in ipairs(parts) do
      if string_find(part, candidate, 1, true) then clash = true break end
    end
    if not clash then return candidate end
  end
  error("mime.boundary: no boundary free of the parts after 100 tries (is random() random?)", 2)
end

-- The whole message: spec.headers (lines, no line ends) with MIME-Version and the
-- multipart/mixed Content-Type added, the text body first, then each attachment
-- ({name =, data =, type = optional}). The CRLF before each boundary line belongs to the
-- boundary (RFC 2046 section 5.1.1), so a part's own last line end is kept: a body that ends
-- in a newline still does when it is read back.
function mime.multipart(spec)
  if type(spec) ~= "table" or type(spec.body) ~= "string" then
    error("mime.multipart{headers =, body =, attachments =}: body must be a string", 2)
  end
  local parts = { text_part(spec.body) }
  for i, attachment in ipairs(spec.attachments or {}) do
    if type(attachment.data) ~= "string" then
      error("mime.multipart: attachments[" .. i .. "].data must be a string", 2)
    end
    parts[#parts + 1] = attachment_part(attachment)
  end
  local boundary = mime.boundary(parts, spec.random)
  local out = {}
  for _, header in ipairs(spec.headers or {}) do out[#out + 1] = tostring(header) .. "\r\n" end
  out[#out + 1] = "MIME-Version: 1.0\r\n"
  out[#out + 1] = 'Content-Type: multipart/mixed; boundary="' .. boundary .. '"\r\n\r\n'
  out[#out + 1] = "This is a multi-part message in MIME format."
  for _, text in ipairs(parts) do
    out[#out + 1] = "\r\n--" .. boundary .. "\r\n"
    out[#out + 1] = text
  end
  out[#out + 1] = "\r\n--" .. boundary .. "--\r\n"
  return table_concat(out)
end

return mime
