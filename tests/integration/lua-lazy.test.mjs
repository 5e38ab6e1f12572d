// lua-lazy.test.mjs: the delivery table of transform and the argument of
// route are filled on first use (core/lua/lazy.c); every accessor a plugin
// has sees the complete table, also one kept past its phase, and a plugin
// that looks at nothing changes nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver } from './lib/lua-receiver.mjs';
import { sleep } from './lib/expect.mjs';

const PLUGINS = fileURLToPath(new URL('../lua/lazy-plugins', import.meta.url));
const N = 10; // six probes, a table kept untouched, a call reading it; the same with a failing phase

describe('lazy phase tables', () => {
  let gw, rx;
  before(async () => {
    rx = await startReceiver();
    gw = await startGateway({
      config: `
lua = { plugin_paths = { ${JSON.stringify(PLUGINS)} } }
plugins = { lazyprobe = true }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" } }
`,
    });
  });
  after(async () => {
    await rx?.close();
    if (!gw) return;
    const { code, signal } = await gw.stop();
    assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs().slice(-3000)}`);
    assert.doesNotMatch(gw.logs(), /LeakSanitizer|AddressSanitizer|runtime error:/);
  });

  it('every accessor sees the whole table; a kept one reads right after its phase', async () => {
    const wh = await gw.request('POST', '/v1/webhooks', { body: { url: `${rx.url}/ok`, events: ['user.created'] } });
    assert.equal(wh.status, 201, wh.body);
    const bodies = [];
    for (let i = 1; i <= N; i++) {
      const res = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data: { n: i } } });
      assert.equal(res.status, 202, res.body);
      if (i === 9) {
        // The transform fails: nothing is sent, the error is logged.
        for (let t = 0; t < 200 && !/lazyprobe fails here/.test(gw.logs()); t++) await sleep(50);
        assert.match(gw.logs(), /lazyprobe fails here/);
        continue;
      }
      await rx.waitFor(() => rx.requests.length >= bodies.length + 1, 10000);
      bodies.push(rx.requests[bodies.length]);
    }
    // Bodies and targets went through unchanged.
    assert.deepEqual(bodies.map((r) => JSON.parse(r.body).data.n), [1, 2, 3, 4, 5, 6, 7, 8, 10]);
    let logs;
    for (let t = 0; t < 100; t++) {
      logs = gw.logs();
      if (/lazyprobe transform kept-failed/.test(logs) && /lazyprobe route kept/.test(logs)) break;
      await sleep(50);
    }
    const seen = (phase, k) => {
      const m = logs.match(new RegExp(`lazyprobe ${phase} ${k} ([^"\\n]*)`));
      assert.ok(m, `no log line for ${phase} ${k}:\n${logs.slice(-3000)}`);
      return m[1];
    };
    assert.equal(seen('transform', 1), 'true');
    assert.equal(seen('transform', 2), 'user.created');
    assert.equal(seen('transform', 3), 'true');
    assert.equal(Number(seen('transform', 4)), 8); // id, webhookId, eventId, eventType, url, body, attempt, headers
    assert.equal(seen('transform', 5), 'true');
    assert.equal(seen('transform', 6), 'true');
    assert.equal(seen('transform', 'kept'), 'user.created 7');
    assert.equal(seen('transform', 'kept-failed'), '9 1');
    assert.equal(seen('route', 1), 'true');
    assert.equal(seen('route', 2), '1');
    assert.equal(seen('route', 3), 'user.created 1');
    assert.equal(seen('route', 4), '2');
    assert.equal(seen('route', 5), '5');
    assert.equal(seen('route', 6), '1');
    assert.equal(seen('route', 'kept'), '7 user.created 1');
  });
});
