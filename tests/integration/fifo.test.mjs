// fifo.test.mjs: a webhook's `ordering: "fifo"`: its deliveries go out one
// at a time (never two requests open at once to it), in the order their
// events were accepted (the order of the 202 answers of events published
// one after another); a failing head holds the rest until it succeeds or
// is exhausted (`failed`), then the next goes; other webhooks are not held;
// a test send is outside the line; a replay of an ended delivery joins the
// end of the line, a replay of a pending one stays in its place; recovery
// requeues join the end, oldest first; PATCH to "fifo" lines up what is
// pending in creation order, PATCH to null lets the line go at once; a
// restart (graceful or SIGKILL) keeps the line; on PostgreSQL two nodes
// keep one line; and the API's field and its validation.
//
// Real gateway, real receivers, the test's store (SQLite, or PostgreSQL
// with HG_TEST_STORE=postgresql). Retries are sub-second (lib/delivery.mjs
// SCHEDULE: 4 attempts, 0.2 s apart), so an exhausted head takes well under
// a second. No tight upper bounds on time: machines are noisy and a
// sanitizer build is slower (SLOW). Order is asserted on the receiver's
// arrival order by webhook-id (the event id), and on `data.i`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver, slow, status, ok, failThen } from './lib/receiver.mjs';
import { onPg, newPgDatabase } from './lib/store.mjs';
import {
  deliveryConfig, createWebhook, publishOk, until, sleep, SLOW, stopClean, listDeliveries, getDelivery, maxOpen,
} from './lib/delivery.mjs';
import { expectValidation } from './lib/expect.mjs';

let rx;
let rx2;
let gw;
// Each test has event types of its own, so no test's events reach
// another's webhooks.
const TYPES = [
  'fifo.order', 'fifo.head', 'fifo.exhaust', 'fifo.stuck', 'fifo.send', 'fifo.replay', 'fifo.recover',
  'fifo.on', 'fifo.off', 'fifo.restart', 'fifo.cluster', 'fifo.inactive', 'fifo.rate',
].map((t) => `"${t}"`).join(', ');
// A long attempt timeout: some tests hold a head's answer for seconds on
// purpose (a hold longer than the timeout would turn into a failed attempt).
const CONFIG = deliveryConfig({ extra: 'timeout = 20' })
  .replace('webhooks = { allow_http = true }', `webhooks = { allow_http = true, event_types = { ${TYPES} } }`);
assert.match(CONFIG, /event_types/);
assert.match(CONFIG, /timeout = 20/);

// How long a "held open" head keeps its answer back: long enough for the
// test's API calls to happen while it is open, well inside the timeout.
const LONG_HOLD = 4000 * SLOW;

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

// ---- helpers ----

const idOf = (req) => req.headers['webhook-id'];
const ids = (reqs) => reqs.map(idOf);

// data.i of the event a request carries (undefined for a test send).
function seqOf(req) {
  try {
    return JSON.parse(req.body.toString()).data?.i;
  } catch {
    return undefined;
  }
}

function typeOf(req) {
  try {
    return JSON.parse(req.body.toString()).type;
  } catch {
    return undefined;
  }
}

// The list with runs of one value collapsed to one: the order in which a
// line moved through its deliveries (a retried head appears once).
function collapse(list) {
  return list.filter((x, i) => i === 0 || x !== list[i - 1]);
}

// Publishes n events of type one after another (each after the previous
// one's 202), data { i: from + k }; returns their ids in the order of the
// 202 answers.
async function publishInOrder(g, type, n, from = 0, extra = {}) {
  const out = [];
  for (let k = 0; k < n; k++) {
    const ev = await publishOk(g, { type, data: { i: from + k, ...extra } });
    out.push(ev.id);
  }
  return out;
}

// The deliveries of a webhook by event id.
async function byEvent(g, whId) {
  const l = await listDeliveries(g, whId, 'pageSize=100');
  return Object.fromEntries(l.deliveries.map((d) => [d.eventId, d]));
}

async function allEnded(g, whId, n, what) {
  return until(async () => {
    const l = await listDeliveries(g, whId, 'pageSize=100');
    const ended = l.deliveries.filter((d) => d.status !== 'pending');
    return (l.deliveries.length === n && ended.length === n) || { done: false, statuses: l.deliveries.map((d) => d.status) };
  }, { timeout: 60000, what });
}

async function replay(g, whId, delId) {
  return g.request('POST', `/v1/webhooks/${whId}/deliveries/${delId}/replay`);
}

// ---- the field ----

test('ordering: null by default, "fifo" on create shown by the answer, GET and list; PATCH sets and clears it', async () => {
  const plain = await createWebhook(gw, rx, '/fields-plain', ['fifo.order']);
  assert.ok('ordering' in plain, `the create answer has ordering: ${JSON.stringify(plain)}`);
  assert.equal(plain.ordering, null);
  let r = await gw.request('GET', `/v1/webhooks/${plain.id}`);
  assert.equal(r.status, 200, r.body);
  assert.ok('ordering' in r.json);
  assert.equal(r.json.ordering, null);

  const wh = await createWebhook(gw, rx, '/fields', ['fifo.order'], { ordering: 'fifo' });
  assert.equal(wh.ordering, 'fifo');
  r = await gw.request('GET', `/v1/webhooks/${wh.id}`);
  assert.equal(r.json.ordering, 'fifo');
  r = await gw.request('GET', '/v1/webhooks?pageSize=100');
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.webhooks.find((w) => w.id === wh.id).ordering, 'fifo');
  assert.equal(r.json.webhooks.find((w) => w.id === plain.id).ordering, null);

  // Explicit null on create is the default.
  const explicit = await createWebhook(gw, rx, '/fields-null', ['fifo.order'], { ordering: null });
  assert.equal(explicit.ordering, null);

  // A PATCH that does not name it leaves it.
  r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { metadata: { k: 'v' } } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.ordering, 'fifo', 'a PATCH leaves the fields it does not name');
  // null clears it; "fifo" sets it again.
  r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { ordering: null } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.ordering, null);
  assert.equal((await gw.request('GET', `/v1/webhooks/${wh.id}`)).json.ordering, null);
  r = await gw.request('PATCH', `/v1/webhooks/${plain.id}`, { body: { ordering: 'fifo' } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.ordering, 'fifo');
  assert.equal((await gw.request('GET', `/v1/webhooks/${plain.id}`)).json.ordering, 'fifo');

  for (const w of [plain, wh, explicit]) assert.equal((await gw.request('DELETE', `/v1/webhooks/${w.id}`)).status, 204);
});

test('invalid ordering answers 422 naming the field, on create and on PATCH; a refused PATCH changes nothing', async () => {
  const url = rx.url('/invalid');
  for (const bad of ['lifo', 'FIFO', 'Fifo', 'fifo ', '', 'none', 'null', 1, 0, true, false, {}, [], ['fifo'], { fifo: true }]) {
    const r = await gw.request('POST', '/v1/webhooks', { body: { url, events: ['fifo.order'], ordering: bad } });
    expectValidation(r, ['ordering']);
  }
  // Named beside another invalid field.
  const both = await gw.request('POST', '/v1/webhooks', {
    body: { url, events: ['fifo.order'], ordering: 'lifo', maxConcurrency: 0 },
  });
  expectValidation(both, ['ordering', 'maxConcurrency']);
  // Nothing was created by the refusals.
  const list = await gw.request('GET', '/v1/webhooks?pageSize=100');
  assert.equal(list.json.webhooks.filter((w) => w.url === url).length, 0);

  const wh = await createWebhook(gw, rx, '/invalid', ['fifo.order'], { ordering: 'fifo' });
  for (const bad of ['lifo', 'FIFO', 1, true, {}, ['fifo']]) {
    const r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { ordering: bad } });
    expectValidation(r, ['ordering']);
  }
  const plain = await createWebhook(gw, rx, '/invalid', ['fifo.order']);
  const r = await gw.request('PATCH', `/v1/webhooks/${plain.id}`, { body: { ordering: 'lifo', active: false } });
  expectValidation(r, ['ordering']);
  assert.equal((await gw.request('GET', `/v1/webhooks/${wh.id}`)).json.ordering, 'fifo', 'a refused PATCH changes nothing');
  const g = (await gw.request('GET', `/v1/webhooks/${plain.id}`)).json;
  assert.equal(g.ordering, null, 'a refused PATCH changes nothing');
  assert.equal(g.active, true, 'a refused PATCH changes none of its fields');
  for (const w of [wh, plain]) assert.equal((await gw.request('DELETE', `/v1/webhooks/${w.id}`)).status, 204);
});

// ---- order and one at a time ----

test('30 events to a slow receiver arrive one at a time, in the order of their 202 answers, each once; an unordered webhook beside it is not limited', async () => {
  const HOLD = 100;
  const N = 30;
  rx.on('/order', slow(HOLD));
  rx2.on('/order-free', slow(HOLD));
  const wh = await createWebhook(gw, rx, '/order', ['fifo.order'], { ordering: 'fifo' });
  const free = await createWebhook(gw, rx2, '/order-free', ['fifo.order']);

  const published = await publishInOrder(gw, 'fifo.order', N);

  // The unordered webhook gets its 30 several at a time: the gateway is
  // not limited to one request at a time in general.
  const other = await rx2.waitFor('/order-free', { count: N, timeout: 30000 * SLOW });
  assert.ok(maxOpen(other, HOLD - 10) >= 2, 'an unordered webhook has several requests open at once');

  const got = await rx.waitFor('/order', { count: N, timeout: 60000 * SLOW });
  assert.deepEqual(ids(got), published, 'arrival order is the order of the 202 answers');
  assert.deepEqual(got.map(seqOf), Array.from({ length: N }, (_, i) => i));
  assert.equal(maxOpen(got, HOLD - 10), 1, 'never two requests open at once to a fifo webhook');
  // Each next request arrives only after the previous answer went out.
  for (let k = 1; k < got.length; k++) {
    assert.ok(got[k].mono - got[k - 1].mono >= HOLD - 10,
      `request ${k} came ${(got[k].mono - got[k - 1].mono).toFixed(0)} ms after request ${k - 1}, before its answer`);
  }
  await allEnded(gw, wh.id, N, 'all 30 deliveries ended');
  const d = await byEvent(gw, wh.id);
  for (const id of published) {
    assert.equal(d[id].status, 'success', JSON.stringify(d[id]));
    assert.equal(d[id].attempts, 1);
  }
  await sleep(300);
  assert.equal(rx.received('/order').length, N, 'none sent twice');
  for (const w of [wh, free]) assert.equal((await gw.request('DELETE', `/v1/webhooks/${w.id}`)).status, 204);
});

// ---- a failing head ----

test('a failing head holds the rest while it retries; when it succeeds the next goes, in order', async () => {
  // The first 3 requests to the path fail: with a line, all three are the
  // head's (its 4th and last attempt succeeds); without one they would be
  // three different events.
  rx.on('/head', failThen(3, status(500, { body: 'down' })));
  const wh = await createWebhook(gw, rx, '/head', ['fifo.head'], { ordering: 'fifo' });
  const published = await publishInOrder(gw, 'fifo.head', 5);

  const got = await rx.waitFor('/head', { count: 4 + 4, timeout: 30000 * SLOW });
  const seen = ids(got);
  assert.deepEqual(seen.slice(0, 4), Array(4).fill(published[0]),
    `the head's four attempts come first, nothing behind it in between: ${seen.map((x) => published.indexOf(x))}`);
  assert.deepEqual(seen.slice(4), published.slice(1), 'then the rest, in order');
  assert.deepEqual(collapse(seen), published);

  await allEnded(gw, wh.id, 5, 'all five ended');
  const d = await byEvent(gw, wh.id);
  assert.equal(d[published[0]].status, 'success');
  assert.equal(d[published[0]].attempts, 4);
  for (const id of published.slice(1)) {
    assert.equal(d[id].status, 'success');
    assert.equal(d[id].attempts, 1, 'a delivery behind the head was not tried while the head failed');
  }
  // The first attempt of the second delivery started after the head's last one.
  const head = await getDelivery(gw, wh.id, d[published[0]].id);
  const second = await getDelivery(gw, wh.id, d[published[1]].id);
  assert.equal(head.attempts.length, 4);
  const lastHead = head.attempts.map((a) => a.startedAt).sort().pop();
  assert.ok(second.attempts[0].startedAt >= lastHead, `${second.attempts[0].startedAt} before ${lastHead}`);
  await sleep(300);
  assert.equal(rx.received('/head').length, 8, 'nothing sent twice');
});

test('an exhausted head (every attempt failed) is failed, and the next goes; the line goes on in order', async () => {
  // Event i = 0 and i = 2 always fail; the others succeed.
  rx.on('/exhaust', (req, body) => {
    const i = JSON.parse(body.toString()).data?.i;
    return i === 0 || i === 2 ? status(500, { body: 'boom' }) : ok();
  });
  const wh = await createWebhook(gw, rx, '/exhaust', ['fifo.exhaust'], { ordering: 'fifo' });
  const published = await publishInOrder(gw, 'fifo.exhaust', 5);

  // 4 attempts each for 0 and 2, one each for 1, 3 and 4.
  const got = await rx.waitFor('/exhaust', { count: 4 + 1 + 4 + 1 + 1, timeout: 30000 * SLOW });
  const seen = ids(got);
  const p = published;
  assert.deepEqual(seen, [p[0], p[0], p[0], p[0], p[1], p[2], p[2], p[2], p[2], p[3], p[4]],
    `arrivals by index: ${seen.map((x) => p.indexOf(x))}`);
  assert.deepEqual(got.map(seqOf), [0, 0, 0, 0, 1, 2, 2, 2, 2, 3, 4]);

  await allEnded(gw, wh.id, 5, 'all five ended');
  const d = await byEvent(gw, wh.id);
  assert.equal(d[p[0]].status, 'failed');
  assert.equal(d[p[0]].attempts, 4);
  assert.equal(d[p[2]].status, 'failed');
  assert.equal(d[p[2]].attempts, 4);
  for (const k of [1, 3, 4]) {
    assert.equal(d[p[k]].status, 'success');
    assert.equal(d[p[k]].attempts, 1);
  }
  await sleep(300);
  assert.equal(rx.received('/exhaust').length, 11, 'nothing more was sent');
});

test('other webhooks are not held by a fifo webhook\'s failing head', async () => {
  const N = 10;
  let down = true;
  rx.on('/stuck', () => (down ? status(500, { body: 'down' }) : ok()));
  rx2.on('/stuck-other-fifo', ok());
  rx2.on('/stuck-other-free', ok());
  const stuck = await createWebhook(gw, rx, '/stuck', ['fifo.stuck'], { ordering: 'fifo' });
  const otherFifo = await createWebhook(gw, rx2, '/stuck-other-fifo', ['fifo.stuck'], { ordering: 'fifo' });
  const otherFree = await createWebhook(gw, rx2, '/stuck-other-free', ['fifo.stuck']);

  const published = await publishInOrder(gw, 'fifo.stuck', N);
  // The stuck line needs at least N x 0.6 s (4 attempts, 0.2 s apart, for
  // each) before its last event is first tried; the others get all N
  // meanwhile, the other fifo one in order.
  const a = await rx2.waitFor('/stuck-other-fifo', { count: N, timeout: 30000 * SLOW });
  const b = await rx2.waitFor('/stuck-other-free', { count: N, timeout: 30000 * SLOW });
  const stuckSoFar = new Set(ids(rx.received('/stuck')));
  assert.ok(!stuckSoFar.has(published[N - 1]),
    `the other webhooks were served while the stuck line was still at its start (it had reached ${stuckSoFar.size} of ${N})`);
  assert.deepEqual(ids(a), published, 'the other fifo webhook: its own line, in order');
  assert.deepEqual(ids(b).sort(), [...published].sort(), 'the unordered webhook: everything, once');

  // The stuck receiver comes back: the rest of its line follows, in order.
  down = false;
  await allEnded(gw, stuck.id, N, 'the stuck line drained');
  const seen = ids(rx.received('/stuck'));
  assert.deepEqual(collapse(seen), published, 'the stuck line kept its order through failures');
  const d = await byEvent(gw, stuck.id);
  for (const id of published) {
    const n = seen.filter((x) => x === id).length;
    assert.equal(d[id].attempts, n);
    if (d[id].status === 'failed') assert.equal(n, 4, 'a failed delivery used all its attempts');
    else assert.equal(d[id].status, 'success');
  }
  assert.equal(d[published[N - 1]].status, 'success', 'the last one went after the receiver came back');
  for (const w of [stuck, otherFifo, otherFree]) assert.equal((await gw.request('DELETE', `/v1/webhooks/${w.id}`)).status, 204);
});

// ---- what is outside the line, and what joins it ----

test('a test send goes at once while the line\'s head is open; the line goes on in order after it', async () => {
  // The line's head (event i = 0) is answered after LONG_HOLD; a test at once.
  rx.on('/send', (req, body) => (seqOf({ body }) === 0 && typeOf({ body }) === 'fifo.send' ? slow(LONG_HOLD) : ok()));
  const wh = await createWebhook(gw, rx, '/send', ['fifo.send'], { ordering: 'fifo' });
  const published = await publishInOrder(gw, 'fifo.send', 3);
  const [head] = await rx.waitFor('/send', { count: 1, timeout: 10000 * SLOW });
  assert.equal(idOf(head), published[0]);

  const r = await gw.request('POST', `/v1/webhooks/${wh.id}/test`, { body: {} });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.success, true, r.body);
  const now = rx.received('/send');
  const t = now.find((q) => typeOf(q) === 'webhook.test');
  assert.ok(t, 'the test reached the receiver');
  assert.ok(t.mono < head.mono + LONG_HOLD, 'the test was sent while the head was still open, not after it');
  assert.ok(!now.some((q) => idOf(q) === published[1] || idOf(q) === published[2]),
    'nothing of the line went beside the head: only the test did');

  await allEnded(gw, wh.id, 4, 'the three deliveries and the test ended');
  const events = rx.received('/send').filter((q) => typeOf(q) !== 'webhook.test');
  assert.deepEqual(ids(events), published, 'the line went on in order');
  assert.equal(rx.received('/send').filter((q) => typeOf(q) === 'webhook.test').length, 1);
  const tested = (await listDeliveries(gw, wh.id, 'pageSize=100')).deliveries.find((d) => d.id === r.json.deliveryId);
  assert.equal(tested?.status, 'success');
});

test('replay of an ended delivery goes to the end of the line; replay of a pending one stays in its place', async () => {
  rx.on('/replay', (req, body) => (JSON.parse(body.toString()).data?.i === 1 ? slow(LONG_HOLD) : ok()));
  const wh = await createWebhook(gw, rx, '/replay', ['fifo.replay'], { ordering: 'fifo' });
  const [e0] = await publishInOrder(gw, 'fifo.replay', 1, 0);
  await rx.waitFor('/replay', { count: 1, timeout: 10000 * SLOW });
  await until(async () => (await byEvent(gw, wh.id))[e0]?.status === 'success', { what: 'the first delivery succeeded' });

  // e1 is the head, held open; e2 and e3 wait behind it.
  const [e1, e2, e3] = await publishInOrder(gw, 'fifo.replay', 3, 1);
  await rx.waitFor((q) => q.path === '/replay' && idOf(q) === e1, { timeout: 10000 * SLOW });
  const d = await byEvent(gw, wh.id);
  assert.equal(d[e2].status, 'pending');
  assert.equal(d[e3].status, 'pending');

  // The ended e0 replayed: it joins the end, after e3.
  let r = await replay(gw, wh.id, d[e0].id);
  assert.equal(r.status, 202, r.body);
  assert.equal(r.json.status, 'pending');
  // The pending e3 replayed: due now, but in its place, not before e2 nor
  // beside the head.
  r = await replay(gw, wh.id, d[e3].id);
  assert.equal(r.status, 202, r.body);
  await sleep(300); // a replay sent at once (wrongly) would have arrived by now
  const during = ids(rx.received('/replay'));
  assert.deepEqual(during, [e0, e1], 'nothing went beside the open head (the replays neither)');

  await until(() => rx.received('/replay').length >= 5, { timeout: 30000, what: 'the line and the replay' });
  await allEnded(gw, wh.id, 4, 'all ended');
  await sleep(300);
  assert.deepEqual(ids(rx.received('/replay')), [e0, e1, e2, e3, e0],
    'e1, e2, e3 in their places, the replayed e0 last, the replayed pending e3 sent once');
  const after = await byEvent(gw, wh.id);
  assert.equal(after[e0].status, 'success');
  assert.equal(after[e0].attempts, 2);
  assert.equal(after[e3].attempts, 1);
});

test('recovery requeues join the end of the line, oldest first', async () => {
  let down = true;
  rx.on('/recover', (req, body) => {
    if (down) return status(500, { body: 'down' });
    return JSON.parse(body.toString()).data?.i === 3 ? slow(LONG_HOLD) : ok();
  });
  const wh = await createWebhook(gw, rx, '/recover', ['fifo.recover'], { ordering: 'fifo' });
  const t0 = Date.now() - 1;
  const failed = await publishInOrder(gw, 'fifo.recover', 3, 0);
  await until(async () => {
    const d = await byEvent(gw, wh.id);
    return failed.every((e) => d[e]?.status === 'failed');
  }, { timeout: 30000, what: 'three failed deliveries' });
  assert.deepEqual(collapse(ids(rx.received('/recover'))), failed, 'they failed in order, one after another');
  const failedCount = rx.received('/recover').length;
  assert.equal(failedCount, 12, 'four attempts each');

  // The receiver is back; e3 is the head, held open, e4 waits behind it.
  down = false;
  const [e3, e4] = await publishInOrder(gw, 'fifo.recover', 2, 3);
  await rx.waitFor((q) => q.path === '/recover' && idOf(q) === e3, { timeout: 10000 * SLOW });
  const r = await gw.request('POST', `/v1/webhooks/${wh.id}/recover`, { body: { since: new Date(t0).toISOString() } });
  assert.ok(r.status === 200 || r.status === 202, r.body);
  const done = await until(async () => {
    const g = await gw.request('GET', `/v1/webhooks/${wh.id}/recover/${r.json.id}`);
    assert.equal(g.status, 200, g.body);
    return g.json.state === 'running' ? { done: false, ...g.json } : g.json;
  }, { timeout: 20000, what: 'the recovery' });
  assert.equal(done.state, 'done');
  assert.equal(done.requeued, 3);
  assert.deepEqual(ids(rx.received('/recover').slice(failedCount)), [e3],
    'the recovery ended while e3 was still open and before e4 went (else this test cannot tell the end from the front)');

  await until(() => rx.received('/recover').length >= failedCount + 5, { timeout: 30000, what: 'the line and the requeued three' });
  await allEnded(gw, wh.id, 5, 'all ended');
  await sleep(300);
  assert.deepEqual(ids(rx.received('/recover').slice(failedCount)), [e3, e4, ...failed],
    'e3 and e4 first, then the requeued ones, oldest first');
  const d = await byEvent(gw, wh.id);
  for (const e of [...failed, e3, e4]) assert.equal(d[e].status, 'success');
});

// ---- switching the line on and off ----

test('PATCH ordering "fifo" on a webhook with pending deliveries lines them up in creation order', async () => {
  // Delivery is paused on a gateway of its own, so that the deliveries are
  // pending when the PATCH comes.
  const HOLD = 150;
  const N = 10;
  const g = await startGateway({ config: CONFIG });
  try {
    rx.on('/on', slow(HOLD));
    const wh = await createWebhook(g, rx, '/on', ['fifo.on']);
    assert.equal(wh.ordering, null);
    let r = await g.request('POST', '/v1/admin/delivery/pause');
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.paused, true);
    const published = await publishInOrder(g, 'fifo.on', N);
    await sleep(200);
    const l = await listDeliveries(g, wh.id, 'pageSize=100');
    assert.equal(l.deliveries.length, N);
    assert.ok(l.deliveries.every((d) => d.status === 'pending' && d.attempts === 0), JSON.stringify(l.deliveries));
    assert.equal(rx.received('/on').length, 0);

    r = await g.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { ordering: 'fifo' } });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.ordering, 'fifo');
    r = await g.request('POST', '/v1/admin/delivery/resume');
    assert.equal(r.status, 200, r.body);

    const got = await rx.waitFor('/on', { count: N, timeout: 30000 * SLOW });
    assert.deepEqual(ids(got), published, 'in the order they were created');
    assert.equal(maxOpen(got, HOLD - 10), 1, 'one at a time');
    await allEnded(g, wh.id, N, 'all ended');
    await sleep(300);
    assert.equal(rx.received('/on').length, N, 'each once');
  } finally {
    await stopClean(g);
  }
});

test('PATCH ordering null lets the waiting line go at once, unordered; everything arrives once', async () => {
  const HOLD = 1500 * SLOW;
  const N = 6;
  rx.on('/off', slow(HOLD));
  const wh = await createWebhook(gw, rx, '/off', ['fifo.off'], { ordering: 'fifo' });
  const published = await publishInOrder(gw, 'fifo.off', N);
  const [first] = await rx.waitFor('/off', { count: 1, timeout: 10000 * SLOW });
  assert.equal(idOf(first), published[0]);
  await sleep(200);
  assert.equal(rx.received('/off').length, 1, 'the rest wait behind the open head');

  const r = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { ordering: null } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.ordering, null);
  const got = await rx.waitFor('/off', { count: N, timeout: 30000 * SLOW });
  assert.deepEqual(ids(got).sort(), [...published].sort(), 'every event, once');
  assert.ok(maxOpen(got, HOLD - 10) >= 3,
    'the waiting ones went at once, beside each other (and beside the head still open)');
  await allEnded(gw, wh.id, N, 'all ended');
  const d = await byEvent(gw, wh.id);
  for (const id of published) assert.equal(d[id].status, 'success');
  await sleep(300);
  assert.equal(rx.received('/off').length, N, 'none sent twice');
});

// ---- restarts ----

test('a restart keeps the line: graceful stop, then SIGKILL; order holds, nothing lost, one at a time', async () => {
  const HOLD = 300;
  const N = 12;
  rx.on('/restart', slow(HOLD));
  const g1 = await startGateway({ config: CONFIG });
  const dir = g1.dir;
  const running = (g) => g && g.proc.exitCode === null && g.proc.signalCode === null;
  let g2;
  let g3;
  try {
    const wh = await createWebhook(g1, rx, '/restart', ['fifo.restart'], { ordering: 'fifo' });
    const published = await publishInOrder(g1, 'fifo.restart', N);
    await rx.waitFor('/restart', { count: 2, timeout: 10000 * SLOW });
    await stopClean(g1);
    const afterG1 = rx.received('/restart').length;
    assert.ok(afterG1 < N, `the line was still going at the stop (${afterG1} of ${N})`);

    const g2Start = performance.now();
    g2 = await startGateway({ config: CONFIG, dir });
    assert.equal((await g2.request('GET', `/v1/webhooks/${wh.id}`)).json.ordering, 'fifo', 'the field survives a restart');
    await rx.waitFor('/restart', { count: afterG1 + 2, timeout: 10000 * SLOW });
    g2.proc.kill('SIGKILL');
    const { signal } = await g2.exited;
    assert.equal(signal, 'SIGKILL');
    const byG2 = rx.received('/restart').filter((q) => q.mono >= g2Start);
    assert.ok(new Set(ids(rx.received('/restart'))).size < N, 'the line was still going at the kill');

    const g3Start = performance.now();
    g3 = await startGateway({ config: CONFIG, dir });
    await allEnded(g3, wh.id, N, 'the line drained after the kill');
    await sleep(500);

    const all = rx.received('/restart');
    const seen = ids(all);
    // A delivery on the wire at the kill may be sent again after it (same
    // webhook-id): right after itself, never out of order.
    assert.deepEqual(collapse(seen), published, `arrival order by index: ${seen.map((x) => published.indexOf(x))}`);
    assert.deepEqual([...new Set(seen)].sort(), [...published].sort(), 'nothing lost');
    assert.ok(seen.length <= N + 2, `at most one resend per restart: ${seen.length} requests for ${N} events`);
    // One at a time from each gateway (requests of a killed gateway may
    // still look open at the receiver when the next one starts).
    assert.equal(maxOpen(all.filter((q) => q.mono < g2Start), HOLD - 10), 1, 'one at a time before the stop');
    assert.equal(maxOpen(byG2, HOLD - 10), 1, 'one at a time after the restart');
    assert.equal(maxOpen(all.filter((q) => q.mono >= g3Start), HOLD - 10), 1, 'one at a time after the kill');
    const d = await byEvent(g3, wh.id);
    for (const id of published) assert.equal(d[id].status, 'success', JSON.stringify(d[id]));
  } finally {
    if (g3) await stopClean(g3);
    for (const g of [g1, g2]) if (running(g)) await g.stop('SIGKILL');
  }
});

// ---- two nodes on one PostgreSQL store ----

test('two nodes on one PostgreSQL store: events published alternately to each arrive in the order of the 202 answers', {
  skip: !onPg && 'PostgreSQL only (HG_TEST_STORE=postgresql)',
}, async () => {
  const HOLD = 50;
  const N = 20;
  const store = newPgDatabase();
  const nodeConfig = (id) => `${CONFIG}\ncluster = { node_id = "${id}", lease = 30, poll = 0.2 }\n`;
  const nodes = [];
  try {
    // One at a time: the first migrates, the second finds it done.
    for (const id of ['fa', 'fb']) {
      nodes.push(await startGateway({ dir: tempDir(), config: nodeConfig(id), env: { HOOKGATE_STORE: store } }));
    }
    rx.on('/cluster', slow(HOLD));
    const wh = await createWebhook(nodes[0], rx, '/cluster', ['fifo.cluster'], { ordering: 'fifo' });
    await sleep(1000 * SLOW); // every node has it
    const published = [];
    for (let k = 0; k < N; k++) {
      const n = nodes[k % 2];
      const r = await n.request('POST', '/v1/events', { body: { type: 'fifo.cluster', data: { i: k } } });
      assert.equal(r.status, 202, r.body);
      assert.equal(r.json.deliveries, 1, `node ${k % 2} did not see the webhook: ${r.body}`);
      published.push(r.json.id);
    }
    const got = await rx.waitFor('/cluster', { count: N, timeout: 60000 * SLOW });
    assert.deepEqual(ids(got), published, `arrival order by index: ${ids(got).map((x) => published.indexOf(x))}`);
    assert.equal(maxOpen(got, HOLD - 10), 1, 'one at a time across both nodes');
    await allEnded(nodes[1], wh.id, N, 'all ended');
    await sleep(500);
    assert.equal(rx.received('/cluster').length, N, 'each once');
  } finally {
    for (const n of nodes) await stopClean(n);
  }
});

// ---- found in review ----

// PATCH "fifo" while an attempt is on the wire: that attempt was loaded
// before the webhook was ordered, so its record does not queue the next
// head; the sweep of lines' heads (every 2 s) does. The line must not stall.
test('PATCH "fifo" while an attempt is on the wire: the line goes on once it ends (no stall)', { skip: onPg && 'one node is enough; the sweep is the same on PostgreSQL' }, async () => {
  const g = await startGateway({ config: CONFIG });
  try {
    let bCalls = 0;
    rx.on('/rv-on', (req, body) => {
      const i = seqOf({ body });
      if (i === 0) return slow(3000);
      if (i === 1 && bCalls++ === 0) return status(503, { headers: { 'retry-after': '1' }, body: 'later' });
      return ok();
    });
    const wh = await createWebhook(g, rx, '/rv-on', ['fifo.on']);
    await publishOk(g, { type: 'fifo.on', data: { i: 0 } });
    await until(() => rx.requests.filter((q) => q.path === '/rv-on').length >= 1, { what: 'A on the wire' });
    await publishOk(g, { type: 'fifo.on', data: { i: 1 } });
    await until(() => rx.requests.filter((q) => q.path === '/rv-on').length >= 2, { what: "B's first attempt (503)" });
    const r = await g.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { ordering: 'fifo' } });
    assert.equal(r.status, 200, r.body);
    // B comes due (+1 s) behind A and waits; A ends (+3 s); B then goes.
    await allEnded(g, wh.id, 2, 'both deliveries ended after the PATCH');
    const l = await listDeliveries(g, wh.id, 'pageSize=100');
    assert.deepEqual(l.deliveries.map((d) => d.status).sort(), ['success', 'success']);
  } finally {
    await stopClean(g);
  }
});

// PostgreSQL, two nodes: replaying the pending head through the node that
// is not sending it must not put it on the wire a second time beside the
// first (the lease stays), nor let the next one go while it is open.
test('replaying the pending head on another node does not send it twice at once (PostgreSQL)', { skip: !onPg && 'PostgreSQL only' }, async () => {
  const store = newPgDatabase();
  const nodeConfig = (id) => `${CONFIG}\ncluster = { node_id = "${id}", lease = 30, poll = 0.2 }\n`;
  const nodes = [];
  try {
    for (const id of ['ra', 'rb']) nodes.push(await startGateway({ dir: tempDir(), config: nodeConfig(id), env: { HOOKGATE_STORE: store } }));
    const HOLD = 4000 * SLOW;
    rx.on('/rv-rp', (req, body) => (seqOf({ body }) === 0 ? slow(HOLD) : ok()));
    const wh = await createWebhook(nodes[0], rx, '/rv-rp', ['fifo.replay'], { ordering: 'fifo' });
    await sleep(1000 * SLOW); // both nodes know the webhook
    const e0 = await publishOk(nodes[0], { type: 'fifo.replay', data: { i: 0 } });
    await until(() => rx.requests.filter((q) => q.path === '/rv-rp').length >= 1, { what: 'the head on the wire' });
    await publishOk(nodes[0], { type: 'fifo.replay', data: { i: 1 } });
    const l = await listDeliveries(nodes[1], wh.id, 'pageSize=100');
    const d0 = l.deliveries.find((d) => d.eventId === e0.id);
    const r = await nodes[1].request('POST', `/v1/webhooks/${wh.id}/deliveries/${d0.id}/replay`);
    assert.equal(r.status, 202, r.body);
    await until(() => rx.requests.filter((q) => q.path === '/rv-rp' && seqOf(q) === 1).length >= 1,
      { timeout: 30000, what: 'the second event' });
    const got = rx.requests.filter((q) => q.path === '/rv-rp');
    const first = got[0].mono;
    const during = got.slice(1).filter((q) => q.mono < first + HOLD - 100);
    assert.equal(during.length, 0, `requests while the head's first attempt was open: ${JSON.stringify(during.map((q) => seqOf(q)))}`);
  } finally {
    for (const n of nodes) await stopClean(n);
  }
});

// A FIFO webhook made inactive: its line's deliveries are failed, one
// after another, without a request ("not sent"), and nothing stalls; made
// active again, new events go in order.
test('an inactive FIFO webhook fails its line without a request; active again, the line goes on in order', async () => {
  const HOLD = LONG_HOLD;
  rx.on('/inactive', (req, body) => (seqOf({ body }) === 0 ? slow(HOLD) : ok()));
  const wh = await createWebhook(gw, rx, '/inactive', ['fifo.inactive'], { ordering: 'fifo' });
  await publishInOrder(gw, 'fifo.inactive', 5);
  await until(() => rx.requests.filter((q) => q.path === '/inactive').length >= 1, { what: 'the head on the wire' });
  const off = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { active: false } });
  assert.equal(off.status, 200, off.body);
  // The head's attempt ends (success); the four behind it are failed unsent.
  await allEnded(gw, wh.id, 5, 'the line drained while inactive');
  const l = await listDeliveries(gw, wh.id, 'pageSize=100');
  const failed = l.deliveries.filter((d) => d.status === 'failed');
  assert.equal(failed.length, 4, JSON.stringify(l.deliveries.map((d) => d.status)));
  for (const d of failed) {
    const full = await getDelivery(gw, wh.id, d.id);
    assert.match(full.attempts[full.attempts.length - 1].error, /not sent: the webhook is inactive/);
  }
  assert.equal(rx.requests.filter((q) => q.path === '/inactive').length, 1, 'only the head was sent');
  const on = await gw.request('PATCH', `/v1/webhooks/${wh.id}`, { body: { active: true } });
  assert.equal(on.status, 200, on.body);
  const fresh = await publishInOrder(gw, 'fifo.inactive', 4, 10);
  await until(() => rx.requests.filter((q) => q.path === '/inactive').length >= 5, { what: 'the new events' });
  assert.deepEqual(ids(rx.requests.filter((q) => q.path === '/inactive').slice(1)), fresh);
});

// rateLimit and FIFO together: one at a time, in order, and no faster
// than the limit.
test('a FIFO webhook with a rateLimit goes in order and within the limit', async () => {
  rx.on('/rate', ok());
  const wh = await createWebhook(gw, rx, '/rate', ['fifo.rate'], { ordering: 'fifo', rateLimit: 5 });
  assert.equal(wh.rateLimit, 5);
  const sent = await publishInOrder(gw, 'fifo.rate', 10);
  await until(() => rx.requests.filter((q) => q.path === '/rate').length >= 10, { timeout: 20000, what: 'ten deliveries' });
  const got = rx.requests.filter((q) => q.path === '/rate');
  assert.deepEqual(ids(got), sent);
  // 10 at 5/s with a burst of 1: at least 9 gaps of about 200 ms.
  const span = got[got.length - 1].mono - got[0].mono;
  assert.ok(span >= 1700, `10 deliveries at 5/s took ${Math.round(span)} ms`);
});
