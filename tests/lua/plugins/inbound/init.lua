-- inbound: an ingestion route for a third-party source. POST /inbound/acme
-- checks an HMAC-SHA256 (hex) of the body keyed with conf.secret, then
-- publishes the payload as a user.created event.
local json, crypto = hookgate.json, hookgate.crypto

local function receive(req, conf)
  local sig = req.headers["x-acme-signature"] or ""
  local want = crypto.hex(crypto.hmac_sha256(conf.secret, req.body))
  if not crypto.constant_time_equal(sig, want) then
    hookgate.log.warn("inbound: bad signature from " .. conf.source)
    return { status = 401, body = { error = "bad signature" } }
  end
  local data, err = json.decode(req.body)
  if type(data) ~= "table" then return { status = 400, body = { error = tostring(err) } } end
  local ev, perr = hookgate.events.publish({ type = "user.created", data = data })
  if not ev then return { status = 502, body = { error = perr } } end
  return { status = 202, headers = { ["X-Inbound"] = conf.source }, body = { event = ev.id } }
end

return {
  name = "inbound",
  version = "1.2.0",
  priority = 20,
  schema = {
    type = "object", required = { "secret" },
    properties = {
      secret = { type = "string", secret = true, minLength = 8 },
      source = { type = "string", default = "acme" },
    },
  },
  routes = {
    { method = "POST", path = "/inbound/acme", handler = receive },
    -- Logs after a wait, while other plugins run: the line must name this one.
    { method = "GET", path = "/inbound/slowlog", handler = function()
      hookgate.sleep(0.3)
      hookgate.log.info("inbound slow log line")
      return { body = "logged" }
    end },
  },
}
