// events.test.mjs: POST /v1/events and /v1/events/batch against the real
// gateway: validation, idempotency (Idempotency-Key and publisher ids),
// batches, and fan-out to subscribed webhooks (exact types, prefixes, "*",
// inactive webhooks, organizations), checked both in the delivery log and at
// a real receiver.
//
// Run from the repository root: node --test tests/integration/events.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver } from './lib/receiver.mjs';
import {
  deliveryConfig, createWebhook, publish, publishOk, listDeliveries, errorFields, until, stopClean,
} from './lib/delivery.mjs';

let rx;
const gateways = [];

before(async () => {
  rx = await startReceiver();
});

after(async () => {
  for (const gw of gateways) await stopClean(gw);
  await rx.close();
});

async function gateway(extra = '') {
  const gw = await startGateway({ config: deliveryConfig({ extra }) });
  gateways.push(gw);
  return gw;
}

const byId = (id) => (r) => r.headers['webhook-id'] === id;
const onPath = (path) => rx.received(path).map((r) => r.headers['webhook-id']);

test('publish: 202 with an evt_ id and the number of matching active webhooks', async () => {
  const gw = await gateway();
  await createWebhook(gw, rx, '/fan/exact', ['user.created']);
  await createWebhook(gw, rx, '/fan/prefix', ['user.*']);
  await createWebhook(gw, rx, '/fan/star', ['*']);
  await createWebhook(gw, rx, '/fan/nested', ['organization.*']);
  await createWebhook(gw, rx, '/fan/other', ['session.created']);
  const inactive = await createWebhook(gw, rx, '/fan/inactive', ['user.created', '*'], { active: false });

  const ev = await publishOk(gw, { type: 'user.created', data: { n: 1 } });
  assert.match(ev.id, /^evt_[0-9a-z]{26}$/);
  assert.equal(ev.deliveries, 3); // exact, prefix, star
  const ev2 = await publishOk(gw, { type: 'organization.member.added', data: { n: 2 } });
  assert.equal(ev2.deliveries, 2); // nested prefix, star
  const ev3 = await publishOk(gw, { type: 'mfa.enrolled', data: { n: 3 } });
  assert.equal(ev3.deliveries, 1); // star only
  assert.notEqual(ev.id, ev2.id);

  await rx.waitFor(byId(ev.id), { count: 3 });
  await rx.waitFor(byId(ev2.id), { count: 2 });
  await rx.waitFor(byId(ev3.id), { count: 1 });
  assert.deepEqual(onPath('/fan/exact'), [ev.id]);
  assert.deepEqual(onPath('/fan/prefix'), [ev.id]);
  assert.deepEqual(onPath('/fan/star').sort(), [ev.id, ev2.id, ev3.id].sort());
  assert.deepEqual(onPath('/fan/nested'), [ev2.id]);
  assert.deepEqual(onPath('/fan/other'), []);
  assert.deepEqual(onPath('/fan/inactive'), []);
  // The inactive webhook has no delivery at all, not a skipped one.
  assert.deepEqual((await listDeliveries(gw, inactive.id)).deliveries, []);
});

test('publish: invalid events are 422 and name the field', async () => {
  const gw = await gateway('max_event_data = 64');
  const wh = await createWebhook(gw, rx, '/invalid', ['*']);

  let r = await publish(gw, { type: 'no.such.type', data: {} });
  assert.equal(r.status, 422, r.body);
  assert.equal(r.json.error.type, 'validation_error');
  assert.deepEqual(errorFields(r), ['type']);

  r = await publish(gw, { data: {} });
  assert.equal(r.status, 422);
  assert.deepEqual(errorFields(r), ['type']);

  for (const data of [[1, 2], 'text', 5, null, true]) {
    r = await publish(gw, { type: 'user.created', data });
    assert.equal(r.status, 422, `data ${JSON.stringify(data)}: ${r.body}`);
    assert.deepEqual(errorFields(r), ['data']);
  }
  r = await publish(gw, { type: 'user.created' });
  assert.equal(r.status, 422);
  assert.deepEqual(errorFields(r), ['data']);

  // max_event_data = 64 bytes of `data` as written: 64 passes, 65 does not.
  const sized = (n) => `{"type":"user.created","data":{"s":"${'x'.repeat(n - 8)}"}}`;
  r = await publish(gw, sized(64));
  assert.equal(r.status, 202, r.body);
  const okId = r.json.id;
  r = await publish(gw, sized(65));
  assert.equal(r.status, 422, r.body);
  assert.deepEqual(errorFields(r), ['data']);
  assert.match(r.json.error.message, /64/);

  // Nothing rejected was stored or sent: only the 64-byte event.
  await rx.waitFor(byId(okId));
  const list = await listDeliveries(gw, wh.id);
  assert.deepEqual(list.deliveries.map((d) => d.eventId), [okId]);
  assert.deepEqual(onPath('/invalid'), [okId]);
});

test('publish: a single event read straight from its text is judged as the general parser judges it', async () => {
  // The gateway reads a plain single event without building a JSON tree,
  // and falls back to its general parser when a string it reads has
  // escapes. Each body below goes both ways ("user.created", or else the
  // key "data", written with a \u escape sends it down the general path):
  // the answers must agree.
  const gw = await gateway();
  await createWebhook(gw, rx, '/parity', ['user.created']);
  const bodies = [
    { type: 'user.created', data: {}, extra: 1, other: { a: 2 } },
    { type: 'user.created', data: 'text' },
    { type: 'user.created', data: [] },
    { type: 'user.created', data: {}, organizationId: 'o'.repeat(129) },
    { type: 'user.created', data: {}, organizationId: 'bad org' },
    { type: 'user.created', data: {}, organizationId: 7 },
    { type: 'user.created', data: {}, organizationId: null },
    { type: 'user.created', data: {}, id: '' },
    { type: 'user.created', data: {}, id: null },
    { type: 'user.created', data: {}, id: 'i'.repeat(129) },
    { type: 'user.created', data: {}, id: 'has space' },
    { type: 'user.created', data: { k: 'v' }, organizationId: 'org_1' },
    { type: 'user.created' },
    { data: {}, ['k'.repeat(80)]: true },
    { type: 'user.created', data: {}, id: 12 },
    { type: 'user.created', data: {}, n: 1e300 },
    { type: 'user.created', data: {}, flag: false, list: [1] },
  ];
  const seen = new Set();
  for (const b of bodies) {
    const plain = JSON.stringify(b);
    const escaped = plain.includes('"user.created"')
      ? plain.replace('"user.created"', '"user\\u002ecreated"')
      : plain.replace('"data"', '"d\\u0061ta"');
    assert.notEqual(escaped, plain);
    const [fast, general] = [await publish(gw, plain), await publish(gw, escaped)];
    assert.equal(fast.status, general.status, `${plain}: ${fast.body} vs ${general.body}`);
    if (fast.status === 422) {
      assert.deepEqual(fast.json.error.details, general.json.error.details, plain);
    } else {
      assert.equal(fast.status, 202, `${plain}: ${fast.body}`);
      assert.equal(fast.json.deliveries, general.json.deliveries);
      // A publisher id is echoed; the gateway's own are new each time.
      if (b.id === undefined) assert.notEqual(fast.json.id, general.json.id);
      seen.add(fast.json.id);
    }
  }
  assert.ok(seen.size >= 2, 'some bodies were accepted');
  // A member given twice, known or not, is rejected as the general path
  // rejects it (the scanner catches it among an object's first 32 keys).
  for (const body of ['{"type":"user.created","data":{},"data":5}', '{"type":"user.created","data":{},"x":1,"x":2}']) {
    const twice = await publish(gw, body);
    assert.equal(twice.status, 400, twice.body);
    assert.equal(twice.json.error.type, 'invalid_json');
    assert.match(twice.json.error.message, /duplicate object key/);
  }
});

test('publish: an Idempotency-Key repeat answers the same event and sends nothing new', async () => {
  const gw = await gateway();
  const wh = await createWebhook(gw, rx, '/idem', ['user.created']);
  await createWebhook(gw, rx, '/idem2', ['user.*']);
  const body = { type: 'user.created', data: { k: 'v' } };

  const first = await publish(gw, body, { 'Idempotency-Key': 'key-1' });
  assert.equal(first.status, 202, first.body);
  assert.equal(first.headers['idempotent-replayed'], undefined);
  assert.equal(first.json.deliveries, 2);
  await rx.waitFor(byId(first.json.id), { count: 2 });

  const again = await publish(gw, body, { 'Idempotency-Key': 'key-1' });
  assert.equal(again.status, 202, again.body);
  assert.equal(again.headers['idempotent-replayed'], 'true');
  assert.deepEqual(again.json, first.json);
  // Even with a different body: the key names the request.
  const changed = await publish(gw, { type: 'user.created', data: { k: 'other' } }, { 'Idempotency-Key': 'key-1' });
  assert.deepEqual(changed.json, first.json);
  assert.equal(changed.headers['idempotent-replayed'], 'true');

  // Another key is another event.
  const other = await publish(gw, body, { 'Idempotency-Key': 'key-2' });
  assert.equal(other.status, 202);
  assert.notEqual(other.json.id, first.json.id);
  assert.equal(other.headers['idempotent-replayed'], undefined);

  // The later event went through the same queue: once it has arrived, a
  // second send of the first would have too.
  await rx.waitFor(byId(other.json.id), { count: 2 });
  assert.equal(rx.received().filter(byId(first.json.id)).length, 2);
  const list = await listDeliveries(gw, wh.id);
  assert.deepEqual(list.deliveries.map((d) => d.eventId).sort(), [first.json.id, other.json.id].sort());

  // An invalid key is a 422 naming the header.
  const bad = await publish(gw, body, { 'Idempotency-Key': 'x'.repeat(256) });
  assert.equal(bad.status, 422);
  assert.deepEqual(errorFields(bad), ['Idempotency-Key']);
});

test('publish: a repeated publisher id answers the same event and sends nothing new', async () => {
  const gw = await gateway();
  const wh = await createWebhook(gw, rx, '/pubid', ['session.*']);
  const first = await publish(gw, { id: 'order-42:created', type: 'session.created', data: { a: 1 } });
  assert.equal(first.status, 202, first.body);
  assert.deepEqual(first.json, { id: 'order-42:created', deliveries: 1 });
  assert.equal(first.headers['idempotent-replayed'], undefined);
  await rx.waitFor(byId('order-42:created'));

  const again = await publish(gw, { id: 'order-42:created', type: 'session.created', data: { a: 1 } });
  assert.equal(again.status, 202, again.body);
  assert.deepEqual(again.json, first.json);
  assert.equal(again.headers['idempotent-replayed'], 'true');

  const later = await publishOk(gw, { id: 'order-43', type: 'session.revoked', data: {} });
  await rx.waitFor(byId(later.id));
  assert.deepEqual(onPath('/pubid').sort(), ['order-42:created', 'order-43']);
  assert.equal((await listDeliveries(gw, wh.id)).deliveries.length, 2);

  const bad = await publish(gw, { id: 'has space', type: 'session.created', data: {} });
  assert.equal(bad.status, 422);
  assert.deepEqual(errorFields(bad), ['id']);
});

test('batch: 3 events are 202 {events:[...]}, each fanned out', async () => {
  const gw = await gateway();
  await createWebhook(gw, rx, '/batch/user', ['user.*']);
  await createWebhook(gw, rx, '/batch/all', ['*']);
  const r = await gw.request('POST', '/v1/events/batch', {
    body: {
      events: [
        { type: 'user.created', data: { i: 0 } },
        { type: 'session.created', data: { i: 1 } },
        { id: 'batch-ev-2', type: 'user.deleted', data: { i: 2 } },
      ],
    },
  });
  assert.equal(r.status, 202, r.body);
  assert.equal(r.json.events.length, 3);
  assert.deepEqual(r.json.events.map((e) => e.deliveries), [2, 1, 2]);
  assert.equal(r.json.events[2].id, 'batch-ev-2');
  const ids = r.json.events.map((e) => e.id);
  assert.equal(new Set(ids).size, 3);
  for (const e of r.json.events) await rx.waitFor(byId(e.id), { count: e.deliveries });
  assert.deepEqual(onPath('/batch/user').sort(), [ids[0], ids[2]].sort());
  assert.deepEqual(onPath('/batch/all').sort(), [...ids].sort());
  // Each event's own data went to its receiver.
  const second = rx.received('/batch/all').find(byId(ids[1]));
  assert.deepEqual(JSON.parse(second.body).data, { i: 1 });
});

test('batch: one bad event fails the whole batch, naming events[i], and nothing is stored', async () => {
  const gw = await gateway();
  const wh = await createWebhook(gw, rx, '/batchbad', ['*']);
  const r = await gw.request('POST', '/v1/events/batch', {
    body: {
      events: [
        { id: 'bb-0', type: 'user.created', data: {} },
        { id: 'bb-1', type: 'not.a.type', data: {} },
        { id: 'bb-2', type: 'user.created', data: {} },
      ],
    },
  });
  assert.equal(r.status, 422, r.body);
  assert.deepEqual(errorFields(r), ['events[1].type']);

  const r2 = await gw.request('POST', '/v1/events/batch', {
    body: { events: [{ id: 'bb-0', type: 'user.created', data: {} }, { id: 'bb-1', type: 'user.created', data: [] }] },
  });
  assert.equal(r2.status, 422, r2.body);
  assert.deepEqual(errorFields(r2), ['events[1].data']);

  // bb-0 was not stored by either batch: publishing it now is new, not a replay.
  const fresh = await publish(gw, { id: 'bb-0', type: 'user.created', data: {} });
  assert.equal(fresh.status, 202, fresh.body);
  assert.equal(fresh.headers['idempotent-replayed'], undefined);
  await rx.waitFor(byId('bb-0'));
  assert.deepEqual(onPath('/batchbad'), ['bb-0']);
  assert.deepEqual((await listDeliveries(gw, wh.id)).deliveries.map((d) => d.eventId), ['bb-0']);
});

test('fan-out honours organizations', async () => {
  const gw = await gateway();
  const global = await createWebhook(gw, rx, '/org/none', ['*']);
  const a = await createWebhook(gw, rx, '/org/a', ['*'], { organizationId: 'org-a' });
  const b = await createWebhook(gw, rx, '/org/b', ['user.created'], { organizationId: 'org-b' });
  assert.equal(a.organizationId, 'org-a');

  const evA = await publishOk(gw, { type: 'user.created', data: {}, organizationId: 'org-a' });
  const evB = await publishOk(gw, { type: 'user.created', data: {}, organizationId: 'org-b' });
  const evC = await publishOk(gw, { type: 'user.created', data: {}, organizationId: 'org-c' });
  const evNone = await publishOk(gw, { type: 'user.created', data: {} });
  assert.equal(evA.deliveries, 2); // none + a
  assert.equal(evB.deliveries, 2); // none + b
  assert.equal(evC.deliveries, 1); // none
  assert.equal(evNone.deliveries, 1); // none: an event without organization reaches only webhooks without one

  await until(() => rx.received('/org/none').length >= 4, { what: '4 events at the webhook without organization' });
  await rx.waitFor('/org/a');
  await rx.waitFor('/org/b');
  // evNone was published last; once it arrived nothing else is on its way.
  assert.deepEqual(onPath('/org/none').sort(), [evA.id, evB.id, evC.id, evNone.id].sort());
  assert.deepEqual(onPath('/org/a'), [evA.id]);
  assert.deepEqual(onPath('/org/b'), [evB.id]);
  assert.equal((await listDeliveries(gw, global.id)).deliveries.length, 4);
  assert.equal((await listDeliveries(gw, a.id)).deliveries.length, 1);
  assert.equal((await listDeliveries(gw, b.id)).deliveries.length, 1);
});
