// Bulk recovery (POST /v1/webhooks/{id}/recover, GET …/recover/{recoveryId}):
// a receiver that was down gets its failed deliveries again, oldest first,
// with their original webhook-ids; a dry run counts without changing
// anything; the events a disabled webhook never got can be sent; a second
// recovery over a window being recovered answers 409; bad input answers
// 422 naming the field; another organization sees nothing. Real sockets,
// a real receiver, the store under test (SQLite or PostgreSQL).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver, ok, status } from './lib/receiver.mjs';
import { makeKey } from './lib/keys.mjs';
import { expectError, expectValidation } from './lib/expect.mjs';
import { deliveryConfig, createWebhook, publishOk, listDeliveries, until, stopClean, sleep } from './lib/delivery.mjs';

const gateways = [];
const receivers = [];
after(async () => {
  for (const r of receivers) await r.close();
  for (const g of gateways) await stopClean(g);
});

async function setup() {
  const gw = await startGateway({ config: deliveryConfig() });
  gateways.push(gw);
  const rx = await startReceiver();
  receivers.push(rx);
  return { gw, rx };
}

const iso = (ms) => new Date(ms).toISOString();

async function recover(gw, whId, body, key) {
  return gw.request('POST', `/v1/webhooks/${whId}/recover`, { body, key });
}

// Polls the recovery until it has ended; returns its last view.
async function waitRecovery(gw, whId, id, key) {
  return until(async () => {
    const r = await gw.request('GET', `/v1/webhooks/${whId}/recover/${id}`, { key });
    assert.equal(r.status, 200, r.body);
    return r.json.state === 'running' ? { done: false, ...r.json } : r.json;
  }, { timeout: 20000, what: `recovery ${id}` });
}

async function statuses(gw, whId) {
  const list = await listDeliveries(gw, whId, 'pageSize=100');
  return Object.fromEntries(list.deliveries.map((d) => [d.eventId, d]));
}

test('failed deliveries go again, oldest first, with their own ids; a dry run counts and changes nothing', async () => {
  const { gw, rx } = await setup();
  let broken = false;
  rx.on('/r', () => (broken ? status(500, { body: 'down' }) : ok()));
  const wh = await createWebhook(gw, rx, '/r', ['user.created']);
  const t0 = Date.now() - 1;
  const good = await publishOk(gw, { type: 'user.created', data: { n: 0 } });
  await until(async () => (await statuses(gw, wh.id))[good.id]?.status === 'success', { what: 'first delivery' });
  broken = true;
  const failed = [];
  for (let i = 1; i <= 3; i++) failed.push(await publishOk(gw, { type: 'user.created', data: { n: i } }));
  await until(async () => {
    const s = await statuses(gw, wh.id);
    return failed.every((e) => s[e.id]?.status === 'failed');
  }, { what: 'three failed deliveries' });
  const before = await statuses(gw, wh.id);

  const dry = await recover(gw, wh.id, { since: iso(t0), dryRun: true });
  assert.equal(dry.status, 200, dry.body);
  assert.equal(dry.json.state, 'done');
  assert.equal(dry.json.count, 3);
  assert.equal(dry.json.countCapped, false);
  assert.equal(dry.json.dryRun, true);
  assert.equal(dry.json.status, 'failed');
  assert.match(dry.json.id, /^rcv_[0-9a-z]{26}$/);
  const allDry = await recover(gw, wh.id, { since: iso(t0), status: 'all', dryRun: true });
  assert.equal(allDry.json.count, 4);
  const skippedDry = await recover(gw, wh.id, { since: iso(t0), status: 'skipped', dryRun: true });
  assert.equal(skippedDry.json.count, 0);
  // A window that ends before the failures holds only the success.
  const early = await recover(gw, wh.id, { since: iso(t0), until: before[failed[0].id].createdAt, status: 'all', dryRun: true });
  assert.equal(early.json.count, 1);
  await sleep(300);
  assert.equal(rx.received('/r').filter((q) => failed.some((e) => e.id === q.headers['webhook-id'])).length, 12,
    'four attempts each, none more after the dry runs');
  for (const e of failed) assert.equal((await statuses(gw, wh.id))[e.id].status, 'failed');

  broken = false;
  const seen = rx.received('/r').length;
  const r = await recover(gw, wh.id, { since: iso(t0) });
  assert.ok(r.status === 200 || r.status === 202, r.body);
  assert.equal(r.headers.location, `/v1/webhooks/${wh.id}/recover/${r.json.id}`);
  const done = await waitRecovery(gw, wh.id, r.json.id);
  assert.equal(done.state, 'done');
  assert.equal(done.requeued, 3);
  assert.equal(done.error, null);
  await until(async () => {
    const s = await statuses(gw, wh.id);
    return failed.every((e) => s[e.id].status === 'success');
  }, { what: 'recovered deliveries' });
  // Queued oldest first, then sent as any delivery is, several at a
  // time: the arrival order is not promised.
  const again = rx.received('/r').slice(seen);
  assert.deepEqual(again.map((q) => q.headers['webhook-id']).sort(), failed.map((e) => e.id).sort(), 'original ids');
  const after = await statuses(gw, wh.id);
  for (const e of failed) {
    assert.equal(after[e.id].id, before[e.id].id, 'the same delivery');
    assert.equal(after[e.id].attempts, before[e.id].attempts + 1);
  }
  assert.equal(after[good.id].attempts, 1, 'the success was not sent again');
  // Nothing failed is left: a second recovery finds nothing.
  const none = await recover(gw, wh.id, { since: iso(t0) });
  const none2 = await waitRecovery(gw, wh.id, none.json.id);
  assert.equal(none2.requeued, 0);

  const m = (await gw.request('GET', '/metrics')).body;
  assert.match(m, /hookgate_deliveries_recovered_total\{kind="requeued"\} 3\b/);
  assert.match(m, /hookgate_recoveries_started_total \d+/);
});

test('missed: events published while the webhook was disabled are sent once asked, and only those it subscribes to', async () => {
  const { gw, rx } = await setup();
  const wh = await createWebhook(gw, rx, '/m', ['user.*']);
  const t0 = Date.now() - 1;
  let p = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { active: false } });
  assert.equal(p.status, 200, p.body);
  const missed = [
    await publishOk(gw, { type: 'user.created', data: { n: 1 } }),
    await publishOk(gw, { type: 'session.created', data: { n: 2 } }),
    await publishOk(gw, { type: 'user.deleted', data: { n: 3 } }),
  ];
  p = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { active: true } });
  assert.equal(p.status, 200, p.body);
  await sleep(200);
  assert.equal(rx.received('/m').length, 0, 'nothing was sent while it was disabled');

  const dry = await recover(gw, wh.id, { since: iso(t0), missed: true, dryRun: true });
  assert.ok(dry.status === 200 || dry.status === 202, dry.body);
  const dryDone = await waitRecovery(gw, wh.id, dry.json.id);
  assert.equal(dryDone.missedFound, 2);
  assert.equal(dryDone.count, 0);
  assert.equal('missedAdded' in dryDone, false);
  await sleep(200);
  assert.equal(rx.received('/m').length, 0, 'a dry run sends nothing');

  const r = await recover(gw, wh.id, { since: iso(t0), missed: true });
  const done = await waitRecovery(gw, wh.id, r.json.id);
  assert.equal(done.missedFound, 2);
  assert.equal(done.missedAdded, 2);
  await until(() => rx.received('/m').length >= 2, { what: 'missed events' });
  await sleep(200);
  const ids = rx.received('/m').map((q) => q.headers['webhook-id']).sort();
  assert.deepEqual(ids, [missed[0].id, missed[2].id].sort(), 'the subscribed ones, with the events\' ids');
  // Asked again: they have deliveries now, nothing is added twice.
  const r2 = await recover(gw, wh.id, { since: iso(t0), missed: true });
  const done2 = await waitRecovery(gw, wh.id, r2.json.id);
  assert.equal(done2.missedAdded, 0);
  // Events before the window are not looked at.
  const late = await recover(gw, wh.id, { since: iso(Date.now() - 1), missed: true, dryRun: true });
  assert.equal((await waitRecovery(gw, wh.id, late.json.id)).missedFound, 0);
  const m = (await gw.request('GET', '/metrics')).body;
  assert.match(m, /hookgate_deliveries_recovered_total\{kind="missed"\} 2\b/);
});

test('a recovery held back by a long delivery queue is running: an overlapping one answers 409, others go', async () => {
  const { gw, rx } = await setup();
  const wh = await createWebhook(gw, rx, '/q', ['user.created']);
  const t0 = Date.now() - 1;
  let r = await gw.request('POST', '/v1/admin/delivery/pause');
  assert.equal(r.status, 200, r.body);
  // Past the queue's high mark (20,000): a recovery waits for it to drain.
  const one = JSON.stringify({ type: 'user.created', data: { x: 1 } });
  const batch = `{"events":[${Array(1000).fill(one).join(',')}]}`;
  for (let i = 0; i < 21; i++) {
    const b = await gw.request('POST', '/v1/events/batch', { body: batch, headers: { 'content-type': 'application/json' } });
    assert.equal(b.status, 202, b.body.slice(0, 300));
  }
  const first = await recover(gw, wh.id, { since: iso(t0), status: 'all' });
  assert.equal(first.status, 202, first.body);
  assert.equal(first.json.state, 'running');
  await sleep(300);
  const still = await gw.request('GET', `/v1/webhooks/${wh.id}/recover/${first.json.id}`);
  assert.equal(still.json.state, 'running');
  assert.equal(still.json.requeued, 0, 'held back while the queue is long');

  const clash = await recover(gw, wh.id, { since: iso(t0 + 10), status: 'failed' });
  expectError(clash, 409, 'conflict');
  assert.match(clash.json.error.message, new RegExp(first.json.id));
  // At most 8 run at once on a node: 7 more (held back too), then a 9th is refused, dry or not.
  for (let k = 1; k <= 7; k++) {
    const more = await recover(gw, wh.id, { since: iso(t0 - 3600e3 * (k + 1)), until: iso(t0 - 3600e3 * k) });
    assert.equal(more.status, 202, more.body);
  }
  const ninth = await recover(gw, wh.id, { since: iso(t0 - 3600e3 * 20), until: iso(t0 - 3600e3 * 19) });
  expectError(ninth, 409, 'conflict');
  assert.match(ninth.json.error.message, /8 recoveries are running/);
  expectError(await recover(gw, wh.id, { since: iso(t0), dryRun: true }), 409, 'conflict');
  r = await gw.request('POST', '/v1/admin/delivery/resume');
  assert.equal(r.status, 200, r.body);
  await waitRecovery(gw, wh.id, first.json.id);
  r = await gw.request('POST', '/v1/admin/delivery/pause');
  assert.equal(r.status, 200, r.body);
  // A dry run, and a window that does not overlap, are not refused.
  const dry = await recover(gw, wh.id, { since: iso(t0), dryRun: true });
  assert.equal(dry.status, 200, dry.body);
  const before = await recover(gw, wh.id, { since: iso(t0 - 60000), until: iso(t0 - 30000) });
  assert.ok(before.status === 200 || before.status === 202, before.body);

  r = await gw.request('POST', '/v1/admin/delivery/resume');
  assert.equal(r.status, 200, r.body);
  const done = await waitRecovery(gw, wh.id, first.json.id);
  assert.equal(done.state, 'done');
  // Once it has ended, the same window may run again.
  const next = await recover(gw, wh.id, { since: iso(t0), dryRun: false });
  assert.ok(next.status === 200 || next.status === 202, next.body);
});

test('missed: an event whose delivery retention purged is not taken for a missed one', async () => {
  const gw = await startGateway({ config: deliveryConfig({ top: 'retention = { events = "30d", deliveries = "2s", interval = "1s" }' }) });
  gateways.push(gw);
  const rx = await startReceiver();
  receivers.push(rx);
  const wh = await createWebhook(gw, rx, '/p', ['user.created']);
  const t0 = Date.now() - 1;
  const e = await publishOk(gw, { type: 'user.created', data: {} });
  await until(() => rx.received('/p').length === 1, { what: 'the delivery' });
  await until(async () => (await listDeliveries(gw, wh.id)).deliveries.length === 0, { what: 'the delivery purged', timeout: 20000 });
  const r = await recover(gw, wh.id, { since: iso(t0), missed: true, dryRun: true });
  const done = await waitRecovery(gw, wh.id, r.json.id);
  assert.equal(done.missedFound, 0, `event ${e.id} was delivered; its delivery row is gone, not missed`);
});

test('delivery.recover_rate paces a recovery: 1,000 deliveries at 500/s take a pause of a second', async () => {
  const gw = await startGateway({ config: `webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0 }, jitter = 0, timeout = 1, recover_rate = 500 }
` });
  gateways.push(gw);
  const r0 = await gw.request('POST', '/v1/webhooks', { body: { url: 'http://127.0.0.1:9/refused', events: ['user.created'] } });
  assert.equal(r0.status, 201, r0.body);
  const wh = r0.json;
  const t0 = Date.now() - 1;
  const one = JSON.stringify({ type: 'user.created', data: {} });
  const b = await gw.request('POST', '/v1/events/batch', { body: `{"events":[${Array(1000).fill(one).join(',')}]}`,
    headers: { 'content-type': 'application/json' } });
  assert.equal(b.status, 202, b.body.slice(0, 300));
  await until(async () => {
    const d = await recover(gw, wh.id, { since: iso(t0), dryRun: true });
    return d.json.count === 1000;
  }, { what: '1,000 failed deliveries', timeout: 20000 });
  const started = Date.now();
  const r = await recover(gw, wh.id, { since: iso(t0) });
  assert.equal(r.status, 202, r.body);
  const done = await waitRecovery(gw, wh.id, r.json.id);
  assert.equal(done.requeued, 1000);
  // Two batches of 500: the first, a pause of 500 / 500 per s, the second (then its end).
  assert.ok(Date.now() - started >= 950, `took ${Date.now() - started} ms`);
});

test('bad input answers 422 naming the field; unknown ids 404; another organization sees nothing', async () => {
  const { gw, rx } = await setup();
  const wh = await createWebhook(gw, rx, '/v', ['user.created'], { organizationId: 'org_a' });
  const now = Date.now();
  expectValidation(await recover(gw, wh.id, {}), ['since']);
  expectValidation(await recover(gw, wh.id, { since: 'yesterday' }), ['since']);
  expectValidation(await recover(gw, wh.id, { since: '2026-02-30T00:00:00Z' }), ['since']); // no such day
  expectValidation(await recover(gw, wh.id, { since: 12345 }), ['since']);
  expectValidation(await recover(gw, wh.id, { since: iso(now), until: iso(now - 1000) }), ['until']);
  expectValidation(await recover(gw, wh.id, { since: iso(now - 1000), status: 'pending' }), ['status']);
  expectValidation(await recover(gw, wh.id, { since: iso(now - 1000), dryRun: 'yes' }), ['dryRun']);
  expectValidation(await recover(gw, wh.id, { since: iso(now - 1000), missed: 1 }), ['missed']);
  expectValidation(await recover(gw, wh.id, { since: iso(now - 1000), sinse: 'x' }), ['sinse']);
  expectValidation(await recover(gw, wh.id, { since: '2020-01-01T00:00:00Z' }), ['since']); // wider than 366 days
  expectError(await recover(gw, 'wh_00000000000000000000000000', { since: iso(now - 1000) }), 404, 'not_found');
  expectError(await recover(gw, 'not-an-id', { since: iso(now - 1000) }), 404, 'not_found');
  const bad = await gw.request('POST', `/v1/webhooks/${wh.id}/recover`, { body: '{"since":', headers: { 'content-type': 'application/json' } });
  assert.equal(bad.status, 400, bad.body);
  expectError(await gw.request('GET', `/v1/webhooks/${wh.id}/recover/rcv_00000000000000000000000000`), 404, 'not_found');
  expectError(await gw.request('GET', `/v1/webhooks/${wh.id}/recover/nope`), 404, 'not_found');

  const own = await recover(gw, wh.id, { since: iso(now - 1000), dryRun: true });
  assert.equal(own.status, 200, own.body);
  const a = await makeKey(gw, 'webhooks:read,webhooks:write', 'org_a');
  const b = await makeKey(gw, 'webhooks:read,webhooks:write', 'org_b');
  const ro = await makeKey(gw, 'webhooks:read', 'org_a');
  // Its own organization sees it; another one finds neither the webhook nor the recovery.
  assert.equal((await gw.request('GET', `/v1/webhooks/${wh.id}/recover/${own.json.id}`, { key: a.key })).status, 200);
  expectError(await gw.request('GET', `/v1/webhooks/${wh.id}/recover/${own.json.id}`, { key: b.key }), 404, 'not_found');
  expectError(await recover(gw, wh.id, { since: iso(now - 1000) }, b.key), 404, 'not_found');
  const mine = await recover(gw, wh.id, { since: iso(now - 1000), dryRun: true }, a.key);
  assert.equal(mine.status, 200, mine.body);
  // The recovery id under another webhook's path is not found either.
  const other = await createWebhook(gw, rx, '/v2', ['user.created'], { organizationId: 'org_a' });
  expectError(await gw.request('GET', `/v1/webhooks/${other.id}/recover/${own.json.id}`), 404, 'not_found');
  // Starting one needs webhooks:write.
  expectError(await recover(gw, wh.id, { since: iso(now - 1000) }, ro.key), 403, 'forbidden');
});
