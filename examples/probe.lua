-- Probes one server the way a mail engineer would by hand: greeting, EHLO, what it offers,
-- and whether it accepts a recipient, then prints the transcript.
-- usage: smtpsh examples/probe.lua HOST[:PORT] RECIPIENT [SENDER]

local target, recipient, sender = ...
if not target or not recipient then
  io.stderr:write("usage: smtpsh examples/probe.lua HOST[:PORT] RECIPIENT [SENDER]\n")
  os.exit(2)
end

local s, err = smtp.connect(target, { timeout = 15 })
if not s then
  print("no session: " .. tostring(err))
  os.exit(1)
end
s:ehlo()
local offered = {}
for keyword in pairs(s.caps) do offered[#offered + 1] = keyword end
table.sort(offered)
print("offers: " .. table.concat(offered, " "))

local _, refused = s:mail(sender or "")
local reply, rerr = s:rcpt(recipient)
print(reply and ("accepted: " .. tostring(reply)) or ("refused: " .. tostring(rerr or refused)))
s:quit()

for _, entry in ipairs(s.transcript) do
  print(string.format("%s %7.3f %s", entry.dir, entry.t, entry.line))
end
