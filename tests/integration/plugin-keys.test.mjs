// plugin-keys.test.mjs: the loader refuses a plugin whose table has a key
// outside the documented set (docs/lua-api.md, "The plugin module"), at
// start and at reload, naming the plugin, the key and the known key it is
// probably a typo of; a plugin that uses every documented key still loads.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver } from './lib/lua-receiver.mjs';
import { sleep, expectError } from './lib/expect.mjs';
import { until, stopClean } from './lib/delivery.mjs';

const KNOWN = 'name, version, priority, schema, check, ingest, route, transform, sign, deliver, retry, after, routes, timers';

const config = (dir, bindings) => `
lua = { plugin_paths = { ${JSON.stringify(join(dir, 'plugins'))} } }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.2, 0.2 }, jitter = 0 }
plugins = ${bindings}
`;

function writePlugin(dir, name, source) {
  mkdirSync(join(dir, 'plugins', name), { recursive: true });
  writeFileSync(join(dir, 'plugins', name, 'init.lua'), source);
}

// A plugin with a route answering its version and a transform that marks
// deliveries; `extra` is spliced into its table (a wrong key, say).
const KEYED = (version, extra = '') => `return {
  name = "keyed", version = "${version}",
  routes = { { method = "GET", path = "/keyed", handler = function() return { body = "${version}" } end } },
  transform = function(d) d.headers["X-Keyed"] = "${version}" end,
  ${extra}
}
`;

it('start: a misspelled phase key stops the gateway with a message naming the plugin, the key and the likely key', async () => {
  const dir = tempDir();
  writePlugin(dir, 'typo', 'return { name = "typo", version = "1", transfrom = function(d) end }\n');
  await assert.rejects(startGateway({ dir, config: config(dir, '{}') }), (err) => {
    assert.match(err.message, /gateway exited \(1\)/);
    assert.match(err.message,
      /plugin typo: \S*typo\/init\.lua: unknown key 'transfrom' in the plugin's table \(did you mean 'transform'\?\)/);
    assert.doesNotMatch(err.message, /LeakSanitizer|AddressSanitizer/);
    return true;
  });
});

describe('reload', () => {
  let dir, gw, rx, wh;
  before(async () => {
    dir = tempDir();
    writePlugin(dir, 'keyed', KEYED('v1'));
    rx = await startReceiver();
    gw = await startGateway({ dir, config: config(dir, '{ keyed = true }') });
    const res = await gw.request('POST', '/v1/webhooks', { body: { url: `${rx.url}/hook`, events: ['user.created'] } });
    assert.equal(res.status, 201, res.body);
    wh = res.json;
  });
  after(async () => {
    if (gw) await stopClean(gw);
    if (rx) await rx.close();
  });

  // Publishes an event and returns the X-Keyed header its delivery carried.
  async function deliveredMark() {
    const ev = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data: { n: 1 } } });
    assert.equal(ev.status, 202, ev.body);
    const r = await until(() => rx.requests.find((q) => q.headers['webhook-id'] === ev.json.id), { what: 'the delivery' });
    return r.headers['x-keyed'];
  }

  // Rewrites the plugin with `extra` in its table; the reload must be
  // refused with a detail matching re, and v1 must keep serving.
  async function refused(extra, re) {
    writeFileSync(join(dir, 'plugins', 'keyed', 'init.lua'), KEYED('bad', extra));
    const res = await gw.request('POST', '/v1/admin/reload');
    const e = expectError(res, 422, 'reload_failed');
    // The load error comes first (the global binding of the plugin that
    // did not load is refused after it).
    assert.match(e.details[0].message, re);
    assert.equal((await gw.request('GET', '/keyed', { key: null })).body, 'v1', 'the old generation still serves');
  }

  it('the plugin loads and runs (a correct plugin is not refused)', async () => {
    assert.equal((await gw.request('GET', '/keyed', { key: null })).body, 'v1');
    assert.equal(await deliveredMark(), 'v1');
  });

  it('a misspelled phase is refused with the key and the phase it is close to', () =>
    refused('transfrom = function(d) end,',
      /^plugin keyed: \S*keyed\/init\.lua: unknown key 'transfrom' in the plugin's table \(did you mean 'transform'\?\)$/));

  it('a wrong case or a missing letter is a typo too', async () => {
    await refused('Transform = function(d) end,', /unknown key 'Transform' .*\(did you mean 'transform'\?\)$/);
    await refused('timer = {},', /unknown key 'timer' .*\(did you mean 'timers'\?\)$/);
    await refused('prority = 3,', /unknown key 'prority' .*\(did you mean 'priority'\?\)$/);
  });

  it('a key close to no known key lists the known keys', async () => {
    const known = KNOWN.replace(/[()?]/g, '\\$&');
    await refused('helpers = {},', new RegExp(`unknown key 'helpers' in the plugin's table \\(known keys: ${known}\\)$`));
    // The runtime's own bookkeeping is not a plugin key either.
    await refused('env = {},', /unknown key 'env' in the plugin's table \(known keys: /);
    await refused('"positional",', /unknown key '\[1\]' in the plugin's table \(known keys: /);
  });

  it('with several unknown keys, the first in sorted order is named', () =>
    refused('zzz = 1, afterr = function() end,', /unknown key 'afterr' .*\(did you mean 'after'\?\)$/));

  it('fixed, the reload succeeds and the new version runs', async () => {
    writeFileSync(join(dir, 'plugins', 'keyed', 'init.lua'), KEYED('v2'));
    const ok = await gw.request('POST', '/v1/admin/reload');
    assert.equal(ok.status, 200, ok.body);
    assert.equal((await gw.request('GET', '/keyed', { key: null })).body, 'v2');
    assert.equal(await deliveredMark(), 'v2');
  });
});

it('a plugin that uses every documented key loads, and its phases run', async () => {
  const dir = tempDir();
  writePlugin(dir, 'every', `
local function mark(name) return function(x) x.headers = x.headers or {}; x.headers["X-" .. name] = "1" end end
return {
  name = "every", version = "1.2.3", priority = 7,
  schema = { type = "object", properties = { label = { type = "string", default = "x" } } },
  check = function(conf) return nil end,
  ingest = function(event) end,
  route = function(arg) end,
  transform = mark("Transform"),
  sign = mark("Sign"),
  deliver = mark("Deliver"),
  retry = function(r) return nil end,
  after = function(result) end,
  routes = { { method = "GET", path = "/every", handler = function(req, conf) return { body = conf.label } end } },
  timers = { { every = 0, at = 3600, handler = function(conf) end } },
}
`);
  const rx = await startReceiver();
  const gw = await startGateway({ dir, config: config(dir, '{ every = { label = "all keys" } }') });
  try {
    assert.equal((await gw.request('GET', '/every', { key: null })).body, 'all keys');
    const listed = await gw.request('GET', '/v1/admin/plugins');
    assert.equal(listed.status, 200, listed.body);
    const p = listed.json.plugins.find((x) => x.name === 'every');
    assert.ok(p, listed.body);
    assert.equal(p.version, '1.2.3');
    assert.equal(p.priority, 7);
    assert.deepEqual(p.phases, ['ingest', 'route', 'transform', 'sign', 'deliver', 'retry', 'after', 'routes']);
    const res = await gw.request('POST', '/v1/webhooks', { body: { url: `${rx.url}/hook`, events: ['user.created'] } });
    assert.equal(res.status, 201, res.body);
    const ev = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data: {} } });
    assert.equal(ev.status, 202, ev.body);
    const r = await until(() => rx.requests.find((q) => q.headers['webhook-id'] === ev.json.id), { what: 'the delivery' });
    assert.equal(r.headers['x-transform'], '1');
    assert.equal(r.headers['x-sign'], '1');
    assert.equal(r.headers['x-deliver'], '1');
  } finally {
    await stopClean(gw);
    await rx.close();
  }
});
