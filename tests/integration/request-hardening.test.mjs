// request-hardening.test.mjs: what the API accepts at its edges, against the
// real binary: the body's Content-Type is application/json exactly (with or
// without parameters), pageSize is ASCII digits only, and a request with two
// Authorization headers is refused rather than acted on with either key.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from './lib/gateway.mjs';
import { expectError, expectValidation } from './lib/expect.mjs';

let gw, wh;
before(async () => {
  gw = await startGateway({});
  const c = await gw.request('POST', '/v1/webhooks', { body: { url: 'https://h.example.test/h', events: ['user.created'] } });
  assert.equal(c.status, 201, c.body);
  wh = c.json.id;
});
after(async () => {
  if (gw) {
    const { code, signal } = await gw.stop();
    assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs().slice(-4000)}`);
  }
});

const hook = () => ({ url: 'https://h.example.test/h', events: ['user.created'] });
const event = () => ({ type: 'user.created', data: { id: 'u_1' } });
// Every route that reads a JSON body, with a valid body and its success status.
const BODY_ROUTES = () => [
  ['POST', '/v1/webhooks', hook(), 201],
  ['PATCH', `/v1/webhooks/${wh}`, { active: true }, 200],
  ['POST', '/v1/events', event(), 202],
  ['POST', '/v1/events/batch', { events: [event()] }, 202],
];

async function serving() {
  assert.equal((await gw.request('GET', '/healthz', { key: null })).status, 200);
}

describe('Content-Type', () => {
  it('application/json, in any case, with or without parameters, is accepted', async () => {
    for (const ct of ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON;charset=UTF-8',
      'Application/Json ; charset=utf-8', ' application/json']) {
      for (const [m, p, body, ok] of BODY_ROUTES()) {
        const res = await gw.request(m, p, { body, headers: { 'content-type': ct } });
        assert.equal(res.status, ok, `${m} ${p} with ${JSON.stringify(ct)}: ${res.body}`);
      }
    }
  });

  it('any other type, including ones that start like it, answers 415 unsupported_media_type', async () => {
    for (const ct of ['application/jsonx', 'application/json-seq', 'application/jsonp; charset=utf-8',
      'application/json x', 'application/json,text/plain', 'application/json/x', 'text/json', 'application/x-json',
      'text/plain', 'application/merge-patch+json']) {
      for (const [m, p, body] of BODY_ROUTES()) {
        const res = await gw.request(m, p, { body, headers: { 'content-type': ct } });
        expectError(res, 415, 'unsupported_media_type');
      }
    }
    await serving();
  });
});

describe('pageSize', () => {
  const LISTS = () => ['/v1/webhooks', `/v1/webhooks/${wh}/deliveries`];

  it('only ASCII digits: a sign, spaces, a suffix, hex, a fraction or an exponent is 422 naming pageSize', async () => {
    const bad = ['%2B5', '+5', '%205', '5%20', '5abc', '0x10', '5.0', '-5', '1e1', '', '0', '101', '99999999999999999999',
      '%EF%BC%95', '5%00', '%095'];
    for (const list of LISTS()) {
      for (const v of bad) {
        const res = await gw.request('GET', `${list}?pageSize=${v}`);
        const d = expectValidation(res, ['pageSize']);
        assert.match(d[0].message, /whole number from 1 to 100/, `${list}?pageSize=${v}`);
      }
    }
    await serving();
  });

  it('digits from 1 to 100 are taken', async () => {
    for (const list of LISTS()) {
      for (const v of ['1', '5', '007', '100']) {
        const res = await gw.request('GET', `${list}?pageSize=${v}`);
        assert.equal(res.status, 200, `${list}?pageSize=${v}: ${res.body}`);
      }
    }
  });
});

describe('Authorization', () => {
  it('two Authorization headers answer 400 naming the header, whatever the keys', async () => {
    const pairs = [
      [`Bearer ${gw.adminKey}`, `Bearer ${gw.adminKey}`],
      [`Bearer ${gw.adminKey}`, 'Bearer hg_unknown_key_000000000000000000000000000000000'],
      ['Bearer hg_unknown_key_000000000000000000000000000000000', `Bearer ${gw.adminKey}`],
      [`Bearer ${gw.adminKey}`, ''],
    ];
    const before = (await gw.request('GET', '/v1/webhooks?pageSize=100')).json.webhooks.length;
    for (const authorization of pairs) {
      for (const [m, p, body] of [['GET', '/v1/webhooks'], ['POST', '/v1/webhooks', hook()], ['GET', `/v1/webhooks/${wh}`]]) {
        const res = await gw.request(m, p, { key: null, body, headers: { authorization } });
        const e = expectError(res, 400, 'bad_request');
        assert.deepEqual(e.details.map((d) => d.field), ['Authorization'], res.body);
        assert.ok(!res.body.includes(gw.adminKey), 'the answer quotes a key');
      }
    }
    assert.ok(!gw.logs().includes(gw.adminKey), 'a key reached the log');
    // Nothing was created by the refused POSTs.
    const l = await gw.request('GET', '/v1/webhooks?pageSize=100');
    assert.equal(l.json.webhooks.length, before);
    await serving();
  });

  it('one Authorization header still works', async () => {
    const res = await gw.request('GET', '/v1/webhooks', { key: null, headers: { authorization: `Bearer ${gw.adminKey}` } });
    assert.equal(res.status, 200, res.body);
  });
});
