// examples/typescript end to end: a real gateway (allowed to deliver to
// 127.0.0.1 by delivery.allow_cidrs), the example's receiver and service
// as built by `npm run build` there, run as a user would run them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startGateway } from '../integration/lib/gateway.mjs';
import { sdk } from './lib/sdk.mjs';

const { signWebhook } = sdk;
const EXAMPLE = fileURLToPath(new URL('../../examples/typescript/', import.meta.url));
const procs = new Set();
after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
});

function run(script, env) {
  const p = spawn(process.execPath, [`${EXAMPLE}dist/${script}`], {
    cwd: EXAMPLE, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  procs.add(p);
  const out = { stdout: '', stderr: '' };
  p.stdout.on('data', (d) => { out.stdout += d; });
  p.stderr.on('data', (d) => { out.stderr += d; });
  out.exited = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
  out.proc = p;
  return out;
}

async function waitFor(get, re, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const m = re.exec(get());
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got:\n${get()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('the example service creates a webhook, publishes, and the example receiver verifies and prints the event', async () => {
  for (const f of ['receiver.js', 'service.js']) {
    assert.ok(existsSync(`${EXAMPLE}dist/${f}`),
      `examples/typescript/dist/${f} is missing: run (cd examples/typescript && npm ci && npm run build) (scripts/test does)`);
  }
  const gw = await startGateway({
    config: `webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.1/32" } }
`,
  });
  try {
    const secret = 'whsec_' + Buffer.alloc(32, 42).toString('base64');
    const rx = run('receiver.js', { WEBHOOK_SECRET: secret, RECEIVER_PORT: '0' });
    const [, receiverUrl] = await waitFor(() => rx.stderr, /receiver listening on (\S+)/, 'the receiver to listen');

    const svc = run('service.js', {
      HOOKGATE_URL: gw.url, HOOKGATE_API_KEY: gw.adminKey, RECEIVER_URL: receiverUrl, WEBHOOK_SECRET: secret,
    });
    const code = await svc.exited;
    assert.equal(code, 0, `service failed:\n${svc.stdout}\n${svc.stderr}`);
    const webhookId = /created webhook (wh_\S+)/.exec(svc.stdout)?.[1];
    const eventId = /published (evt_\S+) \(1 delivery\)/.exec(svc.stdout)?.[1];
    assert.ok(webhookId && eventId, svc.stdout);
    assert.match(svc.stdout, /del_\S+ user\.created success 2\d\d attempts=1/);
    assert.match(svc.stdout, /attempt 1: 204 in \d+ ms/);
    assert.match(svc.stdout, new RegExp(`deleted webhook ${webhookId}`));

    const [line] = await waitFor(() => rx.stdout, /^\{.*\}$/m, 'the receiver to print the event');
    const printed = JSON.parse(line);
    assert.equal(printed.id, eventId);
    assert.equal(printed.type, 'user.created');
    assert.deepEqual(printed.data, { userId: 'usr_123', email: 'ada@acme.test' });

    // A forged delivery (the wrong secret) is refused with 400 and not printed.
    const body = JSON.stringify({ type: 'user.deleted', timestamp: new Date().toISOString(), data: {} });
    const forged = signWebhook({ id: 'evt_forged', body, secret: 'whsec_' + Buffer.alloc(32, 1).toString('base64') });
    const r = await fetch(receiverUrl, { method: 'POST', headers: { ...forged, 'content-type': 'application/json' }, body });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'invalid_signature');
    // ...and a good one with the right secret is accepted, once per id.
    const good = signWebhook({ id: 'evt_local', body, secret });
    for (let i = 0; i < 2; i++) {
      const ok = await fetch(receiverUrl, { method: 'POST', headers: good, body });
      assert.equal(ok.status, 204);
    }
    await waitFor(() => rx.stdout, /"id":"evt_local"/, 'the local event');
    assert.equal(rx.stdout.match(/"id":"evt_local"/g).length, 1);
    assert.doesNotMatch(rx.stdout, /evt_forged/);
    assert.match(rx.stderr, /rejected a delivery: invalid_signature/);

    rx.proc.kill('SIGTERM');
    assert.equal(await rx.exited, 0);
  } finally {
    await gw.stop();
  }
});
