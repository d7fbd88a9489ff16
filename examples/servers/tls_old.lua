-- tls_old: STARTTLS that speaks only TLS 1.0 and 1.1, like an MTA not updated in years.
-- Modern senders (TLS 1.2+) fail the handshake: "tls_version_mismatch".
local params = ... or {}
return {
  hostname = "mx.tlsold.test",
  tls = { self_signed = "mx.tlsold.test", min = params.min or "tls1", max = params.max or "tls1.1" },
}
