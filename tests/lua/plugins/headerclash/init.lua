-- headerclash: a transform that sets headers the core owns (in other
-- cases), one of its own, and may move the url; the body stays as is.
-- Bound per webhook.
return {
  name = "headerclash",
  version = "1.0.0",
  schema = { type = "object", properties = { path = { type = "string", default = "" } } },
  transform = function(delivery, conf)
    delivery.headers["webhook-id"] = "forged-id"
    delivery.headers["CONTENT-TYPE"] = "text/plain"
    delivery.headers["X-Kept"] = "kept"
    if conf.path ~= "" then delivery.url = delivery.url .. conf.path end
  end,
}
