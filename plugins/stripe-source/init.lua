-- stripe-source: receives Stripe webhooks on a route, checks their
-- Stripe-Signature header and publishes each one as a hookgate event.
--
-- Stripe's scheme: Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]
-- where each v1 is hex(HMAC-SHA256(key, "<t>.<raw body>")) and the key is
-- the endpoint's whole signing secret, "whsec_..." included, as bytes.
-- Several v1 entries appear while a secret is being rolled; one match is
-- enough. The Stripe event id becomes the hookgate event id, so Stripe's
-- retries of one event are answered from the first (idempotency).

local json, crypto, log, source = hookgate.json, hookgate.crypto, hookgate.log, hookgate.source
local err, valid_id = source.error, source.valid_id

-- Returns t (an integer) and the list of v1 signatures, or nil.
local function parse_header(h)
  local t, v1 = nil, {}
  for item in h:gmatch("[^,]+") do
    local k, v = item:match("^%s*([^=%s]+)%s*=%s*(.-)%s*$")
    if k == "t" then
      if not v:match("^%d+$") or #v > 15 then return nil end
      t = math.tointeger(tonumber(v))
    elseif k == "v1" and v ~= "" then
      v1[#v1 + 1] = v:lower()
    end
  end
  if t == nil or #v1 == 0 then return nil end
  return t, v1
end

-- nil when the request is authentic, else the reason it is not.
local function check_signature(req, conf)
  local h = req.headers["stripe-signature"]
  if h == nil or h == "" then return "missing Stripe-Signature header" end
  local t, v1 = parse_header(h)
  if t == nil then return "malformed Stripe-Signature header (want t=<time>,v1=<hex>)" end
  if conf.tolerance > 0 and math.abs(os.time() - t) > conf.tolerance then
    return "Stripe-Signature timestamp outside the tolerance"
  end
  local want = crypto.hex(crypto.hmac_sha256(conf.secret, t .. "." .. req.body))
  local ok = false
  -- Compare against every entry (no early exit), each in constant time.
  for _, sig in ipairs(v1) do
    if crypto.constant_time_equal(want, sig) then ok = true end
  end
  if not ok then return "no Stripe-Signature v1 signature matches" end
  return nil
end

local function receive(req, conf)
  local why = check_signature(req, conf)
  if why then
    log.warn("stripe-source: rejected a request: " .. why .. " (request " .. tostring(req.requestId) .. ")")
    return err(401, "unauthorized", why)
  end

  local body = json.decode(req.body)
  if type(body) ~= "table" or getmetatable(body) ~= nil or type(body.type) ~= "string" then
    return err(400, "bad_request", "the body must be a Stripe event: a JSON object with a string `type`")
  end
  local mapped = conf.types[body.type]
  local event = { type = type(mapped) == "string" and mapped or conf.type_prefix .. body.type, data = body }
  if valid_id(body.id) then event.id = body.id end
  if conf.organization_id then event.organizationId = conf.organization_id end

  return source.publish(event, { plugin = "stripe-source", ignore_unknown = conf.ignore_unknown })
end

return {
  name = "stripe-source",
  version = "1.0.0",
  priority = 0,
  schema = {
    type = "object",
    required = { "secret" },
    properties = {
      secret = { type = "string", secret = true, minLength = 1,
        description = "the endpoint's signing secret, whsec_... (used whole, as bytes)" },
      path = { type = "string", default = "/sources/stripe", pattern = "^/",
        description = "the route's path" },
      tolerance = { type = "integer", default = 300, minimum = 0, maximum = 86400,
        description = "seconds the t= timestamp may be off; 0 disables the check" },
      type_prefix = { type = "string", default = "stripe.",
        description = "prefix of the event type: invoice.paid -> stripe.invoice.paid" },
      types = { type = "object", additionalProperties = true, default = {},
        description = "Stripe type -> event type, before type_prefix" },
      ignore_unknown = { type = "boolean", default = false,
        description = "answer 200 (not 422) when the event type is not registered" },
      organization_id = { type = "string", description = "organizationId of the published events" },
    },
  },
  routes = {
    { method = "POST", path = function(conf) return conf.path end, handler = receive },
  },
}
