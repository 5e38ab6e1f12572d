// console.test.mjs: the delivery console (/console) against a real gateway
// and a real receiver, in a real browser (Debian's chromium driven by
// playwright-core).
//
// - Serving: the security headers on every answer, Content-Types, ETag and
//   304, unknown files 404, path traversal 400/404, `console = false` 404.
// - Installed (`cmake --install`): share/hookgate/console/ holds the files
//   and the installed binary serves from it; without it, a warning and 404.
// - The loop, through the page only: paste a key, create a webhook to the
//   receiver, publish, watch the delivery turn success (live refresh),
//   open it, replay it, rotate the secret (shown once), send a test.
// - Live refresh: the deliveries poll while the tab is visible, not while
//   it is hidden, and catch up when it is visible again.
// - A receiver answering HTML: the page shows it as text; no dialog, no img.
// - An organization key sees its organization's webhooks only.
// - Keyboard only: Tab to the key field, the nav, and the main buttons;
//   Enter works them; the focused element has a visible outline.
// - Screenshots of every view, light and dark, desktop and phone width,
//   into HG_CONSOLE_SCREENSHOTS (CMake sets build/console-screenshots) or
//   console-screenshots/ beside HOOKGATE_BIN, for a person to look at.
//
// Needs /usr/bin/chromium (scripts/install-deps --test) and `cd tests &&
// npm ci`. Under the sanitizer build the gateway is slower: deadlines
// scale with SLOW (lib/delivery.mjs); the browser itself is not sanitized.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { BIN, startGateway, tempDir } from './lib/gateway.mjs';
import { startReceiver, status as answer } from './lib/receiver.mjs';
import { deliveryConfig, SLOW } from './lib/delivery.mjs';
import { makeKey } from './lib/keys.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(join(ROOT, 'tests', 'package.json'));
const CHROMIUM = process.env.HG_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.HG_CONSOLE_SCREENSHOTS || join(dirname(BIN), 'console-screenshots');
const T = 15000 * SLOW; // a UI deadline

const CSP_NEEDS = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"];

let gw, rx, browser;

before(async () => {
  rx = await startReceiver();
  gw = await startGateway({ config: deliveryConfig() });
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (scripts/install-deps --test)`);
  const { chromium } = require('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  if (gw) {
    const { code, signal } = await gw.stop();
    // Under ASan a leak (of the console's files, say) fails the exit.
    assert.equal(code, 0, `gateway exited with ${code ?? signal}:\n${gw.logs().slice(-4000)}`);
    assert.doesNotMatch(gw.logs(), /AddressSanitizer|LeakSanitizer|runtime error:/);
  }
  await rx?.close();
});

// GET path with a raw (unnormalized) target.
function raw(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

function assertPolicy(res, what) {
  const csp = res.headers['content-security-policy'];
  assert.ok(csp, `${what}: no Content-Security-Policy`);
  for (const d of CSP_NEEDS) assert.ok(csp.includes(d), `${what}: CSP lacks ${d}: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, `${what}: CSP too loose: ${csp}`);
  assert.equal(res.headers['x-content-type-options'], 'nosniff', what);
  assert.equal(res.headers['referrer-policy'], 'no-referrer', what);
}

// A page with the key pasted through the form; collects dialogs and errors.
async function openConsole(key, { colorScheme = 'light', viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ colorScheme, viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  const seen = { dialogs: [], errors: [], csp: [] };
  page.on('dialog', (d) => { seen.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) seen.csp.push(m.text()); });
  await page.goto(`${gw.url}/console`);
  if (key) {
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Use key' }).click();
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
  }
  return { context, page, seen };
}

async function createInUi(page, url, events) {
  await page.getByLabel('Receiver URL').fill(url);
  await page.getByLabel('Event types').fill(events);
  await page.getByRole('button', { name: 'Create webhook' }).click();
  await page.locator('#new-secret').waitFor();
  const secret = await page.locator('#new-secret').textContent();
  await page.locator('#create-form').getByRole('link', { name: url }).click();
  await page.getByRole('heading', { name: 'Webhook', level: 1 }).waitFor();
  const id = decodeURIComponent(page.url().split('#/webhooks/')[1]);
  return { id, secret };
}

test('serving: headers, types, ETag, unknown files, traversal', async () => {
  const index = await raw(gw.port, '/console');
  assert.equal(index.status, 200);
  assert.match(index.headers['content-type'], /^text\/html/);
  assertPolicy(index, 'GET /console');
  assert.doesNotMatch(index.body, /<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i, 'no inline script or style');
  const types = { 'app.js': /^text\/javascript/, 'console.css': /^text\/css/, 'favicon.svg': /^image\/svg\+xml/, 'index.html': /^text\/html/ };
  for (const [f, re] of Object.entries(types)) {
    const r = await raw(gw.port, `/console/${f}`);
    assert.equal(r.status, 200, f);
    assert.match(r.headers['content-type'], re, f);
    assertPolicy(r, f);
    assert.ok(r.headers.etag, `${f}: an ETag`);
    assert.match(r.headers['cache-control'], /no-cache/);
    const again = await raw(gw.port, `/console/${f}`, { 'if-none-match': r.headers.etag });
    assert.equal(again.status, 304, `${f} revalidated`);
    assert.equal(again.body, '');
  }
  for (const p of ['/console/nope.js', '/console/.hidden', '/console/hookgate.db', '/console/index.htm']) {
    const r = await raw(gw.port, p);
    assert.equal(r.status, 404, p);
    assertPolicy(r, p);
  }
  for (const p of ['/console/..', '/console/%2e%2e', '/console/..%2f..%2fREADME.md', '/console/%2E%2E%2Fhookgate.lua',
    '/console/..%5cREADME.md', '/console/../README.md', '/console/../../etc/passwd', '/console/%2fetc%2fpasswd',
    '/console/lua%2fhookgate%2fruntime.lua', '/console/..%00.js']) {
    const r = await raw(gw.port, p);
    assert.ok(r.status === 400 || r.status === 404, `${p}: ${r.status}`);
    assert.doesNotMatch(r.body, /root:|hookgate\.db|admin_key|^# hookgate/m, p);
  }
  const head = await new Promise((resolve) => http.request({ host: '127.0.0.1', port: gw.port, path: '/console', method: 'HEAD', agent: false }, resolve).end());
  assert.equal(head.statusCode, 200);
});

test('console = false: /console and its files are 404', async () => {
  const off = await startGateway({ config: 'console = false\n' });
  try {
    for (const p of ['/console', '/console/index.html', '/console/app.js']) assert.equal((await raw(off.port, p)).status, 404, p);
    assert.equal((await raw(off.port, '/healthz')).status, 200);
  } finally {
    assert.equal((await off.stop()).code, 0, off.logs());
  }
});

test('installed: cmake --install lays out share/hookgate/console/, and the installed binary serves from it', async () => {
  const prefix = join(tempDir('hookgate-console-install-'), 'p');
  await promisify(execFile)('cmake', ['--install', dirname(BIN), '--prefix', prefix]);
  const installed = join(prefix, 'share/hookgate/console');
  const mine = readdirSync(join(ROOT, 'console')).filter((f) => /\.(html|js|css|svg|ico|json)$/.test(f)).sort();
  assert.deepEqual(readdirSync(installed).sort(), mine);
  // A file the checkout has and the installed tree has not: 404 proves
  // which folder the installed binary reads.
  rmSync(join(installed, 'publish.js'));
  const bin = join(prefix, 'bin/hookgate');
  let gwi = await startInstalled(bin);
  try {
    const app = await raw(gwi.port, '/console/app.js');
    assert.equal(app.status, 200);
    assert.equal(app.body, readFileSync(join(ROOT, 'console/app.js'), 'utf8'));
    assert.equal((await raw(gwi.port, '/console')).status, 200);
    assert.equal((await raw(gwi.port, '/console/publish.js')).status, 404);
  } finally {
    gwi.proc.kill('SIGTERM');
  }
  // Without its files the gateway still serves, says why, and /console is 404.
  rmSync(installed, { recursive: true });
  gwi = await startInstalled(bin);
  try {
    assert.equal((await raw(gwi.port, '/console')).status, 404);
    assert.equal((await raw(gwi.port, '/healthz')).status, 200);
    assert.match(gwi.out(), /console off: its files did not load/);
  } finally {
    gwi.proc.kill('SIGTERM');
  }
});

// Starts an installed binary on a free port with an empty config.
async function startInstalled(bin) {
  const dir = tempDir();
  writeFileSync(join(dir, 'c.lua'), '');
  const proc = spawn(bin, ['serve', '-c', join(dir, 'c.lua')], {
    env: { PATH: process.env.PATH, HOOKGATE_LISTEN: '127.0.0.1:0', HOOKGATE_STORE: join(dir, 'db'), HOOKGATE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`the installed gateway did not start:\n${out}`)); }, 15000 * SLOW);
    const on = (d) => {
      out += d;
      const m = out.match(/listening.*addr=\S*:(\d+)/);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    };
    proc.stdout.on('data', on);
    proc.stderr.on('data', on);
  });
  return { proc, port, out: () => out };
}

test('the loop in the browser: create, publish, delivered, open, replay, rotate, test', async () => {
  const { context, page, seen } = await openConsole(gw.adminKey);
  try {
    // The key never shows in the URL, and sits in sessionStorage only.
    assert.doesNotMatch(page.url(), /hg_test_admin/);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    const { id, secret } = await createInUi(page, rx.url('/loop'), 'user.created');
    assert.match(secret, /^whsec_/);

    await page.getByRole('link', { name: 'Publish an event' }).click();
    await page.getByLabel('Event type').fill('user.created');
    await page.getByLabel('Data (a JSON object)').fill('{"name":"Ada"}');
    await page.getByRole('button', { name: 'Publish event' }).click();
    await page.getByRole('heading', { name: 'Published' }).waitFor();
    assert.match(await page.locator('#status').textContent(), /published/);

    // The deliveries table refreshes by itself until the delivery succeeds.
    await page.goto(`${gw.url}/console#/webhooks/${id}`);
    const row = page.locator('#deliveries tbody tr').filter({ hasText: 'user.created' });
    await row.filter({ hasText: 'success' }).first().waitFor({ timeout: T * 2 });
    assert.equal(rx.requests.filter((r) => r.path === '/loop').length, 1);
    assert.equal(JSON.parse(rx.requests.find((r) => r.path === '/loop').body).data.name, 'Ada');

    // Filters: failed shows none; success shows it.
    await page.getByLabel('Status').selectOption('failed');
    await page.getByText('No deliveries match.').waitFor();
    await page.getByLabel('Status').selectOption('success');
    await row.first().waitFor();

    await row.first().getByRole('link').click();
    await page.getByRole('heading', { name: 'Delivery', level: 1 }).waitFor();
    await page.getByRole('heading', { name: /^Attempt 1/ }).waitFor();
    assert.match(await page.locator('.attempt').first().textContent(), /200/);
    // The event's body, and the attempt's request headers (the gateway's own in full).
    assert.match(await page.locator('#event-body').textContent(), /"name": "Ada"/);
    const sent = rx.requests.find((r) => r.path === '/loop');
    assert.match(await page.locator('.attempt').first().textContent(), new RegExp(sent.headers['webhook-signature'].replace(/[+/=]/g, '.')));
    await page.getByRole('button', { name: 'Replay delivery' }).click();
    await page.getByRole('heading', { name: /^Attempt 2/ }).waitFor({ timeout: T * 2 });
    assert.equal(rx.requests.filter((r) => r.path === '/loop').length, 2);

    // Rotate: the new secret is shown once.
    await page.getByRole('link', { name: /The webhook and its deliveries/ }).click();
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.locator('#new-secret').waitFor();
    const rotated = await page.locator('#new-secret').textContent();
    assert.match(rotated, /^whsec_/);
    assert.notEqual(rotated, secret);
    await page.getByRole('button', { name: 'Copy secret' }).waitFor();
    await page.getByRole('link', { name: /All webhooks/ }).click();
    await page.getByRole('link', { name: rx.url('/loop') }).click();
    await page.getByRole('button', { name: 'Rotate secret' }).waitFor();
    assert.equal(await page.locator('#new-secret').count(), 0, 'the secret is not shown again');
    assert.equal(await page.getByText(rotated).count(), 0);

    // A test send shows the receiver's answer.
    rx.on('/loop', answer(201, { body: 'test received' }));
    await page.getByRole('button', { name: 'Send test' }).click();
    await page.locator('#test-body').waitFor();
    const out = await page.locator('#test-out').textContent();
    assert.match(out, /statusCode\s*201/);
    assert.match(out, /durationMs\s*\d+/);
    assert.equal(await page.locator('#test-body').textContent(), 'test received');

    // The list shows the recent success rate.
    await page.getByRole('link', { name: /All webhooks/ }).click();
    const listRow = page.locator('#webhook-list tbody tr').filter({ hasText: rx.url('/loop') });
    await listRow.waitFor();
    // Two deliveries (the event's, replayed once, and the test), both successes.
    assert.match(await listRow.textContent(), /100% \(2\/2\)/);
    assert.match(await page.locator('main').textContent(), /latest 50 deliveries/);

    assert.deepEqual(seen.dialogs, []);
    assert.deepEqual(seen.errors, []);
    assert.deepEqual(seen.csp, [], 'no CSP violation');
    assert.doesNotMatch(gw.logs(), /hg_test_admin_key/, 'the key is never logged');
  } finally {
    await context.close();
  }
});

test('live refresh: the deliveries poll while the tab is visible and pause while it is hidden', async () => {
  const list = (await gw.request('GET', '/v1/webhooks')).json.webhooks;
  const wh = list.find((w) => w.url === rx.url('/loop')) || list[0];
  const { context, page, seen } = await openConsole(gw.adminKey);
  try {
    let polls = 0;
    page.on('request', (r) => { if (new URL(r.url()).pathname.endsWith('/deliveries')) polls++; });
    await page.goto(`${gw.url}/console#/webhooks/${wh.id}`);
    await page.locator('#live').filter({ hasText: 'Live' }).waitFor();
    const start = polls;
    await page.waitForTimeout(7000);
    assert.ok(polls - start >= 2, `${polls - start} refreshes in 7 s`);
    // The tab goes hidden: no more requests until it is visible again.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await page.locator('#live').filter({ hasText: 'Paused' }).waitFor();
    const hidden = polls;
    await page.waitForTimeout(7000);
    assert.equal(polls, hidden, 'no refresh while hidden');
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await page.locator('#live').filter({ hasText: 'Live' }).waitFor();
    await page.waitForTimeout(500);
    assert.ok(polls > hidden, 'catches up when visible again');
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('a receiver answering HTML is shown as text: no dialog, no img element', async () => {
  const evil = '<img src=x onerror=alert(1)>';
  rx.on('/evil', answer(200, { headers: { 'content-type': 'text/html' }, body: evil }));
  const { context, page, seen } = await openConsole(gw.adminKey);
  try {
    const { id } = await createInUi(page, rx.url('/evil'), 'user.created');
    // Metadata with markup, too: shown as text in the settings.
    await page.getByLabel('Metadata (JSON object of strings)').fill(JSON.stringify({ note: evil }));
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByText('Settings saved.').waitFor();
    await page.getByRole('button', { name: 'Send test' }).click();
    await page.locator('#test-body').waitFor();
    assert.equal(await page.locator('#test-body').textContent(), evil);
    const link = page.locator('#deliveries tbody a').first();
    await link.waitFor();
    await link.click();
    await page.locator('.response-body').first().waitFor();
    assert.equal(await page.locator('.response-body').first().textContent(), evil);
    await page.waitForTimeout(300);
    assert.equal(await page.locator('img').count(), 0, 'no img element');
    assert.deepEqual(seen.dialogs, [], 'no dialog');
    assert.deepEqual(seen.errors, []);
    assert.ok(id);
  } finally {
    await context.close();
  }
});

test('an organization key sees its organization only', async () => {
  const mk = (org, path) => gw.request('POST', '/v1/webhooks', { body: { url: rx.url(path), events: ['user.created'], organizationId: org } });
  assert.equal((await mk('org_a', '/org-a')).status, 201);
  assert.equal((await mk('org_b', '/org-b')).status, 201);
  assert.equal((await mk(null, '/org-none')).status, 201);
  const { key } = await makeKey(gw, 'webhooks:read,webhooks:write,events:publish', 'org_a');
  const { context, page, seen } = await openConsole(key);
  try {
    await page.locator('#webhook-list tbody tr').first().waitFor();
    const text = await page.locator('#webhook-list').textContent();
    assert.match(text, /\/org-a/);
    assert.doesNotMatch(text, /\/org-b|\/org-none|\/loop|\/evil/);
    assert.equal(await page.locator('#webhook-list tbody tr').count(), 1);
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('keyboard only: Tab reaches the key field and the main buttons, Enter works them, focus is visible', async () => {
  const { context, page, seen } = await openConsole(null);
  try {
    const focused = () => page.evaluate(() => {
      const el = document.activeElement;
      const cs = getComputedStyle(el);
      return { tag: el.tagName, id: el.id, text: el.textContent.trim(), label: el.labels?.[0]?.textContent || '', outline: cs.outlineStyle, width: cs.outlineWidth };
    });
    async function tabTo(pred, what, max = 60) {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press('Tab');
        const f = await focused();
        if (pred(f)) return f;
      }
      throw new Error(`Tab never reached ${what}`);
    }
    const keyField = await tabTo((f) => f.id === 'key-input', 'the key field');
    assert.notEqual(keyField.outline, 'none', 'focus is visible');
    await page.keyboard.type(gw.adminKey);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    // Into a webhook by keyboard, then the test button.
    const link = await tabTo((f) => f.tag === 'A' && f.text === rx.url('/loop'), 'the webhook link');
    assert.notEqual(link.outline, 'none');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Webhook', level: 1 }).waitFor();
    const send = await tabTo((f) => f.id === 'send-test', 'Send test');
    assert.equal(send.tag, 'BUTTON');
    assert.notEqual(send.outline, 'none');
    await page.keyboard.press('Enter');
    await page.locator('#test-body').waitFor();
    // Rotate, then the delete confirmation, which Cancel closes.
    await tabTo((f) => f.id === 'rotate', 'Rotate secret', 80);
    await page.keyboard.press('Enter');
    await page.locator('#new-secret').waitFor();
    await page.keyboard.press('Shift+Tab');
    await tabTo((f) => f.id === 'delete', 'Delete', 120);
    await page.keyboard.press('Enter');
    assert.equal((await focused()).id, 'delete-cancel', 'the confirmation takes the focus');
    await page.keyboard.press('Enter');
    assert.equal((await focused()).id, 'delete', 'Cancel gives it back');
    assert.ok(await page.locator('#confirm, .confirm').isHidden());
    // The nav, by keyboard.
    await tabTo((f) => f.tag === 'A' && f.text === 'Publish an event', 'the nav', 120);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Publish an event' }).waitFor();
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('basic accessibility: labels, table headers, one h1, a live region', async () => {
  const { context, page } = await openConsole(gw.adminKey);
  try {
    for (const view of ['#/webhooks', '#/publish']) {
      await page.goto(`${gw.url}/console${view}`);
      await page.locator('h1').first().waitFor();
      await page.waitForLoadState('networkidle');
      const problems = await page.evaluate(() => {
        const out = [];
        for (const el of document.querySelectorAll('input, select, textarea')) {
          if (el.type === 'hidden') continue;
          if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) out.push(`unlabelled ${el.tagName} ${el.name}`);
        }
        for (const b of document.querySelectorAll('button, a')) if (!b.textContent.trim() && !b.getAttribute('aria-label')) out.push(`nameless ${b.tagName}`);
        for (const t of document.querySelectorAll('table')) if (!t.querySelector('th')) out.push('a table without headers');
        if (document.querySelectorAll('h1').length !== 1) out.push(`${document.querySelectorAll('h1').length} h1`);
        if (!document.querySelector('[aria-live]')) out.push('no live region');
        if (document.querySelector('div[onclick], span[onclick], [style]')) out.push('inline handler or style');
        if (!document.documentElement.lang) out.push('no lang');
        return out;
      });
      assert.deepEqual(problems, [], view);
    }
  } finally {
    await context.close();
  }
});

test('screenshots of each view: light and dark, desktop and phone', async () => {
  mkdirSync(SHOTS, { recursive: true });
  const list = (await gw.request('GET', '/v1/webhooks')).json.webhooks;
  const wh = list.find((w) => w.url === rx.url('/loop'));
  const del = (await gw.request('GET', `/v1/webhooks/${wh.id}/deliveries`)).json.deliveries[0];
  const views = {
    webhooks: '#/webhooks',
    webhook: `#/webhooks/${wh.id}`,
    delivery: `#/webhooks/${wh.id}/deliveries/${del.id}`,
    publish: '#/publish',
  };
  const sizes = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } };
  for (const scheme of ['light', 'dark']) {
    for (const [size, viewport] of Object.entries(sizes)) {
      const { context, page, seen } = await openConsole(gw.adminKey, { colorScheme: scheme, viewport });
      try {
        for (const [name, hash] of Object.entries(views)) {
          await page.goto(`${gw.url}/console${hash}`);
          await page.locator('h1').first().waitFor();
          await page.waitForLoadState('networkidle');
          await page.waitForTimeout(200);
          // Nothing wider than the screen on a phone.
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          assert.ok(overflow <= 1, `${name} ${size}: ${overflow}px wider than the screen`);
          await page.screenshot({ path: join(SHOTS, `${name}-${scheme}-${size}.png`), fullPage: true });
        }
        assert.deepEqual(seen.errors, []);
      } finally {
        await context.close();
      }
    }
  }
  assert.ok(existsSync(join(SHOTS, 'delivery-dark-phone.png')));
});
