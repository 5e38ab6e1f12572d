// lua.test.mjs: the Lua runtime end to end — phases, limits, the sandbox,
// error handling and reload — against the real binary, with the test
// plugins of tests/lua/plugins and a receiver on 127.0.0.1.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver } from './lib/lua-receiver.mjs';
import { sleep, expectError } from './lib/expect.mjs';

const PLUGINS = fileURLToPath(new URL('../lua/plugins', import.meta.url));
const ASAN = ['ON', '1', 'true'].includes(process.env.HG_SANITIZE);
const SLOW = ASAN ? 3 : 1;
const INBOUND_SECRET = 's3cret-inbound-value-7f3a';
const APIKEY_SECRET = 'apikey-never-logged-91c2';
const MEMORY = 64 * 1024 * 1024;
const RUN_MEMORY = 8 * 1024 * 1024;
const BUDGET_MS = 300;

const base = (paths, extra = '') => `
lua = { plugin_paths = { ${paths.map((p) => JSON.stringify(p)).join(', ')} },
        cpu_slice = 0.02, cpu_budget = ${BUDGET_MS / 1000}, memory = ${MEMORY}, run_memory = ${RUN_MEMORY} }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.2, 0.2 }, jitter = 0 }
${extra}
`;
const CONFIG = base([PLUGINS], `plugins = {
  inbound = { secret = ${JSON.stringify(INBOUND_SECRET)}, source = "acme" },
  ingester = true, router = true, runaway = true,
}`);

async function stopClean(gw) {
  const { code, signal } = await gw.stop();
  assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs().slice(-3000)}`);
  assert.doesNotMatch(gw.logs(), /LeakSanitizer|AddressSanitizer/);
}

// Polls fn until it returns a truthy value.
async function until(fn, ms = 10000 * SLOW, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const logLines = (gw, re) => gw.logs().split('\n').filter((l) => re.test(l));
// Log lines reach us on another pipe than the HTTP answer: wait for them.
const waitLog = (gw, re, what = String(re)) =>
  until(() => { const l = logLines(gw, re); return l.length ? l : null; }, 5000 * SLOW, `a log line ${what}`);

let gw, rx;
const createWebhook = async (extra) => {
  const res = await gw.request('POST', '/v1/webhooks', { body: { url: `${rx.url}/ok`, events: ['user.created'], ...extra } });
  assert.equal(res.status, 201, res.body);
  return res.json;
};
const publish = (data, type = 'user.created') => gw.request('POST', '/v1/events', { body: { type, data } });
const deliveries = async (wh) => (await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries?limit=100`)).json.deliveries;
const finalDelivery = (wh, evId) => until(async () => {
  const d = (await deliveries(wh)).find((x) => x.eventId === evId);
  return d && d.status !== 'pending' ? d : null;
}, 15000 * SLOW, `a final delivery of ${evId}`);
const metrics = async () => (await gw.request('GET', '/metrics')).body;

before(async () => {
  rx = await startReceiver({ reply: (r) => (r.url.startsWith('/fail') ? 500 : 200) });
  gw = await startGateway({ config: CONFIG });
});
after(async () => {
  if (gw) await stopClean(gw);
  if (rx) await rx.close();
});

describe('phases', () => {
  it('route: a plugin drops a target; the other still receives', async () => {
    const a = await createWebhook({ url: `${rx.url}/ok/route-a` });
    const b = await createWebhook({ url: `${rx.url}/ok/route-b` });
    const res = await publish({ tag: 'route-test', dropTarget: a.id });
    assert.equal(res.status, 202, res.body);
    await rx.waitFor((r) => r.url === '/ok/route-b' && r.body.includes('route-test'));
    await sleep(500 * SLOW);
    assert.equal(rx.requests.filter((r) => r.url === '/ok/route-a').length, 0, 'the dropped webhook got nothing');
    assert.equal((await deliveries(a)).length, 0, 'no delivery row for the dropped target');
    for (const w of [a, b]) await gw.request('DELETE', `/v1/webhooks/${w.id}`);
  });

  it('route: added targets get a delivery only if they are active webhooks', async () => {
    const subscribed = await createWebhook({ url: `${rx.url}/ok/add-sub` });
    const other = await createWebhook({ url: `${rx.url}/ok/add-other`, events: ['session.created'] });
    const off = await createWebhook({ url: `${rx.url}/ok/add-off`, events: ['session.created'] });
    const patched = await gw.request('PATCH', `/v1/webhooks/${off.id}`, { body: { active: false } });
    assert.equal(patched.status, 200, patched.body);
    const res = await publish({ tag: 'add-test', addTargets: [other.id, off.id, 'wh_doesnotexist'] });
    assert.equal(res.status, 202, res.body);
    assert.equal(res.json.deliveries, 2, 'the subscribed webhook and the added active one');
    await rx.waitFor((r) => r.url === '/ok/add-other' && r.body.includes('add-test'));
    await rx.waitFor((r) => r.url === '/ok/add-sub' && r.body.includes('add-test'));
    assert.equal((await deliveries(off)).length, 0, 'no delivery row for the inactive webhook');
    for (const w of [subscribed, other, off]) await gw.request('DELETE', `/v1/webhooks/${w.id}`);
  });

  it('ingest: a plugin changes the event before it is stored', async () => {
    const wh = await createWebhook({ url: `${rx.url}/ok/ingest` });
    const res = await publish({ tag: 'ingest-mark' });
    assert.equal(res.status, 202, res.body);
    const r = await rx.waitFor((x) => x.url === '/ok/ingest');
    assert.deepEqual(JSON.parse(r.body).data, { tag: 'ingest-mark', ingested: true });
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('ingest: rejection (false, {status = 403, message}) answers 403 and stores nothing', async () => {
    const wh = await createWebhook({ url: `${rx.url}/ok/reject` });
    const res = await publish({ reject: 'blocked-user' });
    const e = expectError(res, 403, 'rejected');
    assert.equal(e.message, 'rejected: blocked-user');
    await sleep(300 * SLOW);
    assert.equal((await deliveries(wh)).length, 0);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('transform: new body and headers, signed for the new body', async () => {
    const wh = await createWebhook({
      url: `${rx.url}/ok/transform`,
      plugins: [{ name: 'transformer', config: { prefix: 'X1', apikey: APIKEY_SECRET } }],
    });
    assert.deepEqual(wh.plugins, [{ name: 'transformer', config: { prefix: 'X1', apikey: '[redacted]' } }]);
    await publish({ tag: 'to-transform' });
    const r = await rx.waitFor((x) => x.url === '/ok/transform');
    assert.deepEqual(JSON.parse(r.body), { prefix: 'X1', kind: 'user.created', wrapped: { tag: 'to-transform', ingested: true } });
    assert.equal(r.headers['x-transformed'], 'X1');
    // Throws if the signature does not cover exactly this body.
    new Webhook(wh.secret).verify(r.body, r.headers);
    assert.throws(() => new Webhook(wh.secret).verify(r.body + ' ', r.headers));
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('transform alone: the core\'s headers win over the plugin\'s of the same name; the url may move; an unchanged body goes as is', async () => {
    const wh = await createWebhook({ url: `${rx.url}/ok/clash`, plugins: [{ name: 'headerclash', config: { path: '/moved' } }] });
    const ev = (await publish({ tag: 'clash' })).json;
    const r = await rx.waitFor((x) => x.url === '/ok/clash/moved');
    assert.equal(r.headers['webhook-id'], ev.id);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-kept'], 'kept');
    const body = JSON.parse(r.body);
    assert.equal(body.type, 'user.created');
    assert.deepEqual(body.data, { tag: 'clash', ingested: true });
    new Webhook(wh.secret).verify(r.body, r.headers);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('retry: a number sets the delay and the plugin decides how many attempts', async () => {
    const wh = await createWebhook({
      url: `${rx.url}/fail/fast`, plugins: [{ name: 'retrypolicy', config: { mode: 'fast', attempts: 5 } }],
    });
    const ev = (await publish({ tag: 'retry-fast' })).json;
    const d = await finalDelivery(wh, ev.id);
    assert.equal(d.status, 'failed');
    const hits = rx.requests.filter((r) => r.url === '/fail/fast');
    assert.equal(hits.length, 5, 'five attempts, not the default schedule\'s three');
    const gaps = hits.slice(1).map((h, i) => h.at - hits[i].at);
    assert.ok(gaps.every((g) => g >= 80), `gaps ${gaps}`);
    // The schedule would wait 0.2 s: one gap under that shows the plugin's
    // 0.1 s (each gap also holds a record and a load on a loaded machine).
    if (!ASAN) assert.ok(Math.min(...gaps) < 190, `0.1 s retries, faster than the schedule's 0.2 s: ${gaps}`);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('retry: "give_up" fails after one attempt', async () => {
    const wh = await createWebhook({ url: `${rx.url}/fail/giveup`, plugins: [{ name: 'retrypolicy', config: { mode: 'give_up' } }] });
    const ev = (await publish({ tag: 'retry-give-up' })).json;
    const d = await finalDelivery(wh, ev.id);
    assert.equal(d.status, 'failed');
    await sleep(500 * SLOW);
    assert.equal(rx.requests.filter((r) => r.url === '/fail/giveup').length, 1);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('retry: "deactivate" fails the delivery and deactivates the webhook', async () => {
    const wh = await createWebhook({ url: `${rx.url}/fail/deact`, plugins: [{ name: 'retrypolicy', config: { mode: 'deactivate' } }] });
    const ev = (await publish({ tag: 'retry-deactivate' })).json;
    const d = await finalDelivery(wh, ev.id);
    assert.equal(d.status, 'failed');
    const w = await until(async () => {
      const j = (await gw.request('GET', `/v1/webhooks/${wh.id}`)).json;
      return j.active === false ? j : null;
    }, 5000 * SLOW, 'the webhook to be inactive');
    assert.equal(w.active, false);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('an ingestion route verifies a third-party signature and publishes', async () => {
    const wh = await createWebhook({ url: `${rx.url}/ok/inbound` });
    const body = JSON.stringify({ from: 'acme', user: 'u_42' });
    const sig = createHmac('sha256', INBOUND_SECRET).update(body).digest('hex');
    const res = await gw.request('POST', '/inbound/acme', { key: null, body, headers: { 'x-acme-signature': sig } });
    assert.equal(res.status, 202, res.body);
    assert.equal(res.headers['x-inbound'], 'acme');
    assert.match(res.json.event, /^evt_|^[a-z]+_/);
    const r = await rx.waitFor((x) => x.url === '/ok/inbound');
    assert.deepEqual(JSON.parse(r.body).data, { from: 'acme', user: 'u_42', ingested: true });
    const bad = await gw.request('POST', '/inbound/acme', { key: null, body, headers: { 'x-acme-signature': '00' } });
    assert.equal(bad.status, 401);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });
});

describe('limits', () => {
  it('a runaway loop in a route: 500 within about the budget; /healthz answers meanwhile', async () => {
    const t0 = Date.now();
    let loopDone = 0;
    const loop = gw.request('GET', '/runaway/loop', { key: null }).then((r) => { loopDone = Date.now(); return r; });
    await sleep(30);
    const h = await gw.request('GET', '/healthz', { key: null });
    const healthAt = Date.now();
    assert.equal(h.status, 200);
    const res = await loop;
    assert.equal(res.status, 500, res.body);
    assert.ok(healthAt < loopDone, 'healthz answered before the runaway request finished');
    assert.ok(loopDone - t0 >= BUDGET_MS - 20, `ended after ${loopDone - t0} ms`);
    assert.ok(loopDone - t0 < BUDGET_MS + 1000 * SLOW, `ended after ${loopDone - t0} ms`);
    assert.match(res.json.error.message, /request id req_/);
    const cpu = await waitLog(gw, /CPU budget exceeded/);
    assert.ok(cpu.some((l) => /plugin=runaway/.test(l) && /runaway\/init\.lua:\d+/.test(l)), cpu.join('\n'));
  });

  for (const kind of ['pcall-loop', 'pcall-coroutine', 'pcall-sort']) {
    it(`a loop that catches the budget error (${kind}) still ends`, async () => {
      const t0 = Date.now();
      const res = await gw.request('GET', `/runaway/${kind}`, { key: null });
      assert.equal(res.status, 500);
      assert.ok(Date.now() - t0 < BUDGET_MS + 1500 * SLOW, `took ${Date.now() - t0} ms`);
      assert.equal((await gw.request('GET', '/healthz', { key: null })).status, 200);
    });
  }

  it('a memory bomb fails its run; the gateway keeps serving; VM memory is under the limit', async () => {
    for (const kind of ['memory', 'memory-slow']) {
      const res = await gw.request('GET', `/runaway/${kind}`, { key: null });
      assert.equal(res.status, 500, res.body);
      const mem = Number((await metrics()).match(/^hookgate_lua_memory_bytes (\d+)/m)[1]);
      assert.ok(mem < MEMORY, `${kind}: VM holds ${mem}`);
      // The per-run share holds across yields: the slow bomb stops near run_memory too.
      assert.ok(mem < 2 * RUN_MEMORY + (4 << 20), `${kind}: VM holds ${mem} after the failed run`);
      assert.equal((await gw.request('GET', '/runaway/ok', { key: null })).body, 'ok');
      assert.equal((await gw.request('GET', '/healthz', { key: null })).status, 200);
    }
    await until(() => logLines(gw, /not enough memory/).length >= 2, 5000 * SLOW, 'two memory errors logged');
  });
});

describe('errors', () => {
  it('a script error: 500 with the request id; logged with plugin, phase, file:line, traceback; counted', async () => {
    const res = await gw.request('GET', '/runaway/error', { key: null });
    const e = expectError(res, 500, 'script_error');
    assert.match(e.message, /request id (req_[0-9a-f]+)/);
    const line = (await waitLog(gw, /deliberate failure in a nested call/))[0];
    assert.match(line, /plugin=runaway/);
    assert.match(line, /phase=routes/);
    assert.match(line, /runaway\/init\.lua:\d+: deliberate failure/);
    assert.match(line, /traceback=.*stack traceback.*nested_failure/);
    assert.match(await metrics(), /^hookgate_lua_errors_total\{plugin="runaway",phase="routes"\} [1-9]\d*$/m);
  });

  it('assigning an undeclared global is an error; reading one is nil', async () => {
    assert.equal((await gw.request('GET', '/runaway/global', { key: null })).status, 500);
    await waitLog(gw, /assignment to undeclared global 'leaked_global' in plugin runaway/);
    const r = await gw.request('GET', '/runaway/read-global', { key: null });
    assert.deepEqual(r.json, { value: 'nil' });
  });

  it('a transform error fails the delivery with script_error; fixed and replayed, it succeeds', async () => {
    const wh = await createWebhook({ url: `${rx.url}/ok/fixme`, transform: 'function(delivery)\n  error("transform broke")\nend' });
    const ev = (await publish({ tag: 'broken-transform' })).json;
    const d = await finalDelivery(wh, ev.id);
    assert.equal(d.status, 'failed');
    const detail = (await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries/${d.id}`)).json;
    const err = detail.attempts.at(-1).error;
    assert.match(err, /^script_error: plugin webhook-transform \(transform\): transform:2: transform broke/);
    assert.equal(rx.requests.filter((r) => r.url === '/ok/fixme').length, 0);
    assert.match(await metrics(), /^hookgate_lua_errors_total\{plugin="webhook-transform",phase="transform"\} \d+$/m);
    const fix = await gw.request('PATCH', `/v1/webhooks/${wh.id}`,
      { body: { transform: 'function(delivery) delivery.headers["X-Fixed"] = "yes" end' } });
    assert.equal(fix.status, 200, fix.body);
    const rep = await gw.request('POST', `/v1/webhooks/${wh.id}/deliveries/${d.id}/replay`);
    assert.equal(rep.status, 202, rep.body);
    const r = await rx.waitFor((x) => x.url === '/ok/fixme');
    assert.equal(r.headers['x-fixed'], 'yes');
    new Webhook(wh.secret).verify(r.body, r.headers);
    await until(async () => (await deliveries(wh)).find((x) => x.id === d.id)?.status === 'success', 5000 * SLOW, 'success');
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('I/O in a pure phase is an error naming the phases where it is allowed', async () => {
    const wh = await createWebhook({ url: `${rx.url}/ok/pure`, transform: 'function(d) hookgate.sleep(0) end' });
    const ev = (await publish({ tag: 'pure-io' })).json;
    const d = await finalDelivery(wh, ev.id);
    assert.equal(d.status, 'failed');
    const detail = JSON.stringify((await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries/${d.id}`)).json);
    // A webhook's transform runs in the sandbox, where I/O does not exist.
    assert.match(detail, /script_error: plugin webhook-transform \(transform\): transform:1: hookgate\.sleep is not allowed in the transform phase \(pure\)/);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });

  it('a runaway loop in a transform fails the delivery within the budget', async () => {
    const wh = await createWebhook({ url: `${rx.url}/ok/pure-loop`,
      transform: 'function(d) while true do pcall(function() while true do end end) end end' });
    const ev = (await publish({ tag: 'pure-loop' })).json;
    const d = await finalDelivery(wh, ev.id);
    assert.equal(d.status, 'failed');
    const detail = JSON.stringify((await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries/${d.id}`)).json);
    assert.match(detail, /script_error: .*CPU budget exceeded/);
    assert.equal((await gw.request('GET', '/healthz', { key: null })).status, 200);
    await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  });
});

describe('sandbox', () => {
  it('io, os.execute/exit/getenv, debug, package/require, bytecode load and string.dump are unavailable', async () => {
    const p = (await gw.request('GET', '/runaway/sandbox', { key: null })).json;
    for (const name of ['io', 'debug', 'package', 'require', 'loadstring', 'dofile', 'loadfile', 'collectgarbage',
      'string.dump', 'os.execute', 'os.exit', 'os.getenv', 'os.remove', 'os.rename', 'os.tmpname']) {
      assert.equal(p[name], 'nil', `${name} is ${p[name]}`);
    }
    for (const name of ['os.time', 'os.clock', 'os.date', 'os.difftime', 'load']) assert.equal(p[name], 'function', name);
    assert.match(p.load_bytecode, /attempt to load a binary chunk/);
    assert.equal(p.string_method_dump, 'nil', '("").dump must not reach string.dump');
    assert.equal(p.string_metatable, 'boolean', 'the shared string metatable is hidden');
    assert.equal(p.global_G, 'plugin env');
  });
});

describe('bindings and the admin API', () => {
  it('a per-webhook transform with a syntax error: 422 naming transform and the line', async () => {
    const res = await gw.request('POST', '/v1/webhooks', {
      body: { url: `${rx.url}/ok`, events: ['user.created'], transform: 'function(d)\n  d.body = \nend' },
    });
    const e = expectError(res, 422, 'validation_error');
    assert.equal(e.details[0].field, 'transform');
    assert.match(e.details[0].message, /^transform:3: /);
  });

  it('per-webhook plugin config errors name plugins[i].config.<field>', async () => {
    const res = await gw.request('POST', '/v1/webhooks', {
      body: {
        url: `${rx.url}/ok`, events: ['user.created'],
        plugins: [
          { name: 'transformer', config: { prefix: 5, nope: true } },
          { name: 'retrypolicy', config: { mode: 'sometimes' } },
          { name: 'retrypolicy', config: {} },
          { name: 'no-such-plugin' },
        ],
      },
    });
    const e = expectError(res, 422, 'validation_error');
    const byField = Object.fromEntries(e.details.map((d) => [d.field, d.message]));
    assert.match(byField['plugins[0].config.prefix'], /must be a string/);
    assert.match(byField['plugins[0].config.nope'], /unknown field/);
    assert.match(byField['plugins[1].config.mode'], /must be one of: fast, give_up, deactivate/);
    assert.match(byField['plugins[2].config.mode'], /is required/);
    assert.match(byField['plugins[3].name'], /no plugin named "no-such-plugin"/);
  });

  it('GET /v1/admin/plugins: order by priority then name; secret fields redacted', async () => {
    const res = await gw.request('GET', '/v1/admin/plugins');
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json.plugins.map((p) => [p.name, p.priority]),
      [['inbound', 20], ['ingester', 10], ['router', 10], ['runaway', -5]]);
    const inbound = res.json.plugins[0];
    assert.deepEqual(inbound.config, { secret: '[redacted]', source: 'acme' });
    assert.equal(inbound.version, '1.2.0');
    assert.deepEqual(res.json.plugins[1].phases, ['ingest']);
    assert.ok(res.json.available.includes('transformer'));
    assert.ok(!res.body.includes(INBOUND_SECRET));
    assert.equal((await gw.request('GET', '/v1/admin/plugins', { key: null })).status, 401);
  });

  it('log lines name the plugin that logs, even after a wait while others ran', async () => {
    const slow = gw.request('GET', '/inbound/slowlog', { key: null });
    await sleep(50);
    await gw.request('GET', '/runaway/ok', { key: null });
    assert.equal((await slow).body, 'logged');
    const line = (await waitLog(gw, /inbound slow log line/))[0];
    assert.match(line, /plugin=inbound/);
  });

  it('secret plugin config values never appear in the logs', async () => {
    // Everything above ran with the secrets configured and bound.
    assert.ok(!gw.logs().includes(INBOUND_SECRET), 'inbound secret in the logs');
    assert.ok(!gw.logs().includes(APIKEY_SECRET), 'per-webhook apikey in the logs');
  });
});

describe('startup and reload', () => {
  const HOT = (v) => `return { name = "hot", version = "${v}", routes = {
  { method = "GET", path = "/hot", handler = function() return { body = "${v}" } end } } }\n`;

  function pluginDir() {
    const dir = tempDir();
    mkdirSync(join(dir, 'plugins', 'hot'), { recursive: true });
    writeFileSync(join(dir, 'plugins', 'hot', 'init.lua'), HOT('v1'));
    return dir;
  }

  it('I/O at module load: the gateway refuses to start and names the plugin', async () => {
    const dir = tempDir();
    cpSync(join(PLUGINS, 'router'), join(dir, 'plugins', 'router'), { recursive: true });
    mkdirSync(join(dir, 'plugins', 'loadio'), { recursive: true });
    writeFileSync(join(dir, 'plugins', 'loadio', 'init.lua'),
      'hookgate.sleep(1)\nreturn { name = "loadio", version = "1" }\n');
    await assert.rejects(startGateway({ dir, config: base([join(dir, 'plugins')], 'plugins = { router = true }') }), (err) => {
      assert.match(err.message, /gateway exited \(1\)/);
      assert.match(err.message, /plugin loadio: .*loadio\/init\.lua:1: hookgate\.sleep cannot run while a module loads/);
      assert.doesNotMatch(err.message, /LeakSanitizer|AddressSanitizer/);
      return true;
    });
  });

  it('POST /v1/admin/reload: a broken plugin answers 422 and the old generation serves; fixed, 200', async () => {
    const dir = pluginDir();
    const g = await startGateway({ dir, config: base([join(dir, 'plugins')], 'plugins = { hot = true }') });
    try {
      assert.equal((await g.request('GET', '/hot', { key: null })).body, 'v1');
      writeFileSync(join(dir, 'plugins', 'hot', 'init.lua'), 'return { name = "hot", version = \n');
      const bad = await g.request('POST', '/v1/admin/reload');
      const e = expectError(bad, 422, 'reload_failed');
      assert.match(e.details[0].message, /plugin hot: .*hot\/init\.lua:2: unexpected symbol near <eof>/);
      assert.equal((await g.request('GET', '/hot', { key: null })).body, 'v1', 'the old generation still serves');
      writeFileSync(join(dir, 'plugins', 'hot', 'init.lua'), HOT('v2'));
      const ok = await g.request('POST', '/v1/admin/reload');
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.json.status, 'reloaded');
      assert.deepEqual(ok.json.plugins.plugins.map((p) => p.version), ['v2']);
      assert.equal((await g.request('GET', '/hot', { key: null })).body, 'v2');
    } finally {
      await stopClean(g);
    }
  });

  it('SIGHUP reloads the same way', async () => {
    const dir = pluginDir();
    const g = await startGateway({ dir, config: base([join(dir, 'plugins')], 'plugins = { hot = true }') });
    try {
      // "listening" comes before the signal handlers are installed; "hookgate started" after.
      await until(() => /hookgate started/.test(g.logs()), 5000 * SLOW, 'the start');
      writeFileSync(join(dir, 'plugins', 'hot', 'init.lua'), 'return { name = "hot" version = "x" }\n');
      g.proc.kill('SIGHUP');
      await until(() => /reload error.*hot\/init\.lua:1/.test(g.logs()), 5000 * SLOW, 'the reload error');
      assert.equal((await g.request('GET', '/hot', { key: null })).body, 'v1');
      writeFileSync(join(dir, 'plugins', 'hot', 'init.lua'), HOT('v3'));
      g.proc.kill('SIGHUP');
      await until(async () => (await g.request('GET', '/hot', { key: null })).body === 'v3', 5000 * SLOW, 'v3');
    } finally {
      await stopClean(g);
    }
  });
});
