-- lazyabuse: what a plugin may do to the lazy tables (core/lua/lazy.c) that
-- it must not get away with: call the pairs iterator with a non-table
-- (a crash, or memory reads, when it did not check), get argument errors
-- from the raw accessors (they must name this file and line), and fill a
-- table with no memory left (it must stay whole: filled later, in full).
-- tests/integration/lua-lazy.test.mjs reads the log lines; the lines
-- marked "-- at:NAME" are those the messages must name.
local function report(k, v)
  hookgate.log.info("lazyabuse " .. k .. " " .. tostring(v))
end
local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local kd, kr = 0, 0
return {
  name = "lazyabuse",
  version = "1.0.0",
  transform = function(d)
    kd = kd + 1
    if kd == 1 then
      local f = pairs(d)
      f(0x41414141) -- at:iter-number
    elseif kd == 2 then
      local f = pairs(d)
      f("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") -- at:iter-string
    elseif kd == 3 then
      local _, e = pcall(function() return next(0) end) -- at:next
      report("next", e)
      _, e = pcall(function() return rawget(d) end) -- at:rawget
      report("rawget", e)
      _, e = pcall(function() return rawset(d, "x") end) -- at:rawset
      report("rawset", e)
      _, e = pcall(function() return rawlen(0) end) -- at:rawlen
      report("rawlen", e)
      _, e = pcall(function() return getmetatable() end) -- at:getmetatable
      report("getmetatable", e)
      _, e = pcall(function() return setmetatable(d, 0) end) -- at:setmetatable
      report("setmetatable", e)
      _, e = pcall(function() return rawset(hookgate, "x", 1) end) -- at:proxy
      report("proxy", e)
      report("intact", count(d) .. " " .. type(d.headers))
    elseif kd == 4 then
      -- No memory left for the run: the fill fails, and the table must
      -- stay lazy (not half filled); once the memory is back, it fills.
      local function read_body() return d.body end
      local hold = {}
      for i = 1, 1e6 do
        if not pcall(function() hold[#hold + 1] = string.rep("x", 1000) .. i end) then break end
      end
      local ok = pcall(read_body)
      hold = nil
      report("fill", tostring(ok) .. " " .. count(d) .. " " .. type(d.headers) .. " " .. #d.body .. " " .. d.attempt)
    end
  end,
  route = function(a)
    kr = kr + 1
    if kr == 1 then
      local _, e = pcall(function() local f = pairs(a); return f(0x41414141) end) -- at:route-iter
      report("route-iter", e)
      _, e = pcall(function() return next(a.targets, 0.5) end)
      report("route-next", e)
      report("route-intact", count(a) .. " " .. #a.targets .. " " .. a.event.type)
    end
  end,
}
