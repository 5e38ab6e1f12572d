-- lazyprobe: the delivery table of transform and the argument of route are
-- filled on first use (core/lua/lazy.c). Each call k looks at its table
-- first through probe k only, and logs what it saw; one call keeps its
-- table untouched and the next reads it, after its phase ended.
-- tests/integration/lua-lazy.test.mjs reads the log lines.
local json = hookgate.json
local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end
local function report(phase, k, v)
  hookgate.log.info("lazyprobe " .. phase .. " " .. k .. " " .. tostring(v))
end

local delivery_probes = {
  function(d) return next(d) ~= nil end,
  function(d) return rawget(d, "eventType") end,
  function(d) local t = json.decode(json.encode(d)); return type(t.body) == "string" and t.attempt == 1 end,
  function(d) return count(d) end,
  function(d) return getmetatable(d) == nil and d.url ~= nil end,
  function(d) setmetatable(d, {}); return rawget(d, "id") ~= nil end,
}
local route_probes = {
  function(a) return next(a) ~= nil end,
  function(a) local t = rawget(a, "targets"); return type(t) == "table" and #t end,
  function(a) local t = json.decode(json.encode(a)); return t.event.type .. " " .. #t.targets end,
  function(a) return count(a) end,
  function(a) return a.event.data.n end,
  function(a) a.targets = a.targets; return rawlen(a.targets) end,
}

local kd, kr = 0, 0
local kept_delivery, kept_arg
return {
  name = "lazyprobe",
  version = "1.0.0",
  transform = function(d)
    kd = kd + 1
    if kd <= #delivery_probes then
      report("transform", kd, delivery_probes[kd](d))
    elseif kd == #delivery_probes + 1 then
      kept_delivery = d -- untouched
    elseif kd == #delivery_probes + 2 then
      report("transform", "kept", kept_delivery.eventType .. " " .. json.decode(kept_delivery.body).data.n)
    elseif kd == #delivery_probes + 3 then
      kept_delivery = d -- untouched, and the phase fails
      error("lazyprobe fails here")
    elseif kd == #delivery_probes + 4 then
      report("transform", "kept-failed", json.decode(kept_delivery.body).data.n .. " " .. kept_delivery.attempt)
    end
  end,
  route = function(arg)
    kr = kr + 1
    if kr <= #route_probes then
      report("route", kr, route_probes[kr](arg))
    elseif kr == #route_probes + 1 then
      kept_arg = arg -- untouched
    elseif kr == #route_probes + 2 then
      report("route", "kept", kept_arg.event.data.n .. " " .. kept_arg.event.type .. " " .. #kept_arg.targets)
    end
  end,
}
