-- routepool: route runs for the test of pooled run threads
-- (tests/integration/lua-route-pool.test.mjs). event.data.mode says what the
-- run does before it drops the webhook event.data.drop from the targets;
-- every run records what it saw, and which earlier run last used its thread
-- (0: a thread no run used before). GET /routepool answers the records.
local seen = setmetatable({}, { __mode = "k" }) -- thread -> the run that last used it
local history = hookgate.json.array()
local n = 0

local function spin(seconds)
  local t0 = os.clock()
  while os.clock() - t0 < seconds do end
end

return {
  name = "routepool",
  version = "1.0.0",
  route = function(arg, conf, ...)
    local co = coroutine.running()
    n = n + 1
    local data = arg.event.data
    local rec = {
      run = n, mode = data.mode, event = arg.event.id, previous = seen[co] or 0,
      yieldable = coroutine.isyieldable(), extra = select("#", ...), conf = type(conf) == "table",
      type = arg.event.type, targets = #arg.targets,
    }
    seen[co] = n
    history[#history + 1] = rec
    if data.mode == "error" then error("routepool: deliberate error") end
    if data.mode == "errtable" then error({ code = 1 }) end
    if data.mode == "runaway" then while true do end end
    if data.mode == "sleep" then hookgate.sleep(0.05) end
    if data.mode == "longsleep" then hookgate.sleep(1) end
    if data.mode == "spin" then spin(0.03) end -- past cpu_slice: preempted on the way
    if data.mode == "meddle" then
      -- Try to drive every other run's thread this plugin has seen.
      rec.meddled = hookgate.json.array()
      for t in pairs(seen) do
        if t ~= co then
          local resumed, msg = coroutine.resume(t)
          local closed, cmsg = pcall(coroutine.close, t)
          rec.meddled[#rec.meddled + 1] = { resumed = resumed, msg = msg, closed = closed, closemsg = cmsg }
        end
      end
    end
    hookgate.sleep(0) -- I/O is allowed, whatever ran on this thread before
    rec.same = coroutine.running() == co
    local kept = hookgate.json.array()
    for _, id in ipairs(arg.targets) do
      if id ~= data.drop then kept[#kept + 1] = id end
    end
    arg.targets = kept
    rec.done = true
  end,
  routes = {
    { method = "GET", path = "/routepool", handler = function() return { body = { history = history } } end },
  },
}
