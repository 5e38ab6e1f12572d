-- payload-filter: sends a webhook only the deliveries whose payload matches
-- a condition. Bound per webhook (or globally, for every webhook).
--
-- In the transform phase it decodes the delivery body (the event envelope
-- {type, timestamp, data}) and evaluates the condition. On a mismatch it
-- sets delivery.skip = "<reason>"; the dispatcher then records the
-- delivery without sending it. It never ends the walk, so a later
-- transform (a webhook's own code) still sees delivery.skip and may clear
-- it.
--
-- Conditions (JSON or Lua tables):
--   { field = "data.amount", op = "gte", value = 100 }
--   { ["and"] = { cond, ... } }   { ["or"] = { cond, ... } }   { ["not"] = cond }
-- Operators: eq, ne, in, exists, prefix, gt, gte, lt, lte.
-- Fields are dotted paths from the envelope: "type", "data.customer.tier",
-- "data.items.0.sku" (array indexes start at 0).

local json = hookgate.json
local null = json.null

local OPS = { eq = true, ne = true, ["in"] = true, exists = true, prefix = true,
  gt = true, gte = true, lt = true, lte = true }

local function is_array(t)
  if getmetatable(t) ~= nil then return true end -- json.decode marks arrays
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

-- Checks a condition's shape; returns nil or a message naming the spot.
local function validate(c, where)
  if type(c) ~= "table" then return where .. ": must be an object" end
  local n = 0
  for _ in pairs(c) do n = n + 1 end
  for _, k in ipairs({ "and", "or" }) do
    if c[k] ~= nil then
      if n ~= 1 then return where .. ": \"" .. k .. "\" must be the only key" end
      local list = c[k]
      if type(list) ~= "table" or not is_array(list) or #list == 0 then
        return where .. "." .. k .. ": must be a non-empty array of conditions"
      end
      for i, sub in ipairs(list) do
        local e = validate(sub, where .. "." .. k .. "[" .. (i - 1) .. "]")
        if e then return e end
      end
      return nil
    end
  end
  if c["not"] ~= nil then
    if n ~= 1 then return where .. ": \"not\" must be the only key" end
    return validate(c["not"], where .. ".not")
  end
  if type(c.field) ~= "string" or c.field == "" then return where .. ".field: must be a dotted path (a string)" end
  if not OPS[c.op] then
    return where .. ".op: must be one of eq, ne, in, exists, prefix, gt, gte, lt, lte (got " .. tostring(c.op) .. ")"
  end
  for k in pairs(c) do
    if k ~= "field" and k ~= "op" and k ~= "value" then return where .. "." .. tostring(k) .. ": unknown key" end
  end
  local v = c.value
  if c.op == "in" then
    if type(v) ~= "table" or not (is_array(v) or next(v) == nil) then
      return where .. ".value: \"in\" takes an array of values"
    end
  elseif c.op == "exists" then
    if v ~= nil and type(v) ~= "boolean" then return where .. ".value: \"exists\" takes true or false (default true)" end
  elseif c.op == "prefix" then
    if type(v) ~= "string" then return where .. ".value: \"prefix\" takes a string" end
  elseif c.op == "eq" or c.op == "ne" then
    if v == nil then return where .. ".value: is required (use null for JSON null)" end
    if type(v) == "table" then return where .. ".value: must be a string, number, boolean or null" end
  else
    if type(v) ~= "number" then return where .. ".value: \"" .. c.op .. "\" takes a number" end
  end
  return nil
end

-- The value at a dotted path, or nil when absent.
local function lookup(doc, path)
  local v = doc
  for seg in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    if is_array(v) then
      local i = seg:match("^%d+$") and tonumber(seg)
      if i == nil then return nil end
      v = v[i + 1]
    else
      v = v[seg]
    end
    if v == nil then return nil end
  end
  return v
end

local function scalar_eq(a, b)
  -- Numbers compare by value (1 == 1.0); the rest by type and value.
  if type(a) ~= type(b) then return false end
  return a == b
end

local match
match = function(c, doc)
  if c["and"] then
    for _, sub in ipairs(c["and"]) do
      if not match(sub, doc) then return false end
    end
    return true
  elseif c["or"] then
    for _, sub in ipairs(c["or"]) do
      if match(sub, doc) then return true end
    end
    return false
  elseif c["not"] then
    return not match(c["not"], doc)
  end
  local got = lookup(doc, c.field)
  local op, want = c.op, c.value
  if op == "exists" then
    local present = got ~= nil and got ~= null
    if want == false then return not present end
    return present
  elseif op == "eq" then
    return scalar_eq(got, want)
  elseif op == "ne" then
    return not scalar_eq(got, want)
  elseif op == "in" then
    for _, x in ipairs(want) do
      if scalar_eq(got, x) then return true end
    end
    return false
  elseif op == "prefix" then
    return type(got) == "string" and got:sub(1, #want) == want
  end
  if type(got) ~= "number" then return false end
  if op == "gt" then return got > want end
  if op == "gte" then return got >= want end
  if op == "lt" then return got < want end
  return got <= want -- lte
end

local function transform(delivery, conf)
  local e = validate(conf.condition, "condition")
  if e then error("payload-filter: " .. e, 0) end
  local doc = json.decode(delivery.body)
  if type(doc) ~= "table" then
    -- An earlier transform made the body something else than JSON.
    if conf.on_invalid_body == "send" then return nil end
    delivery.skip = "payload-filter: the body is not JSON"
    return nil
  end
  if not match(conf.condition, doc) then
    delivery.skip = conf.reason
  end
  return nil
end

-- Bind-time check: a malformed condition is a 422 when the webhook is
-- created or updated, naming the spot, instead of a failed delivery later.
local function check(conf)
  local e = validate(conf.condition, "condition")
  if e then return { { field = "condition", message = e } } end
  return nil
end

return {
  name = "payload-filter",
  version = "1.0.0",
  check = check,
  -- Before other transforms: the condition reads the event as published.
  priority = 900,
  schema = {
    type = "object",
    required = { "condition" },
    properties = {
      condition = { type = "object", additionalProperties = true,
        description = "{field, op, value} or {and|or: [...]} or {not: ...}" },
      reason = { type = "string", default = "payload-filter: condition not met", maxLength = 200,
        description = "delivery.skip text on a mismatch" },
      on_invalid_body = { type = "string", enum = { "skip", "send" }, default = "skip",
        description = "what to do when the body is not JSON" },
    },
  },
  transform = transform,
}
