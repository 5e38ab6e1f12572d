-- transformer: the transform phase. Wraps the event's data and adds a
-- header; bound per webhook.
local json = hookgate.json
return {
  name = "transformer",
  version = "2.0.0",
  schema = {
    type = "object",
    properties = {
      prefix = { type = "string", default = "T", maxLength = 16 },
      apikey = { type = "string", secret = true },
    },
  },
  transform = function(delivery, conf)
    local payload = json.decode(delivery.body)
    delivery.body = json.encode({ prefix = conf.prefix, kind = payload.type, wrapped = payload.data })
    delivery.headers["X-Transformed"] = conf.prefix
  end,
}
