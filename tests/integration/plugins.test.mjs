// plugins.test.mjs: runs the data-driven cases of the bundled plugins
// (tests/plugins/<name>/) against the real gateway and a real receiver.
//
// Each folder holds cases.json:
//   { "gateway": { "eventTypes": [...], "plugins": { name: {config} } },
//     "cases": [ { name, gateway?, webhook?, receiver?, request? | event?, expect } ] }
// and may hold matcher.json (payload-filter's conditions, checked in bulk).
// One gateway runs per distinct `gateway` block; cases run in order, each
// with its own webhook (deleted afterwards, so events fan out to it only).
//
// A case:
//   webhook:  { events, plugins, transform } created for the case, pointing
//             at the receiver (path /r/<n>); `expect` in it is a subset of
//             the webhook as the API shows it (redaction checks).
//   receiver: { status } the receiver answers (default 200).
//   request:  { method, path, headers, body (string: raw; else JSON),
//               auth (send the admin key), sign: {...} } sent to the gateway.
//     sign: { scheme: "github", secret }                     X-Hub-Signature-256
//           { scheme: "stripe", secret, offset, signatures, tamper }
//             signatures: list of "good" | "bad" | literal hex (default ["good"])
//             offset: seconds added to now for t=; tamper: change the body
//             after signing.
//   event:    { type, data } published through POST /v1/events.
//   expect:   { status, body (subset), bodyExcludes: [strings],
//               deliveries: how many requests the receiver must get,
//               delivery: { headers: {name: value | null (absent) | {re} | {hmacSha256}},
//                           body: {text} | {re} | {json: subset} },
//               record: { status, attempts, error (substring) } of the delivery,
//               gaps: [min seconds between attempt 1 and 2, 2 and 3, ...],
//               skip: reason (payload-filter: the delivery is skipped),
//               log: substring(s) logged during the case, logExcludes: [...] }
// Every delivery's webhook-signature is verified with the webhook's secret.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { startGateway } from './lib/gateway.mjs';
import { sleep } from './lib/expect.mjs';

const ROOT = new URL('../plugins/', import.meta.url).pathname;
const ASAN = process.env.HG_SANITIZE === '1' || process.env.HG_SANITIZE === 'ON' || process.env.HG_SANITIZE === 'true';
const WAIT = ASAN ? 20000 : 10000;
const MATCHER_TYPES = 120;

// --- a receiver: records every request, answers per path ---------------------

async function startReceiver() {
  const got = [];
  const statusFor = new Map();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() });
      res.writeHead(statusFor.get(req.url) ?? 200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    on: (path) => got.filter((g) => g.path === path),
    setStatus: (path, status) => statusFor.set(path, status),
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

// --- config ------------------------------------------------------------------

// A Lua literal for a JSON value (strings with decimal escapes only).
function lua(v) {
  if (v === null) return 'nil';
  if (typeof v === 'string') {
    return '"' + [...Buffer.from(v)].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c
      ? String.fromCharCode(b) : `\\${b}`)).join('') + '"';
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return '{ ' + v.map(lua).join(', ') + ' }';
  return '{ ' + Object.entries(v).map(([k, x]) => `[${lua(k)}] = ${lua(x)}`).join(', ') + ' }';
}

function configFor(gw = {}) {
  const types = [...(gw.eventTypes || [])];
  for (let i = 0; i < MATCHER_TYPES; i++) types.push(`case.t${i}`);
  let cfg = `webhooks = { allow_http = true, event_types = ${lua(types)} }\n`;
  cfg += 'delivery = { allow_cidrs = { "127.0.0.0/8" }, schedule = { 0, 0.2, 0.2 }, jitter = 0 }\n';
  if (gw.plugins) cfg += `plugins = ${lua(gw.plugins)}\n`;
  return cfg;
}

// --- comparisons -------------------------------------------------------------

// Asserts that `got` contains `want`: objects key by key, arrays index by index.
function assertSubset(got, want, where) {
  if (want !== null && typeof want === 'object') {
    assert.ok(got !== null && typeof got === 'object', `${where}: expected an object or array, got ${JSON.stringify(got)}`);
    if (Array.isArray(want)) {
      assert.ok(Array.isArray(got), `${where}: expected an array, got ${JSON.stringify(got)}`);
      assert.ok(got.length >= want.length, `${where}: expected at least ${want.length} items, got ${JSON.stringify(got)}`);
    }
    for (const [k, v] of Object.entries(want)) assertSubset(got[k], v, `${where}.${k}`);
    return;
  }
  assert.deepEqual(got, want, `${where}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}

function checkHeader(headers, name, want, body) {
  const got = headers[name.toLowerCase()];
  const where = `delivery header ${name}`;
  if (want === null) return assert.equal(got, undefined, `${where} must be absent`);
  assert.notEqual(got, undefined, `${where} is missing (headers: ${JSON.stringify(headers)})`);
  if (typeof want === 'string') return assert.equal(got, want, where);
  if (want.re) return assert.match(got, new RegExp(want.re), where);
  if (want.hmacSha256) {
    const { key, format = 'sha256=%s', encoding = 'hex' } = want.hmacSha256;
    const mac = crypto.createHmac('sha256', key).update(body).digest(encoding);
    return assert.equal(got, format.replace('%s', mac), where);
  }
  assert.fail(`${where}: unknown expectation ${JSON.stringify(want)}`);
}

// --- signing requests ----------------------------------------------------------

function signed(request) {
  const headers = { ...(request.headers || {}) };
  let body = request.body === undefined ? undefined
    : typeof request.body === 'string' ? request.body : JSON.stringify(request.body);
  const s = request.sign;
  if (s && s.scheme === 'github') {
    headers['X-Hub-Signature-256'] = 'sha256=' + crypto.createHmac('sha256', s.secret).update(body).digest('hex');
  } else if (s && s.scheme === 'stripe') {
    const t = Math.floor(Date.now() / 1000) + (s.offset || 0);
    const mac = (key) => crypto.createHmac('sha256', key).update(`${t}.${body}`).digest('hex');
    const sigs = (s.signatures || ['good']).map((x) => (x === 'good' ? mac(s.secret) : x === 'bad' ? mac('whsec_wrong') : x));
    headers['Stripe-Signature'] = `t=${t},` + sigs.map((x) => `v1=${x}`).join(',');
  } else if (s) {
    throw new Error(`unknown sign scheme ${s.scheme}`);
  }
  if (s && s.tamper) body = body.replace(/.$/, (c) => (c === '}' ? ' }' : c === 'x' ? 'y' : 'x'));
  return { headers, body };
}

// --- waiting -------------------------------------------------------------------

async function until(what, fn, ms = WAIT) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// The webhook's first delivery once it is final, with its attempts.
async function finalDelivery(gw, whId) {
  const d = await until('a final delivery', async () => {
    const res = await gw.request('GET', `/v1/webhooks/${whId}/deliveries`);
    assert.equal(res.status, 200, res.body);
    const x = res.json.deliveries[0];
    return x && x.status !== 'pending' ? x : null;
  });
  const res = await gw.request('GET', `/v1/webhooks/${whId}/deliveries/${d.id}`);
  assert.equal(res.status, 200, res.body);
  return res.json;
}

function lastError(detail) {
  const atts = detail.attempts || [];
  return atts.length ? atts[atts.length - 1].error || '' : '';
}

// --- one case ---------------------------------------------------------------------

let caseSeq = 0;

async function runCase(t, gw, rcv, c) {
  const ex = c.expect || {};
  const path = `/r/${caseSeq++}`;
  const logStart = gw.logs().length;
  rcv.setStatus(path, c.receiver?.status ?? 200);
  let wh;
  if (c.webhook) {
    const body = { url: rcv.url + path, events: c.webhook.events };
    if (c.webhook.plugins) body.plugins = c.webhook.plugins;
    if (c.webhook.transform) body.transform = c.webhook.transform;
    const res = await gw.request('POST', '/v1/webhooks', { body });
    if (c.webhook.status) {
      assert.equal(res.status, c.webhook.status, res.body);
      if (c.webhook.error) assertSubset(res.json, c.webhook.error, 'webhook error');
      return;
    }
    assert.equal(res.status, 201, res.body);
    wh = res.json;
    if (c.webhook.expect) {
      const got = await gw.request('GET', `/v1/webhooks/${wh.id}`);
      assertSubset(got.json, c.webhook.expect, 'webhook');
      for (const s of c.webhook.excludes || []) assert.ok(!got.body.includes(s), `the webhook shows ${s}: ${got.body}`);
    }
  }
  try {
    let res;
    if (c.request) {
      const { headers, body } = signed(c.request);
      res = await gw.request(c.request.method || 'POST', c.request.path, {
        headers, body, raw: true, key: c.request.auth ? gw.adminKey : null,
      });
    } else if (c.event) {
      res = await gw.request('POST', '/v1/events', { body: c.event });
    }
    if (res) {
      if (ex.status !== undefined) assert.equal(res.status, ex.status, `status: ${res.body}`);
      if (ex.body !== undefined) assertSubset(res.json, ex.body, 'body');
      for (const s of ex.bodyExcludes || []) assert.ok(!res.body.includes(s), `the answer shows ${s}: ${res.body}`);
    }

    let deliveries = ex.deliveries ?? (ex.delivery || ex.gaps ? 1 : undefined);
    if (ex.skip !== undefined) {
      // A skipped delivery is recorded `skipped` with its reason, and
      // nothing reaches the receiver.
      const d = await finalDelivery(gw, wh.id);
      assert.equal(d.status, 'skipped', JSON.stringify(d));
      assert.ok(JSON.stringify(d).includes(ex.skip), `the skipped delivery should name the reason: ${JSON.stringify(d)}`);
      assert.equal(rcv.on(path).length, 0, 'a skipped delivery was sent');
      deliveries = undefined;
    }
    if (deliveries !== undefined) {
      await until(`${deliveries} deliveries at ${path}`, () => rcv.on(path).length >= deliveries);
      if (ex.record) await finalDelivery(gw, wh.id);
      else await sleep(50); // an extra, unexpected delivery would show now
      assert.equal(rcv.on(path).length, deliveries, 'deliveries received');
    }
    const got = rcv.on(path);
    if (wh) {
      for (const g of got) new Webhook(wh.secret).verify(g.body, g.headers); // throws on a bad signature
    }
    if (ex.delivery) {
      const g = got[0];
      for (const [k, v] of Object.entries(ex.delivery.headers || {})) checkHeader(g.headers, k, v, g.body);
      const b = ex.delivery.body;
      if (b && b.text !== undefined) assert.equal(g.body, b.text, 'delivery body');
      if (b && b.re !== undefined) assert.match(g.body, new RegExp(b.re), 'delivery body');
      if (b && b.json !== undefined) assertSubset(JSON.parse(g.body), b.json, 'delivery body');
    }
    if (ex.gaps) {
      ex.gaps.forEach((min, i) => {
        const gap = (got[i + 1].at - got[i].at) / 1000;
        assert.ok(gap >= min * 0.9, `gap ${i + 1}: ${gap}s, expected at least ${min}s`);
        if (ex.maxGaps) assert.ok(gap <= ex.maxGaps[i], `gap ${i + 1}: ${gap}s, expected at most ${ex.maxGaps[i]}s`);
      });
    }
    if (ex.record) {
      const d = await finalDelivery(gw, wh.id);
      if (ex.record.status) assert.equal(d.status, ex.record.status, JSON.stringify(d));
      if (ex.record.attempts) assert.equal(d.attempts.length, ex.record.attempts, JSON.stringify(d));
      if (ex.record.error) assert.ok(lastError(d).includes(ex.record.error), `error: ${JSON.stringify(d)}`);
    }
    for (const s of [].concat(ex.log || [])) {
      await until(`the log line "${s}"`, () => gw.logs().slice(logStart).includes(s), 5000);
    }
    for (const s of ex.logExcludes || []) assert.ok(!gw.logs().includes(s), `the log shows ${s}`);
  } finally {
    if (wh) await gw.request('DELETE', `/v1/webhooks/${wh.id}`);
  }
}

// --- payload-filter's matcher, in bulk -----------------------------------------

// Each condition gets its own webhook and event type; a transform after the
// filter copies delivery.skip into a header, so the outcome is visible
// whether or not the dispatcher honours skip.
async function runMatcher(gw, rcv, cases) {
  assert.ok(cases.length <= MATCHER_TYPES);
  const recorder = 'function(d) d.headers["X-Skip"] = d.skip or "-" end';
  const hooks = await Promise.all(cases.map(async (c, i) => {
    const path = `/m/${i}`;
    const res = await gw.request('POST', '/v1/webhooks', {
      body: { url: rcv.url + path, events: [`case.t${i}`], plugins: [{ name: 'payload-filter', config: { condition: c.condition } }], transform: recorder },
    });
    if (c.error) {
      // A malformed condition is refused when the webhook is bound (the
      // plugin's check), naming the spot.
      assert.equal(res.status, 422, `${c.name}: ${res.body}`);
      assert.ok(res.json.error.details[0].message.includes(c.error.replace(/^payload-filter: /, '')), `${c.name}: ${res.body}`);
      assert.equal(res.json.error.details[0].field, 'plugins[0].config.condition', `${c.name}: ${res.body}`);
      return null;
    }
    assert.equal(res.status, 201, `${c.name}: ${res.body}`);
    return { id: res.json.id, path };
  }));
  await Promise.all(cases.map(async (c, i) => {
    if (c.error) return;
    const res = await gw.request('POST', '/v1/events', { body: { type: `case.t${i}`, data: c.data } });
    assert.equal(res.status, 202, `${c.name}: ${res.body}`);
  }));
  const failures = [];
  await Promise.all(cases.map(async (c, i) => {
    if (c.error) return;
    const d = await finalDelivery(gw, hooks[i].id);
    const got = rcv.on(hooks[i].path);
    let skipped;
    if (got.length > 0) skipped = got[0].headers['x-skip'] !== '-';
    else skipped = JSON.stringify(d).includes('payload-filter');
    if (c.error) {
      if (!(d.status === 'failed' && lastError(d).includes(c.error))) failures.push(`${c.name}: expected the error "${c.error}", got ${JSON.stringify(d)}`);
    } else if (skipped === c.match) {
      failures.push(`${c.name}: expected ${c.match ? 'a match' : 'no match'} (condition ${JSON.stringify(c.condition)}, data ${JSON.stringify(c.data)})`);
    }
  }));
  await Promise.all(hooks.filter(Boolean).map((h) => gw.request('DELETE', `/v1/webhooks/${h.id}`)));
  assert.deepEqual(failures, []);
}

// --- the suites ------------------------------------------------------------------

const folders = readdirSync(ROOT, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

let rcv;
before(async () => { rcv = await startReceiver(); });
after(async () => { await rcv.close(); });

for (const name of folders) {
  const file = join(ROOT, name, 'cases.json');
  const spec = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { cases: [] };
  const matcherFile = join(ROOT, name, 'matcher.json');
  const matcher = existsSync(matcherFile) ? JSON.parse(readFileSync(matcherFile, 'utf8')) : null;
  // Cases that share a gateway block share a gateway.
  const groups = new Map();
  for (const c of spec.cases) {
    const g = c.gateway || spec.gateway || {};
    const key = JSON.stringify(g);
    if (!groups.has(key)) groups.set(key, { gateway: g, cases: [] });
    groups.get(key).cases.push(c);
  }
  if (matcher) {
    const key = JSON.stringify(spec.gateway || {});
    if (!groups.has(key)) groups.set(key, { gateway: spec.gateway || {}, cases: [] });
    groups.get(key).matcher = matcher;
  }
  describe(`plugin ${name}`, () => {
    for (const [, group] of groups) {
      describe(`gateway ${JSON.stringify(group.gateway.plugins || {}).slice(0, 80)}`, () => {
        let gw;
        before(async () => { gw = await startGateway({ config: configFor(group.gateway) }); });
        after(async () => {
          if (!gw) return;
          const { code, signal } = await gw.stop();
          assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs().slice(-4000)}`);
        });
        for (const c of group.cases) it(c.name, (t) => runCase(t, gw, rcv, c));
        if (group.matcher) it(`matcher: ${group.matcher.cases.length} conditions`, () => runMatcher(gw, rcv, group.matcher.cases));
      });
    }
  });
}
