-- ingester: the ingest phase. Rejects events whose data has `reject`,
-- marks the others.
return {
  name = "ingester",
  version = "1.0.0",
  priority = 10,
  ingest = function(event, conf)
    if event.data.reject then
      return false, { status = 403, message = "rejected: " .. tostring(event.data.reject) }
    end
    event.data.ingested = true
  end,
}
