-- stdlib/address.lua: address syntax (RFC 5321, RFC 6531), IDNA A-labels, roles, probes.
-- Every expected A-label was cross-checked with python3's codecs ('例子.广告'.encode('idna'),
-- 'なぜ...'.encode('punycode')).
local t = dofile("tests/lua/testing.lua")
local address = require "smtpsh.address"

local rep = string.rep

-- parse(text) must give these fields (those not listed must be absent or as the defaults).
local function valid(text, fields)
  local info, why = address.parse(text)
  t.ok(info, "refused " .. text .. ": " .. tostring(why))
  local expected = { input = text, local_utf8 = false, quoted = false }
  for k, v in pairs(fields) do expected[k] = v end
  t.eq(info, expected, text)
  -- parts, the form bulk verification uses, finds the same.
  t.eq({ address.parts(text) }, { expected.local_part, expected.ascii_domain, expected.literal }, "parts " .. text)
end

local function invalid(text, reason)
  local info, why = address.parse(text)
  t.eq(info, nil, text)
  t.eq(why, reason, text)
  t.eq({ address.parts(text) }, { nil, reason }, "parts " .. text)
end

t.test("plain addresses, +tags, case kept in the local part and folded in the domain", function()
  valid("john@example.com", { local_part = "john", domain = "example.com", ascii_domain = "example.com" })
  valid("John.Doe+newsletter@Mail.Example.COM", { local_part = "John.Doe+newsletter",
    domain = "Mail.Example.COM", ascii_domain = "mail.example.com" })
  valid("a!#$%&'*+-/=?^_`{|}~z@example.com", { local_part = "a!#$%&'*+-/=?^_`{|}~z",
    domain = "example.com", ascii_domain = "example.com" })
  valid("x@a-b.c0.example", { local_part = "x", domain = "a-b.c0.example", ascii_domain = "a-b.c0.example" })
  valid("1@123.example", { local_part = "1", domain = "123.example", ascii_domain = "123.example" })
end)

t.test("quoted local parts: spaces, escaped quotes, an @, dots that would be refused unquoted", function()
  valid('"john doe"@example.com', { local_part = '"john doe"', domain = "example.com",
    ascii_domain = "example.com", quoted = true })
  valid('"john \\"doe\\""@example.com', { local_part = '"john \\"doe\\""', domain = "example.com",
    ascii_domain = "example.com", quoted = true })
  valid('"john@doe"@example.com', { local_part = '"john@doe"', domain = "example.com",
    ascii_domain = "example.com", quoted = true })
  valid('"..john..doe."@example.com', { local_part = '"..john..doe."', domain = "example.com",
    ascii_domain = "example.com", quoted = true })
  valid('"back\\\\slash"@example.com', { local_part = '"back\\\\slash"', domain = "example.com",
    ascii_domain = "example.com", quoted = true })
  valid('"jörg smith"@example.com', { local_part = '"jörg smith"', domain = "example.com",
    ascii_domain = "example.com", quoted = true, local_utf8 = true })
  -- The grammar allows an empty Quoted-string.
  valid('""@example.com', { local_part = '""', domain = "example.com", ascii_domain = "example.com", quoted = true })
end)

t.test("broken quoting", function()
  invalid('"john@example.com', "unbalanced quotes in the local part")
  invalid('"john\\"@example.com', "unbalanced quotes in the local part")
  invalid('john"@example.com', "unbalanced quotes in the local part")
  invalid('john."doe"@example.com', "quotes around only part of the local part")
  invalid('"john"doe@example.com', "characters after the closing quote of the local part")
  invalid('"john"', "no @")
  invalid('"jörg\\ö"@example.com', "a backslash before a non-ASCII character in the local part")
end)

t.test("address literals: IPv4, IPv6, IPv6 with an IPv4 tail; bad ones", function()
  valid("user@[192.0.2.1]", { local_part = "user", domain = "[192.0.2.1]", ascii_domain = "[192.0.2.1]",
    literal = "192.0.2.1" })
  valid("user@[IPv6:2001:db8::1]", { local_part = "user", domain = "[IPv6:2001:db8::1]",
    ascii_domain = "[IPv6:2001:db8::1]", literal = "IPv6:2001:db8::1" })
  valid("user@[ipv6:::1]", { local_part = "user", domain = "[ipv6:::1]", ascii_domain = "[IPv6:::1]",
    literal = "IPv6:::1" })
  valid("user@[IPv6:1:2:3:4:5:6:7:8]", { local_part = "user", domain = "[IPv6:1:2:3:4:5:6:7:8]",
    ascii_domain = "[IPv6:1:2:3:4:5:6:7:8]", literal = "IPv6:1:2:3:4:5:6:7:8" })
  valid("user@[IPv6:::ffff:192.0.2.1]", { local_part = "user", domain = "[IPv6:::ffff:192.0.2.1]",
    ascii_domain = "[IPv6:::ffff:192.0.2.1]", literal = "IPv6:::ffff:192.0.2.1" })
  valid("user@[IPv6:1:2:3:4:5:6:192.0.2.1]", { local_part = "user", domain = "[IPv6:1:2:3:4:5:6:192.0.2.1]",
    ascii_domain = "[IPv6:1:2:3:4:5:6:192.0.2.1]", literal = "IPv6:1:2:3:4:5:6:192.0.2.1" })
  for _, bad in ipairs { "[300.1.1.1]", "[1.2.3]", "[1.2.3.4.5]", "[IPv6:zz::1]", "[IPv6:1::2::3]",
                         "[IPv6:1:2:3:4:5:6:7]", "[IPv6:12345::1]", "[2001:db8::1]", "[IPv6:::1.2.3.256]",
                         "[IPv6:1:2:3:4:5::1.2.3.4]", "[tag:content]", "[]", "[IPv6:1:::2]",
                         -- RFC 5321 is stricter than RFC 4291: "::" stands for two groups or more.
                         "[IPv6:1:2:3:4:5:6:7::]" } do
    invalid("user@" .. bad, "invalid IP literal")
  end
  invalid("user@[192.0.2.1", "an address literal without its closing ']'")
  invalid("user@[192.0.2.1]x", "text after the address literal's ']'")
  invalid("user@192.0.2.1", "an IP address as the domain (a literal is written [192.0.2.1])")
end)

t.test("local part length: 64 octets allowed, 65 not", function()
  valid(rep("a", 64) .. "@example.com", { local_part = rep("a", 64), domain = "example.com",
    ascii_domain = "example.com" })
  invalid(rep("a", 65) .. "@example.com", "local part longer than 64 octets")
  -- Octets, not characters: 32 two-octet letters are 64 octets, 33 are too many.
  t.ok(address.parse(rep("ü", 32) .. "@example.com"))
  invalid(rep("ü", 33) .. "@example.com", "local part longer than 64 octets")
  -- The quotes count.
  t.ok(address.parse('"' .. rep("a", 62) .. '"@example.com'))
  invalid('"' .. rep("a", 63) .. '"@example.com', "local part longer than 64 octets")
end)

t.test("labels: 63 octets allowed, 64 not; for a U-label its A-label counts", function()
  valid("a@" .. rep("b", 63) .. ".com", { local_part = "a", domain = rep("b", 63) .. ".com",
    ascii_domain = rep("b", 63) .. ".com" })
  invalid("a@" .. rep("b", 64) .. ".com", "label longer than 63 octets")
  -- "ü" and 55 a's: 57 octets, 63 as an A-label; one more a makes 64.
  valid("a@ü" .. rep("a", 55) .. ".de", { local_part = "a", domain = "ü" .. rep("a", 55) .. ".de",
    ascii_domain = "xn--" .. rep("a", 55) .. "-oxf.de" })
  invalid("a@ü" .. rep("a", 56) .. ".de", "label longer than 63 octets as an A-label")
  -- 22 CJK characters are 66 octets of UTF-8 but a short A-label.
  valid("a@" .. rep("例", 22) .. ".jp", { local_part = "a", domain = rep("例", 22) .. ".jp",
    ascii_domain = "xn--fsqaaaaaaaaaaaaaaaaaaaaa.jp" })
end)

t.test("domain length: 255 octets for the domain, 254 for the whole address", function()
  local d255 = rep("a", 63) .. "." .. rep("b", 63) .. "." .. rep("c", 63) .. "." .. rep("d", 63)
  local d256 = "e" .. d255
  t.eq(#d255, 255)
  -- The domain alone may have 255 octets...
  t.eq(address.to_ascii(d255), d255)
  t.eq({ address.to_ascii(d256) }, { nil, "domain longer than 255 octets" })
  invalid("a@" .. d256, "domain longer than 255 octets")
  -- ... but in an address the path limit (256 with its <>) comes first: at most 254 octets.
  invalid("a@" .. d255, "address longer than 254 octets (a path is at most 256 with its <>)")
  local d252 = string.sub(d255, 4)
  t.ok(address.parse("a@" .. d252), "254 octets")
  invalid("ab@" .. d252, "address longer than 254 octets (a path is at most 256 with its <>)")
  -- The A-label form counts too: 19 labels "üaaaa" are 6 octets each as written, 12 as the
  -- A-label xn--aaaa-zra.
  local labels = {}
  for i = 1, 19 do labels[i] = "üaaaa" end
  local idn = table.concat(labels, ".") .. ".de"
  t.eq(#idn, 135)
  t.eq(address.to_ascii(idn), string.rep("xn--aaaa-zra.", 19) .. "de")
  t.eq(#address.to_ascii(idn), 249)
  invalid("abcdefghijklmn@" .. idn, "address longer than 254 octets (a path is at most 256 with its <>)")
end)

t.test("internationalised addresses: UTF-8 local parts, U-labels to A-labels", function()
  valid("用户@例子.广告", { local_part = "用户", domain = "例子.广告", ascii_domain = "xn--fsqu00a.xn--4rr70v",
    local_utf8 = true })
  valid("info@bücher.example", { local_part = "info", domain = "bücher.example",
    ascii_domain = "xn--bcher-kva.example" })
  valid("a@例え.テスト", { local_part = "a", domain = "例え.テスト", ascii_domain = "xn--r8jz45g.xn--zckzah" })
  valid("δοκιμή@παράδειγμα.δοκιμή", { local_part = "δοκιμή", domain = "παράδειγμα.δοκιμή",
    ascii_domain = "xn--hxajbheg2az3al.xn--jxalpdlp", local_utf8 = true })
  -- Simple case folding before the encoding, as python's IDNA codec does.
  valid("Über@MÜNCHEN.DE", { local_part = "Über", domain = "MÜNCHEN.DE", ascii_domain = "xn--mnchen-3ya.de",
    local_utf8 = true })
  valid("x@ПРИМЕР.РФ", { local_part = "x", domain = "ПРИМЕР.РФ", ascii_domain = "xn--e1afmkfd.xn--p1ai" })
  valid("x@ŻÓŁĆ.PL", { local_part = "x", domain = "ŻÓŁĆ.PL", ascii_domain = "xn--kda4b0koi.pl" })
  -- An A-label as written is kept as it is.
  valid("x@XN--Bcher-kva.example", { local_part = "x", domain = "XN--Bcher-kva.example",
    ascii_domain = "xn--bcher-kva.example" })
  t.eq({ address.to_ascii("Bücher.Example") }, { "xn--bcher-kva.example" })
end)

t.test("invalid UTF-8 and invisible characters", function()
  invalid("user\xff@example.com", "invalid UTF-8 at byte 5")
  invalid("user@exa\xc3mple.com", "invalid UTF-8 at byte 9")
  invalid("\xc0\xafuser@example.com", "invalid UTF-8 at byte 1") -- overlong "/"
  invalid("user@\xed\xa0\x80.example", "invalid UTF-8 at byte 6") -- a surrogate
  invalid("user@example.com\u{A0}", "an invisible or space character (U+00A0) outside quotes")
  invalid("\u{FEFF}user@example.com", "an invisible or space character (U+FEFF) outside quotes")
  invalid("us\u{200B}er@example.com", "an invisible or space character (U+200B) outside quotes")
  invalid("a@例え。テスト", "a full stop other than '.' (U+3002) in the domain")
end)

t.test("CR, LF, NUL and other controls, anywhere, even quoted", function()
  invalid("user@example.com\r\n", "a control character (CR) in the address")
  invalid("user\n@example.com", "a control character (LF) in the address")
  invalid("us\0er@example.com", "a control character (NUL) in the address")
  invalid('"a\tb"@example.com', "a control character (TAB) in the address")
  invalid('"a\rb"@example.com', "a control character (CR) in the address")
  invalid("user@example.com\x7f", "a control character (DEL) in the address")
  invalid("user@exa\x1bmple.com", "a control character (\\x1B) in the address")
  invalid("user@exa\u{85}mple.com", "a control character (U+0085) in the address")
end)

t.test("dots, spaces, @ signs", function()
  invalid(".john@example.com", "a dot at the start of the local part")
  invalid("john.@example.com", "a dot at the end of the local part")
  invalid("john..doe@example.com", "two dots in a row in the local part")
  invalid("john@.example.com", "a dot at the start of the domain")
  invalid("john@example.com.", "a dot at the end of the domain")
  invalid("john@example..com", "empty label in the domain")
  invalid("john.example.com", "no @")
  invalid("", "empty address")
  invalid("john@doe@example.com", "two @ outside quotes")
  invalid("@example.com", "empty local part")
  invalid("john@", "empty domain")
  invalid("john@example.com ", "a space outside quotes")
  invalid(" john@example.com", "a space outside quotes")
  invalid("john doe@example.com", "a space outside quotes")
  invalid("john@exa mple.com", "a space outside quotes")
end)

t.test("characters and shapes a domain may not have", function()
  invalid("john(comment)@example.com", "invalid character '(' in the local part")
  invalid("<john@example.com>", "invalid character '<' in the local part")
  invalid("john,doe@example.com", "invalid character ',' in the local part")
  invalid("john@exa_mple.com", "invalid character '_' in the domain")
  invalid("john@bü_cher.de", "invalid character '_' in the domain")
  invalid("john@-example.com", "a label starts or ends with a hyphen")
  invalid("john@example-.com", "a label starts or ends with a hyphen")
  invalid("john@-bücher.de", "a label starts or ends with a hyphen")
  invalid("john@localhost", "the domain has no dot")
  invalid("用户@例子", "the domain has no dot")
  invalid("john@example.123", "the top-level domain is all digits")
end)

t.test("to_ascii: the domain checks alone", function()
  t.eq({ address.to_ascii("例子.广告") }, { "xn--fsqu00a.xn--4rr70v" })
  t.eq({ address.to_ascii("[IPv6:2001:DB8::1]") }, { "[IPv6:2001:DB8::1]", "IPv6:2001:DB8::1" })
  t.eq({ address.to_ascii("a@b.example") }, { nil, "invalid character '@' in the domain" })
  t.eq({ address.to_ascii("example.com\r") }, { nil, "a control character (CR) in the domain" })
  t.eq({ address.to_ascii("exa\xffmple.com") }, { nil, "invalid UTF-8 at byte 4" })
  t.raises(function() address.to_ascii(nil) end, "domain must be a string")
end)

t.test("punycode: RFC 3492 7.1 samples", function()
  local samples = {
    -- (A) Arabic (Egyptian)
    { "\u{644}\u{64A}\u{647}\u{645}\u{627}\u{628}\u{62A}\u{643}\u{644}\u{645}\u{648}\u{634}\u{639}"
      .. "\u{631}\u{628}\u{64A}\u{61F}", "egbpdaj6bu4bxfgehfvwxn" },
    { "他们为什么不说中文", "ihqwcrb4cv8a8dqg056pqjye" },                     -- (B) Chinese (simplified)
    { "他們爲什麽不說中文", "ihqwctvzc91f659drss3x8bo0yb" },                  -- (C) Chinese (traditional)
    { "Pročprostěnemluvíčesky", "Proprostnemluvesky-uyb24dma41a" },          -- (D) Czech
    { "なぜみんな日本語を話してくれないのか", "n8jok5ay5dzabd5bym9f0cm5685rrjetr6pdxa" }, -- (G) Japanese
    -- (I) Russian: the RFC's "D" is a case annotation, which an encoder need not reproduce.
    { "почемужеонинеговорятпорусски", "b1abfaaepdrnnbgefbadotcwatmq2g4l" },
    { "PorquénopuedensimplementehablarenEspañol", "PorqunopuedensimplementehablarenEspaol-fmd56a" }, -- (J)
    { "3年B組金八先生", "3B-ww4c5e180e575a65lsy2b" },                           -- (L)
    { "安室奈美恵-with-SUPER-MONKEYS", "-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n" }, -- (M)
    { "Hello-Another-Way-それぞれの場所", "Hello-Another-Way--fc4qua05auwb3674vfr0b" }, -- (N)
    { "ひとつ屋根の下2", "2-u9tlzr9756bt3uc0v" },                               -- (O)
    { "MajiでKoiする5秒前", "MajiKoi5-783gue6qz075azm5e" },                     -- (P)
    { "パフィーdeルンバ", "de-jg4avhby1noc0d" },                                -- (Q)
    { "そのスピードで", "d9juau41awczczp" },                                    -- (R)
    { "-> $1.00 <-", "-> $1.00 <--" },                                           -- (S)
  }
  for _, sample in ipairs(samples) do
    t.eq(address.punycode(sample[1]), sample[2], sample[1])
  end
  t.eq(address.punycode("bücher"), "bcher-kva")
  t.eq(address.punycode(""), "")
  t.eq({ address.punycode("\xff") }, { nil, "invalid UTF-8 at byte 1" })
end)

t.test("roles: case-insensitive, +tags and quotes ignored, spellings of noreply", function()
  local cases = {
    { "postmaster", "postmaster" }, { "Postmaster", "postmaster" }, { "ABUSE+reports", "abuse" },
    { "no-reply", "noreply" }, { "NoReply", "noreply" }, { "do-not-reply", "noreply" },
    { "mailer-daemon", "mailer-daemon" }, { "MAILER-DAEMON", "mailer-daemon" }, { '"info"', "info" },
    { "hr", "hr" }, { "webmaster+x+y", "webmaster" }, { "administrator", "administrator" },
    { "newsletter", "newsletter" }, { "careers", "careers" }, { "root", "root" }, { "hello", "hello" },
    { "john", nil }, { "information", nil }, { "info.de", nil }, { "+info", nil }, { "", nil },
  }
  for _, case in ipairs(cases) do
    t.eq(address.role(case[1]), case[2], case[1])
  end
  -- The local part parse gives is what role takes.
  t.eq(address.role(address.parse("Support+Ticket-42@example.com").local_part), "support")
  t.raises(function() address.role(nil) end, "local_part must be a string")
end)

t.test("random local parts: 16 to 24 letters and digits that parse and name no role", function()
  math.randomseed(42)
  local seen = {}
  for _ = 1, 200 do
    local s = address.random_local()
    t.ok(#s >= 16 and #s <= 24, s)
    t.ok(s:find("^[a-z][a-z0-9]+$"), s)
    t.ok(address.parse(s .. "@example.com"), s)
    t.eq(address.role(s), nil, s)
    t.eq(seen[s], nil, "repeated " .. s)
    seen[s] = true
  end
  t.eq(#address.random_local(16), 16)
  t.eq(#address.random_local(24), 24)
  t.raises(function() address.random_local(15) end, "n must be a whole number from 16 to 24")
  t.raises(function() address.random_local(20.5) end, "n must be a whole number from 16 to 24")
  t.raises(function() address.random_local("20") end, "n must be a whole number from 16 to 24")
end)

t.test("a value that is not a string is a bug, raised", function()
  t.raises(function() address.parse(nil) end, "text must be a string, got nil")
  t.raises(function() address.parse({}) end, "text must be a string, got table")
  t.raises(function() address.punycode(1) end, "text must be a string")
end)

t.run()
