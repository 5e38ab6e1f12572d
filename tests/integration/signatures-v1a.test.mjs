// signatures-v1a.test.mjs: asymmetric (Ed25519) signatures, the Standard
// Webhooks "v1a" scheme. Every signature is checked with Node's own
// Ed25519 (crypto.verify), independent of the gateway's libcrypto calls:
// the receiver knows only the webhook's `whpk_` public key.
//
// Run from the repository root: node --test tests/integration/signatures-v1a.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, verify as edVerify } from 'node:crypto';
import { haveStoreShell, storeQuery } from './lib/store.mjs';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver, failThen } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publishOk, waitDelivery, sleep, stopClean } from './lib/delivery.mjs';

const PK_RE = /^whpk_[A-Za-z0-9+/]{43}=$/;
const ENTRY_RE = /^v1a,[A-Za-z0-9+/]{86}==$/;
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

let rx;
let gw;
const answers = []; // every API answer's text: none may hold a private key

before(async () => {
  rx = await startReceiver();
  gw = await startGateway({ config: deliveryConfig() });
});

after(async () => {
  if (gw) await stopClean(gw);
  await rx?.close();
});

async function api(method, path, body) {
  const r = await gw.request(method, path, body === undefined ? {} : { body });
  answers.push(r.body);
  return r;
}

async function createV1a(path, events, more = {}) {
  const r = await api('POST', '/v1/webhooks', { url: rx.url(path), events, signatureScheme: 'v1a', ...more });
  assert.equal(r.status, 201, r.body);
  return r.json;
}

// The receiver's side: a KeyObject from the raw 32-byte key in `whpk_…`.
function publicKeyObject(whpk) {
  assert.match(whpk, PK_RE);
  const raw = Buffer.from(whpk.slice(5), 'base64');
  assert.equal(raw.length, 32);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

// The v1a entries of a request that verify with whpk (Node's Ed25519).
function verifiedEntries(whpk, req) {
  const key = publicKeyObject(whpk);
  const id = req.headers['webhook-id'];
  const ts = req.headers['webhook-timestamp'];
  const content = Buffer.concat([Buffer.from(`${id}.${ts}.`), req.body]);
  return req.headers['webhook-signature'].split(' ').filter((e) => {
    if (!e.startsWith('v1a,')) return false;
    return edVerify(null, content, key, Buffer.from(e.slice(4), 'base64'));
  });
}

const byId = (id, path) => (r) => r.headers['webhook-id'] === id && (path === undefined || r.path === path);

const HAVE_SQLITE = haveStoreShell();

// The signing keys the store holds for a webhook, read behind the
// gateway's back (with the store's shell, sqlite3 or psql), as [secret,
// public_key] pairs.
function storedKeys(whId) {
  const out = storeQuery(gw.dir,
    `SELECT secret || ' ' || COALESCE(public_key, '') FROM webhook_secrets WHERE webhook_id = '${whId}'`);
  return out.trim().split('\n').filter(Boolean).map((l) => l.split(' '));
}

test('a v1a webhook: public key on create and GET, no secret, and a delivery that verifies with it', async () => {
  const wh = await createV1a('/v1a/basic', ['user.created']);
  assert.equal(wh.signatureScheme, 'v1a');
  assert.equal(wh.secret, undefined, 'a v1a webhook has no secret in the answer');
  assert.match(wh.publicKey, PK_RE);
  assert.deepEqual(wh.publicKeys, [wh.publicKey]);
  const got = await api('GET', `/v1/webhooks/${wh.id}`);
  assert.equal(got.status, 200);
  assert.equal(got.json.signatureScheme, 'v1a');
  assert.equal(got.json.publicKey, wh.publicKey);
  assert.deepEqual(got.json.publicKeys, [wh.publicKey]);
  assert.equal(got.json.secret, undefined);
  const list = await api('GET', '/v1/webhooks?pageSize=100');
  const row = list.json.webhooks.find((w) => w.id === wh.id);
  assert.equal(row.publicKey, wh.publicKey);
  assert.deepEqual(row.publicKeys, [wh.publicKey]);

  const ev = await publishOk(gw, { type: 'user.created', data: { v1a: true } });
  const [req] = await rx.waitFor(byId(ev.id, '/v1a/basic'));
  const entries = req.headers['webhook-signature'].split(' ');
  assert.equal(entries.length, 1, req.headers['webhook-signature']);
  assert.match(entries[0], ENTRY_RE);
  assert.deepEqual(verifiedEntries(wh.publicKey, req), entries);
  // The signature covers the body, the id and the timestamp.
  assert.deepEqual(verifiedEntries(wh.publicKey, { ...req, body: Buffer.from(req.body.toString().replace('true', 'false')) }), []);
  assert.deepEqual(verifiedEntries(wh.publicKey, { ...req, headers: { ...req.headers, 'webhook-timestamp': '1' } }), []);
  // Another v1a webhook's key does not verify it.
  const other = await createV1a('/v1a/other', ['user.created']);
  assert.notEqual(other.publicKey, wh.publicKey);
  assert.deepEqual(verifiedEntries(other.publicKey, req), []);

  // The store holds the private key; its public half is the one answered
  // (and the logs and answers are checked for it at the end).
  if (HAVE_SQLITE) {
    const keys = storedKeys(wh.id);
    assert.equal(keys.length, 1);
    const [whsk, whpk] = keys[0];
    assert.match(whsk, /^whsk_[A-Za-z0-9+/]{43}=$/);
    assert.equal(whpk, wh.publicKey);
    const priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(whsk.slice(5), 'base64')]), format: 'der', type: 'pkcs8' });
    const derived = createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(12);
    assert.equal('whpk_' + derived.toString('base64'), wh.publicKey);
  }
});

test('signatureScheme: 422 for an unknown scheme, for a secret on a v1a webhook, and on PATCH', async () => {
  for (const bad of ['v2', 'V1A', '', 1, null]) {
    const r = await api('POST', '/v1/webhooks', { url: rx.url('/v1a/bad'), events: ['user.created'], signatureScheme: bad });
    assert.equal(r.status, 422, `${JSON.stringify(bad)}: ${r.body}`);
    assert.deepEqual(r.json.error.details.map((d) => d.field), ['signatureScheme']);
  }
  const secret = 'whsec_' + Buffer.alloc(32, 1).toString('base64');
  let r = await api('POST', '/v1/webhooks', { url: rx.url('/v1a/bad'), events: ['user.created'], signatureScheme: 'v1a', secret });
  assert.equal(r.status, 422, r.body);
  assert.deepEqual(r.json.error.details.map((d) => d.field), ['secret']);
  assert.ok(!r.body.includes(secret), 'the error does not echo the secret');

  const wh = await createV1a('/v1a/patch', ['user.created']);
  for (const scheme of ['v1', 'v1a']) {
    r = await api('PATCH', `/v1/webhooks/${wh.id}`, { signatureScheme: scheme });
    assert.equal(r.status, 422, r.body);
    assert.deepEqual(r.json.error.details.map((d) => d.field), ['signatureScheme']);
  }
  // Other changes keep the scheme and the key.
  r = await api('PATCH', `/v1/webhooks/${wh.id}`, { metadata: { a: 'b' } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.signatureScheme, 'v1a');
  assert.equal(r.json.publicKey, wh.publicKey);

  // v1 stays the default, and can be named.
  const v1 = await createWebhook(gw, rx, '/v1a/plain', ['user.created'], { signatureScheme: 'v1' });
  assert.equal(v1.signatureScheme, 'v1');
  assert.match(v1.secret, /^whsec_/);
  assert.equal(v1.publicKey, null);
  assert.deepEqual(v1.publicKeys, []);
});

test('rotation with a grace period: one v1a entry per key, each verifying with its public key; the old one stops after the grace', async () => {
  const wh = await createV1a('/v1a/rotate', ['user.updated']);
  const old = wh.publicKey;
  // 0.0008 h is 2.88 s: long enough for one delivery, short enough to wait out.
  const rot = await api('POST', `/v1/webhooks/${wh.id}/rotate-secret`, { gracePeriodHours: 0.0008 });
  assert.equal(rot.status, 200, rot.body);
  assert.deepEqual(Object.keys(rot.json).sort(), ['previousSecretExpiresAt', 'publicKey', 'publicKeys']);
  const fresh = rot.json.publicKey;
  assert.match(fresh, PK_RE);
  assert.notEqual(fresh, old);
  assert.deepEqual(rot.json.publicKeys, [fresh, old]);
  const got = await api('GET', `/v1/webhooks/${wh.id}`);
  assert.deepEqual(got.json.publicKeys, [fresh, old]);
  assert.equal(got.json.publicKey, fresh);

  const ev = await publishOk(gw, { type: 'user.updated', data: { n: 1 } });
  const [req] = await rx.waitFor(byId(ev.id, '/v1a/rotate'));
  const entries = req.headers['webhook-signature'].split(' ');
  assert.equal(entries.length, 2, req.headers['webhook-signature']);
  for (const e of entries) assert.match(e, ENTRY_RE);
  const byFresh = verifiedEntries(fresh, req);
  const byOld = verifiedEntries(old, req);
  assert.equal(byFresh.length, 1);
  assert.equal(byOld.length, 1);
  assert.notEqual(byFresh[0], byOld[0]);
  assert.equal(entries[0], byFresh[0], 'the current key signs first');

  // After the grace period: the new key alone.
  const left = Date.parse(rot.json.previousSecretExpiresAt) - Date.now();
  await sleep(Math.max(0, left) + 300);
  const after = await api('GET', `/v1/webhooks/${wh.id}`);
  assert.deepEqual(after.json.publicKeys, [fresh]);
  const ev2 = await publishOk(gw, { type: 'user.updated', data: { n: 2 } });
  const [req2] = await rx.waitFor(byId(ev2.id, '/v1a/rotate'));
  assert.equal(req2.headers['webhook-signature'].split(' ').length, 1, req2.headers['webhook-signature']);
  assert.equal(verifiedEntries(fresh, req2).length, 1);
  assert.equal(verifiedEntries(old, req2).length, 0);

  // gracePeriodHours 0 retires the key at once.
  const rot0 = await api('POST', `/v1/webhooks/${wh.id}/rotate-secret`, { gracePeriodHours: 0 });
  assert.equal(rot0.status, 200, rot0.body);
  assert.deepEqual(rot0.json.publicKeys, [rot0.json.publicKey]);
});

test('test deliveries, retries and replays sign the same way', async () => {
  const wh = await createV1a('/v1a/test', ['session.created']);
  const t = await api('POST', `/v1/webhooks/${wh.id}/test`, {});
  assert.equal(t.status, 200, t.body);
  assert.equal(t.json.success, true, t.body);
  const [treq] = await rx.waitFor((r) => r.path === '/v1a/test');
  assert.equal(verifiedEntries(wh.publicKey, treq).length, 1, treq.headers['webhook-signature']);

  rx.on('/v1a/retry', failThen(1));
  const wr = await createV1a('/v1a/retry', ['session.created']);
  const ev = await publishOk(gw, { type: 'session.created', data: { r: 1 } });
  const reqs = await rx.waitFor(byId(ev.id, '/v1a/retry'), { count: 2 });
  for (const r of reqs) assert.equal(verifiedEntries(wr.publicKey, r).length, 1);
  const d = await waitDelivery(gw, wr.id, ev.id);
  assert.equal(d.status, 'success');
  const rp = await api('POST', `/v1/webhooks/${wr.id}/deliveries/${d.id}/replay`);
  assert.equal(rp.status, 202, rp.body);
  const all = await rx.waitFor(byId(ev.id, '/v1a/retry'), { count: 3 });
  assert.equal(verifiedEntries(wr.publicKey, all[2]).length, 1, all[2].headers['webhook-signature']);
  assert.ok(all[2].body.equals(all[0].body));
});

test('a webhook transform runs first: the v1a signature covers the body as sent', async () => {
  const code = 'function(d) d.headers["X-Transformed"] = "1"; d.body = \'{"replaced":true}\' end';
  const wh = await createV1a('/v1a/transform', ['organization.created'], { transform: code });
  const ev = await publishOk(gw, { type: 'organization.created', data: { o: 1 } });
  const [req] = await rx.waitFor(byId(ev.id, '/v1a/transform'));
  assert.equal(req.headers['x-transformed'], '1');
  assert.equal(req.body.toString(), '{"replaced":true}');
  assert.equal(verifiedEntries(wh.publicKey, req).length, 1, req.headers['webhook-signature']);
});

test('the API and the logs never show a private key', async () => {
  assert.ok(answers.length > 10);
  for (const a of answers) assert.ok(!/whsk_/.test(a), `an answer holds a signing key: ${a}`);
  assert.ok(!/whsk_/.test(gw.logs()), 'the log holds a signing key');
  if (HAVE_SQLITE) {
    const keys = storeQuery(gw.dir, "SELECT secret FROM webhook_secrets WHERE secret LIKE 'whsk_%'").split('\n');
    assert.ok(keys.length >= 5, keys.join(' '));
    for (const k of keys) assert.ok(!gw.logs().includes(k.slice(5)), 'the log holds a key\'s base64');
  }
});
