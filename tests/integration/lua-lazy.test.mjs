// lua-lazy.test.mjs: the delivery table of transform and the argument of
// route are filled on first use (core/lua/lazy.c); every accessor a plugin
// has sees the complete table, also one kept past its phase, and a plugin
// that looks at nothing changes nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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

// lazyabuse: a plugin calling the pairs iterator of a lazy table with a
// non-table (unchecked, that read memory or crashed the gateway), argument
// errors of the raw accessors (they must name the plugin's line, not
// runtime.lua's), and a fill with no memory left (the table must stay whole).
describe('lazy phase tables against a hostile plugin', () => {
  const SRC = `${PLUGINS}/lazyabuse/init.lua`;
  const lines = readFileSync(SRC, 'utf8').split('\n');
  const at = (name) => {
    const i = lines.findIndex((l) => l.includes(`-- at:${name}`));
    assert.ok(i >= 0, name);
    return `lazyabuse/init.lua:${i + 1}:`;
  };
  let gw, rx;
  before(async () => {
    rx = await startReceiver();
    gw = await startGateway({
      config: `
lua = { plugin_paths = { ${JSON.stringify(PLUGINS)} }, run_memory = ${1 << 20} }
plugins = { lazyabuse = true }
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

  const waitLog = async (re) => {
    for (let t = 0; t < 200 && !re.test(gw.logs()); t++) await sleep(50);
    assert.match(gw.logs(), re);
  };
  const logLine = (k) => {
    const m = gw.logs().match(new RegExp(`lazyabuse ${k} ([^"\\n]*)`));
    assert.ok(m, `no log line for ${k}:\n${gw.logs().slice(-3000)}`);
    return m[1];
  };

  it('a non-table to the pairs iterator is a script error at the plugin\'s line; errors name the plugin', async () => {
    const wh = await gw.request('POST', '/v1/webhooks', { body: { url: `${rx.url}/ok`, events: ['user.created'] } });
    assert.equal(wh.status, 201, wh.body);
    const post = async (data) => {
      const res = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data } });
      assert.equal(res.status, 202, res.body);
    };
    // 1, 2: the transform calls the iterator with a number, a string.
    await post({ n: 1 });
    await waitLog(new RegExp(`${at('iter-number')} bad argument #1 to '\\w+' \\(table expected, got number\\)`));
    await post({ n: 2 });
    await waitLog(new RegExp(`${at('iter-string')} bad argument #1 to '\\w+' \\(table expected, got string\\)`));
    assert.match(gw.logs(), /script error.*plugin=lazyabuse|plugin=lazyabuse.*script error/);
    // 3: argument errors, caught and logged; the delivery goes through.
    await post({ n: 3 });
    await rx.waitFor(() => rx.requests.length >= 1, 10000);
    assert.equal(JSON.parse(rx.requests[0].body).data.n, 3);
    assert.equal(logLine('next'), `${at('next')} bad argument #1 to 'next' (table expected, got number)`);
    assert.equal(logLine('rawget'), `${at('rawget')} bad argument #2 to 'rawget' (value expected)`);
    assert.equal(logLine('rawset'), `${at('rawset')} bad argument #3 to 'rawset' (value expected)`);
    assert.equal(logLine('rawlen'), `${at('rawlen')} bad argument #1 to 'rawlen' (table or string expected, got number)`);
    assert.equal(logLine('getmetatable'), `${at('getmetatable')} bad argument #1 to 'getmetatable' (value expected)`);
    assert.equal(
      logLine('setmetatable'),
      `${at('setmetatable')} bad argument #2 to 'setmetatable' (nil or table expected, got number)`,
    );
    assert.equal(
      logLine('proxy'),
      `${at('proxy')} hookgate.x is read-only (the hookgate module is shared by every plugin)`,
    );
    assert.equal(logLine('intact'), '8 table');
    assert.match(logLine('route-iter'), new RegExp(`^${at('route-iter')} bad argument #1 to '\\w+' \\(table expected, got number\\)$`));
    assert.equal(logLine('route-intact'), '2 1 user.created');
    assert.doesNotMatch(gw.logs(), /runtime\.lua/);
    // 4: a fill with no memory left fails whole; the table fills later.
    const big = 'y'.repeat(100000);
    await post({ n: 4, big });
    await rx.waitFor(() => rx.requests.length >= 2, 10000);
    assert.equal(JSON.parse(rx.requests[1].body).data.big, big);
    const [ok, n, headers, len, attempt] = logLine('fill').split(' ');
    assert.equal(ok, 'false'); // the fill found no memory
    assert.equal(n, '8');
    assert.equal(headers, 'table');
    assert.equal(Number(len), rx.requests[1].body.length);
    assert.equal(attempt, '1');
  });
});
