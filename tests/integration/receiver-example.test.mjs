// examples/receiver.mjs, the quickstart's receiver: it accepts what a
// Standard Webhooks library signs (the standardwebhooks package, not the
// gateway's code nor its own) and refuses the rest with 401.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { until } from './lib/delivery.mjs';

const RECEIVER = new URL('../../examples/receiver.mjs', import.meta.url).pathname;
const secret = 'whsec_' + randomBytes(32).toString('base64');
const other = 'whsec_' + randomBytes(32).toString('base64');

function start(args, env = {}) {
  const p = spawn(process.execPath, [RECEIVER, ...args], {
    env: { ...process.env, WEBHOOK_SECRET: '', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const r = { proc: p, out: '' };
  p.stdout.on('data', (d) => { r.out += d; });
  p.stderr.on('data', (d) => { r.out += d; });
  r.exited = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
  return r;
}

let rx;
let port;
before(async () => {
  rx = start(['--secret', secret]);
  port = Number((await until(() => rx.out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)\//), { what: 'the receiver' }))[1]);
});
after(() => rx.proc.kill());

function post(body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/hooks', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function signed(key, id, body, at = new Date()) {
  const sig = new Webhook(key).sign(id, at, body);
  return { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at / 1000)), 'webhook-signature': sig };
}

const body = (n) => JSON.stringify({ type: 'user.created', timestamp: new Date().toISOString(), data: { n, name: 'Ada' } });

test('a signed delivery: 204, printed on one line with id, type and data', async () => {
  const b = body(1);
  assert.equal(await post(b, signed(secret, 'evt_one', b)), 204);
  await until(() => rx.out.includes('verified id=evt_one type=user.created data={"n":1,"name":"Ada"}\n'), { what: 'the line' });
  // The same webhook-id again (a replay) is noticed.
  assert.equal(await post(b, signed(secret, 'evt_one', b)), 204);
  await until(() => /verified id=evt_one type=user\.created .*\(again/.test(rx.out), { what: 'the repeat' });
});

test('several v1 entries (a rotation\'s grace period): any one that matches will do', async () => {
  const b = body(2);
  const h = signed(secret, 'evt_two', b);
  const o = signed(other, 'evt_two', b);
  h['webhook-signature'] = `${o['webhook-signature']} v1a,xxxx ${h['webhook-signature']}`;
  assert.equal(await post(b, h), 204);
  h['webhook-signature'] = o['webhook-signature'];
  assert.equal(await post(b, h), 401);
});

test('refused with 401: another secret, a changed body, a stale or future timestamp, missing headers', async () => {
  const b = body(3);
  assert.equal(await post(b, signed(other, 'evt_x', b)), 401);
  assert.equal(await post(body(4), signed(secret, 'evt_x', b)), 401);
  assert.equal(await post(b, { ...signed(secret, 'evt_x', b), 'webhook-id': 'evt_y' }), 401);
  assert.equal(await post(b, signed(secret, 'evt_x', b, new Date(Date.now() - 6 * 60 * 1000))), 401);
  assert.equal(await post(b, signed(secret, 'evt_x', b, new Date(Date.now() + 6 * 60 * 1000))), 401);
  assert.equal(await post(b, signed(secret, 'evt_x', b, new Date(Date.now() - 4 * 60 * 1000))), 204);
  const { 'webhook-signature': _, ...noSig } = signed(secret, 'evt_x', b);
  assert.equal(await post(b, noSig), 401);
  assert.match(rx.out, /rejected id=evt_x \(401\): no v1 signature matches the secret/);
  assert.match(rx.out, /rejected id=evt_x \(401\): webhook-timestamp is -?\d+ s away/);
  assert.ok(!rx.out.includes(secret.slice(6)), 'the secret is never printed');
});

test('the secret from WEBHOOK_SECRET; none at all is a usage error', async () => {
  const r = start([], { WEBHOOK_SECRET: secret });
  await until(() => /listening on .*secret from WEBHOOK_SECRET/.test(r.out), { what: 'the second receiver' });
  r.proc.kill();
  const none = start([]);
  assert.equal(await none.exited, 2);
  assert.match(none.out, /no secret: set WEBHOOK_SECRET or pass --secret/);
});
