// durability.test.mjs: a 201 means the webhook is on disk. The gateway is
// SIGKILLed in the middle of a burst of creates, restarted on the same
// store, and every acknowledged webhook must be there, whole. Also: a store
// written by a newer binary is refused at startup.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { haveStoreShell, onPg, storeQuery } from './lib/store.mjs';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { expectError } from './lib/expect.mjs';

const BURST = 300;
const KILL_AFTER = 100;
const CYCLES = 3;
const WINDOW = 50;

// The store read behind the gateway's back with its own shell (sqlite3 or
// psql), by the gateway's directory.
const HAVE_SQLITE = haveStoreShell();
const sql = (dir, q) => storeQuery(dir, q);
// The schema version: SQLite's user_version, PostgreSQL's hookgate_schema.
const getVersion = (dir) => Number(sql(dir, onPg ? 'SELECT version FROM hookgate_schema' : 'PRAGMA user_version'));
const setVersion = (dir, v) => sql(dir, onPg ? `UPDATE hookgate_schema SET version = ${v}` : `PRAGMA user_version = ${v}`);
// A whole, consistent file (SQLite; PostgreSQL checks its own pages and keys).
const checkIntegrity = (dir) => {
  if (onPg) return;
  assert.equal(sql(dir, 'PRAGMA integrity_check'), 'ok');
  assert.equal(sql(dir, 'PRAGMA foreign_key_check'), '');
};

// Fires BURST creates, WINDOW of them in flight at any time, and SIGKILLs
// the gateway as the KILL_AFTER-th answer arrives. (All 300 at once would
// all be committed and answered before the signal lands; a window keeps the
// gateway busy with creates in every stage when it dies.) Resolves with the
// acknowledged webhooks.
async function burstAndKill(gw, cycle) {
  const acked = [];
  let answered = 0, started = 0;
  let killed = false;
  const one = async (i) => {
    const url = `https://c${cycle}-n${i}.test/h`;
    let res;
    try {
      res = await gw.request('POST', '/v1/webhooks', { body: { url, events: ['user.*'], metadata: { cycle: String(cycle), n: String(i) } } });
    } catch {
      return; // the connection died with the process: no answer, no promise
    }
    answered++;
    // Every answer that arrives at all is a 201: the kill only cuts answers off.
    assert.equal(res.status, 201, `create failed: ${res.status} ${res.body}`);
    acked.push({ id: res.json.id, url, secret: res.json.secret });
    if (answered === KILL_AFTER && !killed) {
      killed = true;
      gw.proc.kill('SIGKILL');
    }
  };
  const lane = async () => {
    while (!killed && started < BURST) await one(started++);
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  if (!killed) gw.proc.kill('SIGKILL');
  const { signal } = await gw.exited;
  assert.equal(signal, 'SIGKILL', 'the gateway died by SIGKILL, not on its own');
  return { acked, answered, started };
}

async function verify(gw, acked) {
  // Every acknowledged create is there, as it was acknowledged.
  for (let i = 0; i < acked.length; i += 50) {
    await Promise.all(acked.slice(i, i + 50).map(async (w) => {
      const res = await gw.request('GET', `/v1/webhooks/${w.id}`);
      assert.equal(res.status, 200, `acknowledged webhook ${w.id} lost after SIGKILL: ${res.body}`);
      assert.equal(res.json.url, w.url);
      assert.deepEqual(res.json.events, ['user.*']);
    }));
  }
  // Whatever else made it is whole and listed exactly once.
  const ids = [];
  let token = null;
  do {
    const res = await gw.request('GET', `/v1/webhooks?pageSize=100${token ? `&pageToken=${token}` : ''}`);
    assert.equal(res.status, 200, res.body);
    for (const w of res.json.webhooks) {
      assert.match(w.url, /^https:\/\/c\d-n\d+\.test\/h$/);
      assert.deepEqual(w.events, ['user.*']);
      assert.equal(w.metadata.cycle, w.url.match(/c(\d)/)[1]);
    }
    ids.push(...res.json.webhooks.map((w) => w.id));
    token = res.json.nextPageToken;
  } while (token !== null);
  assert.equal(new Set(ids).size, ids.length);
  const listed = new Set(ids);
  for (const w of acked) assert.ok(listed.has(w.id), `${w.id} missing from the listing`);
  return ids.length;
}

function checkFile(db) {
  if (!HAVE_SQLITE) return;
  checkIntegrity(db);
  // Each create is one transaction: no webhook without its secret or its
  // subscription rows, no orphans.
  assert.equal(sql(db, 'SELECT count(*) FROM webhooks w WHERE NOT EXISTS (SELECT 1 FROM webhook_secrets s WHERE s.webhook_id = w.id)'), '0');
  assert.equal(sql(db, 'SELECT count(*) FROM webhooks w WHERE NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.webhook_id = w.id)'), '0');
}

describe('durability', () => {
  it(`every 201 survives SIGKILL mid-burst, ${CYCLES} times over`, async (t) => {
    const dir = tempDir();
    const db = dir;
    const acked = [];
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      const gw = await startGateway({ dir });
      try {
        const n = await verify(gw, acked);
        checkFile(db);
        const r = await burstAndKill(gw, cycle);
        t.diagnostic(`cycle ${cycle}: ${n} webhooks before; ${r.started} sent, ${r.acked.length} acknowledged when killed`);
        assert.ok(r.acked.length >= KILL_AFTER, `only ${r.acked.length} creates acknowledged`);
        assert.ok(r.started < BURST, 'the kill landed after the burst, not in the middle of it');
        acked.push(...r.acked);
      } finally {
        gw.proc.kill('SIGKILL');
        await gw.exited;
      }
    }
    const gw = await startGateway({ dir });
    try {
      const n = await verify(gw, acked);
      t.diagnostic(`after ${CYCLES} kills: ${acked.length} acknowledged, ${n} stored`);
      checkFile(db);
      // The store still takes writes.
      const res = await gw.request('POST', '/v1/webhooks', { body: { url: 'https://c9-n0.test/h', events: ['user.*'], metadata: { cycle: '9' } } });
      assert.equal(res.status, 201, res.body);
    } finally {
      const { code } = await gw.stop();
      assert.equal(code, 0, gw.logs());
    }
    checkFile(db);
  });

  it('refuses a store whose schema is newer than the binary, naming the version', { skip: !HAVE_SQLITE && 'sqlite3 CLI not installed' }, async () => {
    const dir = tempDir();
    const db = dir;
    let gw = await startGateway({ dir });
    const c = await gw.request('POST', '/v1/webhooks', { body: { url: 'https://keep.test/h', events: ['*'] } });
    assert.equal(c.status, 201, c.body);
    assert.equal((await gw.stop()).code, 0);
    const current = getVersion(db);
    assert.ok(current >= 1);
    const newer = current + 7;
    setVersion(db, newer);

    await assert.rejects(startGateway({ dir }), (err) => {
      assert.match(err.message, /exited \(\d+\) before listening/, err.message);
      assert.doesNotMatch(err.message, /exited \(0\)/, 'refusing to start must not exit 0');
      assert.match(err.message, new RegExp(`schema version ${newer}\\b`), err.message);
      assert.match(err.message, /newer|upgrade/);
      return true;
    });
    // The refusal left the file alone: not migrated down, not damaged.
    assert.equal(getVersion(db), newer);
    checkIntegrity(db);

    // Put the version back: the data is intact and served again.
    setVersion(db, current);
    gw = await startGateway({ dir });
    try {
      const got = await gw.request('GET', `/v1/webhooks/${c.json.id}`);
      assert.equal(got.status, 200, got.body);
      assert.equal(got.json.url, 'https://keep.test/h');
      expectError(await gw.request('GET', '/v1/webhooks/wh_01aaaaaaaaaaaaaaaaaaaaaaaa'), 404, 'not_found');
    } finally {
      assert.equal((await gw.stop()).code, 0);
    }
  });
});
