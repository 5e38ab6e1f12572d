// server.test.mjs: the HTTP server as a client on a raw socket sees it.
//
// Each test starts the real binary on 127.0.0.1:0 and speaks HTTP/1.1 over
// node:net or node:tls: keep-alive, pipelining, chunked bodies,
// Expect: 100-continue, HEAD, the size limits and timeouts, 1,000
// concurrent connections, IPv6, graceful shutdown, the TLS listener, a taken
// port, the router's 404/405, and the access log.
//
// Run from the repository root: node --test tests/integration/server.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, ADMIN_KEY, startGateway, tempDir } from './lib/gateway.mjs';

// ASan builds are several times slower: deadlines scale, assertions do not.
const SLOW = process.env.HG_SANITIZE === '1' || process.env.HG_SANITIZE === 'ON' || /asan/.test(BIN) ? 3 : 1;
const T = (ms) => ms * SLOW;

const WEBHOOK = JSON.stringify({ url: 'https://example.com/hooks', events: ['user.created'] });

// Every gateway a test starts is stopped at the end, even when it failed.
// The last test stops them gracefully and checks that each exited cleanly
// (under ASan that includes "no leaks, no memory errors").
const gateways = [];
async function gateway(opts, { exitCode = 0 } = {}) {
  const gw = await startGateway(opts);
  gw.expectedExit = exitCode;
  gateways.push(gw);
  return gw;
}
after(async () => {
  await Promise.all(gateways.map((gw) => gw.stop('SIGKILL')));
});

// ---- a raw HTTP/1.1 client ----

// A socket with a byte buffer that parses responses as they come and notices
// when the server closes its side.
class Raw {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.error = null;
    this.waiters = new Set();
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.wake(); });
    sock.on('end', () => { this.closed = true; this.wake(); });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', (e) => { this.error = e; this.closed = true; this.wake(); });
  }

  wake() { for (const w of this.waiters) w(); }

  // Resolves with pred()'s first truthy value; rejects after ms.
  until(pred, ms, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v;
        try { v = pred(); } catch (e) { done(); reject(e); return; }
        if (v) { done(); resolve(v); }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; received so far: ${JSON.stringify(this.buf.toString('latin1'))}`));
      }, ms);
      const done = () => { clearTimeout(timer); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }

  write(data) { this.sock.write(data); }

  // Parses one response off the front of the buffer, or returns null when it
  // is not all there yet. head: the request was HEAD (no body follows).
  parse(head) {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let len = 0;
    if (!head && status >= 200 && status !== 204 && status !== 304) {
      assert.ok('content-length' in headers, `response without Content-Length: ${lines.join(' | ')}`);
      len = Number(headers['content-length']);
    }
    if (this.buf.length < end + 4 + len) return null;
    const body = this.buf.subarray(end + 4, end + 4 + len).toString();
    this.buf = this.buf.subarray(end + 4 + len);
    let json;
    try { json = body ? JSON.parse(body) : undefined; } catch { json = undefined; }
    return { status, reason: m[2], headers, body, json };
  }

  response({ head = false, timeout = T(5000) } = {}) {
    return this.until(() => {
      const res = this.parse(head);
      if (res) return res;
      if (this.closed) throw new Error(`connection closed before a whole response; received: ${JSON.stringify(this.buf.toString('latin1'))}`);
      return null;
    }, timeout, 'a response');
  }

  // Resolves with the milliseconds it took the server to close; rejects when
  // it stays open longer than ms. Bytes still unread are an error.
  async closedWithin(ms) {
    const t0 = Date.now();
    await this.until(() => this.closed, ms, 'the connection to close');
    assert.equal(this.buf.length, 0, `unexpected bytes before close: ${this.buf.toString('latin1')}`);
    return Date.now() - t0;
  }

  destroy() { this.sock.destroy(); }
}

function connect(port, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    sock.setNoDelay(true);
    sock.once('connect', () => { sock.removeListener('error', reject); resolve(new Raw(sock)); });
    sock.once('error', reject);
  });
}

// The request text for method path with extra header lines and a body.
function req(method, path, { headers = [], body, close = false } = {}) {
  const h = [`${method} ${path} HTTP/1.1`, 'Host: hookgate.test', ...headers];
  if (body !== undefined) h.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
  if (close) h.push('Connection: close');
  return h.join('\r\n') + '\r\n\r\n' + (body ?? '');
}

const auth = `Authorization: Bearer ${ADMIN_KEY}`;

// Every error the gateway sends has this shape.
function assertError(res, status, type) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body}`);
  assert.match(res.headers['content-type'] || '', /^application\/json/);
  assert.ok(res.json && typeof res.json.error === 'object', `not a JSON error body: ${res.body}`);
  const e = res.json.error;
  if (type) assert.equal(e.type, type);
  else assert.equal(typeof e.type, 'string');
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0, 'empty error message');
  assert.ok(Array.isArray(e.details), `details is not an array: ${res.body}`);
}

function assertHealthy(res) {
  assert.equal(res.status, 200, res.body);
  assert.deepEqual(res.json, { status: 'ok' });
}

// Resolves with p's value, or with 'timeout' after ms (the timer is cleared
// either way, so it never holds the process open).
async function within(p, ms) {
  let timer;
  const t = new Promise((r) => { timer = setTimeout(() => r('timeout'), ms); });
  try { return await Promise.race([p, t]); } finally { clearTimeout(timer); }
}

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// The gateway most tests share: default timeouts, a small body limit.
let shared;
async function sharedGateway() {
  shared ??= gateway({ config: 'http = { max_body = 4096 }\n' });
  return shared;
}

// ---- connection handling ----

test('keep-alive: five requests on one socket', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  const ids = new Set();
  for (let i = 0; i < 5; i++) {
    c.write(req('GET', '/healthz'));
    const res = await c.response();
    assertHealthy(res);
    assert.notEqual(res.headers.connection, 'close');
    assert.match(res.headers['x-request-id'], /^req_[0-9a-f]{16}$/);
    ids.add(res.headers['x-request-id']);
  }
  assert.equal(ids.size, 5, 'request ids repeat');
  assert.equal(c.closed, false);
  c.destroy();
});

test('pipelining: three requests in one write get three answers in order', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('GET', '/healthz') + req('POST', '/v1/webhooks', { headers: [auth], body: WEBHOOK }) + req('GET', '/nope'));
  const a = await c.response();
  const b = await c.response();
  const d = await c.response();
  assertHealthy(a);
  assert.equal(b.status, 201, b.body);
  assert.equal(b.json.url, 'https://example.com/hooks');
  assert.match(b.json.id, /^wh_/);
  assertError(d, 404, 'not_found');
  assert.equal(new Set([a, b, d].map((r) => r.headers['x-request-id'])).size, 3);
  // The connection is still usable afterwards.
  c.write(req('GET', '/healthz'));
  assertHealthy(await c.response());
  c.destroy();
});

test('a chunked request body is accepted', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  const parts = [WEBHOOK.slice(0, 10), WEBHOOK.slice(10, 30), WEBHOOK.slice(30)];
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', 'Transfer-Encoding: chunked', '', ''].join('\r\n'));
  for (const p of parts) {
    c.write(`${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`);
    await new Promise((r) => setImmediate(r));
  }
  c.write('0\r\n\r\n');
  const res = await c.response();
  assert.equal(res.status, 201, res.body);
  assert.equal(res.json.url, 'https://example.com/hooks');
  assert.deepEqual(res.json.events, ['user.created']);
  c.destroy();
});

test('Expect: 100-continue gets 100 Continue, then the final answer', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(WEBHOOK)}`, 'Expect: 100-continue', '', ''].join('\r\n'));
  // The body is held back until the server asks for it.
  const cont = await c.response();
  assert.equal(cont.status, 100);
  assert.equal(cont.reason, 'Continue');
  c.write(WEBHOOK);
  const res = await c.response();
  assert.equal(res.status, 201, res.body);
  c.destroy();
});

test('Expect: 100-continue with a body over the limit gets 413 and no 100', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json',
    'Content-Length: 100000', 'Expect: 100-continue', '', ''].join('\r\n'));
  const res = await c.response();
  assertError(res, 413, 'payload_too_large');
  await c.closedWithin(T(3000));
});

test('HEAD /healthz: headers with Content-Length, no body', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('HEAD', '/healthz'));
  const res = await c.response({ head: true });
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-length'], String(Buffer.byteLength('{"status":"ok"}')));
  // Had a body followed, it would be read as the next status line.
  c.write(req('GET', '/healthz'));
  assertHealthy(await c.response());
  c.destroy();
});

test('Connection: close is honoured after the response', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('GET', '/healthz', { close: true }));
  const res = await c.response();
  assertHealthy(res);
  assert.equal(res.headers.connection, 'close');
  await c.closedWithin(T(3000));
});

// ---- limits ----

test('headers over 16 KiB get 431 and the connection closes', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('GET', '/healthz', { headers: [`X-Big: ${'a'.repeat(17 * 1024)}`] }));
  assertError(await c.response(), 431, 'headers_too_large');
  await c.closedWithin(T(3000));
});

test('headers just under 16 KiB are fine', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('GET', '/healthz', { headers: [`X-Big: ${'a'.repeat(15 * 1024)}`] }));
  assertHealthy(await c.response());
  c.destroy();
});

test('101 headers get 431; 99 are fine', async () => {
  const gw = await sharedGateway();
  // Host is one of them.
  const hdrs = (n) => Array.from({ length: n }, (_, i) => `X-H${i}: v`);
  let c = await connect(gw.port);
  c.write(req('GET', '/healthz', { headers: hdrs(99) }));
  assertHealthy(await c.response());
  c.destroy();
  c = await connect(gw.port);
  c.write(req('GET', '/healthz', { headers: hdrs(100) }));
  assertError(await c.response(), 431, 'headers_too_large');
  await c.closedWithin(T(3000));
});

test('a body over http.max_body gets 413 before it is sent', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  // Only the headers: the answer must not wait for 1 MB that never comes.
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', 'Content-Length: 1000000', '', ''].join('\r\n'));
  assertError(await c.response(), 413, 'payload_too_large');
  await c.closedWithin(T(3000));
});

test('a chunked body over http.max_body gets 413', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', 'Transfer-Encoding: chunked', '', ''].join('\r\n'));
  const chunk = 'x'.repeat(1000);
  for (let i = 0; i < 5; i++) c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
  assertError(await c.response(), 413, 'payload_too_large');
  await c.closedWithin(T(3000));
});

// A valid webhook body of exactly size bytes (metadata values hold at most
// 512 characters, so the padding is spread over several keys).
function webhookOfSize(size) {
  const meta = {};
  const base = () => JSON.stringify({ url: 'https://example.com/hooks', events: ['user.created'], metadata: meta });
  for (let i = 0; base().length < size; i++) {
    const k = `k${i}`;
    meta[k] = '';
    const room = size - base().length;
    meta[k] = 'p'.repeat(Math.min(500, Math.max(0, room)));
  }
  const body = base();
  assert.equal(body.length, size, 'webhookOfSize cannot make that size');
  return body;
}

test('a body of exactly http.max_body is accepted', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('POST', '/v1/webhooks', { headers: [auth], body: webhookOfSize(4096) }));
  const res = await c.response();
  assert.equal(res.status, 201, res.body);
  c.write(req('POST', '/v1/webhooks', { headers: [auth], body: webhookOfSize(4097) }));
  assertError(await c.response(), 413, 'payload_too_large');
  await c.closedWithin(T(3000));
});

test('a garbage request gets 400 and the connection closes', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write('\x16\x03\x01 this is not HTTP\r\n\r\n');
  assertError(await c.response(), 400, 'bad_request');
  await c.closedWithin(T(3000));
});

test('a malformed header line gets 400', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write('GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n');
  assertError(await c.response(), 400, 'bad_request');
  await c.closedWithin(T(3000));
});

// ---- the router ----

test('an unknown path gets 404 JSON', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('GET', '/v1/no-such-thing'));
  assertError(await c.response(), 404, 'not_found');
  c.destroy();
});

test('a known path with the wrong method gets 405 with Allow', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('DELETE', '/healthz'));
  let res = await c.response();
  assertError(res, 405, 'method_not_allowed');
  assert.equal(res.headers.allow, 'GET');
  c.write(req('PUT', '/v1/webhooks', { headers: [auth], body: '{}' }));
  res = await c.response();
  assertError(res, 405, 'method_not_allowed');
  assert.deepEqual(res.headers.allow.split(/,\s*/).sort(), ['GET', 'POST']);
  c.destroy();
});

// ---- timeouts ----

const TIMEOUTS = 'http = { header_timeout = 0.3, idle_timeout = 0.5, body_timeout = 0.3 }\n';

test('timeouts: slowloris headers get 408 or a close', async () => {
  const gw = await gateway({ config: TIMEOUTS });
  const c = await connect(gw.port);
  const t0 = Date.now();
  c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  // One header every 100 ms: each arrives well within any per-read timer,
  // but the headers as a whole never finish.
  const drip = setInterval(() => { if (!c.closed) c.write(`X-Drip-${Date.now()}: 1\r\n`); }, 100);
  let res = null;
  try {
    await c.until(() => (res = c.parse(false)) || c.closed, T(2000), '408 or a close');
  } finally {
    clearInterval(drip);
  }
  const elapsed = Date.now() - t0;
  res ??= c.parse(false);
  if (res) assertError(res, 408, 'request_timeout');
  else assert.equal(c.buf.length, 0, `not a response: ${c.buf.toString('latin1')}`);
  assert.ok(elapsed >= 250, `closed after ${elapsed} ms, before the 300 ms header timeout`);
  c.destroy();
});

test('timeouts: a connection that sends nothing is closed', async () => {
  const gw = await gateway({ config: TIMEOUTS });
  const c = await connect(gw.port);
  const t0 = Date.now();
  await c.until(() => c.closed, T(2000), 'the silent connection to close');
  assert.ok(Date.now() - t0 >= 250);
  // Nothing was asked, so whatever came (if anything) is a 408.
  if (c.buf.length) assertError(c.parse(false), 408, 'request_timeout');
});

test('timeouts: an idle keep-alive connection is closed', async () => {
  const gw = await gateway({ config: TIMEOUTS });
  const c = await connect(gw.port);
  c.write(req('GET', '/healthz'));
  assertHealthy(await c.response());
  const t0 = Date.now();
  await c.closedWithin(T(2500));
  const idle = Date.now() - t0;
  assert.ok(idle >= 250, `idle connection closed after ${idle} ms, well before the 500 ms idle timeout`);
});

test('timeouts: a stalled body gets 408', async () => {
  const gw = await gateway({ config: TIMEOUTS });
  const c = await connect(gw.port);
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', 'Content-Length: 100', '', '{"url":'].join('\r\n'));
  const t0 = Date.now();
  const res = await c.response({ timeout: T(2000) });
  assertError(res, 408, 'request_timeout');
  assert.ok(Date.now() - t0 >= 250);
  await c.closedWithin(T(3000));
});

// ---- scale ----

test('1,000 concurrent keep-alive connections each get an answer', { timeout: T(60000) }, async () => {
  const gw = await sharedGateway();
  const N = 1000;
  const conns = [];
  // Connect in batches so the listen backlog never overflows.
  for (let i = 0; i < N; i += 100) {
    conns.push(...(await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => connect(gw.port)))));
  }
  // All open at once; each asks, then asks again on the same socket.
  for (const c of conns) c.write(req('GET', '/healthz'));
  const first = await Promise.all(conns.map((c) => c.response({ timeout: T(20000) })));
  first.forEach(assertHealthy);
  assert.equal(conns.filter((c) => c.closed).length, 0, 'connections closed after their first answer');
  for (const c of conns) c.write(req('GET', '/healthz'));
  const second = await Promise.all(conns.map((c) => c.response({ timeout: T(20000) })));
  second.forEach(assertHealthy);
  assert.equal(new Set([...first, ...second].map((r) => r.headers['x-request-id'])).size, 2 * N);
  for (const c of conns) c.destroy();
});

// ---- addresses ----

async function ipv6Available() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

test('IPv6: HOOKGATE_LISTEN=[::1]:0 serves on ::1', async (t) => {
  if (!(await ipv6Available())) {
    t.skip('::1 is not available here');
    return;
  }
  const gw = await gateway({ env: { HOOKGATE_LISTEN: '[::1]:0' } });
  assert.match(gw.addrs[0], /^\[::1\]:\d+$/);
  const c = await connect(gw.port, '::1');
  c.write(req('GET', '/healthz'));
  assertHealthy(await c.response());
  c.destroy();
  // The log line and the response travel on different pipes: wait for it.
  const re = /msg=access method=GET path=\/healthz status=200 .*remote=::1/;
  await waitFor(() => re.test(gw.logs()), T(3000), 'the access line from ::1');
  assert.match(gw.logs(), re);
});

test('a port already taken: exit non-zero, "address already in use"', async () => {
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  const { port } = blocker.address();
  try {
    const dir = tempDir();
    const cfg = join(dir, 'hookgate.lua');
    execFileSync('sh', ['-c', `: > ${cfg}`]);
    const proc = spawn(BIN, ['serve', '-c', cfg], {
      env: { ...process.env, HOOKGATE_LISTEN: `127.0.0.1:${port}`, HOOKGATE_STORE: join(dir, 'db'), HOOKGATE_ADMIN_KEY: ADMIN_KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    const killer = setTimeout(() => proc.kill('SIGKILL'), T(10000));
    const code = await new Promise((r) => proc.on('exit', (c, s) => r(c ?? s)));
    clearTimeout(killer);
    assert.notEqual(code, 0, out);
    assert.notEqual(code, 'SIGKILL', `the gateway kept running on a taken port:\n${out}`);
    assert.match(out, /address already in use/, out);
    assert.ok(out.includes(`127.0.0.1:${port}`), `the address is not named:\n${out}`);
  } finally {
    blocker.close();
  }
});

// ---- TLS ----

test('TLS listener: GET /healthz over TLS 1.2 with a self-signed certificate', async (t) => {
  const dir = tempDir();
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'pipe' });
  } catch (e) {
    t.skip(`openssl cannot make a certificate: ${e.message}`);
    return;
  }
  const gw = await gateway({
    dir,
    config: `tls = { listen = "127.0.0.1:0", cert = "${cert}", key = "${key}" }\n`,
    listenRe: /msg=listening addr=(\S+) tls=true/,
  });
  assert.match(gw.logs(), /msg=listening addr=127\.0\.0\.1:\d+ tls=false/, 'the plain listener is still there');
  const ca = readFileSync(cert);
  const sock = await new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: gw.port, ca, servername: 'localhost' }, () => resolve(s));
    s.once('error', reject);
  });
  assert.equal(sock.authorized, true, String(sock.authorizationError));
  assert.equal(sock.getProtocol(), 'TLSv1.2');
  const c = new Raw(sock);
  c.write(req('GET', '/healthz'));
  assertHealthy(await c.response());
  // Keep-alive works over TLS too.
  c.write(req('GET', '/nope', { close: true }));
  assertError(await c.response(), 404, 'not_found');
  await c.closedWithin(T(3000));
  // Plain HTTP on the TLS port is not answered as HTTP.
  const p = await connect(gw.port);
  p.write(req('GET', '/healthz'));
  await p.until(() => p.closed, T(5000), 'the TLS port to drop a plain-HTTP client');
  assert.doesNotMatch(p.buf.toString('latin1'), /^HTTP\/1\.1 200/);
});

// ---- logging ----

test('access log: one line per request with method, path, status, request_id; no secrets', async () => {
  const gw = await gateway({ config: '' });
  const secret = 'hg_not_a_real_key_but_secret_0123456789';
  const c = await connect(gw.port);
  c.write(req('GET', '/v1/webhooks?pageSize=5', { headers: [auth] }));
  const a = await c.response();
  assert.equal(a.status, 200, a.body);
  c.write(req('GET', '/v1/webhooks', { headers: [`Authorization: Bearer ${secret}`] }));
  const b = await c.response();
  assertError(b, 401, 'unauthorized');
  c.write(req('PATCH', '/healthz'));
  const d = await c.response();
  assertError(d, 405);
  c.destroy();
  const lineFor = (id) => waitFor(() => gw.logs().split('\n').find((l) => l.includes(`request_id=${id}`)), T(3000), `the access line of ${id}`);
  const la = await lineFor(a.headers['x-request-id']);
  assert.match(la, /msg=access method=GET path=\/v1\/webhooks status=200 /);
  const lb = await lineFor(b.headers['x-request-id']);
  assert.match(lb, /msg=access method=GET path=\/v1\/webhooks status=401 /);
  const ld = await lineFor(d.headers['x-request-id']);
  assert.match(ld, /msg=access method=PATCH path=\/healthz status=405 /);
  for (const id of [a, b, d].map((r) => r.headers['x-request-id']))
    assert.equal(gw.logs().split('\n').filter((l) => l.includes(id)).length, 1, `${id} logged more than once`);
  await gw.stop();
  const logs = gw.logs();
  assert.ok(!logs.includes(ADMIN_KEY), 'the admin key appears in the logs');
  assert.ok(!logs.includes(secret), 'an Authorization header value appears in the logs');
  assert.ok(!/authorization/i.test(logs), 'the Authorization header is logged');
});

// ---- graceful shutdown ----

test('graceful shutdown: in-flight answered, new connections refused, exit 0', { timeout: T(30000) }, async () => {
  const gw = await gateway({ config: '' });
  // idle: a keep-alive connection with nothing in flight.
  const idle = await connect(gw.port);
  idle.write(req('GET', '/healthz'));
  assertHealthy(await idle.response());
  // posting: a request whose body is still on its way.
  const posting = await connect(gw.port);
  const body = WEBHOOK;
  posting.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', `Content-Length: ${body.length}`, '', body.slice(0, 20)].join('\r\n'));
  // asking: a /healthz whose headers are not finished yet.
  const asking = await connect(gw.port);
  asking.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  // Let the gateway see both partial requests before the signal.
  await waitFor(() => gw.logs().includes('msg=access method=GET path=/healthz status=200'), T(3000), 'the first request');
  await new Promise((r) => setTimeout(r, 100));
  gw.proc.kill('SIGTERM');
  await waitFor(() => /shutting down/.test(gw.logs()), T(3000), 'the shutdown log line');

  // New connections are refused.
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect({ port: gw.port, host: '127.0.0.1' });
    s.once('error', (e) => resolve(e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET'));
    s.once('connect', () => { s.destroy(); resolve(false); });
  }), T(3000), 'new connections to be refused');

  // The idle connection is closed (or would answer 503).
  await idle.until(() => idle.closed, T(3000), 'the idle connection to close');

  // The unfinished /healthz is answered 503 and its connection closes.
  asking.write('\r\n');
  const h = await asking.response();
  assert.equal(h.status, 503, h.body);
  assert.deepEqual(h.json, { status: 'shutting_down' });
  assert.equal(h.headers.connection, 'close');
  await asking.closedWithin(T(3000));

  // The POST in flight is still answered, then its connection closes.
  assert.equal(gw.proc.exitCode, null, 'exited with a request in flight');
  posting.write(body.slice(20));
  const res = await posting.response();
  assert.equal(res.status, 201, res.body);
  assert.equal(res.headers.connection, 'close');
  await posting.closedWithin(T(3000));

  const exit = await within(gw.exited, T(10000));
  assert.deepEqual(exit, { code: 0, signal: null }, gw.logs());
  assert.match(gw.logs(), /msg=stopped/);
});

test('graceful shutdown: a second signal exits at once, non-zero', { timeout: T(30000) }, async () => {
  const gw = await gateway({ config: '' }, { exitCode: 1 });
  // A request in flight keeps the first shutdown from finishing.
  const posting = await connect(gw.port);
  posting.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', 'Content-Length: 100', '', '{'].join('\r\n'));
  await new Promise((r) => setTimeout(r, 100));
  gw.proc.kill('SIGTERM');
  await waitFor(() => /shutting down/.test(gw.logs()), T(3000), 'the shutdown log line');
  assert.equal(gw.proc.exitCode, null, 'exited with a request in flight');
  const t0 = Date.now();
  gw.proc.kill('SIGINT');
  const exit = await within(gw.exited, T(3000));
  assert.notEqual(exit, 'timeout', 'the second signal did not stop the gateway');
  assert.ok(exit.code !== 0, `exit ${JSON.stringify(exit)} after the second signal`);
  assert.ok(Date.now() - t0 < T(3000));
  assert.match(gw.logs(), /second signal/);
  posting.destroy();
});

// ---- more edges of the connection handling ----

test('pipelining: 40 requests in one write (more than the server queues at once) all answered in order', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  const N = 40;
  let text = '';
  for (let i = 0; i < N; i++) {
    text += i % 5 === 2 ? req('POST', '/v1/webhooks', { headers: [auth], body: WEBHOOK }) : req('GET', `/healthz?n=${i}`);
  }
  c.write(text);
  for (let i = 0; i < N; i++) {
    const res = await c.response();
    if (i % 5 === 2) assert.equal(res.status, 201, `request ${i}: ${res.body}`);
    else assertHealthy(res);
  }
  c.write(req('GET', '/healthz'));
  assertHealthy(await c.response());
  assert.equal(c.closed, false);
  c.destroy();
});

test('pipelining: Expect: 100-continue on the second request comes after the first answer', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('GET', '/healthz') + ['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(WEBHOOK)}`, 'Expect: 100-continue', '', ''].join('\r\n'));
  assertHealthy(await c.response());
  assert.equal((await c.response()).status, 100);
  c.write(WEBHOOK);
  assert.equal((await c.response()).status, 201);
  c.destroy();
});

test('a client that half-closes after its request still gets the answer', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.sock.end(req('GET', '/healthz') + req('POST', '/v1/webhooks', { headers: [auth], body: WEBHOOK }));
  assertHealthy(await c.response());
  assert.equal((await c.response()).status, 201);
  await c.closedWithin(T(3000));
});

test('HTTP/1.0: closes after the answer unless keep-alive is asked', async () => {
  const gw = await sharedGateway();
  let c = await connect(gw.port);
  c.write('GET /healthz HTTP/1.0\r\n\r\n');
  assertHealthy(await c.response());
  await c.closedWithin(T(3000));
  c = await connect(gw.port);
  c.write('GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const res = await c.response();
  assertHealthy(res);
  assert.equal(res.headers.connection, 'keep-alive');
  c.write('GET /healthz HTTP/1.0\r\n\r\n');
  assertHealthy(await c.response());
  await c.closedWithin(T(3000));
});

test('request smuggling shapes get 400: Content-Length with Transfer-Encoding, two Content-Lengths', async () => {
  const gw = await sharedGateway();
  for (const extra of [['Content-Length: 5', 'Transfer-Encoding: chunked'], ['Content-Length: 5', 'Content-Length: 6'], ['Transfer-Encoding: gzip']]) {
    const c = await connect(gw.port);
    c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, ...extra, '', '0\r\n\r\n'].join('\r\n'));
    const res = await c.response();
    assertError(res, 400, 'bad_request');
    await c.closedWithin(T(3000));
  }
});

test('TLS: a 413 and pipelined requests over TLS', async (t) => {
  const dir = tempDir();
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'pipe' });
  const gw = await gateway({ dir, config: `http = { max_body = 4096 }\ntls = { listen = "127.0.0.1:0", cert = "${cert}", key = "${key}" }\n`, listenRe: /msg=listening addr=(\S+) tls=true/ });
  const open = () => new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: gw.port, ca: readFileSync(cert), servername: 'localhost' }, () => resolve(new Raw(s)));
    s.once('error', reject);
  });
  let c = await open();
  let text = '';
  for (let i = 0; i < 30; i++) text += i === 7 ? req('POST', '/v1/webhooks', { headers: [auth], body: WEBHOOK }) : req('GET', '/healthz');
  c.write(text);
  for (let i = 0; i < 30; i++) {
    const res = await c.response();
    assert.equal(res.status, i === 7 ? 201 : 200, `request ${i}: ${res.body}`);
  }
  c.destroy();
  c = await open();
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', 'Content-Length: 1000000', '', ''].join('\r\n'));
  assertError(await c.response(), 413, 'payload_too_large');
  await c.closedWithin(T(3000));
  c = await open();
  c.write(req('POST', '/v1/webhooks', { headers: [auth], body: webhookOfSize(4096) }));
  const res = await c.response();
  assert.equal(res.status, 201, res.body);
  c.destroy();
});

test('timeouts: a chunked body that trickles past body_timeout gets 408', async () => {
  const gw = await gateway({ config: TIMEOUTS });
  const c = await connect(gw.port);
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', 'Transfer-Encoding: chunked', '', ''].join('\r\n'));
  const drip = setInterval(() => { if (!c.closed) c.write('1\r\n \r\n'); }, 50);
  try {
    const res = await c.response({ timeout: T(2000) });
    assertError(res, 408, 'request_timeout');
  } finally {
    clearInterval(drip);
  }
});

test('timeouts: a keep-alive connection that stays busy is not cut by the idle timer', async () => {
  const gw = await gateway({ config: TIMEOUTS });
  const c = await connect(gw.port);
  const t0 = Date.now();
  // Requests every 150 ms for over 1 s: twice the idle timeout.
  while (Date.now() - t0 < 1100) {
    c.write(req('GET', '/healthz'));
    assertHealthy(await c.response());
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.equal(c.closed, false);
  c.destroy();
});

test('Connection: close stops reading: a request pipelined after it is not answered', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('GET', '/healthz', { close: true }) + req('POST', '/v1/webhooks', { headers: [auth], body: WEBHOOK }));
  const res = await c.response();
  assertHealthy(res);
  assert.equal(res.headers.connection, 'close');
  await c.closedWithin(T(3000));
});

test('HEAD on an error: headers only', async () => {
  const gw = await sharedGateway();
  const c = await connect(gw.port);
  c.write(req('HEAD', '/nope'));
  const res = await c.response({ head: true });
  assert.equal(res.status, 404);
  assert.ok(Number(res.headers['content-length']) > 0);
  c.write(req('GET', '/healthz'));
  assertHealthy(await c.response());
  c.destroy();
});

test('http.max_connections: a connection over the limit is closed at once; a freed slot is reused', async () => {
  const gw = await gateway({ config: 'http = { max_connections = 2 }\n' });
  const a = await connect(gw.port);
  const b = await connect(gw.port);
  for (const c of [a, b]) { c.write(req('GET', '/healthz')); assertHealthy(await c.response()); }
  const over = await connect(gw.port);
  over.write(req('GET', '/healthz'));
  await over.until(() => over.closed, T(3000), 'the connection over the limit to close');
  assert.equal(over.buf.length, 0, 'a connection over the limit was served');
  a.destroy();
  await waitFor(async () => {
    const c = await connect(gw.port);
    c.write(req('GET', '/healthz'));
    try { assertHealthy(await c.response({ timeout: T(1000) })); return true; } catch { return false; } finally { c.destroy(); }
  }, T(5000), 'a slot to free up');
  b.write(req('GET', '/healthz'));
  assertHealthy(await b.response());
  b.destroy();
});

test('TLS: 200 concurrent connections each get an answer', { timeout: T(60000) }, async () => {
  const dir = tempDir();
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'pipe' });
  // Every handshake completes before any request is written: on a loaded
  // machine (or under a sanitizer) that can take longer than the default
  // 10 s header timeout, which runs from each connection's accept.
  const gw = await gateway({ dir, config: `tls = { listen = "127.0.0.1:0", cert = "${cert}", key = "${key}" }\nhttp = { header_timeout = 120 }\n`, listenRe: /msg=listening addr=(\S+) tls=true/ });
  const ca = readFileSync(cert);
  const conns = await Promise.all(Array.from({ length: 200 }, () => new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: gw.port, ca, servername: 'localhost' }, () => resolve(new Raw(s)));
    s.once('error', reject);
  })));
  for (const c of conns) c.write(req('GET', '/healthz'));
  (await Promise.all(conns.map((c) => c.response({ timeout: T(20000) })))).forEach(assertHealthy);
  for (const c of conns) c.write(req('GET', '/healthz'));
  (await Promise.all(conns.map((c) => c.response({ timeout: T(20000) })))).forEach(assertHealthy);
  for (const c of conns) c.destroy();
});

test('graceful shutdown over TLS: the request in flight is answered', { timeout: T(30000) }, async () => {
  const dir = tempDir();
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'pipe' });
  const gw = await gateway({ dir, config: `tls = { listen = "127.0.0.1:0", cert = "${cert}", key = "${key}" }\n`, listenRe: /msg=listening addr=(\S+) tls=true/ });
  const c = await new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: gw.port, ca: readFileSync(cert), servername: 'localhost' }, () => resolve(new Raw(s)));
    s.once('error', reject);
  });
  c.write(['POST /v1/webhooks HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', `Content-Length: ${WEBHOOK.length}`, '', WEBHOOK.slice(0, 10)].join('\r\n'));
  await new Promise((r) => setTimeout(r, 100));
  gw.proc.kill('SIGTERM');
  await waitFor(() => /shutting down/.test(gw.logs()), T(3000), 'the shutdown log line');
  c.write(WEBHOOK.slice(10));
  const res = await c.response().catch((e) => { throw new Error(e.message + '\n' + gw.logs()); });
  assert.equal(res.status, 201, res.body);
  assert.equal(res.headers.connection, 'close');
  await c.until(() => c.closed, T(3000), 'the TLS connection to close');
  assert.deepEqual(await within(gw.exited, T(10000)), { code: 0, signal: null }, gw.logs());
});

// Last: every gateway above exits 0 on SIGTERM (the one stopped by a second
// signal exits 1), and none reported a sanitizer error.
test('every gateway shuts down cleanly', { timeout: T(40000) }, async () => {
  const exits = await Promise.all(gateways.map(async (gw) => {
    gw.proc.kill('SIGTERM');
    return within(gw.exited, T(15000));
  }));
  gateways.forEach((gw, i) => {
    const logs = gw.logs();
    assert.doesNotMatch(logs, /AddressSanitizer|LeakSanitizer|runtime error:/, logs);
    assert.deepEqual(exits[i], { code: gw.expectedExit, signal: null }, `gateway ${i}:\n${logs.slice(-3000)}`);
  });
});
