-- The API reference of smtpsh.address (stdlib/address.lua); format: stdlib/apidoc.lua.
return {
  name = "address", require = "smtpsh.address",
  title = "address syntax",
  summary = "email address syntax as SMTP carries it (RFC 5321, RFC 6531 UTF-8, IDNA), no I/O",
  entries = {
    { name = "parse", sig = "address.parse(text)", summary = "checks and splits an address",
      returns = "{input, local_part, domain, ascii_domain, local_utf8, quoted, literal}",
      errors = "nil, reason (the first thing wrong); raises on a non-string",
      example = 'address.parse("Jörg@Bücher.Example").ascii_domain' },
    { name = "parts", sig = "address.parts(text)", summary = "what parse finds, as values (faster in bulk)",
      returns = "local_part, ascii_domain, literal", errors = "nil, reason", example = 'address.parts("a@example.com")' },
    { name = "to_ascii", sig = "address.to_ascii(domain)", summary = "a domain as DNS is asked it: lower case, IDNA A-labels",
      returns = "the ASCII domain", errors = "nil, reason", example = 'address.to_ascii("Bücher.Example")' },
    { name = "punycode", sig = "address.punycode(text)", summary = "one label's Punycode (RFC 3492), without xn--",
      returns = "the encoded label", errors = "nil, reason", example = 'address.punycode("bücher")' },
    { name = "role", sig = "address.role(local_part)", summary = "the role of a role account (postmaster, abuse, noreply, ...)",
      returns = "the role, or nil", errors = "none", example = 'address.role("Postmaster+bounces")' },
    { name = "random_local", sig = "address.random_local([n])", summary = "a random local part for catch-all probes",
      returns = "a string of n letters and digits", errors = "none", example = "address.random_local(12)" },
  },
}
