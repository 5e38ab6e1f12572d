// storage-full.test.mjs: a full disk, for real. The gateway's store and
// intake log live on a small tmpfs; the test fills it, then publishes events
// and creates webhooks: each must be acknowledged (202/201) or refused with
// 503 storage_full and Retry-After, never 500 and never a crash. Once space
// is freed the gateway accepts writes again without a restart, and every
// event it acknowledged is in the store, before and after a restart.
//
// Needs root (mount); skipped with a message otherwise. CI runs as root.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { sleep, expectError } from './lib/expect.mjs';

const SIZE_MB = 40;

function mountTmpfs() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { skip: 'needs root to mount a tmpfs' };
  const dir = tempDir('hookgate-full-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE_MB}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    return { skip: `cannot mount a tmpfs (${String(e.stderr || e.message).trim()})` };
  }
  return { dir };
}

const mnt = mountTmpfs();
const skip = mnt.skip ? `skipped: ${mnt.skip}` : false;
if (skip) console.log(`# storage-full.test.mjs ${skip}`);

let gw, wh;
const env = () => ({ HOOKGATE_STORE: join(mnt.dir, 'hookgate.db') });
const fillers = [];
const acked = new Set(); // event ids the gateway answered 202 for
const big = (n) => ({ blob: 'x'.repeat(n) });

// Writes files into the tmpfs until a write fails with ENOSPC, down to 4 KiB.
function fillDisk() {
  for (let chunk = 1 << 20; chunk >= 4096; chunk >>= 2) {
    const path = join(mnt.dir, `filler-${fillers.length}`);
    const fd = openSync(path, 'w');
    fillers.push(path);
    const buf = Buffer.alloc(chunk, 1);
    try {
      for (;;) writeSync(fd, buf);
    } catch (e) {
      if (e.code !== 'ENOSPC') throw e;
    } finally {
      closeSync(fd);
    }
  }
}

function freeDisk() {
  while (fillers.length > 0) unlinkSync(fillers.pop());
}

async function publish(data) {
  const res = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data } });
  if (res.status === 202) acked.add(res.json.id);
  return res;
}

function expectFull(res, what) {
  assert.notEqual(res.status, 500, `${what}: 500 on a full disk: ${res.body}`);
  const e = expectError(res, 503, 'storage_full');
  assert.match(res.headers['retry-after'] || '', /^[1-9]\d*$/, `${what}: Retry-After ${res.headers['retry-after']}`);
  return e;
}

async function eventIdsInStore() {
  const ids = new Set();
  let token = '';
  for (;;) {
    const q = token ? `&pageToken=${token}` : '';
    const res = await gw.request('GET', `/v1/webhooks/${wh}/deliveries?pageSize=100${q}`);
    assert.equal(res.status, 200, res.body);
    for (const d of res.json.deliveries) ids.add(d.eventId);
    if (!res.json.nextPageToken) return ids;
    token = res.json.nextPageToken;
  }
}

async function allAckedStored(timeoutMs) {
  let missing = [];
  for (const t0 = Date.now(); Date.now() - t0 < timeoutMs; await sleep(200)) {
    const ids = await eventIdsInStore();
    missing = [...acked].filter((id) => !ids.has(id));
    if (missing.length === 0) return;
  }
  assert.deepEqual(missing, [], 'acknowledged events missing from the store');
}

describe('a full disk', { skip }, () => {
  before(async () => {
    gw = await startGateway({ env: env() });
    // Deliveries would only add writes of their own: the test is about intake.
    assert.equal((await gw.request('POST', '/v1/admin/delivery/pause')).status, 200);
    const c = await gw.request('POST', '/v1/webhooks', { body: { url: 'https://full.example.test/h', events: ['user.created'] } });
    assert.equal(c.status, 201, c.body);
    wh = c.json.id;
    for (let i = 0; i < 5; i++) assert.equal((await publish({ n: i })).status, 202);
  });

  after(async () => {
    freeDisk();
    if (gw) {
      const { code, signal } = await gw.stop();
      assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs().slice(-4000)}`);
    }
    try {
      execFileSync('umount', [mnt.dir], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mnt.dir], { stdio: 'pipe' });
    }
  });

  it('answers writes 503 storage_full with Retry-After while full, and keeps serving', async () => {
    fillDisk();
    let fullPublish = 0, fullCreate = 0;
    // Big events make the store's write-ahead log grow into the missing
    // space; the first ones may still be taken (the intake log's segments
    // are written in advance, and the store's log may have room left).
    for (let i = 0; i < 40 && fullPublish < 3; i++) {
      const res = await publish(big(200 * 1024));
      if (res.status === 202) continue;
      expectFull(res, 'POST /v1/events');
      fullPublish++;
    }
    assert.ok(fullPublish >= 3, `no publish was refused on a full disk:\n${gw.logs().slice(-3000)}`);
    for (let i = 0; i < 40 && fullCreate < 2; i++) {
      const meta = Object.fromEntries(Array.from({ length: 50 }, (_, k) => [`k${k}`, 'm'.repeat(512)]));
      const res = await gw.request('POST', '/v1/webhooks', {
        body: { url: 'https://full.example.test/w', events: ['user.updated'], metadata: meta },
      });
      if (res.status === 201) continue;
      expectFull(res, 'POST /v1/webhooks');
      fullCreate++;
    }
    assert.ok(fullCreate >= 2, 'no webhook creation was refused on a full disk');
    const batch = await gw.request('POST', '/v1/events/batch', { body: { events: [{ type: 'user.created', data: big(100 * 1024) }] } });
    if (batch.status === 202) for (const e of batch.json.events) acked.add(e.id);
    else expectFull(batch, 'POST /v1/events/batch');
    // Reads still work, and the process is the same one.
    assert.equal((await gw.request('GET', '/healthz', { key: null })).status, 200);
    assert.equal((await gw.request('GET', `/v1/webhooks/${wh}`)).status, 200);
    assert.equal(gw.proc.exitCode, null);
    assert.doesNotMatch(gw.logs(), /level=error msg="internal error"/);
  });

  it('recovers once space is freed, without a restart, with every acknowledged event stored', async () => {
    freeDisk();
    let ok = null;
    for (let i = 0; i < 100 && !ok; i++) {
      const res = await publish({ after: i });
      if (res.status === 202) ok = res;
      else {
        expectFull(res, 'POST /v1/events after freeing space');
        await sleep(100);
      }
    }
    assert.ok(ok, 'publishing did not recover after space was freed');
    const c = await gw.request('POST', '/v1/webhooks', { body: { url: 'https://full.example.test/z', events: ['user.deleted'] } });
    assert.equal(c.status, 201, c.body);
    await allAckedStored(15000);
  });

  it('keeps every acknowledged event across a restart', async () => {
    const { code } = await gw.stop();
    assert.equal(code, 0, gw.logs().slice(-3000));
    gw = await startGateway({ env: env(), dir: gw.dir });
    await allAckedStored(5000);
    assert.ok(acked.size >= 6, `only ${acked.size} events were acknowledged`);
    assert.ok(readdirSync(mnt.dir).some((f) => f.startsWith('hookgate.db')));
  });
});
