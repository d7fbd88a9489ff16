-- drop_before_banner: TCP is accepted, then closed before any greeting (a tarpit, a
-- connection limit enforced in the kernel's accept queue, an IP block): "dropped_before_banner".
local params = ... or {}
return {
  hostname = "mx.drop.test",
  on_connect = function() return { drop = true, delay = tonumber(params.delay) or 0 } end,
}
