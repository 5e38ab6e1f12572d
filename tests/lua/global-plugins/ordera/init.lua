-- ordera, orderb, orderc: transform (and sign) plugins bound globally, for
-- the walk of the pure phases over the global bindings
-- (tests/integration/lua-pure-global.test.mjs). By priority: a, b, c.
return {
  name = "ordera",
  version = "1.0.0",
  priority = 20,
  transform = function(d)
    d.headers["X-Order"] = "a"
  end,
}
