// The SDK's management calls against a real gateway (the binary in
// HOOKGATE_BIN, over real sockets): webhooks, pagination, events, event
// types, gateway administration, health and metrics, and the errors each
// status becomes. Deliveries are in deliveries.test.mjs; retries and
// timeouts in retries.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../integration/lib/gateway.mjs';
import { makeKey } from '../integration/lib/keys.mjs';
import { sdk } from './lib/sdk.mjs';

const {
  HookgateClient, HookgateError, NotFoundError, ValidationError, ForbiddenError, UnauthorizedError,
  ConflictError, BadRequestError, EVENT_TYPES, OPERATIONAL_EVENT_TYPES,
} = sdk;

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
let gw;
let client;
const clientWith = (apiKey, more = {}) => new HookgateClient({ baseUrl: gw.url, apiKey, ...more });

before(async () => {
  gw = await startGateway({ config: 'webhooks = { allow_http = true, event_types = { "invoice.paid" } }\n' });
  client = clientWith(gw.adminKey);
});
after(async () => {
  await gw?.stop();
});

// Asserts fn() rejects with an error of class Cls, status and type; returns it.
async function fails(fn, Cls, status, type) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'expected an error');
  assert.ok(err instanceof Cls, `expected ${Cls.name}, got ${err?.name}: ${err?.message}`);
  assert.ok(err instanceof HookgateError);
  assert.equal(err.name, Cls.name);
  assert.equal(err.status, status, err.message);
  assert.equal(err.type, type);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0);
  assert.ok(Array.isArray(err.details));
  assert.match(err.requestId, /^req_/);
  return err;
}

test('createWebhook, getWebhook, updateWebhook, deleteWebhook', async () => {
  const wh = await client.admin.createWebhook({
    url: 'https://app.acme.test/webhooks/identity',
    events: ['user.created', 'user.updated', 'user.deleted'],
    metadata: { team: 'growth' },
  });
  assert.match(wh.id, /^wh_[0-9a-z]{26}$/);
  assert.match(wh.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
  assert.deepEqual(wh.events, ['user.created', 'user.updated', 'user.deleted']);
  assert.equal(wh.organizationId, null);
  assert.equal(wh.active, true);
  assert.deepEqual(wh.metadata, { team: 'growth' });
  assert.match(wh.createdAt, TIME_RE);
  assert.match(wh.updatedAt, TIME_RE);

  const got = await client.admin.getWebhook({ webhookId: wh.id });
  const { secret, ...withoutSecret } = wh;
  assert.ok(secret);
  assert.deepEqual(got, withoutSecret);
  assert.equal('secret' in got, false);

  const upd = await client.admin.updateWebhook({ webhookId: wh.id, active: false, events: ['user.*'] });
  assert.equal(upd.active, false);
  assert.deepEqual(upd.events, ['user.*']);
  assert.equal(upd.url, wh.url);
  assert.deepEqual(upd.metadata, { team: 'growth' });
  assert.ok(upd.updatedAt >= wh.updatedAt);

  // a secret and an organization of our own choosing, inactive from the start
  const own = 'whsec_' + Buffer.alloc(32, 1).toString('base64');
  const wh2 = await client.admin.createWebhook({
    url: 'https://hooks.partner.test/in', events: ['organization.*'], organizationId: 'org_1', secret: own, active: false,
  });
  assert.equal(wh2.secret, own);
  assert.equal(wh2.organizationId, 'org_1');
  assert.equal(wh2.active, false);

  assert.equal(await client.admin.deleteWebhook({ webhookId: wh.id }), undefined);
  await fails(() => client.admin.getWebhook({ webhookId: wh.id }), NotFoundError, 404, 'not_found');
  await fails(() => client.admin.deleteWebhook({ webhookId: wh.id }), NotFoundError, 404, 'not_found');
  await client.admin.deleteWebhook({ webhookId: wh2.id });
});

test('flow control and ordering fields reach the gateway through createWebhook and updateWebhook', async () => {
  const wh = await client.admin.createWebhook({
    url: 'https://flow.test/h', events: ['user.created'], rateLimit: 2.5, maxConcurrency: 3, ordering: 'fifo',
  });
  assert.equal(wh.rateLimit, 2.5);
  assert.equal(wh.maxConcurrency, 3);
  assert.equal(wh.ordering, 'fifo');
  const got = await client.admin.getWebhook({ webhookId: wh.id });
  assert.deepEqual([got.rateLimit, got.maxConcurrency, got.ordering], [2.5, 3, 'fifo']);
  const upd = await client.admin.updateWebhook({ webhookId: wh.id, rateLimit: null, maxConcurrency: 7, ordering: null });
  assert.deepEqual([upd.rateLimit, upd.maxConcurrency, upd.ordering], [null, 7, null]);
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('404 on unknown or malformed ids, for every call that takes one', async () => {
  const unknown = 'wh_01jdx3k7q9v2m8r4t6y0a5b3c1';
  const del = 'del_01jdx4a2b3c4d5e6f7g8h9j0k2';
  for (const call of [
    () => client.admin.getWebhook({ webhookId: unknown }),
    () => client.admin.getWebhook({ webhookId: 'not-an-id/../x?y' }),
    () => client.admin.updateWebhook({ webhookId: unknown, active: true }),
    () => client.admin.deleteWebhook({ webhookId: unknown }),
    () => client.admin.rotateWebhookSecret({ webhookId: unknown }),
    () => client.admin.testWebhook({ webhookId: unknown }),
    () => client.admin.listWebhookDeliveries({ webhookId: unknown }),
    () => client.admin.getWebhookDelivery({ webhookId: unknown, deliveryId: del }),
    () => client.admin.replayWebhookDelivery({ webhookId: unknown, deliveryId: del }),
  ]) {
    const e = await fails(call, NotFoundError, 404, 'not_found');
    assert.match(e.message, /not found/);
  }
  await assert.rejects(() => client.admin.getWebhook({ webhookId: '' }), TypeError);
});

test('422 ValidationError carries the field details', async () => {
  const e = await fails(
    () => client.admin.createWebhook({ url: 'ftp://nope', events: ['user.created', 'user.signed_in'] }),
    ValidationError, 422, 'validation_error',
  );
  assert.deepEqual(e.fields.sort(), ['events[1]', 'url']);
  const byField = Object.fromEntries(e.details.map((d) => [d.field, d.message]));
  assert.match(byField.url, /https/);
  assert.match(byField['events[1]'], /unknown event type "user.signed_in"/);

  const wh = await client.admin.createWebhook({ url: 'https://a.test/h', events: ['*'] });
  const e2 = await fails(() => client.admin.updateWebhook({ webhookId: wh.id, metadata: { team: 'x'.repeat(600) } }),
    ValidationError, 422, 'validation_error');
  assert.deepEqual(e2.fields, ['metadata.team']);
  const e3 = await fails(() => client.admin.rotateWebhookSecret({ webhookId: wh.id, gracePeriodHours: 500 }),
    ValidationError, 422, 'validation_error');
  assert.deepEqual(e3.fields, ['gracePeriodHours']);
  const e4 = await fails(() => client.admin.listWebhooks({ pageSize: 0 }), ValidationError, 422, 'validation_error');
  assert.deepEqual(e4.fields, ['pageSize']);
  const e5 = await fails(() => client.admin.listWebhooks({ pageToken: 'forged' }), ValidationError, 422, 'validation_error');
  assert.deepEqual(e5.fields, ['pageToken']);
  const e6 = await fails(() => client.admin.publishEvent({ type: 'user.nope', data: [] }), ValidationError, 422, 'validation_error');
  assert.deepEqual(e6.fields.sort(), ['data', 'type']);
  const e7 = await fails(() => client.admin.publishEvents({ events: [{ type: 'user.created', data: {} }, { type: 'x.y', data: {} }] }),
    ValidationError, 422, 'validation_error');
  assert.deepEqual(e7.fields, ['events[1].type']);
  const e8 = await fails(() => client.admin.testWebhook({ webhookId: wh.id, event: 'nope.nope' }), ValidationError, 422, 'validation_error');
  assert.deepEqual(e8.fields, ['event']);
  const e9 = await fails(() => client.admin.listWebhookDeliveries({ webhookId: wh.id, status: 'done' }), ValidationError, 422, 'validation_error');
  assert.deepEqual(e9.fields, ['status']);
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('401 UnauthorizedError for a missing or unknown key', async () => {
  for (const c of [clientWith(undefined), clientWith('hg_not_a_key_at_all_0000000000000000000000000')]) {
    const e = await fails(() => c.admin.listWebhooks(), UnauthorizedError, 401, 'unauthorized');
    assert.deepEqual(e.details, []);
    await fails(() => c.admin.createWebhook({ url: 'ftp://x', events: [] }), UnauthorizedError, 401, 'unauthorized');
    await fails(() => c.admin.getDeliveryState(), UnauthorizedError, 401, 'unauthorized');
  }
});

test('403 ForbiddenError: missing scope, and an organization key naming another organization', async () => {
  const { key: readOnly } = await makeKey(gw, 'webhooks:read');
  const ro = clientWith(readOnly);
  await ro.admin.listWebhooks();
  await fails(() => ro.admin.createWebhook({ url: 'https://a.test/h', events: ['*'] }), ForbiddenError, 403, 'forbidden');
  await fails(() => ro.admin.publishEvent({ type: 'user.created', data: {} }), ForbiddenError, 403, 'forbidden');
  await fails(() => ro.admin.pauseDelivery(), ForbiddenError, 403, 'forbidden');
  await fails(() => ro.admin.listPlugins(), ForbiddenError, 403, 'forbidden');
  await fails(() => ro.admin.reload(), ForbiddenError, 403, 'forbidden');

  const { key: orgKeyA } = await makeKey(gw, 'webhooks:read,webhooks:write,events:publish', 'org_a');
  const a = clientWith(orgKeyA);
  const theirs = await client.admin.createWebhook({ url: 'https://b.test/h', events: ['*'], organizationId: 'org_b' });
  const mine = await a.admin.createWebhook({ url: 'https://a.test/h', events: ['user.*'] });
  assert.equal(mine.organizationId, 'org_a');
  // Another organization's webhook answers 404, exactly as an unknown id (docs/api.md: a key
  // cannot learn which ids exist elsewhere); naming another organization answers 403.
  await fails(() => a.admin.getWebhook({ webhookId: theirs.id }), NotFoundError, 404, 'not_found');
  await fails(() => a.admin.updateWebhook({ webhookId: theirs.id, active: false }), NotFoundError, 404, 'not_found');
  await fails(() => a.admin.deleteWebhook({ webhookId: theirs.id }), NotFoundError, 404, 'not_found');
  await fails(() => a.admin.listWebhooks({ organizationId: 'org_b' }), ForbiddenError, 403, 'forbidden');
  const e = await fails(() => a.admin.createWebhook({ url: 'https://a.test/h', events: ['*'], organizationId: 'org_b' }),
    ForbiddenError, 403, 'forbidden');
  assert.match(e.message, /organization/);
  await fails(() => a.admin.publishEvent({ type: 'user.created', data: {}, organizationId: 'org_b' }), ForbiddenError, 403, 'forbidden');
  const seen = [];
  for await (const w of a.admin.iterateWebhooks()) seen.push(w.id);
  assert.deepEqual(seen, [mine.id]);
  assert.equal((await client.admin.getWebhook({ webhookId: theirs.id })).active, true);
  await client.admin.deleteWebhook({ webhookId: theirs.id });
  await a.admin.deleteWebhook({ webhookId: mine.id });
});

test('listWebhooks pages with a token; listWebhooksPages and iterateWebhooks follow it', async () => {
  const ids = [];
  for (let i = 0; i < 7; i++) {
    const w = await client.admin.createWebhook({ url: `https://p.test/${i}`, events: ['mfa.*'], organizationId: 'org_pages' });
    ids.push(w.id);
  }
  const newestFirst = [...ids].reverse();
  const first = await client.admin.listWebhooks({ pageSize: 3, organizationId: 'org_pages' });
  assert.deepEqual(first.webhooks.map((w) => w.id), newestFirst.slice(0, 3));
  assert.equal(typeof first.nextPageToken, 'string');
  const second = await client.admin.listWebhooks({ pageSize: 3, organizationId: 'org_pages', pageToken: first.nextPageToken });
  assert.deepEqual(second.webhooks.map((w) => w.id), newestFirst.slice(3, 6));

  const pages = [];
  for await (const page of client.admin.listWebhooksPages({ pageSize: 3, organizationId: 'org_pages' })) pages.push(page);
  assert.deepEqual(pages.map((p) => p.webhooks.length), [3, 3, 1]);
  assert.equal(pages[2].nextPageToken, null);
  assert.deepEqual(pages.flatMap((p) => p.webhooks.map((w) => w.id)), newestFirst);

  const items = [];
  for await (const w of client.admin.iterateWebhooks({ pageSize: 2, organizationId: 'org_pages' })) items.push(w.id);
  assert.deepEqual(items, newestFirst);
  // breaking out early stops asking for pages
  let n = 0;
  for await (const w of client.admin.iterateWebhooks({ pageSize: 2, organizationId: 'org_pages' })) {
    assert.ok(w.id);
    if (++n === 3) break;
  }
  assert.equal(n, 3);
  const none = await client.admin.listWebhooks({ organizationId: 'org_nobody' });
  assert.deepEqual(none, { webhooks: [], nextPageToken: null });
  for (const id of ids) await client.admin.deleteWebhook({ webhookId: id });
});

test('rotateWebhookSecret: a new secret and when the old one expires', async () => {
  const wh = await client.admin.createWebhook({ url: 'https://r.test/h', events: ['user.created'] });
  const r = await client.admin.rotateWebhookSecret({ webhookId: wh.id, gracePeriodHours: 24 });
  assert.match(r.secret, /^whsec_/);
  assert.notEqual(r.secret, wh.secret);
  const hours = (Date.parse(r.previousSecretExpiresAt) - Date.now()) / 3600e3;
  assert.ok(hours > 23.9 && hours <= 24, `expires in ${hours} h`);
  const r2 = await client.admin.rotateWebhookSecret({ webhookId: wh.id }); // the default grace period, empty body
  assert.notEqual(r2.secret, r.secret);
  const r3 = await client.admin.rotateWebhookSecret({ webhookId: wh.id, gracePeriodHours: 0 });
  assert.ok(Math.abs(Date.parse(r3.previousSecretExpiresAt) - Date.now()) < 60e3);
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('listEventTypes: the 15 built-in types, the operational ones, then the config\'s', async () => {
  const { eventTypes } = await client.admin.listEventTypes();
  assert.deepEqual(eventTypes, [...EVENT_TYPES, ...OPERATIONAL_EVENT_TYPES, 'invoice.paid']);
  assert.equal(EVENT_TYPES.length, 15);
  const { key } = await makeKey(gw, 'events:publish');
  assert.deepEqual((await clientWith(key).admin.listEventTypes()).eventTypes, eventTypes);
});

test('publishEvent, idempotency, publishEvents, and 409 ConflictError', async () => {
  const wh = await client.admin.createWebhook({ url: 'https://e.test/h', events: ['invoice.paid'], active: true });
  const one = await client.admin.publishEvent({ type: 'invoice.paid', data: { amount: 1 } });
  assert.match(one.id, /^evt_/);
  assert.equal(one.deliveries, 1);
  assert.equal(one.idempotentReplayed, false);

  const k = `key-${Date.now()}`;
  const first = await client.admin.publishEvent({ type: 'user.created', data: { a: 1 }, idempotencyKey: k });
  const again = await client.admin.publishEvent({ type: 'user.created', data: { a: 2 }, idempotencyKey: k });
  assert.equal(again.id, first.id);
  assert.equal(first.idempotentReplayed, false);
  assert.equal(again.idempotentReplayed, true);

  const own = await client.admin.publishEvent({ type: 'user.created', data: {}, id: 'sdk-evt-1', organizationId: 'org_x' });
  assert.equal(own.id, 'sdk-evt-1');
  const ownAgain = await client.admin.publishEvent({ type: 'user.created', data: {}, id: 'sdk-evt-1', organizationId: 'org_x' });
  assert.equal(ownAgain.idempotentReplayed, true);
  // the same id for another organization
  const c = await fails(() => client.admin.publishEvent({ type: 'user.created', data: {}, id: 'sdk-evt-1', organizationId: 'org_y' }),
    ConflictError, 409, 'conflict');
  assert.match(c.message, /sdk-evt-1/);

  const batch = await client.admin.publishEvents({
    events: [
      { type: 'invoice.paid', data: { n: 1 }, id: 'sdk-batch-1' },
      { type: 'organization.member.added', organizationId: 'org_1', data: { role: 'admin' } },
    ],
  });
  assert.equal(batch.events.length, 2);
  assert.deepEqual(batch.events[0], { id: 'sdk-batch-1', deliveries: 1 });
  assert.match(batch.events[1].id, /^evt_/);
  await fails(() => client.admin.publishEvents({ events: [{ type: 'user.created', data: {}, id: 'sdk-evt-1', organizationId: 'org_z' }] }),
    ConflictError, 409, 'conflict');
  await client.admin.deleteWebhook({ webhookId: wh.id });
});

test('getDeliveryState, pauseDelivery, resumeDelivery, listPlugins, reload', async () => {
  const s = await client.admin.getDeliveryState();
  assert.deepEqual(Object.keys(s).sort(), ['inFlight', 'paused', 'queued']);
  assert.equal(s.paused, false);
  assert.equal((await client.admin.pauseDelivery()).paused, true);
  assert.equal((await client.admin.pauseDelivery()).paused, true);
  assert.equal((await client.admin.getDeliveryState()).paused, true);
  assert.equal((await client.admin.resumeDelivery()).paused, false);
  assert.equal((await client.admin.getDeliveryState()).paused, false);

  const p = await client.admin.listPlugins();
  assert.ok(Array.isArray(p.plugins));
  assert.ok(p.available.includes('payload-filter'), JSON.stringify(p));
  const r = await client.admin.reload();
  assert.equal(r.status, 'reloaded');
  assert.deepEqual(r.plugins.available, p.available);
});

test('health and metrics need no key', async () => {
  const anon = clientWith(undefined);
  assert.deepEqual(await anon.health(), { status: 'ok' });
  const m = await anon.metrics();
  assert.equal(typeof m, 'string');
  assert.match(m, /^# (HELP|TYPE) hookgate_/m);
  assert.match(m, /hookgate_events_ingested_total \d+/);
});

test('malformed JSON becomes BadRequestError (with the offset); a 404 for a path no route has, NotFoundError', async () => {
  // The SDK always sends well-formed JSON: a fetch that cuts the body short makes the gateway answer 400.
  const cut = new HookgateClient({
    baseUrl: gw.url, apiKey: gw.adminKey,
    fetch: (url, init) => fetch(url, { ...init, body: init.body.slice(0, -1) }),
  });
  const e = await fails(() => cut.admin.createWebhook({ url: 'https://a.test/h', events: ['*'] }), BadRequestError, 400, 'invalid_json');
  assert.equal(e.details[0].field, 'body');
  assert.equal(typeof e.details[0].offset, 'number');
  const wrongBase = clientWith(gw.adminKey, { baseUrl: gw.url + '/nowhere' });
  await fails(() => wrongBase.admin.listEventTypes(), NotFoundError, 404, 'not_found');
  assert.throws(() => new HookgateClient({}), TypeError);
});
