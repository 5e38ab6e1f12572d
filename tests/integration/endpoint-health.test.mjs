// endpoint-health.test.mjs: a webhook whose deliveries keep failing is
// disabled automatically (delivery.disable_after, or the webhook's own
// disableAfter), shows disabledAt / disabledReason, and comes back with
// PATCH active=true; the operational events (delivery.exhausted,
// webhook.disabled, webhook.recovered) reach the webhooks of the same
// organization that subscribed to them, signed, and never loop.
//
// Real gateway, real receivers, the test's store (SQLite, or PostgreSQL
// with HG_TEST_STORE=postgresql). Each test works in an organization of its
// own, so the tests' operational events never cross.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startGateway, tempDir, BIN } from './lib/gateway.mjs';
import { startReceiver, status, ok, gone } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publishOk, until, sleep, SLOW, stopClean, listDeliveries } from './lib/delivery.mjs';
import { expectValidation, TIME_RE } from './lib/expect.mjs';
import { onPg, newPgDatabase } from './lib/store.mjs';

const require = createRequire(new URL('../package.json', import.meta.url));
const { Webhook } = require('standardwebhooks');

const OPS = ['webhook.disabled', 'webhook.recovered', 'delivery.exhausted'];
// Two exhausted deliveries in a row disable a webhook; time is left out.
const CONFIG = deliveryConfig({ extra: 'disable_after = { exhausted = 2, failing_for = 0 }' });

let rx;
let gw;

before(async () => {
  rx = await startReceiver();
  gw = await startGateway({ config: CONFIG });
});

after(async () => {
  if (gw) await stopClean(gw);
  await rx?.close();
});

const got = (path) => rx.requests.filter((r) => r.path === path);
// The operational events a path received, verified with secret: parsed bodies.
function opsAt(path, secret) {
  const wh = new Webhook(secret);
  return got(path).map((r) => {
    const headers = {
      'webhook-id': r.headers['webhook-id'],
      'webhook-timestamp': r.headers['webhook-timestamp'],
      'webhook-signature': r.headers['webhook-signature'],
    };
    return wh.verify(r.body.toString('utf8'), headers); // throws on a bad signature
  });
}
const ofType = (events, type) => events.filter((e) => e.type === type);

async function getWebhook(id) {
  const r = await gw.request('GET', `/v1/webhooks/${id}`);
  assert.equal(r.status, 200, r.body);
  return r.json;
}

const waitInactive = (id) => until(async () => {
  const w = await getWebhook(id);
  return w.active ? { done: false, ...w } : w;
}, { what: `webhook ${id} disabled` });

// Publishes n user.created events of org, one after the other, each waited
// out (every attempt made) when wait is set for webhook whId.
async function publishFailing(org, n, whId) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const e = await publishOk(gw, { type: 'user.created', organizationId: org, data: { i } });
    ids.push(e.id);
    if (whId) {
      await until(async () => {
        const l = await listDeliveries(gw, whId, 'pageSize=100');
        const d = l.deliveries.find((x) => x.eventId === e.id);
        return d && d.status !== 'pending';
      }, { what: `delivery of ${e.id} settled` });
    }
  }
  return ids;
}

test('a failing webhook is disabled after the configured count; its org subscriber gets signed events, other orgs none', async () => {
  rx.on('/a/fail', status(500, { body: 'down' }));
  const fail = await createWebhook(gw, rx, '/a/fail', ['user.created'], { organizationId: 'org-a' });
  const ops = await createWebhook(gw, rx, '/a/ops', OPS, { organizationId: 'org-a' });
  const star = await createWebhook(gw, rx, '/a/star', ['*'], { organizationId: 'org-a' });
  await createWebhook(gw, rx, '/b/ops', OPS, { organizationId: 'org-b' });
  const fresh = await getWebhook(fail.id);
  assert.equal(fresh.disabledAt, null);
  assert.equal(fresh.disabledReason, null);
  assert.equal(fresh.disableAfter, null);
  assert.equal(fresh.exhaustedDeliveries, 0);
  assert.equal(fresh.failingSince, null);

  // One exhausted delivery: counted, not disabled.
  const [first] = await publishFailing('org-a', 1, fail.id);
  let w = await getWebhook(fail.id);
  assert.equal(w.active, true);
  assert.equal(w.exhaustedDeliveries, 1);
  assert.match(w.failingSince, TIME_RE);
  const second = (await publishFailing('org-a', 1))[0];
  w = await waitInactive(fail.id);
  assert.equal(w.disabledReason.code, 'consecutive_failures');
  assert.match(w.disabledReason.message, /2 deliveries in a row failed every attempt/);
  assert.match(w.disabledAt, TIME_RE);
  assert.equal(w.exhaustedDeliveries, 2);

  // The subscriber of the same organization: two delivery.exhausted and one
  // webhook.disabled naming it, each signed with the subscriber's secret.
  const seen = await until(() => {
    const evs = opsAt('/a/ops', ops.secret);
    return ofType(evs, 'webhook.disabled').length === 1 && ofType(evs, 'delivery.exhausted').length === 2 && evs;
  }, { what: 'operational events at /a/ops' });
  const disabled = ofType(seen, 'webhook.disabled')[0];
  assert.equal(disabled.data.webhookId, fail.id);
  assert.deepEqual(disabled.data.disabledReason, w.disabledReason);
  assert.equal(disabled.data.disabledAt, w.disabledAt);
  assert.equal(disabled.data.exhaustedDeliveries, 2);
  assert.equal(disabled.data.eventId, second);
  assert.match(disabled.timestamp, TIME_RE);
  const exhausted = ofType(seen, 'delivery.exhausted');
  assert.deepEqual(exhausted.map((e) => e.data.eventId).sort(), [first, second].sort());
  for (const e of exhausted) {
    assert.equal(e.data.webhookId, fail.id);
    assert.equal(e.data.eventType, 'user.created');
    assert.equal(e.data.attempts, 4);
    assert.equal(e.data.lastStatusCode, 500);
    assert.match(e.data.deliveryId, /^del_/);
  }
  // Ids, codes, counts and times only: no URL, no secret, no payload copy.
  const raw = got('/a/ops').map((r) => r.body.toString()).join('\n');
  assert.ok(!raw.includes(rx.base) && !raw.includes('whsec_') && !raw.includes('"i":'), raw);

  // Disabled: nothing more goes to it.
  const before = got('/a/fail').length;
  const e3 = await publishOk(gw, { type: 'user.created', organizationId: 'org-a', data: { i: 3 } });
  assert.equal(e3.deliveries, 1); // the "*" subscriber only
  await sleep(800 * SLOW);
  assert.equal(got('/a/fail').length, before);

  // "*" does not match operational events; another organization saw none.
  assert.ok(got('/a/star').length >= 3);
  assert.ok(got('/a/star').every((r) => JSON.parse(r.body).type === 'user.created'));
  assert.equal(got('/b/ops').length, 0);
  assert.ok(star.id);

  const m = (await gw.request('GET', '/metrics')).body;
  assert.match(m, /^hookgate_webhooks_disabled_total\{reason="consecutive_failures"\} [1-9]/m);
  assert.match(m, /^hookgate_operational_events_total\{type="webhook.disabled"\} [1-9]/m);
  assert.match(m, /^hookgate_operational_events_total\{type="delivery.exhausted"\} [1-9]/m);
});

test('a success after failures sends webhook.recovered; PATCH active=true re-enables and clears', async () => {
  rx.on('/c/flaky', status(500));
  const flaky = await createWebhook(gw, rx, '/c/flaky', ['user.created'], { organizationId: 'org-c' });
  const ops = await createWebhook(gw, rx, '/c/ops', OPS, { organizationId: 'org-c' });
  await publishFailing('org-c', 1, flaky.id);
  let w = await getWebhook(flaky.id);
  assert.equal(w.exhaustedDeliveries, 1);

  rx.on('/c/flaky', ok());
  const healed = await publishOk(gw, { type: 'user.created', organizationId: 'org-c', data: {} });
  const evs = await until(() => {
    const e = ofType(opsAt('/c/ops', ops.secret), 'webhook.recovered');
    return e.length === 1 && e;
  }, { what: 'webhook.recovered' });
  assert.equal(evs[0].data.webhookId, flaky.id);
  assert.equal(evs[0].data.exhaustedDeliveries, 1);
  assert.equal(evs[0].data.eventId, healed.id);
  assert.match(evs[0].data.failingSince, TIME_RE);
  assert.match(evs[0].data.recoveredAt, TIME_RE);
  w = await getWebhook(flaky.id);
  assert.equal(w.exhaustedDeliveries, 0);
  assert.equal(w.failingSince, null);

  // A second success is no recovery.
  await publishFailing('org-c', 1, flaky.id);
  await sleep(300 * SLOW);
  assert.equal(ofType(opsAt('/c/ops', ops.secret), 'webhook.recovered').length, 1);

  // Disabled again, then re-enabled by hand: the reason and the streak go.
  rx.on('/c/flaky', status(503));
  await publishFailing('org-c', 2, flaky.id);
  w = await waitInactive(flaky.id);
  assert.equal(w.disabledReason.code, 'consecutive_failures');
  const r = await gw.request('PATCH', `/v1/webhooks/${flaky.id}`, { body: { active: true } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.active, true);
  assert.equal(r.json.disabledAt, null);
  assert.equal(r.json.disabledReason, null);
  assert.equal(r.json.exhaustedDeliveries, 0);
  assert.equal(r.json.failingSince, null);
  const listed = (await gw.request('GET', '/v1/webhooks?organizationId=org-c')).json.webhooks.find((x) => x.id === flaky.id);
  assert.equal(listed.disabledAt, null);
  // Counting starts afresh: one more exhausted delivery does not disable it.
  await publishFailing('org-c', 1, flaky.id);
  w = await getWebhook(flaky.id);
  assert.equal(w.active, true);
  assert.equal(w.exhaustedDeliveries, 1);

  // Disabled by hand: reason "manual"; back on: cleared.
  const off = await gw.request('PATCH', `/v1/webhooks/${flaky.id}`, { body: { active: false } });
  assert.equal(off.json.disabledReason.code, 'manual');
  assert.match(off.json.disabledAt, TIME_RE);
  const on = await gw.request('PATCH', `/v1/webhooks/${flaky.id}`, { body: { active: true } });
  assert.equal(on.json.disabledReason, null);
});

test('no loop: a failing subscriber of operational events is disabled, and others hear of it, never itself', async () => {
  rx.on('/d/fail', status(500)).on('/d/ops-fail', status(500));
  const fail = await createWebhook(gw, rx, '/d/fail', ['user.created'], { organizationId: 'org-d' });
  const opsFail = await createWebhook(gw, rx, '/d/ops-fail', OPS, { organizationId: 'org-d' });
  const opsOk = await createWebhook(gw, rx, '/d/ops-ok', OPS, { organizationId: 'org-d' });
  await publishOk(gw, { type: 'user.created', organizationId: 'org-d', data: {} });
  await publishOk(gw, { type: 'user.created', organizationId: 'org-d', data: {} });
  await waitInactive(fail.id);
  // ops-fail gets 2 delivery.exhausted and 1 webhook.disabled, fails them
  // all: disabled after 2, its own failures publishing no delivery.exhausted.
  const w = await waitInactive(opsFail.id);
  assert.equal(w.disabledReason.code, 'consecutive_failures');
  const want = (evs) => ofType(evs, 'webhook.disabled').length === 2 && evs;
  const evs = await until(() => want(opsAt('/d/ops-ok', opsOk.secret)), { what: 'two webhook.disabled at /d/ops-ok' });
  await sleep(1500 * SLOW); // anything more would have come by now
  const all = opsAt('/d/ops-ok', opsOk.secret);
  assert.deepEqual(ofType(all, 'webhook.disabled').map((e) => e.data.webhookId).sort(), [fail.id, opsFail.id].sort());
  // Only the user.created deliveries' exhaustion: none about operational events.
  const ex = ofType(all, 'delivery.exhausted');
  assert.equal(ex.length, 2);
  assert.ok(ex.every((e) => e.data.webhookId === fail.id && e.data.eventType === 'user.created'));
  assert.equal(all.length, 4, JSON.stringify(all.map((e) => e.type)));
  assert.ok(evs.length >= 2);
  // ops-fail never got the event about itself; its attempts are bounded.
  const own = got('/d/ops-fail').map((r) => JSON.parse(r.body));
  assert.ok(!own.some((e) => e.type === 'webhook.disabled' && e.data.webhookId === opsFail.id));
  assert.ok(own.length <= 3 * 4, `${own.length} attempts at /d/ops-fail`);
});

test('a 410 disables with reason "gone" and tells the subscribers: its organization\'s and the operator\'s', async () => {
  rx.on('/e/gone', gone());
  const g = await createWebhook(gw, rx, '/e/gone', ['user.created'], { organizationId: 'org-e' });
  const ops = await createWebhook(gw, rx, '/e/ops', ['webhook.*'], { organizationId: 'org-e' });
  const operator = await createWebhook(gw, rx, '/e/operator', ['webhook.disabled']);
  const waitOps = (path, secret, about) => until(() => opsAt(path, secret).some((e) => e.type === 'webhook.disabled' &&
    e.data.webhookId === about), { what: `webhook.disabled about ${about} at ${path}` });
  await publishOk(gw, { type: 'user.created', organizationId: 'org-e', data: {} });
  const w = await waitInactive(g.id);
  assert.equal(w.disabledReason.code, 'gone');
  assert.match(w.disabledAt, TIME_RE);
  const evs = await until(() => {
    const e = ofType(opsAt('/e/ops', ops.secret), 'webhook.disabled');
    return e.length === 1 && e;
  }, { what: 'webhook.disabled for a 410' });
  assert.equal(evs[0].data.disabledReason.code, 'gone');
  assert.equal(evs[0].data.webhookId, g.id);
  // The operator's webhooks (no organization) hear of every organization's;
  // an organization never hears of a webhook without one.
  assert.ok((await waitOps('/e/operator', operator.secret, g.id)));
  rx.on('/e/gone-operator', gone());
  const g2 = await createWebhook(gw, rx, '/e/gone-operator', ['session.created']);
  await publishOk(gw, { type: 'session.created', data: {} });
  await waitInactive(g2.id);
  assert.ok(await waitOps('/e/operator', operator.secret, g2.id));
  await sleep(500 * SLOW);
  assert.ok(!opsAt('/e/ops', ops.secret).some((e) => e.data.webhookId === g2.id));
  const m = (await gw.request('GET', '/metrics')).body;
  assert.match(m, /^hookgate_webhooks_disabled_total\{reason="gone"\} [1-9]/m);
});

test('disableAfter per webhook: a lower count, a rule turned off, a failing time not reached', async () => {
  rx.on('/f/one', status(500)).on('/f/never', status(500)).on('/f/time', status(500));
  const one = await createWebhook(gw, rx, '/f/one', ['user.created'], { organizationId: 'org-f', disableAfter: { exhausted: 1 } });
  assert.deepEqual(one.disableAfter, { exhausted: 1 });
  const never = await createWebhook(gw, rx, '/f/never', ['user.created'],
    { organizationId: 'org-f', disableAfter: { exhausted: 0, failingFor: 0 } });
  assert.deepEqual(never.disableAfter, { exhausted: 0, failingFor: '0s' });
  const time = await createWebhook(gw, rx, '/f/time', ['user.created'],
    { organizationId: 'org-f', disableAfter: { exhausted: 1, failingFor: '1h' } });
  assert.deepEqual(time.disableAfter, { exhausted: 1, failingFor: '1h' });
  await publishFailing('org-f', 1, never.id);
  const w1 = await waitInactive(one.id);
  assert.equal(w1.exhaustedDeliveries, 1);
  await publishFailing('org-f', 2, never.id);
  for (const id of [never.id, time.id]) {
    const w = await getWebhook(id);
    assert.equal(w.active, true, id);
    assert.ok(w.exhaustedDeliveries >= 2, JSON.stringify(w));
  }
  // PATCH sets and clears it.
  let r = await gw.request('PATCH', `/v1/webhooks/${time.id}`, { body: { disableAfter: { failingFor: '36h' } } });
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json.disableAfter, { failingFor: '36h' });
  r = await gw.request('PATCH', `/v1/webhooks/${time.id}`, { body: { disableAfter: null } });
  assert.equal(r.json.disableAfter, null);
});

test('invalid disableAfter values and operational event types: 422 naming the field', async () => {
  const url = rx.url('/g');
  const post = (body) => gw.request('POST', '/v1/webhooks', { body: { url, events: ['user.created'], ...body } });
  expectValidation(await post({ disableAfter: 'soon' }), ['disableAfter']);
  expectValidation(await post({ disableAfter: { exhausted: -1 } }), ['disableAfter.exhausted']);
  expectValidation(await post({ disableAfter: { exhausted: 1.5 } }), ['disableAfter.exhausted']);
  expectValidation(await post({ disableAfter: { failingFor: '5 days' } }), ['disableAfter.failingFor']);
  expectValidation(await post({ disableAfter: { failingFor: '400d' } }), ['disableAfter.failingFor']);
  expectValidation(await post({ disableAfter: { failingFor: -5 } }), ['disableAfter.failingFor']);
  expectValidation(await post({ disableAfter: { after: 3 } }), ['disableAfter.after']);
  const wh = await createWebhook(gw, rx, '/g', ['user.created']);
  const patch = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { disableAfter: { exhausted: 'five' } } });
  expectValidation(patch, ['disableAfter.exhausted']);
  // Subscribable by name, patterns and the event-type list; never publishable.
  const types = (await gw.request('GET', '/v1/event-types')).json.eventTypes;
  for (const t of OPS) assert.ok(types.includes(t), t);
  assert.equal((await post({ events: ['delivery.*'] })).status, 201);
  for (const type of OPS) {
    const r = await gw.request('POST', '/v1/events', { body: { type, data: {} } });
    expectValidation(r, ['type']);
  }
});

function hookgate(args) {
  return new Promise((resolve) => {
    const p = spawn(BIN, args, { env: { ...process.env, HOOKGATE_LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => resolve({ code, out }));
  });
}

test('config: delivery.disable_after is checked, errors name the key', async () => {
  const dir = tempDir();
  const check = async (lua) => {
    const file = join(dir, 'c.lua');
    writeFileSync(file, `listen = "127.0.0.1:0"\n${lua}\n`);
    return hookgate(['check', '-c', file]);
  };
  let r = await check('delivery = { disable_after = { exhausted = 3, failing_for = "12h" } }');
  assert.equal(r.code, 0, r.out);
  r = await check('delivery = { disable_after = { failing_for = 3600 } }');
  assert.equal(r.code, 0, r.out);
  r = await check('delivery = { disable_after = { exhausted = -1 } }');
  assert.equal(r.code, 1);
  assert.match(r.out, /delivery\.disable_after\.exhausted: must be between 0 and 1e\+06/);
  r = await check('delivery = { disable_after = { failing_for = "soon" } }');
  assert.equal(r.code, 1);
  assert.match(r.out, /:2: delivery\.disable_after\.failing_for: must be a duration/);
  r = await check('delivery = { disable_after = { failing_for = "400d" } }');
  assert.match(r.out, /delivery\.disable_after\.failing_for: .*at most 365d/);
  r = await check('delivery = { disable_after = { count = 3 } }');
  assert.match(r.out, /delivery\.disable_after\.count: unknown key \(known here: exhausted, failing_for\)/);
  r = await check('delivery = { disable_after = 5 }');
  assert.match(r.out, /delivery\.disable_after: must be a table/);
});

test('two nodes sharing PostgreSQL count one streak without losing any, and report one disabling', { skip: !onPg && 'PostgreSQL only' }, async () => {
  const store = newPgDatabase();
  const nodeCfg = (id) => `${deliveryConfig({ extra: 'disable_after = { exhausted = 2, failing_for = 0 }' })}
cluster = { node_id = "${id}", lease = 6, poll = 0.2 }
`;
  const nodes = [];
  try {
    // One at a time: the first migrates.
    for (const id of ['h1', 'h2']) nodes.push(await startGateway({ dir: tempDir(), config: nodeCfg(id), env: { HOOKGATE_STORE: store } }));
    const [n1, n2] = nodes;
    rx.on('/k/fail', status(500));
    const mk = async (path, events, more) => {
      const r = await n1.request('POST', '/v1/webhooks', { body: { url: rx.url(path), events, organizationId: 'org-k', ...more } });
      assert.equal(r.status, 201, r.body);
      return r.json;
    };
    const fail = await mk('/k/fail', ['user.created'], { disableAfter: { exhausted: 1000 } });
    const ops = await mk('/k/ops', ['webhook.disabled']);
    await sleep(600 * SLOW); // both nodes' indexes have them (cluster.poll)
    // 20 deliveries exhausting at once on both nodes: every one counted.
    const N = 20;
    await Promise.all(Array.from({ length: N }, (_, i) => (i % 2 ? n1 : n2).request('POST', '/v1/events',
      { body: { type: 'user.created', organizationId: 'org-k', data: { i } } })));
    const w = await until(async () => {
      const r = (await n2.request('GET', `/v1/webhooks/${fail.id}`)).json;
      return r.exhaustedDeliveries === N ? r : { done: false, ...r };
    }, { timeout: 20000, what: `${N} exhausted deliveries counted` });
    assert.equal(w.active, true);
    // Now past the rule: one node disables it, once, and one event says so.
    const p = await n2.request('PATCH', `/v1/webhooks/${fail.id}`, { body: { disableAfter: { exhausted: N + 2 } } });
    assert.equal(p.status, 200, p.body);
    await sleep(600 * SLOW);
    await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? n1 : n2).request('POST', '/v1/events',
      { body: { type: 'user.created', organizationId: 'org-k', data: { i } } })));
    const off = await until(async () => {
      const r = (await n1.request('GET', `/v1/webhooks/${fail.id}`)).json;
      return r.active ? { done: false, ...r } : r;
    }, { timeout: 20000, what: 'disabled on the shared store' });
    assert.equal(off.disabledReason.code, 'consecutive_failures');
    await until(() => got('/k/ops').length >= 1, { what: 'webhook.disabled at /k/ops' });
    await sleep(1500 * SLOW);
    const evs = opsAt('/k/ops', ops.secret);
    assert.equal(evs.length, 1, JSON.stringify(evs));
    assert.equal(evs[0].data.webhookId, fail.id);
    assert.ok(evs[0].data.exhaustedDeliveries >= N + 2);
  } finally {
    for (const n of nodes) await stopClean(n);
  }
});

// PostgreSQL: a PATCH reads the webhook locked (FOR UPDATE), so a change
// another session is making to its row (another node disabling it) is
// waited for and kept, not overwritten with what the PATCH read before.
// The other node is a psql session holding the row locked while it sets
// the webhook inactive; the PATCH names only metadata.
test('a PATCH waits for another node\'s change to the webhook and keeps it (PostgreSQL)', { skip: !onPg && 'PostgreSQL only' }, async () => {
  const store = newPgDatabase();
  const node = await startGateway({ dir: tempDir(), config: deliveryConfig(), env: { HOOKGATE_STORE: store } });
  const psql = spawn('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', store], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  psql.stdout.on('data', (d) => { out += d; });
  try {
    const wh = await createWebhook(node, rx, '/lock', ['user.created']);
    psql.stdin.write(`BEGIN; UPDATE webhooks SET active = 0, disabled_at = 1, disabled_reason = 'consecutive_failures', disabled_message = 'from the other node' WHERE id = '${wh.id}'; SELECT 'locked';\n`);
    await until(() => out.includes('locked'), { what: 'the other session holds the row' });
    let answered = false;
    const patch = node.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { metadata: { team: 'x' } } }).then((r) => {
      answered = true;
      return r;
    });
    // Not scaled by SLOW: the store gives up on a lock after its
    // lock_timeout (2 s: then 503 store_busy), and a second is plenty for
    // the PATCH to reach the row, also under a sanitizer.
    await sleep(1000);
    assert.equal(answered, false, 'the PATCH waits for the row');
    psql.stdin.write('COMMIT;\n');
    const r = await patch;
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.active, false, 'the other node\'s disabling is kept');
    assert.equal(r.json.disabledReason.code, 'consecutive_failures');
    assert.deepEqual(r.json.metadata, { team: 'x' });
    const g = (await node.request('GET', `/v1/webhooks/${wh.id}`)).json;
    assert.equal(g.active, false);
  } finally {
    psql.stdin.end();
    psql.kill();
    await stopClean(node);
  }
});
