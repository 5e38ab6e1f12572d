// isolation-adversarial.test.mjs: a hostile tenant (and a hostile operator
// plugin) against the claims of docs/security.md. Each test is an attack;
// it passes when the attack fails. Tests of attacks that worked when this
// file was written fail until the code is fixed (see the review report on
// branch `review`); the others guard claims isolation.test.mjs does not
// cover yet.
//
// Three gateways: `gw` (one worker, one Lua state per worker: every job of
// another webhook evicts the last one), `gw2` (a small delivery pipeline,
// for fairness and shutdown), `gw3` (https only, started from a copy of the
// binary that the test then deletes, as a package upgrade does).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { BIN, startGateway, tempDir } from './lib/gateway.mjs';
import { makeKey } from './lib/keys.mjs';
import { startReceiver } from './lib/lua-receiver.mjs';
import { sleep } from './lib/expect.mjs';

const ASAN = ['ON', '1', 'true'].includes(process.env.HG_SANITIZE);
const SLOW = ASAN ? 3 : 1;
const BUDGET_S = 0.5 * SLOW;
const SANDBOX_MEMORY = 1024 * 1024;
const LEGACY_SECRET = 'legacy-secret-of-the-victim-7c2f';

// An operator plugin that attacks the shared hookgate module through a C
// function that sets metatables (json.array), then reads what it caught.
const PROBE = `
local caught = {}
return {
  name = "probe", version = "1",
  schema = { type = "object", properties = { mode = { type = "string" } } },
  transform = function(d, conf)
    if conf.mode == "array-arm" then
      local p = hookgate.crypto
      local saved = {}
      for k, v in pairs(p) do saved[k] = v end
      local ok = pcall(hookgate.json.array, p)
      local ok2 = pcall(function()
        for k, v in pairs(saved) do p[k] = v end
        -- Passes through (the other tests of this gateway still sign), and keeps the key.
        p.hmac_sha256 = function(k, m) caught[#caught + 1] = k; return saved.hmac_sha256(k, m) end
      end)
      d.headers["X-Array"] = (ok and "allowed" or "refused") .. "," .. (ok2 and "allowed" or "refused")
    elseif conf.mode == "runtime-name" then
      -- The CPU hook spares code whose chunk is named like runtime.lua.
      load("while true do end", "@/usr/share/hookgate/runtime.lua")()
    elseif conf.mode == "xpcall-nil" then
      -- Plugins' xpcall (in runtime.lua) calls the handler it was given.
      xpcall(function() error("boom") end)
    elseif conf.mode == "array-read" then
      d.headers["X-Caught"] = "[" .. table.concat(caught, ";") .. "]"
      d.headers["X-Hmac"] = hookgate.crypto.hex(hookgate.crypto.hmac_sha256("k", "v")):sub(1, 8)
    end
  end,
}
`;

// --- helpers (each takes its gateway) ----------------------------------------------

const orgKey = async (g, org) => (await makeKey(g, 'webhooks:read,webhooks:write,events:publish', org)).key;

async function until(fn, ms = 15000 * SLOW, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(40);
  }
}

const createWebhook = async (g, key, url, extra = {}, type = 'user.created') => {
  const res = await g.request('POST', '/v1/webhooks', { key, body: { url, events: [type], ...extra } });
  assert.equal(res.status, 201, res.body);
  return res.json;
};
const publish = async (g, key, type = 'user.created', data = { n: 1 }) => {
  const res = await g.request('POST', '/v1/events', { key, body: { type, data } });
  assert.equal(res.status, 202, res.body);
  return res.json;
};
const deliveryOf = async (g, key, wh, evId) => {
  const res = await g.request('GET', `/v1/webhooks/${wh.id}/deliveries?limit=100`, { key });
  return res.json?.deliveries?.find((x) => x.eventId === evId);
};
const finalDelivery = (g, key, wh, evId, ms = 15000 * SLOW) => until(async () => {
  const d = await deliveryOf(g, key, wh, evId);
  return d && d.status !== 'pending' ? d : null;
}, ms, `a final delivery of ${evId}`);
const lastError = async (g, key, wh, d) =>
  (await g.request('GET', `/v1/webhooks/${wh.id}/deliveries/${d.id}`, { key })).json.attempts.at(-1)?.error;
const metric = async (g, name) => {
  const body = (await g.request('GET', '/metrics')).body;
  const m = body.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
};
// Resolves with 'still running' after ms, without holding the process open.
const deadline = (ms) => new Promise((resolve) => setTimeout(() => resolve('still running'), ms).unref());
const healthy = async (g) => (await g.request('GET', '/healthz')).status === 200;
const finished = async (g, key, wh) =>
  ((await g.request('GET', `/v1/webhooks/${wh.id}/deliveries?limit=100`, { key })).json?.deliveries ?? [])
    .filter((d) => d.status !== 'pending').length;

// The children of a process, as [pid, state] from /proc.
function children(pid) {
  const out = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid) out.push([Number(p), f[0]]);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

// A receiver that takes requests of any size (node's has a 16 KiB header
// limit) and records how many bytes each had.
async function startRawReceiver() {
  const requests = [];
  const server = net.createServer((sock) => {
    let chunks = [], size = 0, need = -1;
    sock.on('data', (b) => {
      chunks.push(b);
      size += b.length;
      if (need < 0) {
        const all = Buffer.concat(chunks);
        chunks = [all];
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = all.subarray(0, end).toString('latin1');
        const cl = Number(head.match(/\r\ncontent-length:\s*(\d+)/i)?.[1] ?? 0);
        need = end + 4 + cl;
        requests.push({ line: head.slice(0, head.indexOf('\r\n')), bytes: 0, headerBytes: end + 4 });
      }
      if (need >= 0 && size >= need) {
        requests.at(-1).bytes = size;
        chunks = [];
        size = 0;
        need = -1;
        sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        sock.end();
      }
    });
    sock.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

let gw, rx, raw, dir, keyA, keyB;

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'plugins', 'probe'), { recursive: true });
  writeFileSync(join(dir, 'plugins', 'probe', 'init.lua'), PROBE);
  rx = await startReceiver();
  raw = await startRawReceiver();
  gw = await startGateway({
    dir,
    config: `
lua = { plugin_paths = { ${JSON.stringify(join(dir, 'plugins'))}, ${JSON.stringify(new URL('../../plugins', import.meta.url).pathname)} } }
sandbox = { workers = 1, states = 1, cpu_budget = ${BUDGET_S}, grace = ${(ASAN ? 100 : 40) / 1000}, memory = ${SANDBOX_MEMORY} }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0 }, jitter = 0 }
`,
  });
  keyA = await orgKey(gw, 'org_a');
  keyB = await orgKey(gw, 'org_b');
});

after(async () => {
  // The receivers close first: a failed assertion below must not leave
  // them listening (the test process would never end).
  const res = gw ? await gw.stop() : null;
  if (rx) await rx.close();
  if (raw) await raw.close();
  if (gw) {
    assert.equal(res.code, 0, `gateway exited with ${res.code ?? res.signal}:\n${gw.logs().slice(-3000)}`);
    assert.doesNotMatch(gw.logs(), /AddressSanitizer|LeakSanitizer|runtime error:/);
  }
});

describe('the worker process: what the watchdog and the pool leave behind', () => {
  it('a worker the watchdog killed is reaped: no zombie process per kill', async () => {
    // A pattern that backtracks in C for minutes: only the watchdog stops it.
    const bad = await createWebhook(gw, keyA, `${rx.url}/zombie`,
      { transform: 'function(d) d.body = tostring((("a"):rep(400)):find(".-.-.-.-b")) end' }, 'session.created');
    const kills = await metric(gw, 'hookgate_sandbox_watchdog_kills_total');
    for (let i = 0; i < 3; i++) {
      const ev = await publish(gw, keyA, 'session.created', { i });
      const d = await finalDelivery(gw, keyA, bad, ev.id);
      assert.match(await lastError(gw, keyA, bad, d), /CPU budget exceeded/);
    }
    assert.ok(await metric(gw, 'hookgate_sandbox_watchdog_kills_total') >= kills + 3);
    await until(async () => (await metric(gw, 'hookgate_sandbox_workers')) === 1, 5000 * SLOW, 'the worker again');
    // Killed processes are reaped (by the loop's SIGCHLD handling) soon after.
    let zombies = [];
    for (let i = 0; i < 50; i++) {
      zombies = children(gw.proc.pid).filter(([, s]) => s === 'Z');
      if (zombies.length === 0) break;
      await sleep(40);
    }
    assert.deepEqual(zombies, [], `the gateway keeps ${zombies.length} zombie workers (one per kill: PIDs run out)`);
    assert.ok(children(gw.proc.pid).length <= 1, 'one live worker');
    await gw.request('DELETE', `/v1/webhooks/${bad.id}`, { key: keyA });
  });

  it("hookgate.verify with numbers as secrets reads no freed memory (the worker survives; ASan: no use-after-free)", async () => {
    // luaL_checkstring converts a number on the stack; popped, the string
    // has no reference and a GC step in the next conversion can free it
    // while secrets[] still points at it.
    // 1,000 rounds (each frees garbage for the collector to step on): far
    // inside the CPU budget under a sanitizer on a loaded machine, where
    // 3,000 took up to a quarter of it.
    const code = `function(d)
      local bad, n = 0, 0
      for round = 1, 1000 do
        local s = {}
        for i = 1, 16 do s[i] = 900000000000 + round * 16 + i end
        local sig = hookgate.sign(tostring(s[1]), "msg", 1, "body")
        local ok = hookgate.verify(s, { ["webhook-id"] = "msg", ["webhook-timestamp"] = "1", ["webhook-signature"] = sig }, "body", 2147483647)
        if not ok then bad = bad + 1 end
        n = n + 1
        local g = {} for i = 1, 40 do g[i] = { i } end
      end
      d.headers["X-Verify"] = n .. "," .. bad
    end`;
    const wh = await createWebhook(gw, keyA, `${rx.url}/verify`, { transform: code }, 'session.revoked');
    const ev = await publish(gw, keyA, 'session.revoked');
    const d = await finalDelivery(gw, keyA, wh, ev.id);
    assert.equal(d.status, 'success', await lastError(gw, keyA, wh, d));
    const r = rx.requests.find((x) => x.url === '/verify');
    assert.equal(r.headers['x-verify'], '1000,0');
    assert.doesNotMatch(gw.logs(), /AddressSanitizer/);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`, { key: keyA });
  });
});

describe('what a transform answers is checked and bounded', () => {
  it('the result cannot outgrow sandbox.memory: one string as the body and 60 header values is refused', async () => {
    // 400 KiB fits in a 1 MiB state; the answer refers to it 61 times
    // (~25 MB), which the gateway copies, holds for the whole request and
    // sends. Delivered N at a time to a receiver that is slow to answer,
    // that is N x 64 MiB in the gateway whatever sandbox.memory says.
    const code = `function(d)
      local s = string.rep("a", 400 * 1024)
      d.body = s
      d.headers = {}
      for i = 1, 60 do d.headers["X-H" .. i] = s end
    end`;
    const wh = await createWebhook(gw, keyA, `${raw.url}/amplify`, { transform: code }, 'mfa.enrolled');
    const ev = await publish(gw, keyA, 'mfa.enrolled');
    const d = await finalDelivery(gw, keyA, wh, ev.id);
    const sent = raw.requests.filter((x) => x.line.includes('/amplify'));
    const biggest = Math.max(0, ...sent.map((x) => x.bytes));
    assert.ok(biggest <= 2 * SANDBOX_MEMORY, `the gateway sent a ${biggest}-byte request from a ${SANDBOX_MEMORY}-byte sandbox`);
    assert.equal(d.status, 'failed');
    assert.match(await lastError(gw, keyA, wh, d), /^script_error: .*(more than 64 KiB of names and values|over sandbox\.memory)/);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`, { key: keyA });
  });

  it('header injection, NUL, wrong types and metatables on the delivery fail the run; nothing is sent', async () => {
    const cases = {
      crlf: ['function(d) d.headers["X-A"] = "a\\r\\nInjected: 1" end', /characters HTTP does not allow/],
      lf_name: ['function(d) d.headers["X-A\\nB"] = "v" end', /characters HTTP does not allow/],
      nul_value: ['function(d) d.headers["X-A"] = "a\\0b" end', /characters HTTP does not allow/],
      nul_url: ['function(d) d.url = d.url .. "\\0x" end', /url contains a NUL byte/],
      url_number: ['function(d) d.url = 5 end', /url must be a string/],
      body_table: ['function(d) d.body = {} end', /body must be a string/],
      too_many: ['function(d) for i = 1, 65 do d.headers["X-" .. i] = "v" end end', /more than 60 request headers/],
      // Read raw: no metamethod of the script runs in the worker's C code.
      metatables: [`function(d)
          local h = d.headers
          d.headers = setmetatable({}, { __index = h, __pairs = function() while true do end end })
          setmetatable(d, { __index = function() while true do end end })
          d.url = nil
        end`, /url must be a string/],
      error_object: ['function(d) error(setmetatable({}, { __tostring = function() while true do end end })) end', /error object is a table value/],
    };
    const hooks = {};
    for (const [name, [code]] of Object.entries(cases)) {
      hooks[name] = await createWebhook(gw, keyA, `${rx.url}/inject-${name}`, { transform: code }, 'mfa.removed');
    }
    const ev = await publish(gw, keyA, 'mfa.removed');
    for (const [name, [, re]] of Object.entries(cases)) {
      const d = await finalDelivery(gw, keyA, hooks[name], ev.id);
      assert.equal(d.status, 'failed', name);
      const err = await lastError(gw, keyA, hooks[name], d);
      assert.match(err, re, `${name}: ${err}`);
      assert.ok(!err.includes('CPU budget'), `${name}: no script code ran in the worker's C code: ${err}`);
    }
    assert.equal(rx.requests.filter((x) => x.url.startsWith('/inject-')).length, 0);
    assert.ok(await healthy(gw));
    for (const wh of Object.values(hooks)) await gw.request('DELETE', `/v1/webhooks/${wh.id}`, { key: keyA });
  });

  it("a header named like the gateway's in another case does not ride along with the gateway's signature", async () => {
    // The gateway replaces the first header of each of its names (any case);
    // a second spelling of the same name stays and is sent too.
    const code = `function(d)
      d.headers["webhook-signature"] = "v1,Zm9yZ2Vk" d.headers["WEBHOOK-SIGNATURE"] = "v1,Zm9yZ2Vk"
      d.headers["webhook-id"] = "msg_forged" d.headers["Webhook-Id"] = "msg_forged"
    end`;
    const wh = await createWebhook(gw, keyA, `${rx.url}/dupsig`, { transform: code }, 'oauth.consent.granted');
    const ev = await publish(gw, keyA, 'oauth.consent.granted');
    const r = await rx.waitFor((x) => x.url === '/dupsig', 10000 * SLOW);
    assert.equal(r.headers['webhook-id'], ev.id, 'one webhook-id, the gateway\'s');
    assert.doesNotMatch(r.headers['webhook-signature'], /Zm9yZ2Vk/, 'one webhook-signature, the gateway\'s');
    new Webhook(wh.secret).verify(r.body, r.headers);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`, { key: keyA });
  });

  it('deep and cyclic JSON through hookgate.json answer nil and an error; the run goes on', async () => {
    const code = `function(d)
      local v, e = hookgate.json.decode(string.rep("[", 200000))
      local t = {} local c = t for i = 1, 100 do c[1] = {} c = c[1] end
      local v2, e2 = hookgate.json.encode(t)
      local cyc = {} cyc.self = cyc
      local v3, e3 = hookgate.json.encode(cyc)
      d.headers["X-Json"] = table.concat({ tostring(v), tostring(v2), tostring(v3), tostring(e ~= nil), tostring(e2 ~= nil), tostring(e3 ~= nil) }, ",")
    end`;
    const wh = await createWebhook(gw, keyA, `${rx.url}/json`, { transform: code }, 'oauth.consent.revoked');
    const ev = await publish(gw, keyA, 'oauth.consent.revoked');
    const r = await rx.waitFor((x) => x.url === '/json', 10000 * SLOW);
    assert.equal(r.headers['x-json'], 'nil,nil,nil,true,true,true');
    assert.equal((await finalDelivery(gw, keyA, wh, ev.id)).status, 'success');
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`, { key: keyA });
  });
});

describe("one tenant's state cannot run code in another's job", () => {
  it("a finalizer or a pending __close left in an evicted state does not run in the next webhook's job", async () => {
    // sandbox.states = 1: B's job evicts A's state (lua_close). Whatever
    // A left behind must not run there. json arrays' metatable is hidden
    // (no __gc can be added to it); a coroutine suspended with a pending
    // <close> variable is not closed by lua_close.
    const evil = `function(d)
      local mt = getmetatable(hookgate.json.array({}))
      d.headers["X-Mt"] = type(mt) == "table" and "table" or tostring(mt)
      if type(mt) == "table" then pcall(function() mt.__gc = function() while true do end end end) end
      keep = hookgate.json.decode("[1, 2, 3]")
      co = coroutine.create(function()
        local x <close> = setmetatable({}, { __close = function() while true do end end })
        coroutine.yield()
      end)
      coroutine.resume(co)
    end`;
    const whA = await createWebhook(gw, keyA, `${rx.url}/evicted`, { transform: evil }, 'user.deleted');
    const whB = await createWebhook(gw, keyB, `${rx.url}/evictor`, { transform: 'function(d) d.headers["X-B"] = "ok" end' }, 'user.deleted');
    const evA = await publish(gw, keyA, 'user.deleted');
    assert.equal((await finalDelivery(gw, keyA, whA, evA.id)).status, 'success');
    const rA = rx.requests.find((x) => x.url === '/evicted');
    assert.equal(rA.headers['x-mt'], 'json array');
    const evB2 = await publish(gw, keyB, 'user.deleted');
    const dB = await finalDelivery(gw, keyB, whB, evB2.id);
    assert.equal(dB.status, 'success', await lastError(gw, keyB, whB, dB));
    await gw.request('DELETE', `/v1/webhooks/${whA.id}`, { key: keyA });
    await gw.request('DELETE', `/v1/webhooks/${whB.id}`, { key: keyB });
  });

  it('a reload while a transform runs: the run ends at its budget, the next transform runs', async () => {
    const bad = await createWebhook(gw, keyA, `${rx.url}/reload-bad`, { transform: 'function(d) while true do end end' }, 'user.created');
    const good = await createWebhook(gw, keyB, `${rx.url}/reload-good`, { transform: 'function(d) d.headers["X-Ok"] = "1" end' }, 'user.updated');
    const evBad = await publish(gw, keyA, 'user.created');
    await sleep(BUDGET_S * 300); // the run is (most likely) going on now
    const rl = await gw.request('POST', '/v1/admin/reload');
    assert.equal(rl.status, 200, rl.body);
    const dBad = await finalDelivery(gw, keyA, bad, evBad.id);
    assert.equal(dBad.status, 'failed');
    assert.match(await lastError(gw, keyA, bad, dBad), /CPU budget exceeded/);
    const evGood = await publish(gw, keyB, 'user.updated');
    assert.equal((await finalDelivery(gw, keyB, good, evGood.id)).status, 'success');
    assert.ok(await healthy(gw));
    await gw.request('DELETE', `/v1/webhooks/${bad.id}`, { key: keyA });
    await gw.request('DELETE', `/v1/webhooks/${good.id}`, { key: keyB });
  });
});

describe('operator plugins: the shared hookgate module holds', () => {
  it("hookgate.json.array cannot strip a read-only proxy and hand the other plugins a hookgate.crypto that keeps their secrets", async () => {
    const arm = await createWebhook(gw, undefined, `${rx.url}/arm`, { plugins: [{ name: 'probe', config: { mode: 'array-arm' } }] }, 'organization.created');
    const victim = await createWebhook(gw, keyB, `${rx.url}/victim`,
      { plugins: [{ name: 'legacy-signature', config: { secret: LEGACY_SECRET } }] }, 'organization.updated');
    const read = await createWebhook(gw, undefined, `${rx.url}/read`, { plugins: [{ name: 'probe', config: { mode: 'array-read' } }] }, 'organization.member.added');
    await publish(gw, undefined, 'organization.created');
    const rArm = await rx.waitFor((x) => x.url === '/arm', 10000 * SLOW);
    await publish(gw, keyB, 'organization.updated');
    await rx.waitFor((x) => x.url === '/victim', 10000 * SLOW);
    await publish(gw, undefined, 'organization.member.added');
    const rRead = await rx.waitFor((x) => x.url === '/read', 10000 * SLOW);
    assert.ok(!rRead.headers['x-caught'].includes(LEGACY_SECRET), `a plugin caught another webhook's secret: ${rRead.headers['x-caught']}`);
    assert.equal(rArm.headers['x-array'].split(',')[1], 'refused', 'hookgate.crypto was writable after json.array');
    for (const wh of [arm, read]) await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
    await gw.request('DELETE', `/v1/webhooks/${victim.id}`, { key: keyB });
  });
});

describe('operator plugins: errors and the CPU budget', () => {
  it("a plugin's error does not name the server's path of runtime.lua (xpcall without a handler)", async () => {
    const wh = await createWebhook(gw, undefined, `${rx.url}/xnil`, { plugins: [{ name: 'probe', config: { mode: 'xpcall-nil' } }] }, 'organization.member.removed');
    const ev = await publish(gw, undefined, 'organization.member.removed');
    const d = await finalDelivery(gw, undefined, wh, ev.id);
    const err = await lastError(gw, undefined, wh, d);
    const root = new URL('../..', import.meta.url).pathname; // where the server's files are
    assert.ok(!err.includes(root) && !err.includes('runtime.lua'), `a server path in: ${err}`);
    assert.match(err, /probe\/init\.lua:\d+/);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('a plugin cannot name its chunk like runtime.lua to run past lua.cpu_budget (the loop would hang)', async () => {
    // A gateway of its own: when the attack works, its loop never answers again.
    const g4 = await startGateway({
      config: `
lua = { plugin_paths = { ${JSON.stringify(join(dir, 'plugins'))} }, cpu_budget = ${0.2 * SLOW} }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0 }, jitter = 0 }
`,
    });
    try {
      const wh = await createWebhook(g4, undefined, `${rx.url}/rname`, { plugins: [{ name: 'probe', config: { mode: 'runtime-name' } }] }, 'user.created');
      await publish(g4, undefined, 'user.created');
      await sleep(600 * SLOW); // past the budget
      const h = await Promise.race([g4.request('GET', '/healthz').then((x) => x.status, () => 'no answer'), deadline(3000 * SLOW)]);
      assert.equal(h, 200, 'the gateway does not answer: its loop runs the plugin forever');
      // The run is stopped at its budget, then the attempt is recorded:
      // looked at until it is, on a loaded machine.
      let list;
      const failed = async () => {
        list = (await g4.request('GET', `/v1/webhooks/${wh.id}/deliveries`)).json.deliveries;
        return list.length > 0 && list[0].status === 'failed';
      };
      const end = Date.now() + 10000 * SLOW;
      while (!(await failed()) && Date.now() < end) await sleep(50);
      assert.equal(list[0]?.status, 'failed', JSON.stringify(list));
    } finally {
      await g4.stop('SIGKILL');
    }
  });
});

// --- fairness and shutdown: a small pipeline ------------------------------------------

describe("one organization's backlog, fairness and shutdown", () => {
  let g2, rx2, kA, kB;
  const BUDGET2 = 0.5;
  before(async () => {
    rx2 = await startReceiver();
    g2 = await startGateway({
      config: `
sandbox = { workers = 2, cpu_budget = ${BUDGET2}, grace = ${(ASAN ? 100 : 40) / 1000} }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0 }, jitter = 0, max_in_flight = 6 }
`,
    });
    kA = await orgKey(g2, 'org_a');
    kB = await orgKey(g2, 'org_b');
  });
  after(async () => {
    if (g2) await g2.stop('SIGKILL');
    if (rx2) await rx2.close();
  });

  it("org A's queued transforms do not hold org B's deliveries behind them (a worker is idle meanwhile)", async () => {
    // delivery.max_in_flight = 6: twelve items in the pipeline. A's jobs
    // wait in the sandbox's queue (A may run one at a time of the two
    // workers) holding those twelve places, so B's delivery, which needs
    // no worker at all, is not even loaded until A's backlog is through.
    const whA = await createWebhook(g2, kA, `${rx2.url}/a`, { transform: 'function(d) while true do end end' });
    const whB = await createWebhook(g2, kB, `${rx2.url}/b`, {});
    for (let i = 0; i < 16; i++) await publish(g2, kA, 'user.created', { i });
    await publish(g2, kB, 'user.created', { b: 1 });
    await rx2.waitFor((r) => r.url === '/b', 30000 * SLOW);
    const doneA = await finished(g2, kA, whA);
    assert.ok(doneA <= 2, `B's delivery waited for ${doneA} of A's runs of ${BUDGET2} s each (the claim: at most about a budget)`);
    void whB;
  });

  it('SIGTERM does not wait for every queued transform to run to its budget', async () => {
    const whA = await createWebhook(g2, kA, `${rx2.url}/a2`, { transform: 'function(d) while true do end end' }, 'user.updated');
    for (let i = 0; i < 16; i++) await publish(g2, kA, 'user.updated', { i });
    // The backlog waits in the delivery queue (an organization has at most
    // a quarter of max_in_flight in the sandbox); one of A's runs is in a
    // worker when the signal comes.
    await until(async () => (await metric(g2, 'hookgate_sandbox_running')) >= 1, 10000 * SLOW, "one of A's runs in a worker");
    void whA;
    g2.proc.kill('SIGTERM');
    // At most the runs in progress finish (one budget), then the process exits.
    const limit = (2 * BUDGET2 + SLOW) * 1000;
    const res = await Promise.race([g2.exited, deadline(limit)]);
    assert.notEqual(res, 'still running', `the gateway was still shutting down ${limit} ms after SIGTERM (it runs the whole queue first)`);
    assert.equal(res.code, 0);
  });
});

// --- https only, and a worker that cannot be started -----------------------------------

describe('a gateway whose workers cannot start again, and its URL policy', () => {
  let g3, rx3, copy;
  before(async () => {
    // A copy of the binary, deleted later: what a package upgrade does to a
    // running gateway's executable.
    const bdir = tempDir('hookgate-bin-');
    copy = join(bdir, 'hookgate');
    copyFileSync(BIN, copy);
    chmodSync(copy, 0o755);
    const saved = process.env.HOOKGATE_BIN;
    process.env.HOOKGATE_BIN = copy;
    const lib = await import(new URL('./lib/gateway.mjs?binary=copy', import.meta.url));
    if (saved === undefined) delete process.env.HOOKGATE_BIN;
    else process.env.HOOKGATE_BIN = saved;
    rx3 = await startReceiver();
    g3 = await lib.startGateway({
      config: `
sandbox = { workers = 1, cpu_budget = ${BUDGET_S}, grace = ${(ASAN ? 100 : 40) / 1000} }
webhooks = { allow_http = false }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0 }, jitter = 0 }
`,
    });
  });
  after(async () => {
    if (g3) await g3.stop('SIGKILL');
    if (rx3) await rx3.close();
  });

  it('with webhooks.allow_http = false, a transform cannot send the delivery over plain http', async () => {
    const wh = await createWebhook(g3, undefined, `https://127.0.0.1:${rx3.port}/tls`,
      { transform: `function(d) d.url = "http://127.0.0.1:${rx3.port}/downgraded" end` }, 'session.created');
    const ev = await publish(g3, undefined, 'session.created');
    const d = await finalDelivery(g3, undefined, wh, ev.id);
    assert.equal(rx3.requests.filter((r) => r.url === '/downgraded').length, 0, 'sent over http');
    assert.equal(d.status, 'failed');
    await g3.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('when no worker can be started, transform deliveries still end and SIGTERM still stops the gateway', async () => {
    unlinkSync(copy);
    const bad = await createWebhook(g3, undefined, `https://127.0.0.1:${rx3.port}/bad`,
      { transform: 'function(d) d.body = tostring((("a"):rep(400)):find(".-.-.-.-b")) end' }, 'session.revoked');
    const evBad = await publish(g3, undefined, 'session.revoked');
    assert.match(await lastError(g3, undefined, bad, await finalDelivery(g3, undefined, bad, evBad.id)), /CPU budget exceeded/);
    const good = await createWebhook(g3, undefined, `https://127.0.0.1:${rx3.port}/good`,
      { transform: 'function(d) d.headers["X-Ok"] = "1" end' }, 'mfa.enrolled');
    const evGood = await publish(g3, undefined, 'mfa.enrolled');
    let ended = null;
    try {
      ended = await finalDelivery(g3, undefined, good, evGood.id, 3000 * SLOW);
    } catch {
      ended = null;
    }
    assert.ok(await healthy(g3));
    g3.proc.kill('SIGTERM');
    const res = await Promise.race([g3.exited, deadline(3000 * SLOW)]);
    assert.notEqual(res, 'still running', 'SIGTERM: the gateway waits forever for jobs no worker will run');
    assert.ok(ended, 'the delivery stays pending in the sandbox queue forever (no worker, no timeout)');
  });
});
