-- net_addrs.lua PORT: against any listening peer on 127.0.0.1.
local port = assert(tonumber(arg[1]), "usage: net_addrs.lua PORT")
local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what, tostring(got), tostring(want)), 2)
  end
end
local function check(c)
  eq(c.remote_addr, "127.0.0.1:" .. port, "remote_addr")
  local lport = tostring(c.local_addr):match("^127%.0%.0%.1:(%d+)$")
  if not lport then error("local_addr should look like 127.0.0.1:PORT, got " .. tostring(c.local_addr)) end
  lport = tonumber(lport)
  if lport < 1 or lport > 65535 or lport == port then
    error("local_addr has an implausible port: " .. c.local_addr)
  end
  return lport
end

local c, err = net.connect("127.0.0.1", port)
if not c then error("connect failed: " .. tostring(err)) end
local p1 = check(c)

local c2, err2 = net.connect("127.0.0.1", port, {source = "127.0.0.1", timeout = 5})
if not c2 then error("connect with source failed: " .. tostring(err2)) end
local p2 = check(c2)
if p1 == p2 then error("two live connections share local port " .. p1) end
c:close()
c2:close()
print("OK net_addrs " .. p1 .. " " .. p2)
