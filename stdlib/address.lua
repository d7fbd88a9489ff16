-- address: the syntax of an email address as SMTP carries it (RFC 5321 4.1.2, with RFC 6531's
-- UTF-8), checked with no I/O at all, so that `smtpsh verify` never takes an invalid address to
-- DNS or to a server.
--
--   local address = require "smtpsh.address"
--   address.parse("Jörg+news@Bücher.Example")
--     -> {input = "Jörg+news@Bücher.Example", local_part = "Jörg+news",
--         domain = "Bücher.Example", ascii_domain = "xn--bcher-kva.example",
--         local_utf8 = true, quoted = false}
--   address.parse("john..doe@example.com")   -> nil, "two dots in a row in the local part"
--   address.role("Postmaster+bounces")        -> "postmaster"
--
-- address.parse(text) -> info | nil, reason
--   info = {input = text, local_part, domain, ascii_domain, local_utf8, quoted, literal}
--     local_part    as written, quotes and backslashes included ("\"john doe\"")
--     domain        as written ("Bücher.Example", "[192.0.2.1]")
--     ascii_domain  what DNS is asked: each label lower-cased, a non-ASCII one as its IDNA
--                   A-label ("xn--bcher-kva.example"); for an address literal, the literal in
--                   brackets with its tag spelt "IPv6" ("[IPv6:2001:db8::1]")
--     local_utf8    true when the local part has non-ASCII characters: the address can only go
--                   to a server that offers SMTPUTF8 (RFC 6531)
--     quoted        true for a Quoted-string local part
--     literal       "192.0.2.1" or "IPv6:2001:db8::1" for an address literal, else nil
--   reason is one short sentence naming the first thing wrong, from the left: "no @",
--   "a space outside quotes", "local part longer than 64 octets", "the domain has no dot", ...
--   text must be a string (anything else raises: a bug, not a bad address). Nothing is
--   trimmed: " a@example.com" is refused, the caller trims its input lines.
--
-- What is accepted:
--   local part  a Dot-string (atoms of letters, digits and !#$%&'*+-/=?^_`{|}~ joined by
--               single dots) or a Quoted-string ("..." of printable ASCII, space included, and
--               \x quoted pairs); RFC 6531 adds any non-ASCII character to both. At most 64
--               octets as written.
--   domain      labels of letters, digits and inner hyphens, at least two of them, the last not
--               all digits (RFC 3696 2), each at most 63 octets as an A-label, the whole at most
--               255 octets both as written and in A-labels; or an address literal [IPv4] or
--               [IPv6:...] (RFC 5321 4.1.3).
--   the whole   at most 254 octets (RFC 5321 4.5.3.1.3: a path is at most 256 octets with its
--               angle brackets, RFC 5321 erratum 1690), both as written and in A-labels.
--   Never: a control character (C0, DEL, C1) anywhere, invalid UTF-8, a non-ASCII space or
--   invisible format character (U+00A0, U+200B, U+FEFF, ...) outside quotes.
--
-- address.to_ascii(domain) -> ascii_domain, literal | nil, reason: the domain checks alone.
-- address.punycode(text) -> the RFC 3492 encoding of a UTF-8 string (no "xn--", no case
--   mapping: "bücher" -> "bcher-kva") | nil, reason for invalid UTF-8.
-- address.role(local_part) -> the role it names ("postmaster", "abuse", "noreply", ...) or nil:
--   case-insensitive, a +tag ignored, quotes of a quoted local part removed; "no-reply",
--   "donotreply" and the like are all "noreply".
-- address.random_local([n]) -> n (16..24, default random in that range) lower-case letters and
--   digits, the first a letter, from math.random: a mailbox that should not exist, for telling
--   a catch-all domain (RCPT accepted for anything) from one that checks its mailboxes.

local type, error, tostring, ipairs = type, error, tostring, ipairs
local string_byte, string_sub, string_find, string_match, string_lower, string_format,
      string_char, string_gmatch, string_gsub =
  string.byte, string.sub, string.find, string.match, string.lower, string.format,
  string.char, string.gmatch, string.gsub
local table_concat = table.concat
local utf8_len, utf8_codes = utf8.len, utf8.codes
local math_random, math_maxinteger = math.random, math.maxinteger

local address = {}

local MAX_LOCAL, MAX_DOMAIN, MAX_LABEL, MAX_ADDRESS = 64, 255, 63, 254

-- Checks ----------------------------------------------------------------------------------

local control_names = { [0] = "NUL", [9] = "TAB", [10] = "LF", [13] = "CR", [127] = "DEL" }

local function is_alnum(c)
  return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122)
end

-- RFC 5322 atext beyond letters and digits.
local atext = {}
for i = 1, #"!#$%&'*+-/=?^_`{|}~" do atext[string_byte("!#$%&'*+-/=?^_`{|}~", i)] = true end

-- Spaces and invisible format characters. RFC 6531 lets any non-ASCII character through, but
-- in a list of addresses these are copy-paste debris (a no-break space from a web page, a byte
-- order mark, a zero-width space): refused outside quotes like the ASCII space, so that such a
-- line is never looked up. ZWNJ and ZWJ (U+200C, U+200D) stay: some scripts need them.
local function invisible(c)
  return c == 0xA0 or c == 0xAD or c == 0x1680 or (c >= 0x2000 and c <= 0x200B)
    or c == 0x200E or c == 0x200F or (c >= 0x2028 and c <= 0x202F)
    or (c >= 0x205F and c <= 0x2064) or c == 0x3000 or c == 0xFEFF
end

local function invisible_reason(c)
  return string_format("an invisible or space character (U+%04X) outside quotes", c)
end

-- A printable ASCII character that is not allowed where it is; a space gets the sentence
-- people recognise.
local function char_reason(c, where)
  if c == 32 then return "a space outside quotes" end
  return "invalid character '" .. string_char(c) .. "' in the " .. where
end

-- What is wrong with the text as a whole, before it is taken apart: control characters (never
-- allowed by RFC 5321, not even quoted, and a CR or LF would end the SMTP command early) and
-- invalid UTF-8 (utf8.len is strict: no overlong forms, no surrogates, nothing past U+10FFFF).
local function check_text(text)
  local bad = string_find(text, "[\0-\31\127]")
  if bad then
    local b = string_byte(text, bad)
    return "a control character (" .. (control_names[b] or string_format("\\x%02X", b))
      .. ") in the address"
  end
  if not string_find(text, "[\128-\255]") then return nil end
  local length, at = utf8_len(text)
  if not length then return "invalid UTF-8 at byte " .. at end
  for _, c in utf8_codes(text) do
    -- C1 controls: UTF-8 encoded, as invisible and as dangerous as the C0 ones (RFC 5198).
    if c >= 0x80 and c <= 0x9F then
      return string_format("a control character (U+%04X) in the address", c)
    end
  end
  return nil
end

-- The index of the closing quote of the Quoted-string that starts text, or nil, reason.
-- qtextSMTP is printable ASCII but " and \ (plus UTF-8 for RFC 6531); quoted-pairSMTP is \ and
-- one printable ASCII character (RFC 6531 does not extend it). Controls are already refused.
local function quoted_end(text)
  local i, n = 2, #text
  while i <= n do
    local b = string_byte(text, i)
    if b == 34 then return i end
    if b == 92 then
      local escaped = string_byte(text, i + 1)
      if escaped == nil then break end
      if escaped > 126 then
        return nil, "a backslash before a non-ASCII character in the local part"
      end
      i = i + 2
    else
      i = i + 1
    end
  end
  return nil, "unbalanced quotes in the local part"
end

-- A Dot-string local part: -> local_utf8 | nil, reason.
local function check_dot_string(s)
  if s == "" then return nil, "empty local part" end
  -- The common case, plain ASCII atext with single inner dots, in three pattern searches
  -- (bulk verification parses every address; the loop below is for the rest).
  if not string_find(s, "[^%w!#%$%%&'%*%+/=%?%^_`{|}~%.%-]") and string_byte(s, 1) ~= 46
     and string_byte(s, -1) ~= 46 and not string_find(s, "..", 1, true) then
    return false
  end
  local utf, after_dot = false, false
  for p, c in utf8_codes(s) do
    if c == 46 then
      if p == 1 then return nil, "a dot at the start of the local part" end
      if after_dot then return nil, "two dots in a row in the local part" end
      after_dot = true
    else
      after_dot = false
      if c >= 128 then
        if invisible(c) then return nil, invisible_reason(c) end
        utf = true
      elseif c == 34 then
        -- RFC 5322's obsolete "john".doe is not in RFC 5321: only a whole local part is quoted.
        local _, quotes = string_gsub(s, '"', "")
        if quotes % 2 == 1 then return nil, "unbalanced quotes in the local part" end
        return nil, "quotes around only part of the local part"
      elseif not (is_alnum(c) or atext[c]) then
        return nil, char_reason(c, "local part")
      end
    end
  end
  if after_dot then return nil, "a dot at the end of the local part" end
  return utf
end

-- Address literals (RFC 5321 4.1.3) ---------------------------------------------------------

local OCTET = "([0-9][0-9]?[0-9]?)"
local IPV4 = "^" .. OCTET .. "%." .. OCTET .. "%." .. OCTET .. "%." .. OCTET .. "$"

local function ipv4(s)
  local a, b, c, d = string_match(s, IPV4)
  if not a then return false end
  return a + 0 <= 255 and b + 0 <= 255 and c + 0 <= 255 and d + 0 <= 255
end

-- How many IPv6-hex groups a ":"-separated list holds ("" holds none), or nil when one is not
-- 1 to 4 hex digits.
local function hex_groups(s)
  if s == "" then return 0 end
  local count = 0
  for group in string_gmatch(s .. ":", "([^:]*):") do
    if not string_find(group, "^[0-9A-Fa-f][0-9A-Fa-f]?[0-9A-Fa-f]?[0-9A-Fa-f]?$") then
      return nil
    end
    count = count + 1
  end
  return count
end

-- RFC 5321's IPv6-addr: eight groups, or fewer with one "::" standing for at least two zero
-- groups (so at most six others: stricter than RFC 4291, which lets "::" stand for one), the
-- last two groups optionally written as an IPv4 address.
local function ipv6(s)
  local groups, head = 8, s
  if string_find(s, ".", 1, true) then
    local prefix, quad = string_match(s, "^(.*:)([^:]*)$")
    if not prefix or not ipv4(quad) then return false end
    groups = 6
    -- "::1.2.3.4" keeps its "::"; "1:2:3:4:5:6:1.2.3.4" loses the ":" before the quad.
    head = string_sub(prefix, -2) == "::" and prefix or string_sub(prefix, 1, -2)
  end
  local first, last = string_find(head, "::", 1, true)
  if not first then return hex_groups(head) == groups end
  if string_find(head, "::", first + 1, true) then return false end
  local left = hex_groups(string_sub(head, 1, first - 1))
  local right = hex_groups(string_sub(head, last + 1))
  return left ~= nil and right ~= nil and left + right <= groups - 2
end

-- "[...]" -> ascii form, literal | nil, reason.
local function check_literal(d)
  local close = string_find(d, "]", 2, true)
  if not close then return nil, "an address literal without its closing ']'" end
  if close ~= #d then return nil, "text after the address literal's ']'" end
  local inner = string_sub(d, 2, -2)
  if ipv4(inner) then return d, inner end
  -- The tag is case-insensitive like every ABNF string; any tag but IPv6 is unregistered.
  local tag, rest = string_match(inner, "^([^:]*):(.*)$")
  if tag and string_lower(tag) == "ipv6" and ipv6(rest) then
    local literal = "IPv6:" .. rest
    return "[" .. literal .. "]", literal
  end
  return nil, "invalid IP literal"
end

-- IDNA and Punycode --------------------------------------------------------------------------

-- Punycode's parameters (RFC 3492 5).
local BASE, TMIN, TMAX, SKEW, DAMP, INITIAL_BIAS, INITIAL_N = 36, 1, 26, 38, 700, 72, 128

-- RFC 3492 6.1.
local function adapt(delta, numpoints, first)
  delta = first and delta // DAMP or delta // 2
  delta = delta + delta // numpoints
  local k = 0
  while delta > ((BASE - TMIN) * TMAX) // 2 do
    delta = delta // (BASE - TMIN)
    k = k + BASE
  end
  return k + ((BASE - TMIN + 1) * delta) // (delta + SKEW)
end

-- A digit 0..35 as its character: 0..25 are a..z, 26..35 are 0..9.
local function digit(d)
  return string_char(d < 26 and 97 + d or 22 + d)
end

-- RFC 3492 6.3 on a list of code points. Lua's 64-bit integers cannot overflow here: delta
-- grows by at most 0x10FFFF times the input length per code point.
local function encode(cps)
  local out, len = {}, #cps
  for i = 1, len do
    if cps[i] < 128 then out[#out + 1] = string_char(cps[i]) end
  end
  local basic = #out
  local handled = basic
  if basic > 0 then out[#out + 1] = "-" end
  local n, delta, bias = INITIAL_N, 0, INITIAL_BIAS
  while handled < len do
    local m = math_maxinteger
    for i = 1, len do
      local c = cps[i]
      if c >= n and c < m then m = c end
    end
    delta = delta + (m - n) * (handled + 1)
    n = m
    for i = 1, len do
      local c = cps[i]
      if c < n then
        delta = delta + 1
      elseif c == n then
        local q, k = delta, BASE
        while true do
          local t = k <= bias and TMIN or (k >= bias + TMAX and TMAX or k - bias)
          if q < t then break end
          out[#out + 1] = digit(t + (q - t) % (BASE - t))
          q = (q - t) // (BASE - t)
          k = k + BASE
        end
        out[#out + 1] = digit(q)
        bias = adapt(delta, handled + 1, handled == basic)
        delta = 0
        handled = handled + 1
      end
    end
    delta = delta + 1
    n = n + 1
  end
  return table_concat(out)
end

-- Upper case to lower case where it is a plain offset or an even/odd pair: ASCII, Latin-1,
-- Latin Extended-A, basic Greek and Cyrillic, so that "BÜCHER.DE" and "bücher.de" ask DNS the
-- same name. This is not IDNA2008's mapping (UTS 46): no other scripts' case, no NFC
-- normalization, no width mapping; nor is IDNA2008's validation done (RFC 5892 code point
-- classes, bidi and contextual rules). A name that passes here may still be one no registry
-- allows: it then does not resolve, which the verifier reports in its own words.
local function fold(c)
  if c < 128 then return (c >= 65 and c <= 90) and c + 32 or c end
  if c >= 0xC0 and c <= 0xDE and c ~= 0xD7 then return c + 32 end
  if c >= 0x100 and c <= 0x17F then
    -- İ, ı, ĸ, ŉ and ſ have no simple partner; Ÿ's is in Latin-1.
    if c == 0x130 or c == 0x131 or c == 0x138 or c == 0x149 or c == 0x17F then return c end
    if c == 0x178 then return 0xFF end
    if (c >= 0x139 and c <= 0x148) or c >= 0x179 then return c % 2 == 1 and c + 1 or c end
    return c % 2 == 0 and c + 1 or c
  end
  if (c >= 0x391 and c <= 0x3AB and c ~= 0x3A2) or (c >= 0x410 and c <= 0x42F) then
    return c + 32
  end
  if c >= 0x400 and c <= 0x40F then return c + 80 end
  return c
end

-- One label of a domain name -> its ASCII form | nil, reason.
local function check_label(label)
  if label == "" then return nil, "empty label in the domain" end
  if not string_find(label, "[\128-\255]") then
    if #label > MAX_LABEL then return nil, "label longer than 63 octets" end
    local bad = string_find(label, "[^A-Za-z0-9-]")
    if bad then return nil, char_reason(string_byte(label, bad), "domain") end
    if string_byte(label, 1) == 45 or string_byte(label, -1) == 45 then
      return nil, "a label starts or ends with a hyphen"
    end
    return string_lower(label)
  end
  local cps = {}
  for _, c in utf8_codes(label) do
    c = fold(c)
    if c < 128 then
      if not (is_alnum(c) or c == 45) then return nil, char_reason(c, "domain") end
    elseif invisible(c) then
      return nil, invisible_reason(c)
    elseif c == 0x3002 or c == 0xFF0E or c == 0xFF61 then
      -- Dots that UTS 46 would map to ".": here they would be hidden inside one A-label.
      return nil, string_format("a full stop other than '.' (U+%04X) in the domain", c)
    end
    cps[#cps + 1] = c
  end
  if cps[1] == 45 or cps[#cps] == 45 then return nil, "a label starts or ends with a hyphen" end
  local a_label = "xn--" .. encode(cps)
  if #a_label > MAX_LABEL then return nil, "label longer than 63 octets as an A-label" end
  return a_label
end

-- A domain (text already checked by check_text) -> ascii_domain, literal | nil, reason.
local function check_domain(d)
  if d == "" then return nil, "empty domain" end
  if #d > MAX_DOMAIN then return nil, "domain longer than 255 octets" end
  if string_byte(d, 1) == 91 then return check_literal(d) end
  if string_byte(d, 1) == 46 then return nil, "a dot at the start of the domain" end
  if string_byte(d, -1) == 46 then return nil, "a dot at the end of the domain" end
  local labels = {}
  for label in string_gmatch(d .. ".", "([^.]*)%.") do
    local ascii, why = check_label(label)
    if not ascii then return nil, why end
    labels[#labels + 1] = ascii
  end
  -- A single label is a host on a local network at best, never a public mail domain.
  if #labels < 2 then return nil, "the domain has no dot" end
  if not string_find(labels[#labels], "[^0-9]") then
    if ipv4(d) then return nil, "an IP address as the domain (a literal is written [192.0.2.1])" end
    return nil, "the top-level domain is all digits"
  end
  local ascii = table_concat(labels, ".")
  if #ascii > MAX_DOMAIN then return nil, "domain longer than 255 octets as A-labels" end
  return ascii
end

-- A list of addresses shares few domains: each one is checked (and converted to A-labels) once.
-- Bounded, so a stream of distinct domains cannot grow it without end.
local domain_cache, domain_cache_size, DOMAIN_CACHE_MOST = {}, 0, 4096

local function checked_domain(d)
  local hit = domain_cache[d]
  if hit then return hit[1], hit[2] end
  local ascii, other = check_domain(d)
  if domain_cache_size >= DOMAIN_CACHE_MOST then domain_cache, domain_cache_size = {}, 0 end
  domain_cache[d], domain_cache_size = { ascii, other }, domain_cache_size + 1
  return ascii, other
end

-- An atom's first character, then atext and dots; @; then letters, digits, dots and hyphens.
local PLAIN_ADDRESS = "^([%w!#%$%%&'%*%+/=%?%^_`{|}~%-][%w!#%$%%&'%*%+/=%?%^_`{|}~%.%-]*)@([%w%.%-]+)$"

-- The API ---------------------------------------------------------------------------------------

-- The common case in one pattern: a plain ASCII Dot-string at a name of letters, digits, dots
-- and hyphens (bulk verification parses every address). -> local_part, domain, ascii_domain, or
-- nothing when the general way must decide (and name what is wrong).
local function plain(text)
  local local_part, domain = string_match(text, PLAIN_ADDRESS)
  if local_part and #text <= MAX_ADDRESS and #local_part <= MAX_LOCAL and string_byte(local_part, -1) ~= 46
     and not string_find(local_part, "..", 1, true) then
    local ascii_domain = checked_domain(domain)
    if ascii_domain then return local_part, domain, ascii_domain end
  end
end

function address.parse(text)
  if type(text) ~= "string" then
    error("address.parse: text must be a string, got " .. type(text), 2)
  end
  if text == "" then return nil, "empty address" end
  local plain_local, plain_domain, plain_ascii = plain(text)
  if plain_local then
    return { input = text, local_part = plain_local, domain = plain_domain, ascii_domain = plain_ascii,
             local_utf8 = false, quoted = false }
  end
  local problem = check_text(text)
  if problem then return nil, problem end

  local local_part, domain, quoted, local_utf8
  if string_byte(text, 1) == 34 then
    local close, why = quoted_end(text)
    if not close then return nil, why end
    local after = string_byte(text, close + 1)
    if after ~= 64 then
      if after and string_find(text, "@", close + 1, true) then
        return nil, "characters after the closing quote of the local part"
      end
      return nil, "no @"
    end
    local_part, domain, quoted = string_sub(text, 1, close), string_sub(text, close + 2), true
    local_utf8 = string_find(local_part, "[\128-\255]") ~= nil
  else
    local at = string_find(text, "@", 1, true)
    if not at then return nil, "no @" end
    local_part, domain, quoted = string_sub(text, 1, at - 1), string_sub(text, at + 1), false
    local why
    local_utf8, why = check_dot_string(local_part)
    if local_utf8 == nil then return nil, why end
  end
  if #local_part > MAX_LOCAL then return nil, "local part longer than 64 octets" end

  if string_find(domain, "@", 1, true) then return nil, "two @ outside quotes" end
  local ascii_domain, literal = checked_domain(domain)
  if not ascii_domain then return nil, literal end
  -- Either form may be the one sent (U-labels to an SMTPUTF8 server, A-labels otherwise).
  local longest = #ascii_domain > #domain and #ascii_domain or #domain
  if #local_part + 1 + longest > MAX_ADDRESS then
    return nil, "address longer than 254 octets (a path is at most 256 with its <>)"
  end
  return { input = text, local_part = local_part, domain = domain, ascii_domain = ascii_domain,
           local_utf8 = local_utf8, quoted = quoted, literal = literal }
end

-- address.parts(text) -> local_part, ascii_domain, literal | nil, reason: what parse finds, as
-- values rather than a table (bulk verification asks this of every address).
function address.parts(text)
  if type(text) ~= "string" then
    error("address.parts: text must be a string, got " .. type(text), 2)
  end
  local plain_local, _, plain_ascii = plain(text)
  if plain_local then return plain_local, plain_ascii end
  local info, why = address.parse(text)
  if not info then return nil, why end
  return info.local_part, info.ascii_domain, info.literal
end

function address.to_ascii(domain)
  if type(domain) ~= "string" then
    error("address.to_ascii: domain must be a string, got " .. type(domain), 2)
  end
  local problem = check_text(domain)
  if problem then return nil, (string_gsub(problem, "in the address$", "in the domain")) end
  if string_find(domain, "@", 1, true) then return nil, char_reason(64, "domain") end
  return check_domain(domain)
end

function address.punycode(text)
  if type(text) ~= "string" then
    error("address.punycode: text must be a string, got " .. type(text), 2)
  end
  local length, at = utf8_len(text)
  if not length then return nil, "invalid UTF-8 at byte " .. at end
  local cps = {}
  for _, c in utf8_codes(text) do cps[#cps + 1] = c end
  return encode(cps)
end

local roles = {}
for _, name in ipairs {
  "postmaster", "abuse", "hostmaster", "webmaster", "admin", "administrator", "info", "sales",
  "support", "contact", "noreply", "marketing", "billing", "help", "office", "team", "hello",
  "security", "privacy", "jobs", "careers", "hr", "press", "media", "newsletter", "root", "mail",
  "mailer-daemon",
} do
  roles[name] = name
end
for _, spelling in ipairs { "no-reply", "no_reply", "donotreply", "do-not-reply",
                            "do_not_reply" } do
  roles[spelling] = "noreply"
end

function address.role(local_part)
  if type(local_part) ~= "string" then
    error("address.role: local_part must be a string, got " .. type(local_part), 2)
  end
  local name = local_part
  local inner = string_match(name, '^"(.*)"$')
  if inner then name = string_gsub(inner, "\\(.)", "%1") end
  -- postmaster+bounces is still the postmaster (RFC 5233 subaddressing).
  name = string_match(name, "^[^+]*")
  return roles[string_lower(name)]
end

local LETTERS, ALNUM = "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz0123456789"

function address.random_local(n)
  if n == nil then
    n = math_random(16, 24)
  elseif type(n) ~= "number" or n % 1 ~= 0 or n < 16 or n > 24 then
    error("address.random_local: n must be a whole number from 16 to 24, got " .. tostring(n), 2)
  end
  -- Lower case and a letter first, the shape of an ordinary mailbox name: the probe should be
  -- refused for not existing, not for its looks.
  local i = math_random(1, 26)
  local out = { string_sub(LETTERS, i, i) }
  for k = 2, n do
    i = math_random(1, 36)
    out[k] = string_sub(ALNUM, i, i)
  end
  return table_concat(out)
end

return address
