// A delivery's detail (GET /v1/webhooks/{id}/deliveries/{deliveryId}):
// the event's `payload` as receivers get it by default, and each attempt's
// `requestHeaders`: the gateway's own headers (Content-Type, webhook-id,
// webhook-timestamp, webhook-signature, User-Agent, Content-Length) as the
// receiver got them, every header a plugin or a tenant transform added
// with its value "[redacted]" (custom-headers holds credentials), null when
// no request was made or the attempt was recorded before the column
// existed (a database of schema version 7, migrated on start).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onPg } from './lib/store.mjs';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publishOk, waitDelivery, listDeliveries, stopClean } from './lib/delivery.mjs';

const PLUGINS = new URL('../../plugins', import.meta.url).pathname;
const CONFIG = deliveryConfig({ top: `lua = { plugin_paths = { ${JSON.stringify(PLUGINS)} } }` });
const SECRET = 'k_live_s3cr3t_0f_the_receiver_91f2';
const UA_SECRET = 'ua_s3cr3t_7c1d';
const HMAC_KEY = 'legacy_hmac_key_5a0e';
const GATEWAY_OWN = ['Content-Type', 'webhook-id', 'webhook-timestamp', 'webhook-signature', 'User-Agent', 'Content-Length'];

const gateways = [];
const receivers = [];
// Each gateway exits cleanly: under ASan, a leak of a record's headers
// or a bad access while building them fails here.
after(async () => {
  for (const r of receivers) await r.close();
  for (const g of gateways) await stopClean(g);
});

async function setup(opts = {}) {
  const gw = await startGateway({ config: CONFIG, ...opts });
  gateways.push(gw);
  const rx = await startReceiver();
  receivers.push(rx);
  return { gw, rx };
}

// The value of header name (any case) in a requestHeaders object.
function header(obj, name) {
  const k = Object.keys(obj).find((x) => x.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : obj[k];
}

async function detailText(gw, whId, delId) {
  const r = await gw.request('GET', `/v1/webhooks/${whId}/deliveries/${delId}`);
  assert.equal(r.status, 200, r.body);
  return r.body;
}

test('payload is the body the receiver got; requestHeaders holds the gateway\'s headers as sent', async () => {
  const { gw, rx } = await setup();
  const wh = await createWebhook(gw, rx, '/plain', ['user.created']);
  // Spacing and number spelling are kept in what the receiver gets; the
  // answer's payload is the same JSON value.
  const evt = await publishOk(gw, `{"type":"user.created","data":{"b": 1,  "a":[1.5, "x"], "s":"\\u00e9\\n"}}`);
  const d = await waitDelivery(gw, wh.id, evt.id);
  assert.equal(d.status, 'success');
  const [got] = rx.received('/plain');
  assert.deepEqual(d.payload, JSON.parse(got.body.toString()));
  assert.deepEqual(d.payload.data, { b: 1, a: [1.5, 'x'], s: 'é\n' });
  assert.equal(d.payload.type, 'user.created');

  assert.equal(d.attempts.length, 1);
  const h = d.attempts[0].requestHeaders;
  assert.ok(h && typeof h === 'object' && !Array.isArray(h), JSON.stringify(d.attempts[0]));
  assert.deepEqual(Object.keys(h).sort(), [...GATEWAY_OWN].sort(), 'the gateway\'s headers, no Host');
  for (const name of GATEWAY_OWN) assert.equal(header(h, name), got.headers[name.toLowerCase()], name);
  assert.equal(h['webhook-id'], evt.id);
  assert.match(h['webhook-signature'], /^v1,[A-Za-z0-9+/=]+$/);
  assert.equal(h['Content-Type'], 'application/json');

  // The list stays light: no payload, no attempts' headers.
  const list = await listDeliveries(gw, wh.id);
  assert.equal(list.deliveries[0].id, d.id);
  assert.equal('payload' in list.deliveries[0], false);

  // A test delivery too: its payload is the default test event.
  const t = await gw.request('POST', `/v1/webhooks/${wh.id}/test`);
  assert.equal(t.status, 200, t.body);
  const td = await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries/${t.json.deliveryId}`);
  assert.deepEqual(td.json.payload.data, { test: true, webhookId: wh.id });
  assert.equal(td.json.attempts[0].requestHeaders['webhook-id'], td.json.eventId);
});

test('headers a plugin or a transform adds are named with the value "[redacted]"; the secret appears nowhere', async () => {
  const { gw, rx } = await setup();
  const wh = await createWebhook(gw, rx, '/plugged', ['user.created'], {
    plugins: [
      // A secret User-Agent, too: a value the gateway did not set is redacted whatever its name.
      { name: 'custom-headers', config: { headers: { 'X-Api-Key': SECRET, 'User-Agent': UA_SECRET } } },
      // The sign phase: the core's headers are kept in full after it.
      { name: 'legacy-signature', config: { secret: HMAC_KEY, header: 'X-Hub-Signature-256' } },
    ],
    transform: 'return function(delivery)\n  delivery.headers["X-Tenant"] = "acme-tenant-value"\nend\n',
  });
  const evt = await publishOk(gw, { type: 'user.created', data: { userId: 'usr_1' } });
  const d = await waitDelivery(gw, wh.id, evt.id);
  assert.equal(d.status, 'success', JSON.stringify(d));
  const [got] = rx.received('/plugged');
  assert.equal(got.headers['x-api-key'], SECRET, 'the receiver got the credential');
  assert.equal(got.headers['user-agent'], UA_SECRET);
  assert.equal(got.headers['x-tenant'], 'acme-tenant-value');
  assert.match(got.headers['x-hub-signature-256'], /^sha256=[0-9a-f]{64}$/);

  const h = d.attempts[0].requestHeaders;
  assert.equal(h['X-Api-Key'], '[redacted]');
  assert.equal(h['User-Agent'], '[redacted]');
  assert.equal(h['X-Tenant'], '[redacted]');
  assert.equal(h['X-Hub-Signature-256'], '[redacted]');
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'Content-Type', 'Content-Length'])
    assert.equal(header(h, name), got.headers[name.toLowerCase()], name);
  // Every header the receiver got (but Host) is listed, and no other.
  assert.deepEqual(Object.keys(h).map((k) => k.toLowerCase()).sort(),
    Object.keys(got.headers).filter((k) => k !== 'host' && k !== 'connection').sort());
  // The payload is the stored event, not the transform's output.
  assert.deepEqual(d.payload.data, { userId: 'usr_1' });

  const text = await detailText(gw, wh.id, d.id);
  for (const s of [SECRET, UA_SECRET, HMAC_KEY, 'acme-tenant-value', got.headers['x-hub-signature-256']])
    assert.ok(!text.includes(s), `${s} in the answer`);
  const listText = (await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries`)).body;
  assert.ok(!listText.includes(SECRET));
  assert.ok(!gw.logs().includes(SECRET), 'the secret in the log');
});

test('after a deliver plugin: the core\'s values in full while they are the core\'s, a replaced one redacted', async () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'plugins/dv'), { recursive: true });
  // Adds a header; on /swap also replaces the signature (the deliver path
  // compares with a digest of the core's signature, kept meanwhile).
  writeFileSync(join(dir, 'plugins/dv/init.lua'), `return { name = "dv", version = "1",
  deliver = function(d)
    d.headers["X-Deliver"] = "dv_s3cr3t_value"
    if d.url:sub(-5) == "/swap" then
      d.headers["webhook-signature"] = "v1,c3dhcHBlZF9ieV9hX3BsdWdpbg=="
    end
  end }`);
  const { gw, rx } = await setup({
    dir,
    config: deliveryConfig({ top: `lua = { plugin_paths = { ${JSON.stringify(join(dir, 'plugins'))} } }\nplugins = { dv = true }` }),
  });
  const keep = await createWebhook(gw, rx, '/keep', ['user.created']);
  const swap = await createWebhook(gw, rx, '/swap', ['user.created']);
  const evt = await publishOk(gw, { type: 'user.created', data: { n: 2 } });
  const dk = await waitDelivery(gw, keep.id, evt.id);
  const ds = await waitDelivery(gw, swap.id, evt.id);
  const [gotKeep] = rx.received('/keep');
  const [gotSwap] = rx.received('/swap');
  const hk = dk.attempts[0].requestHeaders;
  assert.equal(hk['webhook-signature'], gotKeep.headers['webhook-signature']);
  assert.match(hk['webhook-signature'], /^v1,/);
  assert.equal(hk['webhook-id'], evt.id);
  assert.equal(hk['X-Deliver'], '[redacted]');
  const hs = ds.attempts[0].requestHeaders;
  assert.equal(gotSwap.headers['webhook-signature'], 'v1,c3dhcHBlZF9ieV9hX3BsdWdpbg==');
  assert.equal(hs['webhook-signature'], '[redacted]');
  assert.equal(hs['webhook-timestamp'], gotSwap.headers['webhook-timestamp']);
  assert.equal(hs['X-Deliver'], '[redacted]');
  const text = await detailText(gw, swap.id, ds.id) + await detailText(gw, keep.id, dk.id);
  assert.ok(!text.includes('dv_s3cr3t_value'));
  assert.ok(!text.includes('c3dhcHBlZF9ieV9hX3BsdWdpbg'));
});

test('no request, no headers: a skipped delivery answers requestHeaders null', async () => {
  const { gw, rx } = await setup();
  const wh = await createWebhook(gw, rx, '/filtered', ['user.created'], {
    plugins: [{ name: 'payload-filter', config: { condition: { field: 'data.country', op: 'eq', value: 'FR' } } }],
  });
  const evt = await publishOk(gw, { type: 'user.created', data: { country: 'DE' } });
  const d = await waitDelivery(gw, wh.id, evt.id);
  assert.equal(d.status, 'skipped', JSON.stringify(d));
  assert.equal(d.attempts[0].requestHeaders, null);
  assert.deepEqual(d.payload.data, { country: 'DE' });
  assert.equal(rx.received('/filtered').length, 0);
});

test('an attempt recorded before migration 8 answers requestHeaders null', async (t) => {
  if (onPg) {
    t.skip('SQLite\'s migration 8 (PostgreSQL\'s schema starts after it)');
    return;
  }
  try {
    execFileSync('sqlite3', ['-version'], { stdio: 'pipe' });
  } catch {
    t.skip('no sqlite3 command');
    return;
  }
  const { gw, rx } = await setup();
  const wh = await createWebhook(gw, rx, '/old', ['user.created']);
  const evt = await publishOk(gw, { type: 'user.created', data: { n: 1 } });
  const d = await waitDelivery(gw, wh.id, evt.id);
  assert.ok(d.attempts[0].requestHeaders);
  await stopClean(gw);
  // Back to schema version 7: the column is gone, as in a database that
  // version wrote (and what migrations 9, 11 and 12 added, which run again).
  const db = join(gw.dir, 'hookgate.db');
  const undo9 = ['disabled_at', 'disabled_reason', 'disabled_message', 'disable_after_exhausted', 'disable_after_failing_ms',
    'rate_limit_milli', 'max_concurrency']
    .map((c) => `ALTER TABLE webhooks DROP COLUMN ${c};`).join(' ');
  const undo12 = 'DROP TABLE webhook_lines; DROP INDEX deliveries_line; ALTER TABLE deliveries DROP COLUMN line;';
  execFileSync('sqlite3', [db, `DROP TABLE webhook_health; ${undo9} ${undo12} ALTER TABLE attempts DROP COLUMN request_headers; PRAGMA user_version = 7;`]);
  const again = await startGateway({ config: CONFIG, dir: gw.dir });
  gateways.push(again);
  const old = JSON.parse(await detailText(again, wh.id, d.id));
  assert.equal(old.attempts[0].requestHeaders, null);
  assert.deepEqual(old.payload, d.payload);
  // A new attempt (a replay) records its headers again.
  const r = await again.request('POST', `/v1/webhooks/${wh.id}/deliveries/${d.id}/replay`);
  assert.equal(r.status, 202, r.body);
  const replayed = await waitDelivery(again, wh.id, evt.id, (x) => x.attempts.length === 2 && x.status !== 'pending');
  assert.equal(replayed.attempts[0].requestHeaders, null);
  assert.equal(replayed.attempts[1].requestHeaders['webhook-id'], evt.id);
  const last = rx.received('/old').at(-1);
  assert.equal(replayed.attempts[1].requestHeaders['webhook-signature'], last.headers['webhook-signature']);
});
