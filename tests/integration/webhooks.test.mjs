// webhooks.test.mjs: the webhook management API (createWebhook, get, list,
// update, delete, rotateWebhookSecret) against the real binary, checked the
// way an SDK user would: shapes, defaults, every validation rule, paging.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway } from './lib/gateway.mjs';
import { TIME_RE, ID_RE, sleep, expectError, expectValidation, secretBytes } from './lib/expect.mjs';

const HOUR = 3600 * 1000;
// Generous: under ASan a request can take a while, but an hour off is a bug.
const SLACK = 60 * 1000;

const valid = (extra = {}) => ({ url: 'https://app.acme.test/webhooks/identity', events: ['user.created'], ...extra });

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

const create = (body, opts = {}) => gw.request('POST', '/v1/webhooks', { body, ...opts });

// A request with exactly these headers (no Authorization or Content-Type
// added), for the content-type checks.
function rawRequest(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe('createWebhook', () => {
  it('answers 201 with the full webhook, defaults filled in and a generated secret', async () => {
    const before = Date.now();
    const res = await create(valid({ events: ['user.created', 'user.updated', 'user.deleted'] }));
    const after = Date.now();
    assert.equal(res.status, 201, res.body);
    assert.match(res.headers['content-type'], /^application\/json/);
    const w = res.json;
    assert.deepEqual(Object.keys(w).sort(),
      ['active', 'createdAt', 'disableAfter', 'disabledAt', 'disabledReason', 'events', 'exhaustedDeliveries',
        'failingSince', 'id', 'maxConcurrency', 'metadata', 'ordering', 'organizationId', 'plugins', 'publicKey', 'publicKeys',
        'rateLimit', 'secret', 'signatureScheme', 'transform', 'updatedAt', 'url']);
    assert.equal(w.signatureScheme, 'v1');
    // Endpoint health (endpoint-health.test.mjs): active, the gateway's rule, no streak.
    assert.equal(w.disabledAt, null);
    assert.equal(w.disabledReason, null);
    assert.equal(w.disableAfter, null);
    assert.equal(w.failingSince, null);
    assert.equal(w.exhaustedDeliveries, 0);
    assert.equal(w.publicKey, null);
    assert.deepEqual(w.publicKeys, []);
    assert.deepEqual(w.plugins, []);
    assert.equal(w.transform, null);
    assert.match(w.id, ID_RE);
    assert.equal(w.url, 'https://app.acme.test/webhooks/identity');
    assert.deepEqual(w.events, ['user.created', 'user.updated', 'user.deleted']);
    assert.equal(w.organizationId, null);
    assert.equal(w.active, true);
    assert.deepEqual(w.metadata, {});
    assert.match(w.createdAt, TIME_RE);
    assert.match(w.updatedAt, TIME_RE);
    assert.equal(w.createdAt, w.updatedAt);
    const t = Date.parse(w.createdAt);
    assert.ok(t >= before - 1000 && t <= after + 1000, `createdAt ${w.createdAt} not near now`);
    assert.equal(secretBytes(w.secret).length, 32);
  });

  it('generates a different secret and id each time', async () => {
    const a = (await create(valid())).json;
    const b = (await create(valid())).json;
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.secret, b.secret);
    assert.ok(b.id > a.id, 'ids sort by creation time');
  });

  it('keeps a caller-supplied valid secret, honours active:false, metadata and organizationId', async () => {
    const secret = 'whsec_' + Buffer.alloc(32, 7).toString('base64');
    const res = await create(valid({ secret, active: false, metadata: { team: 'growth' }, organizationId: 'org_1' }));
    assert.equal(res.status, 201, res.body);
    assert.equal(res.json.secret, secret);
    assert.equal(res.json.active, false);
    assert.deepEqual(res.json.metadata, { team: 'growth' });
    assert.equal(res.json.organizationId, 'org_1');
    const got = await gw.request('GET', `/v1/webhooks/${res.json.id}`);
    assert.equal(got.json.active, false);
    assert.equal(got.json.organizationId, 'org_1');
  });

  it('accepts secrets of 24 and 64 bytes and organizationId null', async () => {
    for (const n of [24, 64]) {
      const secret = 'whsec_' + Buffer.alloc(n, n).toString('base64');
      const res = await create(valid({ secret, organizationId: null }));
      assert.equal(res.status, 201, res.body);
      assert.equal(res.json.secret, secret);
      assert.equal(res.json.organizationId, null);
    }
  });

  it('accepts the URL and event forms the rules allow', async () => {
    const cases = [
      valid({ url: 'HTTPS://APP.ACME.TEST/Path?q=1' }),
      valid({ url: 'https://[::1]:8443/h' }),
      valid({ url: 'https://x.test:65535/' }),
      valid({ url: 'https://x.test/' + 'a'.repeat(2048 - 'https://x.test/'.length) }),
      valid({ events: ['user.*'] }),
      valid({ events: ['*'] }),
      valid({ events: ['organization.*'] }),
      valid({ events: ['user.*', 'user.created'] }),
      valid({ events: Array.from({ length: 100 }, (_, i) => (i < 15 ? ['user.created', 'user.updated', 'user.deleted', 'session.created', 'session.revoked', 'organization.created', 'organization.updated', 'organization.member.added', 'organization.member.removed', 'oauth.consent.granted', 'oauth.consent.revoked', 'mfa.enrolled', 'mfa.removed', 'sso.connection.created', 'directory.sync.completed'][i] : null)).filter(Boolean) }),
      valid({ metadata: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v'])) }),
      valid({ metadata: { ['k'.repeat(64)]: 'v'.repeat(512) } }),
    ];
    for (const body of cases) {
      const res = await create(body);
      assert.equal(res.status, 201, `${JSON.stringify(body).slice(0, 200)} -> ${res.body}`);
      assert.equal(res.json.url, body.url);
      assert.deepEqual(res.json.events, body.events);
      if (body.metadata) assert.deepEqual(res.json.metadata, body.metadata);
    }
  });
});

describe('getWebhook, updateWebhook, deleteWebhook', () => {
  it('GET returns what create returned, without the secret', async () => {
    const c = (await create(valid({ metadata: { a: 'b' } }))).json;
    const res = await gw.request('GET', `/v1/webhooks/${c.id}`);
    assert.equal(res.status, 200, res.body);
    assert.ok(!('secret' in res.json), 'GET must not reveal the secret');
    const { secret, ...rest } = c;
    assert.deepEqual(res.json, rest);
    assert.ok(!res.body.includes(secret));
  });

  it('PATCH changes the fields given, moves updatedAt and keeps createdAt', async () => {
    const c = (await create(valid({ metadata: { team: 'growth' } }))).json;
    await sleep(20);
    const res = await gw.request('PATCH', `/v1/webhooks/${c.id}`, {
      body: { url: 'https://other.acme.test/in', events: ['session.*', 'mfa.enrolled'], active: false, metadata: { owner: 'ops' } },
    });
    assert.equal(res.status, 200, res.body);
    const u = res.json;
    assert.equal(u.id, c.id);
    assert.equal(u.url, 'https://other.acme.test/in');
    assert.deepEqual(u.events, ['session.*', 'mfa.enrolled']);
    assert.equal(u.active, false);
    assert.deepEqual(u.metadata, { owner: 'ops' }, 'metadata is replaced, not merged');
    assert.equal(u.createdAt, c.createdAt);
    assert.match(u.updatedAt, TIME_RE);
    assert.ok(Date.parse(u.updatedAt) > Date.parse(c.updatedAt), `updatedAt ${u.updatedAt} did not move from ${c.updatedAt}`);
    assert.ok(!('secret' in u));
    const got = await gw.request('GET', `/v1/webhooks/${c.id}`);
    assert.deepEqual(got.json, u, 'the change is stored');

    // One field at a time leaves the others alone; {} still touches updatedAt.
    await sleep(20);
    const a = await gw.request('PATCH', `/v1/webhooks/${c.id}`, { body: { active: true } });
    assert.equal(a.status, 200, a.body);
    // Back on: the reason a PATCH active=false gave ("manual") goes with it.
    assert.equal(u.disabledReason.code, 'manual');
    assert.equal(a.json.disabledReason, null);
    assert.equal(a.json.disabledAt, null);
    assert.deepEqual({ ...a.json, active: false, updatedAt: u.updatedAt, disabledAt: u.disabledAt, disabledReason: u.disabledReason }, u);
    assert.ok(Date.parse(a.json.updatedAt) > Date.parse(u.updatedAt));
    await sleep(20);
    const e = await gw.request('PATCH', `/v1/webhooks/${c.id}`, { body: {} });
    assert.equal(e.status, 200, e.body);
    assert.ok(Date.parse(e.json.updatedAt) > Date.parse(a.json.updatedAt));
    assert.equal(e.json.createdAt, c.createdAt);
  });

  it('PATCH refuses organizationId and secret as unknown fields and validates like create', async () => {
    const c = (await create(valid())).json;
    const res = await gw.request('PATCH', `/v1/webhooks/${c.id}`, {
      body: { organizationId: 'org_9', secret: 'whsec_' + Buffer.alloc(32).toString('base64'), url: 'ftp://x.test', events: [], active: 1, metadata: { n: 1 } },
    });
    const details = expectValidation(res, ['organizationId', 'secret', 'url', 'events', 'active', 'metadata.n']);
    assert.equal(details.find((d) => d.field === 'organizationId').message, 'unknown field');
    const got = await gw.request('GET', `/v1/webhooks/${c.id}`);
    assert.equal(got.json.updatedAt, c.updatedAt, 'a refused PATCH changes nothing');
    assert.equal(got.json.organizationId, null);
  });

  it('DELETE answers 204, then the webhook is gone', async () => {
    const c = (await create(valid())).json;
    const del = await gw.request('DELETE', `/v1/webhooks/${c.id}`);
    assert.equal(del.status, 204);
    assert.equal(del.body, '');
    expectError(await gw.request('GET', `/v1/webhooks/${c.id}`), 404, 'not_found');
    expectError(await gw.request('DELETE', `/v1/webhooks/${c.id}`), 404, 'not_found');
    expectError(await gw.request('PATCH', `/v1/webhooks/${c.id}`, { body: { active: false } }), 404, 'not_found');
    expectError(await gw.request('POST', `/v1/webhooks/${c.id}/rotate-secret`), 404, 'not_found');
  });

  it('unknown and malformed ids answer 404 not_found', async () => {
    const e = expectError(await gw.request('GET', '/v1/webhooks/wh_01aaaaaaaaaaaaaaaaaaaaaaaa'), 404, 'not_found');
    assert.equal(e.message, 'webhook not found');
    for (const id of ['nope', 'wh_', 'wh_ZZZZZZZZZZZZZZZZZZZZZZZZZZ', 'del_01aaaaaaaaaaaaaaaaaaaaaaaa', 'wh_01aaaaaaaaaaaaaaaaaaaaaaaaa'])
      expectError(await gw.request('GET', `/v1/webhooks/${id}`), 404, 'not_found');
  });
});

describe('rotateWebhookSecret', () => {
  it('defaults to a 24 hour grace period and returns a new secret', async () => {
    const c = (await create(valid())).json;
    const t0 = Date.now();
    const res = await gw.request('POST', `/v1/webhooks/${c.id}/rotate-secret`, { body: {} });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(Object.keys(res.json).sort(), ['previousSecretExpiresAt', 'secret']);
    assert.equal(secretBytes(res.json.secret).length, 32);
    assert.notEqual(res.json.secret, c.secret);
    assert.match(res.json.previousSecretExpiresAt, TIME_RE);
    const exp = Date.parse(res.json.previousSecretExpiresAt);
    assert.ok(Math.abs(exp - (t0 + 24 * HOUR)) < SLACK, `expires ${res.json.previousSecretExpiresAt}, expected ~now+24h`);
    const got = await gw.request('GET', `/v1/webhooks/${c.id}`);
    assert.ok(Date.parse(got.json.updatedAt) >= Date.parse(c.updatedAt));
    assert.equal(got.json.createdAt, c.createdAt);
  });

  it('accepts an empty body without a Content-Type', async () => {
    const c = (await create(valid())).json;
    const t0 = Date.now();
    const res = await rawRequest('POST', `/v1/webhooks/${c.id}/rotate-secret`, { authorization: `Bearer ${gw.adminKey}` });
    assert.equal(res.status, 200, res.body);
    assert.ok(Math.abs(Date.parse(res.json.previousSecretExpiresAt) - (t0 + 24 * HOUR)) < SLACK);
  });

  it('gracePeriodHours 0 retires the old secret now; 168 and fractions are allowed', async () => {
    const c = (await create(valid())).json;
    const t0 = Date.now();
    const r0 = await gw.request('POST', `/v1/webhooks/${c.id}/rotate-secret`, { body: { gracePeriodHours: 0 } });
    assert.equal(r0.status, 200, r0.body);
    assert.ok(Math.abs(Date.parse(r0.json.previousSecretExpiresAt) - t0) < SLACK, r0.body);
    assert.notEqual(r0.json.secret, c.secret);
    for (const g of [168, 0.5, 1]) {
      const t = Date.now();
      const r = await gw.request('POST', `/v1/webhooks/${c.id}/rotate-secret`, { body: { gracePeriodHours: g } });
      assert.equal(r.status, 200, r.body);
      assert.ok(Math.abs(Date.parse(r.json.previousSecretExpiresAt) - (t + g * HOUR)) < SLACK, `g=${g}: ${r.body}`);
    }
  });

  it('every rotation yields a secret never seen before', async () => {
    const c = (await create(valid())).json;
    const seen = new Set([c.secret]);
    for (let i = 0; i < 12; i++) {
      const r = await gw.request('POST', `/v1/webhooks/${c.id}/rotate-secret`, { body: { gracePeriodHours: 1 } });
      assert.equal(r.status, 200, r.body);
      assert.ok(!seen.has(r.json.secret));
      seen.add(r.json.secret);
    }
  });

  it('refuses gracePeriodHours out of range or not a number, and unknown fields', async () => {
    const c = (await create(valid())).json;
    for (const g of [169, -1, -0.001, 168.5, '24', null, true, [24], { h: 1 }]) {
      const res = await gw.request('POST', `/v1/webhooks/${c.id}/rotate-secret`, { body: { gracePeriodHours: g } });
      const [d] = expectValidation(res, ['gracePeriodHours']);
      assert.match(d.message, /0.*168/);
    }
    expectValidation(await gw.request('POST', `/v1/webhooks/${c.id}/rotate-secret`, { body: { gracePeriodHours: 500, grace: 1 } }),
      ['gracePeriodHours', 'grace']);
    // Refusals rotate nothing: the webhook was not touched.
    const got = await gw.request('GET', `/v1/webhooks/${c.id}`);
    assert.equal(got.json.updatedAt, c.updatedAt);
  });
});

describe('validation', () => {
  it('lists every broken field of one body in one 422', async () => {
    const res = await create({
      url: 'https://u:p@x.test/h',
      events: ['user.created', 'user.craeted', 'user.created', 'nosuch.*', 7],
      metadata: { good: 'x', bad: 1, ['k'.repeat(65)]: 'v', long: 'v'.repeat(513) },
      active: 'yes',
      secret: 'sk_live_123',
      colour: 'blue',
      organizationId: 'has space',
    });
    const details = expectValidation(res, [
      'url', 'events[1]', 'events[2]', 'events[3]', 'events[4]', 'metadata.bad', `metadata.${'k'.repeat(65)}`,
      'metadata.long', 'active', 'secret', 'colour', 'organizationId',
    ]);
    const msg = (f) => details.find((d) => d.field === f).message;
    assert.match(msg('url'), /user information/);
    assert.match(msg('events[1]'), /user\.craeted/);
    assert.match(msg('events[2]'), /duplicate/);
    assert.match(msg('events[3]'), /nosuch\.\*/);
    assert.equal(msg('colour'), 'unknown field');
    assert.match(msg('secret'), /whsec_/);
  });

  it('url rules', async () => {
    const bad = {
      missing: undefined,
      'not a string': 42,
      'null': null,
      'http when not allowed': 'http://app.acme.test/h',
      ftp: 'ftp://app.acme.test/h',
      'no scheme': 'app.acme.test/h',
      'no host': 'https:///path',
      'empty host with port': 'https://:443/path',
      'scheme only': 'https://',
      'user info': 'https://u:p@x.com/h',
      'user only': 'https://u@x.com/h',
      'too long': 'https://x.test/' + 'a'.repeat(2049 - 'https://x.test/'.length),
      space: 'https://x.test/a b',
      'space in host': 'https://x .test/',
      tab: 'https://x.test/\t',
      newline: 'https://x.test/\nX-Injected: 1',
      fragment: 'https://x.test/h#frag',
      'port 0': 'https://x.test:0/',
      'port too big': 'https://x.test:65536/',
      'port not a number': 'https://x.test:ab/',
      'empty port': 'https://x.test:/',
      'bad ipv6': 'https://[::g]/',
      'bad host char': 'https://x_y!.test/',
      empty: '',
    };
    for (const [name, url] of Object.entries(bad)) {
      const body = { events: ['user.created'] };
      if (url !== undefined) body.url = url;
      const res = await create(body);
      assert.equal(res.status, 422, `${name}: ${res.body}`);
      expectValidation(res, ['url']);
    }
    const [d] = expectValidation(await create({ events: ['*'] }), ['url']);
    assert.match(d.message, /required/);
    const [h] = expectValidation(await create(valid({ url: 'http://x.test/' })), ['url']);
    assert.match(h.message, /https/);
  });

  it('events rules', async () => {
    const bad = {
      missing: [undefined, 'events'],
      empty: [[], 'events'],
      'not an array': ['user.created', 'events'],
      object: [{ 0: 'user.created' }, 'events'],
      'duplicate': [['user.created', 'user.created'], 'events[1]'],
      'duplicate pattern': [['*', 'user.*', '*'], 'events[2]'],
      'unknown type': [['user.craeted'], 'events[0]'],
      'unknown prefix pattern': [['nosuch.*'], 'events[0]'],
      'wrong case': [['User.Created'], 'events[0]'],
      'not a string': [['user.created', 1], 'events[1]'],
      'bare prefix': [['user'], 'events[0]'],
      'empty string': [[''], 'events[0]'],
      'more than 100': [Array.from({ length: 101 }, () => '*'), 'events'],
    };
    for (const [name, [events, field]] of Object.entries(bad)) {
      const body = { url: 'https://x.test/h' };
      if (events !== undefined) body.events = events;
      const res = await create(body);
      assert.equal(res.status, 422, `${name}: ${res.body}`);
      expectValidation(res, [field]);
    }
  });

  it('metadata rules', async () => {
    const bad = {
      'number value': [{ n: 1 }, ['metadata.n']],
      'null value': [{ n: null }, ['metadata.n']],
      'object value': [{ n: { a: 'b' } }, ['metadata.n']],
      'bool value': [{ n: true }, ['metadata.n']],
      'not an object': [['a'], ['metadata']],
      'a string': ['team=growth', ['metadata']],
      '51 keys': [Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])), ['metadata']],
      'key of 65': [{ ['k'.repeat(65)]: 'v' }, [`metadata.${'k'.repeat(65)}`]],
      'empty key': [{ '': 'v' }, ['metadata.']],
      'value of 513': [{ v: 'x'.repeat(513) }, ['metadata.v']],
      'value of 513 bytes (multi-byte)': [{ v: 'é'.repeat(257) }, ['metadata.v']],
      'several': [{ a: 1, b: 'ok', c: false }, ['metadata.a', 'metadata.c']],
    };
    for (const [name, [metadata, fields]] of Object.entries(bad)) {
      const res = await create(valid({ metadata }));
      assert.equal(res.status, 422, `${name}: ${res.body}`);
      expectValidation(res, fields);
    }
  });

  it('active, secret, organizationId and unknown fields', async () => {
    for (const active of ['true', 1, 0, null, [], {}])
      expectValidation(await create(valid({ active })), ['active']);
    const b64 = (n) => Buffer.alloc(n, 1).toString('base64');
    for (const secret of ['sk_123', b64(32), 'whsec_', 'whsec_' + b64(16), 'whsec_' + b64(23), 'whsec_' + b64(65),
      'whsec_' + b64(32).replace(/=+$/, '') + '!', 'whsec_' + Buffer.alloc(32, 0xfb).toString('base64url'), 42, null])
      expectValidation(await create(valid({ secret })), ['secret']);
    for (const organizationId of ['', 'a b', 'x'.repeat(129), 'org/1', 7])
      expectValidation(await create(valid({ organizationId })), ['organizationId']);
    const ok = await create(valid({ organizationId: 'A-b_c.d:1' + 'x'.repeat(119) }));
    assert.equal(ok.status, 201, ok.body);
    expectValidation(await create(valid({ event: ['user.created'] })), ['event']);
    expectValidation(await create(valid({ id: 'wh_01aaaaaaaaaaaaaaaaaaaaaaaa', createdAt: 'x' })), ['id', 'createdAt']);
  });

  it('quoting long non-ASCII input in a detail never loses the detail', async () => {
    // Field names and messages cut the input to a byte count; the cut can
    // fall inside a character. The answer must still be a 422 naming it.
    const longKey = 'a' + 'é'.repeat(40); // 81 bytes: over 64, cut at 70 inside an é
    for (const [metadata, n] of [[{ [longKey]: 'x' }, 1], [{ [longKey]: 'x', n: 1 }, 2]]) {
      const res = await create(valid({ metadata }));
      const e = expectError(res, 422, 'validation_error');
      assert.equal(e.details.length, n, res.body);
      assert.ok(e.details[0].field.startsWith('metadata.aéé'), e.details[0].field);
      assert.match(e.details[0].message, /1 to 64/);
    }
    const res = await create(valid({ events: ['user.' + 'é'.repeat(200)] }));
    expectValidation(res, ['events[0]']);
    const both = await create(valid({ events: ['*', 'é'.repeat(300)], metadata: { [longKey]: 'x' } }));
    const e = expectError(both, 422, 'validation_error');
    assert.deepEqual(e.details.map((d) => d.field.slice(0, 10)), ['events[1]', 'metadata.a'], both.body);
  });

  it('malformed JSON answers 400 invalid_json naming the byte offset', async () => {
    const text = '{"url": "https://x.test/h", "events": ["user.created"]';
    const e = expectError(await create(text), 400, 'invalid_json');
    assert.equal(e.details.length, 1);
    assert.equal(e.details[0].field, 'body');
    assert.equal(typeof e.details[0].offset, 'number');
    assert.equal(e.details[0].offset, Buffer.byteLength(text), 'stops at the end of the truncated body');
    assert.ok(e.message.includes(`byte ${e.details[0].offset}`), e.message);

    const bad2 = '{"url": "https://x.test/h",, "events": []}';
    const e2 = expectError(await create(bad2), 400, 'invalid_json');
    const off = e2.details[0].offset;
    assert.ok(off >= 27 && off <= 28, `offset ${off} should point at the second comma (27)`);
    assert.ok(e2.message.includes(`byte ${off}`), e2.message);

    for (const body of ['', 'null', '[]', '"str"', '42', '{"url":"a","url":"b","events":["*"]}', 'not json'])
      expectError(await create(body), 400, 'invalid_json');
  });

  it('a body that is not application/json answers 415', async () => {
    const body = JSON.stringify(valid());
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx', 'multipart/form-data; boundary=x']) {
      const res = await create(body, { headers: { 'content-type': ct } });
      expectError(res, 415, 'unsupported_media_type');
    }
    const none = await rawRequest('POST', '/v1/webhooks', { authorization: `Bearer ${gw.adminKey}`, 'content-length': Buffer.byteLength(body) }, body);
    expectError(none, 415, 'unsupported_media_type');
    const ok = await create(body, { headers: { 'content-type': 'application/json; charset=utf-8' } });
    assert.equal(ok.status, 201, ok.body);
    const c = ok.json;
    expectError(await gw.request('PATCH', `/v1/webhooks/${c.id}`, { body: '{}', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
    expectError(await gw.request('POST', `/v1/webhooks/${c.id}/rotate-secret`, { body: '{}', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
  });
});

describe('webhooks.allow_http', () => {
  const probe = async (config) => {
    const g = await startGateway({ config });
    try {
      const http1 = await g.request('POST', '/v1/webhooks', { body: valid({ url: 'http://receiver.test:8080/h' }) });
      const ftp = await g.request('POST', '/v1/webhooks', { body: valid({ url: 'ftp://receiver.test/h' }) });
      return { http1, ftp };
    } finally {
      assert.equal((await g.stop()).code, 0);
    }
  };

  it('refuses http:// when allow_http = false (the default) and takes it when true', async () => {
    const off = await probe('webhooks = { allow_http = false }\n');
    const [d] = expectValidation(off.http1, ['url']);
    assert.match(d.message, /https/);
    expectValidation(off.ftp, ['url']);
    const on = await probe('webhooks = { allow_http = true }\n');
    assert.equal(on.http1.status, 201, on.http1.body);
    assert.equal(on.http1.json.url, 'http://receiver.test:8080/h');
    expectValidation(on.ftp, ['url']);
  });
});

describe('listWebhooks pagination', () => {
  // A gateway of its own, so that only these webhooks are listed.
  let pg;
  const original = []; // ids in creation order
  before(async () => {
    pg = await startGateway({});
    // Sequential creates: the creation order, hence the list order, is known.
    for (let i = 0; i < 250; i++) {
      const r = await pg.request('POST', '/v1/webhooks', { body: { url: `https://r${i}.test/h`, events: ['*'] } });
      assert.equal(r.status, 201, r.body);
      original.push(r.json.id);
    }
  });
  after(async () => {
    if (pg) assert.equal((await pg.stop()).code, 0);
  });

  const list = (q = '') => pg.request('GET', `/v1/webhooks${q}`);

  it('defaults to 25, newest first, without secrets', async () => {
    const res = await list();
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(Object.keys(res.json).sort(), ['nextPageToken', 'webhooks']);
    assert.equal(res.json.webhooks.length, 25);
    assert.deepEqual(res.json.webhooks.map((w) => w.id), original.slice(-25).reverse());
    assert.equal(typeof res.json.nextPageToken, 'string');
    for (const w of res.json.webhooks) {
      assert.ok(!('secret' in w));
      assert.match(w.createdAt, TIME_RE);
      assert.deepEqual(w.events, ['*']);
    }
    assert.equal(res.json.webhooks[0].url, 'https://r249.test/h');
  });

  it('pageSize takes 1 to 100', async () => {
    assert.equal((await list('?pageSize=100')).json.webhooks.length, 100);
    assert.equal((await list('?pageSize=1')).json.webhooks.length, 1);
    for (const ps of ['101', '0', '-1', '1.5', 'abc', '', '1e2', '25x', '99999999999999999999'])
      expectValidation(await list(`?pageSize=${ps}`), ['pageSize']);
  });

  it('walking every page yields each webhook once, newest first, even while new ones arrive', async () => {
    const seen = [];
    const added = new Set();
    let token = null;
    let pages = 0;
    do {
      const res = await list(`?pageSize=25${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
      assert.equal(res.status, 200, res.body);
      pages++;
      seen.push(...res.json.webhooks.map((w) => w.id));
      token = res.json.nextPageToken;
      // New webhooks between page fetches must not shift the pages.
      for (let k = 0; k < 3; k++) {
        const r = await pg.request('POST', '/v1/webhooks', { body: { url: 'https://late.test/h', events: ['*'] } });
        assert.equal(r.status, 201, r.body);
        added.add(r.json.id);
      }
      assert.ok(pages <= 20, 'paging does not end');
    } while (token !== null);
    assert.equal(pages, 10);
    assert.equal(new Set(seen).size, seen.length, 'no webhook repeated');
    assert.ok(!seen.some((id) => added.has(id)), 'webhooks created while paging come before the first page');
    assert.deepEqual(seen, [...original].reverse(), 'all 250, newest first');

    // A later walk sees the new ones first, then the originals, still each once.
    const all = [];
    token = null;
    do {
      const res = await list(`?pageSize=100${token ? `&pageToken=${token}` : ''}`);
      all.push(...res.json.webhooks.map((w) => w.id));
      token = res.json.nextPageToken;
    } while (token !== null);
    assert.equal(all.length, 250 + added.size);
    assert.deepEqual(all.slice(added.size), [...original].reverse());
    assert.deepEqual(new Set(all.slice(0, added.size)), added);
  });

  it('a deleted webhook simply does not appear', async () => {
    const first = await list('?pageSize=10');
    const victim = first.json.webhooks[10 - 1]; // last of page 1
    const next = first.json.nextPageToken;
    assert.equal((await pg.request('DELETE', `/v1/webhooks/${victim.id}`)).status, 204);
    const page2 = await list(`?pageSize=10&pageToken=${next}`);
    assert.equal(page2.status, 200, page2.body);
    assert.equal(page2.json.webhooks.length, 10);
    assert.ok(!page2.json.webhooks.some((w) => w.id === victim.id));
    assert.ok(page2.json.webhooks[0].id < victim.id, 'continues below the deleted one');
  });

  it('a pageToken this server did not issue answers 422', async () => {
    const forged = (s) => Buffer.from(s).toString('base64url');
    for (const t of ['garbage', 'not-a-token!', '%%%', 'a'.repeat(200), forged('{"after":1}'), forged('wh_ZZ'), forged('abc'),
      forged('wh_' + 'z'.repeat(26)), forged('del_01aaaaaaaaaaaaaaaaaaaaaaaa')])
      expectValidation(await list(`?pageToken=${encodeURIComponent(t)}`), ['pageToken']);
    // Both problems at once are both reported.
    expectValidation(await list('?pageSize=0&pageToken=garbage'), ['pageSize', 'pageToken']);
    // An empty token is the first page.
    assert.equal((await list('?pageToken=')).status, 200);
  });
});
