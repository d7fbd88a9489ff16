-- server_command: how the scenario server (smtpsh.server) reads one command line, apart from
-- the network, so that it can be tested and fuzzed on its own (tests/fuzz/fuzz_server_command.cpp).
--
--   server_command.parse(line)  -> VERB, argument | nil, reply
--
-- The line comes from conn:receive("l"): without its CRLF, at most the engine's line limit
-- (64 KiB), any bytes at all. The verb is the run of ASCII letters that starts the line,
-- upper-cased; one whitespace character after it is skipped and the rest, whatever bytes it
-- holds, is the argument ("" when there is none). A line that does not start with a letter
-- (empty, a space, a digit, a control or non-ASCII byte) has no verb: nil and the reply to
-- send, server_command.unrecognized. The server answers a verb it does not know with that
-- reply too (after the on_command handler).
--
--   server_command.parse("mail FROM:<a@b>")  -> "MAIL", "FROM:<a@b>"
--   server_command.parse("QUIT")             -> "QUIT", ""
--   server_command.parse(" NOOP")            -> nil, "502 5.5.2 Error: command not recognized"

local string_match, string_upper = string.match, string.upper

local server_command = {}

server_command.unrecognized = "502 5.5.2 Error: command not recognized"

function server_command.parse(line)
  -- Explicit classes rather than %a and %s: the same bytes whatever the C locale says.
  local verb, arg = string_match(line, "^([A-Za-z]+)[ \t\n\v\f\r]?(.*)$")
  if not verb then return nil, server_command.unrecognized end
  return string_upper(verb), arg
end

return server_command
