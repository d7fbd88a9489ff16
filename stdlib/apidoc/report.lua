-- The API reference of smtpsh.report (stdlib/report.lua); format: stdlib/apidoc.lua.
return {
  name = "report", require = "smtpsh.report",
  title = "checklists for people",
  summary = "checks {name, status = ok | warn | fail | skip, detail} rendered one a line, coloured on a terminal",
  entries = {
    { name = "checklist", sig = "report.checklist()", summary = "an empty checklist",
      returns = "checks: checks:add(name, status, detail), checks:list(), checks:count(status), checks:worst()",
      errors = "none", example = 'local checks = report.checklist(); checks:add("mx", "ok", "3 hosts")' },
    { name = "render", sig = "report.render(checks [, opts])", summary = "one line per check: status, name, detail (opts.colour)",
      returns = "the text", errors = "none", example = "io.write(report.render(checks, {colour = true}))" },
    { name = "summary", sig = "report.summary(checks)", summary = "\"2 problems, 1 warning\" or \"healthy\"",
      returns = "a string", errors = "none", example = "print(report.summary(checks))" },
    { name = "rank", field = true, sig = "report.rank", summary = "each status's weight: ok 1 ... fail 3, for the worst of several",
      example = "report.rank.fail > report.rank.warn" },
    { name = "visible", sig = "report.visible(text)", summary = "text with control bytes shown as \\xNN (tabs stay)",
      returns = "a string", errors = "none", example = 'report.visible("a\\0b")  --> "a\\x00b"' },
    { name = "plural", sig = "report.plural(count, one [, many])", summary = "\"1 retry\", \"2 retries\"",
      returns = "a string", errors = "none", example = 'report.plural(2, "retry", "retries")' },
    { name = "days_left", sig = "report.days_left(days)", summary = "\"30 days left\" or \"expired 3 days ago\"",
      returns = "a string", errors = "none", example = "report.days_left(cert.days_left)" },
  },
}
