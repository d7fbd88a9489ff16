-- The layers point down only (ARCHITECTURE.md, "Layers"), checked on the sources themselves:
-- shell -> bindings -> engine, no cycle between engine folders, and subcommands that use the
-- stdlib's public modules, never the *core binding modules or a session's engine object.
-- Run from the repository root (ctest does).
local t = dofile("tests/lua/testing.lua")

local function files(pattern)
  local list = {}
  local pipe = assert(io.popen("find engine bindings shell scripts stdlib -type f | sort"))
  for path in pipe:lines() do
    if path:find(pattern) then list[#list + 1] = path end
  end
  pipe:close()
  return list
end

local function read(path)
  local file = assert(io.open(path))
  local text = file:read("a")
  file:close()
  return text
end

-- Every "engine/x/..." include of a C++ file: { {from = path, to = "engine/net/..."}, ... }
local function includes()
  local out = {}
  for _, path in ipairs(files("%.[ch]pp$")) do
    for target in read(path):gmatch('#include "([^"]+)"') do out[#out + 1] = { from = path, to = target } end
  end
  return out
end

local function folder(path) return path:match("^(engine/[^/]+)/") or path:match("^([^/]+)/") end

t.test("the sources are found", function()
  t.ok(#files("%.[ch]pp$") > 50, "C++ files")
  t.ok(#files("^scripts/.*%.lua$") > 5, "scripts")
end)

t.test("the engine includes neither bindings nor shell; bindings do not include shell", function()
  for _, inc in ipairs(includes()) do
    local from, to = folder(inc.from), folder(inc.to)
    if from:find("^engine") then
      t.ok(to:find("^engine") or not inc.to:find("/"), inc.from .. " includes " .. inc.to)
    elseif from == "bindings" then
      t.ok(to ~= "shell", inc.from .. " includes " .. inc.to)
    end
  end
end)

t.test("no include cycle between engine folders", function()
  local edges = {}
  for _, inc in ipairs(includes()) do
    local from, to = folder(inc.from), folder(inc.to)
    if from:find("^engine/") and to and to:find("^engine/") and from ~= to then
      edges[from] = edges[from] or {}
      edges[from][to] = inc.from .. " includes " .. inc.to
    end
  end
  -- A path back from `to` to `from` closes a cycle.
  local function reaches(start, goal, seen)
    if start == goal then return true end
    if seen[start] then return false end
    seen[start] = true
    for next_folder in pairs(edges[start] or {}) do
      if reaches(next_folder, goal, seen) then return true end
    end
    return false
  end
  for from, targets in pairs(edges) do
    for to, why in pairs(targets) do
      t.ok(not reaches(to, from, {}), "cycle: " .. why .. ", and " .. to .. " leads back to " .. from)
    end
  end
end)

t.test("subcommands use the public stdlib, not the *core modules or s.core", function()
  for _, path in ipairs(files("^scripts/.*%.lua$")) do
    local text = read(path)
    t.ok(not text:find('smtpsh%.%a+core'), path .. " requires a *core binding module")
    t.ok(not text:find('[%w_]%.core[:.]'), path .. " reaches into a session's engine object (.core)")
  end
end)

t.run()
