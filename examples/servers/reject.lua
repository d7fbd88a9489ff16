-- reject: every recipient refused with "550 5.1.1 User unknown": "rejected" (a permanent
-- answer that no other verdict explains).
return {
  hostname = "mx.reject.test",
  on_rcpt = function(s, to) return "550 5.1.1 <" .. to .. ">: Recipient address rejected: User unknown in virtual mailbox table" end,
}
