-- http_server: a small, strict HTTP/1.1 server for what smtpsh serves itself (the metrics and
-- status pages of `smtpsh watch`). GET and HEAD only; one request per connection (the answer
-- says Connection: close); the request line and headers bounded in size and count and read
-- under one deadline; anything else gets a clear 4xx and the connection closes. Each
-- connection is its own task, so a slow client never holds up another, or the probes.
--
--   local http_server = require "smtpsh.http_server"
--   local srv = assert(http_server.listen("127.0.0.1", 9125, function(request)
--     -- request.method, request.path, request.query (decoded, by name), request.headers
--     -- (lower-case names), request.peer
--     return 200, "hello\n", {["Content-Type"] = "text/plain"}
--   end))
--   srv.address, srv:close()
--
-- The handler returns status, body [, headers]; a handler that raises answers 500 and the
-- error goes to opts.on_error (never to the client).

local server = require "smtpsh.server"
local task = require "smtpsh.task"

local type, pcall, tostring, tonumber, pairs, ipairs = type, pcall, tostring, tonumber, pairs, ipairs
local string_match, string_lower, string_gsub, string_char, string_format, string_find =
  string.match, string.lower, string.gsub, string.char, string.format, string.find
local table_concat, table_sort = table.concat, table.sort

local http_server = {}

-- Limits of a request: the request line, all header lines together, their count, and the
-- time to send the whole request head.
http_server.max_target = 2048
http_server.max_header_bytes = 8192
http_server.max_headers = 64
http_server.request_timeout = 5

http_server.reasons = {
  [200] = "OK", [204] = "No Content", [400] = "Bad Request", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [414] = "URI Too Long",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [503] = "Service Unavailable", [505] = "HTTP Version Not Supported",
}

-- "%41b+c" -> "Ab c" (a query string's encoding); nil for a malformed escape.
function http_server.unescape(text)
  if string_find(text, "%%[^%x]") or string_find(text, "%%%x?$") then return nil end
  text = string_gsub(text, "+", " ")
  return (string_gsub(text, "%%(%x%x)", function(hex) return string_char(tonumber(hex, 16)) end))
end

-- "a=1&b=x%20y&c" -> {a = "1", b = "x y", c = ""}; the first of repeated names wins.
-- nil, problem for a malformed escape.
function http_server.parse_query(query)
  local out = {}
  for pair in string.gmatch(query or "", "[^&]+") do
    local name, value = string_match(pair, "^([^=]*)=?(.*)$")
    local n, v = http_server.unescape(name), http_server.unescape(value)
    if not n or not v then return nil, "a malformed %-escape in the query" end
    if out[n] == nil then out[n] = v end
  end
  return out
end

-- Reads a request head from `lines` (a function returning the next line, without CRLF, or
-- nil, err). Returns the request, or nil, status, reason.
function http_server.read_request(next_line)
  local line, err = next_line()
  if not line then return nil, err == "timeout" and 408 or 400, "no request line" end
  if #line > http_server.max_target + 32 then return nil, 414, "the request line is too long" end
  local method, target, version = string_match(line, "^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil, 400, "a malformed request line" end
  if version ~= "1.1" and version ~= "1.0" then return nil, 505, "HTTP/" .. version .. " is not served" end
  if #target > http_server.max_target then return nil, 414, "the request target is too long" end
  local headers, bytes, count = {}, 0, 0
  while true do
    line, err = next_line()
    if not line then return nil, err == "timeout" and 408 or 400, "the request head ended early" end
    if line == "" then break end
    bytes, count = bytes + #line + 2, count + 1
    if bytes > http_server.max_header_bytes or count > http_server.max_headers then
      return nil, 431, "the request headers are too large"
    end
    local name, value = string_match(line, "^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, 400, "a malformed header line" end
    name = string_lower(name)
    if headers[name] and name ~= "host" then
      headers[name] = headers[name] .. ", " .. value
    elseif headers[name] then
      return nil, 400, "two Host headers"
    else
      headers[name] = value
    end
  end
  if version == "1.1" and not headers.host then return nil, 400, "HTTP/1.1 without a Host header" end
  if headers["content-length"] and headers["content-length"] ~= "0" or headers["transfer-encoding"] then
    return nil, 400, "a request body is not accepted"
  end
  local path, query = string_match(target, "^(/[^?#]*)%??([^#]*)")
  if not path then return nil, 400, "the request target is not an absolute path" end
  local decoded_path = http_server.unescape(string_gsub(path, "+", "%%2B"))
  if not decoded_path then return nil, 400, "a malformed %-escape in the path" end
  local parsed, problem = http_server.parse_query(query)
  if not parsed then return nil, 400, problem end
  return { method = method, target = target, path = decoded_path, query = parsed, raw_query = query,
           headers = headers, version = version }
end

-- The bytes of a response.
function http_server.response(status, body, headers, head_only)
  body = body or ""
  local lines = { string_format("HTTP/1.1 %d %s", status, http_server.reasons[status] or "Status") }
  local names = {}
  for name in pairs(headers or {}) do names[#names + 1] = name end
  table_sort(names)
  local has_type = false
  for _, name in ipairs(names) do
    local value = tostring(headers[name])
    if string_find(name, "[\r\n:]") or string_find(value, "[\r\n]") then
      error("http_server: a header with a CR, LF or colon in its name or a CR or LF in its value", 2)
    end
    if string_lower(name) == "content-type" then has_type = true end
    lines[#lines + 1] = name .. ": " .. value
  end
  -- A 204 has no body, and RFC 9110 (8.6) forbids it a Content-Length.
  if status == 204 then
    body = ""
  else
    if not has_type then lines[#lines + 1] = "Content-Type: text/plain; charset=utf-8" end
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  lines[#lines + 1] = "Connection: close"
  lines[#lines + 1] = "X-Content-Type-Options: nosniff"
  lines[#lines + 1] = ""
  lines[#lines + 1] = head_only and "" or body
  return table_concat(lines, "\r\n")
end

local function answer(conn, status, body, headers, head_only)
  local ok, bytes = pcall(http_server.response, status, body, headers, head_only)
  if not ok then bytes = http_server.response(500, "the handler gave a malformed header\n") end
  conn:send(bytes)
  conn:close()
end

local function serve_connection(conn, handler, opts)
  -- One deadline for the whole request head: a client trickling a header line every second
  -- must not hold its connection open for ever.
  local limit = opts.request_timeout or http_server.request_timeout
  local deadline = task.now() + limit
  local request, status, reason = http_server.read_request(function()
    local left = deadline - task.now()
    if left <= 0 then return nil, "timeout" end
    conn:settimeout(left)
    local line, err = conn:receive("l")
    if not line then return nil, type(err) == "table" and err.kind or tostring(err) end
    return line
  end)
  conn:settimeout(limit)
  if not request then return answer(conn, status, reason .. "\n") end
  if request.method ~= "GET" and request.method ~= "HEAD" then
    return answer(conn, 405, request.method .. " is not served: GET or HEAD only\n", { Allow = "GET, HEAD" })
  end
  request.peer = conn.remote_addr
  local ok, code, body, headers = pcall(handler, request)
  if not ok then
    if opts.on_error then pcall(opts.on_error, code, request) end
    return answer(conn, 500, "the page failed; see the watcher's log\n", nil, request.method == "HEAD")
  end
  if type(code) ~= "number" or not http_server.reasons[code] then
    if opts.on_error then pcall(opts.on_error, "the handler returned no known status", request) end
    return answer(conn, 500, "the page failed; see the watcher's log\n", nil, request.method == "HEAD")
  end
  -- The answer is written under the same deadline, so a client that stops reading is dropped.
  return answer(conn, code, type(body) == "string" and body or "", headers, request.method == "HEAD")
end

-- http_server.listen(host, port, handler [, opts]) -> srv | nil, err. opts: request_timeout,
-- on_error(err, request).
function http_server.listen(host, port, handler, opts)
  opts = opts or {}
  local listener, err = server.accept(host, port, function(conn)
    local ok, problem = pcall(serve_connection, conn, handler, opts)
    if not ok then
      pcall(conn.close, conn)
      if opts.on_error then pcall(opts.on_error, problem) end
    end
  end)
  if not listener then return nil, err end
  local srv = { listener = listener, address = listener:address(), port = listener:port() }
  function srv:close() self.listener:close() end
  return srv
end

return http_server
