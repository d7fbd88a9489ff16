#include "shell/cli.hpp"

namespace smtpsh::shell {

namespace {
bool looks_like_file(const std::string& word) {
  return word.find('/') != std::string::npos ||
         (word.size() > 4 && word.compare(word.size() - 4, 4, ".lua") == 0);
}
}  // namespace

std::string usage_text() {
  return "usage: smtpsh [options] [FILE.lua | COMMAND] [ARGS...]\n"
         "\n"
         "  smtpsh                     interactive REPL (Lua 5.4 with task, net, smtp, dns, "
         "server)\n"
         "  smtpsh FILE.lua [ARGS...]  run a script; ARGS are in `arg` and `...`\n"
         "  smtpsh COMMAND [ARGS...]   run the subcommand scripts/COMMAND.lua\n"
         "  smtpsh -                   run standard input as a script\n"
         "\n"
         "options:\n"
         "  -e CODE      run CODE (may be repeated)\n"
         "  -i           enter the REPL after running the script or -e chunks\n"
         "  --demo       start an in-process demo SMTP server on loopback, then the REPL\n"
         "  --trace      SMTP sessions and DNS answers print live on stderr\n"
         "  --record F   write every DNS answer and SMTP line to F (JSON Lines; smtpsh replay F)\n"
         "  --sandbox    run FILE.lua without trusting it (limits: smtpsh sandbox --help)\n"
         "  --help       show this help\n"
         "  --version    show the version\n"
         "\n"
         "commands built in (each has --help):\n"
         "  diagnose TARGET...   name the cause of a failed delivery, with evidence\n"
         "  explain [TEXT]       a bounce or a log line: what it means, and whether it happens "
         "now\n"
         "  verify ADDRESS...    check addresses in bulk: safe, risky, invalid or unknown\n"
         "  dns DOMAIN           MX, addresses, PTR, TLSA, SPF, DMARC, MTA-STS checked\n"
         "  blacklist IP         DNSBL listings\n"
         "  tls HOST[:PORT]      TLS versions, ciphers, certificate, verification, DANE\n"
         "  banner HOST[:PORT]   the greeting and its timing\n"
         "  raw HOST[:PORT]      type SMTP lines; STARTTLS really switches to TLS\n"
         "  send --server ...    one transaction, swaks-style\n"
         "  serve SCENARIO       a scenario server (greylist, rate_limit, tls_old, ...)\n"
         "  replay FILE.jsonl    a recorded probe served offline and run again\n"
         "  watch TARGET...      probe on a schedule; Prometheus metrics and a status page\n"
         "  sandbox FILE.lua     run a Lua file one did not write, with limits\n"
         "\n"
         "Lua files are found in each directory of SMTPSH_PATH (colon separated), then in\n"
         "~/.config/smtpsh, then in the copies built into smtpsh: DIR/scripts/NAME.lua for\n"
         "subcommands, DIR/stdlib/NAME.lua for require \"smtpsh.NAME\".\n"
         "Exit status: 0 success, 1 a script error, 2 bad usage.\n";
}

namespace {
// A word as typed, for an error message of one line: control bytes (a newline typed as $'\n')
// are shown as \xNN.
std::string visible(const std::string& word) {
  std::string out;
  for (char c : word) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[byte >> 4];
      out += hex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace

Invocation parse_command_line(const std::vector<std::string>& argv, bool stdin_is_terminal) {
  Invocation result;
  auto fail = [&](std::string message) {
    result.mode = Invocation::Mode::usage_error;
    result.error = std::move(message);
    return result;
  };
  std::size_t i = 1;
  for (; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    if (word == "--") {
      ++i;
      break;
    }
    if (word == "-" || word.empty() || word[0] != '-') break;
    if (word == "-e") {
      if (i + 1 >= argv.size()) return fail("option '-e' needs an argument: smtpsh -e CODE");
      result.chunks.push_back(argv[++i]);
    } else if (word == "-i") {
      result.interactive = true;
    } else if (word == "--demo") {
      result.demo = true;
    } else if (word == "--trace") {
      result.trace = true;
    } else if (word == "--record") {
      if (i + 1 >= argv.size())
        return fail("option '--record' needs a file: smtpsh --record FILE.jsonl ...");
      result.record = argv[++i];
    } else if (word == "--sandbox") {
      result.sandbox = true;
    } else if (word == "--max-memory" || word == "--max-instructions" || word == "--max-cpu" ||
               word == "--max-time" || word == "--max-tasks" || word == "--max-connections" ||
               word == "--max-open" || word == "--allow" || word == "--allow-port" ||
               word == "--resolver") {
      if (i + 1 >= argv.size())
        return fail("option '" + word + "' needs a value; see 'smtpsh sandbox --help'");
      result.sandbox_options.push_back(word);
      result.sandbox_options.push_back(argv[++i]);
    } else if (word == "--allow-any-host") {
      result.sandbox_options.push_back(word);
    } else if (word == "--help" || word == "-h") {
      result.mode = Invocation::Mode::help;
      return result;
    } else if (word == "--version" || word == "-v") {
      result.mode = Invocation::Mode::version;
      return result;
    } else {
      return fail("unknown option '" + visible(word) + "'; see 'smtpsh --help'");
    }
  }

  if (!result.sandbox_options.empty() && !result.sandbox)
    return fail("option '" + result.sandbox_options.front() +
                "' is a limit of --sandbox: add --sandbox");
  if (i < argv.size()) {
    const std::string& word = argv[i];
    result.script_index = static_cast<int>(i);
    result.args.assign(argv.begin() + static_cast<std::ptrdiff_t>(i) + 1, argv.end());
    if (word == "-") {
      result.mode = Invocation::Mode::stdin_script;
    } else {
      result.target = word;
      result.mode = looks_like_file(word) ? Invocation::Mode::script : Invocation::Mode::command;
    }
    if (result.sandbox) {
      if (result.mode != Invocation::Mode::script)
        return fail("--sandbox runs a FILE.lua: smtpsh --sandbox FILE.lua [ARGS...]");
      // The sandbox subcommand (scripts/sandbox.lua) runs it: smtpsh sandbox LIMITS -- FILE ARGS.
      std::vector<std::string> args = result.sandbox_options;
      args.emplace_back("--");
      args.push_back(result.target);
      args.insert(args.end(), result.args.begin(), result.args.end());
      result.args = std::move(args);
      result.target = "sandbox";
      result.mode = Invocation::Mode::command;
    }
    return result;
  }
  if (result.sandbox) return fail("--sandbox runs a FILE.lua: smtpsh --sandbox FILE.lua [ARGS...]");
  if (!result.chunks.empty()) {
    result.mode = Invocation::Mode::chunks;
  } else if (result.demo || result.interactive || stdin_is_terminal) {
    result.mode = Invocation::Mode::repl;
  } else {
    result.mode = Invocation::Mode::stdin_script;
  }
  return result;
}

}  // namespace smtpsh::shell
