-- drop_after_ehlo: the greeting comes, then the server closes without a reply at the stage
-- named by `at` (ehlo by default; also mail, rcpt, data): "dropped_mid_session".
--   smtpsh serve drop_after_ehlo --set at=rcpt
local params = ... or {}
local at = params.at or "ehlo"
local handlers = { hostname = "mx.drop.test" }
handlers["on_" .. at] = function() return "close" end
return handlers
