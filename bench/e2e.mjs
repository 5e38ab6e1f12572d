// e2e.mjs: end-to-end latency, publish to the receiver's receipt.
//
// Usage: node bench/e2e.mjs --port GATEWAY_PORT[,PORT...] --key ADMIN_KEY [--rate 1000] [--duration 30]
//
// Several ports: gateways sharing one store (a cluster's nodes); the
// publishes go to each in turn, the webhook is created on the first.
//
// Starts a receiver on 127.0.0.1 (port 0), subscribes it to user.created,
// then publishes 512-byte events at a fixed rate on a keep-alive agent. The
// send time of each publish is kept by request; its 202 answer names the
// event id; the receiver keeps the receipt time by webhook-id (the event id).
// The two are joined at the end, because a webhook may arrive before the
// publisher has read its 202. Prints one JSON line:
// { sent, received, p50_ms, p99_ms, max_ms, publish_p99_ms, late }.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { eventBody, percentile, request, sleep } from './lib.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => {
  if (v.startsWith('--')) a.push([v.slice(2), all[i + 1]]);
  return a;
}, []));
const ports = String(args.port).split(',').map(Number);
const port = ports[0];
const key = args.key;
const rate = Number(args.rate || 1000);
const duration = Number(args.duration || 30);

const received = new Map(); // event id -> receipt time (ms, performance clock)
const receiver = http.createServer((req, res) => {
  const t = performance.now();
  const id = req.headers['webhook-id'];
  if (id && !received.has(id)) received.set(id, t);
  // Drain the body, then answer: a receiver that answered before reading
  // would measure less than a real one does.
  req.on('data', () => {});
  req.on('end', () => { res.writeHead(200, { 'content-length': 0 }); res.end(); });
});
receiver.keepAliveTimeout = 120000;
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const rport = receiver.address().port;

const wh = await request(port, 'POST', '/v1/webhooks', {
  key, body: { url: `http://127.0.0.1:${rport}/hook`, events: ['user.created'] },
});
if (wh.status !== 201 && wh.status !== 200) {
  console.error('e2e: cannot create the webhook:', wh.status, wh.body);
  process.exit(1);
}

// The other nodes see the new webhook at their next poll of the store
// (cluster.poll, 1 s by default); events published there before would
// have nobody to go to.
if (ports.length > 1) await sleep(1500);

const pubAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const body = eventBody(512);
const sentAt = new Map(); // event id -> send time
const publishMs = [];
let sent = 0, failed = 0, pending = 0;

function publish() {
  const t0 = performance.now();
  pending++;
  const req = http.request({
    host: '127.0.0.1', port: ports[sent % ports.length], method: 'POST', path: '/v1/events', agent: pubAgent,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': body.length },
  }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      pending--;
      publishMs.push(performance.now() - t0);
      if (res.statusCode !== 202) { failed++; return; }
      try { sentAt.set(JSON.parse(Buffer.concat(chunks).toString()).id, t0); } catch { failed++; }
    });
  });
  req.on('error', () => { pending--; failed++; });
  req.end(body);
  sent++;
}

// A fixed schedule: by time t, rate*t events have been sent. Catching up
// after a late timer keeps the average rate exact.
const start = performance.now();
const total = Math.round(rate * duration);
await new Promise((resolve) => {
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    while (sent < due) publish();
    if (sent >= total) resolve();
    else setTimeout(tick, 1);
  };
  tick();
});
// Wait (bounded) for the last answers and webhooks.
const deadline = performance.now() + 15000;
while (performance.now() < deadline && (pending > 0 || received.size < sentAt.size)) await sleep(20);

const lat = [];
let late = 0;
for (const [id, t0] of sentAt) {
  const t1 = received.get(id);
  if (t1 === undefined) late++;
  else lat.push(t1 - t0);
}
lat.sort((a, b) => a - b);
publishMs.sort((a, b) => a - b);
const r3 = (x) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({
  sent, failed, received: lat.length, late,
  seconds: r3((performance.now() - start) / 1000),
  p50_ms: r3(percentile(lat, 50)), p99_ms: r3(percentile(lat, 99)), max_ms: r3(lat[lat.length - 1] ?? NaN),
  publish_p50_ms: r3(percentile(publishMs, 50)), publish_p99_ms: r3(percentile(publishMs, 99)),
}));
pubAgent.destroy();
receiver.closeAllConnections?.();
receiver.close();
process.exit(0);
