-- demo: the server `smtpsh --demo` runs beside the REPL. Well behaved, with STARTTLS and
-- CHUNKING; a recipient whose local part is "unknown" is refused, "grey..." is greylisted
-- once, so there is something to see.
local params = ... or {}
local seen = {}
return {
  hostname = params.hostname or "demo.smtpsh.test",
  tls = { self_signed = "demo.smtpsh.test" },
  on_connect = function() return "220 demo.smtpsh.test ESMTP smtpsh demo server" end,
  on_rcpt = function(s, to)
    local lower = to:lower()
    if lower:match("^unknown@") then return "550 5.1.1 <" .. to .. ">: Recipient address rejected: User unknown" end
    if lower:match("^grey") and not seen[lower] then
      seen[lower] = true
      return "450 4.7.1 <" .. to .. ">: Recipient address rejected: Greylisted, try again in a minute"
    end
  end,
}
