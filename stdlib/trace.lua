-- trace: the live trace on stderr (--trace, smtp.connect{trace = true}, dns.trace(true)).
--
-- The bindings emit one event per SMTP transcript line and per DNS answer to the state's trace
-- sink (smtpcore.trace_sink / dnscore.trace_sink, one per state); this module is the sink that
-- shows them, one line each, coloured when stderr is a terminal and NO_COLOR is unset:
--
--   [   0.012] -> EHLO probe.example        {source = "smtp", t = 0.012, dir = "C", line = ...}
--   [   0.015] <- 250-mx.example            dir "S": the server; "!": an event (connected, closed)
--   [     dns] == MX example.com: 2 records, 127.0.0.53:53
--                                           {source = "dns", dir = "==", line = ..., type, name,
--                                            records | rcode, cached, server, tcp, seconds}
--
--   trace.install(core)       -- smtp.lua and dns.lua do this when tracing is turned on
--   core.trace_sink(function(event) ... end)   -- a sink of one's own instead

local sys = require "smtpsh.sys"

local string_format, string_gsub, string_byte = string.format, string.gsub, string.byte
local io_stderr, os_getenv = io.stderr, os.getenv

local trace = {}

local arrows = { C = "->", S = "<-" }
local colours = { C = "\27[36m", S = "\27[32m", ["!"] = "\27[33m", dns = "\27[35m" }
local reset = "\27[0m"

-- Control bytes as \xNN: a hostile server's NUL, bare CR or escape sequence must neither cut
-- the line short on a terminal nor drive it.
local function visible(line)
  return (string_gsub(line, "[%z\1-\31\127]", function(c)
    return string_format("\\x%02x", string_byte(c))
  end))
end

-- The event as one line with its newline; `colour` wraps it in the escape of its direction.
function trace.render(event, colour)
  local text, start
  if event.source == "dns" then
    text, start = "[     dns] == " .. visible(event.line), colours.dns
  else
    text = string_format("[%8.3f] %s %s", event.t, arrows[event.dir] or "==", visible(event.line))
    start = colours[event.dir] or colours["!"]
  end
  if colour then return start .. text .. reset .. "\n" end
  return text .. "\n"
end

local colour  -- decided at the first event: stderr is a terminal and NO_COLOR is unset
function trace.write(event)
  if colour == nil then colour = os_getenv("NO_COLOR") == nil and sys.isatty("stderr") end
  io_stderr:write(trace.render(event, colour))
end

-- Makes trace.write the state's sink, unless a sink is installed already. `core` is
-- smtpsh.smtpcore or smtpsh.dnscore (they share the sink).
function trace.install(core)
  if core.trace_sink() == nil then core.trace_sink(trace.write) end
end

return trace
