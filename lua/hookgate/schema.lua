-- hookgate.schema: checks a plugin's configuration against its schema.
--
-- A schema is a JSON-Schema subset written as a Lua table:
--   { type = "object", required = { "secret" },
--     properties = {
--       secret    = { type = "string", secret = true, minLength = 8 },
--       tolerance = { type = "integer", default = 300, minimum = 1, maximum = 3600 },
--       mode      = { type = "string", enum = { "strict", "lax" }, default = "strict" },
--       prefix    = { type = "string", pattern = "^[a-z]+$" },
--       tags      = { type = "array", items = { type = "string" }, maxItems = 10 },
--     } }
-- Supported: type (object, array, string, number, integer, boolean),
-- properties, required, additionalProperties (false by default: unknown
-- keys are errors), default, enum, minimum, maximum, minLength,
-- maxLength, pattern (a Lua pattern), items, minItems, maxItems, and
-- secret = true (the value is never logged nor returned by the API).

local M = {}

local function type_of(v)
  local t = type(v)
  if t == "table" then
    if debug.getmetatable(v) == M.array_mt then return "array" end
    if next(v) == nil then return "empty" end
    local n = #v
    if n > 0 then
      local count = 0
      for _ in pairs(v) do count = count + 1 end
      if count == n then return "array" end
    end
    return "object"
  end
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  return t
end

local function matches_type(want, got)
  if want == got then return true end
  if want == "number" and got == "integer" then return true end
  if got == "empty" and (want == "object" or want == "array") then return true end
  -- A float with no fraction is an integer as far as a config is concerned.
  return false
end

local function add(errors, field, msg)
  errors[#errors + 1] = { field = field, message = msg }
end

local check

local function check_object(schema, v, path, errors)
  local props = schema.properties or {}
  local out = {}
  for k, val in pairs(v) do
    local sub = props[k]
    local field = path == "" and tostring(k) or path .. "." .. tostring(k)
    if sub == nil then
      if schema.additionalProperties then
        out[k] = val
      else
        add(errors, field, "unknown field")
      end
    else
      out[k] = check(sub, val, field, errors)
    end
  end
  for k, sub in pairs(props) do
    if out[k] == nil and v[k] == nil and sub.default ~= nil then
      local d = sub.default
      if type(d) == "table" then
        local copy = {}
        for i, x in pairs(d) do copy[i] = x end
        d = copy
      end
      out[k] = d
    end
  end
  for _, k in ipairs(schema.required or {}) do
    if out[k] == nil then
      add(errors, path == "" and k or path .. "." .. k, "is required")
    end
  end
  return out
end

check = function(schema, v, path, errors)
  local got = type_of(v)
  local want = schema.type
  if want and not matches_type(want, got) then
    if want == "integer" and got == "number" and v == math.floor(v) then
      v = math.tointeger(v)
    else
      add(errors, path, "must be " .. (want == "integer" and "an integer" or want == "array" and "an array" or
        want == "object" and "an object" or "a " .. want) .. " (got " .. (got == "empty" and "table" or got) .. ")")
      return nil
    end
  end
  if schema.enum then
    local ok = false
    for _, e in ipairs(schema.enum) do if e == v then ok = true end end
    if not ok then
      local names = {}
      for i, e in ipairs(schema.enum) do names[i] = tostring(e) end
      add(errors, path, "must be one of: " .. table.concat(names, ", "))
    end
  end
  if got == "number" or got == "integer" then
    if schema.minimum and v < schema.minimum then add(errors, path, "must be at least " .. schema.minimum) end
    if schema.maximum and v > schema.maximum then add(errors, path, "must be at most " .. schema.maximum) end
  elseif got == "string" then
    if schema.minLength and #v < schema.minLength then
      add(errors, path, "must be at least " .. schema.minLength .. " characters")
    end
    if schema.maxLength and #v > schema.maxLength then
      add(errors, path, "must be at most " .. schema.maxLength .. " characters")
    end
    if schema.pattern and not string.find(v, schema.pattern) then
      add(errors, path, "must match the pattern " .. schema.pattern)
    end
  elseif want == "array" then
    local n = #v
    if schema.minItems and n < schema.minItems then add(errors, path, "must have at least " .. schema.minItems .. " items") end
    if schema.maxItems and n > schema.maxItems then add(errors, path, "must have at most " .. schema.maxItems .. " items") end
    if schema.items then
      local out = setmetatable({}, M.array_mt)
      for i = 1, n do out[i] = check(schema.items, v[i], path .. "[" .. (i - 1) .. "]", errors) end
      return out
    end
  elseif want == "object" or (want == nil and got == "object") then
    return check_object(schema, v, path, errors)
  end
  return v
end

-- validate(schema, conf) -> conf with defaults applied | nil, errors
-- errors: list of { field = "a.b", message = "..." }.
function M.validate(schema, conf)
  if schema == nil then
    if conf == nil or next(conf) == nil then return {} end
    return nil, { { field = "", message = "this plugin takes no configuration" } }
  end
  local errors = {}
  local out = check(schema, conf == nil and {} or conf, "", errors)
  if #errors > 0 then return nil, errors end
  return out
end

-- redact(schema, conf) -> a copy with every `secret = true` field replaced.
function M.redact(schema, conf)
  if type(conf) ~= "table" or schema == nil then return conf end
  local props = schema.properties or {}
  local out = {}
  for k, v in pairs(conf) do
    local sub = props[k]
    if sub and sub.secret then
      out[k] = "[redacted]"
    elseif sub and type(v) == "table" then
      out[k] = M.redact(sub.items or sub, v)
    else
      out[k] = v
    end
  end
  return setmetatable(out, debug.getmetatable(conf))
end

-- Checks that a schema itself is usable; returns nil or a message.
function M.check_schema(schema, path)
  path = path or "schema"
  if type(schema) ~= "table" then return path .. " must be a table" end
  local known = { type = true, properties = true, required = true, additionalProperties = true, default = true,
    enum = true, minimum = true, maximum = true, minLength = true, maxLength = true, pattern = true, items = true,
    minItems = true, maxItems = true, secret = true, description = true }
  for k in pairs(schema) do
    if not known[k] then return path .. ": unknown schema keyword '" .. tostring(k) .. "'" end
  end
  for name, sub in pairs(schema.properties or {}) do
    local e = M.check_schema(sub, path .. ".properties." .. tostring(name))
    if e then return e end
  end
  if schema.items then return M.check_schema(schema.items, path .. ".items") end
  return nil
end

return M
