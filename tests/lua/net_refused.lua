-- net_refused.lua PORT: PORT is a free loopback port nobody listens on.
local port = assert(tonumber(arg[1]), "usage: net_refused.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local c, err = net.connect("127.0.0.1", port, {timeout = 5})
eq(c, nil, "net.connect to a closed port")
if err == nil then error("net.connect returned neither a connection nor an error") end
eq(err.kind, "refused", "err.kind")
if type(err.stage) ~= "string" or #err.stage == 0 then
  error("err.stage should be a non-empty string, got " .. tostring(err.stage))
end
if type(err.message) ~= "string" or #err.message == 0 then
  error("err.message should be a non-empty string, got " .. tostring(err.message))
end
local s = tostring(err)
if type(s) ~= "string" or #s < 10 or s:match("^table: ") or s:match("^userdata: ") then
  error("tostring(err) is not a readable sentence: " .. tostring(s))
end
if not s:lower():find("refused", 1, true) then
  error("tostring(err) does not say the connection was refused: " .. s)
end
print("OK net_refused")
