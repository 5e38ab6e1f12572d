// hostile.mjs: what a hostile tenant's transform code costs everyone else.
//
// Runs the gateway twice per round, the same load each time: organization
// B publishes events at --rate per second to a webhook with a small
// transform, and /healthz is asked every 5 ms. In the "hostile" run,
// organization A also publishes to two webhooks whose transforms never
// stop by themselves (a loop the worker's hook stops, and a backtracking
// pattern only the watchdog can end). Printed: p50/p99/max of /healthz's
// answer time and of B's deliveries (publish to arrival at the receiver),
// quiet against hostile, medians over --runs rounds.
//
//   node bench/hostile.mjs [--runs 3] [--seconds 10] [--rate 200] [--hostile-rate 20]
//   (HOOKGATE_BIN: the binary; default build-release/hookgate, which bench/run builds)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort, median, percentile, request, sleep } from './lib.mjs';

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? Number(argv[i + 1]) : def;
};
const O = { runs: opt('runs', 3), seconds: opt('seconds', 10), rate: opt('rate', 200), hostileRate: opt('hostile-rate', 20) };
const BIN = process.env.HOOKGATE_BIN || new URL('../build-release/hookgate', import.meta.url).pathname;
const KEY = 'hg_bench_admin_key_0123456789abcdef';

function receiver() {
  const arrivals = new Map();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString());
        if (body?.data?.seq !== undefined) arrivals.set(body.data.seq, at);
      } catch { /* not ours */ }
      res.end('ok');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, arrivals })));
}

async function startGateway() {
  const dir = mkdtempSync(join(tmpdir(), 'hookgate-hostile-'));
  const port = await freePort();
  const cfg = join(dir, 'bench.lua');
  writeFileSync(cfg, `log = { level = "warn", access = false }
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0 } }
`);
  const p = spawn(BIN, ['serve', '-c', cfg], {
    env: { ...process.env, HOOKGATE_LISTEN: `127.0.0.1:${port}`, HOOKGATE_STORE: join(dir, 'h.db'), HOOKGATE_ADMIN_KEY: KEY },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await request(port, 'GET', '/healthz')).status === 200) break;
    } catch { /* not yet */ }
    await sleep(25);
  }
  return { port, stop: async () => { p.kill('SIGKILL'); await sleep(100); rmSync(dir, { recursive: true, force: true }); } };
}

const stats = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return { p50: percentile(v, 50), p99: percentile(v, 99), max: v.at(-1), n: v.length };
};

async function round(hostile) {
  const rx = await receiver();
  const gw = await startGateway();
  const hook = async (org, type, transform) => {
    const r = await request(gw.port, 'POST', '/v1/webhooks', {
      key: KEY, body: { url: `http://127.0.0.1:${rx.port}/h`, events: [type], organizationId: org, transform },
    });
    if (r.status !== 201) throw new Error(`create webhook: ${r.status} ${r.body}`);
  };
  await hook('org_b', 'user.created', 'function(d) d.headers["X-B"] = "1" end');
  if (hostile) {
    await hook('org_a', 'user.updated', 'function(d) while true do end end');
    await hook('org_a', 'user.updated', 'function(d) d.body = tostring((("a"):rep(400)):find(".-.-.-.-b")) end');
  }
  const sent = new Map();
  const health = [];
  let stop = false;
  const prober = (async () => {
    while (!stop) {
      const t0 = performance.now();
      await request(gw.port, 'GET', '/healthz');
      health.push(performance.now() - t0);
      await sleep(5);
    }
  })();
  const publisher = async (org, type, rate, record) => {
    const end = performance.now() + O.seconds * 1000;
    let seq = 0;
    const gap = 1000 / rate;
    let next = performance.now();
    const pending = [];
    while (performance.now() < end) {
      const id = record ? seq++ : -1;
      const t = performance.now();
      if (record) sent.set(id, t);
      pending.push(request(gw.port, 'POST', '/v1/events', {
        key: KEY, body: { type, organizationId: org, data: record ? { seq: id } : { noise: true } },
      }));
      next += gap;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
    await Promise.all(pending);
  };
  await Promise.all([
    publisher('org_b', 'user.created', O.rate, true),
    hostile ? publisher('org_a', 'user.updated', O.hostileRate, false) : Promise.resolve(),
  ]);
  // B's last deliveries arrive.
  const deadline = performance.now() + 10000;
  while (rx.arrivals.size < sent.size && performance.now() < deadline) await sleep(20);
  stop = true;
  await prober;
  const lat = [];
  let lost = 0;
  for (const [id, t] of sent) {
    const a = rx.arrivals.get(id);
    if (a === undefined) lost++;
    else lat.push(a - t);
  }
  const m = (await request(gw.port, 'GET', '/metrics')).body;
  const kills = Number(m.match(/^hookgate_sandbox_watchdog_kills_total (\S+)$/m)?.[1] ?? 0);
  const stops = Number(m.match(/^hookgate_sandbox_budget_stops_total (\S+)$/m)?.[1] ?? 0);
  const spawnMs = 1000 * Number(m.match(/^hookgate_sandbox_spawn_seconds_total (\S+)$/m)?.[1] ?? 0);
  const spawns = Number(m.match(/^hookgate_sandbox_spawns_total (\S+)$/m)?.[1] ?? 0);
  await gw.stop();
  rx.server.close();
  return { health: stats(health), deliveries: stats(lat), lost, kills, stops, spawnMs: spawns ? spawnMs / spawns : NaN };
}

const rounds = { quiet: [], hostile: [] };
for (let i = 0; i < O.runs; i++) {
  for (const kind of i % 2 === 0 ? ['quiet', 'hostile'] : ['hostile', 'quiet']) {
    process.stderr.write(`[hostile] round ${i + 1}/${O.runs}: ${kind}\n`);
    rounds[kind].push(await round(kind === 'hostile'));
  }
}
const med = (kind, f) => median(rounds[kind].map(f));
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : String(x));
console.log(`hostile tenant bench: ${O.runs} rounds of ${O.seconds} s; B publishes ${O.rate}/s; hostile A publishes ${O.hostileRate}/s to 2 never-ending transforms`);
console.log('| figure (median of rounds) | quiet | hostile | hostile - quiet |');
console.log('|---|---|---|---|');
for (const [name, key] of [['/healthz answer', 'health'], ["B's delivery, publish to arrival", 'deliveries']]) {
  for (const q of ['p50', 'p99', 'max']) {
    const a = med('quiet', (r) => r[key][q]), b = med('hostile', (r) => r[key][q]);
    console.log(`| ${name} ${q} (ms) | ${fmt(a)} | ${fmt(b)} | ${fmt(b - a)} |`);
  }
}
console.log(`| B's deliveries lost | ${med('quiet', (r) => r.lost)} | ${med('hostile', (r) => r.lost)} | |`);
console.log(`| A's runs stopped by the worker / by the watchdog | | ${med('hostile', (r) => r.stops)} / ${med('hostile', (r) => r.kills)} | |`);
console.log(`| loop time per worker start (ms) | ${fmt(med('quiet', (r) => r.spawnMs))} | ${fmt(med('hostile', (r) => r.spawnMs))} | |`);
