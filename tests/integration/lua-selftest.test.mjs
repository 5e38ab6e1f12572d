// lua-selftest.test.mjs: runs the Lua-level test suites of the `hookgate`
// library (tests/lua/plugins/selftest) inside the real runtime and asserts
// each reports no failure.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver } from './lib/lua-receiver.mjs';

const PLUGINS = fileURLToPath(new URL('../lua/plugins', import.meta.url));

const config = `
lua = { plugin_paths = { ${JSON.stringify(PLUGINS)} } }
plugins = { selftest = true }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.2, 0.2 }, jitter = 0 }
`;

let gw, rx;
before(async () => {
  rx = await startReceiver();
  gw = await startGateway({ config });
});
after(async () => {
  if (gw) {
    const { code, signal } = await gw.stop();
    assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs()}`);
    assert.doesNotMatch(gw.logs(), /LeakSanitizer|AddressSanitizer/);
  }
  if (rx) await rx.close();
});

const SUITES = ['coroutines', 'crypto', 'http', 'json', 'log', 'management', 'shared', 'sign', 'sleep', 'timers'];

describe('Lua library self-tests', () => {
  it('lists the suites', async () => {
    const res = await gw.request('GET', '/selftest', { key: null });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json.suites, SUITES);
  });

  for (const suite of SUITES) {
    it(suite, async () => {
      const res = await gw.request('GET', `/selftest/${suite}?receiver=${encodeURIComponent(rx.url)}`, { key: null });
      assert.equal(res.status, 200, `${res.body}\n${gw.logs().split('\n').filter((l) => /script error/.test(l)).join('\n')}`);
      const r = res.json;
      assert.equal(r.suite, suite);
      assert.ok(r.passed > 0, `no assertion ran: ${res.body}`);
      assert.deepEqual(r.failures, [], `${r.failed} failed in ${suite}:\n  ${r.failures.join('\n  ')}`);
      assert.equal(r.failed, 0);
    });
  }

  it('sleep waits in wall time', async () => {
    const t0 = Date.now();
    const res = await gw.request('GET', '/selftest/sleep', { key: null });
    assert.equal(res.status, 200);
    assert.ok(Date.now() - t0 >= 500, `took ${Date.now() - t0} ms`);
  });

  it('log lines carry the plugin and the file:line', async () => {
    await gw.request('GET', '/selftest/log', { key: null });
    // Log lines come on another pipe than the HTTP answer: wait for them.
    let line;
    for (let i = 0; i < 100 && !gw.logs().includes('selftest print 1 nil true'); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    line = gw.logs().split('\n').find((l) => l.includes('selftest log line warn'));
    assert.ok(line, gw.logs());
    assert.match(line, /plugin=selftest/);
    assert.match(line, /selftest\/init\.lua:\d+/);
    assert.ok(gw.logs().includes('selftest print 1 nil true'), 'print goes to the log');
  });
});
