-- raw: type SMTP lines to a server and see its replies, like telnet, but nothing you type is
-- swallowed as a command of the tool (unlike `openssl s_client`, where a line starting with R
-- renegotiates). `:quit` leaves. The session is the transcript-keeping smtp session.
--
-- usage:  smtpsh raw HOST[:PORT] [--implicit] [--ca-file FILE] [--timeout SECONDS]
--                   [--resolver ADDR[:PORT]] [--trace]
-- TLS:    typing STARTTLS switches the connection to TLS after the server's 220; --implicit
--         speaks TLS from the first byte (port 465)
-- input:  SMTP lines on stdin (a terminal or a pipe); after DATA's 354, message lines until "."
-- live:   on a terminal, what the server sends on its own (a 421 on an idle timeout, the
--         connection closing) shows at once above the prompt; line editing and history as in
--         the REPL. Ctrl-D or :quit leaves; Ctrl-C interrupts (a wait for a reply, or the
--         prompt) and leaves
-- exit:   0 when the session ran, 1 when it could not connect, 2 on bad usage

local cli = require "smtpsh.cli"

local usage = [==[usage: smtpsh raw HOST[:PORT] [OPTIONS]
  SMTP lines from stdin to the server, replies as they come; typing STARTTLS switches to TLS
  after a 220. :quit leaves. Exit 0 the session ran, 1 no connection, 2 bad usage.]==]
local options, words = cli.parse({ ... }, {
  name = "raw", usage = usage, min = 1, max = 1, missing = "missing HOST[:PORT]; see --help",
  summary = "type SMTP lines, see the replies; STARTTLS really switches to TLS",
  options = {
    implicit = { "flag", help = "TLS from the first byte (port 465 unless given)" },
    ["ca-file"] = { "string", arg = "FILE", default = "the system's CAs",
                    help = "CA certificates (PEM) the server's chain is verified against" },
    timeout = { default = 30, help = "the deadline of each step" },
  },
  common = { "timeout", "resolver", "trace", "record" },
  example = "printf 'EHLO me\\nQUIT\\n' | smtpsh raw mx.example.com",
})
cli.apply_resolver(options, "raw")
local target, timeout = words[1], options.timeout or 30
cli.target("raw", target, options.implicit and 465 or 25)

local raw = require "smtpsh.raw"
local ok, err = raw.run(target, { timeout = timeout, input = io.stdin, output = io.stdout, live = true,
                                  implicit = options.implicit, tls = { ca_file = options["ca-file"] } })
if not ok then
  io.stderr:write("smtpsh raw: ", cli.error_message(err), "\n")
  os.exit(1)
end
