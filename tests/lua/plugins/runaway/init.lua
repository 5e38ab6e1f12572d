-- runaway: misbehaving routes for the sandbox and limit tests.
local json = hookgate.json

local function nested_failure(n)
  if n == 0 then error("deliberate failure in a nested call") end
  return nested_failure(n - 1) + 1
end

local routes = {
  ["/runaway/ok"] = function() return { body = "ok" } end,
  ["/runaway/loop"] = function() while true do end end,
  -- Tries to outlive the CPU budget by catching its error.
  ["/runaway/pcall-loop"] = function()
    while true do pcall(function() while true do end end) end
  end,
  ["/runaway/pcall-coroutine"] = function()
    while true do pcall(coroutine.wrap(function() while true do pcall(function() while true do end end) end end)) end
  end,
  ["/runaway/pcall-sort"] = function()
    table.sort({ 3, 2, 1, 5, 4 }, function() while true do pcall(function() while true do end end) end end)
  end,
  ["/runaway/memory"] = function()
    local t = {}
    for i = 1, 1e9 do t[i] = string.rep("x", 1 << 20) .. i end
  end,
  -- Grows a little per step, yielding in between.
  ["/runaway/memory-slow"] = function()
    local hold = {}
    for i = 1, 1e6 do
      hold[i] = string.rep("y", 1 << 20) .. i
      hookgate.sleep(0)
    end
  end,
  ["/runaway/error"] = function() return nested_failure(3) end,
  ["/runaway/global"] = function() leaked_global = 1; return { body = "assigned" } end,
  ["/runaway/read-global"] = function() return { body = { value = tostring(undeclared_thing) } } end,
  ["/runaway/sandbox"] = function()
    local probe = {}
    local function t(name, v) probe[name] = type(v) end
    t("io", io); t("debug", debug); t("package", package); t("require", require)
    t("loadstring", loadstring); t("dofile", dofile); t("loadfile", loadfile)
    t("collectgarbage", collectgarbage); t("string.dump", string.dump)
    t("os.execute", os.execute); t("os.exit", os.exit); t("os.getenv", os.getenv)
    t("os.remove", os.remove); t("os.rename", os.rename); t("os.tmpname", os.tmpname)
    t("os.time", os.time); t("os.clock", os.clock); t("os.date", os.date); t("os.difftime", os.difftime)
    t("load", load)
    -- Bytecode: a precompiled chunk's signature, and string.dump's output if reachable.
    local f, err = load("\27Lua\84\0\25\147\13\10\26\10", "=bytecode")
    probe.load_bytecode = f == nil and tostring(err) or "loaded"
    local sm = getmetatable("")
    probe.string_metatable = type(sm)
    local dump = ("").dump
    probe.string_method_dump = type(dump)
    if dump then
      local ok, bc = pcall(dump, function() return 1 end)
      if ok then
        local g, gerr = load(bc, "=dumped")
        probe.load_dumped = g == nil and tostring(gerr) or "loaded"
      end
    end
    probe.global_G = _G == nil and "nil" or (_G.hookgate and "plugin env" or "?")
    return { body = probe }
  end,
}

local list = {}
for path, handler in pairs(routes) do list[#list + 1] = { method = "GET", path = path, handler = handler } end

return {
  name = "runaway",
  version = "0.0.1",
  priority = -5,
  routes = list,
}
