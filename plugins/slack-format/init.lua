-- slack-format: turns a delivery into a Slack incoming-webhook message,
-- {"text": "..."}, so a webhook can point straight at
-- https://hooks.slack.com/services/...
--
-- The text comes from `template`, where ${name} is replaced by:
--   ${type}        the event type
--   ${id}          the event id
--   ${timestamp}   when the event was accepted (RFC 3339)
--   ${data.a.b}    a field of the event's data (dotted path; arrays from 0)
-- A missing field becomes an empty string, a table its JSON. Substituted
-- values are escaped for Slack (&, <, >); the template itself is not, so it
-- may hold Slack markup such as <https://example.com|a link>.

local json = hookgate.json

local function lookup(doc, path)
  local v = doc
  for seg in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    if getmetatable(v) ~= nil then -- a JSON array
      local i = seg:match("^%d+$") and tonumber(seg)
      v = i and v[i + 1]
    else
      v = v[seg]
    end
    if v == nil then return nil end
  end
  return v
end

local function render(v)
  if v == nil or v == json.null then return "" end
  if type(v) == "table" then return json.encode(v) or "" end
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return tostring(math.tointeger(v))
  end
  return tostring(v)
end

local function escape(s)
  return (s:gsub("[&<>]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;" }))
end

local function transform(delivery, conf)
  local doc = json.decode(delivery.body)
  if type(doc) ~= "table" then doc = {} end
  local vars = { type = delivery.eventType, id = delivery.eventId, timestamp = doc.timestamp }
  local text = conf.template:gsub("%${([%w_%.%-]+)}", function(name)
    local v
    if name:sub(1, 5) == "data." or name == "data" then
      v = lookup(doc, name)
    else
      v = vars[name]
    end
    return escape(render(v))
  end)
  local msg = { text = text }
  if conf.username then msg.username = conf.username end
  if conf.icon_emoji then msg.icon_emoji = conf.icon_emoji end
  if conf.channel then msg.channel = conf.channel end
  delivery.body = assert(json.encode(msg))
  return nil
end

return {
  name = "slack-format",
  version = "1.0.0",
  -- After payload-filter (900): that one reads the event as published.
  priority = 500,
  schema = {
    type = "object",
    properties = {
      template = { type = "string", default = "[${type}] event ${id} at ${timestamp}", minLength = 1,
        maxLength = 4000, description = "the message text, with ${...} substitutions" },
      username = { type = "string", description = "the name the message is posted as" },
      icon_emoji = { type = "string", description = "an emoji for the poster, :rocket:" },
      channel = { type = "string", description = "a channel override, when the Slack app allows it" },
    },
  },
  transform = transform,
}
