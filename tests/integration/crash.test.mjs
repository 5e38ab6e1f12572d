// crash.test.mjs: at-least-once delivery across SIGKILL. Events are
// published in a loop while the gateway is killed at random moments and
// restarted on the same store; every event that was answered 202 must reach
// the receiver (matched by webhook-id) once the last gateway has drained.
// A delivery on the wire when the gateway dies is sent again after the
// restart with the same webhook-id.
//
// The kill moments come from a seeded generator; the seed is printed as a
// test diagnostic, and CRASH_SEED=<n> replays a run.
//
// Run from the repository root: node --test tests/integration/crash.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver, hang, ok } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publishOk, waitDelivery, until, sleep, stopClean, SLOW } from './lib/delivery.mjs';

const CYCLES = 4;
const PUBLISHERS = 4;

// mulberry32: a small seeded generator, so a failing run can be replayed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function kill(gw) {
  gw.proc.kill('SIGKILL');
  const { signal } = await gw.exited;
  assert.equal(signal, 'SIGKILL');
}

test('SIGKILL at random moments loses no accepted event', async (t) => {
  const seed = Number(process.env.CRASH_SEED) || Math.floor(Math.random() * 2 ** 31);
  t.diagnostic(`CRASH_SEED=${seed}`);
  const rand = rng(seed);
  const dir = tempDir();
  const rx = await startReceiver();
  const accepted = new Map(); // event id -> cycle
  const config = deliveryConfig();
  let wh;
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const gw = await startGateway({ config, dir });
      if (!wh) wh = await createWebhook(gw, rx, '/crash', ['*']);
      let stop = false;
      let firstAccepted;
      const gotOne = new Promise((resolve) => { firstAccepted = resolve; });
      const unexpected = [];
      const publisher = async (k) => {
        for (let i = 0; !stop; i++) {
          let r;
          try {
            r = await gw.request('POST', '/v1/events', {
              body: { type: 'user.created', data: { cycle, publisher: k, i } },
            });
          } catch {
            return; // the gateway died under this request: its outcome is unknown
          }
          if (r.status === 202) {
            accepted.set(r.json.id, cycle);
            firstAccepted();
          } else {
            unexpected.push(`${r.status} ${r.body}`);
          }
        }
      };
      const loops = Array.from({ length: PUBLISHERS }, (_, k) => publisher(k));
      let timer;
      await Promise.race([gotOne, new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`cycle ${cycle}: no 202 within 10 s\n${gw.logs().slice(-3000)}`)), 10000 * SLOW);
      })]);
      clearTimeout(timer);
      // Kill while publishing and delivering: 20 to 600 ms after the first 202.
      await sleep((20 + rand() * 580) * SLOW);
      await kill(gw);
      stop = true;
      await Promise.all(loops);
      assert.deepEqual(unexpected, [], `cycle ${cycle}: answers other than 202`);
      t.diagnostic(`cycle ${cycle}: ${[...accepted.values()].filter((c) => c === cycle).length} accepted, ` +
        `${rx.requests.length} requests received so far`);
    }
    assert.ok(accepted.size > 0);
    for (let c = 0; c < CYCLES; c++) assert.ok([...accepted.values()].includes(c), `no event accepted in cycle ${c}`);

    const gw = await startGateway({ config, dir });
    try {
      const seen = () => new Set(rx.requests.map((r) => r.headers['webhook-id']));
      await until(() => {
        const s = seen();
        const missing = [...accepted.keys()].filter((id) => !s.has(id));
        return missing.length === 0 ? true : { done: false, missing: missing.length, example: missing[0] };
      }, { timeout: 30000, every: 100, what: 'every accepted event at the receiver' });
      const dupes = rx.requests.length - seen().size;
      t.diagnostic(`${accepted.size} accepted events delivered; ${dupes} duplicate sends (at least once)`);
      // Every request the receiver got is an event of this test, byte-for-byte
      // the publisher's data.
      for (const r of rx.requests) {
        const body = JSON.parse(r.body);
        assert.equal(body.type, 'user.created');
        assert.equal(typeof body.data.cycle, 'number');
      }
    } finally {
      await stopClean(gw);
    }
  } finally {
    await rx.close();
  }
});

test('a delivery in flight at SIGKILL is sent again after restart with the same webhook-id', async () => {
  const dir = tempDir();
  const rx = await startReceiver();
  rx.on('/inflight', [hang(), ok('second time')]);
  const config = deliveryConfig();
  try {
    const gw1 = await startGateway({ config, dir });
    const wh = await createWebhook(gw1, rx, '/inflight', ['session.revoked']);
    const ev = await publishOk(gw1, { type: 'session.revoked', data: { session: 's1' } });
    const [first] = await rx.waitFor('/inflight');
    assert.equal(first.headers['webhook-id'], ev.id);
    await kill(gw1); // the receiver has the request; the gateway never sees an answer

    const gw2 = await startGateway({ config, dir });
    try {
      const got = await rx.waitFor('/inflight', { count: 2 });
      assert.equal(got[1].headers['webhook-id'], ev.id);
      assert.ok(got[1].body.equals(first.body), 'the same bytes');
      const d = await waitDelivery(gw2, wh.id, ev.id);
      assert.equal(d.status, 'success', JSON.stringify(d));
      assert.equal(d.attempts.at(-1).statusCode, 200);
      assert.equal(d.attempts.at(-1).responseBody, 'second time');
    } finally {
      await stopClean(gw2);
    }
  } finally {
    await rx.close();
  }
});
