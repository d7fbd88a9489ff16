-- The API reference of smtpsh.tlsscan (stdlib/tlsscan.lua); format: stdlib/apidoc.lua.
return {
  name = "tlsscan", require = "smtpsh.tlsscan",
  title = "TLS versions one by one",
  summary = "TLS 1.0, 1.1, 1.2 and 1.3 each tried alone on its own connection, so a version mismatch is named",
  entries = {
    { name = "versions", sig = "tlsscan.versions(target [, opts])",
      summary = "tries every version (opts: timeout (10), helo, sni, source, implicit, ca_file)",
      returns = "{entries = { {version, label, accepted, reason, error} }, accepted, reached, never_reached, stopped, best}",
      errors = "none: failures are in entries, never_reached and stopped",
      example = 'tlsscan.versions("mx.example.com:25").accepted' },
    { name = "handshake", sig = "tlsscan.handshake(target, opts [, tls_options])",
      summary = "one connection and one handshake with tls_options ({min, max, ciphers, verify, ...})",
      returns = "TLS info", errors = "nil, err (kind \"no_starttls\" when the server offers none)",
      example = 'tlsscan.handshake("mx.example.com", {}, {min = "tls1.3"})' },
    { name = "names", field = true, sig = "tlsscan.names", summary = "{\"tls1\", \"tls1.1\", \"tls1.2\", \"tls1.3\"}",
      example = "tlsscan.names[4]" },
    { name = "labels", field = true, sig = "tlsscan.labels", summary = "each name as people write it: tls1 -> \"TLS 1.0\"",
      example = 'tlsscan.labels["tls1.2"]' },
  },
}
