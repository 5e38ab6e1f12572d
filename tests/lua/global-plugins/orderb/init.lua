-- orderb: see ordera. A body with "stop" ends the walk here (a non-nil
-- return); one with "boom" fails it.
return {
  name = "orderb",
  version = "1.0.0",
  priority = 10,
  transform = function(d)
    d.headers["X-Order"] = d.headers["X-Order"] .. ",b"
    if d.body:find("boom", 1, true) then error("orderb: boom") end
    if d.body:find("stop", 1, true) then return true end
  end,
}
