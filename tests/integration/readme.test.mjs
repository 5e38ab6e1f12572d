// The README's Quickstart, run as written, so that its commands cannot rot.
//
// Every shell block of the section is marked by an HTML comment before it:
//   <!-- quickstart-test -->            run in order in one bash session (a
//                                       user's second terminal: variables
//                                       carry over from block to block)
//   <!-- quickstart-test: receiver -->  a long-running receiver (a third
//                                       terminal): started in the background;
//                                       a later one replaces the earlier
//                                       (Ctrl-C, then the new command)
//   <!-- quickstart-test: gateway -->   `scripts/quickstart` (the first
//                                       terminal): started here as that
//                                       script starts it, without its
//                                       install and build steps
// The blocks run in a temp dir that stands for the repository's root
// (examples/ and build/ link to the real ones; data/ is its own), against
// a gateway on a free port: 127.0.0.1:8080 and :9000 in the text are
// replaced with the ports used, and nothing else is changed. Between the
// blocks the test checks what a user would look at.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { BIN, tempDir } from './lib/gateway.mjs';
import { SLOW, until } from './lib/delivery.mjs';

const ROOT = new URL('../../', import.meta.url).pathname;

// The Quickstart section's marked shell blocks, in order: { kind, code }.
export function quickstartBlocks(readme) {
  const start = readme.indexOf('\n## Quickstart\n');
  assert.ok(start >= 0, 'README.md has a "## Quickstart" section');
  const rest = readme.slice(start + 1);
  const next = rest.indexOf('\n## ', 1);
  const section = next < 0 ? rest : rest.slice(0, next);
  const blocks = [];
  const re = /(?:<!-- quickstart-test(?::\s*(\w+))?\s*-->\n)?```(\S*)\n([\s\S]*?)```/g;
  for (const m of section.matchAll(re)) {
    const [, kind, lang, code] = m;
    if (lang !== 'sh') {
      assert.equal(kind, undefined, `a quickstart-test mark is on a \`\`\`${lang} block:\n${code}`);
      continue;
    }
    // Every shell block runs: an unmarked one would rot unnoticed.
    assert.ok(m[0].startsWith('<!--'), `a sh block of the Quickstart is not marked <!-- quickstart-test -->:\n${code}`);
    blocks.push({ kind: kind || 'shell', code });
  }
  return blocks;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A child whose output is kept; waitFor(re) resolves with the first match
// in the output (from offset `from` on).
function track(proc, name, { group = false } = {}) {
  const t = { proc, name, out: '' };
  const on = (d) => { t.out += d.toString(); };
  proc.stdout.on('data', on);
  proc.stderr.on('data', on);
  t.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  t.waitFor = (re, { from = 0, timeout = 10000 } = {}) =>
    until(() => t.out.slice(from).match(re), { timeout, what: `${name} output ${re}; output:\n${t.out}` });
  // A detached child leads a process group of its own: a signal goes to the
  // whole group, as Ctrl-C in a terminal does.
  t.kill = (signal) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    try {
      if (group) process.kill(-proc.pid, signal);
      else proc.kill(signal);
    } catch {
      // Gone already.
    }
  };
  t.stop = async (signal = 'SIGTERM') => {
    t.kill(signal);
    return t.exited;
  };
  return t;
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
after(async () => {
  for (const c of children) await c.stop();
});

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

test('the README keeps its two set-up commands', () => {
  const setup = readme.slice(readme.indexOf('## Set up'), readme.indexOf('\n## Quickstart\n'));
  assert.match(setup, /```sh\nscripts\/quickstart\n```/);
  assert.match(setup, /```sh\nscripts\/test\n```/);
});

test('docs/configuration.md shows examples/quickstart.lua as it is', () => {
  const doc = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  const shown = doc.match(/The shipped example, `examples\/quickstart\.lua`:\n\n```lua\n([\s\S]*?)```/);
  assert.ok(shown, 'docs/configuration.md quotes examples/quickstart.lua');
  assert.equal(shown[1], readFileSync(join(ROOT, 'examples/quickstart.lua'), 'utf8'));
});

test('the README quickstart runs as written: webhook, verified delivery, delivery log, replay, rotation', async () => {
  const blocks = quickstartBlocks(readme);
  const kinds = blocks.map((b) => b.kind);
  assert.equal(kinds[0], 'gateway', 'the gateway starts first');
  assert.ok(kinds.filter((k) => k === 'receiver').length >= 2, 'the receiver starts, then restarts after rotation');

  // The gateway, as scripts/quickstart starts it: its admin key in
  // data/admin-key, exported as HOOKGATE_ADMIN_KEY, and `exec build/hookgate
  // serve -c examples/quickstart.lua` from the root.
  assert.equal(blocks[0].code.trim(), 'scripts/quickstart');
  const script = readFileSync(join(ROOT, 'scripts/quickstart'), 'utf8');
  assert.match(script, /\nexec build\/hookgate serve -c examples\/quickstart\.lua\n?$/);
  assert.match(script, /HOOKGATE_ADMIN_KEY=\$\(cat data\/admin-key\)/);

  const dir = tempDir('hookgate-readme-');
  symlinkSync(join(ROOT, 'examples'), join(dir, 'examples'));
  symlinkSync(dirname(BIN), join(dir, 'build')); // build/hookgate: the binary under test
  mkdirSync(join(dir, 'data'));
  const adminKey = 'hg_admin_readme_test_0123456789abcdef';
  writeFileSync(join(dir, 'data/admin-key'), adminKey + '\n', { mode: 0o600 });
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('HOOKGATE_') || k === 'WEBHOOK_SECRET' || k === 'PORT') delete env[k];

  const gw = track(spawn(join(dir, 'build/hookgate'), ['serve', '-c', 'examples/quickstart.lua'], {
    cwd: dir,
    env: { ...env, HOOKGATE_ADMIN_KEY: adminKey, HOOKGATE_LISTEN: '127.0.0.1:0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }), 'gateway');
  children.add(gw);
  const gwPort = Number((await gw.waitFor(/msg=listening addr=127\.0\.0\.1:(\d+)/, { timeout: 15000 }))[1]);
  // The quickstart config opens the SSRF guard to this machine, and says so.
  assert.match(gw.out, /level=warn msg="delivery.allow_cidrs opens the SSRF guard[^\n]*allow_cidrs=127\.0\.0\.1\/32,::1\/128/);
  const rxPort = await freePort();
  const ported = (code) => code.replaceAll('127.0.0.1:8080', `127.0.0.1:${gwPort}`)
    .replaceAll('127.0.0.1:9000', `127.0.0.1:${rxPort}`);

  // The second terminal: one bash session; each block is written to a file
  // and sourced (stdin from /dev/null, so no command can read the session's
  // own input), then a marker with the block's number says it is done. A
  // failing command ends the session (set -e): the test fails with it.
  const sh = track(spawn('bash', ['--noprofile', '--norc'], { cwd: dir, env, stdio: ['pipe', 'pipe', 'pipe'] }), 'shell');
  children.add(sh);
  sh.proc.stdin.write('set -eo pipefail\n');
  let n = 0;
  const run = async (code) => {
    const i = ++n;
    const file = join(dir, `block-${i}.sh`);
    writeFileSync(file, ported(code));
    const from = sh.out.length;
    sh.proc.stdin.write(`source ${file} </dev/null\necho "__block ${i} done__"\n`);
    const done = Promise.race([
      sh.waitFor(new RegExp(`__block ${i} done__\\n`), { from, timeout: 20000 }),
      sh.exited.then((e) => { throw new Error(`the shell ended (${JSON.stringify(e)}) in block ${i}:\n${code}\n${sh.out}`); }),
    ]);
    await done;
    return sh.out.slice(from).replace(new RegExp(`__block ${i} done__\\n[\\s\\S]*$`), '');
  };

  let rx = null; // the receiver running now
  let rxFile = null;
  const startReceiver = async (code) => {
    if (rx) {
      await rx.stop('SIGINT'); // Ctrl-C
      children.delete(rx);
    }
    const file = join(dir, `receiver-${n}.sh`);
    writeFileSync(file, ported(code));
    rxFile = file;
    rx = track(spawn('bash', ['--noprofile', '--norc', file], { cwd: dir, env: { ...env, PORT: String(rxPort) },
      stdio: ['ignore', 'pipe', 'pipe'], detached: true }), 'receiver', { group: true });
    children.add(rx);
    await rx.waitFor(new RegExp(`receiver listening on http://127\\.0\\.0\\.1:${rxPort}/`));
  };

  const json = (out) => JSON.parse(out.trim().split('\n').at(-1));
  const state = {};
  // What each shell block is for, told by its command, and what it shows.
  const checks = [
    [/POST http:\S+\/v1\/webhooks \\/, (out) => {
      const wh = json(out);
      assert.match(wh.id, /^wh_/);
      assert.match(wh.secret, /^whsec_/);
      assert.equal(wh.url, `http://127.0.0.1:${rxPort}/hooks`);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'data/webhook.json'), 'utf8')), wh);
      state.wh = wh;
    }],
    [/\/v1\/events/, async (out) => {
      const evt = json(out);
      assert.match(evt.id, /^evt_/);
      assert.equal(evt.deliveries, 1);
      const from = state.rxFrom;
      // It arrives, verified, and its attempt is logged.
      const line = (await rx.waitFor(new RegExp(`^verified id=${evt.id} type=(\\S+) data=(.*)$`, 'm'), { from }));
      const body = JSON.parse(readFileSync(join(dir, `block-${n}.sh`), 'utf8').match(/-d '(.*)'/)[1]);
      assert.equal(line[1], body.type);
      assert.deepEqual(JSON.parse(line[2]), body.data);
      await gw.waitFor(new RegExp(`level=info msg="delivery attempt" webhook=${state.wh.id} delivery=del_\\S+ ` +
        `event=${evt.id} attempt=1 outcome=204 duration_ms=\\d+\\n`));
      assert.doesNotMatch(rx.out, /rejected/);
      state.events = [...(state.events || []), evt.id];
    }],
    [/\/deliveries -H/, (out) => {
      const list = json(out);
      assert.equal(list.deliveries.length, 1);
      const d = list.deliveries[0];
      assert.equal(d.eventId, state.events[0]);
      assert.equal(d.status, 'success');
      assert.equal(d.statusCode, 204);
      assert.equal(d.attempts, 1);
      state.delivery = d.id;
    }],
    [/\/replay/, async (out) => {
      assert.deepEqual(json(out), { id: state.delivery, status: 'pending' });
      const evt = state.events[0];
      // The same webhook-id again, verified, and noticed as a repeat.
      await rx.waitFor(new RegExp(`^verified id=${evt} type=user\\.created data=.*\\(again`, 'm'));
      assert.equal(rx.out.match(new RegExp(`^verified id=${evt} `, 'gm')).length, 2);
      await gw.waitFor(new RegExp(`msg="delivery attempt" webhook=${state.wh.id} delivery=${state.delivery} ` +
        `event=${evt} attempt=2 outcome=204`));
    }],
    [/rotate-secret/, (out) => {
      const rot = json(out);
      assert.match(rot.secret, /^whsec_/);
      assert.notEqual(rot.secret, state.wh.secret);
      state.rotated = rot.secret;
    }],
    [/keys create/, (out) => {
      assert.match(out, /^hg_\S+$/m);
      assert.match(out, /created key key_/);
    }],
  ];

  for (const b of blocks.slice(1)) {
    if (b.kind === 'receiver') {
      await startReceiver(b.code);
      continue;
    }
    assert.equal(b.kind, 'shell', `unknown quickstart-test kind: ${b.kind}`);
    state.rxFrom = rx ? rx.out.length : 0; // what the receiver prints from now on
    const out = await run(b.code);
    const check = checks.find(([re]) => re.test(b.code));
    assert.ok(check, `no check for this block (add one to readme.test.mjs):\n${b.code}`);
    await check[1](out);
  }

  // The last receiver knew only the rotated secret: the event published
  // after the rotation verified with it.
  assert.ok(state.rotated, 'the secret was rotated');
  assert.match(readFileSync(rxFile, 'utf8'), /rotation\.json/);
  assert.equal(state.events.length, 2, 'an event before the rotation, one after');
  assert.match(rx.out, new RegExp(`^verified id=${state.events[1]} `, 'm'));
  assert.doesNotMatch(rx.out, /rejected/);
  // The gateway never logged a secret.
  for (const s of [state.wh.secret, state.rotated]) assert.ok(!gw.out.includes(s.slice(6)), 'a secret in the log');
  assert.ok(!gw.out.includes(adminKey), 'the admin key in the log');

  sh.proc.stdin.end();
  assert.deepEqual(await sh.exited, { code: 0, signal: null });
  await rx.stop('SIGINT');
  assert.deepEqual(await gw.stop('SIGINT'), { code: 0, signal: null });
});
