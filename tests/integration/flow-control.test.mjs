// flow-control.test.mjs: a webhook's rateLimit (deliveries per second)
// and maxConcurrency (requests open at once), enforced by the dispatcher:
// what the receiver sees (never more open requests, never more per second
// than allowed, everything arrives), that held deliveries stay pending
// (and survive a restart, sent once), that other webhooks are not slowed,
// that PATCH null lifts a limit at once, that a test send ignores the
// limits, /metrics, and the API's validation and answers.
//
// Real gateway, real receivers, the test's store (SQLite, or PostgreSQL
// with HG_TEST_STORE=postgresql). No tight upper bounds on time: machines
// are noisy and a sanitizer build is slower (SLOW).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver, slow } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publishOk, until, sleep, SLOW, stopClean, listDeliveries, maxOpen } from './lib/delivery.mjs';
import { expectValidation } from './lib/expect.mjs';

let rx;
let rx2;
let gw;
// Each test has event types of its own, so no test's events reach
// another's webhooks.
const TYPES = ['conc.test', 'rate.test', 'lift.test', 'send.test', 'restart.test', 'off.test'].map((t) => `"${t}"`).join(', ');
const CONFIG = deliveryConfig({ extra: 'timeout = 10' })
  .replace('webhooks = { allow_http = true }', `webhooks = { allow_http = true, event_types = { ${TYPES} } }`);
assert.match(CONFIG, /event_types/);

before(async () => {
  rx = await startReceiver();
  rx2 = await startReceiver();
  gw = await startGateway({ config: CONFIG });
});

after(async () => {
  if (gw) await stopClean(gw);
  await rx?.close();
  await rx2?.close();
});

// The most requests that arrived within any window of ms.
function maxInWindow(reqs, ms) {
  const at = reqs.map((r) => r.mono).sort((a, b) => a - b);
  let most = 0;
  for (let i = 0; i < at.length; i++) {
    let n = 0;
    while (i + n < at.length && at[i + n] < at[i] + ms) n++;
    most = Math.max(most, n);
  }
  return most;
}

async function metric(name) {
  const r = await gw.request('GET', '/metrics');
  assert.equal(r.status, 200);
  const line = r.body.split('\n').find((l) => l.startsWith(name + ' '));
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

test('rateLimit and maxConcurrency: null by default, set on create, shown by GET and list, cleared by PATCH null', async () => {
  const plain = await createWebhook(gw, rx, '/plain', ['user.created']);
  assert.equal(plain.rateLimit, null);
  assert.equal(plain.maxConcurrency, null);

  const wh = await createWebhook(gw, rx, '/fields', ['user.created'], { rateLimit: 2.5, maxConcurrency: 3 });
  assert.equal(wh.rateLimit, 2.5);
  assert.equal(wh.maxConcurrency, 3);
  let r = await gw.request('GET', `/v1/webhooks/${wh.id}`);
  assert.equal(r.status, 200);
  assert.equal(r.json.rateLimit, 2.5);
  assert.equal(r.json.maxConcurrency, 3);
  r = await gw.request('GET', '/v1/webhooks?pageSize=100');
  const listed = r.json.webhooks.find((w) => w.id === wh.id);
  assert.equal(listed.rateLimit, 2.5);
  assert.equal(listed.maxConcurrency, 3);

  // The bounds are accepted; a rate is kept to the thousandth.
  r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { rateLimit: 10000, maxConcurrency: 1000 } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.rateLimit, 10000);
  assert.equal(r.json.maxConcurrency, 1000);
  r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { rateLimit: 0.01 } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.rateLimit, 0.01);
  assert.equal(r.json.maxConcurrency, 1000, 'a PATCH leaves the fields it does not name');

  // Null clears each.
  r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { rateLimit: null } });
  assert.equal(r.json.rateLimit, null);
  assert.equal(r.json.maxConcurrency, 1000);
  r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { maxConcurrency: null } });
  assert.equal(r.json.maxConcurrency, null);
  r = await gw.request('GET', `/v1/webhooks/${wh.id}`);
  assert.equal(r.json.rateLimit, null);
  assert.equal(r.json.maxConcurrency, null);
});

test('invalid rateLimit and maxConcurrency answer 422 naming the field, on create and on PATCH', async () => {
  const url = rx.url('/invalid');
  for (const bad of [0, -1, 10001, 0.001, '5', true, {}, [1]]) {
    const r = await gw.request('POST', '/v1/webhooks', { body: { url, events: ['user.created'], rateLimit: bad } });
    expectValidation(r, ['rateLimit']);
  }
  for (const bad of [0, -1, 1001, 1.5, '2', false, {}]) {
    const r = await gw.request('POST', '/v1/webhooks', { body: { url, events: ['user.created'], maxConcurrency: bad } });
    expectValidation(r, ['maxConcurrency']);
  }
  const both = await gw.request('POST', '/v1/webhooks', {
    body: { url, events: ['user.created'], rateLimit: 0, maxConcurrency: 0 },
  });
  expectValidation(both, ['rateLimit', 'maxConcurrency']);

  const wh = await createWebhook(gw, rx, '/invalid', ['user.created'], { maxConcurrency: 4 });
  let r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { rateLimit: -5 } });
  expectValidation(r, ['rateLimit']);
  r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { maxConcurrency: 2.5 } });
  expectValidation(r, ['maxConcurrency']);
  r = await gw.request('GET', `/v1/webhooks/${wh.id}`);
  assert.equal(r.json.maxConcurrency, 4, 'a refused PATCH changes nothing');
  assert.equal(r.json.rateLimit, null);
});

test('maxConcurrency = 2: never more than 2 requests open at the receiver, all arrive, held ones stay pending; another webhook is not slowed', async () => {
  const HOLD = 300;
  rx.on('/conc', slow(HOLD));
  rx2.on('/free', slow(HOLD));
  const wh = await createWebhook(gw, rx, '/conc', ['conc.test'], { maxConcurrency: 2 });
  const free = await createWebhook(gw, rx2, '/free', ['conc.test']);
  const before = await metric('hookgate_deliveries_throttled_total{reason="concurrency"}');

  await Promise.all(Array.from({ length: 10 }, (_, i) => publishOk(gw, { type: 'conc.test', data: { i } })));
  // Right after: at most 2 of the limited webhook's deliveries can have been
  // answered (none before HOLD ms); the rest wait, pending, never attempted.
  const early = await listDeliveries(gw, wh.id, 'pageSize=100');
  assert.equal(early.deliveries.length, 10);
  const waiting = early.deliveries.filter((d) => d.status === 'pending' && d.attempts === 0);
  assert.ok(waiting.length >= 6, `held deliveries stay pending: ${JSON.stringify(early.deliveries.map((d) => d.status))}`);

  // The other webhook (another receiver) gets its 10 at once.
  const other = await rx2.waitFor('/free', { count: 10, timeout: 5000 * SLOW });
  assert.ok(maxOpen(other, HOLD - 10) >= 5, 'an unlimited webhook is not held back by another one\'s limit');

  const got = await rx.waitFor('/conc', { count: 10, timeout: 20000 * SLOW });
  assert.equal(got.length, 10);
  assert.equal(maxOpen(got, HOLD - 10), 2, 'at most maxConcurrency requests open at once, and the limit is used');
  const ids = new Set(got.map((r) => r.headers['webhook-id']));
  assert.equal(ids.size, 10, 'every event arrived, each once');
  await until(async () => {
    const l = await listDeliveries(gw, wh.id, 'pageSize=100');
    return l.deliveries.every((d) => d.status === 'success');
  }, { what: 'all 10 deliveries succeeded' });
  assert.ok((await metric('hookgate_deliveries_throttled_total{reason="concurrency"}')) >= before + 1);
  assert.equal(await metric('hookgate_deliveries_held'), 0);
  assert.ok(free.id);
});

test('rateLimit = 5/s: 15 events spread over more than 2 s, never more than 6 in any second, all arrive', async () => {
  const wh = await createWebhook(gw, rx, '/rate', ['rate.test'], { rateLimit: 5 });
  const before = await metric('hookgate_deliveries_throttled_total{reason="rate"}');
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 15 }, (_, i) => publishOk(gw, { type: 'rate.test', data: { i } })));
  await sleep(300);
  const mid = await listDeliveries(gw, wh.id, 'pageSize=100');
  // At 5/s, no more than one plus five a second can have gone since the
  // first publish (which on a loaded machine may be a while ago).
  const pending = mid.deliveries.filter((d) => d.status === 'pending').length;
  const elapsed = (Date.now() - t0) / 1000;
  assert.ok(pending >= 15 - (1 + 5 * elapsed), `held deliveries stay pending: ${pending} after ${elapsed} s`);
  assert.ok((await metric('hookgate_deliveries_held')) >= 1, 'the held ones show in /metrics');

  const got = await rx.waitFor('/rate', { count: 15, timeout: 20000 * SLOW });
  const at = got.map((r) => r.mono).sort((a, b) => a - b);
  const spread = at[at.length - 1] - at[0];
  assert.ok(spread >= 2000, `15 at 5/s take about 2.8 s; spread ${spread.toFixed(0)} ms`);
  const most = maxInWindow(got, 1000);
  assert.ok(most <= 6, `at most ~6 in any 1 s window; saw ${most}`);
  assert.equal(new Set(got.map((r) => r.headers['webhook-id'])).size, 15);
  assert.ok((await metric('hookgate_deliveries_throttled_total{reason="rate"}')) >= before + 1);
});

test('PATCH rateLimit null lifts the limit at once: held deliveries go out', async () => {
  const wh = await createWebhook(gw, rx, '/lift', ['lift.test'], { rateLimit: 0.2 });
  await Promise.all(Array.from({ length: 5 }, (_, i) => publishOk(gw, { type: 'lift.test', data: { i } })));
  await rx.waitFor('/lift', { count: 1, timeout: 5000 * SLOW });
  await sleep(500);
  assert.equal(rx.received('/lift').length, 1, 'one per 5 s: the rest are held');
  const t0 = Date.now();
  const r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { rateLimit: null } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.rateLimit, null);
  await rx.waitFor('/lift', { count: 5, timeout: 4000 * SLOW });
  // Well before the 4 x 5 s the limit would have taken.
  assert.ok(Date.now() - t0 < 4000 * SLOW);
});

test('a test send goes at once whatever the limits', async () => {
  rx.on('/test-send', slow(1500));
  const wh = await createWebhook(gw, rx, '/test-send', ['send.test'], { maxConcurrency: 1, rateLimit: 0.1 });
  await publishOk(gw, { type: 'send.test', data: {} });
  await publishOk(gw, { type: 'send.test', data: {} });
  await rx.waitFor('/test-send', { count: 1, timeout: 5000 * SLOW });
  // The webhook's one slot is taken, its bucket empty: a test still goes.
  const r = await gw.request('POST', `/v1/webhooks/${wh.id}/test`, { body: {} });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.success, true, r.body);
  assert.equal(rx.received('/test-send').length, 2, 'the test, and no second event (still held)');
  assert.equal(await metric('hookgate_deliveries_held'), 1);
  // Deleted: what it held goes at once (its rows are gone), nothing is sent.
  const del = await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  assert.equal(del.status, 204, del.body);
  await until(async () => (await metric('hookgate_deliveries_held')) === 0, { what: 'nothing held for a deleted webhook' });
  await sleep(200);
  assert.equal(rx.received('/test-send').length, 2);
});

test('held deliveries are pending rows: a restart sends them, none lost, none twice', async () => {
  const g1 = await startGateway({ config: CONFIG });
  const wh = await createWebhook(g1, rx, '/restart', ['restart.test'], { rateLimit: 0.2 });
  const evs = [];
  for (let i = 0; i < 3; i++) evs.push(await publishOk(g1, { type: 'restart.test', data: { i } }));
  await rx.waitFor('/restart', { count: 1, timeout: 5000 * SLOW });
  await until(async () => (await listDeliveries(g1, wh.id)).deliveries.filter((d) => d.status === 'success').length === 1,
    { what: 'the first delivery recorded' });
  await stopClean(g1);
  assert.equal(rx.received('/restart').length, 1, 'one per 5 s: two were still held at the stop');

  const g2 = await startGateway({ config: CONFIG, dir: g1.dir });
  try {
    const r = await g2.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { rateLimit: null } });
    assert.equal(r.status, 200, r.body);
    const got = await rx.waitFor('/restart', { count: 3, timeout: 10000 * SLOW });
    assert.deepEqual(got.map((x) => x.headers['webhook-id']).sort(), evs.map((e) => e.id).sort());
    await until(async () => (await listDeliveries(g2, wh.id)).deliveries.every((d) => d.status === 'success'),
      { what: 'all three delivered' });
    await sleep(300);
    assert.equal(rx.received('/restart').length, 3, 'none sent twice');
  } finally {
    await stopClean(g2);
  }
});

test('a held backlog of a webhook made inactive is recorded as not sent: no delivery.exhausted for it', async () => {
  rx.on('/off', () => ({ status: 200, body: 'ok' }));
  rx2.on('/ops', () => ({ status: 200, body: 'ok' }));
  const w = await createWebhook(gw, rx, '/off', ['off.test'], { rateLimit: 0.01 });
  const ops = await createWebhook(gw, rx2, '/ops', ['delivery.exhausted']);
  for (let i = 0; i < 4; i++) await publishOk(gw, { type: 'off.test', data: { i } });
  await until(() => rx.received('/off').length >= 1, { what: 'the first delivery' });
  // The other three wait under the rate limit; the webhook is turned off and the limit lifted.
  const p = await gw.request('PATCH', `/v1/webhooks/${w.id}`, { body: { active: false, rateLimit: null } });
  assert.equal(p.status, 200, p.body);
  await until(async () => {
    const l = await listDeliveries(gw, w.id);
    return l.deliveries.filter((d) => d.status === 'failed').length === 3;
  }, { what: 'three deliveries recorded as not sent' });
  await sleep(1000 * SLOW);
  assert.equal(rx.received('/off').length, 1, 'nothing more was sent');
  assert.equal(rx2.received('/ops').length, 0, 'no delivery.exhausted for deliveries that were never attempted');
  const g = await gw.request('GET', `/v1/webhooks/${w.id}`);
  assert.equal(g.json.exhaustedDeliveries ?? 0, 0, g.body);
  await gw.request('DELETE', `/v1/webhooks/${ops.id}`);
});

