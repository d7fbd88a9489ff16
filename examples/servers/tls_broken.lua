-- tls_broken: STARTTLS answered 220, then bytes that are not TLS: a broken TLS proxy, or a
-- middlebox that strips TLS. Every TLS version fails alike: "tls_handshake_failed".
return {
  hostname = "mx.tlsbroken.test",
  tls = { self_signed = "mx.tlsbroken.test" },
  on_starttls = function()
    return { reply = "220 2.0.0 Ready to start TLS", raw = "this is not TLS\r\n", close = true }
  end,
}
