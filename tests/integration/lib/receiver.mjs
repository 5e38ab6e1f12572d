// receiver.mjs: a scripted webhook receiver for integration tests.
//
// startReceiver({https}) listens on 127.0.0.1:0 (plain HTTP, or HTTPS with a
// certificate for 127.0.0.1 signed by a throwaway CA made with the openssl
// CLI) and resolves with
//   { port, url, caFile, requests, on(path, script), url(path)...,
//     waitFor(pred, {count, timeout}), close() }.
//
// Each request is recorded in `requests` once its body has arrived:
//   { method, path, headers, body (Buffer), at (Date.now() when the request
//     line and headers arrived), mono (performance.now() at the same moment) }.
//
// What a path answers is scripted with on(path, script); a script is one
// behaviour or an array of them: the n-th request to the path gets the n-th
// behaviour and the last one repeats; a function (req, body, n) => behaviour
// decides per request, once the body has arrived. Unscripted paths answer
// 200 "ok".
// Behaviours (build them with the helpers below):
//   ok(body)                    200 with body
//   status(code, {headers, body, delay})
//   hang()                      read the request, never answer
//   reset()                     read the request, then reset the socket (RST)
//   slow(ms, code)              answer after ms
//   redirect(location)          302
//   gone()                      410
//   tooMany(retryAfter)         429 with Retry-After
//   failThen(n, failure)        n failures (default 500), then 200
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tempDir } from './gateway.mjs';

export const ok = (body = 'ok') => ({ status: 200, body });
export const status = (code, { headers = {}, body = '', delay = 0 } = {}) => ({ status: code, headers, body, delay });
export const hang = () => ({ hang: true });
export const reset = () => ({ reset: true });
export const slow = (ms, code = 200, body = 'slow ok') => ({ status: code, body, delay: ms });
export const redirect = (location = 'http://127.0.0.1:1/elsewhere') => ({ status: 302, headers: { location }, body: '' });
export const gone = () => ({ status: 410, body: 'gone' });
export const tooMany = (retryAfter = '1') => ({ status: 429, headers: { 'retry-after': String(retryAfter) }, body: 'slow down' });
export const failThen = (n, failure = status(500, { body: 'boom' }), success = ok()) => [
  ...Array.from({ length: n }, () => failure),
  success,
];

let caCache;

// A CA and a leaf certificate for 127.0.0.1 (an IP SAN, plus the same text as
// a DNS SAN and CN for TLS stacks that match IP literals by name), made once
// per process with the openssl CLI. EC P-256 keys: quick to make.
export function testCertificates() {
  if (caCache) return caCache;
  const dir = tempDir('hookgate-ca-'); // removed at exit, as the gateways' are
  const p = (f) => join(dir, f);
  const run = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=hookgate test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', ...ec, '-keyout', p('leaf.key'), '-out', p('leaf.csr'), '-subj', '/CN=127.0.0.1']);
  writeFileSync(p('leaf.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost',
    '',
  ].join('\n'));
  run(['x509', '-req', '-in', p('leaf.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('leaf.pem'), '-days', '2', '-extfile', p('leaf.ext')]);
  caCache = { dir, caFile: p('ca.pem'), cert: readFileSync(p('leaf.pem')), key: readFileSync(p('leaf.key')) };
  return caCache;
}

export async function startReceiver({ https: useTls = false } = {}) {
  const scripts = new Map();
  const counts = new Map();
  const requests = [];
  const sockets = new Set();
  const waiters = new Set();

  const handler = (req, res) => {
    const at = Date.now();
    const mono = performance.now();
    const path = req.url;
    const n = counts.get(path) || 0;
    counts.set(path, n + 1);
    let script = scripts.get(path) || ok();
    if (Array.isArray(script)) script = script[Math.min(n, script.length - 1)];
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (typeof script === 'function') script = script(req, body, n);
      requests.push({ method: req.method, path, headers: req.headers, body, at, mono, n });
      for (const w of waiters) w();
      if (script.hang) return;
      if (script.reset) {
        req.socket.resetAndDestroy();
        return;
      }
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(script.status, { 'content-type': 'text/plain', ...(script.headers || {}) });
        res.end(script.body ?? '');
      };
      if (script.delay) setTimeout(answer, script.delay);
      else answer();
    });
  };

  let server;
  let caFile;
  if (useTls) {
    const c = testCertificates();
    caFile = c.caFile;
    server = https.createServer({ cert: c.cert, key: c.key }, handler);
  } else {
    server = http.createServer(handler);
  }
  server.keepAliveTimeout = 30000;
  server.on(useTls ? 'secureConnection' : 'connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (err, socket) => socket.destroy());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  const base = `${useTls ? 'https' : 'http'}://127.0.0.1:${port}`;

  const rx = {
    port,
    base,
    caFile,
    requests,
    // url(path): the full URL of a path on this receiver.
    url: (path = '/') => base + path,
    on(path, script) {
      scripts.set(path, script);
      return rx;
    },
    received(path) {
      return path === undefined ? requests.slice() : requests.filter((r) => r.path === path);
    },
    // Resolves with the matching requests once at least `count` match pred
    // (a function, or a path), or rejects after `timeout` ms.
    waitFor(pred, { count = 1, timeout = 10000 } = {}) {
      const match = typeof pred === 'function' ? pred : (r) => r.path === pred;
      return new Promise((resolve, reject) => {
        const check = () => {
          const got = requests.filter(match);
          if (got.length >= count) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(got);
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver: waited ${timeout} ms for ${count} request(s), got ${requests.filter(match).length}`));
        }, timeout);
        if (!check()) waiters.add(check);
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return rx;
}
