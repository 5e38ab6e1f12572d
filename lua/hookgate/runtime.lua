-- hookgate.runtime: loads plugins, binds them, and runs a phase through
-- every bound plugin. This file runs with the full standard library; the
-- plugins it loads do not: each gets a sandboxed environment of its own.
--
-- The C side (core/lua/runtime.c) passes `host` when it loads this file:
--   host.hookgate   the `hookgate` module plugins see
--   host.SENTINEL   what async primitives yield (see coroutine wrappers)
--   host.schema     hookgate.schema
--   host.json_array_mt, host.json_null
--   host.lib_path   lua.lib_path: the folder holding hookgate/*.lua
--   host.lazy_env   next, rawget, ... for plugins, lazy-table aware (core/lua/lazy.c)

local host = ...
local schema = host.schema
local SENTINEL = host.SENTINEL

-- Every string shares one metatable whose __index is the real string
-- library: without this, ("").dump reached string.dump, and
-- getmetatable("").__index let one plugin replace string methods for all
-- the others (and for this file). Remove dump and hide the metatable.
string.dump = nil
getmetatable("").__metatable = false

local R = {
  plugins = {},        -- name -> plugin module
  global = {},         -- ordered list of { plugin =, conf = } bound in the config file
  routes = {},         -- "METHOD /path" -> { plugin =, handler =, conf = }
  timers = {},         -- list of { plugin =, every =, at =, handler =, conf = }
  webhook_cache = {},  -- bindings JSON text -> merged ordered list
  webhook_cache_n = 0,
}

R.PHASES = { "ingest", "route", "transform", "sign", "deliver", "retry", "after" }
local PHASE_SET = {}
for _, p in ipairs(R.PHASES) do PHASE_SET[p] = true end

-- Every key a plugin's table may have (docs/lua-api.md, "The plugin
-- module"), in the order the load error lists them. Anything else is a
-- load error: a misspelled `transfrom` would otherwise be a phase that
-- silently never runs.
R.PLUGIN_KEYS = { "name", "version", "priority", "schema", "check" }
for _, p in ipairs(R.PHASES) do R.PLUGIN_KEYS[#R.PLUGIN_KEYS + 1] = p end
R.PLUGIN_KEYS[#R.PLUGIN_KEYS + 1] = "routes"
R.PLUGIN_KEYS[#R.PLUGIN_KEYS + 1] = "timers"
local PLUGIN_KEY_SET = {}
for _, k in ipairs(R.PLUGIN_KEYS) do PLUGIN_KEY_SET[k] = true end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- Coroutines whose bodies may call async primitives: a primitive yields
-- SENTINEL; the wrapped resume passes that yield up to the run's own
-- coroutine (which the C scheduler resumes when the I/O completes) and
-- hands the results back down.
local co_resume, co_yield, co_status = coroutine.resume, coroutine.yield, coroutine.status
-- The coroutines the runtime runs hooks, routes and timers on (the C side
-- adds each as it creates it; they are pooled and reused). A plugin may
-- hold one (coroutine.running()) but must not drive it: resuming or
-- closing one would break another event's run.
R.run_threads = setmetatable({}, { __mode = "k" })
local run_threads = R.run_threads
local function resume(co, ...)
  if run_threads[co] then return false, "cannot resume a coroutine hookgate runs a plugin on" end
  local r = table.pack(co_resume(co, ...))
  while r[1] and r[2] == SENTINEL and co_status(co) == "suspended" do
    r = table.pack(co_resume(co, co_yield(SENTINEL)))
  end
  return table.unpack(r, 1, r.n)
end
local function wrap(f)
  local co = coroutine.create(f)
  return function(...)
    local r = table.pack(resume(co, ...))
    if not r[1] then error(r[2], 2) end
    return table.unpack(r, 2, r.n)
  end
end
local sandbox_coroutine = {
  create = coroutine.create, resume = resume, wrap = wrap, yield = co_yield, status = co_status,
  isyieldable = coroutine.isyieldable, running = coroutine.running,
  close = function(co)
    if run_threads[co] then error("cannot close a coroutine hookgate runs a plugin on", 2) end
    return coroutine.close(co)
  end,
}

-- Plugins share one `hookgate` module: each sees it through read-only
-- proxies, so one plugin cannot replace a function under another.
local readonly_cache = setmetatable({}, { __mode = "k" })
local readonly_proxies = setmetatable({}, { __mode = "k" })
local function readonly(t)
  if type(t) ~= "table" then return t end
  if readonly_cache[t] then return readonly_cache[t] end
  local proxy = setmetatable({}, {
    __index = function(_, k) return readonly(t[k]) end,
    __newindex = function(_, k)
      error("hookgate." .. tostring(k) .. " is read-only (the hookgate module is shared by every plugin)", 2)
    end,
    __pairs = function() return function(_, k) local nk, v = next(t, k); return nk, readonly(v) end, nil, nil end,
    __metatable = false,
  })
  readonly_cache[t] = proxy
  readonly_proxies[proxy] = true
  return proxy
end
local hookgate_ro = readonly(host.hookgate)

-- Lua runs an xpcall message handler with hooks off when the error came
-- from a hook (the CPU budget's): a handler that loops could not be
-- stopped. Plugins get an xpcall whose handler runs after the protected
-- call has unwound, as an ordinary call, under the budget like any code.
-- (The handler sees the error value, not the stack where it was raised.)
local function safe_xpcall(f, msgh, ...)
  if msgh == nil then error("bad argument #2 to 'xpcall' (value expected)", 2) end
  local r = table.pack(pcall(f, ...))
  if r[1] then return table.unpack(r, 1, r.n) end
  return false, msgh(r[2])
end

-- next, rawget, rawset, rawlen, getmetatable and setmetatable of plugins:
-- the base library's, in C (core/lua/lazy.c), which first fill the lazy
-- delivery table of transform and sign and the argument of route, so that
-- a plugin sees what it would in a table built in full. rawset refuses
-- the read-only proxies above (rawset would write into a proxy itself,
-- shared by every plugin, where __newindex cannot stop it: one plugin
-- could then hand the others its own hookgate.crypto.hmac_sha256 and read
-- their secrets), and setmetatable __gc metamethods (a finalizer runs with
-- hooks off, whenever the collector decides: in another plugin's run,
-- unbounded). In C, errors name the plugin's line, not this file's.
local env_raw = host.lazy_env(readonly_proxies)

-- The environment of one plugin.
function R.new_env(name)
  local string_lib = copy(string)
  string_lib.dump = nil
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = env_raw.next, pairs = pairs, pcall = pcall,
    select = select, tonumber = tonumber, tostring = tostring, type = type, xpcall = safe_xpcall,
    rawequal = rawequal, rawget = env_raw.rawget, rawlen = env_raw.rawlen, rawset = env_raw.rawset,
    setmetatable = env_raw.setmetatable, getmetatable = env_raw.getmetatable, _VERSION = _VERSION,
    string = string_lib, table = copy(table), math = copy(math), utf8 = copy(utf8),
    os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime },
    coroutine = copy(sandbox_coroutine),
    hookgate = hookgate_ro,
  }
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    host.hookgate.log.info(table.concat(parts, " ", 1, parts.n))
  end
  -- Text chunks only, in this environment unless told otherwise, named
  -- under the plugin's name (a chunk cannot pass for hookgate's own).
  env.load = function(chunk, chunkname, _, e)
    return load(chunk, "=" .. name .. ":" .. (type(chunkname) == "string" and chunkname:gsub("^[@=]", "") or "load"),
      "t", e or env)
  end
  env._G = env
  return setmetatable(env, {
    __newindex = function(_, k)
      error("assignment to undeclared global '" .. tostring(k) .. "' in plugin " .. name ..
        " (declare it local)", 2)
    end,
  })
end

-- Libraries bundled plugins share, seen as hookgate.NAME: lib_path's
-- hookgate/NAME.lua. Our code, but code that plugins call: each runs in a
-- sandboxed environment of its own, as a plugin does, so its work counts
-- against the calling run's budget like the plugin's own.
R.LIBRARIES = { "source" }
for _, name in ipairs(R.LIBRARIES) do
  local path = host.lib_path .. "/hookgate/" .. name .. ".lua"
  local f = assert(io.open(path, "rb"))
  local src = f:read("a")
  f:close()
  local chunk = assert(load(src, "@hookgate/" .. name .. ".lua", "t", R.new_env("hookgate." .. name)))
  local lib = chunk()
  if type(lib) ~= "table" then error(path .. ": must return a table", 0) end
  host.hookgate[name] = lib
end

local function by_priority(a, b)
  local pa, pb = a.plugin.priority or 0, b.plugin.priority or 0
  if pa ~= pb then return pa > pb end
  return a.plugin.name < b.plugin.name
end

-- The edit distance between a and b, counting a swap of two neighbouring
-- characters as one edit ("transfrom" is 1 from "transform").
local function distance(a, b)
  local prev2, prev, cur = {}, {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local d = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        d = math.min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
    end
    prev2, prev, cur = prev, cur, prev2
  end
  return prev[#b]
end

-- The known plugin key closest to k when it is close enough to be a typo
-- (one edit for short keys, two for longer ones; case ignored), else nil.
local function closest_key(k)
  local low = k:lower()
  local best, best_d
  for _, known in ipairs(R.PLUGIN_KEYS) do
    local d = distance(low, known)
    if d <= (#known <= 5 and 1 or 2) and (best_d == nil or d < best_d) then best, best_d = known, d end
  end
  return best
end

-- nil when every key of mod is a documented one, else the message naming
-- the first unknown key (in sorted order, so the message is stable).
local function unknown_key(mod)
  local bad = {}
  for k in next, mod do
    if not PLUGIN_KEY_SET[k] then bad[#bad + 1] = type(k) == "string" and k or "[" .. tostring(k) .. "]" end
  end
  if #bad == 0 then return nil end
  table.sort(bad)
  local k = bad[1]
  local near = closest_key(k)
  if near then return "unknown key '" .. k .. "' in the plugin's table (did you mean '" .. near .. "'?)" end
  return "unknown key '" .. k .. "' in the plugin's table (known keys: " .. table.concat(R.PLUGIN_KEYS, ", ") .. ")"
end

-- Loads plugins/<name>/init.lua. Returns the module or nil, message.
function R.load_plugin(name, path)
  local env = R.new_env(name)
  -- Named "NAME/init.lua", not by its path: script errors reach delivery
  -- logs, which tenants read, and a server's paths are none of theirs.
  local f, ferr = io.open(path, "rb")
  if not f then return nil, ferr end
  local src = f:read("a")
  f:close()
  local chunk, err = load(src, "@" .. name .. "/init.lua", "t", env)
  if not chunk then return nil, err end
  local ok, mod = pcall(chunk)
  if not ok then return nil, tostring(mod) end
  if type(mod) ~= "table" then return nil, path .. ": must return a table" end
  local bad = unknown_key(mod)
  if bad then return nil, path .. ": " .. bad end
  if mod.name ~= name then
    return nil, path .. ": name must be \"" .. name .. "\" (the folder's name), got " .. tostring(mod.name)
  end
  if type(mod.version) ~= "string" then return nil, path .. ": version must be a string" end
  if mod.priority ~= nil and math.type(mod.priority) ~= "integer" then
    return nil, path .. ": priority must be an integer"
  end
  if mod.schema ~= nil then
    local e = schema.check_schema(mod.schema)
    if e then return nil, path .. ": " .. e end
  end
  for k, v in pairs(mod) do
    if PHASE_SET[k] and type(v) ~= "function" then return nil, path .. ": " .. k .. " must be a function" end
  end
  if mod.check ~= nil and type(mod.check) ~= "function" then return nil, path .. ": check must be a function" end
  if mod.routes ~= nil then
    if type(mod.routes) ~= "table" then return nil, path .. ": routes must be a list" end
    for i, r in ipairs(mod.routes) do
      -- path may be a function of the bound config (a configurable path).
      if type(r.method) ~= "string" or type(r.handler) ~= "function" or
          not (type(r.path) == "function" or type(r.path) == "string" and r.path:sub(1, 1) == "/") then
        return nil, path .. ": routes[" .. i .. "] needs method, path (starting with /, or a function of the config) and handler"
      end
    end
  end
  mod.env = env
  R.plugins[name] = mod
  return mod
end

-- Validates conf for plugin name: conf with defaults, or nil, errors.
-- A plugin may add its own check(conf) for what the schema subset cannot
-- say: it returns nil when fine, or a list of { field =, message = } (or
-- one message string).
function R.check_conf(name, conf)
  local p = R.plugins[name]
  if p == nil then return nil, { { field = "name", message = "no plugin named \"" .. tostring(name) .. "\"" } } end
  local c, errors = schema.validate(p.schema, conf)
  if not c or type(p.check) ~= "function" then return c, errors end
  host.set_plugin(name)
  local ok, problems = pcall(p.check, c)
  if not ok then return nil, { { field = "", message = "check failed: " .. tostring(problems) } } end
  if type(problems) == "string" then return nil, { { field = "", message = problems } } end
  if type(problems) == "table" and #problems > 0 then return nil, problems end
  return c
end

-- Binds a plugin for every event and delivery (from the config file).
function R.bind_global(name, conf)
  local c, errors = R.check_conf(name, conf)
  if not c then return nil, errors end
  local p = R.plugins[name]
  R.global[#R.global + 1] = { plugin = p, conf = c }
  table.sort(R.global, by_priority)
  R.global.calls = nil
  for _, r in ipairs(p.routes or {}) do
    local rpath = r.path
    if type(rpath) == "function" then
      local ok, got = pcall(rpath, c)
      if not ok or type(got) ~= "string" or got:sub(1, 1) ~= "/" then
        return nil, { { field = "routes", message = "the route path must start with / (got " ..
          tostring(ok and got or "an error: " .. tostring(got)) .. ")" } }
      end
      rpath = got
    end
    local key = r.method:upper() .. " " .. rpath
    if R.routes[key] then
      return nil, { { field = "routes", message = key .. " is also defined by " .. R.routes[key].plugin.name } }
    end
    R.routes[key] = { plugin = p, handler = r.handler, conf = c }
  end
  for _, t in ipairs(p.timers or {}) do
    R.timers[#R.timers + 1] = { plugin = p, every = t.every, at = t.at, handler = t.handler, conf = c }
  end
  return true
end

-- Per-webhook bindings arrive as JSON text: [{"name": "...", "config": {...}}],
-- plus an optional transform function's source. Compiled once per text.
function R.webhook_bindings(text)
  if text == nil or text == "" then return R.global end
  local list = R.webhook_cache[text]
  if list then return list end
  local spec = host.hookgate.json.decode(text)
  list = {}
  for _, b in ipairs(R.global) do list[#list + 1] = b end
  for _, b in ipairs(spec.plugins or {}) do
    local c, errors = R.check_conf(b.name, b.config)
    if not c then
      error("webhook plugin " .. tostring(b.name) .. ": " .. errors[1].field .. ": " .. errors[1].message, 0)
    end
    list[#list + 1] = { plugin = R.plugins[b.name], conf = c }
  end
  -- spec.transform is tenant code: it never runs in this VM (see
  -- core/sandbox/), after every plugin here.
  table.sort(list, by_priority)
  if R.webhook_cache_n > 10000 then
    R.webhook_cache, R.webhook_cache_n = {}, 0
  end
  R.webhook_cache[text] = list
  R.webhook_cache_n = R.webhook_cache_n + 1
  return list
end

-- Checks a webhook's own transform for syntax: compiled, never run here
-- (tenant code runs in the sandbox's worker processes, core/sandbox/). The
-- parser's work is bounded by the source's size (at most 64 KiB). Raises
-- "transform:LINE: message".
function R.compile_transform(src)
  -- "function(delivery) ... end" is the usual form; a chunk that returns
  -- a function works too.
  if src:find("^%s*function%s*%(") then src = "return " .. src end
  local chunk, err = load(src, "=transform", "t", {})
  if not chunk then error(err, 0) end
  return true
end

-- The error handler of route handlers and timers (phase functions go
-- without one: see R.run): the message (already "file:line: text") and a
-- traceback of the plugin's stack.
local function handler(msg)
  if type(msg) ~= "string" then msg = tostring(msg) end
  return { message = msg, traceback = debug.traceback("", 2) }
end

-- What xpcall returned on failure, as handler builds it: a memory error
-- (and an error inside handler) skips the handler and arrives as a string.
local function failure(e)
  if type(e) == "table" then return e end
  local msg = tostring(e)
  if msg == "not enough memory" then msg = msg .. " (the run's memory share or the VM's memory limit was reached)" end
  return { message = msg, traceback = "" }
end

-- The calls a phase makes for a bindings list, in order: a flat array of
-- function, conf, plugin name triples, built on first use and kept with
-- the list (lists do not change once built; bind_global drops R.global's).
local function phase_calls(list, phase)
  local calls = list.calls
  if calls == nil then
    calls = {}
    list.calls = calls
  end
  local c = calls[phase]
  if c == nil then
    c = {}
    for _, b in ipairs(list) do
      local fn = b.plugin[phase]
      if fn then
        c[#c + 1] = fn
        c[#c + 1] = b.conf
        c[#c + 1] = b.plugin.name
      end
    end
    calls[phase] = c
  end
  return c
end

-- Runs phase through the bound plugins in order. Each call gets (arg,
-- conf); the first plugin to return a non-nil value ends the walk and its
-- values are returned (retry decisions, ingest rejections). A plugin's
-- error goes through as raised: the C side takes the traceback where it
-- sees it (the pure phases' message handler, or the dead coroutine) and
-- names the plugin set_plugin last named. No xpcall per plugin call.
local set_plugin = host.set_plugin
function R.run(phase, bindings_text, arg)
  local list = R.global
  if bindings_text ~= nil and bindings_text ~= "" then list = R.webhook_bindings(bindings_text) end
  local c = phase_calls(list, phase)
  for i = 1, #c, 3 do
    set_plugin(c[i + 2])
    -- Up to three results (no phase uses more): no table per call on the
    -- hot path.
    local r1, r2, r3 = c[i](arg, c[i + 1])
    if r1 ~= nil then return r1, r2, r3 end
  end
  return nil
end

-- The global bindings' call list for phase: function, conf, plugin name,
-- ... (the C side walks it itself for the pure phases and route).
function R.calls(phase)
  return phase_calls(R.global, phase)
end

-- 1 if any plugin bound globally (or in bindings_text) has this phase.
function R.has(phase, bindings_text)
  for _, b in ipairs(R.webhook_bindings(bindings_text)) do
    if b.plugin[phase] then return true end
  end
  return false
end

-- A Lua route: runs the handler with (req, conf) and returns its answer.
function R.route(key, req)
  local r = R.routes[key]
  host.set_plugin(r.plugin.name)
  local res = table.pack(xpcall(r.handler, handler, req, r.conf))
  if not res[1] then
    local e = failure(res[2])
    error({ plugin = r.plugin.name, phase = "routes", message = e.message, traceback = e.traceback }, 0)
  end
  return res[2]
end

-- A plugin timer fires: arg.index is its position in R.timers.
function R.timer(arg)
  local t = R.timers[arg.index]
  host.set_plugin(t.plugin.name)
  local ok, e = xpcall(t.handler, handler, t.conf)
  if not ok then
    e = failure(e)
    error({ plugin = t.plugin.name, phase = "timer", message = e.message, traceback = e.traceback }, 0)
  end
end

-- A function given to hookgate.timer.at/every fires.
function R.call(fn, label)
  host.set_plugin(label)
  local ok, e = xpcall(fn, handler)
  if not ok then
    error({ plugin = label, phase = "timer", message = e.message, traceback = e.traceback }, 0)
  end
end

-- The effective order, for the admin API: [{name, version, priority, phases, config (secrets redacted)}].
function R.describe()
  local out = setmetatable({}, host.json_array_mt)
  for _, b in ipairs(R.global) do
    local phases = setmetatable({}, host.json_array_mt)
    for _, p in ipairs(R.PHASES) do if b.plugin[p] then phases[#phases + 1] = p end end
    if b.plugin.routes then phases[#phases + 1] = "routes" end
    out[#out + 1] = { name = b.plugin.name, version = b.plugin.version, priority = b.plugin.priority or 0,
      phases = phases, config = schema.redact(b.plugin.schema, b.conf) }
  end
  return out
end

-- Per-webhook plugins as the API shows them: secret fields redacted.
function R.redact_bindings(list)
  local out = setmetatable({}, host.json_array_mt)
  for i, b in ipairs(list) do
    local p = R.plugins[b.name]
    out[i] = { name = b.name, config = p and schema.redact(p.schema, b.config) or b.config }
  end
  return out
end

function R.available()
  local names = setmetatable({}, host.json_array_mt)
  for name in pairs(R.plugins) do names[#names + 1] = name end
  table.sort(names)
  return names
end

return R
