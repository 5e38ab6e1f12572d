// delivery.test.mjs: the dispatcher against a scripted receiver: retries
// and the statuses they end in, what each attempt records (GET
// /v1/webhooks/{id}/deliveries/{deliveryId}), Retry-After, 410 Gone,
// timeouts, resets, redirects, the delivery log's filters and pages, HTTPS
// receivers with a private CA, the SSRF guard, test sends, replays, and
// pausing delivery.
//
// Tests share one gateway where the config allows; each scenario has its own
// organization, so its events reach only its own webhook.
//
// Run from the repository root: node --test tests/integration/delivery.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate). Needs
// `cd tests && npm ci` first (the standardwebhooks verifier).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createRequire } from 'node:module';
import { startGateway } from './lib/gateway.mjs';
import {
  startReceiver, ok, status, hang, reset, slow, redirect, gone, tooMany, failThen,
} from './lib/receiver.mjs';
import {
  deliveryConfig, SCHEDULE, createWebhook, publishOk, listDeliveries, getDelivery, waitDelivery, until, sleep,
  stopClean, errorFields,
} from './lib/delivery.mjs';

const { Webhook } = createRequire(new URL('../package.json', import.meta.url))('standardwebhooks');

const MAX_RESPONSE_BODY = 64;
let rx;
let gw;
const extraGateways = [];

before(async () => {
  rx = await startReceiver();
  gw = await startGateway({ config: deliveryConfig({ extra: `max_response_body = ${MAX_RESPONSE_BODY}` }) });
});

after(async () => {
  for (const g of extraGateways) await stopClean(g);
  if (gw) await stopClean(gw);
  await rx?.close();
});

async function extraGateway(opts) {
  const g = await startGateway({ config: deliveryConfig(opts) });
  extraGateways.push(g);
  return g;
}

// A webhook of its own (organization = name) at receiver path /name with
// the given script; send(data) publishes an event only it receives.
async function scenario(name, script, { g = gw, r = rx, type = 'user.created' } = {}) {
  const path = '/' + name;
  if (script) r.on(path, script);
  const wh = await createWebhook(g, r, path, ['*'], { organizationId: name });
  const send = async (data = {}, t = type) => {
    const ev = await publishOk(g, { type: t, data, organizationId: name });
    assert.equal(ev.deliveries, 1);
    return ev;
  };
  return { wh, path, send, g };
}

function closedPort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test('500 then 200: success after 2 attempts, both recorded', async () => {
  const s = await scenario('fail-once', failThen(1, status(500, { body: 'boom' })));
  const ev = await s.send({ n: 1 });
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'success');
  assert.equal(d.statusCode, 200);
  assert.equal(d.eventId, ev.id);
  assert.equal(d.event, 'user.created');
  assert.equal(d.nextAttemptAt, null);
  assert.equal(d.attempts.length, 2);
  const [a1, a2] = d.attempts;
  assert.equal(a1.attempt, 1);
  assert.equal(a1.statusCode, 500);
  assert.equal(a1.responseBody, 'boom');
  assert.equal(a1.error, 'HTTP 500');
  assert.ok(Number.isInteger(a1.durationMs) && a1.durationMs >= 0);
  assert.equal(a2.attempt, 2);
  assert.equal(a2.statusCode, 200);
  assert.equal(a2.responseBody, 'ok');
  assert.equal(a2.error, null);
  // The second attempt followed the schedule (0.2 s), not at once.
  assert.ok(Date.parse(a2.startedAt) - Date.parse(a1.startedAt) >= SCHEDULE[1] * 1000 - 20, JSON.stringify(d.attempts));
  const got = rx.received(s.path);
  assert.equal(got.length, 2);
  assert.ok(got[1].body.equals(got[0].body));
});

test('always 500: failed after one attempt per schedule entry', async () => {
  const s = await scenario('always-500', status(500, { body: 'down' }));
  const ev = await s.send();
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'failed');
  assert.equal(d.statusCode, 500);
  assert.equal(d.nextAttemptAt, null);
  assert.equal(d.attempts.length, SCHEDULE.length);
  assert.deepEqual(d.attempts.map((a) => a.attempt), SCHEDULE.map((_, i) => i + 1));
  for (const a of d.attempts) {
    assert.equal(a.statusCode, 500);
    assert.equal(a.responseBody, 'down');
    assert.match(a.error, /500/);
  }
  // Every attempt reached the receiver, and no more than that.
  assert.equal(rx.received(s.path).length, SCHEDULE.length);
  const list = await listDeliveries(gw, s.wh.id);
  assert.equal(list.deliveries[0].attempts, SCHEDULE.length);
  assert.equal(list.deliveries[0].status, 'failed');
});

test('a receiver that hangs past the timeout: the attempt records a timeout', async () => {
  const s = await scenario('hang', [hang(), ok()]);
  const ev = await s.send();
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'success', JSON.stringify(d));
  assert.equal(d.attempts.length, 2);
  assert.match(d.attempts[0].error, /timeout|timed out/i);
  assert.equal(d.attempts[0].statusCode, null);
  // timeout = 1 s.
  assert.ok(d.attempts[0].durationMs >= 900 && d.attempts[0].durationMs < 5000, `${d.attempts[0].durationMs} ms`);
});

test('a receiver that resets the connection: each attempt records an error', async () => {
  // Always reset: the HTTP client resends once, by design, a request whose
  // reused keep-alive connection died before any response byte, so a single
  // reset may be absorbed; every attempt resetting cannot be.
  const s = await scenario('reset', reset());
  const ev = await s.send();
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'failed', JSON.stringify(d));
  assert.equal(d.attempts.length, SCHEDULE.length);
  for (const a of d.attempts) {
    assert.equal(a.statusCode, null);
    assert.equal(typeof a.error, 'string');
    assert.match(a.error, /reset|closed|eof|connection/i);
  }
  const n = rx.received(s.path).length;
  assert.ok(n >= SCHEDULE.length && n <= 2 * SCHEDULE.length, `${n} requests`);
});

test('a 302 is a failed attempt and is not followed', async () => {
  const s = await scenario('redirect', [redirect(rx.url('/redirect-target')), ok()]);
  const ev = await s.send();
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'success');
  assert.equal(d.attempts[0].statusCode, 302);
  assert.match(d.attempts[0].error, /redirect/);
  assert.equal(d.attempts[1].statusCode, 200);
  assert.equal(rx.received('/redirect-target').length, 0);
});

test('410 Gone: the delivery fails at once and the webhook is deactivated', async () => {
  const s = await scenario('gone', gone());
  const ev = await s.send();
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'failed');
  assert.equal(d.statusCode, 410);
  assert.equal(d.attempts.length, 1);
  assert.match(d.attempts[0].error, /410/);
  const w = await gw.request('GET', `/v1/webhooks/${s.wh.id}`);
  assert.equal(w.status, 200);
  assert.equal(w.json.active, false);
  assert.equal(rx.received(s.path).length, 1);
  // No more deliveries for it.
  const next = await publishOk(gw, { type: 'user.created', data: {}, organizationId: 'gone' });
  assert.equal(next.deliveries, 0);
});

test('429 with Retry-After: 1 waits a second before the next attempt', async () => {
  const s = await scenario('retry-after', [tooMany('1'), ok()]);
  const ev = await s.send();
  const [first] = await rx.waitFor(s.path);
  // Pending meanwhile, due about a second after the first attempt.
  const pending = await waitDelivery(gw, s.wh.id, ev.id, (x) => x.attempts.length === 1);
  assert.equal(pending.status, 'pending', JSON.stringify(pending));
  assert.equal(pending.statusCode, 429);
  const due = Date.parse(pending.nextAttemptAt) - Date.parse(pending.attempts[0].startedAt);
  assert.ok(due >= 900, `nextAttemptAt only ${due} ms after the attempt`);
  const got = await rx.waitFor(s.path, { count: 2, timeout: 5000 });
  const gap = got[1].mono - first.mono;
  assert.ok(gap >= 900, `second attempt ${gap.toFixed(0)} ms after the first`);
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'success');
  assert.equal(d.attempts[0].statusCode, 429);
  assert.equal(d.attempts.length, 2);
});

test('a slow receiver under the timeout succeeds at the first attempt', async () => {
  const s = await scenario('slow', slow(300));
  const ev = await s.send();
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'success');
  assert.equal(d.attempts.length, 1);
  assert.equal(d.attempts[0].responseBody, 'slow ok');
  assert.ok(d.attempts[0].durationMs >= 290, `${d.attempts[0].durationMs} ms`);
});

test('a long response body is recorded up to max_response_body bytes', async () => {
  const long = 'abcdefghij'.repeat(100);
  const s = await scenario('long-body', ok(long));
  const ev = await s.send();
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(d.status, 'success');
  assert.equal(d.attempts[0].responseBody, long.slice(0, MAX_RESPONSE_BODY));
});

test('the delivery log: status and event filters, pages, pending/success/failed', async () => {
  // The receiver decides by the event's data: ok, fail (500 always) or
  // later (429, Retry-After an hour: stays pending).
  const s = await scenario('log', (req, body) => {
    const { data } = JSON.parse(body);
    if (data.kind === 'fail') return status(500);
    if (data.kind === 'later') return tooMany('3600');
    return ok();
  });
  const ids = { success: [], failed: [], pending: [] };
  for (let i = 0; i < 3; i++) ids.success.push((await s.send({ kind: 'ok', i }, 'user.created')).id);
  for (let i = 0; i < 2; i++) ids.failed.push((await s.send({ kind: 'fail', i }, 'user.updated')).id);
  ids.pending.push((await s.send({ kind: 'later' }, 'session.created')).id);

  const all = await until(async () => {
    const l = await listDeliveries(gw, s.wh.id, 'pageSize=100');
    const settled = l.deliveries.filter((d) => d.status !== 'pending' || d.attempts > 0).length;
    return settled === 6 && l.deliveries.filter((d) => d.status === 'failed').length === 2 ? l : { done: false, ...l };
  }, { what: 'all six deliveries attempted, two failed' });
  assert.equal(all.deliveries.length, 6);
  assert.equal(all.nextPageToken, null);
  const byStatus = (st) => all.deliveries.filter((d) => d.status === st).map((d) => d.eventId).sort();
  assert.deepEqual(byStatus('success'), ids.success.slice().sort());
  assert.deepEqual(byStatus('failed'), ids.failed.slice().sort());
  assert.deepEqual(byStatus('pending'), ids.pending);
  const pend = all.deliveries.find((d) => d.status === 'pending');
  assert.ok(Date.parse(pend.nextAttemptAt) > Date.now() + 3000 * 1000, pend.nextAttemptAt);
  assert.equal(pend.statusCode, 429);

  const events = async (q) => (await listDeliveries(gw, s.wh.id, q)).deliveries.map((d) => d.eventId).sort();
  assert.deepEqual(await events('status=success'), ids.success.slice().sort());
  assert.deepEqual(await events('status=failed'), ids.failed.slice().sort());
  assert.deepEqual(await events('status=pending'), ids.pending);
  assert.deepEqual(await events('event=user.updated'), ids.failed.slice().sort());
  assert.deepEqual(await events('event=user.created&status=success'), ids.success.slice().sort());
  assert.deepEqual(await events('event=user.created&status=failed'), []);
  assert.deepEqual(await events('event=mfa.removed'), []);

  // Pages of 2 over 6: three pages, no repeats, newest first like the whole list.
  const seen = [];
  let token = null;
  let pages = 0;
  do {
    const l = await listDeliveries(gw, s.wh.id, 'pageSize=2' + (token ? `&pageToken=${encodeURIComponent(token)}` : ''));
    assert.ok(l.deliveries.length <= 2);
    seen.push(...l.deliveries.map((d) => d.id));
    token = l.nextPageToken;
    pages++;
    assert.ok(pages <= 4, 'pagination does not end');
  } while (token);
  assert.equal(pages, 3);
  assert.deepEqual(seen, all.deliveries.map((d) => d.id));
  // Filters hold across pages.
  const p1 = await listDeliveries(gw, s.wh.id, 'pageSize=2&status=success');
  assert.equal(p1.deliveries.length, 2);
  assert.ok(p1.nextPageToken);
  const p2 = await listDeliveries(gw, s.wh.id, `pageSize=2&status=success&pageToken=${encodeURIComponent(p1.nextPageToken)}`);
  assert.equal(p2.deliveries.length, 1);
  assert.equal(p2.nextPageToken, null);
  assert.deepEqual([...p1.deliveries, ...p2.deliveries].map((d) => d.eventId).sort(), ids.success.slice().sort());

  let r = await gw.request('GET', `/v1/webhooks/${s.wh.id}/deliveries?status=done`);
  assert.equal(r.status, 422);
  assert.deepEqual(errorFields(r), ['status']);
  r = await gw.request('GET', `/v1/webhooks/${s.wh.id}/deliveries?pageToken=nonsense`);
  assert.equal(r.status, 422);
  assert.deepEqual(errorFields(r), ['pageToken']);
});

test('an HTTPS receiver: trusted through delivery.ca_file, refused without it', async () => {
  const rxs = await startReceiver({ https: true });
  try {
    const trusting = await extraGateway({ extra: `ca_file = "${rxs.caFile}"` });
    const t = await scenario('tls-ok', ok('secure'), { g: trusting, r: rxs });
    assert.match(t.wh.url, /^https:/);
    const ev = await t.send({ tls: true });
    const d = await waitDelivery(trusting, t.wh.id, ev.id);
    assert.equal(d.status, 'success', JSON.stringify(d));
    assert.equal(d.attempts.length, 1);
    assert.equal(d.attempts[0].responseBody, 'secure');
    const [req] = rxs.received(t.path);
    new Webhook(t.wh.secret).verify(req.body.toString(), req.headers);

    const plain = await extraGateway();
    const u = await scenario('tls-untrusted', ok(), { g: plain, r: rxs });
    const ev2 = await u.send();
    const d2 = await waitDelivery(plain, u.wh.id, ev2.id);
    assert.equal(d2.status, 'failed', JSON.stringify(d2));
    assert.equal(d2.attempts.length, SCHEDULE.length);
    for (const a of d2.attempts) {
      assert.equal(a.statusCode, null);
      assert.match(a.error, /^tls:/);
    }
    assert.equal(rxs.received(u.path).length, 0);
  } finally {
    await rxs.close();
  }
});

// The counter families of /metrics named `name`, by their label text.
async function counters(g, name) {
  const m = await g.request('GET', '/metrics', { key: null });
  const out = {};
  for (const line of m.body.split('\n')) {
    const x = line.match(/^(\w+)(\{[^}]*\})? (\d+)$/);
    if (x && x[1] === name) out[x[2] || ''] = Number(x[3]);
  }
  return out;
}

test('a burst to a new HTTPS receiver: one full handshake, the other connections resume its session', async () => {
  const rxs = await startReceiver({ https: true });
  try {
    const g = await extraGateway({ extra: `ca_file = "${rxs.caFile}", paused = true` });
    const s = await scenario('tls-burst', ok(), { g, r: rxs });
    const N = 16;
    for (let i = 0; i < N; i++) await s.send({ i });
    // All due at once: the queue hands the client N requests together.
    const r = await g.request('POST', '/v1/admin/delivery/resume');
    assert.equal(r.status, 200, r.body);
    await until(() => rxs.received(s.path).length >= N, { what: `${N} deliveries` });
    const tls = await counters(g, 'hookgate_client_tls_handshakes_total');
    const opened = (await counters(g, 'hookgate_client_connections_opened_total'))[''];
    assert.equal(tls['{resumed="false"}'], 1, JSON.stringify(tls));
    assert.ok(tls['{resumed="true"}'] >= 1, JSON.stringify(tls));
    assert.equal(tls['{resumed="false"}'] + tls['{resumed="true"}'], opened, JSON.stringify({ tls, opened }));
  } finally {
    await rxs.close();
  }
});

test('keep-alive: a second burst to a receiver reuses every connection the first one opened', async () => {
  const g = await extraGateway({ extra: 'paused = true' });
  // Slow enough that the burst's requests are on the wire together.
  const s = await scenario('keepalive-burst', slow(300), { g });
  const N = 40;
  const burst = async (n0) => {
    for (let i = 0; i < N; i++) await s.send({ i });
    const r = await g.request('POST', '/v1/admin/delivery/resume');
    assert.equal(r.status, 200, r.body);
    await until(() => rx.received(s.path).length >= n0 + N, { what: `${n0 + N} deliveries` });
    // Every answer in and recorded: the connections are idle.
    await until(async () => {
      const st = (await g.request('GET', '/v1/admin/delivery')).json;
      return st.queued === 0 && st.inFlight === 0;
    }, { what: 'the burst to end' });
    await g.request('POST', '/v1/admin/delivery/pause');
  };
  await burst(0);
  const first = (await counters(g, 'hookgate_client_connections_opened_total'))[''];
  assert.ok(first > 32, `the first burst opened ${first} connections`);
  await burst(N);
  const second = (await counters(g, 'hookgate_client_connections_opened_total'))[''];
  assert.equal(second, first);
});

test('SSRF guard: without allow_cidrs a loopback receiver is refused and recorded', async () => {
  const guarded = await extraGateway({ cidrs: false });
  const s = await scenario('ssrf', ok(), { g: guarded });
  const ev = await s.send();
  const d = await waitDelivery(guarded, s.wh.id, ev.id);
  assert.equal(d.status, 'failed', JSON.stringify(d));
  assert.ok(d.attempts.length >= 1);
  for (const a of d.attempts) {
    assert.equal(a.statusCode, null);
    assert.match(a.error, /ssrf/i);
    assert.match(a.error, /loopback/i);
  }
  assert.equal(rx.received(s.path).length, 0);
});

test('POST /v1/webhooks/{id}/test sends a signed test event and answers the outcome', async () => {
  const s = await scenario('test-send', ok('pong'));
  const r = await gw.request('POST', `/v1/webhooks/${s.wh.id}/test`, { body: {} });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.statusCode, 200);
  assert.equal(r.json.responseBody, 'pong');
  assert.equal(r.json.success, true);
  assert.ok(Number.isInteger(r.json.durationMs) && r.json.durationMs >= 0);
  assert.match(r.json.deliveryId, /^del_/);
  const [req] = rx.received(s.path);
  assert.ok(req, 'the receiver got the test event before the answer');
  const payload = new Webhook(s.wh.secret).verify(req.body.toString(), req.headers);
  assert.equal(payload.type, 'webhook.test');
  const d = await getDelivery(gw, s.wh.id, r.json.deliveryId);
  assert.equal(d.status, 'success');
  assert.equal(d.eventId, req.headers['webhook-id']);
  assert.equal(d.attempts.length, 1);

  // With a chosen event type and data.
  const r2 = await gw.request('POST', `/v1/webhooks/${s.wh.id}/test`, { body: { event: 'user.deleted', data: { x: 1 } } });
  assert.equal(r2.status, 200, r2.body);
  const req2 = rx.received(s.path)[1];
  assert.deepEqual(JSON.parse(req2.body), { ...JSON.parse(req2.body), type: 'user.deleted', data: { x: 1 } });
});

test('a test send to a closed port answers statusCode 0 with an error', async () => {
  const port = await closedPort();
  const wh = await createWebhook(gw, `http://127.0.0.1:${port}/nobody`, null, ['*'], { organizationId: 'closed' });
  const r = await gw.request('POST', `/v1/webhooks/${wh.id}/test`, { body: {} });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.statusCode, 0);
  assert.equal(r.json.success, false);
  assert.equal(typeof r.json.error, 'string');
  assert.ok(r.json.error.length > 0);
  const d = await getDelivery(gw, wh.id, r.json.deliveryId);
  assert.equal(d.status, 'failed');
});

test('replay: a failed delivery is sent again, same webhook-id, fresh timestamp and signature', async () => {
  const s = await scenario('replay', status(503, { body: 'no' }));
  const ev = await s.send({ r: 1 });
  const failed = await waitDelivery(gw, s.wh.id, ev.id);
  assert.equal(failed.status, 'failed');
  const n = failed.attempts.length;
  const before = rx.received(s.path);
  assert.equal(before.length, n);
  const lastTs = Number(before[n - 1].headers['webhook-timestamp']);
  rx.on(s.path, ok('thanks'));
  // Let the clock pass into the next second, so the timestamp must differ.
  await until(() => Math.floor(Date.now() / 1000) > lastTs, { what: 'the next second' });

  const r = await gw.request('POST', `/v1/webhooks/${s.wh.id}/deliveries/${failed.id}/replay`);
  assert.equal(r.status, 202, r.body);
  assert.deepEqual(r.json, { id: failed.id, status: 'pending' });
  const d = await waitDelivery(gw, s.wh.id, ev.id, (x) => x.status === 'success');
  assert.equal(d.id, failed.id, 'the same delivery, not a new one');
  assert.equal(d.attempts.length, n + 1);
  assert.equal(d.attempts[n].statusCode, 200);
  assert.equal(d.attempts[n].responseBody, 'thanks');
  const got = await rx.waitFor(s.path, { count: n + 1 });
  const again = got[n];
  assert.equal(again.headers['webhook-id'], ev.id);
  assert.ok(again.body.equals(before[0].body));
  assert.ok(Number(again.headers['webhook-timestamp']) > lastTs);
  assert.notEqual(again.headers['webhook-signature'], before[n - 1].headers['webhook-signature']);
  new Webhook(s.wh.secret).verify(again.body.toString(), again.headers);
  assert.equal((await listDeliveries(gw, s.wh.id)).deliveries.length, 1);
});

test('replay of an unknown delivery or webhook is 404', async () => {
  const s = await scenario('replay-404', ok());
  const ev = await s.send();
  const d = await waitDelivery(gw, s.wh.id, ev.id);
  // Same shape as a real id, one character changed.
  const last = d.id.slice(-1);
  const unknown = d.id.slice(0, -1) + (last === '0' ? '1' : '0');
  let r = await gw.request('POST', `/v1/webhooks/${s.wh.id}/deliveries/${unknown}/replay`);
  assert.equal(r.status, 404, r.body);
  r = await gw.request('POST', `/v1/webhooks/${s.wh.id}/deliveries/del_nonsense/replay`);
  assert.equal(r.status, 404, r.body);
  const other = await scenario('replay-404-other', ok());
  r = await gw.request('POST', `/v1/webhooks/${other.wh.id}/deliveries/${d.id}/replay`);
  assert.equal(r.status, 404, 'a delivery of another webhook: ' + r.body);
  r = await gw.request('GET', `/v1/webhooks/${s.wh.id}/deliveries/${unknown}`);
  assert.equal(r.status, 404);
});

test('delivery.paused: events are accepted and kept until resume', async () => {
  const paused = await extraGateway({ extra: 'paused = true' });
  const s = await scenario('paused', ok(), { g: paused });
  const ev = await s.send({ p: 1 });
  let st = await paused.request('GET', '/v1/admin/delivery');
  assert.equal(st.status, 200, st.body);
  assert.equal(st.json.paused, true);
  assert.equal(st.json.queued, 1);
  // A negative observation: nothing is sent while paused. Give the
  // dispatcher time it would need to send (it sends within ms otherwise).
  await sleep(500);
  assert.equal(rx.received(s.path).length, 0);
  let d = await waitDelivery(paused, s.wh.id, ev.id, () => true);
  assert.equal(d.status, 'pending');
  assert.equal(d.attempts.length, 0);

  const denied = await paused.request('POST', '/v1/admin/delivery/resume', { key: null });
  assert.equal(denied.status, 401);
  const r = await paused.request('POST', '/v1/admin/delivery/resume');
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.paused, false);
  const [req] = await rx.waitFor(s.path);
  assert.equal(req.headers['webhook-id'], ev.id);
  d = await waitDelivery(paused, s.wh.id, ev.id);
  assert.equal(d.status, 'success');
  st = await paused.request('GET', '/v1/admin/delivery');
  assert.equal(st.json.paused, false);
});
