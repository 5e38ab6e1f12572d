-- retrypolicy: the retry phase, bound per webhook.
return {
  name = "retrypolicy",
  version = "1.0.0",
  schema = {
    type = "object", required = { "mode" },
    properties = {
      mode = { type = "string", enum = { "fast", "give_up", "deactivate" } },
      attempts = { type = "integer", default = 5, minimum = 1, maximum = 20 },
    },
  },
  retry = function(r, conf)
    if conf.mode == "give_up" then return "give_up" end
    if conf.mode == "deactivate" then return "deactivate" end
    if r.attempt >= conf.attempts then return "give_up" end
    return 0.1
  end,
}
