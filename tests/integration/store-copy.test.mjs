// store-copy.test.mjs: `hookgate store copy --from FILE.db --to postgresql://...`
// moves a SQLite deployment into PostgreSQL: a gateway that ran on SQLite
// (webhooks v1, v1a and of an organization, a rotated secret, an API key
// made with the CLI, deliveries that succeeded, retried and failed) is
// copied, and a gateway on the PostgreSQL database answers the same
// webhooks, deliveries and attempts, accepts the key, and delivers a new
// event (whose seq does not collide) signed with the same secrets.
// Refusals: a non-empty target (named table, target unchanged), a --to that
// is no PostgreSQL URI, a missing --from (no file created); a password in
// the URI is never printed.
//
// Needs PostgreSQL: runs when HG_TEST_STORE=postgresql (the integration-pg
// suite; HG_TEST_PG_URI names the server), skipped otherwise.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { BIN, startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver, failThen, status, ok } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publishOk, waitDelivery, listDeliveries, getDelivery, until, stopClean } from './lib/delivery.mjs';
import { makeKey } from './lib/keys.mjs';
import { onPg, newPgDatabase } from './lib/store.mjs';

const skip = onPg ? false : 'needs PostgreSQL (HG_TEST_STORE=postgresql)';
const TABLES = ['webhooks', 'webhook_health', 'webhook_lines', 'webhook_secrets', 'webhook_events', 'api_keys', 'events', 'deliveries', 'attempts'];

const require = createRequire(new URL('../package.json', import.meta.url));

// Runs the CLI; resolves {code, stdout, stderr} whatever the exit code.
function cli(args) {
  return new Promise((resolve) => {
    execFile(BIN, args, { env: { ...process.env, HOOKGATE_LOG_LEVEL: 'error' } }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

function psql(uri, sql) {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', uri, '-c', sql],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

const counts = (uri) => Object.fromEntries(TABLES.map((t) => [t, Number(psql(uri, `SELECT count(*) FROM ${t}`))]));

// The same address with password pw for its user (null when it names none).
function withPassword(uri, pw) {
  const m = uri.match(/^(postgres(?:ql)?:\/\/)([^:@/]+)@(.*)$/);
  return m ? `${m[1]}${m[2]}:${pw}@${m[3]}` : null;
}

const sigHeaders = (r) => ({
  'webhook-id': r.headers['webhook-id'],
  'webhook-timestamp': r.headers['webhook-timestamp'],
  'webhook-signature': r.headers['webhook-signature'],
});

let rx;
let src; // what the SQLite gateway left: { db, hooks, deliveries, key, secrets }
let target; // the PostgreSQL copy's address
let copied; // the copy's output

before(async () => {
  if (!onPg) return;
  rx = await startReceiver();
  rx.on('/retry', failThen(2)).on('/dead', status(500, { body: 'down' }));
  const dir = tempDir();
  const db = join(dir, 'hookgate.db');
  const gw = await startGateway({ config: deliveryConfig(), dir, env: { HOOKGATE_STORE: db } });
  try {
    const v1 = await createWebhook(gw, rx, '/v1', ['user.created', 'user.updated']);
    const rot = await gw.request('POST', `/v1/webhooks/${v1.id}/rotate-secret`, { body: { gracePeriodHours: 1 } });
    assert.equal(rot.status, 200, rot.body);
    const v1a = await createWebhook(gw, rx, '/v1a', ['user.created'], { signatureScheme: 'v1a' });
    const org = await createWebhook(gw, rx, '/org', ['user.*'], {
      organizationId: 'org-copy', metadata: { team: 'a' }, rateLimit: 2.5, maxConcurrency: 3, ordering: 'fifo',
    });
    const retry = await createWebhook(gw, rx, '/retry', ['user.created']);
    const dead = await createWebhook(gw, rx, '/dead', ['user.created']);
    const key = await makeKey(gw, 'webhooks:read,events:publish');

    const events = [];
    events.push(await publishOk(gw, { type: 'user.created', data: { n: 1, s: 'é\n\u2028x' } }));
    events.push(await publishOk(gw, { type: 'user.updated', data: { n: 2 } }));
    events.push(await publishOk(gw, { type: 'user.created', data: { n: 3, big: 'y'.repeat(5000) } }));
    for (const e of [events[0], events[2]]) {
      for (const wh of [v1, v1a, retry, dead]) await waitDelivery(gw, wh.id, e.id);
    }
    await waitDelivery(gw, v1.id, events[1].id);

    const hooks = {};
    for (const wh of [v1, v1a, org, retry, dead]) {
      const r = await gw.request('GET', `/v1/webhooks/${wh.id}`);
      assert.equal(r.status, 200, r.body);
      hooks[wh.id] = r.json;
    }
    const deliveries = {};
    for (const id of Object.keys(hooks)) {
      const list = await listDeliveries(gw, id, 'pageSize=100');
      deliveries[id] = { list, details: [] };
      for (const d of list.deliveries) deliveries[id].details.push(await getDelivery(gw, id, d.id));
    }
    // The receiver's two failures fall on the deliveries to /retry in
    // whatever order they came: four attempts in all, both delivered.
    const retried = deliveries[retry.id].details;
    assert.equal(retried.reduce((n, d) => n + d.attempts.length, 0), 4);
    assert.ok(retried.every((d) => d.status === 'success'));
    assert.equal(deliveries[dead.id].details[0].status, 'failed');
    src = { db, hooks, deliveries, key, events, ids: { v1, v1a, org, retry, dead }, secrets: [v1.secret, rot.json.secret] };
  } finally {
    await stopClean(gw);
  }
  target = newPgDatabase();
  copied = await cli(['store', 'copy', '--from', src.db, '--to', target]);
});

after(async () => {
  await rx?.close();
});

test('store copy: exit 0, a line per table with its count, a verified line; leases left empty', { skip }, async () => {
  assert.equal(copied.code, 0, `stdout:\n${copied.stdout}\nstderr:\n${copied.stderr}`);
  const out = copied.stdout;
  assert.match(out, /hookgate\.db: (schema version \d+ \(current\)|migrated from schema version \d+ to \d+ before copying)/);
  const n = counts(target);
  for (const t of TABLES) assert.match(out, new RegExp(`^${t}: ${n[t]} copied$`, 'm'), out);
  assert.match(out, /^verified: \d+ rows and \d+ payload bytes on both sides; committed to postgresql:/m);
  assert.equal(n.webhooks, 5);
  assert.equal(n.webhook_health, 1); // /dead's streak: its 2 deliveries exhausted (the others succeeded)
  assert.equal(n.webhook_lines, 1); // the organization's webhook is ordered (fifo)
  assert.equal(src.hooks[src.ids.dead.id].exhaustedDeliveries, 2);
  assert.equal(n.api_keys, 1);
  assert.equal(n.events, 3);
  assert.equal(n.deliveries, 9); // 3 to v1, 2 each to v1a, retry, dead; none to the organization's
  assert.ok(n.webhook_secrets >= 6, `webhook_secrets ${n.webhook_secrets}`); // v1 has two after rotating
  assert.equal(n.attempts, 3 + 2 + 4 + 2 * 4); // /retry: 2 failures + 2; /dead: every try of the schedule
  assert.equal(psql(target, 'SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL OR lease_until IS NOT NULL'), '0');
  // The payload bytes came over exactly (non-ASCII, escapes).
  const bytes = Number(copied.stdout.match(/(\d+) payload bytes/)[1]);
  assert.equal(Number(psql(target, 'SELECT sum(octet_length(payload)) FROM events')), bytes);
});

test('a gateway on the copy: same webhooks, deliveries, attempts; the key works; a new event delivers, signed alike', { skip }, async () => {
  assert.equal(copied.code, 0, copied.stderr);
  const gw = await startGateway({ config: deliveryConfig(), env: { HOOKGATE_STORE: target } });
  try {
    for (const [id, before] of Object.entries(src.hooks)) {
      const r = await gw.request('GET', `/v1/webhooks/${id}`);
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(r.json, before);
    }
    const all = await gw.request('GET', '/v1/webhooks?pageSize=100');
    assert.equal(all.status, 200, all.body);
    assert.deepEqual(all.json.webhooks.map((w) => w.id).sort(), Object.keys(src.hooks).sort());
    const org = await gw.request('GET', '/v1/webhooks?organizationId=org-copy');
    assert.deepEqual(org.json.webhooks.map((w) => w.id), [src.ids.org.id]);
    assert.equal(src.hooks[src.ids.v1a.id].signatureScheme, 'v1a');
    // Flow control came over (the deepEqual above compares them too).
    assert.equal(src.hooks[src.ids.org.id].rateLimit, 2.5);
    assert.equal(src.hooks[src.ids.org.id].maxConcurrency, 3);
    assert.equal(src.hooks[src.ids.org.id].ordering, 'fifo');

    for (const [id, before] of Object.entries(src.deliveries)) {
      assert.deepEqual(await listDeliveries(gw, id, 'pageSize=100'), before.list);
      for (const d of before.details) assert.deepEqual(await getDelivery(gw, id, d.id), d);
    }

    // The key made on SQLite: its hash (a blob) came over.
    const withKey = await gw.request('GET', '/v1/webhooks', { key: src.key.key });
    assert.equal(withKey.status, 200, withKey.body);

    // A new event: its seq follows the copied ones (no collision), it goes
    // out, and both secrets of the rotated webhook still verify it.
    const maxSeq = Number(psql(target, 'SELECT max(seq) FROM events'));
    const r = await gw.request('POST', '/v1/events', { key: src.key.key, body: { type: 'user.updated', data: { after: 'copy' } } });
    assert.equal(r.status, 202, r.body);
    const d = await waitDelivery(gw, src.ids.v1.id, r.json.id);
    assert.equal(d.status, 'success', JSON.stringify(d));
    await until(() => Number(psql(target, 'SELECT max(seq) FROM events')) > maxSeq, { what: 'the new event stored' });
    const [req] = await rx.waitFor((q) => q.path === '/v1' && q.headers['webhook-id'] === r.json.id);
    const { Webhook } = require('standardwebhooks');
    for (const secret of src.secrets) {
      assert.doesNotThrow(() => new Webhook(secret).verify(req.body.toString('utf8'), sigHeaders(req)), secret.slice(0, 10));
    }
  } finally {
    await stopClean(gw);
  }
});

test('a target that holds rows is refused, naming a table, and left unchanged', { skip }, async () => {
  assert.equal(copied.code, 0, copied.stderr);
  const before = counts(target);
  const r = await cli(['store', 'copy', '--from', src.db, '--to', target]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /already holds rows in table (webhooks|webhook_health|webhook_lines|webhook_secrets|webhook_events|api_keys|events|deliveries|attempts)/);
  assert.equal(r.stdout, '');
  assert.deepEqual(counts(target), before);
});

test('--to that is no PostgreSQL URI, a missing --from, missing options: refused', { skip }, async () => {
  const dir = tempDir();
  let r = await cli(['store', 'copy', '--from', src.db, '--to', join(dir, 'other.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--to must be a PostgreSQL URI/);
  assert.equal(existsSync(join(dir, 'other.db')), false);

  const missing = join(dir, 'sub', 'missing.db');
  const fresh = newPgDatabase();
  r = await cli(['store', 'copy', '--from', missing, '--to', fresh]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /missing\.db: no such SQLite database file/);
  assert.equal(existsSync(missing), false, 'no SQLite file made');
  assert.equal(existsSync(join(dir, 'sub')), false, 'no folder made');

  r = await cli(['store', 'copy', '--from', fresh, '--to', fresh]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--from must be the path of a SQLite database file/);

  r = await cli(['store', 'copy', '--from', src.db]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--to/);
});

test('a password in the URI never shows, on success or failure', { skip }, async () => {
  const PW = 'sekrit';
  const outputs = [];
  // An unreachable server: the connection error names the address.
  outputs.push(await cli(['store', 'copy', '--from', src.db, '--to', `postgresql://hookgate:${PW}@127.0.0.1:1/hookgate?connect_timeout=2`]));
  const fresh = withPassword(newPgDatabase(), PW);
  if (fresh !== null) {
    // The test server trusts local connections: the password is ignored, so
    // the copy goes through, then is refused the second time.
    const ok1 = await cli(['store', 'copy', '--from', src.db, '--to', fresh]);
    assert.equal(ok1.code, 0, ok1.stderr);
    assert.match(ok1.stdout, /committed to postgresql:\/\/hookgate:\*\*\*@/);
    outputs.push(ok1);
    const again = await cli(['store', 'copy', '--from', src.db, '--to', fresh]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds rows/);
    outputs.push(again);
  }
  assert.notEqual(outputs[0].code, 0);
  for (const o of outputs) {
    assert.ok(!o.stdout.includes(PW) && !o.stderr.includes(PW), `password shown:\n${o.stdout}\n${o.stderr}`);
  }
});
