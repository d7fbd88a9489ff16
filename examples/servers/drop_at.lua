-- drop_at: the greeting comes, then the server closes instead of answering the command named
-- by `at`: ehlo (the default), mail, rcpt, data, or dot (after the message's final ".", before
-- the reply: the classic cause of duplicate deliveries, since the sender cannot know the
-- message was taken). The verdict: "dropped_mid_session".
--   smtpsh serve drop_at --set at=rcpt
--   smtpsh serve drop_at --set at=dot
local params = ... or {}
local at = params.at or "ehlo"
local handler_of = { ehlo = "on_ehlo", helo = "on_helo", mail = "on_mail", rcpt = "on_rcpt", data = "on_data",
                     dot = "on_message" }
local handler = handler_of[at]
if not handler then error("drop_at: at must be ehlo, helo, mail, rcpt, data or dot, not " .. tostring(at), 0) end
local handlers = { hostname = "mx.drop.test" }
handlers[handler] = function() return "close" end
return handlers
