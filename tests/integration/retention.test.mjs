// retention.test.mjs: `retention = { events, deliveries, interval }` and
// `hookgate store purge --before DATE`, over real sockets on a real store
// (SQLite, or PostgreSQL with HG_TEST_STORE=postgresql).
//
// - The background purge deletes deliveries (with their attempts) and
//   events older than their retention: the API then answers 404 for the
//   delivery (detail and replay) and leaves it out of the list, and an
//   idempotency key whose event went no longer deduplicates. A pending
//   delivery and its event stay however old; rows newer than the cutoff
//   stay. /metrics counts what went, per table, and the time of the last
//   pass; a log line per pass gives the counts.
// - Without an index of deliveries by event_seq (none of today's
//   migrations makes one) events are kept, deliveries still go, and a
//   warning says why. The tests that purge events make the index by hand,
//   standing in for the migration that will.
// - 0 keeps forever (no pass runs); invalid values are refused at start
//   and by `hookgate check`, naming the key.
// - The CLI: counts printed, the same rules, a bad or missing date refused
//   (exit 2), a password in a store URI never printed.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver, ok, status } from './lib/receiver.mjs';
import { createWebhook, publishOk, publish, listDeliveries, until, sleep, stopClean, SLOW } from './lib/delivery.mjs';
import { onPg, storeFor, storeQuery } from './lib/store.mjs';

let rx;
before(async () => {
  rx = await startReceiver();
  rx.on('/ok', ok()).on('/down', status(500, { body: 'down' }));
});
after(async () => {
  await rx?.close();
});

// Deliveries retry fast but a failing one waits an hour for its second
// attempt: it stays pending, with one attempt recorded.
function config(retention) {
  return `webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8", "::1/128" }, schedule = { 0, 3600 }, jitter = 0, timeout = 1 }
${retention ? `retention = ${retention}` : ''}
`;
}

function cli(args, env = {}) {
  return new Promise((resolve) => {
    execFile(BIN, args, { env: { ...process.env, HOOKGATE_LOG_LEVEL: 'error', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

// The index the events rule needs (store/purge.h), made by hand.
function indexEvents(dir) {
  storeQuery(dir, 'CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries(event_seq)');
}

const count = (dir, table, where = '') => Number(storeQuery(dir, `SELECT count(*) FROM ${table} ${where}`));

async function metric(gw, name) {
  const r = await gw.request('GET', '/metrics');
  assert.equal(r.status, 200);
  const m = r.body.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'));
  assert.ok(m, `no ${name} in /metrics`);
  return Number(m[1]);
}

const purged = (gw, table) => metric(gw, `hookgate_retention_purged_total{table="${table}"}`);

// The delivery of event evtId in whId's list, or undefined.
async function deliveryOf(gw, whId, evtId) {
  const list = await listDeliveries(gw, whId, 'pageSize=100');
  return list.deliveries.find((d) => d.eventId === evtId);
}

async function settled(gw, whId, evtId, want) {
  return until(async () => {
    const d = await deliveryOf(gw, whId, evtId);
    if (!d) return { done: false };
    const full = await gw.request('GET', `/v1/webhooks/${whId}/deliveries/${d.id}`);
    return want(full.json) ? full.json : { done: false, ...full.json };
  }, { what: `delivery of ${evtId} to ${whId}` });
}

test('old events, deliveries and attempts go; pending work and newer rows stay; 404s; metrics and log', async () => {
  const dir = tempDir();
  const gw = await startGateway({ dir, config: config('{ events = "3s", deliveries = "3s", interval = "1s" }') });
  try {
    indexEvents(dir);
    const good = await createWebhook(gw, rx, '/ok', ['user.created', 'user.updated']);
    const bad = await createWebhook(gw, rx, '/down', ['user.created']);
    // old1 goes to both: its /ok delivery succeeds, its /down one stays pending.
    const old1 = await publishOk(gw, { type: 'user.created', data: { n: 1 } });
    // old2 only to /ok, with an idempotency key.
    const old2 = await publishOk(gw, { type: 'user.updated', data: { n: 2 } }, { 'idempotency-key': 'ret-key-1' });
    const d1 = await settled(gw, good.id, old1.id, (d) => d.status === 'success');
    const p1 = await settled(gw, bad.id, old1.id, (d) => d.attempts.length === 1 && d.status === 'pending');
    const d2 = await settled(gw, good.id, old2.id, (d) => d.status === 'success');
    // The key deduplicates while its event lives.
    const again = await publish(gw, { type: 'user.updated', data: { n: 2 } }, { 'idempotency-key': 'ret-key-1' });
    assert.equal(again.json.id, old2.id);

    await until(async () => (await purged(gw, 'events')) >= 1 && (await purged(gw, 'deliveries')) >= 2, {
      what: 'the purge of old rows', timeout: 15000,
    });
    // A fresh event, newer than the cutoff, published after the purge ran.
    const fresh = await publishOk(gw, { type: 'user.updated', data: { n: 3 } });
    const d3 = await settled(gw, good.id, fresh.id, (d) => d.status === 'success');

    // The purged deliveries answer 404, as unknown ones do, and leave the list.
    for (const d of [d1, d2]) {
      const r = await gw.request('GET', `/v1/webhooks/${good.id}/deliveries/${d.id}`);
      assert.equal(r.status, 404, r.body);
      assert.equal(r.json.error.type, 'not_found');
      const rp = await gw.request('POST', `/v1/webhooks/${good.id}/deliveries/${d.id}/replay`);
      assert.equal(rp.status, 404, rp.body);
    }
    const list = await listDeliveries(gw, good.id, 'pageSize=100');
    assert.deepEqual(list.deliveries.map((d) => d.id), [d3.id]);

    // The pending delivery and its event stay, with its attempt.
    const p = await gw.request('GET', `/v1/webhooks/${bad.id}/deliveries/${p1.id}`);
    assert.equal(p.status, 200, p.body);
    assert.equal(p.json.status, 'pending');
    assert.equal(p.json.attempts.length, 1);
    assert.equal(storeQuery(dir, `SELECT count(*) FROM events WHERE id = '${old1.id}'`), '1');
    assert.equal(storeQuery(dir, `SELECT count(*) FROM events WHERE id = '${old2.id}'`), '0');

    // The key stopped deduplicating with its event gone: a new event.
    const after = await publishOk(gw, { type: 'user.updated', data: { n: 2 } }, { 'idempotency-key': 'ret-key-1' });
    assert.notEqual(after.id, old2.id);

    assert.ok((await purged(gw, 'attempts')) >= 2);
    const last = await metric(gw, 'hookgate_retention_last_pass_timestamp_seconds');
    assert.ok(Math.abs(last - Date.now() / 1000) < 30, `last pass at ${last}`);
    // The passes' log lines add up to what went (the rows may have aged
    // past the cutoff in different passes).
    const sum = { events: 0, deliveries: 0, attempts: 0 };
    for (const m of gw.logs().matchAll(/msg="retention: purge pass done" events=(\d+) deliveries=(\d+) attempts=(\d+) ms=\d+/g)) {
      sum.events += Number(m[1]);
      sum.deliveries += Number(m[2]);
      sum.attempts += Number(m[3]);
    }
    assert.deepEqual(sum, { events: 1, deliveries: 2, attempts: 2 });
    assert.doesNotMatch(gw.logs(), /events are kept/);
  } finally {
    await stopClean(gw);
  }
});

test('without an index of deliveries by event_seq: events stay, deliveries go, a warning says why', async () => {
  const dir = tempDir();
  const gw = await startGateway({ dir, config: config('{ events = "1s", deliveries = "1s", interval = "1s" }') });
  try {
    // Migration 10 makes the index; a store without it (dropped by hand).
    storeQuery(dir, 'DROP INDEX deliveries_by_event');
    const good = await createWebhook(gw, rx, '/ok', ['user.created']);
    const e = await publishOk(gw, { type: 'user.created', data: {} });
    await settled(gw, good.id, e.id, (d) => d.status === 'success');
    await until(async () => (await purged(gw, 'deliveries')) >= 1, { what: 'the delivery purged' });
    assert.equal(await purged(gw, 'events'), 0);
    assert.equal(storeQuery(dir, `SELECT count(*) FROM events WHERE id = '${e.id}'`), '1');
    assert.equal(count(dir, 'deliveries'), 0);
    assert.match(gw.logs(), /level=warn msg="retention: events are kept: the store has no index of deliveries by event_seq/);
    // Once the index exists (the migration's job), the next pass takes the event.
    indexEvents(dir);
    await until(async () => (await purged(gw, 'events')) >= 1, { what: 'the event purged' });
    assert.equal(count(dir, 'events'), 0);
  } finally {
    await stopClean(gw);
  }
});

test('0 keeps forever: no pass runs and old rows stay; events = 0 alone keeps events, deliveries still go', async () => {
  const dir = tempDir();
  const gw = await startGateway({ dir, config: config('{ events = 0, deliveries = "0", interval = "1s" }') });
  try {
    indexEvents(dir);
    const good = await createWebhook(gw, rx, '/ok', ['user.created']);
    const e = await publishOk(gw, { type: 'user.created', data: {} });
    await settled(gw, good.id, e.id, (d) => d.status === 'success');
    await sleep(2500 * SLOW);
    assert.equal(await metric(gw, 'hookgate_retention_last_pass_timestamp_seconds'), 0);
    assert.doesNotMatch(gw.logs(), /retention: purge pass/);
    assert.equal(count(dir, 'events'), 1);
    assert.equal(count(dir, 'deliveries'), 1);
  } finally {
    await stopClean(gw);
  }
  const gw2 = await startGateway({ dir, config: config('{ events = 0, deliveries = "1s", interval = "1s" }') });
  try {
    await until(async () => (await purged(gw2, 'deliveries')) >= 1, { what: 'the delivery purged' });
    assert.equal(count(dir, 'deliveries'), 0);
    assert.equal(count(dir, 'attempts'), 0);
    assert.equal(count(dir, 'events'), 1);
    assert.equal(await purged(gw2, 'events'), 0);
  } finally {
    await stopClean(gw2);
  }
});

// Publishes one event answered from the intake log, waits for the purge
// to take it, stops the gateway: returns the event and the mark's path.
async function purgedFromLog(dir) {
  const gw = await startGateway({ dir, config: config('{ events = "2s", deliveries = "2s", interval = "1s" }') });
  try {
    indexEvents(dir);
    const good = await createWebhook(gw, rx, '/ok', ['user.created']);
    // A single event without a key: answered from the intake log.
    const e = await publishOk(gw, { type: 'user.created', data: { from: 'log' } });
    await settled(gw, good.id, e.id, (d) => d.status === 'success');
    await until(async () => (await purged(gw, 'events')) >= 1, { what: 'the event purged' });
    return { e, mark: join(storeFor(dir) + '-intake', 'purged-before') };
  } finally {
    await stopClean(gw);
  }
}

test('a purged event does not come back from the intake log at the next start', { skip: onPg ? 'SQLite only (no intake log on PostgreSQL)' : false }, async () => {
  const dir = tempDir();
  const { e, mark } = await purgedFromLog(dir);
  assert.ok(existsSync(mark), 'no purge mark beside the intake log');
  const seen = () => rx.requests.filter((q) => q.headers['webhook-id'] === e.id).length;
  const before = seen();
  const again = await startGateway({ dir, config: config('{ events = 0, deliveries = 0 }') });
  try {
    await sleep(500 * SLOW);
    assert.equal(count(dir, 'events'), 0);
    assert.equal(count(dir, 'deliveries'), 0);
  } finally {
    await stopClean(again);
  }
  assert.equal(seen(), before);

  // Without the mark, the same log brings it back: what the mark prevents.
  const dir2 = tempDir();
  const second = await purgedFromLog(dir2);
  rmSync(second.mark);
  const back = await startGateway({ dir: dir2, config: config('{ events = 0, deliveries = 0 }') });
  try {
    assert.equal(storeQuery(dir2, `SELECT count(*) FROM events WHERE id = '${second.e.id}'`), '1');
  } finally {
    await stopClean(back);
  }
});

test('invalid retention settings are refused at start and by check, naming the key', async () => {
  const cases = [
    ['{ events = "30x" }', /retention\.events: must be a duration such as "30d", "12h", "90m" or "45s".*got "30x"/],
    ['{ deliveries = -1 }', /retention\.deliveries: must be 0 or between 1 second and 36500 days \(got -1 s\)/],
    ['{ deliveries = "500ms" }', /retention\.deliveries: must be a duration/],
    ['{ events = "0.5s" }', /retention\.events: must be 0 or between 1 second/],
    ['{ events = true }', /retention\.events: must be a duration.*got boolean/],
    ['{ events = "d" }', /retention\.events: must be a duration/],
    ['{ interval = 0 }', /retention\.interval: must be between 1 second and 7 days/],
    ['{ interval = "30d" }', /retention\.interval: must be between 1 second and 7 days/],
    ['{ event = "30d" }', /retention\.event: unknown key \(known here: events, deliveries, interval\)/],
    ['"30d"', /retention: must be a table/],
  ];
  for (const [value, re] of cases) {
    const dir = tempDir();
    const file = join(dir, 'hookgate.lua');
    writeFileSync(file, `listen = "127.0.0.1:0"\nretention = ${value}\n`);
    const c = await cli(['check', '-c', file]);
    assert.equal(c.code, 1, `${value}: ${c.stdout}${c.stderr}`);
    assert.match(c.stderr, re, value);
    assert.match(c.stderr, /hookgate\.lua:2: /, value);
    const s = await cli(['serve', '-c', file], { HOOKGATE_STORE: storeFor(dir) });
    assert.notEqual(s.code, 0, value);
    assert.match(s.stderr, re, value);
  }
  // Durations in every unit, and numbers of seconds, pass.
  const dir = tempDir();
  const file = join(dir, 'hookgate.lua');
  writeFileSync(file, 'listen = "127.0.0.1:0"\nretention = { events = "2w", deliveries = 86400, interval = "1.5h" }\n');
  const c = await cli(['check', '-c', file]);
  assert.equal(c.code, 0, c.stderr);
});

test('hookgate store purge --before: counts printed, pending work kept, the API agrees', async () => {
  const dir = tempDir();
  // The gateway purges nothing itself here: the CLI does, while it runs.
  const gw = await startGateway({ dir, config: config('{ events = 0, deliveries = 0 }') });
  try {
    indexEvents(dir);
    const good = await createWebhook(gw, rx, '/ok', ['user.created']);
    const bad = await createWebhook(gw, rx, '/down', ['user.created']);
    const evts = [];
    for (let i = 0; i < 3; i++) evts.push(await publishOk(gw, { type: 'user.created', data: { i } }));
    for (const e of evts) {
      await settled(gw, good.id, e.id, (d) => d.status === 'success');
      await settled(gw, bad.id, e.id, (d) => d.attempts.length === 1);
    }
    // Only for /ok: a delivery that is not pending on an event of its own.
    const lone = await createWebhook(gw, rx, '/ok', ['user.deleted']);
    const solo = await publishOk(gw, { type: 'user.deleted', data: {} });
    const ds = await settled(gw, lone.id, solo.id, (d) => d.status === 'success');
    // An hour old: the CLI keeps events from the last minute.
    storeQuery(dir, 'UPDATE events SET created_at = created_at - 3600000');
    storeQuery(dir, 'UPDATE deliveries SET created_at = created_at - 3600000');

    // A date before every row: nothing goes.
    let r = await cli(['store', 'purge', '--before', '2000-01-01', '--store', gw.store]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^events: 0 deleted$/m);
    assert.match(r.stdout, /^deliveries: 0 deleted$/m);

    // A date in the future: everything but the pending work and its events.
    r = await cli(['store', 'purge', '--before', '2999-01-01T00:00:00Z', '--store', gw.store]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /purged rows created before 2999-01-01T00:00:00\.000Z$/m);
    assert.match(r.stdout, /^events: 1 deleted$/m); // solo; the three others have a pending delivery
    assert.match(r.stdout, /^deliveries: 4 deleted$/m);
    assert.match(r.stdout, /^attempts: 4 deleted$/m);
    assert.equal(count(dir, 'events'), 3);
    assert.equal(count(dir, 'deliveries', "WHERE status = 'pending'"), 3);
    assert.equal(count(dir, 'deliveries'), 3);
    assert.equal(count(dir, 'attempts'), 3);
    const gone = await gw.request('GET', `/v1/webhooks/${lone.id}/deliveries/${ds.id}`);
    assert.equal(gone.status, 404);
    assert.equal((await listDeliveries(gw, good.id)).deliveries.length, 0);
    assert.equal((await listDeliveries(gw, bad.id)).deliveries.length, 3);

    // An event from the last minute stays even before a future date; its
    // delivery goes.
    const recent = await publishOk(gw, { type: 'user.deleted', data: { recent: true } });
    await settled(gw, lone.id, recent.id, (d) => d.status === 'success');
    r = await cli(['store', 'purge', '--before', '2999-01-01', '--store', gw.store]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^events: 0 deleted$/m);
    assert.match(r.stdout, /^deliveries: 1 deleted$/m);
    assert.equal(storeQuery(dir, `SELECT count(*) FROM events WHERE id = '${recent.id}'`), '1');

    // Again: nothing left to go.
    r = await cli(['store', 'purge', '--before', '2999-01-01', '--store', gw.store]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^events: 0 deleted\ndeliveries: 0 deleted\nattempts: 0 deleted\n$/m);

    // The store from the config file and HOOKGATE_STORE, as `keys` finds it.
    r = await cli(['store', 'purge', '-c', gw.cfgPath, '--before', '2999-01-01'], { HOOKGATE_STORE: gw.store });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^deliveries: 0 deleted$/m);
  } finally {
    await stopClean(gw);
  }
});

test('hookgate store purge: a bad or missing date is refused; without the index events are reported kept', async () => {
  const dir = tempDir();
  const store = storeFor(dir);
  for (const bad of ['yesterday', '2026-13-01', '2026-02-30', '2026-11-01T25:00:00Z', '11/01/2026', '']) {
    const r = await cli(['store', 'purge', '--before', bad, '--store', store]);
    assert.equal(r.code, 2, `${bad}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /--before: not an ISO 8601 date or date-time/);
    assert.equal(r.stdout, '');
  }
  let r = await cli(['store', 'purge', '--store', store]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--before DATE is required/);
  r = await cli(['store', 'frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /expected copy or purge/);
  // A store with today's schema (the index of migration 10): events go.
  r = await cli(['store', 'purge', '--before', '2999-01-01', '--store', store]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^events: 0 deleted$/m);
  // Without the index (dropped by hand), events are said to be kept.
  storeQuery(dir, 'DROP INDEX deliveries_by_event');
  r = await cli(['store', 'purge', '--before', '2999-01-01', '--store', store]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^events: kept \(the store has no index of deliveries by event_seq/m);
  assert.match(r.stdout, /^deliveries: 0 deleted$/m);
});

test('hookgate store purge never prints a password from the store URI', { skip: onPg ? false : 'needs PostgreSQL' }, async () => {
  const uri = storeFor(tempDir());
  const m = uri.match(/^(postgres(?:ql)?:\/\/)([^:@/]+)@(.*)$/);
  assert.ok(m, uri);
  const secret = 'S3cretPw-ret-9';
  // A server that is not there: the error names the address, redacted.
  const withPw = `${m[1]}${m[2]}:${secret}@127.0.0.1:1/nodb`;
  const r = await cli(['store', 'purge', '--before', '2999-01-01', '--store', withPw]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(secret));
  assert.match(r.stderr, /hookgate store purge: /);
});

test('two nodes sharing a PostgreSQL store purge together: each row counted once, no failed pass', { skip: onPg ? false : 'needs PostgreSQL' }, async () => {
  const dir = tempDir();
  const ret = 'retention = { events = "1s", deliveries = "1s", interval = "1s" }';
  const base = config('');
  const a = await startGateway({ dir, config: `${base}cluster = { node_id = "ret-a" }\n${ret}\n` });
  const b = await startGateway({ config: `${base}cluster = { node_id = "ret-b" }\n${ret}\n`, env: { HOOKGATE_STORE: a.store } });
  try {
    indexEvents(dir);
    const good = await createWebhook(a, rx, '/ok', ['user.created']);
    const N = 40;
    // b learns of the webhook at its next look at the shared state.
    let events = 0, deliveries = 0;
    const pub = async (gw, data) => {
      const e = await publishOk(gw, { type: 'user.created', data });
      events++;
      deliveries += e.deliveries;
      return e;
    };
    await until(async () => (await pub(b, { probe: true })).deliveries === 1, { what: 'node b to know the webhook' });
    for (let i = 1; i < N; i++) await pub(i % 2 ? a : b, { i });
    assert.ok(deliveries >= N);
    await until(() => count(dir, 'events') === 0 && count(dir, 'deliveries') === 0, { what: 'every row purged', timeout: 20000 });
    const sum = async (t) => (await purged(a, t)) + (await purged(b, t));
    // The counters move once the batch's commit is durable, a moment after
    // the rows are gone.
    await until(async () => (await sum('events')) >= events, { what: 'the counters' });
    assert.equal(await sum('events'), events);
    assert.equal(await sum('deliveries'), deliveries);
    assert.equal(await sum('attempts'), deliveries);
    assert.equal(count(dir, 'attempts'), 0);
    for (const gw of [a, b]) assert.doesNotMatch(gw.logs(), /purge pass stopped/);
    assert.equal((await listDeliveries(a, good.id)).deliveries.length, 0);
  } finally {
    await stopClean(b);
    await stopClean(a);
  }
});
