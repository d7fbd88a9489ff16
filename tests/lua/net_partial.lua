-- net_partial.lua PORT: against `tcp_peer.py partial` (sends "abc" without newline, closes).
local port = assert(tonumber(arg[1]), "usage: net_partial.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local c, err = net.connect("127.0.0.1", port)
if not c then error("connect failed: " .. tostring(err)) end
c:settimeout(5)
local line, rerr, partial = c:receive("l")
eq(line, nil, "receive at EOF returns nil")
if rerr == nil then error("receive at EOF: no error value") end
eq(rerr.kind, "closed", "err.kind at EOF")
eq(partial, "abc", "partial data at EOF")
local s = tostring(rerr)
if type(s) ~= "string" or #s == 0 or s:match("^table: ") or s:match("^userdata: ") then
  error("tostring(err) is not a readable sentence: " .. tostring(s))
end
if type(rerr.message) ~= "string" or #rerr.message == 0 then
  error("err.message should be a non-empty string, got " .. tostring(rerr.message))
end
c:close()
print("OK net_partial")
