// negative-paths.test.mjs: every route of the API, as the binary lists them
// (`hookgate routes --json`, read from the tables the server registers), is
// asked what a hostile or careless caller would ask: no key, a bad key, a key
// missing each scope, an organization's key on an admin route, and for each
// path parameter an id that does not exist, one of another organization and
// malformed ones. Each must get the documented JSON error, and the gateway
// must keep serving after each; at the end it must still be the same process
// and stop cleanly (under ASan, a finding makes the exit status non-zero).
// Also: a method the path does not take (405 and its Allow header), two
// Authorization headers (400), and a malformed pageSize on every route that
// docs/openapi.yaml says is paged (422).
//
// Nothing here names a route: a route added later is covered as it is
// added. A route with a path parameter this file has no ids for fails the
// test until PARAMS learns it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startGateway, BIN } from './lib/gateway.mjs';
import { makeKey } from './lib/keys.mjs';
import { sleep, expectError } from './lib/expect.mjs';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// Every scope a key can have; `admin` implies the others.
const SCOPES = ['webhooks:read', 'webhooks:write', 'events:publish', 'admin'];
const ORG_SCOPES = 'webhooks:read,webhooks:write,events:publish';

// Ids for each path parameter the routes use: `unknown` is well-formed and
// matches nothing; `malformed` are ids the gateway never issues; `own` and
// `other` are filled in `before` (organization A's and B's).
const PARAMS = {
  id: {
    unknown: 'wh_01aaaaaaaaaaaaaaaaaaaaaaaa',
    malformed: ['nope', 'wh_', 'wh_short', 'WH_01AAAAAAAAAAAAAAAAAAAAAAAA', 'wh_01aaaaaaaaaaaaaaaaaaaaaaa!',
      'del_01aaaaaaaaaaaaaaaaaaaaaaaa', 'wh_' + 'a'.repeat(300), '%C3%A9', 'wh_01aaaaaaaaaaaaaaaaaaaaaaaa%20'],
    notFound: 'webhook not found',
  },
  deliveryId: {
    unknown: 'del_01aaaaaaaaaaaaaaaaaaaaaaaa',
    malformed: ['nope', 'del_', 'wh_01aaaaaaaaaaaaaaaaaaaaaaaa', 'DEL_01AAAAAAAAAAAAAAAAAAAAAAAA',
      'del_' + 'b'.repeat(300), '%00', '..'],
    notFound: 'delivery not found',
  },
  // Bulk recoveries are kept in memory by the node that ran them.
  recoveryId: {
    unknown: 'rcv_01aaaaaaaaaaaaaaaaaaaaaaaa',
    malformed: ['nope', 'rcv_', 'del_01aaaaaaaaaaaaaaaaaaaaaaaa', 'RCV_01AAAAAAAAAAAAAAAAAAAAAAAA', 'rcv_' + 'c'.repeat(300)],
    notFound: 'recovery not found (recoveries are kept in memory on the node that ran them, the last 64)',
  },
  // The console's static files (no key, nothing of an organization's):
  // `own` is a file that exists; unknown and malformed names are 404 (a
  // name with a path in it is 400: console.test.mjs).
  file: {
    unknown: 'nope.js',
    malformed: ['nope', '.hidden', 'index.htm', 'hookgate.db', 'app.js.map', 'INDEX.HTML'],
    notFound: 'no such console file',
  },
};

let gw, routes;
const keys = {}; // one key per scope (no organization), and orgA, orgB
const own = {}; // param name -> organization A's id
const other = {}; // param name -> organization B's id (for A's routes: B asks)

async function routeTable() {
  const { stdout } = await run(BIN, ['routes', '--json']);
  return JSON.parse(stdout);
}

async function publishedDelivery(key, wh) {
  const p = await gw.request('POST', '/v1/events', { key, body: { type: 'user.created', data: { n: 1 } } });
  assert.equal(p.status, 202, p.body);
  for (let i = 0; i < 200; i++) {
    const l = await gw.request('GET', `/v1/webhooks/${wh}/deliveries`, { key });
    assert.equal(l.status, 200, l.body);
    if (l.json.deliveries.length > 0) return l.json.deliveries[0].id;
    await sleep(25);
  }
  assert.fail('the published event made no delivery');
}

before(async () => {
  routes = await routeTable();
  gw = await startGateway({});
  const made = await Promise.all([
    ...SCOPES.map((s) => makeKey(gw, s)),
    makeKey(gw, ORG_SCOPES, 'org_a'),
    makeKey(gw, ORG_SCOPES, 'org_b'),
  ]);
  SCOPES.forEach((s, i) => { keys[s] = made[i].key; });
  keys.orgA = made[SCOPES.length].key;
  keys.orgB = made[SCOPES.length + 1].key;
  own.file = other.file = 'index.html';
  for (const [org, ids] of [['orgA', own], ['orgB', other]]) {
    const c = await gw.request('POST', '/v1/webhooks', {
      key: keys[org],
      body: { url: `https://${org.toLowerCase()}.example.test/h`, events: ['user.created'] },
    });
    assert.equal(c.status, 201, c.body);
    ids.id = c.json.id;
    ids.deliveryId = await publishedDelivery(keys[org], ids.id);
    const r = await gw.request('POST', `/v1/webhooks/${ids.id}/recover`, {
      key: keys[org],
      body: { since: new Date(Date.now() - 60e3).toISOString(), dryRun: true },
    });
    assert.equal(r.status, 200, r.body);
    ids.recoveryId = r.json.id;
  }
});

after(async () => {
  if (gw) {
    const { code, signal } = await gw.stop();
    assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs().slice(-4000)}`);
    assert.doesNotMatch(gw.logs(), /AddressSanitizer|LeakSanitizer|runtime error:/);
  }
});

const paramsOf = (route) => [...route.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
const fill = (route, values) =>
  route.path.replace(/\{([^}]+)\}/g, (_, name) => values[name]);
// A body for the methods that take one: {} is valid for every route but
// those listed here (it reaches the id lookup); the auth cases send a
// broken one instead, to check that authentication and scopes come before
// the body is read.
const hasBody = (route) => ['POST', 'PATCH', 'PUT'].includes(route.method);
const VALID_BODY = {
  'POST /v1/webhooks/{id}/recover': { since: new Date(Date.now() - 3600e3).toISOString(), dryRun: true },
};

async function ask(route, path, { key, body, headers } = {}) {
  const res = await gw.request(route.method, path, {
    key,
    headers,
    body: body !== undefined ? body : hasBody(route) ? VALID_BODY[`${route.method} ${route.path}`] || {} : undefined,
    raw: typeof body === 'string',
  });
  const h = await gw.request('GET', '/healthz', { key: null });
  assert.equal(h.status, 200, `after ${route.method} ${path}: /healthz answered ${h.status} ${h.body}\n` +
    gw.logs().slice(-3000));
  return res;
}

const what = (route, path, extra) => `${route.method} ${path} (${route.method} ${route.path}) ${extra}`;

const NOT_FOUND = new Set([...Object.values(PARAMS).map((p) => p.notFound), 'no such endpoint']);
function expect404(res, where) {
  assert.equal(res.status, 404, `${where}: expected 404, got ${res.status}: ${res.body}`);
  const e = expectError(res, 404, 'not_found');
  assert.ok(NOT_FOUND.has(e.message), `${where}: message ${JSON.stringify(e.message)}`);
}

describe('the route table', () => {
  it('lists the same routes as the plain listing, with scopes that exist', async () => {
    const { stdout } = await run(BIN, ['routes']);
    const plain = stdout.trim().split('\n').map((l) => l.trim());
    assert.deepEqual(routes.map((r) => `${r.method} ${r.path}`), plain);
    assert.ok(routes.length >= 10, 'too few routes');
    for (const r of routes) {
      for (const s of r.scopes) assert.ok(SCOPES.includes(s), `${r.method} ${r.path}: unknown scope ${s}`);
      assert.equal(r.auth, r.scopes.length > 0);
      assert.equal(r.adminOnly, r.scopes.length === 1 && r.scopes[0] === 'admin');
      for (const p of paramsOf(r)) assert.ok(PARAMS[p], `${r.method} ${r.path}: no test ids for {${p}}; add them to PARAMS`);
    }
  });

  it("matches docs/openapi.yaml's operations and docs/api.md's scope table", async () => {
    const { createRequire } = await import('node:module');
    const require = createRequire(join(ROOT, 'tests', 'package.json'));
    const YAML = require('yaml');
    const doc = YAML.parse(readFileSync(join(ROOT, 'docs', 'openapi.yaml'), 'utf8'));
    const documented = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const m of Object.keys(item)) if (['get', 'post', 'put', 'patch', 'delete'].includes(m)) documented.push(`${m.toUpperCase()} ${path}`);
    }
    assert.deepEqual(documented.sort(), routes.map((r) => `${r.method} ${r.path}`).sort());
    // docs/api.md's table: | `GET` | `/v1/webhooks` | `listWebhooks` | `webhooks:read` |
    const md = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
    const table = new Map();
    for (const m of md.matchAll(/^\| `([A-Z]+)` \| `(\/[^`]*)` \| `\w+` \| ([^|]+) \|$/gm)) {
      const scopes = m[3].trim() === 'none' ? [] : [...m[3].matchAll(/`([^`]+)`/g)].map((x) => x[1]);
      table.set(`${m[1]} ${m[2]}`, scopes.sort());
    }
    for (const r of routes) {
      const k = `${r.method} ${r.path}`;
      assert.ok(table.has(k), `docs/api.md's route table lacks ${k}`);
      assert.deepEqual(table.get(k), [...r.scopes].sort(), `docs/api.md's scopes for ${k}`);
    }
    assert.equal(table.size, routes.length, 'docs/api.md lists routes the server does not have');
  });
});

describe('every route, asked wrongly', () => {
  const pathWith = (route, values) => fill(route, { ...Object.fromEntries(Object.entries(PARAMS).map(([k, v]) => [k, v.unknown])), ...values });

  it('without a key: 401 with WWW-Authenticate: Bearer (routes that need one)', async () => {
    for (const r of routes) {
      const path = pathWith(r, own);
      const res = await ask(r, path, { key: null, body: hasBody(r) ? '{broken' : undefined });
      if (!r.auth) {
        assert.ok(res.status < 400, what(r, path, `needs no key, answered ${res.status}: ${res.body}`));
        continue;
      }
      expectError(res, 401, 'unauthorized');
      assert.equal(res.headers['www-authenticate'], 'Bearer', what(r, path, ''));
    }
  });

  it('with a bad key: 401', async () => {
    const bad = ['hg_unknown_key_000000000000000000000000000000000', `${gw.adminKey}x`, gw.adminKey.slice(0, -1),
      'x'.repeat(400), 'hg_' + '\u00e9'.repeat(10)];
    for (const r of routes.filter((x) => x.auth)) {
      for (const key of bad) {
        const path = pathWith(r, own);
        const res = await ask(r, path, { key: null, headers: { authorization: Buffer.from(`Bearer ${key}`).toString('latin1') }, body: hasBody(r) ? '{broken' : undefined });
        assert.equal(res.status, 401, what(r, path, `key ${key.slice(0, 20)}…: ${res.status} ${res.body}`));
        expectError(res, 401, 'unauthorized');
        assert.ok(!res.body.includes(key), 'the answer quotes the key');
      }
      for (const authorization of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', `Token ${gw.adminKey}`]) {
        const res = await ask(r, pathWith(r, own), { key: null, headers: { authorization } });
        expectError(res, 401, 'unauthorized');
      }
    }
  });

  it('with a method the path does not take: 405 method_not_allowed, Allow naming the table\'s methods', async () => {
    const byPath = new Map();
    for (const r of routes) byPath.set(r.path, [...(byPath.get(r.path) || []), r]);
    for (const [pattern, rs] of byPath) {
      const methods = rs.map((r) => r.method);
      const path = pathWith(rs[0], {});
      for (const m of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((x) => !methods.includes(x))) {
        const res = await ask({ method: m, path: pattern }, path, { key: keys.orgA });
        expectError(res, 405, 'method_not_allowed');
        assert.deepEqual(res.headers.allow.split(', ').sort(), [...methods].sort(), `${m} ${path}`);
      }
    }
  });

  it('with two Authorization headers: 400 bad_request naming the header', async () => {
    for (const r of routes.filter((x) => x.auth)) {
      const path = pathWith(r, {});
      const res = await ask(r, path, { key: null, headers: { authorization: [`Bearer ${gw.adminKey}`, `Bearer ${gw.adminKey}`] } });
      const e = expectError(res, 400, 'bad_request');
      assert.deepEqual(e.details.map((d) => d.field), ['Authorization'], what(r, path, res.body));
    }
  });

  it('with a key lacking the scope: 403 "insufficient permissions", before the body is read', async () => {
    for (const r of routes.filter((x) => x.auth)) {
      for (const s of SCOPES) {
        const granted = s === 'admin' || r.scopes.includes(s);
        // A key that may call the route gets ids that exist nowhere, so
        // that nothing is changed; one that may not gets real ones.
        const path = pathWith(r, granted ? {} : own);
        const res = await ask(r, path, { key: keys[s], body: hasBody(r) && !granted ? '{broken' : undefined });
        if (granted) {
          // The table's scope is the one the handler checks.
          assert.ok(![401, 403].includes(res.status), what(r, path, `key with ${s} refused: ${res.status} ${res.body}`));
        } else {
          assert.equal(res.status, 403, what(r, path, `key with only ${s}: ${res.status} ${res.body}`));
          const e = expectError(res, 403, 'forbidden');
          assert.equal(e.message, 'insufficient permissions');
        }
      }
    }
  });

  it("an organization's key, or any key without admin, on an admin-only route: 403", async () => {
    const adminOnly = routes.filter((r) => r.adminOnly);
    assert.ok(adminOnly.length > 0);
    for (const r of adminOnly) {
      for (const key of [keys.orgA, keys['webhooks:write']]) {
        const res = await ask(r, pathWith(r, own), { key, body: hasBody(r) ? '{broken' : undefined });
        expectError(res, 403, 'forbidden');
      }
    }
  });

  for (const [name, desc] of [['unknown', 'an id that does not exist'], ['malformed', 'a malformed id']]) {
    it(`with ${desc} in each path parameter: 404 not_found`, async () => {
      for (const r of routes) {
        for (const p of paramsOf(r)) {
          const values = name === 'unknown' ? [PARAMS[p].unknown] : PARAMS[p].malformed;
          for (const v of values) {
            // The other parameters name organization A's real objects.
            const path = fill(r, { ...own, [p]: v });
            for (const key of [gw.adminKey, keys.orgA]) {
              const res = await ask(r, path, { key });
              expect404(res, what(r, path, `key ${key === gw.adminKey ? 'admin' : 'org_a'}`));
            }
          }
        }
      }
    });
  }

  it("with another organization's ids: 404, the same answer as for an unknown id", async () => {
    // A route that needs no key serves nothing of an organization's.
    for (const r of routes.filter((x) => x.auth && paramsOf(x).length > 0)) {
      const ps = paramsOf(r);
      // B asks for A's objects: all of them, then each one in place of B's own.
      const variants = [{ ...own }, ...ps.map((p) => ({ ...other, [p]: own[p] }))];
      for (const values of variants) {
        const path = fill(r, values);
        const res = await ask(r, path, { key: keys.orgB });
        expect404(res, what(r, path, 'key org_b'));
        // The unknown id in the same place gets the same answer word for word.
        const first = ps.find((p) => values[p] === own[p] && own[p] !== other[p]);
        const unknownPath = fill(r, { ...values, [first]: PARAMS[first].unknown });
        const ref = await ask(r, unknownPath, { key: keys.orgB });
        assert.deepEqual(res.json, ref.json, what(r, path, 'differs from an unknown id'));
      }
    }
    // Organization A's objects were not touched by any of it.
    const w = await gw.request('GET', `/v1/webhooks/${own.id}`, { key: keys.orgA });
    assert.equal(w.status, 200, w.body);
    const d = await gw.request('GET', `/v1/webhooks/${own.id}/deliveries/${own.deliveryId}`, { key: keys.orgA });
    assert.equal(d.status, 200, d.body);
  });

  it('with a malformed pageSize on every route openapi.yaml gives one: 422 naming pageSize', async () => {
    const { createRequire } = await import('node:module');
    const YAML = createRequire(join(ROOT, 'tests', 'package.json'))('yaml');
    const doc = YAML.parse(readFileSync(join(ROOT, 'docs', 'openapi.yaml'), 'utf8'));
    const paged = routes.filter((r) => {
      const item = doc.paths[r.path] || {};
      const params = [...(item.parameters || []), ...((item[r.method.toLowerCase()] || {}).parameters || [])];
      return params.some((p) => p.$ref === '#/components/parameters/PageSize' || p.name === 'pageSize');
    });
    assert.ok(paged.length >= 2, 'openapi.yaml names no paged route');
    for (const r of paged) {
      for (const v of ['%2B5', '%205', '5abc', '0x10', '5.0', '-1', '0', '101']) {
        const path = `${pathWith(r, own)}?pageSize=${v}`;
        const res = await ask(r, path, { key: keys.orgA });
        assert.equal(res.status, 422, what(r, path, res.body));
        assert.deepEqual(res.json.error.details.map((d) => d.field), ['pageSize'], what(r, path, res.body));
      }
    }
  });

  it('the gateway is still the same process, serving', async () => {
    assert.equal(gw.proc.exitCode, null);
    assert.equal(gw.proc.signalCode, null);
    assert.equal((await gw.request('GET', '/healthz', { key: null })).status, 200);
    assert.doesNotMatch(gw.logs(), /AddressSanitizer|runtime error:/);
  });
});
