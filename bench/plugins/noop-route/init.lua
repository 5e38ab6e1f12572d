-- noop-route: a route phase that does nothing. bench/bench.mjs binds it
-- globally to measure what a Lua route phase costs per event by itself
-- (the run started, the VM entered, the targets read back).
return {
  name = "noop-route",
  version = "1.0.0",
  priority = 0,
  route = function(arg, conf) end,
}
