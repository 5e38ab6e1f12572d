// delivery.mjs: shared pieces of the delivery integration tests: a test
// config with sub-second retries, webhook creation, and polling helpers
// (every wait has a deadline and reports what it last saw).
import assert from 'node:assert/strict';

export const SCHEDULE = [0, 0.2, 0.2, 0.2];

// Lua config for a gateway that may deliver to 127.0.0.1 over plain HTTP
// and retries fast. extra: more Lua appended inside the delivery table
// (e.g. 'ca_file = "..."'); top: more top-level Lua.
export function deliveryConfig({ extra = '', top = '', cidrs = true } = {}) {
  const allow = cidrs ? 'allow_cidrs = { "127.0.0.0/8", "::1/128" }, ' : '';
  return `webhooks = { allow_http = true }
delivery = { ${allow}schedule = { ${SCHEDULE.join(', ')} }, jitter = 0, timeout = 1${extra ? ', ' + extra : ''} }
${top}
`;
}

// Slower under a sanitizer: deadlines scale with it.
export const SLOW = process.env.HG_SANITIZE === 'ON' || process.env.HG_SANITIZE === '1' ||
  /asan/i.test(process.env.HOOKGATE_BIN || '') ? 3 : 1;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() until it returns a truthy value; throws after timeout ms with
// the description and the last value seen.
export async function until(fn, { timeout = 10000, every = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout * SLOW;
  let last;
  for (;;) {
    last = await fn();
    if (last && last.done !== false) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(every);
  }
}

export async function createWebhook(gw, rx, path, events, more = {}) {
  const url = typeof rx === 'string' ? rx : rx.url(path);
  const r = await gw.request('POST', '/v1/webhooks', { body: { url, events, ...more } });
  assert.equal(r.status, 201, r.body);
  return r.json;
}

export async function publish(gw, body, headers = {}) {
  return gw.request('POST', '/v1/events', { body, headers });
}

export async function publishOk(gw, body, headers = {}) {
  const r = await publish(gw, body, headers);
  assert.equal(r.status, 202, r.body);
  return r.json;
}

export async function listDeliveries(gw, whId, query = '') {
  const r = await gw.request('GET', `/v1/webhooks/${whId}/deliveries${query ? '?' + query : ''}`);
  assert.equal(r.status, 200, r.body);
  return r.json;
}

export async function getDelivery(gw, whId, delId) {
  const r = await gw.request('GET', `/v1/webhooks/${whId}/deliveries/${delId}`);
  assert.equal(r.status, 200, r.body);
  return r.json;
}

// The delivery of event evtId to webhook whId, once pred(delivery) holds
// (default: it is no longer pending). Returns the detail, with attempts.
export async function waitDelivery(gw, whId, evtId, pred = (d) => d.status !== 'pending', timeout = 10000) {
  return until(async () => {
    const list = await listDeliveries(gw, whId, 'pageSize=100');
    const d = list.deliveries.find((x) => x.eventId === evtId);
    if (!d) return { done: false, none: true };
    const full = await getDelivery(gw, whId, d.id);
    return pred(full) ? full : { done: false, ...full };
  }, { timeout, what: `delivery of ${evtId} to ${whId}` });
}

// Every id in ids reaches rx at path (by webhook-id), and the store holds
// exactly one delivery of webhook wh for each.
export async function expectDeliveredOnce(gw, rx, wh, ids, path) {
  await until(() => {
    const got = new Set(rx.received(path).map((r) => r.headers['webhook-id']));
    const missing = ids.filter((id) => !got.has(id));
    return missing.length === 0 ? true : { done: false, missing: missing.length };
  }, { timeout: 20000 * SLOW, what: 'every answered event at the receiver' });
  const list = await listDeliveries(gw, wh.id, 'pageSize=100');
  const perEvent = new Map();
  for (const d of list.deliveries) perEvent.set(d.eventId, (perEvent.get(d.eventId) || 0) + 1);
  for (const id of ids) assert.equal(perEvent.get(id), 1, `deliveries of ${id}: ${JSON.stringify(list.deliveries.slice(0, 3))}`);
}

export function errorFields(res) {
  return (res.json?.error?.details || []).map((d) => d.field);
}

// Stops a gateway with SIGTERM and asserts it exited 0 without a sanitizer
// report (under ASan a leak or bad access at shutdown fails the test).
export async function stopClean(gw) {
  const { code, signal } = await gw.stop('SIGTERM');
  const logs = gw.logs();
  assert.doesNotMatch(logs, /ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:/, logs.slice(-4000));
  assert.equal(signal, null, `gateway died of ${signal}`);
  assert.equal(code, 0, `gateway exited ${code}:\n${logs.slice(-4000)}`);
}

// The most requests open at once at a receiver path whose answers take
// hold ms (reqs: the receiver's requests, with their arrival time mono):
// each request is open from its arrival for hold ms (the answer goes out
// no earlier, and the gateway's next request to a full webhook waits for
// it), so overlapping intervals are open at the same time.
export function maxOpen(reqs, hold) {
  const starts = reqs.map((r) => r.mono).sort((a, b) => a - b);
  let most = 0;
  for (const t of starts) {
    const open = starts.filter((s) => s <= t && t < s + hold).length;
    most = Math.max(most, open);
  }
  return most;
}
