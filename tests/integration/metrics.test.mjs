// GET /metrics: the Prometheus text format, checked by Prometheus's own
// promtool on real output after real traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startGateway } from './lib/gateway.mjs';
import { startReceiver } from './lib/receiver.mjs';

const PROMTOOL = process.env.PROMTOOL || 'promtool';

test('metrics pass promtool and count what happened', async (t) => {
  const have = spawnSync(PROMTOOL, ['--version']);
  assert.equal(have.error, undefined, 'promtool is missing: scripts/install-deps --test installs the prometheus package');
  const recv = await startReceiver();
  t.after(() => recv.close());
  const gw = await startGateway({
    config: `webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.2 }, jitter = 0 }
`,
  });
  t.after(() => gw.stop());
  const wh = await gw.request('POST', '/v1/webhooks', { body: { url: recv.url("/ok"), events: ['user.*'] } });
  assert.equal(wh.status, 201, wh.body);
  for (let i = 0; i < 3; i++) {
    const ev = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data: { i } } });
    assert.equal(ev.status, 202, ev.body);
  }
  // Wait for the three deliveries to succeed.
  const deadline = Date.now() + 20000;
  let text = '';
  for (;;) {
    const m = await gw.request('GET', '/metrics', { key: null });
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    text = m.body;
    if (/hookgate_deliveries_completed_total\{status="success"\} 3\b/.test(text)) break;
    assert.ok(Date.now() < deadline, 'deliveries did not complete:\n' + text);
    await new Promise((r) => setTimeout(r, 50));
  }
  const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text });
  assert.equal(check.status, 0, `promtool check metrics failed:\n${check.stdout}${check.stderr}\n---\n${text}`);
  assert.match(text, /^hookgate_events_ingested_total 3$/m);
  assert.match(text, /^hookgate_deliveries_created_total 3$/m);
  assert.match(text, /^hookgate_delivery_attempts_total\{outcome="success"\} 3$/m);
  assert.match(text, /^hookgate_delivery_latency_seconds_count 3$/m);
  assert.match(text, /^hookgate_store_commit_seconds_count [1-9]/m);
  assert.match(text, /^hookgate_store_commit_batch_size_bucket\{le="\+Inf"\} [1-9]/m);
  assert.match(text, /^hookgate_delivery_queue_depth 0$/m);
  assert.match(text, /^hookgate_http_connections [1-9]/m);
  assert.match(text, /^# TYPE hookgate_lua_errors_total counter$/m);
  assert.match(text, /^hookgate_store_checkpoints_total\{thread="checkpoint"\} \d+$/m);
  assert.match(text, /^hookgate_store_checkpoints_total\{thread="store"\} \d+$/m);
  // Nothing identifying leaks into metrics.
  assert.ok(!text.includes(wh.json.id) && !text.includes(wh.json.secret) && !text.includes(recv.url("/")));
});
