-- report: checklists for people. A check is {name, status = "ok"|"warn"|"fail"|"skip",
-- detail}; a report prints one line per check, coloured on a terminal, and a summary.
--
--   local checks = report.checklist()
--   checks:add("mx", "ok", "3 hosts")
--   io.write(report.render(checks, {colour = true}))
--   checks:worst()  -> "fail" | "warn" | "ok"

local setmetatable, ipairs, tostring, error = setmetatable, ipairs, tostring, error
local string_format, string_rep, string_gsub, string_byte, table_concat =
  string.format, string.rep, string.gsub, string.byte, table.concat

local report = {}

local colours = { ok = "\27[32m", warn = "\27[33m", fail = "\27[31m", skip = "\27[2m" }
local reset = "\27[0m"
local rank = { skip = 0, ok = 1, warn = 2, fail = 3 }
report.rank = rank

-- `text` with its control bytes (a server's NUL, bare CR, escape sequences) shown as \xNN:
-- what a peer sent must neither cut a line short nor drive the terminal. Tabs stay.
function report.visible(text)
  return (string_gsub(tostring(text), "[%z\1-\8\10-\31\127]", function(c)
    return string_format("\\x%02x", string_byte(c))
  end))
end

-- "1 retry", "2 retries": a count with its noun.
function report.plural(count, one, many)
  return count .. " " .. (count == 1 and one or (many or one .. "s"))
end

-- A certificate's time left: "1 day left", "30 days left", or "expired 3 days ago".
function report.days_left(days)
  if days < 0 then return "expired " .. report.plural(-days, "day") .. " ago" end
  return report.plural(days, "day") .. " left"
end

local Checklist = {}
-- Its objects' metatable is a table of its own: with Checklist.__index = Checklist,
-- obj.__index would hand a sandboxed recipe the class itself, writable.
local checklist_meta = { __index = Checklist }

function report.checklist()
  return setmetatable({}, checklist_meta)
end

function Checklist:add(name, status, detail)
  if not rank[status] then error("report: status must be ok, warn, fail or skip, got " .. tostring(status), 2) end
  local check = { name = name, status = status, detail = detail or "" }
  self[#self + 1] = check
  return check
end

-- The worst status of all checks ("ok" when there are none or only skips).
function Checklist:worst()
  local worst = "ok"
  for _, check in ipairs(self) do
    if rank[check.status] > rank[worst] then worst = check.status end
  end
  return worst
end

function Checklist:count(status)
  local n = 0
  for _, check in ipairs(self) do if check.status == status then n = n + 1 end end
  return n
end

-- A plain list of checks, for JSON.
function Checklist:list()
  local out = {}
  for i, check in ipairs(self) do out[i] = { name = check.name, status = check.status, detail = check.detail } end
  return out
end

local function label(status, colour)
  local text = string_format("%-4s", status)
  if colour then return colours[status] .. text .. reset end
  return text
end

-- One line per check: status, name padded to the longest, detail.
function report.render(checks, options)
  local colour = options and options.colour
  local width = 0
  for _, check in ipairs(checks) do if #check.name > width then width = #check.name end end
  width = width > 32 and 32 or width
  local lines = {}
  for _, check in ipairs(checks) do
    local pad = width - #check.name
    lines[#lines + 1] = string_format("  %s  %s%s  %s", label(check.status, colour), check.name,
      pad > 0 and string_rep(" ", pad) or "", report.visible(check.detail))
  end
  return table_concat(lines, "\n") .. (#lines > 0 and "\n" or "")
end

-- "2 problems, 1 warning" or "healthy".
function report.summary(checks)
  local fails, warns = 0, 0
  for _, check in ipairs(checks) do
    if check.status == "fail" then fails = fails + 1 elseif check.status == "warn" then warns = warns + 1 end
  end
  if fails == 0 and warns == 0 then return "healthy" end
  local parts = {}
  if fails > 0 then parts[#parts + 1] = fails .. (fails == 1 and " problem" or " problems") end
  if warns > 0 then parts[#parts + 1] = warns .. (warns == 1 and " warning" or " warnings") end
  return table_concat(parts, ", ")
end

return report
