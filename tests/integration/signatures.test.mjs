// signatures.test.mjs: what a receiver gets: the exact body bytes, the
// Standard Webhooks headers, and signatures that the reference verifier
// (the npm `standardwebhooks` package, pinned in tests/package.json) accepts
// with the webhook's secret, also across retries and secret rotation.
//
// Run from the repository root: node --test tests/integration/signatures.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate). Needs
// `cd tests && npm ci` first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver, failThen, ok } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publish, publishOk, waitDelivery, until, stopClean } from './lib/delivery.mjs';

const require = createRequire(new URL('../package.json', import.meta.url));
let Webhook;
try {
  ({ Webhook } = require('standardwebhooks'));
} catch (e) {
  throw new Error('the standardwebhooks package is missing: run "cd tests && npm ci" first (' + e.message + ')');
}
const VECTORS = JSON.parse(readFileSync(new URL('../data/signature-vectors.json', import.meta.url), 'utf8'));
// The version has one source: project(hookgate VERSION x.y.z) in CMakeLists.txt.
const VERSION = readFileSync(new URL('../../CMakeLists.txt', import.meta.url), 'utf8').match(/project\(hookgate VERSION (\d+\.\d+\.\d+)/)[1];

let rx;
let gw;

before(async () => {
  rx = await startReceiver();
  gw = await startGateway({ config: deliveryConfig() });
});

after(async () => {
  if (gw) await stopClean(gw);
  await rx?.close();
});

const sigHeaders = (r) => ({
  'webhook-id': r.headers['webhook-id'],
  'webhook-timestamp': r.headers['webhook-timestamp'],
  'webhook-signature': r.headers['webhook-signature'],
});

// Throws unless the reference verifier accepts the request with secret.
function verify(secret, r) {
  return new Webhook(secret).verify(r.body.toString('utf8'), sigHeaders(r));
}

function verifies(secret, r) {
  try {
    verify(secret, r);
    return true;
  } catch {
    return false;
  }
}

// Our own reading of the spec, independent of the verifier library.
function sign(secret, id, ts, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return 'v1,' + createHmac('sha256', key).update(`${id}.${ts}.`).update(body).digest('base64');
}

const byId = (id, path) => (r) => r.headers['webhook-id'] === id && (path === undefined || r.path === path);

test('the reference verifier and our signer agree on the shared vectors', () => {
  for (const v of VECTORS.standard_webhooks) {
    assert.equal(sign(v.secret, v.id, v.timestamp, Buffer.from(v.body)), v.signature);
    assert.equal(new Webhook(v.secret).sign(v.id, new Date(v.timestamp * 1000), v.body), v.signature);
  }
});

test('receivers get the exact body, the headers and a valid signature, the same at every endpoint', async () => {
  const a = await createWebhook(gw, rx, '/body/a', ['user.created']);
  const b = await createWebhook(gw, rx, '/body/b', ['user.*']);
  assert.match(a.secret, /^whsec_/);
  assert.notEqual(a.secret, b.secret);
  // Odd but valid JSON for data: spacing, key order, number forms and
  // escapes must reach the receiver byte for byte.
  const data = '{ "z":1,  "a" : [1.50, 2e3, -0.0, "\\u00e9\\n", "é"], "nested":{"k":null,"t":true} }';
  const sent = Date.now();
  const r = await publish(gw, `{"data":${data},"type":"user.created"}`);
  assert.equal(r.status, 202, r.body);
  const id = r.json.id;
  const got = await rx.waitFor(byId(id), { count: 2 });

  for (const req of got) {
    const body = req.body.toString('utf8');
    const m = body.match(/^\{"type":"user\.created","timestamp":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)","data":(.*)\}$/s);
    assert.ok(m, `body: ${body}`);
    assert.equal(m[2], data);
    const ts = Date.parse(m[1]);
    assert.ok(ts >= sent - 1000 && ts <= Date.now() + 1000, `event timestamp ${m[1]}`);
    assert.equal(req.method, 'POST');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['user-agent'], `hookgate/${VERSION}`);
    assert.equal(req.headers['webhook-id'], id);
    const wts = Number(req.headers['webhook-timestamp']);
    assert.ok(Number.isInteger(wts) && /^\d+$/.test(req.headers['webhook-timestamp']));
    assert.ok(Math.abs(wts - req.at / 1000) <= 2, `webhook-timestamp ${wts} vs arrival ${req.at}`);
    assert.match(req.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]{43}=$/);
  }
  const [ra, rb] = [got.find((x) => x.path === '/body/a'), got.find((x) => x.path === '/body/b')];
  assert.ok(ra && rb);
  assert.ok(ra.body.equals(rb.body), 'the same bytes at both endpoints');

  // The reference verifier accepts each with its own webhook's secret only.
  const parsed = verify(a.secret, ra);
  assert.equal(parsed.type, 'user.created');
  verify(b.secret, rb);
  assert.throws(() => verify(b.secret, ra));
  assert.throws(() => verify(a.secret, rb));
  assert.equal(ra.headers['webhook-signature'], sign(a.secret, id, ra.headers['webhook-timestamp'], ra.body));
  // A flipped body byte fails: the signature covers the body.
  const tampered = { ...ra, body: Buffer.from(ra.body.toString().replace('"z":1', '"z":2')) };
  assert.throws(() => verify(a.secret, tampered));
});

test('retries send the same bytes and webhook-id, each attempt signed with its own timestamp', async () => {
  rx.on('/retry', failThen(2));
  const wh = await createWebhook(gw, rx, '/retry', ['session.created']);
  const ev = await publishOk(gw, { type: 'session.created', data: { s: 'retry me' } });
  const got = await rx.waitFor('/retry', { count: 3 });
  const d = await waitDelivery(gw, wh.id, ev.id);
  assert.equal(d.status, 'success');
  assert.equal(got.length, 3);
  for (const req of got) {
    assert.equal(req.headers['webhook-id'], ev.id);
    assert.ok(req.body.equals(got[0].body));
    verify(wh.secret, req);
    assert.equal(req.headers['webhook-signature'], sign(wh.secret, ev.id, req.headers['webhook-timestamp'], req.body));
    assert.ok(Math.abs(Number(req.headers['webhook-timestamp']) - req.at / 1000) <= 2);
  }
});

test('rotate-secret with a grace period: two v1 signatures, either secret verifies', async () => {
  const wh = await createWebhook(gw, rx, '/rotate/grace', ['user.updated']);
  const old = wh.secret;
  const rot = await gw.request('POST', `/v1/webhooks/${wh.id}/rotate-secret`, { body: { gracePeriodHours: 1 } });
  assert.equal(rot.status, 200, rot.body);
  const fresh = rot.json.secret;
  assert.match(fresh, /^whsec_/);
  assert.notEqual(fresh, old);
  const exp = Date.parse(rot.json.previousSecretExpiresAt);
  assert.ok(Math.abs(exp - (Date.now() + 3600e3)) < 60e3, `previousSecretExpiresAt ${rot.json.previousSecretExpiresAt}`);

  const ev = await publishOk(gw, { type: 'user.updated', data: { x: 1 } });
  const [req] = await rx.waitFor(byId(ev.id, '/rotate/grace'));
  const sigs = req.headers['webhook-signature'].split(' ');
  assert.equal(sigs.length, 2, req.headers['webhook-signature']);
  for (const s of sigs) assert.match(s, /^v1,[A-Za-z0-9+/]{43}=$/);
  const ts = req.headers['webhook-timestamp'];
  assert.deepEqual(sigs.slice().sort(), [sign(old, ev.id, ts, req.body), sign(fresh, ev.id, ts, req.body)].sort());
  assert.ok(verifies(old, req), 'the old secret verifies during the grace period');
  assert.ok(verifies(fresh, req), 'the new secret verifies');
  assert.ok(!verifies('whsec_' + Buffer.alloc(32, 7).toString('base64'), req), 'an unrelated secret does not');
});

test('rotate-secret with gracePeriodHours 0: only the new secret verifies', async () => {
  const wh = await createWebhook(gw, rx, '/rotate/now', ['user.deleted']);
  const old = wh.secret;
  const rot = await gw.request('POST', `/v1/webhooks/${wh.id}/rotate-secret`, { body: { gracePeriodHours: 0 } });
  assert.equal(rot.status, 200, rot.body);
  const fresh = rot.json.secret;
  const ev = await publishOk(gw, { type: 'user.deleted', data: {} });
  const [req] = await rx.waitFor(byId(ev.id, '/rotate/now'));
  assert.equal(req.headers['webhook-signature'].split(' ').length, 1, req.headers['webhook-signature']);
  assert.ok(verifies(fresh, req));
  assert.ok(!verifies(old, req), 'the old secret no longer verifies');
});

test('a retry after a rotation is signed with the new secret', async () => {
  // The first attempt fails with the old secret in force; the rotation
  // happens before the retry (paused by a 429 with Retry-After).
  rx.on('/rotate/retry', [{ status: 429, headers: { 'retry-after': '3' }, body: '' }, ok()]);
  const wh = await createWebhook(gw, rx, '/rotate/retry', ['mfa.enrolled']);
  const ev = await publishOk(gw, { type: 'mfa.enrolled', data: {} });
  const [first] = await rx.waitFor('/rotate/retry');
  assert.ok(verifies(wh.secret, first));
  const rot = await gw.request('POST', `/v1/webhooks/${wh.id}/rotate-secret`, { body: { gracePeriodHours: 0 } });
  assert.equal(rot.status, 200);
  const got = await rx.waitFor('/rotate/retry', { count: 2 });
  await until(async () => (await waitDelivery(gw, wh.id, ev.id)).status === 'success');
  assert.equal(got[1].headers['webhook-id'], ev.id);
  assert.ok(got[1].body.equals(first.body));
  assert.ok(verifies(rot.json.secret, got[1]));
  assert.ok(!verifies(wh.secret, got[1]));
});
