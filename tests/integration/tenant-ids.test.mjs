// tenant-ids.test.mjs: an organization's key cannot reach another
// organization's webhooks or deliveries, and asking (for an id that does not
// exist, or one that belongs elsewhere) answers 404 like any missing id and
// leaves the gateway serving. The delivery log of an unknown webhook once
// freed an uninitialized pointer and aborted the process.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from './lib/gateway.mjs';
import { makeKey } from './lib/keys.mjs';
import { sleep, expectError } from './lib/expect.mjs';

const UNKNOWN_WH = 'wh_01aaaaaaaaaaaaaaaaaaaaaaaa';
const UNKNOWN_DEL = 'del_01aaaaaaaaaaaaaaaaaaaaaaaa';

let gw, keyA, keyB, whA, delA;
before(async () => {
  gw = await startGateway({});
  [keyA, keyB] = await Promise.all([
    makeKey(gw, 'webhooks:read,webhooks:write,events:publish', 'org_a'),
    makeKey(gw, 'webhooks:read,webhooks:write,events:publish', 'org_b'),
  ]);
  const c = await gw.request('POST', '/v1/webhooks', {
    key: keyA.key,
    body: { url: 'https://a.example.test/h', events: ['user.created'] },
  });
  assert.equal(c.status, 201, c.body);
  whA = c.json.id;
  const p = await gw.request('POST', '/v1/events', { key: keyA.key, body: { type: 'user.created', data: { n: 1 } } });
  assert.equal(p.status, 202, p.body);
  // Fan-out runs in the store after the answer: wait for the delivery.
  for (let i = 0; i < 100 && !delA; i++) {
    const l = await gw.request('GET', `/v1/webhooks/${whA}/deliveries`, { key: keyA.key });
    assert.equal(l.status, 200, l.body);
    delA = l.json.deliveries[0]?.id;
    if (!delA) await sleep(50);
  }
  assert.ok(delA, 'the published event made no delivery');
});
after(async () => {
  if (gw) {
    const { code, signal } = await gw.stop();
    assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs()}`);
  }
});

async function stillServing() {
  const h = await gw.request('GET', '/healthz', { key: null });
  assert.equal(h.status, 200, `healthz after the request: ${h.status} ${h.body}\n${gw.logs().slice(-2000)}`);
}

describe('the delivery log of a webhook the key cannot see', () => {
  it('an unknown webhook id answers 404 not_found and the gateway keeps serving', async () => {
    for (const key of [gw.adminKey, keyA.key]) {
      const e = expectError(await gw.request('GET', `/v1/webhooks/${UNKNOWN_WH}/deliveries`, { key }), 404, 'not_found');
      assert.equal(e.message, 'webhook not found');
      await stillServing();
    }
  });

  it("another organization's webhook answers 404 exactly like an unknown one", async () => {
    const other = await gw.request('GET', `/v1/webhooks/${whA}/deliveries`, { key: keyB.key });
    const unknown = await gw.request('GET', `/v1/webhooks/${UNKNOWN_WH}/deliveries`, { key: keyB.key });
    expectError(other, 404, 'not_found');
    assert.deepEqual(other.json, unknown.json, 'the answer must not tell an existing id from a missing one');
    assert.ok(!other.body.includes('org_a'), other.body);
    await stillServing();
  });

  it("every delivery endpoint answers 404 for another organization's webhook and delivery", async () => {
    const cases = [
      ['GET', `/v1/webhooks/${whA}/deliveries`],
      ['GET', `/v1/webhooks/${whA}/deliveries/${delA}`],
      ['POST', `/v1/webhooks/${whA}/deliveries/${delA}/replay`, {}],
      ['POST', `/v1/webhooks/${whA}/test`, {}],
      ['GET', `/v1/webhooks/${UNKNOWN_WH}/deliveries/${UNKNOWN_DEL}`],
      ['POST', `/v1/webhooks/${UNKNOWN_WH}/deliveries/${UNKNOWN_DEL}/replay`, {}],
      ['POST', `/v1/webhooks/${UNKNOWN_WH}/test`, {}],
      ['GET', `/v1/webhooks/${whA}`],
      ['PATCH', `/v1/webhooks/${whA}`, { active: false }],
      ['POST', `/v1/webhooks/${whA}/rotate-secret`, {}],
      ['DELETE', `/v1/webhooks/${whA}`],
    ];
    for (const [m, p, body] of cases) {
      expectError(await gw.request(m, p, { key: keyB.key, body }), 404, 'not_found');
      await stillServing();
    }
    // Nothing of org_a's changed, and its own key still sees it all.
    const w = await gw.request('GET', `/v1/webhooks/${whA}`, { key: keyA.key });
    assert.equal(w.status, 200, w.body);
    assert.equal(w.json.active, true);
    const d = await gw.request('GET', `/v1/webhooks/${whA}/deliveries/${delA}`, { key: keyA.key });
    assert.equal(d.status, 200, d.body);
  });

  it('the gateway is still the same process', async () => {
    assert.equal(gw.proc.exitCode, null);
    assert.equal(gw.proc.signalCode, null);
    await stillServing();
  });
});
