// bench.mjs: hookgate's benchmark. Started by bench/run, which installs and
// builds what this needs; see docs/performance.md.
//
// Every figure is set beside an anchor measured in the same run on the same
// machine (a bare libuv responder, wrk against the sink), because the machine
// is shared and absolute numbers drift; the ratio is the figure that counts.
// Each figure is the median of --runs runs, anchors and gateway interleaved.
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MiB, fmt, table } from './table.mjs';
import {
  cpuMicros, eventBody, freePort, parseMetrics, request, rssBytes, run, sleep,
} from './lib.mjs';

const HERE = new URL('.', import.meta.url).pathname;

// ---- options ----------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, envName, def) => {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  if (envName && process.env[envName]) return process.env[envName];
  return def;
};
const quick = flag('quick') || process.env.BENCH_QUICK === '1';
// --store postgresql: bench/run starts a throwaway server and passes its
// URI (--pg-uri); each gateway (or group of nodes) gets a database of its own.
const store = opt('store', 'BENCH_STORE', 'sqlite');
if (store !== 'sqlite' && store !== 'postgresql') throw new Error('--store: sqlite or postgresql');
const PG = store === 'postgresql';
const O = {
  bin: opt('bin', 'HOOKGATE_BIN', join(HERE, '../build-release/hookgate')),
  bare: opt('bare', 'BENCH_BARE', join(HERE, '../build-release/bare_responder')),
  // The end-to-end client (bench/e2e_load.c; bench/e2e.mjs is the same in
  // Node, for a machine without a C compiler: --e2e-client bench/e2e.mjs).
  e2eClient: opt('e2e-client', 'BENCH_E2E_CLIENT', join(HERE, '../build-release/e2e_load')),
  runs: Number(opt('runs', 'BENCH_RUNS', 3)),
  duration: Number(opt('duration', 'BENCH_DURATION', quick ? 3 : 10)), // seconds per wrk run
  pending: Number(opt('pending', 'BENCH_PENDING', quick ? 20000 : 200000)), // delivery drain size
  e2eRates: String(opt('e2e-rate', 'BENCH_E2E_RATE', PG ? '1000' : '1000,10000')).split(',').map(Number),
  e2eDuration: Number(opt('e2e-duration', 'BENCH_E2E_DURATION', quick ? 5 : 30)),
  memPending: Number(opt('mem-pending', 'BENCH_MEM_PENDING', quick ? 100000 : 1000000)),
  loadSeconds: Number(opt('load-seconds', 'BENCH_LOAD_SECONDS', quick ? 20 : 60)), // ingest before the settle

  purgeRows: Number(opt('purge-rows', 'BENCH_PURGE_ROWS', quick ? 200000 : 1000000)), // old events to purge
  conns: Number(opt('conns', 'BENCH_CONNS', 10000)),
  only: opt('only', 'BENCH_ONLY', PG ? 'ingest,delivery,e2e' : 'ingest,delivery,e2e,memory,lua,recover').split(','),
  store,
  pgUri: opt('pg-uri', 'BENCH_PG_URI', ''),
  pgAnchor: opt('pg-anchor', 'BENCH_PG_ANCHOR', join(HERE, '../build-release/pg_anchor')),
  // Events per transaction of the anchor client: about what the gateway's
  // group commit gathers at -c256 (its events per commit are in the table).
  pgGroup: Number(opt('pg-group', 'BENCH_PG_GROUP', 100)),
  tmp: opt('tmp', 'BENCH_TMP', '/var/tmp'),
  keep: flag('keep'),
  json: opt('json', 'BENCH_JSON', ''),
};
if (flag('help')) {
  console.log(`usage: bench/run [--quick] [--runs N] [--duration S] [--pending N] [--e2e-rate R[,R...]]
       [--e2e-duration S] [--e2e-client PATH] [--mem-pending N] [--load-seconds S] [--conns N] [--purge-rows N]
       [--only ingest,delivery,e2e,memory,lua,purge,recover,flow]
       [--tmp DIR] [--json FILE] [--keep]
       [--store sqlite|postgresql] [--pg-group N]   (bench/run starts the PostgreSQL server)`);
  process.exit(0);
}
if (O.runs < 1) throw new Error('--runs must be at least 1');
const SCENARIOS = ['ingest', 'delivery', 'e2e', 'memory', 'lua', 'purge', 'recover', 'flow'];
for (const s of O.only) if (!SCENARIOS.includes(s)) throw new Error(`--only: unknown scenario ${s} (one of ${SCENARIOS.join(',')})`);
if (PG) {
  if (!O.pgUri) throw new Error('--store postgresql needs --pg-uri (bench/run starts a server and passes it)');
  for (const s of O.only) if (!['ingest', 'delivery', 'e2e'].includes(s)) throw new Error(`--store postgresql: no ${s} scenario`);
}

const KEY = 'hg_bench_admin_key_0123456789abcdef';
const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

// The store must be on a real disk so that fsync costs what it costs.
const TMPFS_MAGIC = 0x01021994;
if (statfsSync(O.tmp).type === TMPFS_MAGIC) throw new Error(`${O.tmp} is a tmpfs: give --tmp a directory on disk`);
const ROOT = mkdtempSync(join(O.tmp, 'hgbench-'));
let children = [];
function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (!O.keep) rmSync(ROOT, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

function spawnChild(cmd, args, opts = {}) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  p.out = '';
  p.stdout?.on('data', (d) => { p.out += d; if (p.out.length > 1 << 20) p.out = p.out.slice(-65536); });
  p.stderr?.on('data', (d) => { p.out += d; if (p.out.length > 1 << 20) p.out = p.out.slice(-65536); });
  p.exited = new Promise((r) => p.on('exit', (code, sig) => r(code ?? sig)));
  children.push(p);
  return p;
}

async function stopChild(p, signal = 'SIGTERM', graceMs = 10000) {
  p.stopping = true;
  if (p.exitCode === null && p.signalCode === null) {
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
    await p.exited;
    clearTimeout(t);
  }
  children = children.filter((c) => c !== p);
}

async function waitHttp(port, path = '/healthz', timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await request(port, 'GET', path, { timeoutMs: 2000 });
      if (r.status < 500) return;
    } catch { /* not up yet */ }
    if (Date.now() > end) throw new Error(`nothing answers on 127.0.0.1:${port}${path}`);
    await sleep(50);
  }
}

// ---- the sink: nginx, plain and TLS -------------------------------------------

async function makeCerts(dir) {
  mkdirSync(dir, { recursive: true });
  const r = await run('sh', ['-c', `cd ${dir} &&
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key &&
    openssl req -x509 -new -key ca.key -subj /CN=hookgate-bench-ca -days 2 -out ca.pem \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
    openssl ecparam -name prime256v1 -genkey -noout -out srv.key &&
    openssl req -new -key srv.key -subj /CN=localhost -out srv.csr &&
    printf 'subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > ext.cnf &&
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out srv.pem`]);
  if (r.code !== 0) throw new Error(`openssl: ${r.stderr}`);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'srv.pem'), key: join(dir, 'srv.key') };
}

async function startNginx(certs) {
  const dir = join(ROOT, 'nginx');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const httpPort = await freePort();
  const httpsPort = await freePort();
  // One worker: the gateway's HTTP client is one loop too, and the machine
  // has few cores to share between sink, gateway and load generator.
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_buffer_size 64k;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${httpPort};
    listen 127.0.0.1:${httpsPort} ssl;
    ssl_certificate ${certs.cert};
    ssl_certificate_key ${certs.key};
    ssl_session_cache shared:SSL:1m;
    location / { return 200 ""; }
  }
}
`);
  const p = spawnChild('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')]);
  await waitHttp(httpPort, '/');
  return { proc: p, httpPort, httpsPort };
}

// ---- the gateway ---------------------------------------------------------------

// The gateway runs from a private copy with its own name, so that another
// user's `pkill hookgate` on a shared machine does not end a measurement.
let GW_BIN;
function gatewayBinary() {
  if (!GW_BIN) {
    GW_BIN = join(ROOT, 'hgb-gateway');
    copyFileSync(O.bin, GW_BIN);
    chmodSync(GW_BIN, 0o755);
  }
  return GW_BIN;
}

// Runs one measurement again (at most twice) when it failed, e.g. because
// something outside the benchmark ended the gateway.
async function retry(what, fn) {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i >= 2) throw e;
      log(`${what} failed (${e.message.split('\n')[0]}); running it again`);
    }
  }
}

// ---- PostgreSQL ------------------------------------------------------------------

// The URI of database name on the run's server (pg-tmp's URIs name the
// database in the path: postgresql://user@/DB?host=DIR).
const pgUriOf = (name) => O.pgUri.replace(/^(postgres(?:ql)?:\/\/[^/]*\/)[^?]*/, `$1${name}`);

async function psql(sql, db = 'hookgate') {
  const r = await run('psql', ['-d', pgUriOf(db), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeoutMs: 60000 });
  if (r.code !== 0) throw new Error(`psql ${sql}: ${r.stderr}`);
  return r.stdout;
}

// A fresh database per gateway or cluster, as a new SQLite file is: the
// figures must not depend on what earlier runs left in the tables.
let dbCount = 0;
async function createDb() {
  const name = `hgb${++dbCount}`;
  await psql(`CREATE DATABASE ${name}`);
  return name;
}
// FORCE: a gateway just killed may still have a backend on its way out.
const dropDb = (name) => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);

// The anchor: libpq's own durable insert rate (bench/pg_anchor.c), in a
// scratch database of its own; mode deliver: its rate for a delivery's
// rows (read with its event, attempt and outcome written), no HTTP.
async function pgAnchor(conns, mode, group = O.pgGroup) {
  const db = await createDb();
  try {
    const r = await run(O.pgAnchor, [pgUriOf(db), String(conns), String(O.duration), String(group), mode, '512'],
      { timeoutMs: (O.duration + 120) * 1000 });
    if (r.code !== 0) throw new Error(`pg_anchor: ${r.stderr}${r.stdout}`);
    return JSON.parse(r.stdout.trim().split('\n').pop());
  } finally {
    await dropDb(db);
  }
}

// n gateways on one database, each its own node id. A node learns about a
// webhook another node created at its next poll of the change counter
// (cluster.poll, 1 s by default): settle() waits that long.
async function startNodes(n, opts = {}) {
  const db = PG ? await createDb() : undefined;
  const gws = [];
  try {
    for (let i = 0; i < n; i++) {
      gws.push(await startGateway({
        ...opts,
        store: db && pgUriOf(db),
        extra: `${opts.extra || ''}\ncluster = { node_id = "bench-node-${i + 1}" }\n`,
      }));
    }
  } catch (e) {
    for (const g of gws) await g.destroy();
    if (db) await dropDb(db);
    throw e;
  }
  return {
    gws,
    settle: () => (n > 1 ? sleep(1500) : Promise.resolve()),
    async destroy() {
      for (const g of gws) await g.destroy();
      if (db) await dropDb(db);
    },
  };
}

let gwCount = 0;
async function startGateway({ paused = true, caFile, extra = '', dir, store: storeAddr } = {}) {
  dir = dir || join(ROOT, `gw${++gwCount}`);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const cfg = join(dir, 'bench.lua');
  writeFileSync(cfg, `-- written by bench/bench.mjs
log = { level = "warn", access = false }
webhooks = { allow_http = true }
http = { max_connections = 19000, header_timeout = 600, idle_timeout = 600 }
delivery = {
  paused = ${paused},
  allow_cidrs = { "127.0.0.0/8" },
  ${caFile ? `ca_file = "${caFile}",` : ''}
}
${extra}
`);
  const p = spawnChild(gatewayBinary(), ['serve', '-c', cfg], {
    cwd: dir,
    env: {
      ...process.env,
      HOOKGATE_LISTEN: `127.0.0.1:${port}`,
      HOOKGATE_STORE: storeAddr || join(dir, 'hookgate.db'),
      HOOKGATE_ADMIN_KEY: KEY,
      HOOKGATE_LOG_LEVEL: 'warn',
    },
  });
  p.on('exit', (code, sig) => {
    if (!p.stopping) log(`gateway in ${dir} exited unexpectedly (${code ?? sig}):\n${p.out.slice(-4000)}`);
  });
  await waitHttp(port);
  return {
    proc: p, pid: p.pid, port, dir,
    metrics: async () => parseMetrics((await request(port, 'GET', '/metrics')).body),
    async stop() { await stopChild(p, 'SIGTERM', 15000); },
    async destroy() { await stopChild(p, 'SIGKILL'); rmSync(dir, { recursive: true, force: true }); },
  };
}

async function addWebhook(gw, url, more = {}) {
  const r = await request(gw.port, 'POST', '/v1/webhooks', { key: KEY, body: { url, events: ['user.created'], ...more } });
  if (r.status !== 201 && r.status !== 200) throw new Error(`create webhook: ${r.status} ${r.body}`);
  return r.json;
}

// Publishes n events through POST /v1/events/batch, `parallel` requests at a time.
async function ingestBatches(gw, n, parallel = 2) {
  const per = 1000;
  const one = eventBody(512);
  const full = `{"events":[${Array(per).fill(one).join(',')}]}`;
  let left = n;
  async function worker() {
    while (left > 0) {
      const k = Math.min(per, left);
      left -= k;
      const body = k === per ? full : `{"events":[${Array(k).fill(one).join(',')}]}`;
      const r = await request(gw.port, 'POST', '/v1/events/batch', { key: KEY, body });
      if (r.status !== 202) throw new Error(`batch: ${r.status} ${r.body.slice(0, 300)}`);
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker));
}

// ---- wrk ----------------------------------------------------------------------

async function wrk(url, conns, seconds, key) {
  const args = ['-t1', `-c${conns}`, `-d${seconds}s`, '--latency', '--timeout', '10s', '-s', join(HERE, 'ingest.lua'), url];
  const r = await run('wrk', args, {
    env: { ...process.env, BENCH_KEY: key || '', BENCH_BODY_BYTES: '512' },
    timeoutMs: (seconds + 60) * 1000,
  });
  const rps = Number((r.stdout.match(/Requests\/sec:\s+([\d.]+)/) || [])[1]);
  const s = Object.fromEntries([...r.stdout.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
  if (r.code !== 0 || !Number.isFinite(rps)) throw new Error(`wrk failed (${r.code}): ${r.stdout}${r.stderr}`);
  const errors = s.errors_status + s.errors_connect + s.errors_read + s.errors_write + s.errors_timeout;
  return { rps, p50_ms: s.p50_us / 1000, p99_ms: s.p99_us / 1000, requests: s.requests, errors };
}

// ---- scenarios -----------------------------------------------------------------

const R = {}; // results, by row key: { value, anchor, ... } lists per run

function push(key, obj) {
  (R[key] = R[key] || []).push(obj);
}

// Microseconds per call the gateway spent in a Lua phase between two
// /metrics readings (hookgate_lua_phase_seconds_total / _calls_total), or
// undefined when the phase did not run.
function phaseMicros(m0, m1, phase) {
  const k = (n) => `hookgate_lua_phase_${n}_total{phase="${phase}"}`;
  const calls = m1[k('calls')] - m0[k('calls')];
  return calls > 0 ? ((m1[k('seconds')] - m0[k('seconds')]) * 1e6) / calls : undefined;
}

async function ingestRun(mode, conns, sink, extra = '') {
  const gw = await startGateway({ paused: mode === 'paused', extra });
  try {
    await addWebhook(gw, `http://127.0.0.1:${sink.httpPort}/hook`);
    const m0 = await gw.metrics();
    const c0 = cpuMicros(gw.pid);
    const w = await wrk(`http://127.0.0.1:${gw.port}/v1/events`, conns, O.duration, KEY);
    const c1 = cpuMicros(gw.pid);
    const m1 = await gw.metrics();
    const events = m1.hookgate_events_ingested_total - m0.hookgate_events_ingested_total;
    const commits = m1.hookgate_store_commit_batch_size_count - m0.hookgate_store_commit_batch_size_count;
    const jobs = m1.hookgate_store_commit_batch_size_sum - m0.hookgate_store_commit_batch_size_sum;
    // One fsync of the write-ahead log makes every commit before it durable.
    const syncs = m1.hookgate_store_sync_seconds_count - m0.hookgate_store_sync_seconds_count;
    // The intake log's fsyncs are the ones the single events' answers wait for.
    const intakeSyncs = (m1.hookgate_intake_syncs_total ?? 0) - (m0.hookgate_intake_syncs_total ?? 0);
    const intakeRecords = (m1.hookgate_intake_records_total ?? 0) - (m0.hookgate_intake_records_total ?? 0);
    const delivered = m1['hookgate_deliveries_completed_total{status="success"}'] -
      m0['hookgate_deliveries_completed_total{status="success"}'];
    return {
      ...w, events, cpu_us: (c1 - c0) / events, events_per_commit: events / commits, jobs_per_commit: jobs / commits,
      events_per_fsync: events / syncs,
      events_per_intake_fsync: intakeSyncs > 0 ? intakeRecords / intakeSyncs : undefined,
      delivered_per_s: delivered / O.duration,
      route_us: phaseMicros(m0, m1, 'route'),
    };
  } finally {
    await gw.destroy();
  }
}

// Two anchors: the bare responder (what the network stack and libuv cost)
// and the same responder in durable mode (each loop turn's requests answered
// after one write and one fdatasync of their bytes, on the same disk as the
// gateway's store: the limit of a durable answer on this machine).
async function benchIngest(sink) {
  const barePort = await freePort();
  const bare = spawnChild(O.bare, [String(barePort)]);
  const durablePort = await freePort();
  const durable = spawnChild(O.bare, [String(durablePort), '--durable', join(ROOT, 'durable-anchor.dat')]);
  await waitHttp(barePort, '/');
  await waitHttp(durablePort, '/');
  try {
    for (const conns of [50, 256]) {
      for (let i = 0; i < O.runs; i++) {
        log(`ingest -c${conns} run ${i + 1}/${O.runs}: bare responder`);
        push(`anchor_bare_c${conns}`, await wrk(`http://127.0.0.1:${barePort}/v1/events`, conns, O.duration));
        log(`ingest -c${conns} run ${i + 1}/${O.runs}: durable responder`);
        push(`anchor_durable_c${conns}`, await wrk(`http://127.0.0.1:${durablePort}/v1/events`, conns, O.duration));
        for (const mode of ['paused', 'running']) {
          log(`ingest -c${conns} run ${i + 1}/${O.runs}: hookgate, delivery ${mode}`);
          push(`ingest_${mode}_c${conns}`, await retry('ingest run', () => ingestRun(mode, conns, sink)));
        }
      }
    }
  } finally {
    await stopChild(bare, 'SIGKILL');
    await stopChild(durable, 'SIGKILL');
  }
}

// The CPU time of pid's children (the transform sandbox's workers) that
// are alive now, in microseconds.
function childrenMicros(pid) {
  let total = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    let kids = '';
    try { kids = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8'); } catch { continue; }
    for (const k of kids.trim().split(/\s+/).filter(Boolean)) {
      try { total += cpuMicros(Number(k)); } catch { /* gone */ }
    }
  }
  return total;
}

async function deliveryRun(scheme, sink, ca, extra = '', webhook = {}, pending = O.pending) {
  const gw = await startGateway({ paused: true, caFile: scheme === 'https' ? ca : undefined, extra });
  try {
    const url = scheme === 'https' ? `https://localhost:${sink.httpsPort}/hook` : `http://127.0.0.1:${sink.httpPort}/hook`;
    await addWebhook(gw, url, webhook);
    const t0i = performance.now();
    await ingestBatches(gw, pending);
    const ingestS = (performance.now() - t0i) / 1000;
    const m0 = await gw.metrics();
    const c0 = cpuMicros(gw.pid);
    const k0 = childrenMicros(gw.pid);
    const t0 = performance.now();
    const r = await request(gw.port, 'POST', '/v1/admin/delivery/resume', { key: KEY });
    if (r.status !== 200) throw new Error(`resume: ${r.status} ${r.body}`);
    // Bounded: no figure is worth waiting for at under 50 deliveries/s.
    const deadline = t0 + Math.max(60000, (pending / 50) * 1000);
    let st;
    // A FIFO webhook's deliveries waiting in its line are in the store
    // only, not the queue: drained is every one of them sent.
    const fifo = webhook.ordering === 'fifo';
    const m0ok = m0['hookgate_deliveries_completed_total{status="success"}'];
    for (;;) {
      st = (await request(gw.port, 'GET', '/v1/admin/delivery', { key: KEY })).json;
      if (fifo) {
        const m = await gw.metrics();
        if (m['hookgate_deliveries_completed_total{status="success"}'] - m0ok >= pending) break;
      } else if (st.queued === 0 && st.inFlight === 0) break;
      if (performance.now() > deadline) throw new Error(`delivery did not drain: ${JSON.stringify(st)}`);
      await sleep(20);
    }
    const secs = (performance.now() - t0) / 1000;
    const c1 = cpuMicros(gw.pid);
    const k1 = childrenMicros(gw.pid);
    const m1 = await gw.metrics();
    const ok = m1['hookgate_deliveries_completed_total{status="success"}'] - m0['hookgate_deliveries_completed_total{status="success"}'];
    const fail = m1['hookgate_delivery_attempts_total{outcome="failure"}'] - m0['hookgate_delivery_attempts_total{outcome="failure"}'];
    if (fail > 0) log(`warning: ${fail} failed attempts delivering to ${scheme}`);
    return {
      rate: ok / secs, seconds: secs, succeeded: ok, failures: fail, cpu_us: (c1 - c0) / ok,
      // The sandbox's workers: started on the first transform, so a
      // run's first figures include their start (a few ms in all).
      workers_cpu_us: (k1 - k0) / ok,
      transform_us: phaseMicros(m0, m1, 'transform'),
      batch_ingest_rate: pending / ingestS,
    };
  } finally {
    await gw.destroy();
  }
}

async function benchDelivery(sink, ca) {
  // The anchor uses as many connections as the gateway may open to one
  // origin (delivery.max_per_origin, default 64).
  for (const scheme of ['http', 'https']) {
    for (let i = 0; i < O.runs; i++) {
      const port = scheme === 'https' ? sink.httpsPort : sink.httpPort;
      log(`delivery ${scheme} run ${i + 1}/${O.runs}: wrk against the sink`);
      push(`anchor_sink_${scheme}`, await wrk(`${scheme}://127.0.0.1:${port}/hook`, 64, O.duration));
      log(`delivery ${scheme} run ${i + 1}/${O.runs}: hookgate draining ${O.pending} deliveries`);
      push(`delivery_${scheme}`, await retry('delivery run', () => deliveryRun(scheme, sink, ca)));
    }
  }
}

// Flow control: the http sink drained through one webhook with a rateLimit
// (the rate must hold: deliveries/s close to it, never above), and with a
// maxConcurrency (what so few open requests deliver).
const FLOW_RATE = 1000;
const FLOW_CONCURRENCY = 4;
async function benchFlow(sink) {
  const n = quick ? 3000 : 10000;
  for (let i = 0; i < O.runs; i++) {
    log(`flow run ${i + 1}/${O.runs}: ${n} deliveries, rateLimit ${FLOW_RATE}/s`);
    push('flow_rate', await retry('flow run', () => deliveryRun('http', sink, undefined, '', { rateLimit: FLOW_RATE }, n)));
    log(`flow run ${i + 1}/${O.runs}: ${n} deliveries, maxConcurrency ${FLOW_CONCURRENCY}`);
    push('flow_concurrency', await retry('flow run',
      () => deliveryRun('http', sink, undefined, '', { maxConcurrency: FLOW_CONCURRENCY }, n)));
    // FIFO: one at a time, each after the one before it was recorded.
    // The anchor is the same sink with one connection (wrk -c1): what
    // one-at-a-time delivery could reach with nothing to store.
    const nf = quick ? 1000 : 3000;
    log(`flow run ${i + 1}/${O.runs}: wrk -c1 against the sink`);
    push('anchor_sink_c1', await wrk(`http://127.0.0.1:${sink.httpPort}/hook`, 1, O.duration));
    log(`flow run ${i + 1}/${O.runs}: ${nf} deliveries, ordering fifo`);
    push('flow_fifo', await retry('flow run', () => deliveryRun('http', sink, undefined, '', { ordering: 'fifo' }, nf)));
  }
}

// Lua hooks: what a no-op plugin adds, as gateway CPU per delivery
// (transform) and per event (route). Each run measures the gateway with the
// plugin bound globally and without any Lua configuration, back to back (the
// order alternates between runs), so that both see the same machine load;
// the figure is the median of the per-run differences.
const LUA_PLUGIN_DIR = join(HERE, 'plugins');
const luaConfig = (plugin) =>
  `lua = { plugin_paths = { ${JSON.stringify(LUA_PLUGIN_DIR)} } }\nplugins = { [${JSON.stringify(plugin)}] = true }\n`;

async function benchLua(sink) {
  // The plugins must load and be bound, or the figures compare nothing.
  for (const [plugin, phase] of [['noop-transform', 'transform'], ['noop-route', 'route']]) {
    const gw = await startGateway({ paused: true, extra: luaConfig(plugin) });
    try {
      const r = await request(gw.port, 'GET', '/v1/admin/plugins', { key: KEY });
      const bound = (r.json?.plugins || []).find((p) => p.name === plugin);
      if (r.status !== 200 || !bound || !bound.phases.includes(phase)) {
        throw new Error(`${plugin} is not bound in ${phase}: ${r.status} ${r.body.slice(0, 500)}`);
      }
    } finally {
      await gw.destroy();
    }
  }
  for (let i = 0; i < O.runs; i++) {
    const order = i % 2 === 0 ? ['base', 'lua'] : ['lua', 'base'];
    for (const v of order) {
      log(`lua transform run ${i + 1}/${O.runs}: draining ${O.pending} deliveries, ${v === 'lua' ? 'noop-transform bound' : 'no plugin'}`);
      push(`lua_transform_${v}`, await retry('lua transform run',
        () => deliveryRun('http', sink, undefined, v === 'lua' ? luaConfig('noop-transform') : '')));
    }
    // A webhook's own no-op transform (tenant code: it runs in the
    // sandbox's worker processes), against the same base.
    log(`lua tenant transform run ${i + 1}/${O.runs}: draining ${O.pending} deliveries, webhook transform 'function(d) end'`);
    push('lua_tenant_lua', await retry('lua tenant transform run',
      () => deliveryRun('http', sink, undefined, '', { transform: 'function(d) end' })));
    for (const v of order) {
      log(`lua route run ${i + 1}/${O.runs}: ingest -c50, delivery paused, ${v === 'lua' ? 'noop-route bound' : 'no plugin'}`);
      push(`lua_route_${v}`, await retry('lua route run',
        () => ingestRun('paused', 50, sink, v === 'lua' ? luaConfig('noop-route') : '')));
    }
  }
  // Paired by run: run i's difference is lua_X_lua[i] - lua_X_base[i].
  for (const x of ['transform', 'route']) {
    R[`lua_${x}_added`] = R[`lua_${x}_lua`].map((r, i) => ({ cpu_us: r.cpu_us - R[`lua_${x}_base`][i].cpu_us }));
  }
  R.lua_tenant_added = R.lua_tenant_lua.map((r, i) => ({
    cpu_us: r.cpu_us + r.workers_cpu_us - R.lua_transform_base[i].cpu_us,
  }));
}

// End to end at each rate (--e2e-rate: 1,000 and 10,000 by default).
async function benchE2E() {
  for (let i = 0; i < O.runs; i++) {
    for (const rate of O.e2eRates) {
      log(`end to end run ${i + 1}/${O.runs}: ${rate} events/s for ${O.e2eDuration} s`);
      push(`e2e_${rate}`, await e2eRun(rate));
    }
  }
}

// The end-to-end client with args: the C one, or a .mjs under Node.
function runE2E(args, opts) {
  return O.e2eClient.endsWith('.mjs') ? run(process.execPath, [O.e2eClient, ...args], opts) : run(O.e2eClient, args, opts);
}

async function e2eRun(rate) {
  return retry('e2e run', async () => {
      const gw = await startGateway({ paused: false });
      try {
        const r = await runE2E(['--port', String(gw.port), '--key', KEY,
          '--rate', String(rate), '--duration', String(O.e2eDuration)], { timeoutMs: (O.e2eDuration + 60) * 1000 });
        if (r.code !== 0) throw new Error(`e2e: ${r.stderr}${r.stdout}`);
        if (gw.proc.exitCode !== null || gw.proc.signalCode !== null) throw new Error('the gateway exited');
        return JSON.parse(r.stdout.trim().split('\n').pop());
      } finally {
        await gw.destroy();
      }
  });
}

async function benchMemory() {
  // Idle RSS, then RSS with memPending deliveries pending, then again after
  // a restart (the queue loaded from the store, without ingest's garbage).
  for (let i = 0; i < O.runs; i++) {
    log(`memory run ${i + 1}/${O.runs}: idle, then ${O.memPending} pending deliveries`);
    await retry('memory run', () => memoryRun());
  }
  for (let i = 0; i < O.runs; i++) {
    log(`memory run ${i + 1}/${O.runs}: ${O.loadSeconds} s of ingest -c256, then ${SETTLE_S} s idle`);
    await retry('memory after load', () => memoryAfterLoad());
  }
}

// RSS after a sustained ingest (-c256, delivery paused: the store and the
// intake log at full tilt), then each second of idle after it: what an
// operator sees once a burst has passed. The gateway's idle trim
// (base/memtrim.h) looks every 5 s.
const SETTLE_S = 30;
async function memoryAfterLoad() {
  const gw = await startGateway({ paused: true });
  try {
    await addWebhook(gw, 'http://127.0.0.1:9/hook');
    const w = await wrk(`http://127.0.0.1:${gw.port}/v1/events`, 256, O.loadSeconds, KEY);
    const end = rssBytes(gw.pid);
    let settled = end;
    let settledAt = 0;
    for (let s = 1; s <= SETTLE_S; s++) {
      await sleep(1000);
      const r = rssBytes(gw.pid);
      if (r < settled - MiB / 2) settledAt = s;
      settled = Math.min(settled, r);
    }
    const m = await gw.metrics();
    push('memory_load', {
      rps: w.rps, end, settled, after: rssBytes(gw.pid), settled_s: settledAt, trims: m.hookgate_memory_trims_total,
    });
  } finally {
    await gw.destroy();
  }
}

async function memoryRun() {
  {
    const gw = await startGateway({ paused: true });
    const dir = gw.dir;
    try {
      await sleep(1000);
      const idle = rssBytes(gw.pid);
      await addWebhook(gw, 'http://127.0.0.1:9/hook');
      await ingestBatches(gw, O.memPending);
      await sleep(500);
      const loaded = rssBytes(gw.pid);
      await gw.stop();
      // Restart on the same store: the dispatcher's queue is read back.
      const gw2 = await startGateway({ paused: true, dir });
      try {
        const end = Date.now() + 120000;
        let st;
        do {
          await sleep(200);
          st = (await request(gw2.port, 'GET', '/v1/admin/delivery', { key: KEY })).json;
        } while (st.queued < O.memPending && Date.now() < end);
        const restarted = rssBytes(gw2.pid);
        // Idle connections, on the restarted gateway: their cost is the
        // difference they make.
        const before = rssBytes(gw2.pid);
        const cl = spawn(process.execPath, [join(HERE, 'conns.mjs'), '--port', String(gw2.port), '--n', String(O.conns)],
          { stdio: ['pipe', 'pipe', 'inherit'] });
        children.push(cl);
        const ready = await new Promise((resolve, reject) => {
          let out = '';
          const t = setTimeout(() => reject(new Error('conns: no READY in 120 s')), 120000);
          cl.stdout.on('data', (d) => {
            out += d;
            const m = out.match(/READY (\d+) (\d+)/);
            if (m) { clearTimeout(t); resolve({ open: Number(m[1]), failed: Number(m[2]) }); }
          });
        });
        await sleep(500);
        const withConns = rssBytes(gw2.pid);
        cl.stdin.end();
        await new Promise((r) => cl.on('exit', r));
        children = children.filter((c) => c !== cl);
        push('memory', {
          idle, loaded, restarted, queued: st.queued,
          per_pending_ingest: (loaded - idle) / O.memPending,
          per_pending_restart: (restarted - idle) / O.memPending,
          conns_open: ready.open, conns_failed: ready.failed,
          per_10k_conns: ((withConns - before) / Math.max(1, ready.open)) * 10000,
        });
      } finally {
        await gw2.destroy();
      }
    } finally {
      await gw.destroy().catch(() => {});
    }
  }
}

// ---- bulk recovery during ingest (issue 17) ------------------------------------------

// A webhook whose receiver refuses connections (one attempt each, so every
// delivery fails at once), O.pending failed deliveries seeded, then wrk
// ingest at -c50 for O.duration seconds (its events fail the same way: the
// mix of ingest and delivery), in one of three modes: alone; while
// recoveries of every failed delivery run back to back (each one made
// pending, sent and failed again, so the next recovery finds them again:
// the recovery's store jobs and the deliveries it sends); or while dry runs
// looking for missed events run back to back (every stored event read, a
// batch of 1,000 per store job: the store work alone).
async function recoverRun(mode) {
  const gw = await startGateway({
    paused: false,
    extra: 'delivery = { paused = false, allow_cidrs = { "127.0.0.0/8" }, schedule = { 0 }, jitter = 0 }',
  });
  try {
    const wh = await addWebhook(gw, 'http://127.0.0.1:9/refused');
    const since = new Date(Date.now() - 1000).toISOString();
    await ingestBatches(gw, O.pending);
    for (;;) {
      const st = (await request(gw.port, 'GET', '/v1/admin/delivery', { key: KEY })).json;
      if (st.queued === 0 && st.inFlight === 0) break;
      await sleep(50);
    }
    const body = mode === 'scan' ? { since, missed: true, dryRun: true } : { since };
    let stop = false, recoveries = 0, requeued = 0, scanned = 0;
    const loop = (async () => {
      while (mode !== 'alone' && !stop) {
        const r = await request(gw.port, 'POST', `/v1/webhooks/${wh.id}/recover`, { key: KEY, body });
        if (r.status !== 200 && r.status !== 202) throw new Error(`recover: ${r.status} ${r.body}`);
        for (let v = r.json; ; await sleep(20)) {
          if (v.state !== 'running') {
            recoveries++;
            requeued += v.requeued || 0;
            break;
          }
          v = (await request(gw.port, 'GET', `/v1/webhooks/${wh.id}/recover/${r.json.id}`, { key: KEY })).json;
        }
        if (mode === 'scan') scanned += O.pending;
      }
    })();
    const c0 = cpuMicros(gw.pid);
    const m0 = await gw.metrics();
    const w = await wrk(`http://127.0.0.1:${gw.port}/v1/events`, 50, O.duration, KEY);
    const m1 = await gw.metrics();
    const c1 = cpuMicros(gw.pid);
    stop = true;
    await loop;
    const k = 'hookgate_deliveries_recovered_total{kind="requeued"}';
    return { ...w, recoveries, requeued_per_s: ((m1[k] ?? 0) - (m0[k] ?? 0)) / O.duration, requeued_total: requeued,
      scanned_per_s: scanned / O.duration, cpu_us: (c1 - c0) / w.requests };
  } finally {
    await gw.destroy();
  }
}

async function benchRecover() {
  for (let i = 0; i < O.runs; i++) {
    for (const mode of ['alone', 'requeue', 'scan']) {
      log(`recover run ${i + 1}/${O.runs}: ingest -c50, ${mode} (${O.pending} failed deliveries)`);
      push(`recover_${mode}`, await retry('recover run', () => recoverRun(mode)));
    }
  }
}

// ---- PostgreSQL scenarios: one node and two nodes on one database -------------------

const NODES = [1, 2];

// /metrics of every node, summed by name: a cluster's figures are its nodes' sums.
async function sumMetrics(gws) {
  const out = {};
  for (const g of gws) for (const [k, v] of Object.entries(await g.metrics())) out[k] = (out[k] ?? 0) + v;
  return out;
}
const ok = (m) => m['hookgate_deliveries_completed_total{status="success"}'] ?? 0;

// Durable ingest, delivery paused: wrk against every node at once, the
// connections split between them.
async function pgIngestRun(conns, n) {
  const cl = await startNodes(n, { paused: true });
  try {
    await addWebhook(cl.gws[0], 'http://127.0.0.1:9/hook');
    await cl.settle();
    const m0 = await sumMetrics(cl.gws);
    const c0 = cl.gws.map((g) => cpuMicros(g.pid));
    const ws = await Promise.all(cl.gws.map((g) =>
      wrk(`http://127.0.0.1:${g.port}/v1/events`, Math.ceil(conns / n), O.duration, KEY)));
    const c1 = cl.gws.map((g) => cpuMicros(g.pid));
    const m1 = await sumMetrics(cl.gws);
    const events = m1.hookgate_events_ingested_total - m0.hookgate_events_ingested_total;
    const commits = m1.hookgate_store_commit_batch_size_count - m0.hookgate_store_commit_batch_size_count;
    const errors = ws.reduce((a, w) => a + w.errors, 0);
    if (errors > 0) log(`warning: ${errors} wrk errors ingesting on ${n} node(s)`);
    return {
      rps: ws.reduce((a, w) => a + w.rps, 0), errors, events,
      // The slower node's latencies: the cluster answers no faster than it.
      p50_ms: Math.max(...ws.map((w) => w.p50_ms)), p99_ms: Math.max(...ws.map((w) => w.p99_ms)),
      cpu_us: c1.reduce((a, c, i) => a + c - c0[i], 0) / events,
      events_per_commit: events / commits,
    };
  } finally {
    await cl.destroy();
  }
}

async function benchIngestPg() {
  for (let i = 0; i < O.runs; i++) {
    for (const [conns, mode] of [[1, 'batch'], [2, 'batch'], [1, 'rows']]) {
      log(`ingest run ${i + 1}/${O.runs}: pg_anchor, ${conns} connection(s), ${mode} of ${O.pgGroup}`);
      push(`pg_anchor_${mode}_${conns}`, await pgAnchor(conns, mode));
    }
    for (const conns of [50, 256]) {
      for (const n of NODES) {
        log(`ingest -c${conns} run ${i + 1}/${O.runs}: hookgate, ${n} node(s), delivery paused`);
        push(`pg_ingest_c${conns}_n${n}`, await retry('ingest run', () => pgIngestRun(conns, n)));
      }
    }
  }
}

// Delivery: O.pending events published in batches, split between the
// nodes (a node sends the deliveries it stored: it holds their leases),
// then every node resumed at once, timed until all have drained.
async function pgDeliveryRun(sink, n) {
  const cl = await startNodes(n, { paused: true });
  try {
    await addWebhook(cl.gws[0], `http://127.0.0.1:${sink.httpPort}/hook`);
    await cl.settle();
    await Promise.all(cl.gws.map((g) => ingestBatches(g, Math.ceil(O.pending / n))));
    const m0 = await sumMetrics(cl.gws);
    const c0 = cl.gws.map((g) => cpuMicros(g.pid));
    const t0 = performance.now();
    for (const g of cl.gws) {
      const r = await request(g.port, 'POST', '/v1/admin/delivery/resume', { key: KEY });
      if (r.status !== 200) throw new Error(`resume: ${r.status} ${r.body}`);
    }
    const deadline = t0 + Math.max(60000, (O.pending / 50) * 1000);
    for (;;) {
      const st = await Promise.all(cl.gws.map(async (g) => (await request(g.port, 'GET', '/v1/admin/delivery', { key: KEY })).json));
      if (st.every((x) => x.queued === 0 && x.inFlight === 0)) break;
      if (performance.now() > deadline) throw new Error(`delivery did not drain: ${JSON.stringify(st)}`);
      await sleep(20);
    }
    const secs = (performance.now() - t0) / 1000;
    const c1 = cl.gws.map((g) => cpuMicros(g.pid));
    const m1 = await sumMetrics(cl.gws);
    const done = ok(m1) - ok(m0);
    if (done < O.pending) log(`warning: ${done} of ${O.pending} deliveries succeeded on ${n} node(s)`);
    return { rate: done / secs, seconds: secs, succeeded: done, cpu_us: c1.reduce((a, c, i) => a + c - c0[i], 0) / done };
  } finally {
    await cl.destroy();
  }
}

// pg_anchor deliver's group: the most rows hookgate puts in one statement
// (core/store/rows.h).
const PG_DELIVER_GROUP = 64;

async function benchDeliveryPg(sink) {
  for (let i = 0; i < O.runs; i++) {
    log(`delivery http run ${i + 1}/${O.runs}: wrk against the sink`);
    push('anchor_sink_http', await wrk(`http://127.0.0.1:${sink.httpPort}/hook`, 64, O.duration));
    for (const conns of NODES) {
      log(`delivery run ${i + 1}/${O.runs}: pg_anchor deliver, ${conns} connection(s), groups of ${PG_DELIVER_GROUP}`);
      push(`pg_anchor_deliver_${conns}`, await pgAnchor(conns, 'deliver', PG_DELIVER_GROUP));
    }
    for (const n of NODES) {
      log(`delivery http run ${i + 1}/${O.runs}: hookgate, ${n} node(s), draining ${O.pending} deliveries`);
      push(`pg_delivery_n${n}`, await retry('delivery run', () => pgDeliveryRun(sink, n)));
    }
  }
}

// End to end: the client publishes to the nodes in turn (--port a,b).
async function benchE2EPg() {
  for (let i = 0; i < O.runs; i++) {
    for (const n of NODES) {
      log(`end to end run ${i + 1}/${O.runs}: ${n} node(s), ${O.e2eRates[0]} events/s for ${O.e2eDuration} s`);
      push(`pg_e2e_n${n}`, await retry('e2e run', async () => {
        const cl = await startNodes(n, { paused: false });
        try {
          const r = await runE2E(['--port', cl.gws.map((g) => g.port).join(','),
            '--key', KEY, '--rate', String(O.e2eRates[0]), '--duration', String(O.e2eDuration)],
          { timeoutMs: (O.e2eDuration + 60) * 1000 });
          if (r.code !== 0) throw new Error(`e2e: ${r.stderr}${r.stdout}`);
          if (cl.gws.some((g) => g.proc.exitCode !== null || g.proc.signalCode !== null)) throw new Error('a gateway exited');
          return JSON.parse(r.stdout.trim().split('\n').pop());
        } finally {
          await cl.destroy();
        }
      }));
    }
  }
}

// ---- retention: ingest while a purge runs ---------------------------------------------

// A SQLite store holding O.purgeRows events 40 days old, each with one
// delivery that succeeded and its attempt (512-byte payloads, as wrk
// sends), and the index of deliveries by event that the events rule needs
// (docs/configuration.md#retention). Written with the sqlite3 shell into a
// store the gateway made (schema, one webhook to the sink), then copied
// for each run.
async function purgeSeed(sink) {
  const dir = join(ROOT, 'purge-seed');
  const gw = await startGateway({ dir, extra: 'retention = { events = 0, deliveries = 0 }' });
  let wh;
  try {
    wh = await addWebhook(gw, `http://127.0.0.1:${sink.httpPort}/hook`);
  } finally {
    await gw.stop();
  }
  const db = join(dir, 'hookgate.db');
  const old = Date.now() - 40 * 86400 * 1000;
  const sql = `PRAGMA journal_mode=WAL; BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${O.purgeRows})
INSERT INTO events (id, type, payload, created_at, deliveries)
  SELECT 'evt_seed_' || x, 'user.created', '{"type":"user.created","data":{"pad":"' || substr(hex(randomblob(240)), 1, 470) || '"}}', ${old} + x, 1 FROM c;
INSERT INTO deliveries (id, webhook_id, event_seq, status, attempts, status_code, created_at, updated_at)
  SELECT 'del_seed_' || seq, '${wh.id}', seq, 'success', 1, 200, created_at, created_at FROM events;
INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code, response_body)
  SELECT 'att_seed_' || seq, seq, 1, created_at, 2, 200, CAST('ok' AS BLOB) FROM deliveries;
CREATE INDEX deliveries_by_event ON deliveries(event_seq);
COMMIT; PRAGMA wal_checkpoint(TRUNCATE);`;
  const r = await run('sqlite3', [db, sql], { timeoutMs: 600000 });
  if (r.code !== 0) throw new Error(`seeding the purge store: ${r.stderr}`);
  return db;
}

async function purgeRun(seed, withPurge) {
  const dir = join(ROOT, `gw${++gwCount}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(seed, join(dir, 'hookgate.db'));
  // The defaults (30 days) take the seeded rows; a pass starts a second
  // after start. Delivery paused: the new events stay pending, which the
  // purge never touches.
  const extra = withPurge ? 'retention = { interval = "1s" }' : 'retention = { events = 0, deliveries = 0 }';
  const gw = await startGateway({ dir, extra });
  try {
    const purged = (m) => ['events', 'deliveries', 'attempts']
      .reduce((n, t) => n + (m[`hookgate_retention_purged_total{table="${t}"}`] ?? 0), 0);
    if (withPurge) {
      const t = Date.now();
      while (purged(await gw.metrics()) === 0) {
        if (Date.now() - t > 15000) throw new Error('the purge did not start');
        await sleep(50);
      }
    }
    const m0 = await gw.metrics();
    const c0 = cpuMicros(gw.pid);
    const w = await wrk(`http://127.0.0.1:${gw.port}/v1/events`, 50, O.duration, KEY);
    const c1 = cpuMicros(gw.pid);
    const m1 = await gw.metrics();
    const events = m1.hookgate_events_ingested_total - m0.hookgate_events_ingested_total;
    const rows = purged(m1) - purged(m0);
    // No pass ended yet: the whole window had a purge in it.
    const busy = withPurge && m1.hookgate_retention_last_pass_timestamp_seconds === 0;
    return { ...w, cpu_us: (c1 - c0) / events, purged_per_s: rows / O.duration, purge_ran_throughout: busy };
  } finally {
    await gw.destroy();
  }
}

async function benchPurge(sink) {
  log(`purge: seeding ${fmt(O.purgeRows)} old events with a delivery and an attempt each`);
  const seed = await purgeSeed(sink);
  for (let i = 0; i < O.runs; i++) {
    for (const withPurge of [false, true]) {
      log(`purge run ${i + 1}/${O.runs}: ingest -c50, ${withPurge ? 'purge running' : 'no purge'}`);
      push(withPurge ? 'purge_on' : 'purge_off', await retry('purge run', () => purgeRun(seed, withPurge)));
    }
  }
}

// ---- main --------------------------------------------------------------------------

const t0 = Date.now();
log(`machine: ${os.cpus().length} CPUs, ${os.cpus()[0]?.model}; store under ${ROOT}`);
log(`options: ${JSON.stringify(O)}`);
const certs = await makeCerts(join(ROOT, 'certs'));
const sink = await startNginx(certs);
try {
  if (PG) {
    if (O.only.includes('ingest')) await benchIngestPg();
    if (O.only.includes('delivery')) await benchDeliveryPg(sink);
    if (O.only.includes('e2e')) await benchE2EPg();
  }
  if (!PG && O.only.includes('ingest')) await benchIngest(sink);
  if (!PG && O.only.includes('delivery')) await benchDelivery(sink, certs.ca);
  if (!PG && O.only.includes('e2e')) await benchE2E();
  if (O.only.includes('memory')) await benchMemory();
  if (O.only.includes('lua')) await benchLua(sink);
  if (!PG && O.only.includes('purge')) await benchPurge(sink);
  if (!PG && O.only.includes('recover')) await benchRecover();
  if (!PG && O.only.includes('flow')) await benchFlow(sink);
} finally {
  await stopChild(sink.proc, 'SIGQUIT');
}
// Without --pg-uri, which bench/run adds (a temporary directory).
const shown = argv.filter((a, i) => a !== '--pg-uri' && argv[i - 1] !== '--pg-uri');
const cmd = `bench/run ${shown.join(' ')}`.trim();
console.log(`\nhookgate benchmark: ${cmd}`);
console.log(`machine: nproc ${os.cpus().length}, ${os.cpus()[0]?.model}; ${new Date().toISOString()}; ${Math.round((Date.now() - t0) / 1000)} s`);
console.log(PG
  ? 'gateway: release build, log level warn, access log OFF; store: PostgreSQL (scripts/pg-tmp, unix socket, fsync on), every answer after the COMMIT of its group'
  : 'gateway: release build, log level warn, access log OFF; store: SQLite WAL on disk, every answer after an fdatasync of the log');
console.log(table(R, O, { FLOW_RATE, FLOW_CONCURRENCY, NODES, PG_DELIVER_GROUP, SETTLE_S }));
if (O.json) writeFileSync(O.json, JSON.stringify({ options: O, results: R }, null, 1));
