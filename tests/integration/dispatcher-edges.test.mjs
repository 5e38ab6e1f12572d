// Edges of the delivery queue found in review: a queue whose in-flight
// slots all emptied without a record must keep going, and a shutdown while
// a deliver-phase plugin waits on I/O must leave the delivery pending (it
// is sent after the restart), not fail it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver, hang, ok } from './lib/receiver.mjs';
import { deliveryConfig, createWebhook, publishOk, until, waitDelivery, stopClean } from './lib/delivery.mjs';

test('deleting the webhooks that held every in-flight slot does not stall the queue', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.close());
  const gw = await startGateway({ config: deliveryConfig({ extra: 'paused = true, max_in_flight = 1' }) });
  const a = await createWebhook(gw, rx, '/a', ['*'], { organizationId: 'orga' });
  const b = await createWebhook(gw, rx, '/b', ['*'], { organizationId: 'orgb' });
  await publishOk(gw, { type: 'user.created', data: {}, organizationId: 'orga' });
  await publishOk(gw, { type: 'user.created', data: {}, organizationId: 'orga' });
  const evB = await publishOk(gw, { type: 'user.created', data: {}, organizationId: 'orgb' });
  assert.equal((await gw.request('DELETE', `/v1/webhooks/${a.id}`)).status, 204);
  assert.equal((await gw.request('POST', '/v1/admin/delivery/resume')).status, 200);
  // Nothing else happens: B's delivery must go out on its own.
  await until(() => rx.requests.some((q) => q.path === '/b'), { what: "b's delivery", timeout: 5000 });
  const d = await waitDelivery(gw, b.id, evB.id);
  assert.equal(d.status, 'success');
  await stopClean(gw);
});

test('a deliver plugin waiting on I/O at SIGTERM leaves its delivery pending; it is sent after restart', async (t) => {
  const rx = await startReceiver();
  t.after(() => rx.close());
  rx.on('/token', hang());
  const dir = tempDir();
  mkdirSync(join(dir, 'plugins/tok'), { recursive: true });
  writeFileSync(join(dir, 'plugins/tok/init.lua'), `return { name = "tok", version = "1",
  deliver = function(d)
    local r = assert(hookgate.http.request{ url = ${JSON.stringify(rx.url('/token'))} })
    d.headers["x-tok"] = r.body
  end }`);
  const config = `lua = { plugin_paths = { ${JSON.stringify(join(dir, 'plugins'))} } }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.2, 0.2 }, jitter = 0 }
plugins = { tok = true }`;
  let gw = await startGateway({ dir, config });
  const wh = await createWebhook(gw, rx, '/hook', ['*']);
  const ev = await publishOk(gw, { type: 'user.created', data: { n: 1 } });
  await until(() => rx.requests.some((q) => q.path === '/token'), { what: 'the token request' });
  const { code } = await gw.stop('SIGTERM');
  assert.equal(code, 0, 'graceful shutdown exits 0');
  rx.on('/token', ok('T'));
  gw = await startGateway({ dir, config });
  const d = await waitDelivery(gw, wh.id, ev.id, (x) => x.status !== 'pending');
  assert.equal(d.status, 'success', JSON.stringify(d));
  const hooks = rx.requests.filter((q) => q.path === '/hook');
  assert.equal(hooks.length, 1);
  assert.equal(hooks[0].headers['x-tok'], 'T');
  assert.equal(hooks[0].headers['webhook-id'], ev.id);
  await stopClean(gw);
});
