-- greylist: RCPT gets "450 4.7.1 Greylisted" until `delay` seconds (default 2) have passed
-- since the (client IP, sender, recipient) triplet was first seen, as postgrey does; then 250.
--   smtpsh serve greylist --set delay=60
local params = ... or {}
local delay = tonumber(params.delay) or 2
local first_seen = {}
return {
  hostname = "mx.greylist.test",
  on_rcpt = function(s, to)
    local ip = (s.peer or ""):match("^%[?([^%]]*)%]?:%d+$") or s.peer
    local key = table.concat({ ip, s.from or "", to:lower() }, "|")
    local now = task.now()
    first_seen[key] = first_seen[key] or now
    if now - first_seen[key] < delay then
      return "450 4.7.1 <" .. to .. ">: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/greylist.test.html"
    end
  end,
}
