// The attempt log: one line per delivery attempt, with the webhook,
// delivery and event ids, the attempt number, the outcome (status code or
// error text), the duration and what follows (the next attempt's time,
// "gave up" or "deactivated"); info when it succeeded, warn when it failed,
// so log.level = "warn" keeps only the failures. Never a secret, a
// signature, a URL or a body.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startGateway, httpRequest } from './lib/gateway.mjs';
import { startReceiver, status, gone } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publishOk, waitDelivery, until } from './lib/delivery.mjs';

const gateways = [];
const receivers = [];
after(async () => {
  for (const g of gateways) await g.stop();
  for (const r of receivers) await r.close();
});

async function gateway(opts) {
  const gw = await startGateway(opts);
  gateways.push(gw);
  return gw;
}

async function receiver() {
  const rx = await startReceiver();
  receivers.push(rx);
  return rx;
}

const TIME = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';

// The attempt lines of one event, parsed: [{ level, webhook, ..., next }].
function attemptLines(gw, eventId) {
  const out = [];
  for (const line of gw.logs().split('\n')) {
    if (!line.includes('msg="delivery attempt"') || !line.includes(` event=${eventId} `)) continue;
    const fields = {};
    for (const m of line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g)) fields[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2];
    fields.line = line;
    out.push(fields);
  }
  return out;
}

async function waitLines(gw, eventId, n) {
  return until(() => {
    const lines = attemptLines(gw, eventId);
    return lines.length >= n ? lines : { done: false, lines };
  }, { what: `${n} attempt lines of ${eventId}` });
}

function assertNoSecrets(gw, webhooks, marker) {
  const logs = gw.logs();
  for (const wh of webhooks) assert.ok(!logs.includes(wh.secret.slice(6)), 'a webhook secret in the log');
  assert.ok(!logs.includes(gw.adminKey), 'the admin key in the log');
  assert.doesNotMatch(logs, /v1,[A-Za-z0-9+/]{20,}/, 'a signature in the log');
  assert.ok(!logs.includes(marker), 'an event body in the log');
  assert.doesNotMatch(logs, /msg="delivery attempt"[^\n]*http:\/\//, 'a receiver URL in an attempt line');
}

test('info: a success, retries of a failure until it gives up, a 410, a test send', async () => {
  const gw = await gateway({ config: deliveryConfig(), env: { HOOKGATE_LOG_LEVEL: 'info' } });
  const rx = await receiver();
  rx.on('/fail', status(500, { body: 'boom' }));
  rx.on('/gone', gone());
  const okWh = await createWebhook(gw, rx, '/ok', ['user.created']);
  const failWh = await createWebhook(gw, rx, '/fail', ['user.updated']);
  const goneWh = await createWebhook(gw, rx, '/gone', ['user.deleted']);
  const marker = 'body-marker-7f3a9c';

  const e1 = await publishOk(gw, { type: 'user.created', data: { marker } });
  const [ok] = await waitLines(gw, e1.id, 1);
  const d1 = await waitDelivery(gw, okWh.id, e1.id);
  assert.equal(ok.level, 'info');
  assert.equal(ok.webhook, okWh.id);
  assert.equal(ok.delivery, d1.id);
  assert.equal(ok.event, e1.id);
  assert.equal(ok.attempt, '1');
  assert.equal(ok.outcome, '200');
  assert.match(ok.duration_ms, /^\d+$/);
  assert.equal(ok.next, undefined);
  assert.equal(ok.test, undefined);
  assert.match(ok.line, new RegExp(`^time=${TIME} level=info msg="delivery attempt" webhook=\\S+ delivery=\\S+ ` +
    'event=\\S+ attempt=1 outcome=200 duration_ms=\\d+$'));

  // Four attempts (the test schedule): three with the next one's time, the
  // last gives up.
  const e2 = await publishOk(gw, { type: 'user.updated', data: { marker } });
  const lines = await waitLines(gw, e2.id, 4);
  const d2 = await waitDelivery(gw, failWh.id, e2.id);
  assert.equal(d2.status, 'failed');
  assert.deepEqual(lines.map((l) => l.attempt), ['1', '2', '3', '4']);
  for (const l of lines) {
    assert.equal(l.level, 'warn');
    assert.equal(l.webhook, failWh.id);
    assert.equal(l.delivery, d2.id);
    assert.equal(l.outcome, 'HTTP 500');
  }
  for (const l of lines.slice(0, 3)) assert.match(l.next, new RegExp(`^${TIME}$`));
  assert.equal(lines[3].next, 'gave up');
  assert.match(lines[3].line, / next="gave up"$/);

  const e3 = await publishOk(gw, { type: 'user.deleted', data: { marker } });
  const [g] = await waitLines(gw, e3.id, 1);
  assert.equal(g.level, 'warn');
  assert.equal(g.webhook, goneWh.id);
  assert.equal(g.outcome, 'HTTP 410 Gone: webhook deactivated');
  assert.equal(g.next, 'deactivated');

  const t = await gw.request('POST', `/v1/webhooks/${okWh.id}/test`);
  assert.equal(t.status, 200, t.body);
  const testLine = await until(() => gw.logs().split('\n').find((l) => l.includes(`delivery=${t.json.deliveryId} `)),
    { what: 'the test send\'s attempt line' });
  assert.match(testLine, /level=info msg="delivery attempt" .* attempt=1 outcome=200 duration_ms=\d+ test=true$/);

  assertNoSecrets(gw, [okWh, failWh, goneWh], marker);
});

test('a failure says why: the SSRF guard\'s refusal', async () => {
  const gw = await gateway({ config: deliveryConfig({ cidrs: false }), env: { HOOKGATE_LOG_LEVEL: 'info' } });
  const rx = await receiver();
  const wh = await createWebhook(gw, rx, '/hooks', ['user.created']);
  const e = await publishOk(gw, { type: 'user.created', data: { n: 1 } });
  const [l] = await waitLines(gw, e.id, 1);
  assert.equal(l.level, 'warn');
  assert.equal(l.webhook, wh.id);
  assert.equal(l.attempt, '1');
  assert.equal(l.outcome, 'ssrf: 127.0.0.1 is a loopback address (not in allow-list)');
  assert.match(l.next, new RegExp(`^${TIME}$`));
  assert.equal(rx.requests.length, 0);
  // No allow-list: no warning about one at start.
  assert.doesNotMatch(gw.logs(), /allow_cidrs opens the SSRF guard/);
});

// A gateway at log.level = "warn" logs nothing when it starts listening:
// it gets a port picked here, and is ready once /healthz answers.
async function quietGateway(config) {
  const port = await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const gw = await gateway({
    config,
    env: { HOOKGATE_LOG_LEVEL: undefined, HOOKGATE_LISTEN: `127.0.0.1:${port}` },
    // Ready to be polled once the allow-list warning (the last line before
    // listening) is out; the capture stands in for the address.
    listenRe: /opens the SSRF guard.*()$/,
  });
  const request = (method, path, { body } = {}) => httpRequest(port, method, path, { body, key: gw.adminKey });
  await until(async () => (await request('GET', '/healthz').catch(() => ({}))).status === 200,
    { what: 'the quiet gateway to answer /healthz' });
  return { logs: gw.logs, adminKey: gw.adminKey, request };
}

test('log.level = "warn": the successes go, the failures stay', async () => {
  const gw = await quietGateway(deliveryConfig() + 'log = { level = "warn" }\n');
  const rx = await receiver();
  rx.on('/fail', status(503, { body: 'down' }));
  const okWh = await createWebhook(gw, rx, '/ok', ['user.created']);
  const failWh = await createWebhook(gw, rx, '/fail', ['user.updated']);
  const e1 = await publishOk(gw, { type: 'user.created', data: {} });
  const e2 = await publishOk(gw, { type: 'user.updated', data: {} });
  const [f] = await waitLines(gw, e2.id, 1);
  assert.equal(f.level, 'warn');
  assert.equal(f.outcome, 'HTTP 503');
  const d1 = await waitDelivery(gw, okWh.id, e1.id);
  assert.equal(d1.status, 'success');
  await waitDelivery(gw, failWh.id, e2.id);
  assert.deepEqual(attemptLines(gw, e1.id), []);
  assert.doesNotMatch(gw.logs(), /level=info/);
  // The allow-list warning is a warning: it stays too.
  assert.match(gw.logs(), /level=warn msg="delivery.allow_cidrs opens the SSRF guard: any webhook may reach these networks" allow_cidrs=127\.0\.0\.0\/8,::1\/128/);
});
