-- noop-transform: a transform phase that does nothing. bench/bench.mjs binds
-- it globally to measure what a Lua transform costs per delivery by itself
-- (the delivery table built, the VM entered, the table read back).
return {
  name = "noop-transform",
  version = "1.0.0",
  priority = 0,
  transform = function(d, conf) end,
}
