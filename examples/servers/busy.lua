-- busy: a 421 greeting, as an overloaded server or one at its connection limit answers:
-- "server_busy".
return {
  hostname = "mx.busy.test",
  on_connect = function() return "421 4.3.2 mx.busy.test Service not available, too busy, try again later" end,
}
