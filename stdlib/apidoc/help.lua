-- The API reference of help itself (stdlib/help.lua); format: stdlib/apidoc.lua.
return {
  name = "help", require = "smtpsh.help", global = true,
  title = "this reference",
  summary = "help() lists the modules; help(topic) shows one function, method, module or value",
  entries = {
    { name = "help", call = true, sig = "help([topic])",
      summary = "prints the reference of topic: a name (\"smtp.connect\", \"starttls\", \"s:ehlo\", \"dns\"), a function, a module table or a session",
      returns = "nothing", errors = "an unknown topic prints one line with the closest names",
      example = 'help "smtp.connect"' },
    { name = "text", sig = "help.text([topic])", summary = "what help(topic) prints, as a string",
      returns = "the text, and whether the topic was found", errors = "none",
      example = 'local text = require("smtpsh.help").text("dns.mx")' },
  },
}
