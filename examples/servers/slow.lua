-- slow: the greeting comes after `delay` seconds (default 5): a server starved of resources,
-- or a deliberate greet-pause. A client with a shorter timeout sees "slow_server".
local params = ... or {}
return {
  hostname = "mx.slow.test",
  on_connect = function() return { delay = tonumber(params.delay) or 5 } end,
}
