// e2e.mjs: end-to-end latency, publish to the receiver's receipt.
//
// Usage: node bench/e2e.mjs --port GATEWAY_PORT[,PORT...] --key ADMIN_KEY [--rate 1000] [--duration 30]
//
// Several ports: gateways sharing one store (a cluster's nodes); the
// publishes go to each in turn, the webhook is created on the first.
//
// Starts a receiver on 127.0.0.1 (port 0), subscribes it to user.created,
// then publishes 512-byte events at a fixed rate on keep-alive connections.
// The time each publish was sent (or, with no connection free, would have
// been) is kept by request; its 202 answer names the
// event id; the receiver keeps the receipt time by webhook-id (the event id).
// The two are joined at the end, because a webhook may arrive before the
// publisher has read its 202. Prints one JSON line:
// { sent, received, p50_ms, p99_ms, max_ms, publish_p99_ms, late }.
import net from 'node:net';
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

// The receiver and the publisher speak HTTP/1.1 over plain sockets: Node's
// http module costs tens of microseconds a request, which at 10,000 events
// a second would make the measuring process the bottleneck on two cores.
// Each understands just what the other side sends: Content-Length bodies,
// keep-alive, one request (or answer) at a time per connection.
function headEnd(buf) {
  const i = buf.indexOf('\r\n\r\n');
  return i < 0 ? -1 : i + 4;
}
// The header patterns are made once: this runs twice per event.
const headerRe = (name) => new RegExp(`\r\n${name}:[ \t]*([^\r]*)`, 'i');
const WEBHOOK_ID = headerRe('webhook-id');
const CONTENT_LENGTH = headerRe('content-length');
function header(head, re) {
  const m = head.match(re);
  return m ? m[1] : undefined;
}

const receiver = net.createServer((sock) => {
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let need = -1; // body bytes still to come for the request being read
  sock.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    for (;;) {
      if (need < 0) {
        const e = headEnd(buf);
        if (e < 0) return;
        // Receipt is when the request's head is in (as Node's 'request'
        // event was); the body is still read before answering, as a real
        // receiver would.
        const t = performance.now();
        const head = buf.toString('latin1', 0, e);
        const id = header(head, WEBHOOK_ID);
        if (id && !received.has(id)) received.set(id, t);
        need = Number(header(head, CONTENT_LENGTH) || 0);
        buf = buf.subarray(e);
      }
      if (buf.length < need) return;
      buf = buf.subarray(need);
      need = -1;
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
    }
  });
  sock.on('error', () => {});
});
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

const body = eventBody(512);
const sentAt = new Map(); // event id -> send time
const publishMs = [];
let sent = 0, failed = 0, pending = 0;

// The publishing connections, each carrying one request at a time: by
// Little's law, enough for answers taking up to 25 ms at this rate (256 at
// most). A publish that finds none free waits in the backlog; the largest
// backlog is reported, so a run that measured this limit says so.
const nconn = Math.min(256, Math.max(4, Math.ceil(rate * 0.025)));
const conns = [];
const backlog = []; // scheduled send times with no free connection yet
let maxBacklog = 0;
let next = 0; // round robin: the publishes go to each connection, and port, in turn
for (let i = 0; i < nconn; i++) {
  const p = ports[i % ports.length];
  const reqBytes = Buffer.from(`POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\nAuthorization: Bearer ${key}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const c = { sock: net.connect(p, '127.0.0.1'), t0: 0, busy: false, buf: Buffer.alloc(0), reqBytes };
  c.sock.setNoDelay(true);
  await new Promise((r, j) => { c.sock.once('connect', r); c.sock.once('error', j); });
  // A connection that ends (an error, the gateway closing it) is dropped
  // from the pool; the publish it carried, if any, counts as failed.
  c.sock.on('error', () => {});
  c.sock.on('close', () => {
    c.dead = true;
    if (c.busy) { c.busy = false; pending--; failed++; }
  });
  c.sock.on('data', (d) => {
    c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
    const e = headEnd(c.buf);
    if (e < 0) return;
    const head = c.buf.toString('latin1', 0, e);
    const len = Number(header(head, CONTENT_LENGTH) || 0);
    if (c.buf.length < e + len) return;
    const status = Number(head.slice(9, 12));
    const text = c.buf.toString('utf8', e, e + len);
    c.buf = c.buf.subarray(e + len);
    publishMs.push(performance.now() - c.t0);
    pending--;
    c.busy = false;
    const m = text.match(/"id":"(evt_[0-9a-z]+)"/);
    if (status !== 202 || !m) failed++;
    else sentAt.set(m[1], c.t0);
    if (backlog.length > 0) send(c, backlog.shift());
  });
  conns.push(c);
}

function send(c, t0) {
  c.busy = true;
  c.t0 = t0;
  c.sock.write(c.reqBytes);
}

// t0 is when the publisher's timer tried to send it, not when a connection
// was free: waiting for the gateway's earlier answers counts against the
// latency (no coordinated omission); the timer's own lateness (Node's
// timers fire at 1 ms granularity at best) is the publisher's, and does
// not.
function publish(t0) {
  pending++;
  sent++;
  for (let i = 0; i < conns.length; i++) {
    const c = conns[(next + i) % conns.length];
    if (!c.busy && !c.dead) {
      next = (next + i + 1) % conns.length;
      send(c, t0);
      return;
    }
  }
  if (conns.every((c) => c.dead)) { pending--; failed++; return; }
  backlog.push(t0);
  if (backlog.length > maxBacklog) maxBacklog = backlog.length;
}

// A fixed schedule: by time t, rate*t events have been sent. Catching up
// after a late timer keeps the average rate exact.
const start = performance.now();
const total = Math.round(rate * duration);
await new Promise((resolve) => {
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    const now = performance.now();
    while (sent < due) publish(now);
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
  connections: nconn, max_backlog: maxBacklog,
}));
for (const c of conns) c.sock.destroy();
receiver.close();
process.exit(0);
