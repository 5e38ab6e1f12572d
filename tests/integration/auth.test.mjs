// auth.test.mjs: Bearer keys, scopes, organization isolation and keeping
// secrets out of the logs, against the real binary. Keys are made with
// `hookgate keys create` while the gateway runs, on the gateway's store.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startGateway, BIN } from './lib/gateway.mjs';
import { storeFor } from './lib/store.mjs';
import { sleep, expectError, expectValidation } from './lib/expect.mjs';

const run = promisify(execFile);

let gw;
before(async () => {
  gw = await startGateway({});
});
after(async () => {
  if (gw) {
    const { code, signal } = await gw.stop();
    assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs()}`);
  }
});

// The CLI must use the gateway's store: same config file, same HOOKGATE_STORE.
const cliEnv = () => ({ ...process.env, HOOKGATE_STORE: storeFor(gw.dir), HOOKGATE_LOG_LEVEL: 'debug' });

const createdKeys = [];
async function makeKey(scopes, org) {
  const args = ['keys', 'create', '-c', gw.cfgPath, '--scopes', scopes];
  if (org) args.push('--org', org);
  const { stdout, stderr } = await run(BIN, args, { env: cliEnv() });
  const key = stdout.trim();
  assert.match(key, /^hg_[A-Za-z0-9_-]{43}$/, `keys create printed ${JSON.stringify(stdout)}`);
  const id = stderr.match(/created key (key_\S+)/)?.[1];
  assert.ok(id, `no key id on stderr: ${stderr}`);
  createdKeys.push(key);
  return { key, id };
}

const hook = (extra = {}) => ({ url: 'https://app.acme.test/h', events: ['user.created'], ...extra });
const SOME_ID = 'wh_01aaaaaaaaaaaaaaaaaaaaaaaa';
const ROUTES = [
  ['POST', '/v1/webhooks', hook()],
  ['GET', '/v1/webhooks'],
  ['GET', `/v1/webhooks/${SOME_ID}`],
  ['PATCH', `/v1/webhooks/${SOME_ID}`, { active: false }],
  ['DELETE', `/v1/webhooks/${SOME_ID}`],
  ['POST', `/v1/webhooks/${SOME_ID}/rotate-secret`, {}],
];

describe('authentication', () => {
  it('no Authorization answers 401 unauthorized with WWW-Authenticate: Bearer on every route', async () => {
    for (const [m, p, body] of ROUTES) {
      const res = await gw.request(m, p, { body, key: null });
      expectError(res, 401, 'unauthorized');
      assert.equal(res.headers['www-authenticate'], 'Bearer', `${m} ${p}`);
    }
    // The health check needs no key.
    assert.equal((await gw.request('GET', '/healthz', { key: null })).status, 200);
  });

  it('malformed and unknown keys answer 401', async () => {
    for (const authorization of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Token hg_x', gw.adminKey]) {
      const res = await gw.request('GET', '/v1/webhooks', { key: null, headers: { authorization } });
      expectError(res, 401, 'unauthorized');
    }
    for (const key of ['hg_unknown_key_000000000000000000000000000000000', gw.adminKey + 'x', gw.adminKey.slice(0, -1), 'x'.repeat(500)]) {
      for (const [m, p, body] of ROUTES) expectError(await gw.request(m, p, { body, key }), 401, 'unauthorized');
    }
  });

  it('authentication comes before everything else', async () => {
    const key = 'hg_unknown_key_000000000000000000000000000000000';
    expectError(await gw.request('POST', '/v1/webhooks', { key, body: '{not json' }), 401, 'unauthorized');
    expectError(await gw.request('POST', '/v1/webhooks', { key, body: { colour: 1 } }), 401, 'unauthorized');
    expectError(await gw.request('POST', '/v1/webhooks', { key, body: 'x', headers: { 'content-type': 'text/plain' } }), 401, 'unauthorized');
    expectError(await gw.request('GET', '/v1/webhooks/not-an-id', { key }), 401, 'unauthorized');
    expectError(await gw.request('GET', '/v1/webhooks?pageSize=0', { key }), 401, 'unauthorized');
  });

  it('a revoked key stops working (at once if never used, within 5 s if cached)', async () => {
    const unused = await makeKey('webhooks:read');
    await run(BIN, ['keys', 'revoke', '-c', gw.cfgPath, unused.id], { env: cliEnv() });
    expectError(await gw.request('GET', '/v1/webhooks', { key: unused.key }), 401, 'unauthorized');

    const used = await makeKey('webhooks:read');
    assert.equal((await gw.request('GET', '/v1/webhooks', { key: used.key })).status, 200);
    await run(BIN, ['keys', 'revoke', '-c', gw.cfgPath, used.id], { env: cliEnv() });
    const t0 = Date.now();
    let status;
    do {
      await sleep(250);
      status = (await gw.request('GET', '/v1/webhooks', { key: used.key })).status;
    } while (status === 200 && Date.now() - t0 < 8000);
    assert.equal(status, 401, 'a revoked key still works after 8 s');
  });
});

describe('scopes', () => {
  let read, write, publish, admin;
  before(async () => {
    [read, write, publish, admin] = await Promise.all([
      makeKey('webhooks:read'), makeKey('webhooks:write'), makeKey('events:publish'), makeKey('admin'),
    ]);
  });

  it('a key without the scope gets 403 forbidden "insufficient permissions"', async () => {
    const w = (await gw.request('POST', '/v1/webhooks', { body: hook() })).json;
    const id = w.id;
    const routes = [
      ['POST', '/v1/webhooks', hook(), 'write'],
      ['GET', '/v1/webhooks', undefined, 'read'],
      ['GET', `/v1/webhooks/${id}`, undefined, 'read'],
      ['PATCH', `/v1/webhooks/${id}`, { active: true }, 'write'],
      ['POST', `/v1/webhooks/${id}/rotate-secret`, {}, 'write'],
      ['DELETE', `/v1/webhooks/${id}`, undefined, 'write'],
    ];
    for (const [m, p, body, need] of routes) {
      for (const k of [need === 'read' ? write : read, publish]) {
        const e = expectError(await gw.request(m, p, { body, key: k.key }), 403, 'forbidden');
        assert.equal(e.message, 'insufficient permissions', `${m} ${p}`);
      }
    }
    // Nothing was changed by the refused calls.
    const got = await gw.request('GET', `/v1/webhooks/${id}`);
    assert.equal(got.status, 200);
    assert.equal(got.json.updatedAt, w.updatedAt);
  });

  it('the scope is checked before the body or the id are looked at', async () => {
    expectError(await gw.request('POST', '/v1/webhooks', { key: read.key, body: '{broken' }), 403, 'forbidden');
    expectError(await gw.request('POST', '/v1/webhooks', { key: read.key, body: { colour: 1 } }), 403, 'forbidden');
    expectError(await gw.request('GET', '/v1/webhooks/bad-id', { key: write.key }), 403, 'forbidden');
    expectError(await gw.request('GET', '/v1/webhooks?pageSize=0', { key: write.key }), 403, 'forbidden');
  });

  it('each scope grants what it says, and admin grants everything', async () => {
    const c = await gw.request('POST', '/v1/webhooks', { key: write.key, body: hook() });
    assert.equal(c.status, 201, c.body);
    assert.equal((await gw.request('GET', `/v1/webhooks/${c.json.id}`, { key: read.key })).status, 200);
    assert.equal((await gw.request('GET', '/v1/webhooks', { key: read.key })).status, 200);
    assert.equal((await gw.request('PATCH', `/v1/webhooks/${c.json.id}`, { key: write.key, body: { active: false } })).status, 200);
    assert.equal((await gw.request('POST', `/v1/webhooks/${c.json.id}/rotate-secret`, { key: write.key })).status, 200);
    assert.equal((await gw.request('DELETE', `/v1/webhooks/${c.json.id}`, { key: write.key })).status, 204);
    const a = await gw.request('POST', '/v1/webhooks', { key: admin.key, body: hook({ organizationId: 'any-org' }) });
    assert.equal(a.status, 201, a.body);
    assert.equal((await gw.request('GET', `/v1/webhooks/${a.json.id}`, { key: admin.key })).status, 200);
    assert.equal((await gw.request('GET', '/v1/webhooks?organizationId=other', { key: admin.key })).status, 200);
    assert.equal((await gw.request('DELETE', `/v1/webhooks/${a.json.id}`, { key: admin.key })).status, 204);
  });
});

describe('organization isolation', () => {
  // A fresh set of organizations, so listings hold only this suite's webhooks.
  const A = 'org-A-iso', B = 'org-B-iso';
  let keyA, keyB, keyAll;
  const byA = [], byB = [], byNone = [];
  before(async () => {
    [keyA, keyB, keyAll] = await Promise.all([
      makeKey('webhooks:read,webhooks:write', A), makeKey('webhooks:read,webhooks:write', B), makeKey('webhooks:read,webhooks:write'),
    ]);
    for (let i = 0; i < 3; i++) {
      const a = await gw.request('POST', '/v1/webhooks', { key: keyA.key, body: hook({ url: `https://a${i}.test/h` }) });
      assert.equal(a.status, 201, a.body);
      byA.push(a.json);
      const b = await gw.request('POST', '/v1/webhooks', { key: gw.adminKey, body: hook({ url: `https://b${i}.test/h`, organizationId: B }) });
      assert.equal(b.status, 201, b.body);
      byB.push(b.json);
      const n = await gw.request('POST', '/v1/webhooks', { key: keyAll.key, body: hook() });
      assert.equal(n.status, 201, n.body);
      byNone.push(n.json);
    }
  });

  it("an organization's key creates for its organization", async () => {
    for (const w of byA) assert.equal(w.organizationId, A);
    const explicit = await gw.request('POST', '/v1/webhooks', { key: keyA.key, body: hook({ organizationId: A }) });
    assert.equal(explicit.status, 201, explicit.body);
    assert.equal(explicit.json.organizationId, A);
    const viaNull = await gw.request('POST', '/v1/webhooks', { key: keyA.key, body: hook({ organizationId: null }) });
    assert.equal(viaNull.status, 201, viaNull.body);
    assert.equal(viaNull.json.organizationId, A);
    byA.push(explicit.json, viaNull.json);
    for (const w of byNone) assert.equal(w.organizationId, null);
  });

  it("creating for another organization answers 403, after validation", async () => {
    const e = expectError(await gw.request('POST', '/v1/webhooks', { key: keyA.key, body: hook({ organizationId: B }) }), 403, 'forbidden');
    assert.match(e.message, /insufficient permissions/);
    expectValidation(await gw.request('POST', '/v1/webhooks', { key: keyA.key, body: { organizationId: B, url: 'ftp://x' , events: ['*'] } }), ['url']);
  });

  it("another organization's (or no organization's) webhook is 404 for every call, and stays unchanged", async () => {
    for (const victim of [byB[0], byNone[0]]) {
      const id = victim.id;
      for (const [m, p, body] of [
        ['GET', `/v1/webhooks/${id}`],
        ['PATCH', `/v1/webhooks/${id}`, { active: false }],
        ['POST', `/v1/webhooks/${id}/rotate-secret`, {}],
        ['DELETE', `/v1/webhooks/${id}`],
      ]) {
        const res = await gw.request(m, p, { body, key: keyA.key });
        const e = expectError(res, 404, 'not_found');
        // Exactly the answer for an id that does not exist: no leak.
        const ghost = await gw.request(m, p.replace(id, SOME_ID), { body, key: keyA.key });
        assert.equal(res.body, ghost.body, `${m}: another organization's id must look like a missing one`);
        assert.equal(e.message, 'webhook not found');
      }
      const still = await gw.request('GET', `/v1/webhooks/${id}`);
      assert.equal(still.status, 200);
      const { secret, ...rest } = victim;
      assert.deepEqual(still.json, rest, 'untouched by the other organization');
    }
    // B's key does see B's webhook; A's key sees A's.
    assert.equal((await gw.request('GET', `/v1/webhooks/${byB[0].id}`, { key: keyB.key })).status, 200);
    assert.equal((await gw.request('GET', `/v1/webhooks/${byA[0].id}`, { key: keyA.key })).status, 200);
    expectError(await gw.request('GET', `/v1/webhooks/${byA[0].id}`, { key: keyB.key }), 404, 'not_found');
  });

  it("listing shows only the key's organization; naming another answers 403", async () => {
    const listAll = async (key, q = '') => {
      const out = [];
      let token = null;
      do {
        const sep = q ? '&' : '?';
        const res = await gw.request('GET', `/v1/webhooks${q}${token ? `${sep}pageToken=${token}` : ''}`, { key });
        assert.equal(res.status, 200, res.body);
        out.push(...res.json.webhooks);
        token = res.json.nextPageToken;
      } while (token !== null);
      return out;
    };
    const seenA = await listAll(keyA.key);
    assert.deepEqual(new Set(seenA.map((w) => w.id)), new Set(byA.map((w) => w.id)));
    assert.ok(seenA.every((w) => w.organizationId === A));
    assert.deepEqual((await listAll(keyA.key, `?organizationId=${A}`)).map((w) => w.id), seenA.map((w) => w.id));
    const e = expectError(await gw.request('GET', `/v1/webhooks?organizationId=${B}`, { key: keyA.key }), 403, 'forbidden');
    assert.match(e.message, /insufficient permissions/);

    // Keys without an organization, and the bootstrap key, see everything.
    for (const key of [gw.adminKey, keyAll.key]) {
      const ids = new Set((await listAll(key)).map((w) => w.id));
      for (const w of [...byA, ...byB, ...byNone]) assert.ok(ids.has(w.id), `${w.id} missing from an unscoped listing`);
      const onlyB = await listAll(key, `?organizationId=${B}`);
      assert.deepEqual(new Set(onlyB.map((w) => w.id)), new Set(byB.map((w) => w.id)));
    }
  });

  it("maps to the SDK's error classes: NotFoundError 404, ValidationError 422, ForbiddenError 403", async () => {
    const sdkClass = { 404: 'NotFoundError', 422: 'ValidationError', 403: 'ForbiddenError' };
    const typeOf = { NotFoundError: 'not_found', ValidationError: 'validation_error', ForbiddenError: 'forbidden' };
    const cases = [
      [await gw.request('GET', `/v1/webhooks/${byB[0].id}`, { key: keyA.key }), 'NotFoundError'],
      [await gw.request('POST', '/v1/webhooks', { key: keyA.key, body: { url: 'x', events: ['user.signed_in'] } }), 'ValidationError'],
      [await gw.request('POST', '/v1/webhooks', { key: keyA.key, body: hook({ organizationId: B }) }), 'ForbiddenError'],
    ];
    for (const [res, cls] of cases) {
      assert.equal(sdkClass[res.status], cls, res.body);
      expectError(res, res.status, typeOf[cls]);
    }
  });
});

describe('secrets never reach the logs', () => {
  it('webhook secrets, the admin key and API keys are absent from debug logs', async () => {
    const { key } = await makeKey('webhooks:read,webhooks:write', 'org-logs');
    const secrets = [];
    const supplied = 'whsec_' + Buffer.alloc(32, 0x5a).toString('base64');
    for (const body of [hook(), hook({ secret: supplied }), hook({ organizationId: 'org-logs' })]) {
      const res = await gw.request('POST', '/v1/webhooks', { key: body.organizationId ? key : gw.adminKey, body });
      assert.equal(res.status, 201, res.body);
      secrets.push(res.json.secret);
      for (const g of [0, 1, undefined]) {
        const r = await gw.request('POST', `/v1/webhooks/${res.json.id}/rotate-secret`, { key: body.organizationId ? key : gw.adminKey, body: g === undefined ? {} : { gracePeriodHours: g } });
        assert.equal(r.status, 200, r.body);
        secrets.push(r.json.secret);
      }
      assert.equal((await gw.request('PATCH', `/v1/webhooks/${res.json.id}`, { body: { active: false } })).status, 200);
    }
    assert.ok(secrets.includes(supplied));
    // Refused requests carrying secrets and keys must not echo them either.
    const refused = 'whsec_' + Buffer.alloc(16, 0x33).toString('base64');
    expectValidation(await gw.request('POST', '/v1/webhooks', { body: hook({ secret: refused }) }), ['secret']);
    const unknownKey = 'hg_never_issued_key_aaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    expectError(await gw.request('GET', '/v1/webhooks', { key: unknownKey }), 401, 'unauthorized');
    expectError(await gw.request('POST', '/v1/webhooks', { key, body: hook({ organizationId: 'other', secret: supplied }) }), 403, 'forbidden');
    for (const k of [gw.adminKey, key]) assert.equal((await gw.request('GET', '/v1/webhooks?pageSize=100', { key: k })).status, 200);
    const { stdout: listed } = await run(BIN, ['keys', 'list', '-c', gw.cfgPath], { env: cliEnv() });

    await sleep(100); // let the last access lines arrive
    const logs = gw.logs();
    assert.ok(/level=debug|level=info/.test(logs), 'logs were captured');
    const forbidden = [...secrets, refused, gw.adminKey, unknownKey, ...createdKeys];
    for (const s of forbidden) {
      assert.ok(!logs.includes(s), `secret ${s.slice(0, 12)}… appears in the gateway logs`);
      // The base64 body of a whsec_ secret, without the prefix, is just as secret.
      if (s.startsWith('whsec_')) assert.ok(!logs.includes(s.slice(6)), `secret body ${s.slice(6, 14)}… in the logs`);
      else assert.ok(!listed.includes(s), '`keys list` prints a key');
    }
    assert.ok(createdKeys.length >= 8);
  });
});
