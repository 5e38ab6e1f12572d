// store-busy.test.mjs: another process holds the SQLite store's write lock
// past the store's 5 s busy timeout (a backup tool, a sqlite3 shell left in
// a transaction). What needs the store answers 503 store_busy with
// Retry-After and keeps nothing; what runs in the background tries again;
// nothing is lost once the lock is free. (The intake log's side of the same
// lock: intake.test.mjs.)
//
// Run from the repository root: node --test tests/integration/store-busy.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { holdLock } from './lib/sqlite-hold.mjs';
import { startReceiver, ok } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, listDeliveries, until, sleep, stopClean, expectDeliveredOnce, SLOW } from './lib/delivery.mjs';
import { expectError } from './lib/expect.mjs';

test('writes the store cannot take while another process holds its write lock (an event, a webhook) are refused 503 store_busy, and kept nowhere', async () => {
  const dir = tempDir();
  const rx = await startReceiver();
  try {
    const gw = await startGateway({ config: deliveryConfig(), dir });
    try {
      const wh = await createWebhook(gw, rx, '/busy', ['*']);
      rx.on('/busy', ok());
      // An id of the publisher's own: the store's path, whose answer waits
      // for the store (SQLite's busy timeout is 5 s).
      const id = 'evt_busy_' + Date.now();
      const body = { id, type: 'user.created', data: { busy: true } };
      // A management write waits for the same lock: the same answer.
      const hook = { url: rx.url('/busy-hook'), events: ['user.created'] };
      const lock = await holdLock(dir);
      let r, w;
      try {
        [r, w] = await Promise.all([gw.request('POST', '/v1/events', { body }),
          gw.request('POST', '/v1/webhooks', { body: hook })]);
      } finally {
        await lock.release();
      }
      for (const res of [r, w]) {
        const e = expectError(res, 503, 'store_busy');
        assert.doesNotMatch(e.message, /internal/);
        assert.equal(res.headers['retry-after'], '1');
      }
      assert.doesNotMatch(gw.logs(), /level=error msg="internal error"/);
      // Nothing of either was kept: no delivery, none sent, one webhook.
      assert.equal((await listDeliveries(gw, wh.id, 'pageSize=100')).deliveries.length, 0);
      const hooks = await gw.request('GET', '/v1/webhooks');
      assert.equal(hooks.status, 200, hooks.body);
      assert.deepEqual(hooks.json.webhooks.map((x) => x.id), [wh.id]);
      await sleep(300 * SLOW);
      assert.equal(rx.received('/busy').length, 0);
      // The publisher tries again, as told: one event, delivered once.
      const again = await gw.request('POST', '/v1/events', { body });
      assert.equal(again.status, 202, again.body);
      assert.equal(again.json.id, id);
      await expectDeliveredOnce(gw, rx, wh, [id], '/busy');
    } finally {
      await stopClean(gw);
    }
  } finally {
    await rx.close();
  }
});

// gdb, which stops the gateway at a chosen point; scripts/install-deps
// --test installs it.
function haveGdb() {
  try {
    execFileSync('gdb', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

// The start's read of the pending deliveries must find the lock taken, and
// the gateway's start (its migrations) must not: gdb stops the gateway
// where its dispatcher starts, after the store opened and before that
// read is submitted, until the lock is held.
test('deliveries pending at a start the store cannot read yet are sent once it can, not left until the next start',
  { skip: haveGdb() ? false : 'needs gdb (scripts/install-deps --test)' }, async () => {
    const dir = tempDir();
    const rx = await startReceiver();
    try {
      // Three deliveries pending in the store, delivery paused.
      let gw = await startGateway({ config: deliveryConfig({ extra: 'paused = true' }), dir });
      const wh = await createWebhook(gw, rx, '/start', ['*']);
      rx.on('/start', ok());
      const ids = [];
      for (let i = 0; i < 3; i++) {
        const r = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data: { i } } });
        assert.equal(r.status, 202, r.body);
        ids.push(r.json.id);
      }
      await stopClean(gw);
      assert.equal(rx.received('/start').length, 0);
      const go = join(dir, 'go');
      gw = await startGateway({
        config: deliveryConfig(), dir,
        wrap: ['gdb', '-q', '-nx', '-batch', '-ex', 'set pagination off', '-ex', 'set startup-with-shell off',
          '-ex', 'handle SIGTERM nostop noprint pass', '-ex', 'handle SIGPIPE nostop noprint pass',
          '-ex', 'break hg_dispatcher_start', '-ex', 'run',
          '-ex', `shell while [ ! -e ${go} ]; do sleep 0.05; done`, '-ex', 'delete', '-ex', 'continue', '--args'],
      });
      const gateway = () => Number(readFileSync(`/proc/${gw.proc.pid}/task/${gw.proc.pid}/children`, 'utf8').trim());
      try {
        await until(() => /Breakpoint 1, .*hg_dispatcher_start/.test(gw.logs()), { timeout: 20000 * SLOW, what: 'gdb' });
        const lock = await holdLock(dir);
        try {
          writeFileSync(go, '');
          // The read fails after the store's busy timeout, and is tried
          // again; nothing is sent meanwhile.
          await until(() => /could not load pending deliveries.*error=busy/.test(gw.logs()),
            { timeout: 20000 * SLOW, what: 'the failed read of the pending deliveries' });
          assert.equal(rx.received('/start').length, 0);
        } finally {
          await lock.release();
        }
        await expectDeliveredOnce(gw, rx, wh, ids, '/start');
        assert.match(gw.logs(), /could not load pending deliveries; trying again in 1 s/);
        assert.match(gw.logs(), /delivery queue loaded.*pending=3/);
      } finally {
        process.kill(gateway(), 'SIGTERM');
        await gw.exited;
      }
      assert.match(gw.logs(), /msg=stopped/);
    } finally {
      await rx.close();
    }
  });
