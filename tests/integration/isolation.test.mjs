// isolation.test.mjs: tenant code is hostile input. A webhook's `transform`
// (written with an organization's key) runs in the sandbox's worker
// processes; whatever it does — loops, error handlers and finalizers that
// loop, backtracking patterns, allocation, deep recursion — its delivery
// ends as script_error, the gateway keeps answering, and other tenants'
// deliveries go on. Operator plugins keep the full API, but cannot replace
// the shared hookgate module under each other nor escape a pure phase.
// Real binary, real worker processes, real sockets.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { makeKey } from './lib/keys.mjs';
import { startReceiver } from './lib/lua-receiver.mjs';
import { sleep } from './lib/expect.mjs';

const ASAN = ['ON', '1', 'true'].includes(process.env.HG_SANITIZE);
const SLOW = ASAN ? 3 : 1;
const BUDGET_MS = 150;
const SANDBOX_MEMORY = 8 * 1024 * 1024;
const SHARED_MEMORY = 4 * 1024 * 1024;
const LEGACY_SECRET = 'legacy-secret-of-org-b-5d1e';

// An operator plugin that probes what a plugin may and may not do, by mode.
const PROBE = `
return {
  name = "probe", version = "1",
  schema = { type = "object", properties = { mode = { type = "string" } } },
  transform = function(d, conf)
    if conf.mode == "rawset" then
      local ok, e = pcall(rawset, hookgate.crypto, "hmac_sha256", function() return "stolen" end)
      local ok2 = pcall(rawset, hookgate, "crypto", {})
      d.headers["X-Rawset"] = (ok and "allowed" or "refused") .. "," .. (ok2 and "allowed" or "refused")
      d.headers["X-Rawset-Error"] = tostring(e)
    elseif conf.mode == "timer" then
      local ok, e = pcall(hookgate.timer.at, 0, function() end)
      d.headers["X-Timer"] = ok and "allowed" or tostring(e)
    elseif conf.mode == "shared" then
      local big, n, last = string.rep("x", 1024 * 1024), 0, nil
      for i = 1, 8 do
        local ok, e = hookgate.shared.set("big" .. i, big .. i)
        if ok then n = n + 1 else last = e end
      end
      for i = 1, 8 do hookgate.shared.set("big" .. i, nil) end
      local again = hookgate.shared.set("after", big)
      hookgate.shared.set("after", nil)
      d.headers["X-Shared"] = n .. "," .. tostring(last) .. "," .. tostring(again)
    elseif conf.mode == "error" then
      error("probe failed on purpose")
    elseif conf.mode == "xpcall" then
      xpcall(function() while true do end end, function() while true do end end)
    elseif conf.mode == "gc" then
      local ok, e = pcall(setmetatable, {}, { __gc = function() while true do end end })
      d.headers["X-Gc"] = ok and "allowed" or tostring(e)
    end
  end,
}
`;

let gw, rx, dir, keyA, keyB;

const orgKey = async (org) => (await makeKey(gw, 'webhooks:read,webhooks:write,events:publish', org)).key;

async function until(fn, ms = 15000 * SLOW, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(40);
  }
}

const createWebhook = async (key, path, extra = {}, type = 'user.created') => {
  const res = await gw.request('POST', '/v1/webhooks', { key, body: { url: `${rx.url}${path}`, events: [type], ...extra } });
  assert.equal(res.status, 201, res.body);
  return res.json;
};
const publish = async (key, type = 'user.created', data = { n: 1 }) => {
  const res = await gw.request('POST', '/v1/events', { key, body: { type, data } });
  assert.equal(res.status, 202, res.body);
  return res.json;
};
const finalDelivery = (key, wh, evId) => until(async () => {
  const res = await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries?limit=100`, { key });
  const d = res.json?.deliveries?.find((x) => x.eventId === evId);
  return d && d.status !== 'pending' ? d : null;
}, 15000 * SLOW, `a final delivery of ${evId}`);
const lastError = async (key, wh, d) =>
  (await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries/${d.id}`, { key })).json.attempts.at(-1).error;
const metric = async (name) => {
  const body = (await gw.request('GET', '/metrics')).body;
  const m = body.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
};
const healthy = async () => (await gw.request('GET', '/healthz')).status === 200;

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'plugins', 'probe'), { recursive: true });
  writeFileSync(join(dir, 'plugins', 'probe', 'init.lua'), PROBE);
  rx = await startReceiver();
  gw = await startGateway({
    dir,
    config: `
lua = { plugin_paths = { ${JSON.stringify(join(dir, 'plugins'))}, ${JSON.stringify(new URL('../../plugins', import.meta.url).pathname)} },
        shared_memory = ${SHARED_MEMORY} }
-- The watchdog (cpu_budget + grace) only for what the worker's own check cannot stop: a
-- descheduled worker must not lose the race to it (its message names no line).
sandbox = { workers = 2, cpu_budget = ${BUDGET_MS / 1000}, grace = ${(ASAN ? 1500 : 500) / 1000}, memory = ${SANDBOX_MEMORY} }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.2 }, jitter = 0 }
`,
  });
  keyA = await orgKey('org_a');
  keyB = await orgKey('org_b');
});

after(async () => {
  if (gw) {
    const { code, signal } = await gw.stop();
    assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs().slice(-3000)}`);
    assert.doesNotMatch(gw.logs(), /AddressSanitizer|LeakSanitizer|runtime error:/);
  }
  if (rx) await rx.close();
});

describe('a webhook transform reaches nothing but pure functions', () => {
  it('no I/O, timers, shared dictionary, management calls, logs, files, binary chunks or finalizers', async () => {
    const code = `function(d)
      for _, n in ipairs({ "sleep", "http", "webhooks", "deliveries", "events", "timer", "shared", "log" }) do
        local ok, e = pcall(function() return hookgate[n] end)
        d.headers["X-" .. n] = ok and "reachable" or (e:find("not allowed in the transform phase", 1, true) and "blocked" or e)
      end
      d.headers["X-Globals"] = table.concat({ tostring(io), tostring(os), tostring(require), tostring(dofile),
        tostring(loadfile), tostring(debug), tostring(collectgarbage), tostring(string.dump), tostring(package) }, ",")
      local f, e = load("\\27LuaT", "x", "b")
      d.headers["X-Binary"] = f and "loaded" or "refused"
      local ok, ge = pcall(setmetatable, {}, { __gc = function() end })
      d.headers["X-Gc"] = ok and "allowed" or ge
      d.headers["X-Pure"] = hookgate.crypto.hex(hookgate.crypto.sha256("abc")):sub(1, 8) .. "," .. hookgate.json.encode({ 1 })
      -- Past the generator's reseed interval (10,000 requests), under the
      -- worker's system call filter: randomness still comes.
      local ok = 0
      for i = 1, 12000 do if hookgate.crypto.random(8) then ok = ok + 1 end end
      d.headers["X-Random"] = tostring(ok)
    end`;
    const wh = await createWebhook(keyA, '/pure', { transform: code });
    const ev = await publish(keyA);
    const r = await rx.waitFor((x) => x.url === '/pure', 10000 * SLOW);
    for (const n of ['sleep', 'http', 'webhooks', 'deliveries', 'events', 'timer', 'shared', 'log']) {
      assert.equal(r.headers[`x-${n}`], 'blocked', `hookgate.${n}`);
    }
    assert.equal(r.headers['x-globals'], 'nil,nil,nil,nil,nil,nil,nil,nil,nil');
    assert.equal(r.headers['x-binary'], 'refused');
    assert.match(r.headers['x-gc'], /__gc metamethods are not allowed/);
    assert.equal(r.headers['x-pure'], 'ba7816bf,[1]');
    assert.equal(r.headers['x-random'], '12000');
    new Webhook(wh.secret).verify(r.body, r.headers);
    assert.equal((await finalDelivery(keyA, wh, ev.id)).status, 'success');
  });
});

describe('the worker processes', () => {
  it('run with a system call filter, no new privileges, no environment of the gateway, and end with it', async () => {
    const { readFileSync, readdirSync, readlinkSync } = await import('node:fs');
    // The other suites of this file run meanwhile, and one of them has a
    // worker killed over its budget: a worker may be starting (not yet at
    // the point where it closes what it inherited) or ending (under
    // AddressSanitizer the leak check at exit opens files) at the moment
    // it is looked at. So the look is repeated until it sees two workers
    // in their steady state; one that keeps an fd fails after the timeout,
    // with what it holds.
    const look = () => {
      const kids = [];
      for (const t of readdirSync(`/proc/${gw.proc.pid}/task`)) {
        try { kids.push(...readFileSync(`/proc/${gw.proc.pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)); } catch { /* gone */ }
      }
      const workers = kids.filter((k) => {
        try { return readFileSync(`/proc/${k}/cmdline`, 'utf8').split('\0').includes('sandbox-worker'); } catch { return false; }
      });
      assert.equal(workers.length, 2, `two workers (sandbox.workers), children of the gateway: ${kids}`);
      for (const k of workers) {
        const status = readFileSync(`/proc/${k}/status`, 'utf8');
        // Under AddressSanitizer the filter is left off (its runtime needs
        // more system calls); everywhere else it is on.
        assert.match(status, ASAN ? /^Seccomp:\s+0$/m : /^Seccomp:\s+2$/m);
        if (!ASAN) assert.match(status, /^NoNewPrivs:\s+1$/m);
        const env = readFileSync(`/proc/${k}/environ`, 'utf8');
        assert.ok(!env.includes('HOOKGATE_ADMIN_KEY') && !env.includes(gw.adminKey), 'no admin key in the worker');
        assert.ok(!env.includes('HOOKGATE_STORE'), 'no store path in the worker');
        const fds = readdirSync(`/proc/${k}/fd`).map(Number).sort((a, b) => a - b).filter((f) => f > 2);
        const held = fds.map((f) => { try { return `${f} -> ${readlinkSync(`/proc/${k}/fd/${f}`)}`; } catch { return `${f}`; } });
        assert.deepEqual(held, [], `only fds 0-2 open in worker ${k}`);
      }
      return true;
    };
    let last;
    await until(() => {
      try {
        return look();
      } catch (e) {
        last = e;
        return false;
      }
    }, 10000 * SLOW, 'two workers in their steady state').catch(() => { throw last; });
  });
});

describe('tenants share nothing', () => {
  it("one organization's transform cannot change another's functions, globals or signatures", async () => {
    // A replaces what it can reach, writes globals, and tries to keep B's
    // secrets; B, with the same libraries and a legacy-signature binding,
    // must see none of it.
    const evil = `function(d)
      stolen = (stolen or "") .. tostring(d.headers["X-Signature"])
      hookgate.crypto.hmac_sha256 = function() return "evil" end
      rawset(hookgate.crypto, "hex", function() return "evil" end)
      string.upper = function() return "evil" end
      getmetatable("").__index = { upper = function() return "evil" end }
      d.headers["X-Stolen"] = stolen
    end`;
    const whA = await createWebhook(keyA, '/a', { transform: evil }, 'user.updated');
    const probe = `function(d)
      d.headers["X-Seen"] = table.concat({ tostring(stolen), hookgate.crypto.hex(hookgate.crypto.hmac_sha256("k", "v")),
        ("a"):upper() }, ",")
    end`;
    const whB = await createWebhook(keyB, '/b', {
      transform: probe,
      plugins: [{ name: 'legacy-signature', config: { secret: LEGACY_SECRET } }],
    }, 'user.updated');
    for (let i = 0; i < 3; i++) {
      await publish(keyA, 'user.updated', { i });
      await publish(keyB, 'user.updated', { i });
    }
    await until(() => rx.requests.filter((x) => x.url === '/b').length >= 3 && rx.requests.filter((x) => x.url === '/a').length >= 3,
      15000 * SLOW, 'three deliveries each');
    const hmac = createHmac('sha256', 'k').update('v').digest('hex');
    for (const r of rx.requests.filter((x) => x.url === '/b')) {
      assert.equal(r.headers['x-seen'], `nil,${hmac},A`);
      assert.equal(r.headers['x-signature'], `sha256=${createHmac('sha256', LEGACY_SECRET).update(r.body).digest('hex')}`);
      new Webhook(whB.secret).verify(r.body, r.headers);
    }
    for (const r of rx.requests.filter((x) => x.url === '/a')) {
      assert.doesNotMatch(r.headers['x-stolen'], /sha256=/);
      assert.ok(!r.body.includes(LEGACY_SECRET));
    }
    await gw.request('DELETE', `/v1/webhooks/${whA.id}`, { key: keyA });
    await gw.request('DELETE', `/v1/webhooks/${whB.id}`, { key: keyB });
  });
});

describe('a script that does not stop is stopped, and nothing else waits for it', () => {
  const hostile = {
    'a loop while the code loads': 'local n = 0 while true do n = n + 1 end return function(d) end',
    'a loop in the transform': 'function(d) while true do end end',
    'a loop that catches its own errors': 'function(d) while true do pcall(function() while true do end end) end end',
    'xpcall with a looping message handler': 'function(d) xpcall(function() while true do end end, function() while true do end end) end',
    'a backtracking pattern': 'function(d) d.body = tostring((("a"):rep(400)):find(".-.-.-.-b")) end',
    'a loop inside a coroutine': 'function(d) local co = coroutine.wrap(function() while true do end end) co() end',
    'a loop inside a sort comparator': 'function(d) local t = {} for i = 1, 100 do t[i] = i end table.sort(t, function(a, b) while true do end end) end',
    'a loop in a __close handler': 'function(d) local x <close> = setmetatable({}, { __close = function() while true do end end }) end',
    'a gsub replacement that loops': 'function(d) d.body = ("abc"):gsub("%w", function() while true do end end) end',
  };
  for (const [name, code] of Object.entries(hostile)) {
    it(`${name}: script_error at the budget; /healthz and another tenant's delivery go on meanwhile`, async () => {
      const creating = Date.now();
      const bad = await createWebhook(keyA, `/bad`, { transform: code }, 'session.created');
      assert.ok(Date.now() - creating < 5000 * SLOW, 'creating the webhook did not run its code');
      const good = await createWebhook(keyB, `/good`, { transform: 'function(d) d.headers["X-Ok"] = "1" end' }, 'session.created');
      const evBad = await publish(keyA, 'session.created', { name });
      // While the hostile run goes on (or right after), the gateway answers
      // and B's delivery is sent.
      assert.ok(await healthy());
      const evGood = await publish(keyB, 'session.created', { name });
      const dGood = await finalDelivery(keyB, good, evGood.id);
      assert.equal(dGood.status, 'success');
      const dBad = await finalDelivery(keyA, bad, evBad.id);
      assert.equal(dBad.status, 'failed');
      const err = await lastError(keyA, bad, dBad);
      assert.match(err, /^script_error: plugin webhook-transform \(transform\): (transform:\d+: )?.*CPU budget exceeded/);
      assert.ok(!err.includes('/'), `no server path in ${err}`);
      const detail = (await gw.request('GET', `/v1/webhooks/${bad.id}/deliveries/${dBad.id}`, { key: keyA })).json;
      assert.equal(detail.attempts.length, 1, 'a stopped script is not retried');
      assert.ok(await healthy());
      await gw.request('DELETE', `/v1/webhooks/${bad.id}`, { key: keyA });
      await gw.request('DELETE', `/v1/webhooks/${good.id}`, { key: keyB });
    });
  }

  it('a loop the hook can reach names its line; the watchdog restarts the workers it killed', async () => {
    const wh = await createWebhook(keyA, '/line', { transform: 'function(d)\n  local x = 0\n  while true do x = x + 1 end\nend' }, 'session.revoked');
    const ev = await publish(keyA, 'session.revoked');
    const d = await finalDelivery(keyA, wh, ev.id);
    assert.match(await lastError(keyA, wh, d), /transform:3: CPU budget exceeded: the run used more than 150 ms/);
    assert.ok(await metric('hookgate_sandbox_budget_stops_total') >= 1);
    assert.ok(await metric('hookgate_sandbox_watchdog_kills_total') >= 1, 'the xpcall and pattern cases needed the watchdog');
    await until(async () => (await metric('hookgate_sandbox_workers')) === 2, 5000 * SLOW, 'two workers again');
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`, { key: keyA });
  });
});

describe('memory a script takes is bounded', () => {
  const cases = {
    'allocation in a loop': 'function(d) local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1 << 20) .. i end end',
    'one huge string': 'function(d) d.body = string.rep("x", 1 << 40) end',
    'table.concat of a big table': 'function(d) local t = {} for i = 1, 1e7 do t[i] = "xxxxxxxxxxxxxxxx" end d.body = table.concat(t) end',
  };
  for (const [name, code] of Object.entries(cases)) {
    it(`${name}: script_error naming the limit`, async () => {
      const wh = await createWebhook(keyA, '/mem', { transform: code }, 'mfa.enrolled');
      const ev = await publish(keyA, 'mfa.enrolled');
      const d = await finalDelivery(keyA, wh, ev.id);
      assert.equal(d.status, 'failed');
      const err = await lastError(keyA, wh, d);
      assert.match(err, /not enough memory: the script reached its limit of 8388608 bytes|resulting string too large|CPU budget exceeded/, err);
      await gw.request('DELETE', `/v1/webhooks/${wh.id}`, { key: keyA });
    });
  }

  it('deep recursion fails the run with a stack overflow, not the worker', async () => {
    const wh = await createWebhook(keyA, '/deep', { transform: 'function(d) local function f(n) return 1 + f(n + 1) end f(1) end' }, 'mfa.removed');
    const ev = await publish(keyA, 'mfa.removed');
    const d = await finalDelivery(keyA, wh, ev.id);
    // Reaching Lua's stack limit (a million slots, grown by reallocation)
    // takes close to the 150 ms CPU budget; on a loaded machine the budget
    // can stop it first. Each way the run fails and the worker lives on.
    assert.match(await lastError(keyA, wh, d), /stack overflow|not enough memory|CPU budget exceeded/);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`, { key: keyA });
  });
});

describe('operator plugins: the shared module and the pure phases hold', () => {
  it('rawset cannot replace hookgate functions for the other plugins', async () => {
    const wh = await createWebhook(undefined, '/rawset', { plugins: [{ name: 'probe', config: { mode: 'rawset' } }] }, 'organization.created');
    await publish(undefined, 'organization.created');
    const r = await rx.waitFor((x) => x.url === '/rawset', 10000 * SLOW);
    assert.equal(r.headers['x-rawset'], 'refused,refused');
    assert.match(r.headers['x-rawset-error'], /read-only/);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('a pure phase cannot start a timer (which would run with I/O)', async () => {
    const wh = await createWebhook(undefined, '/timer', { plugins: [{ name: 'probe', config: { mode: 'timer' } }] }, 'organization.updated');
    await publish(undefined, 'organization.updated');
    const r = await rx.waitFor((x) => x.url === '/timer', 10000 * SLOW);
    assert.match(r.headers['x-timer'], /hookgate.timer cannot be used in the transform phase/);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('hookgate.shared counts the bytes of its values against lua.shared_memory', async () => {
    const wh = await createWebhook(undefined, '/shared', { plugins: [{ name: 'probe', config: { mode: 'shared' } }] }, 'organization.member.added');
    await publish(undefined, 'organization.member.added');
    const r = await rx.waitFor((x) => x.url === '/shared', 10000 * SLOW);
    const [n, err, again] = r.headers['x-shared'].split(',');
    assert.ok(Number(n) >= 1 && Number(n) < 8, `stored ${n} of 8 MiB in a 4 MiB dictionary`);
    assert.match(err, /shared.set: full \(lua.shared_memory is 4194304 bytes\)/);
    assert.equal(again, 'true', 'deleted values give their room back');
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('a plugin whose xpcall handler loops is stopped at its budget; the loop goes on', async () => {
    const wh = await createWebhook(undefined, '/px', { plugins: [{ name: 'probe', config: { mode: 'xpcall' } }] }, 'oauth.consent.granted');
    const ev = await publish(undefined, 'oauth.consent.granted');
    const d = await finalDelivery(undefined, wh, ev.id);
    assert.equal(d.status, 'failed');
    assert.match(await lastError(undefined, wh, d), /plugin probe \(transform\): probe\/init\.lua:\d+: CPU budget exceeded/);
    assert.ok(await healthy());
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('a plugin cannot set a __gc finalizer', async () => {
    const wh = await createWebhook(undefined, '/pgc', { plugins: [{ name: 'probe', config: { mode: 'gc' } }] }, 'oauth.consent.revoked');
    await publish(undefined, 'oauth.consent.revoked');
    const r = await rx.waitFor((x) => x.url === '/pgc', 10000 * SLOW);
    assert.match(r.headers['x-gc'], /__gc metamethods are not allowed in plugins/);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it("a plugin's error names the plugin and its line, not the server's paths", async () => {
    const wh = await createWebhook(undefined, '/perr', { plugins: [{ name: 'probe', config: { mode: 'error' } }] }, 'organization.member.removed');
    const ev = await publish(undefined, 'organization.member.removed');
    const d = await finalDelivery(undefined, wh, ev.id);
    const err = await lastError(undefined, wh, d);
    assert.match(err, /probe\/init\.lua:\d+: probe failed on purpose/);
    assert.ok(!err.includes(dir), err);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });
});

describe('a stopped script is no poison pill', () => {
  it('killed mid-run and restarted, the gateway fails that delivery and serves', async () => {
    const pdir = tempDir();
    const config = `
sandbox = { workers = 1, cpu_budget = 1.5, grace = 0.05 }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, jitter = 0 }
`;
    let g = await startGateway({ dir: pdir, config });
    const res = await g.request('POST', '/v1/webhooks', {
      body: { url: `${rx.url}/pill`, events: ['user.created'], transform: 'function(d) d.body = tostring((("a"):rep(400)):find(".-.-.-.-b")) end' },
    });
    assert.equal(res.status, 201, res.body);
    const wh = res.json;
    const ev = (await g.request('POST', '/v1/events', { body: { type: 'user.created', data: {} } })).json;
    // The worker is in the pattern now: the gateway dies under it.
    await until(async () => /hookgate_sandbox_queued 0/.test((await g.request('GET', '/metrics')).body) &&
      /hookgate_sandbox_spawns_total [1-9]/.test((await g.request('GET', '/metrics')).body), 5000 * SLOW, 'the job to start');
    await g.stop('SIGKILL');
    g = await startGateway({ dir: pdir, config });
    try {
      assert.equal((await g.request('GET', '/healthz')).status, 200);
      const d = await until(async () => {
        const list = (await g.request('GET', `/v1/webhooks/${wh.id}/deliveries`)).json.deliveries;
        const x = list.find((y) => y.eventId === ev.id);
        return x && x.status !== 'pending' ? x : null;
      }, 20000 * SLOW, 'the delivery to end');
      assert.equal(d.status, 'failed');
      assert.equal((await g.request('GET', '/healthz')).status, 200);
    } finally {
      await g.stop();
    }
  });
});
