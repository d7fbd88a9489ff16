-- watch_page: what `smtpsh watch` shows people: the status page (GET /), a table of every
-- target with its last verdict, coloured, when it ran and how long it took, linking to its
-- /last; and /last itself, the last probe's checklist and transcript as text or JSON. Plain
-- HTML and CSS, no script: it loads anywhere, and refreshes itself every 10 seconds.

local json = require "smtpsh.json"

local ipairs, tostring, os_date, os_time = ipairs, tostring, os.date, os.time
local string_format, string_gsub, table_concat = string.format, string.gsub, table.concat

local watch_page = {}

local html_escapes = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

function watch_page.escape(text)
  return (string_gsub(tostring(text), "[&<>\"']", html_escapes))
end

-- "a b&c" -> "a%20b%26c": a query value.
function watch_page.query_escape(text)
  return (string_gsub(tostring(text), "[^%w%-%._~]", function(c) return string_format("%%%02X", c:byte()) end))
end

-- The colour class of a row: ok, a failure, a transient failure, an error, not run yet.
local transient = {
  greylisted = true, rate_limited = true, server_busy = true, dns_failure = true, slow_server = true,
  dropped_before_banner = true, dropped_mid_session = true,
}
local function row_class(record)
  if not record then return "pending" end
  if record.result == "error" then return "error" end
  if record.success then return "ok" end
  if record.verdict and transient[record.verdict] then return "transient" end
  return "fail"
end

local function ago(seconds)
  if seconds < 60 then return string_format("%d s ago", seconds) end
  if seconds < 3600 then return string_format("%d min ago", seconds // 60) end
  return string_format("%.1f h ago", seconds / 3600)
end

local style = [[
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; }
table { border-collapse: collapse; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
td.verdict { font-weight: bold; }
tr.ok td.verdict { color: #1a7f37; }
tr.fail td.verdict { color: #cf222e; }
tr.transient td.verdict { color: #9a6700; }
tr.error td.verdict { color: #8250df; }
tr.pending td.verdict { color: #777; }
p.note { color: #555; font-size: 0.9em; }
]]

-- rows: {{target, probe, every, record (or nil)}}; now: Unix time.
function watch_page.status(rows, info)
  local out = {
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta http-equiv="refresh" content="10">',
    "<title>smtpsh watch</title>",
    "<style>" .. style .. "</style></head><body>",
    "<h1>smtpsh watch</h1>",
    string_format('<p class="note">%d targets; %d probes running; metrics at <a href="/metrics">/metrics</a>. ' ..
                  "Refreshes every 10 s.</p>", #rows, info.in_flight or 0),
    "<table><thead><tr><th>target</th><th>probe</th><th>verdict</th><th>summary</th><th>ran</th>" ..
      "<th>took</th><th>every</th><th></th></tr></thead><tbody>",
  }
  local now = info.now or os_time()
  for _, row in ipairs(rows) do
    local record = row.record
    local class = row_class(record)
    local verdict = record and (record.verdict or record.result) or "not run yet"
    local ran = record and string_format('<time datetime="%s">%s</time>',
      os_date("!%Y-%m-%dT%H:%M:%SZ", record.started), ago(now - record.started)) or ""
    local took = record and string_format("%.2f s", record.duration or 0) or ""
    local link = record and string_format('<a href="/last?target=%s&amp;probe=%s">last</a>',
      watch_page.query_escape(row.target), watch_page.query_escape(row.probe)) or ""
    out[#out + 1] = string_format(
      '<tr class="%s" data-target="%s"><td>%s</td><td>%s</td><td class="verdict">%s</td><td>%s</td>' ..
      "<td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>",
      class, watch_page.escape(row.target), watch_page.escape(row.target), watch_page.escape(row.probe),
      watch_page.escape(verdict), watch_page.escape(record and record.summary or ""), ran, took,
      row.every and string_format("%g s", row.every) or "on demand", link)
  end
  out[#out + 1] = "</tbody></table></body></html>"
  return table_concat(out, "\n") .. "\n"
end

-- /last as text: what a paged engineer reads first.
function watch_page.last_text(record)
  local lines = {
    string_format("target:  %s", tostring(record.target)),
    string_format("probe:   %s", tostring(record.probe)),
    string_format("ran:     %s (%.2f s)", os_date("!%Y-%m-%dT%H:%M:%SZ", record.started), record.duration or 0),
    string_format("result:  %s%s", tostring(record.result), record.verdict and (", verdict " .. record.verdict) or ""),
    string_format("summary: %s", tostring(record.summary)),
    "",
    tostring(record.text or ""),
  }
  return table_concat(lines, "\n") .. "\n"
end

-- /last as JSON.
function watch_page.last_json(record)
  return json.encode({
    target = record.target, probe = record.probe, started = record.started, duration = record.duration,
    success = record.success, result = record.result, verdict = record.verdict or json.null,
    stage = record.stage or json.null, summary = record.summary, error = record.error or json.null,
    steps = json.array(record.steps or {}), replies = json.array(record.replies or {}),
    tls = record.tls, transcript = json.array(record.transcript or {}), detail = record.detail or {},
  }) .. "\n"
end

return watch_page
