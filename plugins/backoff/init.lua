-- backoff: an exponential retry policy in place of the configured
-- delivery.schedule.
--
-- After failed attempt n (1-based) the next attempt waits
--   min(base * factor^(n-1), max_delay) * (1 + jitter * u),  u uniform in [-1, 1]
-- and after max_attempts attempts the delivery gives up. Nothing else is
-- looked at (no Retry-After, no status codes).

local crypto = hookgate.crypto

-- A uniform number in [-1, 1] from the crypto generator (math.random is
-- seeded the same way in every VM generation).
local function uniform()
  local b = crypto.random(4)
  if b == nil then return 0 end
  local n = string.unpack("<I4", b)
  return n / 4294967295 * 2 - 1
end

local function retry(r, conf)
  local attempt = r.attempt or 1
  if attempt >= conf.max_attempts then return "give_up" end
  local delay = conf.base * conf.factor ^ (attempt - 1)
  if delay > conf.max_delay then delay = conf.max_delay end
  if conf.jitter > 0 then delay = delay * (1 + conf.jitter * uniform()) end
  if delay < 0 then delay = 0 end
  return delay
end

return {
  name = "backoff",
  version = "1.0.0",
  priority = 0,
  schema = {
    type = "object",
    properties = {
      base = { type = "number", default = 5, minimum = 0, description = "seconds before the 2nd attempt" },
      factor = { type = "number", default = 2, minimum = 1, maximum = 100, description = "growth per attempt" },
      max_delay = { type = "number", default = 3600, minimum = 0, maximum = 2592000,
        description = "cap on one delay, seconds" },
      jitter = { type = "number", default = 0.1, minimum = 0, maximum = 1,
        description = "fraction of the delay added or removed at random" },
      max_attempts = { type = "integer", default = 8, minimum = 1, maximum = 100,
        description = "attempts in all, the first included" },
    },
  },
  retry = retry,
}
