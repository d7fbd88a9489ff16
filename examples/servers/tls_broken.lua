-- tls_broken: STARTTLS answered 220, then, in answer to the client's ClientHello, bytes that
-- are not TLS: a broken TLS stack, or a middlebox that strips TLS. Sent only once the
-- ClientHello's first bytes arrived, so every client reads the same thing at the same step.
-- Every TLS version fails alike: "tls_handshake_failed".
return {
  hostname = "mx.tlsbroken.test",
  tls = { self_signed = "mx.tlsbroken.test" },
  on_starttls = function()
    return { reply = "220 2.0.0 Ready to start TLS", await = 5, raw = "this is not TLS\r\n", close = true }
  end,
}
