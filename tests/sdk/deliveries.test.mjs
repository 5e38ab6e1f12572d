// Deliveries from a real gateway to a real local receiver, driven and read
// through the SDK: verifyWebhook on what the receiver got (also during a
// secret rotation, and with a v1a webhook's public key), testWebhook, the delivery log (pages, filters, one
// delivery with its attempts), replay, and 409 on a replay in flight.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../integration/lib/gateway.mjs';
import { startReceiver, status, hang } from '../integration/lib/receiver.mjs';
import { until } from '../integration/lib/delivery.mjs';
import { sdk } from './lib/sdk.mjs';

const { HookgateClient, verifyWebhook, WebhookVerificationError, ConflictError, NotFoundError } = sdk;

let gw;
let rx;
let client;

before(async () => {
  // Loopback receivers are refused by the SSRF guard unless allowed; fast retries; an attempt
  // times out after 3 s (long enough to replay while one is on the wire, even under ASan).
  gw = await startGateway({
    config: `webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.1/32" }, schedule = { 0, 0.2, 0.2, 0.2 }, jitter = 0, timeout = 3 }
`,
  });
  rx = await startReceiver();
  client = new HookgateClient({ baseUrl: gw.url, apiKey: gw.adminKey });
});
after(async () => {
  await rx?.close();
  await gw?.stop();
});

const byEvent = (path, eventId) => (r) => r.path === path && r.headers['webhook-id'] === eventId;

// Waits until the delivery of eventId to the webhook is no longer pending; returns its detail.
async function settled(webhookId, eventId) {
  return until(async () => {
    for await (const d of client.admin.iterateWebhookDeliveries({ webhookId, pageSize: 100 })) {
      if (d.eventId !== eventId) continue;
      if (d.status === 'pending') return { done: false, ...d };
      return client.admin.getWebhookDelivery({ webhookId, deliveryId: d.id });
    }
    return { done: false, none: true };
  }, { what: `delivery of ${eventId}` });
}

test('a real delivery verifies with verifyWebhook and the secret createWebhook returned', async () => {
  const wh = await client.admin.createWebhook({ url: rx.url('/verify'), events: ['user.created'] });
  const data = { userId: 'usr_123', email: 'ada@acme.test', n: 1.50 };
  const ev = await client.admin.publishEvent({ type: 'user.created', data });
  assert.equal(ev.deliveries, 1);
  const [req] = await rx.waitFor(byEvent('/verify', ev.id));
  assert.equal(req.headers['webhook-signature'].split(' ').length, 1);
  const event = verifyWebhook(req.body, req.headers, wh.secret);
  assert.equal(event.type, 'user.created');
  assert.deepEqual(event.data, data);
  assert.match(event.timestamp, /Z$/);
  verifyWebhook(req.body.toString('utf8'), req.headers, wh.secret); // as a string too
  assert.throws(() => verifyWebhook(req.body, req.headers, 'whsec_' + Buffer.alloc(32, 9).toString('base64')),
    (e) => e instanceof WebhookVerificationError && e.reason === 'invalid_signature');
  assert.throws(() => verifyWebhook(Buffer.concat([req.body, Buffer.from(' ')]), req.headers, wh.secret),
    (e) => e instanceof WebhookVerificationError && e.reason === 'invalid_signature');
  assert.throws(() => verifyWebhook(req.body, req.headers, wh.secret, { now: Math.floor(Date.now() / 1000) + 600 }),
    (e) => e instanceof WebhookVerificationError && e.reason === 'timestamp_too_old');
  const d = await settled(wh.id, ev.id);
  assert.equal(d.status, 'success');
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('a v1a webhook: the delivery verifies with verifyWebhook and the public key, also during a rotation', async () => {
  const wh = await client.admin.createWebhook({ url: rx.url('/v1a'), events: ['user.updated'], signatureScheme: 'v1a' });
  assert.equal(wh.signatureScheme, 'v1a');
  assert.equal(wh.secret, undefined);
  assert.match(wh.publicKey, /^whpk_/);
  const ev = await client.admin.publishEvent({ type: 'user.updated', data: { v: 1 } });
  const [req] = await rx.waitFor(byEvent('/v1a', ev.id));
  assert.match(req.headers['webhook-signature'], /^v1a,/);
  assert.equal(verifyWebhook(req.body, req.headers, wh.publicKey).data.v, 1);
  const rot = await client.admin.rotateWebhookSecret({ webhookId: wh.id, gracePeriodHours: 1 });
  assert.equal(rot.secret, undefined);
  assert.deepEqual(rot.publicKeys, [rot.publicKey, wh.publicKey]);
  const got = await client.admin.getWebhook({ webhookId: wh.id });
  assert.deepEqual(got.publicKeys, rot.publicKeys);
  const ev2 = await client.admin.publishEvent({ type: 'user.updated', data: { v: 2 } });
  const [req2] = await rx.waitFor(byEvent('/v1a', ev2.id));
  assert.equal(req2.headers['webhook-signature'].split(' ').length, 2);
  verifyWebhook(req2.body, req2.headers, rot.publicKey);
  verifyWebhook(req2.body, req2.headers, wh.publicKey);
  assert.throws(() => verifyWebhook(req2.body, req2.headers, 'whsec_' + Buffer.alloc(32, 9).toString('base64')),
    (e) => e instanceof WebhookVerificationError && e.reason === 'invalid_signature');
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('during a rotation the delivery carries both signatures: either secret verifies it', async () => {
  const wh = await client.admin.createWebhook({ url: rx.url('/rotate'), events: ['session.*'] });
  const rot = await client.admin.rotateWebhookSecret({ webhookId: wh.id, gracePeriodHours: 1 });
  const ev = await client.admin.publishEvent({ type: 'session.created', data: { sessionId: 's1' } });
  const [req] = await rx.waitFor(byEvent('/rotate', ev.id));
  assert.equal(req.headers['webhook-signature'].split(' ').length, 2);
  assert.equal(verifyWebhook(req.body, req.headers, rot.secret).data.sessionId, 's1');
  verifyWebhook(req.body, req.headers, wh.secret);
  verifyWebhook(req.body, req.headers, [wh.secret, rot.secret]);
  // Rotating again with no grace period retires the secret in use (rot's) at once; the first
  // secret keeps its own hour of grace (docs/api.md, secret rotation).
  const rot2 = await client.admin.rotateWebhookSecret({ webhookId: wh.id, gracePeriodHours: 0 });
  const ev2 = await client.admin.publishEvent({ type: 'session.revoked', data: {} });
  const [req2] = await rx.waitFor(byEvent('/rotate', ev2.id));
  assert.equal(req2.headers['webhook-signature'].split(' ').length, 2);
  verifyWebhook(req2.body, req2.headers, rot2.secret);
  verifyWebhook(req2.body, req2.headers, wh.secret);
  assert.throws(() => verifyWebhook(req2.body, req2.headers, [rot.secret]),
    (e) => e instanceof WebhookVerificationError && e.reason === 'invalid_signature');
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('testWebhook sends now and answers the outcome; the test is in the delivery log', async () => {
  rx.on('/test-ok', status(200, { body: 'OK' }));
  const wh = await client.admin.createWebhook({ url: rx.url('/test-ok'), events: ['user.created'] });
  const r = await client.admin.testWebhook({ webhookId: wh.id });
  assert.equal(r.statusCode, 200);
  assert.equal(r.responseBody, 'OK');
  assert.equal(r.success, true);
  assert.equal(r.error, null);
  assert.equal(typeof r.durationMs, 'number');
  assert.match(r.deliveryId, /^del_/);
  const [req] = await rx.waitFor('/test-ok');
  const event = verifyWebhook(req.body, req.headers, wh.secret);
  assert.equal(event.type, 'webhook.test');
  assert.deepEqual(event.data, { test: true, webhookId: wh.id });

  const custom = await client.admin.testWebhook({ webhookId: wh.id, event: 'mfa.enrolled', data: { factor: 'totp' } });
  assert.equal(custom.success, true);
  const d = await client.admin.getWebhookDelivery({ webhookId: wh.id, deliveryId: custom.deliveryId });
  assert.equal(d.event, 'mfa.enrolled');
  assert.equal(d.status, 'success');
  assert.equal(d.attempts.length, 1);
  assert.equal(d.attempts[0].statusCode, 200);
  assert.equal(d.attempts[0].responseBody, 'OK');
  const tests = await client.admin.listWebhookDeliveries({ webhookId: wh.id, event: 'webhook.test' });
  assert.deepEqual(tests.deliveries.map((x) => x.id), [r.deliveryId]);

  rx.on('/test-fail', status(500, { body: 'boom' }));
  const bad = await client.admin.createWebhook({ url: rx.url('/test-fail'), events: ['user.created'] });
  const f = await client.admin.testWebhook({ webhookId: bad.id });
  assert.deepEqual([f.statusCode, f.responseBody, f.success, f.error], [500, 'boom', false, 'HTTP 500']);
  await client.admin.deleteWebhook({ webhookId: wh.id });
  await client.admin.deleteWebhook({ webhookId: bad.id });
});

test('listWebhookDeliveries pages and filters; getWebhookDelivery; replayWebhookDelivery resends the same webhook-id', async () => {
  rx.on('/log', (req) => (req.headers['x-never'] ? status(200) : status(500, { body: 'down' })));
  const wh = await client.admin.createWebhook({ url: rx.url('/log'), events: ['organization.*'] });
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await client.admin.publishEvent({ type: 'organization.updated', data: { i } })).id);
  for (const id of ids) assert.equal((await settled(wh.id, id)).status, 'failed');

  const page1 = await client.admin.listWebhookDeliveries({ webhookId: wh.id, pageSize: 2 });
  assert.equal(page1.deliveries.length, 2);
  assert.equal(typeof page1.nextPageToken, 'string');
  const pages = [];
  for await (const p of client.admin.listWebhookDeliveriesPages({ webhookId: wh.id, pageSize: 2 })) pages.push(p);
  assert.deepEqual(pages.map((p) => p.deliveries.length), [2, 2, 1]);
  const all = [];
  for await (const d of client.admin.iterateWebhookDeliveries({ webhookId: wh.id, pageSize: 2, status: 'failed' })) all.push(d);
  assert.deepEqual(all.map((d) => d.eventId), [...ids].reverse());
  for (const d of all) {
    assert.equal(d.event, 'organization.updated');
    assert.equal(d.statusCode, 500);
    assert.equal(d.attempts, 4);
    assert.equal(d.nextAttemptAt, null);
  }
  assert.deepEqual((await client.admin.listWebhookDeliveries({ webhookId: wh.id, status: 'success' })).deliveries, []);
  assert.deepEqual((await client.admin.listWebhookDeliveries({ webhookId: wh.id, event: 'user.created' })).deliveries, []);

  const detail = await client.admin.getWebhookDelivery({ webhookId: wh.id, deliveryId: all[0].id });
  assert.equal(detail.attempts.length, 4);
  assert.deepEqual(detail.attempts.map((a) => a.attempt), [1, 2, 3, 4]);
  for (const a of detail.attempts) {
    assert.match(a.id, /^att_/);
    assert.equal(a.statusCode, 500);
    assert.equal(a.responseBody, 'down');
    assert.equal(a.error, 'HTTP 500');
  }
  await assert.rejects(() => client.admin.getWebhookDelivery({ webhookId: wh.id, deliveryId: 'del_01jdx4a2b3c4d5e6f7g8h9j0k2' }), NotFoundError);

  // replay, now that the receiver accepts
  rx.on('/log', status(200, { body: 'back' }));
  const before = rx.received('/log').length;
  const rp = await client.admin.replayWebhookDelivery({ webhookId: wh.id, deliveryId: all[0].id });
  assert.deepEqual(rp, { id: all[0].id, status: 'pending' });
  const got = await rx.waitFor('/log', { count: before + 1 });
  const req = got[got.length - 1];
  assert.equal(req.headers['webhook-id'], all[0].eventId);
  verifyWebhook(req.body, req.headers, wh.secret);
  const after = await until(async () => {
    const d = await client.admin.getWebhookDelivery({ webhookId: wh.id, deliveryId: all[0].id });
    return d.status === 'success' ? d : { done: false, ...d };
  }, { what: 'the replay to succeed' });
  assert.equal(after.attempts.length, 5);
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('recoverWebhookDeliveries sends a window of failed deliveries again; getWebhookRecovery follows it', async () => {
  let down = true;
  rx.on('/rcv', () => (down ? status(503, { body: 'down' }) : status(200, { body: 'ok' })));
  const wh = await client.admin.createWebhook({ url: rx.url('/rcv'), events: ['user.updated'] });
  const since = new Date(Date.now() - 1).toISOString();
  const ev = await client.admin.publishEvent({ type: 'user.updated', data: { n: 1 } });
  await until(async () => (await settled(wh.id, ev.id)).status === 'failed', { what: 'the delivery to fail' });
  const dry = await client.admin.recoverWebhookDeliveries({ webhookId: wh.id, since, dryRun: true });
  assert.equal(dry.state, 'done');
  assert.equal(dry.count, 1);
  down = false;
  const started = await client.admin.recoverWebhookDeliveries({ webhookId: wh.id, since });
  assert.match(started.id, /^rcv_/);
  const done = await until(async () => {
    const r = await client.admin.getWebhookRecovery({ webhookId: wh.id, recoveryId: started.id });
    return r.state === 'running' ? { done: false, ...r } : r;
  }, { what: 'the recovery to end' });
  assert.equal(done.state, 'done');
  assert.equal(done.requeued, 1);
  const got = await rx.waitFor('/rcv', { count: 5 });
  const req = got[got.length - 1];
  assert.equal(req.headers['webhook-id'], ev.id);
  verifyWebhook(req.body, req.headers, wh.secret);
  await assert.rejects(() => client.admin.getWebhookRecovery({ webhookId: wh.id, recoveryId: 'rcv_01jdx5m2n3p4q5r6s7t8v9w0x1' }),
    NotFoundError);
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('409 ConflictError: replaying a delivery while its attempt is on the wire', async () => {
  rx.on('/hang', hang());
  const wh = await client.admin.createWebhook({ url: rx.url('/hang'), events: ['directory.sync.completed'] });
  const ev = await client.admin.publishEvent({ type: 'directory.sync.completed', data: {} });
  await rx.waitFor(byEvent('/hang', ev.id));
  const { deliveries } = await client.admin.listWebhookDeliveries({ webhookId: wh.id });
  // The attempt hangs until delivery.timeout (3 s): a replay meanwhile is refused.
  const e = await assert.rejects(
    () => client.admin.replayWebhookDelivery({ webhookId: wh.id, deliveryId: deliveries[0].id }),
    (err) => {
      assert.ok(err instanceof ConflictError, `${err?.name}: ${err?.message}`);
      assert.equal(err.status, 409);
      assert.equal(err.type, 'conflict');
      return true;
    },
  );
  assert.equal(e, undefined);
  await client.admin.deleteWebhook({ webhookId: wh.id });
});
