// lua-route-pool.test.mjs: route runs reuse pooled Lua threads. A thread
// that served a run which yielded (sleep) or was preempted is reused and
// behaves like a new one; a thread whose run failed or was killed is never
// used again; a run in flight when a reload retires its generation
// finishes there. Real gateway, real sockets, the routepool test plugin.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startGateway } from './lib/gateway.mjs';
import { sleep } from './lib/expect.mjs';
import { SLOW, stopClean, until } from './lib/delivery.mjs';

const PLUGINS = fileURLToPath(new URL('../lua/pool-plugins', import.meta.url));

const CONFIG = `
lua = { plugin_paths = { ${JSON.stringify(PLUGINS)} }, cpu_slice = 0.02, cpu_budget = ${2 * SLOW} }
plugins = { routepool = true }
webhooks = { allow_http = true }
delivery = { paused = true, allow_cidrs = { "127.0.0.0/8" } }
`;

let gw;
before(async () => {
  gw = await startGateway({ config: CONFIG });
});
after(async () => {
  if (gw) await stopClean(gw);
});

const createWebhook = async (path) => {
  const res = await gw.request('POST', '/v1/webhooks', { body: { url: `http://127.0.0.1:9/${path}`, events: ['user.created'] } });
  assert.equal(res.status, 201, res.body);
  return res.json;
};
const publish = (data) => gw.request('POST', '/v1/events', { body: { type: 'user.created', data } });
const history = async () => {
  const res = await gw.request('GET', '/routepool', { key: null });
  assert.equal(res.status, 200, res.body);
  return res.json.history;
};
const targetsOf = async (evId, hooks) => {
  const out = [];
  for (const w of hooks) {
    const ds = (await gw.request('GET', `/v1/webhooks/${w.id}/deliveries?pageSize=100`)).json.deliveries;
    if (ds.some((d) => d.eventId === evId)) out.push(w.id);
  }
  return out;
};

describe('pooled route runs', () => {
  let a, b;
  before(async () => {
    a = await createWebhook('a');
    b = await createWebhook('b');
  });

  it('a thread reused after a run that yielded, was preempted, failed or was killed behaves like a new one', async () => {
    const modes = ['plain', 'sleep', 'plain', 'spin', 'plain', 'error', 'plain', 'runaway', 'plain', 'errtable', 'plain', 'plain'];
    const events = [];
    for (const mode of modes) {
      const res = await publish({ mode, drop: a.id });
      assert.equal(res.status, 202, res.body);
      events.push(res.json.id);
    }
    const h = await history();
    assert.deepEqual(h.map((r) => r.mode), modes);
    h.forEach((r, i) => {
      const what = `run ${i + 1} (${r.mode})`;
      assert.equal(r.event, events[i], what);
      assert.equal(r.type, 'user.created', what);
      assert.equal(r.targets, 2, `${what}: both matched webhooks`);
      assert.equal(r.yieldable, true, what);
      assert.equal(r.extra, 0, `${what}: (arg, conf) and nothing else`);
      assert.equal(r.conf, true, what);
      if (['error', 'runaway', 'errtable'].includes(r.mode)) return;
      assert.equal(r.done, true, what);
      assert.equal(r.same, true, `${what}: the same thread after yielding`);
    });
    // Each run's thread: the one the run before left, unless that run failed.
    assert.deepEqual(h.map((r) => r.previous), [0, 1, 2, 3, 4, 5, 0, 7, 0, 9, 0, 11]);

    // The plugin's targets where the run finished; the match where it failed.
    for (let i = 0; i < modes.length; i++) {
      const want = ['error', 'runaway', 'errtable'].includes(modes[i]) ? [a.id, b.id] : [b.id];
      assert.deepEqual(await targetsOf(events[i], [a, b]), want, `run ${i + 1} (${modes[i]})`);
    }
    const logs = gw.logs();
    assert.match(logs, /script error.*plugin=routepool.*phase=route.*routepool\/init\.lua:\d+: routepool: deliberate error/);
    assert.match(logs, /script error.*plugin=routepool.*phase=route.*routepool\/init\.lua:\d+: CPU budget exceeded/);
    assert.match(logs, /script error.*plugin=routepool.*phase=route.*error="\(error object is a table value\)"/);
    // The traceback goes down to the plugin's line.
    const line = logs.split('\n').find((l) => /routepool: deliberate error/.test(l));
    assert.match(line, /traceback=.*stack traceback.*routepool\/init\.lua:\d+/);
  });

  it("a plugin cannot resume or close another run's thread", async () => {
    // A run waits in a 1 s sleep while another run of the same plugin tries
    // to resume and close every thread it has seen, the sleeping one too.
    const sleeping = publish({ mode: 'longsleep', drop: a.id });
    await sleep(200 * SLOW);
    const meddle = await publish({ mode: 'meddle', drop: b.id });
    assert.equal(meddle.status, 202, meddle.body);
    const slept = await sleeping;
    assert.equal(slept.status, 202, slept.body);
    const h = await history();
    const rec = h.find((r) => r.event === meddle.json.id);
    assert.ok(rec.meddled.length >= 1, 'it saw other threads');
    for (const m of rec.meddled) {
      assert.equal(m.resumed, false);
      assert.match(m.msg, /cannot resume a coroutine hookgate runs a plugin on/);
      assert.equal(m.closed, false);
      assert.match(m.closemsg, /cannot close a coroutine hookgate runs a plugin on/);
    }
    // Both runs' decisions stand: the sleeper dropped a, the meddler b.
    assert.ok(h.find((r) => r.event === slept.json.id).done);
    assert.deepEqual(await targetsOf(slept.json.id, [a, b]), [b.id]);
    assert.deepEqual(await targetsOf(meddle.json.id, [a, b]), [a.id]);
  });

  it('each route run counts once in hookgate_lua_phase_calls_total; its sleep is not in hookgate_lua_phase_seconds_total', async () => {
    const route = async () => {
      const text = (await gw.request('GET', '/metrics', { key: null })).body;
      const get = (name) => Number(text.match(new RegExp(`^hookgate_lua_phase_${name}_total\\{phase="route"\\} (\\S+)$`, 'm'))?.[1]);
      return { calls: get('calls'), seconds: get('seconds') };
    };
    const before = await route();
    for (const mode of ['plain', 'longsleep', 'plain']) assert.equal((await publish({ mode, drop: a.id })).status, 202);
    const after = await route();
    assert.equal(after.calls - before.calls, 3);
    const spent = after.seconds - before.seconds;
    assert.ok(spent > 0, 'the runs took time');
    // The longsleep run waited 1 s in hookgate.sleep: none of it is counted.
    assert.ok(spent < 0.25, `${spent} s counted for three runs`);
  });

  it('many runs in flight at once, then reuse', async () => {
    const before = (await history()).length;
    const res = await Promise.all(Array.from({ length: 30 }, (_, i) => publish({ mode: i % 3 ? 'sleep' : 'plain', drop: a.id })));
    for (const r of res) assert.equal(r.status, 202, r.body);
    const h = (await history()).slice(before);
    assert.equal(h.length, 30);
    assert.ok(h.every((r) => r.done && r.same && r.yieldable && r.targets === 2));
    for (const r of res.slice(0, 5)) assert.deepEqual(await targetsOf(r.json.id, [a, b]), [b.id]);
  });

  it('a run sleeping through a reload finishes on its generation; the new one serves', async () => {
    // An earlier test also ran a longsleep: wait for this one's record.
    const sleepers = async () => (await history()).filter((r) => r.mode === 'longsleep').length;
    const before = await sleepers();
    const pending = publish({ mode: 'longsleep', drop: a.id });
    await until(async () => (await sleepers()) > before, { what: 'the run to start' });
    const rl = await gw.request('POST', '/v1/admin/reload');
    assert.equal(rl.status, 200, rl.body);
    const res = await pending;
    assert.equal(res.status, 202, res.body);
    assert.deepEqual(await targetsOf(res.json.id, [a, b]), [b.id], 'the old generation\'s plugin decided');
    // Module state is per generation: the new one starts a new history.
    const next = await publish({ mode: 'plain', drop: a.id });
    assert.equal(next.status, 202, next.body);
    const h = await history();
    assert.equal(h.length, 1);
    assert.equal(h[0].event, next.json.id);
    assert.equal(h[0].done, true);
    assert.deepEqual(await targetsOf(next.json.id, [a, b]), [b.id]);
  });
});
