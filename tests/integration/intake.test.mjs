// intake.test.mjs: the intake log (docs/architecture.md). A single event is
// answered once it is durable in the log, before the store has it; these
// tests take SQLite's write lock from another process (tests/tools/
// sqlite_hold) so that the store cannot have it, then kill or stop the
// gateway and check that the next start stores and delivers every answered
// event exactly once in the store.
//
// Run from the repository root: node --test tests/integration/intake.test.mjs
// (HOOKGATE_BIN names the binary, HG_SQLITE_HOLD the lock holder; defaults
// under build/). tests/integration/store-busy.test.mjs holds the same lock
// for the store's own path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { holdLock } from './lib/sqlite-hold.mjs';
import { startReceiver, ok } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, listDeliveries, until, sleep, stopClean, expectDeliveredOnce, SLOW } from './lib/delivery.mjs';

// Runs fn while the store cannot write, waits until the store has given up
// on a job and is retrying it (after its 5 s busy timeout), runs atFailure
// then, and lets the store write again. Resolves with fn's result.
async function whileStoreFails(gw, dir, fn, atFailure = () => {}) {
  const lock = await holdLock(dir);
  try {
    const out = await fn();
    await until(() => /accepted event could not be stored; trying again/.test(gw.logs()),
      { timeout: 20000 * SLOW, what: 'the store failing' });
    await atFailure();
    return out;
  } finally {
    await lock.release();
  }
}

// Asserts that no retry is logged for a while: the retries have ended.
async function expectNoMoreRetries(gw) {
  const count = () => gw.logs().split('\n').filter((l) => /trying again/.test(l)).length;
  const tries = count();
  await sleep(1000 * SLOW);
  assert.equal(count(), tries);
}

function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

async function publishMany(gw, n, tag) {
  const rs = await Promise.all(Array.from({ length: n }, (_, i) =>
    gw.request('POST', '/v1/events', { body: { type: 'user.created', data: { tag, i } } })));
  for (const r of rs) assert.equal(r.status, 202, r.body);
  return rs.map((r) => r.json.id);
}

test('events answered while the store cannot write survive SIGKILL, stored once each', async () => {
  const dir = tempDir();
  const rx = await startReceiver();
  const config = deliveryConfig();
  try {
    let gw = await startGateway({ config, dir });
    const wh = await createWebhook(gw, rx, '/kill', ['*']);
    rx.on('/kill', ok());
    const lock = await holdLock(dir);
    let ids;
    try {
      // Answered although the store is locked: the log has them.
      ids = await publishMany(gw, 20, 'kill');
      const m = (await gw.request('GET', '/metrics')).body;
      assert.ok(metric(m, 'hookgate_intake_records_total') >= 20, m);
      gw.proc.kill('SIGKILL');
      assert.equal((await gw.exited).signal, 'SIGKILL');
    } finally {
      await lock.release();
    }
    gw = await startGateway({ config, dir });
    try {
      assert.match(gw.logs(), /intake log applied.*records=20 stored=20/);
      await expectDeliveredOnce(gw, rx, wh, ids, '/kill');
    } finally {
      await stopClean(gw);
    }
    // A second start finds nothing left to store.
    gw = await startGateway({ config, dir });
    try {
      assert.doesNotMatch(gw.logs(), /intake log applied/);
      const list = await listDeliveries(gw, wh.id, 'pageSize=100');
      assert.equal(list.deliveries.length, 20);
    } finally {
      await stopClean(gw);
    }
  } finally {
    await rx.close();
  }
});

test('an answered event the store fails to store is stored by a retry once the store writes again', async () => {
  const dir = tempDir();
  const rx = await startReceiver();
  const config = deliveryConfig();
  try {
    let gw = await startGateway({ config, dir });
    const wh = await createWebhook(gw, rx, '/retry', ['*']);
    rx.on('/retry', ok());
    // Answered, but not delivered while the store fails.
    let ids = await whileStoreFails(gw, dir, () => publishMany(gw, 10, 'retry'),
      () => assert.equal(rx.received('/retry').length, 0));
    ids = ids.concat(await publishMany(gw, 5, 'after'));
    await expectDeliveredOnce(gw, rx, wh, ids, '/retry');
    assert.match(gw.logs(), /accepted event was stored after retrying/);
    await stopClean(gw);
    // Nothing was left for the next start to store.
    gw = await startGateway({ config, dir });
    try {
      assert.doesNotMatch(gw.logs(), /intake log applied.*stored=[1-9]/);
      assert.equal((await listDeliveries(gw, wh.id, 'pageSize=100')).deliveries.length, 15);
    } finally {
      await stopClean(gw);
    }
  } finally {
    await rx.close();
  }
});

test('a publisher that reuses an answered id while the store is failing gets one event, stored once', async () => {
  const dir = tempDir();
  const rx = await startReceiver();
  try {
    const gw = await startGateway({ config: deliveryConfig(), dir });
    try {
      const wh = await createWebhook(gw, rx, '/reuse', ['*']);
      rx.on('/reuse', ok());
      // The same id, sent by the publisher once the first event's job has
      // failed (the log line), while the lock is still held: its own job
      // waits for the lock, which is released a moment later. Sent before
      // that failure, it could share the first job's group (the store
      // thread runs at nice 10 beside the intake log and, on a loaded
      // machine, may take both jobs at once) and fail with it: a 503
      // store_busy for a store that stayed locked past its 5 s busy
      // timeout (the next test), which is right, but not what this test
      // is about.
      let first, second;
      await whileStoreFails(gw, dir, async () => {
        [first] = await publishMany(gw, 1, 'reuse');
      }, async () => {
        second = gw.request('POST', '/v1/events', { body: { id: first, type: 'user.created', data: { again: true } } });
        await sleep(300 * SLOW);
      });
      const r = await second;
      assert.equal(r.status, 202, r.body);
      assert.equal(r.json.id, first);
      // The retry finds the event by its id: stored, and not tried again.
      await until(() => /accepted event was stored after retrying/.test(gw.logs()),
        { timeout: 20000 * SLOW, what: 'the retry' });
      await expectDeliveredOnce(gw, rx, wh, [first], '/reuse');
      await sleep(500 * SLOW);
      assert.equal(rx.received('/reuse').length, 1);
      await expectNoMoreRetries(gw);
    } finally {
      await stopClean(gw);
    }
  } finally {
    await rx.close();
  }
});

test('an answered event whose id another organization took meanwhile is dropped loudly, not retried forever', async () => {
  const dir = tempDir();
  const rx = await startReceiver();
  try {
    const gw = await startGateway({ config: deliveryConfig(), dir });
    try {
      await createWebhook(gw, rx, '/taken', ['*']);
      rx.on('/taken', ok());
      // The other organization's event must reach the store before the
      // first event's retry does. Store jobs run in the order submitted,
      // a group at a time, and a group fails whole when the write lock
      // stays taken past the store's 5 s busy timeout. So: the first
      // event's job fails (attempt 1); its retry's group then waits for
      // the lock, and the second event, sent a second later, queues
      // behind it; that group fails too (attempt 2), and the second's
      // group starts at once, ahead of the next retry (200 ms later). The
      // lock is released while the second's group waits for it.
      const lock = await holdLock(dir);
      let second;
      try {
        const [id] = await publishMany(gw, 1, 'taken');
        const attempts = () => gw.logs().split('\n').filter((l) => /trying again/.test(l)).length;
        await until(() => attempts() >= 1, { timeout: 20000 * SLOW, what: 'the first failed store job' });
        // Well inside the retry's 5 s wait for the lock, and long enough for
        // its timer (100 ms) on a loaded machine.
        await sleep(Math.min(1000 * SLOW, 3000));
        second = gw.request('POST', '/v1/events',
          { body: { id, organizationId: 'org_other', type: 'user.created', data: { other: true } } });
        await until(() => attempts() >= 2, { timeout: 20000 * SLOW, what: 'the retry failing too' });
      } finally {
        await lock.release();
      }
      const r = await second;
      assert.equal(r.status, 202, r.body);
      await until(() => /accepted event cannot be stored and is dropped/.test(gw.logs()),
        { timeout: 20000 * SLOW, what: 'the drop' });
      await expectNoMoreRetries(gw);
      // Publishing from the log resumes: the hold is gone. A record is
      // counted once the log's fdatasync returns, which may come after the
      // answer (the store may have the event first): the counts are
      // awaited, and stay put if the events took the store's path.
      const records = async () =>
        metric((await gw.request('GET', '/metrics')).body, 'hookgate_intake_records_total');
      const before = await records();
      await publishMany(gw, 3, 'later');
      await until(async () => (await records()) - before >= 3,
        { timeout: 10000 * SLOW, what: 'three publishes answered through the log' });
    } finally {
      await stopClean(gw);
    }
  } finally {
    await rx.close();
  }
});

test('a gateway stopped while the store cannot write leaves the answered events to the next start', async () => {
  const dir = tempDir();
  const rx = await startReceiver();
  const config = deliveryConfig();
  try {
    let gw = await startGateway({ config, dir });
    const wh = await createWebhook(gw, rx, '/stop', ['*']);
    rx.on('/stop', ok());
    const lock = await holdLock(dir);
    let ids;
    try {
      ids = await publishMany(gw, 10, 'stop');
      await until(() => /accepted event could not be stored; trying again/.test(gw.logs()),
        { timeout: 20000 * SLOW, what: 'the store failing' });
      // A clean stop (exit 0, nothing leaked under a sanitizer) that gives up the retries.
      await stopClean(gw);
      assert.match(gw.logs(), /intake log keeps it for the next start/);
    } finally {
      await lock.release();
    }
    gw = await startGateway({ config, dir });
    try {
      assert.match(gw.logs(), /intake log applied.*records=10 stored=10/);
      await expectDeliveredOnce(gw, rx, wh, ids, '/stop');
    } finally {
      await stopClean(gw);
    }
  } finally {
    await rx.close();
  }
});

test('intake_log = false: a publish is answered only once the store has it', async () => {
  const dir = tempDir();
  const rx = await startReceiver();
  try {
    const gw = await startGateway({ config: deliveryConfig({ top: 'intake_log = false' }), dir });
    try {
      const wh = await createWebhook(gw, rx, '/off', ['*']);
      rx.on('/off', ok());
      const lock = await holdLock(dir);
      let answered = false;
      let pending;
      try {
        pending = gw.request('POST', '/v1/events', { body: { type: 'user.created', data: { off: 1 } } })
          .then((r) => { answered = true; return r; });
        // A negative observation: the store is locked, so no answer yet.
        await sleep(300 * SLOW);
        assert.equal(answered, false);
      } finally {
        await lock.release();
      }
      const r = await pending;
      assert.equal(r.status, 202, r.body);
      const m = (await gw.request('GET', '/metrics')).body;
      assert.equal(metric(m, 'hookgate_intake_records_total'), undefined);
      await expectDeliveredOnce(gw, rx, wh, [r.json.id], '/off');
    } finally {
      await stopClean(gw);
    }
  } finally {
    await rx.close();
  }
});
