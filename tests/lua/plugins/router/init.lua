-- router: the route phase. Drops the webhook named in data.dropTarget from
-- the event's targets, and adds the ids listed in data.addTargets.
return {
  name = "router",
  version = "1.0.0",
  priority = 10,
  route = function(arg)
    local add = arg.event.data.addTargets
    if add ~= nil then
      for _, id in ipairs(add) do arg.targets[#arg.targets + 1] = id end
    end
    local drop = arg.event.data.dropTarget
    if drop == nil then return end
    local kept = hookgate.json.array()
    for _, id in ipairs(arg.targets) do
      if id ~= drop then kept[#kept + 1] = id end
    end
    arg.targets = kept
  end,
}
