-- orderc: see ordera. Its sign phase sees the core's headers.
return {
  name = "orderc",
  version = "1.0.0",
  priority = 0,
  transform = function(d)
    d.headers["X-Order"] = d.headers["X-Order"] .. ",c"
  end,
  sign = function(d)
    d.headers["X-Sign-Saw"] = d.headers["webhook-signature"] and d.headers["X-Order"] or "nothing"
  end,
}
