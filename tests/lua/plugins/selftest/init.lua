-- selftest: Lua-level tests of the `hookgate` library, run inside the real
-- runtime. Each suite is a route, GET /selftest/<suite>, that answers
-- { suite, passed, failed, failures = [ "line N: message", ... ] }.
-- tests/integration/lua-selftest.test.mjs calls every suite and asserts
-- failed == 0. Query: ?receiver=<url encoded> for the suites that need one.

local json, crypto = hookgate.json, hookgate.crypto

-- A tiny assertion kit. `check` records instead of raising, so one suite
-- reports every failure it has.
local function new_suite(name)
  local s = { name = name, passed = 0, failed = 0, failures = json.array() }
  function s.ok(cond, msg)
    if cond then
      s.passed = s.passed + 1
    else
      s.failed = s.failed + 1
      s.failures[#s.failures + 1] = tostring(msg)
    end
    return cond
  end
  function s.eq(got, want, msg)
    return s.ok(got == want, (msg or "eq") .. ": got " .. tostring(got) .. ", want " .. tostring(want))
  end
  -- Expects f(...) to raise; returns the message.
  function s.raises(msg, f, ...)
    local ok, err = pcall(f, ...)
    s.ok(not ok, msg .. ": did not raise")
    return tostring(err)
  end
  -- Expects nil, err (an operational failure) and returns err.
  function s.fails(msg, v, err, ...)
    s.ok(v == nil and type(err) == "string", msg .. ": want nil, err; got " .. tostring(v) .. ", " .. tostring(err))
    return err, ...
  end
  function s.result()
    return { status = 200, body = { suite = s.name, passed = s.passed, failed = s.failed, failures = s.failures } }
  end
  return s
end

local function query(req)
  local out = {}
  for k, v in (req.query or ""):gmatch("([^&=]+)=([^&]*)") do
    out[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return out
end

-- Runs body(s, req) and turns an escaped error into a failure.
local function run_suite(name, body)
  return function(req, conf)
    local s = new_suite(name)
    local ok, err = pcall(body, s, req, conf)
    s.ok(ok, "suite raised: " .. tostring(err))
    return s.result()
  end
end

local suites = {}

function suites.json(s)
  s.eq(json.encode({ a = 1 }), '{"a":1}', "encode object")
  s.eq(json.encode({ 1, 2, 3 }), "[1,2,3]", "encode list")
  s.eq(json.encode({}), "{}", "an empty table is an object")
  s.eq(json.encode(json.array()), "[]", "json.array() is an empty array")
  s.eq(json.encode(json.array({})), "[]", "json.array({}) is an empty array")
  s.eq(json.encode("x"), '"x"', "encode a string")
  s.eq(json.encode(3), "3", "integer stays integer")
  s.eq(json.encode(1.5), "1.5", "float")
  s.eq(json.encode(true), "true", "boolean")
  s.eq(json.encode(json.null), "null", "null sentinel encodes as null")
  s.eq(json.encode({ a = json.null }), '{"a":null}', "null inside an object")
  s.eq(json.encode({ s = "é\n\"" }), '{"s":"é\\n\\""}', "escapes")
  local v = json.decode('{"a":[1,2,{"b":null}],"c":"d","e":1.25,"f":false}')
  s.eq(type(v), "table", "decode object")
  s.eq(v.a[1], 1, "array element")
  s.eq(math.type(v.a[1]), "integer", "integers decode as integers")
  s.eq(v.a[3].b, json.null, "null decodes to json.null")
  s.ok(v.a[3].b ~= nil, "json.null is not nil")
  s.eq(v.c, "d", "string")
  s.eq(v.e, 1.25, "float")
  s.eq(v.f, false, "false")
  s.eq(json.decode("null"), json.null, "top-level null")
  s.eq(json.decode('"\\u00e9"'), "é", "unicode escape")
  s.eq(json.encode(json.decode("[]")), "[]", "a decoded empty array stays an array")
  s.eq(json.encode(json.decode("{}")), "{}", "a decoded empty object stays an object")
  s.eq(json.encode(json.decode('{"x":[]}')), '{"x":[]}', "nested empty array round-trips")
  -- Failures are nil, err.
  local err = s.fails("non-UTF-8 string", json.encode("\xff\xfe"))
  s.ok(err and err:find("UTF%-8"), "the error names UTF-8: " .. tostring(err))
  err = s.fails("non-UTF-8 inside a table", json.encode({ a = { "ok", "\xc3" } }))
  s.fails("decode garbage", json.decode("{nope"))
  err = s.fails("decode truncated", json.decode('{"a":'))
  s.ok(err and err:find("json.decode"), "decode error is prefixed: " .. tostring(err))
  s.fails("decode invalid UTF-8", json.decode('"\xff"'))
  s.fails("a function has no JSON form", json.encode({ f = function() end }))
  s.fails("NaN", json.encode(0 / 0))
  s.fails("infinity", json.encode(math.huge))
  s.fails("mixed keys", json.encode({ 1, 2, x = 3 }))
  local cyc = {}
  cyc.self = cyc
  err = s.fails("a cycle", json.encode(cyc))
  s.raises("decode(nil) is misuse", json.decode)
  s.raises("encode() is misuse", json.encode)
end

local function hex(b) return crypto.hex(b) end

function suites.crypto(s)
  s.eq(hex(crypto.sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256('')")
  s.eq(hex(crypto.sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256('abc')")
  s.eq(#crypto.sha256("x"), 32, "sha256 returns raw bytes")
  -- RFC 4231 test case 2.
  s.eq(hex(crypto.hmac_sha256("Jefe", "what do ya want for nothing?")),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "HMAC RFC 4231 #2")
  -- GitHub's documented example (X-Hub-Signature-256).
  s.eq("sha256=" .. hex(crypto.hmac_sha256("It's a Secret to Everybody", "Hello, World!")),
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "GitHub vector")
  -- RFC 4648 section 10.
  local b64 = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==", fooba = "Zm9vYmE=",
    foobar = "Zm9vYmFy" }
  for plain, enc in pairs(b64) do
    s.eq(crypto.base64(plain), enc, "base64(" .. plain .. ")")
    s.eq(crypto.base64_decode(enc), plain, "base64_decode(" .. enc .. ")")
  end
  local bin = "\0\1\2\254\255"
  s.eq(crypto.base64_decode(crypto.base64(bin)), bin, "binary round trip")
  s.fails("base64_decode of garbage", crypto.base64_decode("!!!!"))
  s.eq(crypto.hex("\0\15\255"), "000fff", "hex")
  s.eq(crypto.hex(""), "", "hex('')")
  s.eq(#crypto.random(16), 16, "random(16)")
  s.eq(crypto.random(0), "", "random(0)")
  s.eq(#crypto.random(4096), 4096, "random(4096)")
  s.ok(crypto.random(16) ~= crypto.random(16), "random differs")
  s.raises("random(-1)", crypto.random, -1)
  s.raises("random(4097)", crypto.random, 4097)
  s.raises("random('x')", crypto.random, "x")
  s.eq(crypto.constant_time_equal("abc", "abc"), true, "equal")
  s.eq(crypto.constant_time_equal("abc", "abd"), false, "differs")
  s.eq(crypto.constant_time_equal("abc", "abcd"), false, "length differs")
  s.eq(crypto.constant_time_equal("", ""), true, "empty")
  s.raises("constant_time_equal(nil)", crypto.constant_time_equal, nil, "a")
end

-- /work/shared/reference/signature-vectors.json
local VECTORS = {
  { secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id = "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp = 1614265330,
    body = '{"test": 2432232314}', signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" },
  { secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
    timestamp = 1649367553, body = '{"email":"test@example.com","username":"test_user"}',
    signature = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=" },
}

function suites.sign(s)
  local far = 2147483647 -- a tolerance that admits the vectors' old timestamps
  for i, v in ipairs(VECTORS) do
    s.eq(hookgate.sign(v.secret, v.id, v.timestamp, v.body), v.signature, "vector " .. i)
    local h = { ["webhook-id"] = v.id, ["webhook-timestamp"] = tostring(v.timestamp), ["webhook-signature"] = v.signature }
    s.eq(hookgate.verify(v.secret, h, v.body, far), true, "verify vector " .. i)
    s.eq(hookgate.verify({ "whsec_" .. crypto.base64("other key"), v.secret }, h, v.body, far), true,
      "verify with a list of secrets " .. i)
    local err = s.fails("old timestamp, default tolerance", hookgate.verify(v.secret, h, v.body))
    s.ok(err and err:find("tolerance"), "names the tolerance: " .. tostring(err))
  end
  local v = VECTORS[1]
  local now = os.time()
  local sig = hookgate.sign(v.secret, v.id, now, v.body)
  local good = { ["Webhook-Id"] = v.id, ["WEBHOOK-TIMESTAMP"] = tostring(now), ["webhook-signature"] = sig }
  s.eq(hookgate.verify(v.secret, good, v.body), true, "fresh signature, header names in any case")
  -- Several signatures in one header (rotation): any one matching passes.
  local multi = { ["webhook-id"] = v.id, ["webhook-timestamp"] = tostring(now),
    ["webhook-signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " .. sig }
  s.eq(hookgate.verify(v.secret, multi, v.body), true, "one of several signatures")
  -- The rejections the reference lists.
  for _, missing in ipairs({ "webhook-id", "webhook-timestamp", "webhook-signature" }) do
    local h = { ["webhook-id"] = v.id, ["webhook-timestamp"] = tostring(now), ["webhook-signature"] = sig }
    h[missing] = nil
    s.fails("missing " .. missing, hookgate.verify(v.secret, h, v.body))
  end
  s.fails("timestamp 'hello'", hookgate.verify(v.secret,
    { ["webhook-id"] = v.id, ["webhook-timestamp"] = "hello", ["webhook-signature"] = sig }, v.body))
  -- 310, not 301: os.time() here and the clock hookgate.verify reads may
  -- straddle a second boundary (it happened under ASan).
  for _, off in ipairs({ -310, 310 }) do
    local ts = now + off
    local h = { ["webhook-id"] = v.id, ["webhook-timestamp"] = tostring(ts),
      ["webhook-signature"] = hookgate.sign(v.secret, v.id, ts, v.body) }
    local err = s.fails("timestamp off by " .. off .. " s", hookgate.verify(v.secret, h, v.body))
    s.ok(err and err:find("tolerance"), "names the tolerance: " .. tostring(err))
  end
  local h = { ["webhook-id"] = v.id, ["webhook-timestamp"] = tostring(v.timestamp),
    ["webhook-signature"] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=" }
  local err = s.fails("one character off", hookgate.verify(v.secret, h, v.body, far))
  s.ok(err and err:find("no signature matches"), "names the mismatch: " .. tostring(err))
  s.fails("a different body", hookgate.verify(v.secret, good, v.body .. " "))
  s.fails("empty secret", hookgate.verify("", good, v.body))
  s.fails("'whsec_' alone", hookgate.verify("whsec_", good, v.body))
  s.raises("sign with an empty secret", hookgate.sign, "", v.id, now, v.body)
  s.raises("sign with 'whsec_' alone", hookgate.sign, "whsec_", v.id, now, v.body)
  s.raises("sign with a non-integer timestamp", hookgate.sign, v.secret, v.id, "x", v.body)
  s.raises("verify without headers", hookgate.verify, v.secret, nil, v.body)
end

function suites.shared(s)
  local sh = hookgate.shared
  local p = "selftest:" .. crypto.hex(crypto.random(4)) .. ":"
  s.eq(sh.get(p .. "missing"), nil, "a missing key is nil")
  s.eq(sh.set(p .. "a", "x"), true, "set")
  s.eq(sh.get(p .. "a"), "x", "get")
  sh.set(p .. "t", { n = 1, l = { 1, 2 } })
  local t = sh.get(p .. "t")
  s.ok(type(t) == "table" and t.n == 1 and t.l[2] == 2, "tables are stored as JSON copies")
  t.n = 99
  s.eq(sh.get(p .. "t").n, 1, "a read value is a copy")
  s.eq(sh.set(p .. "a", nil), true, "set nil")
  s.eq(sh.get(p .. "a"), nil, "set nil deletes")
  s.eq(sh.incr(p .. "c"), 1, "incr of a missing key starts at 0")
  s.eq(sh.incr(p .. "c", 5), 6, "incr by 5")
  s.eq(math.type(sh.get(p .. "c")), "integer", "an integer counter stays integer")
  s.eq(sh.incr(p .. "c", -6), 0, "incr by a negative number")
  s.eq(sh.incr(p .. "f", 0.5), 0.5, "float increment")
  s.raises("set a function", sh.set, p .. "fn", function() end)
  s.raises("negative ttl", sh.set, p .. "x", 1, -1)
  s.raises("key must be a string", sh.get, {})
  -- TTLs.
  sh.set(p .. "ttl", "soon gone", 0.2)
  sh.set(p .. "keep", "stays", 60)
  sh.incr(p .. "cttl", 1, 0.2)
  s.eq(sh.get(p .. "ttl"), "soon gone", "before the ttl")
  hookgate.sleep(0.35)
  s.eq(sh.get(p .. "ttl"), nil, "expired after the ttl")
  s.eq(sh.get(p .. "keep"), "stays", "a longer ttl has not expired")
  s.eq(sh.incr(p .. "cttl", 1), 1, "an expired counter starts again")
end

function suites.sleep(s)
  s.eq(select("#", hookgate.sleep(0)), 0, "sleep(0) returns nothing")
  local c0 = os.clock()
  hookgate.sleep(0.2)
  s.ok(os.clock() - c0 < 0.1, "sleeping does not use CPU")
  s.raises("sleep(-1)", hookgate.sleep, -1)
  s.raises("sleep('x')", hookgate.sleep, "x")
  s.raises("sleep(86401)", hookgate.sleep, 86401)
  -- Runs longer than the CPU budget in wall time, so long as they wait.
  for _ = 1, 5 do hookgate.sleep(0.06) end
  s.ok(true, "slept past the CPU budget in wall time")
end

function suites.timers(s)
  local n = hookgate.shared.get("selftest:timer") or 0
  s.ok(n >= 1, "the plugin timer has run (count " .. tostring(n) .. ")")
  hookgate.sleep(0.35)
  s.ok((hookgate.shared.get("selftest:timer") or 0) > n, "and runs again")
end

function suites.http(s, req)
  local receiver = query(req).receiver
  if not s.ok(receiver, "needs ?receiver=") then return end
  local res, err = hookgate.http.request({ url = receiver .. "/echo?x=1" })
  if s.ok(res, "GET the receiver: " .. tostring(err)) then
    s.eq(res.status, 200, "status")
    local echo = json.decode(res.body)
    s.eq(echo.method, "GET", "default method")
    s.eq(echo.url, "/echo?x=1", "path and query")
    s.eq(res.headers["x-receiver"], "yes", "response header names are lowercase")
    s.eq(res.truncated, false, "not truncated")
  end
  res, err = hookgate.http.request({ method = "POST", url = receiver .. "/echo", body = "hello",
    headers = { ["X-Test"] = "1", ["Content-Type"] = "text/plain" }, timeout = 5 })
  if s.ok(res, "POST: " .. tostring(err)) then
    local echo = json.decode(res.body)
    s.eq(echo.method, "POST", "method")
    s.eq(echo.body, "hello", "body")
    s.eq(echo.headers["x-test"], "1", "request header")
  end
  res, err = hookgate.http.request({ url = receiver .. "/status/503" })
  s.ok(res and res.status == 503, "a 5xx answer is a response, not an error")
  -- SSRF: addresses outside lua/delivery allow_cidrs are refused.
  for _, url in ipairs({ "http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/", "http://192.168.0.1/" }) do
    res, err = hookgate.http.request({ url = url, timeout = 2 })
    s.fails("SSRF refusal for " .. url, res, err)
  end
  s.fails("not a URL", hookgate.http.request({ url = "not a url" }))
  s.fails("an unsupported scheme", hookgate.http.request({ url = "ftp://127.0.0.1/" }))
  res, err = hookgate.http.request({ url = receiver .. "/slow", timeout = 0.2 })
  s.fails("timeout", res, err)
  s.raises("url is required", hookgate.http.request, {})
  s.raises("the argument is a table", hookgate.http.request, "http://x/")
  s.raises("timeout range", hookgate.http.request, { url = receiver, timeout = 0 })
end

-- The management API: each call returns data, or nil, "status message", {status=, type=, ...}.
function suites.management(s, req)
  local receiver = query(req).receiver
  if not s.ok(receiver, "needs ?receiver=") then return end
  local wh, err, e = hookgate.webhooks.create({ url = receiver .. "/hook", events = { "user.created" },
    metadata = { by = "selftest" } })
  if not s.ok(wh, "create: " .. tostring(err)) then return end
  s.ok(wh.id:find("^wh_"), "create returns the webhook")
  s.ok(wh.secret:find("^whsec_"), "with its secret")
  local got = hookgate.webhooks.get(wh.id)
  s.eq(got and got.url, receiver .. "/hook", "get")
  local list = hookgate.webhooks.list()
  local found = false
  for _, w in ipairs(list and list.webhooks or {}) do if w.id == wh.id then found = true end end
  s.ok(found, "list contains it")
  list = hookgate.webhooks.list({ limit = 1 })
  s.eq(list and #list.webhooks, 1, "list with a query")
  local upd = hookgate.webhooks.update(wh.id, { metadata = { by = "selftest", step = "updated" } })
  s.eq(upd and upd.metadata.step, "updated", "update")
  local rot = hookgate.webhooks.rotate_secret(wh.id)
  s.ok(rot and rot.secret and rot.secret ~= wh.secret, "rotate_secret returns a new secret")
  local test, terr = hookgate.webhooks.test(wh.id, { event = "user.created", data = { from = "selftest" } })
  s.ok(test and test.success == true and test.statusCode == 200,
    "test delivery: " .. json.encode(test or {}) .. " " .. tostring(terr))
  local ev, perr = hookgate.events.publish({ type = "user.created", data = { id = "u_selftest" } })
  s.ok(ev and ev.id and ev.deliveries >= 1, "events.publish: " .. tostring(perr))
  local dels
  for _ = 1, 50 do
    dels = hookgate.deliveries.list(wh.id, { limit = 10 })
    local done = 0
    for _, d in ipairs(dels and dels.deliveries or {}) do if d.status == "success" then done = done + 1 end end
    if done >= 2 then break end
    hookgate.sleep(0.05)
  end
  s.ok(dels and #dels.deliveries >= 1, "deliveries.list")
  local ours
  for _, d in ipairs(dels and dels.deliveries or {}) do if d.eventId == (ev and ev.id) then ours = d end end
  if s.ok(ours, "the published event's delivery is listed") then
    local d = hookgate.deliveries.get(wh.id, ours.id)
    s.eq(d and d.id, ours.id, "deliveries.get")
    local r, rerr = hookgate.deliveries.replay(wh.id, ours.id)
    s.ok(r and r.status == "pending", "deliveries.replay: " .. tostring(rerr))
  end
  -- Failures: nil, "status message", error table.
  local bad, berr, btab = hookgate.webhooks.create({ url = "nope", events = {} })
  s.fails("create invalid", bad, berr)
  s.ok(berr and berr:find("^422"), "the message starts with the status: " .. tostring(berr))
  s.ok(btab and btab.status == 422 and btab.type == "validation_error" and #btab.details >= 1,
    "the error table: " .. json.encode(btab or {}))
  -- A validation error answered at once (no yield) leaves the run able to do I/O.
  bad, berr, btab = hookgate.webhooks.update(wh.id, { plugins = { { name = "no-such-plugin" } } })
  s.ok(bad == nil and btab and btab.status == 422, "update with an unknown plugin: " .. tostring(berr))
  local sok, serr = pcall(hookgate.sleep, 0)
  s.ok(sok, "I/O still works after an immediate 422: " .. tostring(serr))
  s.eq(hookgate.webhooks.delete(wh.id), true, "delete returns true")
  got, err, e = hookgate.webhooks.get(wh.id)
  s.fails("get after delete", got, err)
  s.ok(e and e.status == 404, "404 after delete")
  s.fails("deliveries.get of a missing delivery", hookgate.deliveries.get(wh.id, "del_nope"))
  s.raises("an id with a slash is misuse", hookgate.webhooks.get, "wh_x/../../v1/keys")
  s.raises("an id is required", hookgate.webhooks.get)
end

-- User coroutines may call async primitives: the yield passes through.
function suites.coroutines(s, req)
  local f = coroutine.wrap(function(a)
    hookgate.sleep(0.01)
    local b = coroutine.yield(a + 1)
    hookgate.sleep(0.01)
    return b * 2
  end)
  s.eq(f(1), 2, "wrap: first yield after a sleep")
  s.eq(f(21), 42, "wrap: resumed value after another sleep")
  local co = coroutine.create(function()
    for i = 1, 3 do
      hookgate.sleep(0)
      coroutine.yield(i)
    end
    return "done"
  end)
  local seen = {}
  while true do
    local ok, v = coroutine.resume(co)
    s.ok(ok, "resume ok")
    seen[#seen + 1] = v
    if coroutine.status(co) == "dead" then break end
  end
  s.eq(table.concat(seen, ","), "1,2,3,done", "create/resume with sleeps inside")
  local co2 = coroutine.create(function() hookgate.sleep(0); error("inner") end)
  local ok, e = coroutine.resume(co2)
  s.ok(not ok and tostring(e):find("inner"), "an error inside a coroutine after a sleep is returned by resume")
  local g = coroutine.wrap(function() hookgate.sleep(0); error("wrapped") end)
  local ok2, e2 = pcall(g)
  s.ok(not ok2 and tostring(e2):find("wrapped"), "wrap rethrows")
  -- Nested coroutines.
  local outer = coroutine.wrap(function()
    local inner = coroutine.wrap(function() hookgate.sleep(0.01); return "inner" end)
    return inner() .. "+outer"
  end)
  s.eq(outer(), "inner+outer", "nested coroutines")
  local receiver = query(req).receiver
  if receiver then
    local r = coroutine.wrap(function() return hookgate.http.request({ url = receiver .. "/echo" }) end)()
    s.ok(r and r.status == 200, "http.request inside a coroutine")
  end
  -- pcall around a yielding call.
  local pok, pv = pcall(function() hookgate.sleep(0); return 7 end)
  s.ok(pok and pv == 7, "pcall around sleep")
end

function suites.log(s)
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    s.eq(select("#", hookgate.log[level]("selftest log line " .. level)), 0, "log." .. level)
  end
  s.raises("log needs a message", hookgate.log.info)
  print("selftest print", 1, nil, true)
  s.ok(type(hookgate.version) == "string", "hookgate.version")
end

local routes = {}
for name, body in pairs(suites) do
  routes[#routes + 1] = { method = "GET", path = "/selftest/" .. name, handler = run_suite(name, body) }
end
table.sort(routes, function(a, b) return a.path < b.path end)
routes[#routes + 1] = { method = "GET", path = "/selftest", handler = function()
  local names = json.array()
  for name in pairs(suites) do names[#names + 1] = name end
  table.sort(names)
  return { body = { suites = names } }
end }

return {
  name = "selftest",
  version = "1.0.0",
  priority = 0,
  routes = routes,
  timers = {
    { every = 0.1, handler = function() hookgate.shared.incr("selftest:timer", 1) end },
  },
}
