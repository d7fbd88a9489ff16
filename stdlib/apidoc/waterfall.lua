-- The API reference of smtpsh.waterfall (stdlib/waterfall.lua); format: stdlib/apidoc.lua.
return {
  name = "waterfall", require = "smtpsh.waterfall",
  title = "timing waterfalls",
  summary = "where the time went, as a network waterfall in plain ASCII: one row per step on one time axis",
  entries = {
    { name = "render", sig = "waterfall.render(bars [, width])",
      summary = "bars { {name, start, finish, wait}, ... } drawn in width (80) columns",
      returns = "a list of lines (no newlines); {} for no bars", errors = "raises on a malformed bar",
      example = 'for _, line in ipairs(waterfall.render{{name = "connect", start = 0, finish = 0.02}}) do print(line) end' },
    { name = "duration", sig = "waterfall.duration(seconds)", summary = "seconds as people read them",
      returns = "\"120 ms\", \"2.5 s\", \"300 s\"", errors = "none", example = "waterfall.duration(0.12)" },
    { name = "min_bar", field = true, sig = "waterfall.min_bar", summary = "the narrowest bar area, in columns (10)",
      example = "waterfall.min_bar" },
    { name = "max_name", field = true, sig = "waterfall.max_name", summary = "names longer than this (14) are cut",
      example = "waterfall.max_name" },
  },
}
