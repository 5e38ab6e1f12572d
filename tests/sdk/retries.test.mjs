// Retries, timeouts and aborts of the SDK, against a small scripted HTTP
// server run in this test (it answers 503 then 200, 429 with Retry-After,
// hangs, or resets the connection): only idempotent calls are retried (GET,
// pause/resume, and publishing with an Idempotency-Key or event ids).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { sdk } from './lib/sdk.mjs';

const {
  HookgateClient, Transport, ServerError, RateLimitedError, TimeoutError, ConnectionError, AbortedError,
  HookgateError, parseRetryAfter,
} = sdk;

// script: array of behaviours, one per request in order (the last repeats):
// { status, body, headers } | { hang: true } | { reset: true }
let script = [];
let seen = [];
let server;
let base;
const sockets = new Set();

before(async () => {
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const n = seen.length;
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() });
      const b = script[Math.min(n, script.length - 1)] || { status: 200, body: '{}' };
      if (b.hang) return;
      if (b.reset) {
        req.socket.destroy();
        return;
      }
      res.writeHead(b.status, { 'content-type': 'application/json', ...(b.headers || {}) });
      res.end(b.body ?? '');
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

const serve = (...behaviours) => {
  script = behaviours;
  seen = [];
};
const unavailable = (headers = {}) => ({
  status: 503, headers,
  body: JSON.stringify({ error: { type: 'unavailable', message: 'try later', details: [] } }),
});
const okJson = (obj) => ({ status: 200, body: JSON.stringify(obj) });
const fast = (more = {}) =>
  new HookgateClient({ baseUrl: base, apiKey: 'hg_k', retry: { initialDelayMs: 10, maxDelayMs: 40 }, ...more });

test('a GET answered 503 then 200 is retried and succeeds', async () => {
  serve(unavailable(), okJson({ eventTypes: ['user.created'] }));
  const r = await fast().admin.listEventTypes();
  assert.deepEqual(r, { eventTypes: ['user.created'] });
  assert.equal(seen.length, 2);
  assert.ok(seen.every((s) => s.method === 'GET' && s.url === '/v1/event-types'));
  assert.equal(seen[1].headers.authorization, 'Bearer hg_k');
});

test('every 5xx and 429 is retried on GET, up to maxRetries, then thrown with its status', async () => {
  for (const code of [500, 502, 504, 429]) {
    serve({ status: code, body: '' }, okJson({ paused: false, queued: 0, inFlight: 0 }));
    assert.equal((await fast().admin.getDeliveryState()).paused, false);
    assert.equal(seen.length, 2, `status ${code}`);
  }
  serve(unavailable({ 'retry-after': '0' }));
  const err = await fast({ retry: { maxRetries: 3, initialDelayMs: 5 } }).admin.getWebhook({ webhookId: 'wh_x' }).catch((e) => e);
  assert.ok(err instanceof ServerError);
  assert.ok(err instanceof HookgateError);
  assert.equal(err.status, 503);
  assert.equal(err.type, 'unavailable');
  assert.equal(err.retryAfter, 0);
  assert.equal(seen.length, 4);
  // a proxy's non-JSON 502 page still makes a ServerError
  serve({ status: 502, body: '<html>bad gateway</html>', headers: { 'content-type': 'text/html' } });
  const e502 = await fast({ retry: { maxRetries: 0 } }).admin.listWebhooks().catch((e) => e);
  assert.ok(e502 instanceof ServerError);
  assert.equal(e502.type, 'http_502');
  assert.match(e502.message, /502/);
});

test('Retry-After on 429 is honoured; RateLimitedError carries retryAfter', async () => {
  serve({ status: 429, headers: { 'retry-after': '1' }, body: '' }, okJson({ webhooks: [], nextPageToken: null }));
  const t0 = Date.now();
  await fast().admin.listWebhooks();
  assert.equal(seen.length, 2);
  const waited = seen[1].at - seen[0].at;
  assert.ok(waited >= 950, `waited ${waited} ms`);

  serve({ status: 429, headers: { 'retry-after': '7' }, body: JSON.stringify({ error: { type: 'rate_limited', message: 'slow down', details: [] } }) });
  const e = await fast({ retry: { maxRetries: 0 } }).admin.listWebhooks().catch((x) => x);
  assert.ok(e instanceof RateLimitedError, e.name);
  assert.equal(e.status, 429);
  assert.equal(e.retryAfter, 7);
  assert.equal(e.message, 'slow down');
  // a Retry-After beyond maxRetryAfterMs is not waited for
  serve({ status: 429, headers: { 'retry-after': '3600' }, body: '' });
  const t1 = Date.now();
  const e2 = await fast().admin.listWebhooks().catch((x) => x);
  assert.ok(e2 instanceof RateLimitedError);
  assert.equal(e2.retryAfter, 3600);
  assert.equal(seen.length, 1);
  assert.ok(Date.now() - t1 < 1000);
  assert.ok(t0 <= t1);
});

test('non-idempotent calls are not retried; publishing with an Idempotency-Key or event ids is', async () => {
  const c = fast();
  const wh = { id: 'wh_1', url: 'https://a.test', events: ['*'] };
  const calls = [
    () => c.admin.createWebhook({ url: 'https://a.test', events: ['*'] }),
    () => c.admin.updateWebhook({ webhookId: 'wh_1', active: false }),
    () => c.admin.deleteWebhook({ webhookId: 'wh_1' }),
    () => c.admin.rotateWebhookSecret({ webhookId: 'wh_1' }),
    () => c.admin.testWebhook({ webhookId: 'wh_1' }),
    () => c.admin.replayWebhookDelivery({ webhookId: 'wh_1', deliveryId: 'del_1' }),
    () => c.admin.reload(),
    () => c.admin.publishEvent({ type: 'user.created', data: {} }),
    () => c.admin.publishEvents({ events: [{ type: 'user.created', data: {}, id: 'a' }, { type: 'user.created', data: {} }] }),
  ];
  for (const call of calls) {
    serve(unavailable(), okJson(wh));
    await assert.rejects(call, ServerError);
    assert.equal(seen.length, 1, `${call} was retried`);
  }

  serve(unavailable(), okJson({ id: 'evt_1', deliveries: 2 }));
  const r = await c.admin.publishEvent({ type: 'user.created', data: { a: 1 }, idempotencyKey: 'signup-8812' });
  assert.deepEqual(r, { id: 'evt_1', deliveries: 2, idempotentReplayed: false });
  assert.equal(seen.length, 2);
  for (const s of seen) {
    assert.equal(s.method, 'POST');
    assert.equal(s.headers['idempotency-key'], 'signup-8812');
    assert.equal(s.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(s.body), { type: 'user.created', data: { a: 1 } });
  }
  serve(unavailable(), { status: 202, headers: { 'idempotent-replayed': 'true' }, body: JSON.stringify({ id: 'own-1', deliveries: 0 }) });
  assert.equal((await c.admin.publishEvent({ type: 'user.created', data: {}, id: 'own-1' })).idempotentReplayed, true);
  assert.equal(seen.length, 2);
  serve(unavailable(), okJson({ events: [{ id: 'a', deliveries: 0 }] }));
  await c.admin.publishEvents({ events: [{ type: 'user.created', data: {}, id: 'a' }] });
  assert.equal(seen.length, 2);
  // pause and resume change nothing when repeated: retried
  serve(unavailable(), okJson({ paused: true, queued: 0, inFlight: 0 }));
  await c.admin.pauseDelivery();
  assert.equal(seen.length, 2);
});

test('a connection reset is retried on idempotent calls; a refused connection ends in ConnectionError', async () => {
  serve({ reset: true }, okJson({ plugins: [], available: [] }));
  assert.deepEqual(await fast().admin.listPlugins(), { plugins: [], available: [] });
  assert.equal(seen.length, 2);

  serve({ reset: true }, okJson({}));
  await assert.rejects(() => fast().admin.createWebhook({ url: 'https://a.test', events: ['*'] }), ConnectionError);
  assert.equal(seen.length, 1);

  // a port nothing listens on any more
  const gone = http.createServer();
  await new Promise((r) => gone.listen(0, '127.0.0.1', r));
  const port = gone.address().port;
  await new Promise((r) => gone.close(r));
  const refused = new HookgateClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'k', retry: { initialDelayMs: 5 } });
  const e = await refused.admin.listWebhooks().catch((x) => x);
  assert.ok(e instanceof ConnectionError, e.name);
  assert.equal(e.status, 0);
  assert.equal(e.type, 'connection_error');
  assert.match(e.message, /ECONNREFUSED/);
});

test('timeoutMs: a hanging answer throws TimeoutError; a GET is tried again first', async () => {
  serve({ hang: true });
  const t0 = Date.now();
  const e = await fast({ timeoutMs: 300, retry: { maxRetries: 1, initialDelayMs: 10 } }).admin.listWebhooks().catch((x) => x);
  const took = Date.now() - t0;
  assert.ok(e instanceof TimeoutError, `${e.name}: ${e.message}`);
  assert.equal(e.status, 0);
  assert.equal(e.type, 'timeout');
  assert.equal(e.timeoutMs, 300);
  assert.equal(seen.length, 2);
  assert.ok(took >= 600 && took < 5000, `took ${took} ms`);

  // per call, and not retried for a POST without idempotency
  serve({ hang: true });
  const t1 = Date.now();
  const e2 = await fast().admin.testWebhook({ webhookId: 'wh_1' }, { timeoutMs: 200 }).catch((x) => x);
  assert.ok(e2 instanceof TimeoutError);
  assert.equal(e2.timeoutMs, 200);
  assert.equal(seen.length, 1);
  assert.ok(Date.now() - t1 < 3000);
  // a slow answer within the timeout is fine
  serve(okJson({ status: 'ok' }));
  assert.deepEqual(await fast({ timeoutMs: 2000 }).health(), { status: 'ok' });
});

test('the caller\'s AbortSignal stops the call (also while it waits to retry) with AbortedError', async () => {
  serve({ hang: true });
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(), 100);
  const e = await fast().admin.listWebhooks({}, { signal: ctl.signal }).catch((x) => x);
  assert.ok(e instanceof AbortedError, `${e.name}: ${e.message}`);
  assert.equal(seen.length, 1);

  serve(unavailable({ 'retry-after': '30' }));
  const ctl2 = new AbortController();
  setTimeout(() => ctl2.abort(), 200);
  const t0 = Date.now();
  const e2 = await fast({ retry: { maxRetryAfterMs: 60000 } }).admin.listWebhooks({}, { signal: ctl2.signal }).catch((x) => x);
  assert.ok(e2 instanceof AbortedError, `${e2.name}: ${e2.message}`);
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(seen.length, 1);

  const done = AbortSignal.abort();
  await assert.rejects(() => fast().admin.listWebhooks({}, { signal: done }), AbortedError);
});

test('backoff grows exponentially with jitter in its upper half; Retry-After dates parse', () => {
  const t = new Transport({ baseUrl: base, retry: { initialDelayMs: 100, maxDelayMs: 1000 } });
  for (let n = 0; n < 8; n++) {
    const cap = Math.min(1000, 100 * 2 ** n);
    const values = Array.from({ length: 200 }, () => t.backoff(n));
    assert.ok(values.every((v) => v >= cap / 2 && v <= cap), `retry ${n}`);
    assert.ok(new Set(values).size > 100, 'jittered');
  }
  const now = Date.parse('2026-12-07T06:00:00Z');
  assert.equal(parseRetryAfter('120', now), 120);
  assert.equal(parseRetryAfter('Mon, 07 Dec 2026 06:00:30 GMT', now), 30);
  assert.equal(parseRetryAfter('Mon, 07 Dec 2026 05:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), null);
  assert.equal(parseRetryAfter('-5', now), null);
  assert.equal(parseRetryAfter(null, now), null);
});
