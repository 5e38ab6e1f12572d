-- github-source: receives GitHub webhooks on a route, checks their
-- X-Hub-Signature-256 and publishes each one as a hookgate event.
--
-- GitHub signs the raw body: "sha256=" .. hex(HMAC-SHA256(secret, body)).
-- The delivery GUID (X-GitHub-Delivery) becomes the event id, so a
-- redelivery from GitHub is answered from the first event (idempotency)
-- instead of fanning out twice.

local json, crypto, log, source = hookgate.json, hookgate.crypto, hookgate.log, hookgate.source
local err, valid_id = source.error, source.valid_id

-- "%xx" and "+" decoding for application/x-www-form-urlencoded bodies.
local function urldecode(s)
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- GitHub sends either the JSON itself or a form with a `payload` field.
-- The signature covers the raw bytes in both cases.
local function payload_text(req)
  local ctype = (req.headers["content-type"] or ""):lower()
  if ctype:find("application/x-www-form-urlencoded", 1, true) then
    for pair in req.body:gmatch("[^&]+") do
      local k, v = pair:match("^([^=]*)=(.*)$")
      if k and urldecode(k) == "payload" then return urldecode(v) end
    end
    -- Not GitHub's form after all (curl labels any body this way).
  end
  return req.body
end

-- The event type for GitHub event `name`: the `types` map first, then
-- `event_type` with ${event} replaced.
local function type_for(conf, name)
  local t = conf.types and conf.types[name]
  if type(t) == "string" then return t end
  return (conf.event_type:gsub("%${event}", function() return name end))
end

local function receive(req, conf)
  local got = req.headers["x-hub-signature-256"]
  if got == nil or got == "" then
    return err(401, "unauthorized", "missing X-Hub-Signature-256 header")
  end
  local want = "sha256=" .. crypto.hex(crypto.hmac_sha256(conf.secret, req.body))
  -- GitHub sends lowercase hex; accept uppercase digits too.
  local prefix, hex = got:match("^(sha256=)(.*)$")
  if not prefix or not crypto.constant_time_equal(want, prefix .. hex:lower()) then
    log.warn("github-source: rejected a request with a bad signature (request " .. tostring(req.requestId) .. ")")
    return err(401, "unauthorized", "invalid X-Hub-Signature-256 signature")
  end

  local name = req.headers["x-github-event"] or "unknown"
  for _, ignored in ipairs(conf.ignore) do
    if ignored == name then
      return { status = 200, body = { status = "ignored", event = name } }
    end
  end

  local text = payload_text(req)
  local data = json.decode(text)
  if type(data) ~= "table" or getmetatable(data) ~= nil then
    -- Not a JSON object (an array, a scalar, or not JSON at all): keep the
    -- text so that nothing the sender signed is lost.
    data = { raw = text }
  end

  local event = { type = type_for(conf, name), data = data }
  local delivery = req.headers["x-github-delivery"]
  if valid_id(delivery) then
    event.id = delivery
  elseif delivery ~= nil then
    log.warn("github-source: X-GitHub-Delivery is not usable as an event id; a new id is generated")
  end
  if conf.organization_id then event.organizationId = conf.organization_id end

  return source.publish(event, { plugin = "github-source", ignore_unknown = conf.ignore_unknown,
    ignored = { event = name } })
end

return {
  name = "github-source",
  version = "1.0.0",
  priority = 0,
  schema = {
    type = "object",
    required = { "secret" },
    properties = {
      secret = { type = "string", secret = true, minLength = 1,
        description = "the webhook secret set in GitHub" },
      path = { type = "string", default = "/sources/github", pattern = "^/",
        description = "the route's path" },
      event_type = { type = "string", default = "github.${event}", minLength = 1,
        description = "event type; ${event} is the X-GitHub-Event header" },
      types = { type = "object", additionalProperties = true, default = {},
        description = "X-GitHub-Event name -> event type, before event_type" },
      ignore = { type = "array", items = { type = "string" }, default = { "ping" },
        description = "X-GitHub-Event names answered 200 without publishing" },
      ignore_unknown = { type = "boolean", default = false,
        description = "answer 200 (not 422) when the event type is not registered" },
      organization_id = { type = "string", description = "organizationId of the published events" },
    },
  },
  routes = {
    { method = "POST", path = function(conf) return conf.path end, handler = receive },
  },
}
