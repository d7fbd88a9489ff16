-- The API reference of the net global (bindings/net.cpp); format: stdlib/apidoc.lua.
return {
  name = "net", require = "smtpsh.net", global = true,
  title = "TCP connections",
  summary = "plain TCP (and TLS) connections for speaking a protocol by hand",
  entries = {
    { name = "connect", sig = "net.connect(host, port [, opts])",
      summary = "a TCP connection (opts: timeout, source address); host names resolve through the dns resolver",
      returns = "a connection (help \"connection\")",
      errors = "nil, err: kind refused, timeout, dns, unreachable, resource (out of descriptors) or source (this machine lacks that address)",
      example = 'c = net.connect("mx.example.com", 25, {timeout = 10, source = "192.0.2.7"})' },
    { name = "usable_source", sig = "net.usable_source(address)",
      summary = "whether this machine can send from address (one of its own)",
      returns = "true", errors = "nil, why", example = 'net.usable_source("192.0.2.7")' },
  },
}
