-- replay_show: a recording (record_file.parse) as text to read before running anything,
-- for `smtpsh replay --show FILE`: who recorded it, the command, the recipe's whole text and
-- arguments, the DNS questions answered, then each session's transcript with its timing and
-- TLS result. Pure: text in, text out.
--
--   replay_show.text(path, recording) -> text

local ipairs, tostring, type = ipairs, tostring, type
local string_format, string_gsub, table_concat = string.format, string.gsub, table.concat

local replay_show = {}

local qtype_names = { [1] = "A", [2] = "NS", [5] = "CNAME", [6] = "SOA", [12] = "PTR", [15] = "MX",
                      [16] = "TXT", [28] = "AAAA", [33] = "SRV", [43] = "DS", [46] = "RRSIG",
                      [48] = "DNSKEY", [52] = "TLSA", [257] = "CAA" }

-- A word of someone else's, shown so that no byte of it can move the terminal's cursor.
local function visible(text)
  return (string_gsub(tostring(text), "[%c\127]", function(c)
    return string_format("\\x%02x", c:byte())
  end))
end

-- A command line as a shell would take it back.
local function quoted(words)
  local out = {}
  for i, word in ipairs(words) do
    out[i] = word:match("^[%w@%%+=:,./_-]+$") and word or "'" .. string_gsub(word, "'", "'\\''") .. "'"
  end
  return visible(table_concat(out, " "))
end

local arrows = { C = "->", S = "<-", ["!"] = "==" }

function replay_show.text(path, recording)
  local out = {}
  local function say(...) out[#out + 1] = table_concat({ ... }) end
  local start = recording.start
  say("recording: ", visible(path))
  say("recorded by: smtpsh ", type(start.smtpsh) == "string" and visible(start.smtpsh) or "(not said)",
      ", recording format ", tostring(start.version or "?"))
  if math.type(start.time) == "integer" then
    say("recorded at: ", os.date("!%Y-%m-%d %H:%M:%S UTC", start.time),
        " (DNSSEC signatures are checked at this time on replay)")
  end
    say("command: smtpsh ", quoted(start.argv or {}))
  local recipe = recording.recipe
  if recipe then
    local lines = 0
    for _ in (recipe.source .. "\n"):gmatch("[^\n]*\n") do lines = lines + 1 end
    if recipe.source:sub(-1) == "\n" then lines = lines - 1 end
    say("recipe: ", visible(recipe.file), " (", lines, " lines), arguments: ",
        #recipe.args > 0 and quoted(recipe.args) or "(none)")
    say("---- ", visible(recipe.file), " ----")
    -- Line by line, each with its number, control bytes shown: the text is the author's.
    local number = 0
    for line in (recipe.source:sub(-1) == "\n" and recipe.source or recipe.source .. "\n"):gmatch("([^\n]*)\n") do
      number = number + 1
      say(string_format("%4d  %s", number, visible(line)))
    end
    say("---- end of ", visible(recipe.file), " ----")
  else
    say("recipe: none recorded (a built-in command, or a recording made before recipes were kept)")
  end
  for _, entry in ipairs(recording.values or {}) do
    say("generated: ", visible(entry.name), " = ", visible(entry.value))
  end
  say("DNS: ", #recording.answers, " answer(s)")
  for _, answer in ipairs(recording.answers) do
    say("  ", visible(answer.name), " ", qtype_names[answer.qtype] or "TYPE" .. answer.qtype,
        " (", #answer.wire // 2, " bytes)")
  end
  for _, session in ipairs(recording.order) do
    say("session ", session.id, ":")
    for _, e in ipairs(session.events) do
      say(string_format("  [%8.3f] %s %s", e.st, arrows[e.dir] or "??", visible(e.line)))
    end
    local tls = session.tls
    if tls then
      local leaf = type(tls.chain) == "table" and tls.chain[1] or {}
      say(string_format("  TLS: %s %s, certificate %s (sha256 %s, valid until %s), verify: %s",
        visible(tls.version or "?"), visible(tls.cipher or "?"), visible(leaf.subject or "?"),
        visible(leaf.sha256 or "?"), visible(leaf.not_after or "?"), visible(tls.verify_result or "?")))
    end
  end
  return table_concat(out, "\n") .. "\n"
end

return replay_show
