-- The API reference of smtpsh.classify (stdlib/classify.lua); format: stdlib/apidoc.lua.
return {
  name = "classify", require = "smtpsh.classify",
  title = "what a reply or failure means",
  summary = "a reply or error as a class (greylisting, rate_limit, tls_required, mailbox_unknown, policy, dnsbl, ...) with its meaning and advice",
  entries = {
    { name = "reply", sig = "classify.reply(reply)", summary = "a reply table or text (\"450 4.7.1 Greylisted\") classified from its codes and words",
      returns = "{class, transient, meaning, advice, code, enhanced}", errors = "none",
      example = 'classify.reply("450 4.7.1 Greylisted, try again in 300 seconds").class' },
    { name = "error", sig = "classify.error(err)", summary = "an err of smtp, dns or net classified (a reply error by its reply)",
      returns = "{class, transient, meaning, advice, code, enhanced}", errors = "none",
      example = "classify.error(select(2, s:rcpt(to))).advice" },
    { name = "classes", field = true, sig = "classify.classes", summary = "every class: {name = {meaning, advice, transient}}",
      example = "classify.classes.greylisting.advice" },
  },
}
