// cluster.test.mjs: several gateway nodes on one PostgreSQL store.
//
// Three nodes share one database (each with its own directory, config and
// node id): a webhook created or deleted on one is used by the others
// within a second; events published to all three reach the receiver; one
// node killed with SIGKILL in the middle of delivery loses nothing that was
// acknowledged: the others take its deliveries over once its leases run
// out, with the same webhook-id, and every duplicate the receiver sees is
// one whose first copy was on the wire when the node died.
//
// Runs on PostgreSQL only (integration-pg/cluster; HG_TEST_STORE=postgresql):
// on SQLite there is one node per store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { onPg, newPgDatabase } from './lib/store.mjs';
import { createWebhook, publish, until, sleep, SLOW } from './lib/delivery.mjs';

const skip = !onPg && 'PostgreSQL only (HG_TEST_STORE=postgresql)';
const LEASE = 6; // seconds: delivery.timeout (1) + 5

// A receiver that knows, for every request, when it arrived and whether
// its answer was written before the sender went away.
function startTrackingReceiver(delayMs) {
  const seen = []; // { id, at, answered: null | 'ok' | 'aborted', endedAt }
  const server = http.createServer((req, res) => {
    const rec = { id: req.headers['webhook-id'], at: Date.now(), answered: null, endedAt: 0 };
    seen.push(rec);
    req.resume();
    res.on('close', () => {
      if (rec.answered === null) {
        rec.answered = res.writableFinished ? 'ok' : 'aborted';
        rec.endedAt = Date.now();
      }
    });
    setTimeout(() => {
      if (res.destroyed) return;
      res.end('ok');
    }, delayMs);
  });
  server.keepAliveTimeout = 100;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: (p) => `http://127.0.0.1:${server.address().port}${p}`,
    seen,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  })));
}

function nodeConfig(id) {
  return `webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3 }, jitter = 0, timeout = 1 }
cluster = { node_id = "${id}", lease = ${LEASE}, poll = 0.2 }
`;
}

let store;
let nodes = [];
let rx;

before(async () => {
  if (skip) return;
  store = newPgDatabase();
  rx = await startTrackingReceiver(150);
  // One at a time: the first migrates, the others find it done (nodes
  // starting together would wait on the migration's advisory lock).
  for (const id of ['n1', 'n2', 'n3']) {
    nodes.push(await startGateway({ dir: tempDir(), config: nodeConfig(id), env: { HOOKGATE_STORE: store } }));
  }
});

after(async () => {
  for (const n of nodes) await n.stop('SIGKILL');
  if (rx) await rx.close();
});

test('each node registers under its id and sees the others agree', { skip }, async () => {
  for (const [i, n] of nodes.entries()) {
    await until(() => /hookgate started/.test(n.logs()), { what: `node ${i + 1} started` });
    assert.match(n.logs(), new RegExp(`this node shares the store.*node=n${i + 1}`));
    assert.doesNotMatch(n.logs(), /other nodes on this store run another version/);
  }
});

test('a second running gateway under a node id already in use is refused, naming it', { skip }, async () => {
  await assert.rejects(startGateway({ dir: tempDir(), config: nodeConfig('n2'), env: { HOOKGATE_STORE: store } }),
    (err) => {
      assert.match(err.message, /node id \\?"n2\\?" is in use by another running gateway on this store/, err.message);
      assert.match(err.message, /exited \(1\) before listening/, err.message);
      return true;
    });
  // n2 still holds its leases and works.
  assert.equal((await nodes[1].request('GET', '/v1/webhooks')).status, 200);
});

test('a node with other shared settings is warned about at start', { skip }, async () => {
  const odd = await startGateway({
    dir: tempDir(),
    config: nodeConfig('odd').replace('jitter = 0', 'jitter = 0.5'),
    env: { HOOKGATE_STORE: store },
  });
  try {
    await until(() => /hookgate started/.test(odd.logs()), { what: 'the odd node started' });
    assert.match(odd.logs(), /other nodes on this store run another version or other shared settings.*nodes=n1,n2,n3/);
  } finally {
    await odd.stop('SIGKILL');
  }
});

test('a webhook created, then deleted, on one node is used by the others within a second', { skip }, async () => {
  const [n1, n2, n3] = nodes;
  const wh = await createWebhook(n1, rx.url('/created'), null, ['user.created'], { organizationId: 'org_sync' });
  await sleep(1000);
  for (const n of [n2, n3]) {
    const r = await publish(n, { type: 'user.created', organizationId: 'org_sync', data: { from: n.port } });
    assert.equal(r.status, 202, r.body);
    assert.equal(r.json.deliveries, 1, `node on ${n.port} did not see the new webhook: ${r.body}`);
  }
  assert.equal((await n1.request('DELETE', `/v1/webhooks/${wh.id}`)).status, 204);
  await sleep(1000);
  for (const n of [n2, n3]) {
    const r = await publish(n, { type: 'user.created', organizationId: 'org_sync', data: { after: 'delete' } });
    assert.equal(r.status, 202, r.body);
    assert.equal(r.json.deliveries, 0, `node on ${n.port} still delivers to a deleted webhook: ${r.body}`);
  }
  // GET on another node answers the same: 404 after the delete.
  assert.equal((await n3.request('GET', `/v1/webhooks/${wh.id}`)).status, 404);
});

test('the same Idempotency-Key or event id sent to two nodes at once makes one event, and both answers name it', { skip }, async () => {
  // Each pair races: one node's insert commits while the other's runs,
  // and the loser's unique violation shows only at its commit. Its answer
  // must still be the original's (a replay), never a 409.
  const wh = await createWebhook(nodes[0], rx.url('/idem'), null, ['user.created']);
  // Node 2 routes to it once its index has it (within a second).
  await until(async () => (await publish(nodes[1], { type: 'user.created', data: { probe: true } })).json?.deliveries === 1,
    { what: 'the webhook in node 2\'s index' });
  const raced = new Set();
  for (let i = 0; i < 40; i++) {
    const byKey = i % 2 === 0;
    const tag = `race-${process.pid}-${i}`;
    const body = byKey ? { type: 'user.created', data: { i } } : { id: `evt_${tag}`, type: 'user.created', data: { i } };
    const headers = byKey ? { 'idempotency-key': tag } : {};
    const [a, b] = await Promise.all([publish(nodes[0], body, headers), publish(nodes[1], body, headers)]);
    assert.equal(a.status, 202, `node 1, ${byKey ? 'key' : 'id'} ${tag}: ${a.body}`);
    assert.equal(b.status, 202, `node 2, ${byKey ? 'key' : 'id'} ${tag}: ${b.body}`);
    assert.equal(a.json.id, b.json.id, tag);
    raced.add(a.json.id);
    // Exactly one of the two is the replay.
    const flags = [a, b].map((r) => r.headers['idempotent-replayed'] === 'true');
    assert.equal(flags.filter(Boolean).length, 1, `${tag}: ${JSON.stringify(flags)}`);
  }
  // One event per pair in the store, with one delivery.
  assert.equal(raced.size, 40);
  const r = await nodes[0].request('GET', `/v1/webhooks/${wh.id}/deliveries?pageSize=100`);
  assert.equal(r.status, 200, r.body);
  const perEvent = new Map();
  for (const d of r.json.deliveries) perEvent.set(d.eventId, (perEvent.get(d.eventId) || 0) + 1);
  for (const id of raced) assert.equal(perEvent.get(id), 1, `deliveries of ${id}`);
});

test('one node killed mid-delivery: every acknowledged event arrives, duplicates only from attempts on the wire', { skip }, async () => {
  await createWebhook(nodes[0], rx.url('/load'), null, ['session.created'], { organizationId: 'org_load' });
  await sleep(1000); // every node has it
  const acked = new Set();
  const publishMany = async (n, count, tag) => {
    for (let i = 0; i < count; i++) {
      const r = await publish(n, { type: 'session.created', organizationId: 'org_load', data: { tag, i } });
      if (r.status === 202) acked.add(r.json.id);
    }
  };
  const before = rx.seen.length;
  // 3 x 60 events; the receiver answers each after 150 ms, so hundreds of
  // attempts are queued or on the wire across the nodes when one dies.
  await Promise.all(nodes.map((n, i) => publishMany(n, 60, `n${i + 1}`)));
  await until(() => rx.seen.length - before >= 40, { timeout: 20000, what: 'the first deliveries' });
  const victim = nodes[1];
  await victim.stop('SIGKILL');
  const killedAt = Date.now();
  nodes = nodes.filter((n) => n !== victim);

  // A delivery's webhook-id is its event's id, on every attempt and from
  // every node.
  const arrivedIds = () => new Set(rx.seen.slice(before).map((q) => q.id));
  await until(() => {
    const got = arrivedIds();
    const missing = [...acked].filter((e) => !got.has(e));
    return missing.length === 0 || { done: false, missing: missing.length };
  }, { timeout: (LEASE + 30) * 1000, every: 500, what: 'every acknowledged event delivered' });
  await sleep(1000); // late duplicates, if any, arrive too

  const arrived = new Map(); // webhook-id -> requests
  for (const s of rx.seen.slice(before)) {
    if (!arrived.has(s.id)) arrived.set(s.id, []);
    arrived.get(s.id).push(s);
  }
  for (const e of acked) assert.ok(arrived.has(e), `event ${e} never reached the receiver`);
  // A duplicate is explained when its first copy arrived before the kill
  // and was then unanswered, or answered so shortly before the kill that
  // the dead node may not have recorded it yet.
  let duplicates = 0;
  for (const [id, reqs] of arrived) {
    if (reqs.length < 2) continue;
    duplicates += reqs.length - 1;
    const first = reqs[0];
    assert.ok(first.at <= killedAt, `delivery ${id} was sent twice, the first time after the kill`);
    assert.ok(first.answered === 'aborted' || first.endedAt >= killedAt - 1000 * SLOW,
      `delivery ${id} was sent twice though its first answer (at ${first.endedAt}) came long before the kill (${killedAt})`);
  }
  console.log(`# ${acked.size} events acknowledged, ${duplicates} duplicate deliveries (each explained)`);
  assert.ok(acked.size >= 170, `only ${acked.size} of 180 events acknowledged`);
});
