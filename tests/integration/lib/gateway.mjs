// gateway.mjs: start the real hookgate binary for a test and talk to it.
//
// startGateway({config, env}) writes a config file into a fresh temp dir,
// starts `hookgate serve -c FILE` on 127.0.0.1:0 (unless config says
// otherwise), waits for its "listening" log line and resolves with
// { port, url, dir, adminKey, logs(), stop(signal), waitExit(), request() }.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { storeFor } from './store.mjs';

export const BIN = process.env.HOOKGATE_BIN || new URL('../../../build/hookgate', import.meta.url).pathname;
export const ADMIN_KEY = 'hg_test_admin_key_0123456789abcdef';

// When the test process exits (each test file runs in a process of its
// own), the gateways it started are killed and every temp dir made here is
// removed, unless HOOKGATE_KEEP_TMP=1 asks to keep them for a look at a
// failed run. A gateway's dir holds at least its intake log's 16 MiB:
// left behind, thousands of runs fill a disk. (A process killed from
// outside cannot clean up: scripts/test gives the whole run one TMPDIR
// and removes it.)
const madeDirs = new Set();
const procs = new Set();
process.on('exit', () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  if (/^(1|true|yes)$/i.test(process.env.HOOKGATE_KEEP_TMP || '')) return;
  for (const d of madeDirs) {
    try {
      rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // Best effort: the next dir still goes.
    }
  }
});

export function tempDir(prefix = 'hookgate-test-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.add(d);
  return d;
}

// config: Lua source for the config file (a string), appended after defaults
// suitable for tests. env: extra environment variables. wrap: a command
// line the binary runs under (its arguments before the binary's own), e.g.
// a debugger; gw.proc is then the wrapper.
export async function startGateway({ config = '', env = {}, dir = tempDir(), listenRe = /listening.*addr=(\S+)/, args, wrap } = {}) {
  const cfgPath = join(dir, 'hookgate.lua');
  writeFileSync(cfgPath, config);
  const fullEnv = {
    ...process.env,
    HOOKGATE_LISTEN: '127.0.0.1:0',
    HOOKGATE_STORE: storeFor(dir),
    HOOKGATE_ADMIN_KEY: ADMIN_KEY,
    HOOKGATE_LOG_LEVEL: 'debug',
    ...env,
  };
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined) delete fullEnv[k];
  const argv = args || ['serve', '-c', cfgPath];
  const proc = wrap ? spawn(wrap[0], [...wrap.slice(1), BIN, ...argv], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(BIN, argv, { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(proc);
  let out = '';
  const onData = (d) => { out += d.toString(); };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const addrs = await new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      proc.kill('SIGKILL'); // not left running, nor holding the test process open
      reject(new Error('gateway did not start:\n' + out));
    }, 15000);
    const check = () => {
      const lines = out.split('\n').filter((l) => listenRe.test(l));
      if (lines.length > 0) { clearTimeout(t); resolve(lines.map((l) => l.match(listenRe)[1])); }
    };
    proc.stdout.on('data', check);
    proc.stderr.on('data', check);
    exited.then(({ code, signal }) => { clearTimeout(t); reject(new Error(`gateway exited (${code ?? signal}) before listening:\n${out}`)); });
  });
  const addr = addrs[0].replace(/^"|"$/g, '');
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const gw = {
    proc, dir, cfgPath, port, addrs, adminKey: fullEnv.HOOKGATE_ADMIN_KEY, store: fullEnv.HOOKGATE_STORE,
    url: `http://127.0.0.1:${port}`,
    logs: () => out,
    exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    // request(method, path, {body, headers, key}) -> {status, headers, body, json}
    request(method, path, { body, headers = {}, key = gw.adminKey, raw = false } = {}) {
      return httpRequest(port, method, path, { body, headers, key, raw });
    },
  };
  return gw;
}

// One request to 127.0.0.1:port with a Bearer key (when given) and a JSON
// body (unless raw): resolves {status, headers, body, json}.
export function httpRequest(port, method, path, { body, headers = {}, key, raw = false } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    let payload;
    if (body !== undefined) {
      payload = raw || typeof body === 'string' ? body : JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    }
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
