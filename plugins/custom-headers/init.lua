-- custom-headers: adds static headers to every delivery of a webhook
-- (an API key the receiver wants, a routing tag, ...).
--
-- The values are often credentials, so the whole `headers` setting is
-- secret: the API and the logs show "[redacted]". The headers hookgate
-- owns are refused: Content-Type and every webhook-* header (the Standard
-- Webhooks id, timestamp and signature). hookgate sets those after the
-- transform phase anyway; refusing them makes a misconfiguration loud
-- instead of silently ignored.

-- RFC 9110 token characters.
local function valid_name(name)
  return type(name) == "string" and name ~= "" and #name <= 256 and not name:find("[^%w!#%$%%&'%*%+%-%.%^_`|~]")
end

local function reserved(name)
  local lower = name:lower()
  return lower == "content-type" or lower == "content-length" or lower == "host" or
    lower == "transfer-encoding" or lower == "connection" or lower:sub(1, 8) == "webhook-"
end

local function transform(delivery, conf)
  local headers = delivery.headers
  -- Sorted, so that errors and the order of headers are stable.
  local names = {}
  for name in pairs(conf.headers) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local value = conf.headers[name]
    if not valid_name(name) then
      error("custom-headers: \"" .. tostring(name) .. "\" is not a valid header name", 0)
    end
    if reserved(name) then
      error("custom-headers: refusing to set " .. name .. ": hookgate owns Content-Type and the webhook-* headers", 0)
    end
    if type(value) == "number" or type(value) == "boolean" then value = tostring(value) end
    -- The value is secret: never echo it in the message.
    if type(value) ~= "string" or value:find("[\r\n\0]") then
      error("custom-headers: the value of " .. name .. " must be a string without CR, LF or NUL", 0)
    end
    -- Replace a header another transform set under a different case.
    for k in pairs(headers) do
      if type(k) == "string" and k:lower() == name:lower() then headers[k] = nil end
    end
    headers[name] = value
  end
  return nil
end

-- Bind-time check: names and values are refused when the webhook is
-- created or updated (422), not at the first delivery. Values are secret:
-- messages name the header only.
local function check(conf)
  local problems = {}
  for name, value in pairs(conf.headers) do
    local field = "headers." .. tostring(name)
    if not valid_name(name) then
      problems[#problems + 1] = { field = field, message = "is not a valid header name" }
    elseif reserved(name) then
      problems[#problems + 1] = { field = field, message = "is owned by hookgate (Content-Type and webhook-* headers)" }
    elseif type(value) ~= "string" and type(value) ~= "number" and type(value) ~= "boolean" then
      problems[#problems + 1] = { field = field, message = "must be a string" }
    elseif type(value) == "string" and value:find("[\r\n%z]") then
      problems[#problems + 1] = { field = field, message = "must not contain CR, LF or NUL" }
    end
  end
  return problems
end

return {
  name = "custom-headers",
  version = "1.0.0",
  check = check,
  priority = 100,
  schema = {
    type = "object",
    required = { "headers" },
    properties = {
      headers = { type = "object", additionalProperties = true, secret = true,
        description = "header name -> value, added to every delivery" },
    },
  },
  transform = transform,
}
