// pg-faults.test.mjs: the gateway while its PostgreSQL server goes away
// and comes back.
//
// The test runs its own throwaway server (scripts/pg-tmp, as the suite's
// shared one must stay up for the other tests), publishes events without
// pause, and stops the server with `pg_ctl -m immediate` (a crash: no
// checkpoint, nothing flushed that was not committed) in the middle:
//   - meanwhile every request is answered, never held: 503 with
//     Retry-After and error type store_unavailable (events, reads);
//   - delivery pauses, and resumes by itself once the server is back;
//   - no event that was answered 202 is lost: each one reaches the receiver.
//
// PostgreSQL only (integration-pg/pg-faults).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver } from './lib/receiver.mjs';
import { onPg } from './lib/store.mjs';
import { deliveryConfig, createWebhook, publish, until, sleep, SLOW } from './lib/delivery.mjs';

const skip = !onPg && 'PostgreSQL only (HG_TEST_STORE=postgresql)';
const PG_TMP = new URL('../../scripts/pg-tmp', import.meta.url).pathname;
// Requests must be answered while the server is down: well inside this.
const ANSWER_BOUND_MS = 2000 * SLOW;

let pgDir;
let rx;
let gw;

const pgTmp = (cmd) => execFileSync(PG_TMP, [cmd, pgDir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

before(async () => {
  if (skip) return;
  // Short: a unix socket path holds at most ~100 bytes.
  pgDir = join(tempDir('hgpgf-'), 'pg');
  const uri = pgTmp('start');
  rx = await startReceiver();
  gw = await startGateway({ config: deliveryConfig(), env: { HOOKGATE_STORE: uri } });
});

after(async () => {
  if (gw) await gw.stop('SIGKILL');
  if (rx) await rx.close();
  if (pgDir) pgTmp('stop');
});

async function timed(fn) {
  const t0 = Date.now();
  const r = await fn();
  return { r, ms: Date.now() - t0 };
}

test('a server crash under load: clear 503s meanwhile, nothing acknowledged lost, delivery resumes', { skip }, async () => {
  await createWebhook(gw, rx, '/faults', ['session.created'], { organizationId: 'org_faults' });
  const acked = new Set();
  const refused = [];
  let stop = false;
  let sent = 0;
  // Two publishers without pause for the whole test.
  const publisher = async () => {
    while (!stop) {
      const { r, ms } = await timed(() => publish(gw, { type: 'session.created', organizationId: 'org_faults', data: { n: sent++ } }));
      if (r.status === 202) acked.add(r.json.id);
      else refused.push({ status: r.status, type: r.json?.error?.type ?? r.json?.type, retryAfter: r.headers['retry-after'], ms });
      if (r.status !== 202) await sleep(20);
    }
  };
  const publishers = [publisher(), publisher()];
  await until(() => acked.size >= 50, { timeout: 20000, what: '50 events acknowledged before the crash' });

  pgTmp('kill');
  const crashedAt = Date.now();
  // While it is down: events and reads are answered 503 store_unavailable
  // with Retry-After, each within the bound.
  await until(() => refused.length >= 5, { timeout: 10000, what: 'events refused while the server is down' });
  const read = await timed(() => gw.request('GET', '/v1/webhooks'));
  assert.equal(read.r.status, 503, read.r.body);
  assert.equal(read.r.json.error?.type ?? read.r.json.type, 'store_unavailable', read.r.body);
  assert.ok(read.r.headers['retry-after'], 'a 503 says when to try again');
  assert.ok(read.ms < ANSWER_BOUND_MS, `a read took ${read.ms} ms while the server was down`);
  await sleep(1000);

  pgTmp('start');
  const restartedAt = Date.now();
  // Events are acknowledged again once the server is back.
  const ackedBefore = acked.size;
  await until(() => acked.size >= ackedBefore + 50, { timeout: 30000, what: 'events acknowledged after the restart' });
  stop = true;
  await Promise.all(publishers);

  for (const f of refused) {
    assert.equal(f.status, 503, JSON.stringify(f));
    assert.equal(f.type, 'store_unavailable', JSON.stringify(f));
    assert.ok(f.retryAfter, JSON.stringify(f));
    assert.ok(f.ms < ANSWER_BOUND_MS, `an event took ${f.ms} ms to be refused`);
  }
  // Every acknowledged event reaches the receiver, delivery having resumed
  // by itself.
  const got = () => new Set(rx.requests.filter((q) => q.path === '/faults').map((q) => q.headers['webhook-id']));
  await until(() => {
    const g = got();
    const missing = [...acked].filter((id) => !g.has(id));
    return missing.length === 0 || { done: false, missing: missing.length, of: acked.size };
  }, { timeout: 60000, every: 250, what: 'every acknowledged event delivered' });
  assert.match(gw.logs(), /connection to PostgreSQL is lost/);
  assert.match(gw.logs(), /connected to PostgreSQL again/);
  console.log(`# ${acked.size} acknowledged, ${refused.length} refused with 503; down ${restartedAt - crashedAt} ms`);
});
