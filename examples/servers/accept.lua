-- accept: a healthy MX. STARTTLS (a self-signed certificate made at start), every recipient
-- accepted, every message queued. What `smtpsh diagnose` calls "ok".
--   smtpsh serve accept [--listen 127.0.0.1:2525]
local params = ... or {}
return {
  hostname = params.hostname or "mx.accept.test",
  tls = { self_signed = params.hostname or "mx.accept.test" },
}
