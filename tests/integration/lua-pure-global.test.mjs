// lua-pure-global.test.mjs: the pure phases over the global bindings, which
// the C side walks itself: priority order, a non-nil return ends the walk,
// an error fails the delivery naming the plugin, and the sign phase runs
// after the transform walk. Real gateway, a receiver on 127.0.0.1.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver } from './lib/lua-receiver.mjs';
import { stopClean, until } from './lib/delivery.mjs';

const PLUGINS = fileURLToPath(new URL('../lua/global-plugins', import.meta.url));

let gw, rx;
before(async () => {
  rx = await startReceiver();
  gw = await startGateway({
    config: `
lua = { plugin_paths = { ${JSON.stringify(PLUGINS)} } }
plugins = { ordera = true, orderb = true, orderc = true }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.2, 0.2 }, jitter = 0 }
`,
  });
});
after(async () => {
  if (gw) await stopClean(gw);
  if (rx) await rx.close();
});

describe('pure phases over the global bindings', () => {
  let wh;
  before(async () => {
    const res = await gw.request('POST', '/v1/webhooks', { body: { url: `${rx.url}/g`, events: ['user.created'] } });
    assert.equal(res.status, 201, res.body);
    wh = res.json;
  });
  const publish = async (tag) => {
    const res = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data: { tag } } });
    assert.equal(res.status, 202, res.body);
    return res.json;
  };

  it('every bound plugin runs, by priority; sign runs after, with the core headers', async () => {
    const ev = await publish('all');
    const r = await rx.waitFor((x) => x.headers['webhook-id'] === ev.id);
    assert.equal(r.headers['x-order'], 'a,b,c');
    assert.equal(r.headers['x-sign-saw'], 'a,b,c');
    new Webhook(wh.secret).verify(r.body, r.headers);
  });

  it('a non-nil return ends the walk', async () => {
    const ev = await publish('stop');
    const r = await rx.waitFor((x) => x.headers['webhook-id'] === ev.id);
    assert.equal(r.headers['x-order'], 'a,b');
  });

  it('each walk counts once in hookgate_lua_phase_calls_total, with its time in hookgate_lua_phase_seconds_total', async () => {
    const phases = async () => {
      const text = (await gw.request('GET', '/metrics', { key: null })).body;
      const get = (name, phase) => Number(text.match(new RegExp(`^hookgate_lua_phase_${name}_total\\{phase="${phase}"\\} (\\S+)$`, 'm'))?.[1]);
      return Object.fromEntries(['route', 'transform', 'sign'].map((p) => [p, { calls: get('calls', p), seconds: get('seconds', p) }]));
    };
    const before = await phases();
    const ev = await publish('count');
    await rx.waitFor((x) => x.headers['webhook-id'] === ev.id);
    const after = await phases();
    // One delivery: one transform walk over the three plugins, one sign walk.
    assert.equal(after.transform.calls - before.transform.calls, 1);
    assert.equal(after.sign.calls - before.sign.calls, 1);
    assert.ok(after.transform.seconds > before.transform.seconds, 'the walk took time');
    assert.ok(after.transform.seconds - before.transform.seconds < 1);
    // No route plugin is bound: the phase never ran.
    assert.equal(after.route.calls, 0);
    assert.equal(after.route.seconds, 0);
  });

  it('an error fails the delivery with script_error naming the plugin and its line; the next delivery is fine', async () => {
    const ev = await publish('boom');
    const d = await until(async () => {
      const ds = (await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries?pageSize=100`)).json.deliveries;
      const x = ds.find((y) => y.eventId === ev.id);
      return x && x.status !== 'pending' ? x : null;
    }, { what: 'the failed delivery' });
    assert.equal(d.status, 'failed');
    const detail = (await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries/${d.id}`)).json;
    assert.match(detail.attempts.at(-1).error, /^script_error: plugin orderb \(transform\): .*orderb\/init\.lua:\d+: orderb: boom/);
    assert.equal(rx.requests.filter((x) => x.headers['webhook-id'] === ev.id).length, 0);
    const ok = await publish('after');
    const r = await rx.waitFor((x) => x.headers['webhook-id'] === ok.id);
    assert.equal(r.headers['x-order'], 'a,b,c');
    // The error is counted, and /metrics with it still passes promtool
    // (each family's lines together).
    const text = (await gw.request('GET', '/metrics', { key: null })).body;
    assert.match(text, /^hookgate_lua_errors_total\{plugin="orderb",phase="transform"\} 1$/m);
    const check = spawnSync(process.env.PROMTOOL || 'promtool', ['check', 'metrics'], { input: text });
    assert.equal(check.status, 0, `promtool check metrics failed:\n${check.stdout}${check.stderr}`);
    // promtool lets a family's samples come apart; the format does not.
    const seen = new Set();
    let current = null;
    for (const line of text.split('\n').filter(Boolean)) {
      const name = line.startsWith('#') ? line.split(' ')[2] : line.match(/^[a-z_]+/)[0].replace(/_(bucket|sum|count)$/, '');
      if (name === current) continue;
      assert.ok(!seen.has(name), `${name}: its lines are not together`);
      seen.add(name);
      current = name;
    }
  });
});
