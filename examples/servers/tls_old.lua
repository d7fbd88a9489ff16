-- tls_old: STARTTLS that speaks only TLS 1.0 and 1.1, like an MTA not updated in years.
-- Senders that require TLS 1.2 or newer (and smtpsh's own default) fail the handshake:
-- "tls_version_mismatch". A default Postfix 3.7 on Debian 12 still delivers over TLS 1.1; one
-- with `protocols=>=TLSv1.2` defers, then falls back to plain text (test_scenarios_postfix.py).
local params = ... or {}
return {
  hostname = "mx.tlsold.test",
  tls = { self_signed = "mx.tlsold.test", min = params.min or "tls1", max = params.max or "tls1.1" },
}
