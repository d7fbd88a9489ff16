-- A recipe: probes one server the way a mail engineer would by hand (greeting, EHLO, what it
-- offers, whether it accepts a recipient) and returns what it saw with the transcript.
--   smtpsh --sandbox examples/probe.lua --target mx.example.com --recipient postmaster@example.com
--   smtpsh --sandbox examples/probe.lua --help
return {
  name = "probe",
  description = "greeting, EHLO, what the server offers, and whether it takes a recipient",
  params = {
    { name = "target", kind = "host", help = "the server, HOST[:PORT]" },
    { name = "recipient", kind = "address", help = "the RCPT TO to try" },
    { name = "sender", kind = "string", default = "", help = "the MAIL FROM (the null sender by default)" },
    { name = "timeout", kind = "seconds", default = 15, help = "the deadline of each step" },
  },
  run = function(p)
    local s, err = smtp.connect(p.target, { timeout = p.timeout })
    if not s then return { target = p.target, error = tostring(err) } end
    s:ehlo()
    local offered = {}
    for keyword in pairs(s.caps) do offered[#offered + 1] = keyword end
    table.sort(offered)
    s:mail(p.sender)
    local reply, refused = s:rcpt(p.recipient)
    s:quit()
    local transcript = {}
    for _, entry in ipairs(s.transcript) do
      transcript[#transcript + 1] = string.format("%s %7.3f %s", entry.dir, entry.t, entry.line)
    end
    return {
      target = p.target, banner = tostring(s.banner), offers = offered,
      recipient = reply and ("accepted: " .. tostring(reply)) or ("refused: " .. tostring(refused)),
      transcript = transcript,
    }
  end,
}
