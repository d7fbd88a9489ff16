-- The API reference of smtpsh.mime (stdlib/mime.lua); format: stdlib/apidoc.lua.
return {
  name = "mime", require = "smtpsh.mime",
  title = "MIME messages",
  summary = "a multipart/mixed message from a text body and attachments (RFC 2045-2047, 2183, 2231), no I/O",
  entries = {
    { name = "multipart", sig = "mime.multipart(spec)",
      summary = "the whole message: spec.headers (lines), spec.body, spec.attachments = { {name, data, type?} }",
      returns = "the message text, every line ending in CRLF", errors = "raises on a malformed spec",
      example = 'mime.multipart{headers = {"Subject: report"}, body = "see attached\\n", attachments = {{name = "r.pdf", data = bytes}}}' },
    { name = "content_type", sig = "mime.content_type(name)", summary = "a file name's content type by extension",
      returns = "\"application/pdf\"; application/octet-stream when unknown", errors = "none",
      example = 'mime.content_type("report.PDF")' },
    { name = "base64", sig = "mime.base64(data)", summary = "data in base64, lines of 76 characters",
      returns = "the encoded text", errors = "raises on a non-string", example = 'mime.base64("hello")' },
    { name = "parameter", sig = "mime.parameter(key, value)", summary = "a header parameter: quoted, or RFC 2231 UTF-8 for other names",
      returns = "the parameter text", errors = "none", example = 'mime.parameter("filename", "café.pdf")' },
    { name = "boundary", sig = "mime.boundary(parts [, random])", summary = "a boundary found in none of parts",
      returns = "the boundary", errors = "none", example = 'mime.boundary{"body text"}' },
    { name = "types", field = true, sig = "mime.types", summary = "content types by lower-case file extension",
      example = "mime.types.pdf" },
  },
}
