// The SDK's Standard Webhooks verification (verifyWebhook, signWebhook)
// against tests/data/signature-vectors.json (the vectors the gateway's own
// signature tests use) and against the `standardwebhooks` package as an
// independent implementation. Deliveries of a real gateway are verified in
// deliveries.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { sdk } from './lib/sdk.mjs';

const { verifyWebhook, signWebhook, WebhookVerificationError } = sdk;
const vectors = JSON.parse(readFileSync(new URL('../data/signature-vectors.json', import.meta.url), 'utf8'));
const require = createRequire(new URL('../package.json', import.meta.url));
const { Webhook: StandardWebhook } = await import(require.resolve('standardwebhooks'));

const headersOf = (v, signature = v.signature) => ({
  'webhook-id': v.id,
  'webhook-timestamp': String(v.timestamp),
  'webhook-signature': signature,
});

function rejects(fn, reason) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof WebhookVerificationError, `not a WebhookVerificationError: ${e}`);
    assert.equal(e.name, 'WebhookVerificationError');
    assert.equal(e.reason, reason, e.message);
    return true;
  });
}

test('every Standard Webhooks vector verifies, and signWebhook reproduces its signature', () => {
  assert.ok(vectors.standard_webhooks.length >= 2);
  for (const v of vectors.standard_webhooks) {
    const ev = verifyWebhook(v.body, headersOf(v), v.secret, { now: v.timestamp });
    assert.deepEqual(ev, JSON.parse(v.body));
    // bytes, a fetch Headers object and header names in another case work too
    verifyWebhook(Buffer.from(v.body), new Headers(headersOf(v)), v.secret, { now: v.timestamp });
    const upper = Object.fromEntries(Object.entries(headersOf(v)).map(([k, x]) => [k.toUpperCase(), x]));
    verifyWebhook(new TextEncoder().encode(v.body), upper, v.secret, { now: v.timestamp });
    const h = signWebhook({ id: v.id, timestamp: v.timestamp, body: v.body, secret: v.secret });
    assert.deepEqual(h, headersOf(v));
  }
});

test('the rejections the vectors list', () => {
  const v = vectors.standard_webhooks[0];
  const now = { now: v.timestamp };
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
    const h = headersOf(v);
    delete h[name];
    rejects(() => verifyWebhook(v.body, h, v.secret, now), 'missing_header');
  }
  rejects(() => verifyWebhook(v.body, { ...headersOf(v), 'webhook-timestamp': 'hello' }, v.secret, now), 'invalid_timestamp');
  rejects(() => verifyWebhook(v.body, headersOf(v), v.secret, { now: v.timestamp + 301 }), 'timestamp_too_old');
  rejects(() => verifyWebhook(v.body, headersOf(v), v.secret, { now: v.timestamp - 301 }), 'timestamp_too_new');
  // exactly at the tolerance is still accepted; a tolerance of our own is honoured
  verifyWebhook(v.body, headersOf(v), v.secret, { now: v.timestamp + 300 });
  verifyWebhook(v.body, headersOf(v), v.secret, { now: v.timestamp + 3000, toleranceSeconds: 3600 });
  rejects(() => verifyWebhook(v.body, headersOf(v), v.secret, { now: v.timestamp + 11, toleranceSeconds: 10 }), 'timestamp_too_old');
  // one character off (the vectors' own example)
  assert.ok(v.signature.endsWith('OLJ1OE='));
  rejects(() => verifyWebhook(v.body, headersOf(v, v.signature.replace(/OE=$/, 'OA=')), v.secret, now), 'invalid_signature');
  // a changed body, id or timestamp
  rejects(() => verifyWebhook(v.body + ' ', headersOf(v), v.secret, now), 'invalid_signature');
  rejects(() => verifyWebhook(v.body, { ...headersOf(v), 'webhook-id': v.id + 'x' }, v.secret, now), 'invalid_signature');
  rejects(() => verifyWebhook(v.body, { ...headersOf(v), 'webhook-timestamp': String(v.timestamp + 1) }, v.secret, now), 'invalid_signature');
  // the wrong secret
  rejects(() => verifyWebhook(v.body, headersOf(v), vectors.standard_webhooks[1].secret, now), 'invalid_signature');
  // an empty secret, or the prefix alone
  rejects(() => verifyWebhook(v.body, headersOf(v), '', now), 'invalid_secret');
  rejects(() => verifyWebhook(v.body, headersOf(v), 'whsec_', now), 'invalid_secret');
  rejects(() => verifyWebhook(v.body, headersOf(v), [], now), 'invalid_secret');
  // another scheme's entry with the same bytes is not a v1 signature
  rejects(() => verifyWebhook(v.body, headersOf(v, v.signature.replace(/^v1,/, 'v1a,')), v.secret, now), 'invalid_signature');
  rejects(() => verifyWebhook(v.body, headersOf(v, v.signature.slice(3)), v.secret, now), 'invalid_signature');
  // a body that verifies but is not JSON
  const h = signWebhook({ id: 'msg_1', timestamp: 100, body: 'not json', secret: v.secret });
  rejects(() => verifyWebhook('not json', h, v.secret, { now: 100 }), 'invalid_body');
});

test('rotation: several signatures in the header, several secrets on our side', () => {
  const [a, b] = vectors.standard_webhooks.map((v) => v.secret);
  const body = '{"type":"user.created","timestamp":"2026-11-27T06:20:04.878Z","data":{"userId":"usr_1"}}';
  const both = signWebhook({ id: 'evt_1', timestamp: 1700000000, body, secret: [b, a] });
  assert.equal(both['webhook-signature'].split(' ').length, 2);
  const now = { now: 1700000000 };
  // a receiver that knows either secret (or both) accepts
  assert.equal(verifyWebhook(body, both, a, now).data.userId, 'usr_1');
  verifyWebhook(body, both, b, now);
  verifyWebhook(body, both, [a, b], now);
  // a receiver that has the new secret besides an unrelated old one
  const onlyA = signWebhook({ id: 'evt_1', timestamp: 1700000000, body, secret: a });
  verifyWebhook(body, onlyA, ['whsec_' + Buffer.alloc(32, 7).toString('base64'), a], now);
  // unknown entries around the good one are skipped
  verifyWebhook(body, { ...onlyA, 'webhook-signature': `v2,abc v1,${'A'.repeat(44)} ${onlyA['webhook-signature']}` }, a, now);
  rejects(() => verifyWebhook(body, onlyA, b, now), 'invalid_signature');
  // secrets without the whsec_ prefix are the same key
  verifyWebhook(body, onlyA, a.slice(6), now);
});

test('agrees with the standardwebhooks package both ways', () => {
  for (let i = 0; i < 50; i++) {
    const secret = 'whsec_' + Buffer.from(Array.from({ length: 24 + (i % 41) }, (_, j) => (i * 31 + j * 7) & 255)).toString('base64');
    const body = JSON.stringify({ type: 'user.updated', timestamp: new Date().toISOString(), data: { i, s: 'é'.repeat(i) } });
    const id = `evt_${i}`;
    const ts = new Date();
    const theirs = new StandardWebhook(secret).sign(id, ts, body);
    const h = { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(ts.getTime() / 1000)), 'webhook-signature': theirs };
    assert.deepEqual(verifyWebhook(body, h, secret), JSON.parse(body));
    const ours = signWebhook({ id, body, secret, timestamp: Math.floor(ts.getTime() / 1000) });
    assert.equal(ours['webhook-signature'], theirs);
    assert.deepEqual(new StandardWebhook(secret).verify(body, ours), JSON.parse(body));
  }
});

// v1a: Ed25519 key pairs and signatures made here with Node's crypto, the
// public key given to verifyWebhook as the gateway answers it (`whpk_` and
// the base64 of the 32 raw bytes).
const { generateKeyPairSync, sign: edSign } = await import('node:crypto');

function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  return { whpk: 'whpk_' + raw.toString('base64'), privateKey };
}

function v1aEntry(privateKey, id, ts, body) {
  return 'v1a,' + edSign(null, Buffer.from(`${id}.${ts}.${body}`), privateKey).toString('base64');
}

test('v1a: a whpk_ public key verifies Ed25519 entries, during a rotation too, and nothing else', () => {
  const body = JSON.stringify({ type: 'user.created', timestamp: '2023-11-14T22:13:20.000Z', data: { userId: 'usr_1' } });
  const now = { now: 1700000000 };
  const [k1, k2, k3] = [keyPair(), keyPair(), keyPair()];
  const h = (sig) => ({ 'webhook-id': 'evt_1', 'webhook-timestamp': '1700000000', 'webhook-signature': sig });
  const s1 = v1aEntry(k1.privateKey, 'evt_1', 1700000000, body);
  const s2 = v1aEntry(k2.privateKey, 'evt_1', 1700000000, body);
  assert.equal(verifyWebhook(body, h(s1), k1.whpk, now).data.userId, 'usr_1');
  verifyWebhook(Buffer.from(body), h(s1), [k3.whpk, k1.whpk], now);
  // a rotation's header: either key, or both, verify
  verifyWebhook(body, h(`${s2} ${s1}`), k1.whpk, now);
  verifyWebhook(body, h(`${s2} ${s1}`), k2.whpk, now);
  rejects(() => verifyWebhook(body, h(`${s2} ${s1}`), k3.whpk, now), 'invalid_signature');
  // the signature covers the body, the id and the timestamp
  rejects(() => verifyWebhook(body + ' ', h(s1), k1.whpk, now), 'invalid_signature');
  rejects(() => verifyWebhook(body, { ...h(s1), 'webhook-id': 'evt_2' }, k1.whpk, now), 'invalid_signature');
  rejects(() => verifyWebhook(body, { ...h(s1), 'webhook-timestamp': '1700000001' }, k1.whpk, now), 'invalid_signature');
  // a v1 entry never satisfies a public key, a v1a entry never a secret
  const secret = 'whsec_' + Buffer.alloc(32, 3).toString('base64');
  const v1 = signWebhook({ id: 'evt_1', timestamp: 1700000000, body, secret })['webhook-signature'];
  rejects(() => verifyWebhook(body, h(v1), k1.whpk, now), 'invalid_signature');
  rejects(() => verifyWebhook(body, h(s1), secret, now), 'invalid_signature');
  // a receiver migrating from v1 to v1a may hold both
  verifyWebhook(body, h(v1), [k1.whpk, secret], now);
  verifyWebhook(body, h(s1), [secret, k1.whpk], now);
  // a v1a entry under another version name is not taken
  rejects(() => verifyWebhook(body, h(s1.replace('v1a,', 'v2,')), k1.whpk, now), 'invalid_signature');
  // malformed public keys
  for (const bad of ['whpk_', 'whpk_AAAA', 'whpk_' + Buffer.alloc(31).toString('base64'), 'whpk_not base64!']) {
    rejects(() => verifyWebhook(body, h(s1), bad, now), 'invalid_secret');
  }
  // the timestamp rules are the same
  rejects(() => verifyWebhook(body, h(s1), k1.whpk, { now: 1700000000 + 301 }), 'timestamp_too_old');
});
