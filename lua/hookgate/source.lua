-- hookgate.source: what plugins that receive webhooks from another service
-- on a route and publish them as hookgate events share (the bundled
-- github-source and stripe-source): the error answer, the event id check,
-- and publishing with the publish errors mapped to an HTTP answer.
--
-- runtime.lua loads this file in a sandboxed environment of its own, as it
-- loads a plugin, and plugins see it as the read-only `hookgate.source`.

local json, log = hookgate.json, hookgate.log

local M = {}

-- A route's answer in the API's error envelope.
function M.error(status, kind, message)
  return { status = status, body = { error = { type = kind, message = message, details = json.array() } } }
end

-- Whether s may be used as a hookgate event id (a sender's delivery id,
-- which makes the sender's retries idempotent).
function M.valid_id(s)
  return type(s) == "string" and #s >= 1 and #s <= 128 and not s:find("[^%w_%-%.:]")
end

-- Publishes event (I/O: routes, timers and the I/O phases only) and returns
-- the route's answer:
--   202 { id, type, deliveries } when it was published;
--   200 { status = "ignored", type, <opts.ignored> } when its type is not a
--     registered event type and opts.ignore_unknown is set, else
--   422 unknown_event_type;
--   any other failure: the API's status (a 4xx or 5xx, else 500), type and
--     message.
-- opts.plugin names the plugin in the log lines.
function M.publish(event, opts)
  local res, msg, e = hookgate.events.publish(event)
  if res ~= nil then
    return { status = 202, body = { id = res.id, type = event.type, deliveries = res.deliveries } }
  end
  local bad_type = false
  for _, d in ipairs(e and e.details or {}) do
    if d.field == "type" then bad_type = true end
  end
  if bad_type and opts.ignore_unknown then
    local body = { status = "ignored", type = event.type }
    for k, v in pairs(opts.ignored or {}) do body[k] = v end
    return { status = 200, body = body }
  end
  if bad_type then
    log.warn(opts.plugin .. ": event type " .. event.type .. " is not registered (webhooks.event_types)")
    return M.error(422, "unknown_event_type", "event type \"" .. event.type .. "\" is not a known event type")
  end
  log.error(opts.plugin .. ": publish failed: " .. tostring(msg))
  local status = e and e.status or 500
  return M.error(status >= 400 and status <= 599 and status or 500, e and e.type or "error", tostring(msg))
end

return M
