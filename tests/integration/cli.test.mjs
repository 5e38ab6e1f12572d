// cli.test.mjs: the hookgate command line as an operator uses it.
//
// --help and version; `check` on good and bad files (FILE:LINE: KEY on
// stderr, exit 1); the environment overrides; `keys create/list/revoke`
// against a store, and a created key against a running gateway: it
// authenticates, its scopes limit it, and revoking it locks it out within
// the key cache's 5 s.
//
// Run from the repository root: node --test tests/integration/cli.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, ADMIN_KEY, startGateway, tempDir } from './lib/gateway.mjs';
import { storeFor } from './lib/store.mjs';

const SLOW = process.env.HG_SANITIZE === '1' || process.env.HG_SANITIZE === 'ON' || /asan/.test(BIN) ? 3 : 1;
const T = (ms) => ms * SLOW;

// The environment without any HOOKGATE_* variable of the caller's.
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HOOKGATE_')) env[k] = v;
  return { ...env, ...extra };
}

// Runs hookgate with args; resolves with {code, signal, stdout, stderr}.
function hookgate(args, { env = {}, timeout = T(15000) } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

// Writes a config file into a fresh temp dir; returns its path.
function configFile(text, name = 'hookgate.lua', dir = tempDir()) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const gateways = [];
after(async () => {
  await Promise.all(gateways.map((gw) => gw.stop('SIGKILL')));
});

async function sleep(ms) {
  await new Promise((r) => setTimeout(r, ms));
}

// ---- help and version ----

test('--help: exit 0 and the commands listed on stdout', async () => {
  for (const flag of ['--help', '-h']) {
    const r = await hookgate([flag]);
    assert.equal(r.code, 0, r.stderr);
    for (const cmd of ['serve', 'check', 'keys create', 'keys list', 'keys revoke', 'routes', 'version'])
      assert.ok(r.stdout.includes(`hookgate ${cmd}`), `--help does not list "${cmd}":\n${r.stdout}`);
  }
});

test('no command: usage on stderr, exit 2; an unknown command: exit 2', async () => {
  let r = await hookgate([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Usage:/);
  r = await hookgate(['frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});

test('version and --version print "hookgate X.Y.Z"', async () => {
  for (const arg of ['version', '--version']) {
    const r = await hookgate([arg]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^hookgate \d+\.\d+\.\d+\n$/);
  }
});

// ---- check ----

const GOOD = `-- a config using most sections
listen = { "127.0.0.1:0" }
store = "./data/hookgate.db"
log = { level = "info", format = "logfmt", access = true }
http = {
  max_body = 4096,
  header_timeout = 0.5,
}
webhooks = { allow_http = true, event_types = { "invoice.paid" } }
`;

test('check: a good file prints "FILE: ok" and exits 0', async () => {
  const file = configFile(GOOD, 'good.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${file}: ok\n`);
  // --config works the same; an empty file is a valid config.
  const empty = configFile('', 'empty.lua');
  const e = await hookgate(['check', '--config', empty]);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.stdout, `${empty}: ok\n`);
});

test('check: without -c is a usage error (exit 2)', async () => {
  const r = await hookgate(['check']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /-c FILE/);
});

test('check: an unknown top-level key names FILE:LINE and the key', async () => {
  const file = configFile('listen = "127.0.0.1:0"\n\n-- a typo:\nlsiten = "127.0.0.1:1"\n', 'typo.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.includes(`${file}:4: lsiten: unknown key`), r.stderr);
  assert.match(r.stderr, /known here: listen, tls, store/);
});

test('check: an unknown nested key names the line of the key itself', async () => {
  const file = configFile('log = { level = "info" }\n\nhttp = {\n  max_body = 10,\n  max_headrs = 5,\n}\n', 'nested.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.ok(r.stderr.includes(`${file}:5: http.max_headrs: unknown key`), r.stderr);
  assert.match(r.stderr, /max_headers/);
});

test('check: a value of the wrong type or out of range names FILE:LINE and the key', async () => {
  let file = configFile('\nhttp = { max_body = "big" }\n', 'type.lua');
  let r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`${file}:2: http.max_body:`), r.stderr);
  file = configFile('log = {\n  level = "loud",\n}\n', 'level.lua');
  r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`${file}:2: log.level:`), r.stderr);
  assert.match(r.stderr, /loud/);
  file = configFile('http = { header_timeout = 0 }\n', 'range.lua');
  r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`${file}:1: http.header_timeout:`), r.stderr);
});

test('check: a Lua syntax error exits 1 with FILE:LINE', async () => {
  const file = configFile('log = {\n  level = "info"\n\nhttp = {}\n', 'syntax.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`${file}:4:`), r.stderr);
  // A runtime error in the file is reported the same way.
  const rt = configFile('local x = nil\nlisten = x.y\n', 'runtime.lua');
  const r2 = await hookgate(['check', '-c', rt]);
  assert.equal(r2.code, 1);
  assert.ok(r2.stderr.includes(`${rt}:2:`), r2.stderr);
});

test('check: errors name the whole path of a long config path, not a cut one', async () => {
  const dir = join(tempDir(), 'a-rather-long-directory-name', 'for-the-config-files-of-this-test');
  mkdirSync(dir, { recursive: true });
  const syntax = configFile('log = {\n  level = "info"\n\nhttp = {}\n', 'syntax.lua', dir);
  assert.ok(syntax.length > 60, 'the path must be longer than Lua\'s LUA_IDSIZE');
  let r = await hookgate(['check', '-c', syntax]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.startsWith(`hookgate: ${syntax}:4: `), r.stderr);
  const rt = configFile('local x = nil\nlisten = x.y\n', 'runtime.lua', dir);
  r = await hookgate(['check', '-c', rt]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.startsWith(`hookgate: ${rt}:2: `), r.stderr);
  const typo = configFile('\nlsiten = 1\n', 'typo.lua', dir);
  r = await hookgate(['check', '-c', typo]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.startsWith(`hookgate: ${typo}:2: lsiten: unknown key`), r.stderr);
});

test('check: error() with a table still names the file', async () => {
  const file = configFile('error({})\n', 'errtable.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(file), r.stderr);
  assert.doesNotMatch(r.stderr, /\(null\)/);
});

test('check: a missing file exits 1 and names it', async () => {
  const file = join(tempDir(), 'missing.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(file), r.stderr);
});

// ---- check: problems found after the file has run, each at FILE:LINE ----
//
// The keys' values are checked by the loader (above); event types, the
// allow-list, the CA file, the plugins and their bindings are checked after
// it, and each problem still names the line of the key it is about (the
// top-level assignment's line from Lua, then the nested names searched in
// its text), or the plugin file's own line.

const PLUGINS = fileURLToPath(new URL('../../plugins', import.meta.url));

// Every line of stderr is one problem in the "hookgate: " form: no log line
// repeats one.
function problems(stderr) {
  const lines = stderr.split('\n').filter((l) => l !== '');
  for (const l of lines) assert.ok(l.startsWith('hookgate: '), `not a problem line: ${JSON.stringify(l)}\n${stderr}`);
  return lines.map((l) => l.slice('hookgate: '.length));
}

test('check: bad event types, allow-list entries and CA file name the line of their key', async () => {
  const file = configFile([
    'listen = "127.0.0.1:0"', //                         1
    'webhooks = {', //                                    2
    '  allow_http = true,', //                            3
    '  event_types = { "invoice.paid", "Bad Type" },', // 4
    '}', //                                               5
    '', //                                                6
    'delivery = {', //                                    7
    '  timeout = 5,', //                                  8
    '  allow_cidrs = {', //                               9
    '    "10.0.0.0/8",', //                              10
    '    "300.1.2.3/8",', //                             11
    '  },', //                                           12
    '  ca_file = "/nonexistent/ca.pem",', //             13
    '}', //                                              14
    '',
  ].join('\n'), 'after.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  const p = problems(r.stderr);
  assert.ok(p.some((l) => l.startsWith(`${file}:4: webhooks.event_types: `) && l.includes('Bad Type')), r.stderr);
  assert.ok(p.some((l) => l.startsWith(`${file}:9: delivery.allow_cidrs: `) && l.includes('300.1.2.3')), r.stderr);
  assert.ok(p.includes(`${file}:13: delivery.ca_file: cannot read /nonexistent/ca.pem`), r.stderr);
  assert.equal(p.length, 3, r.stderr);
});

test('check: bad global bindings name the line of the plugin or of its setting', async () => {
  const file = configFile([
    'listen = "127.0.0.1:0"', //                                               1
    'local eu = { "FR", "DE" }', //                                            2
    'plugins = {', //                                                          3
    '  backoff = true,', //                                                    4
    '  ["custom-headers"] = {', //                                             5
    '    headers = {', //                                                      6
    '      ["X-Source"] = "hookgate",', //                                     7
    '      ["Content-Type"] = "text/plain",', //                               8
    '    },', //                                                               9
    '  },', //                                                                10
    '  nope = true,', //                                                      11
    '  ["payload-filter"] = {', //                                            12
    '    condition = { field = "data.country", op = "within", value = eu },', // 13
    '  },', //                                                                14
    '}', //                                                                   15
    '',
  ].join('\n'), 'bindings.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const p = problems(r.stderr);
  assert.ok(p.some((l) => l.startsWith(`${file}:8: plugins.custom-headers.headers.Content-Type: `)), r.stderr);
  assert.ok(p.some((l) => l.startsWith(`${file}:11: plugins.nope.name: `) && l.includes('no plugin named')), r.stderr);
  assert.ok(p.some((l) => l.startsWith(`${file}:13: plugins.payload-filter.condition: `) && l.includes('within')), r.stderr);
  assert.equal(p.length, 3, r.stderr);
});

test('check: a plugin that does not load names its own file and line', async () => {
  const dir = tempDir();
  const plugins = join(dir, 'plugins');
  // A syntax error: Lua names the chunk "acme-tag/init.lua"; check names the file.
  mkdirSync(join(plugins, 'acme-tag'), { recursive: true });
  writeFileSync(join(plugins, 'acme-tag', 'init.lua'),
    'return {\n  name = "acme-tag",\n  version = "1.0.0",\n  transform = function(d)\n    d.headers["X-Acme"] = = "1"\n  end,\n}\n');
  // An error when its top-level code runs.
  mkdirSync(join(plugins, 'boom'), { recursive: true });
  writeFileSync(join(plugins, 'boom', 'init.lua'), 'local t = nil\n\nlocal x = t.field\nreturn { name = "boom", version = "1" }\n');
  // A bad table: a misspelled phase, found at the line of the key.
  mkdirSync(join(plugins, 'typo'), { recursive: true });
  writeFileSync(join(plugins, 'typo', 'init.lua'),
    'local M = {}\nreturn {\n  name = "typo",\n  version = "1.0.0",\n\n  transfrom = function(d) end,\n}\n');
  const file = configFile(`lua = {\n  plugin_paths = { ${JSON.stringify(PLUGINS)}, ${JSON.stringify(plugins)} },\n}\n`, 'load.lua', dir);
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const p = problems(r.stderr);
  const at = (name) => join(plugins, name, 'init.lua');
  assert.ok(p.some((l) => l.startsWith(`${at('acme-tag')}:5: plugin acme-tag: `) && l.includes("near '='")), r.stderr);
  assert.ok(p.some((l) => l.startsWith(`${at('boom')}:3: plugin boom: `) && l.includes('index')), r.stderr);
  assert.ok(p.some((l) => l.startsWith(`${at('typo')}:6: plugin typo: `) && l.includes("unknown key 'transfrom'")), r.stderr);
  assert.equal(p.length, 3, r.stderr);
});

test('check: a bad lua.plugin_paths entry, a short admin_key and a half-set tls name their line', async () => {
  let file = configFile('listen = "127.0.0.1:0"\nlua = {\n  plugin_paths = "/nonexistent/plugins",\n}\n', 'paths.lua');
  let r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.deepEqual(problems(r.stderr), [`${file}:3: lua.plugin_paths: cannot open /nonexistent/plugins`]);

  file = configFile('listen = "127.0.0.1:0"\n\nlua = {\n  lib_path = "/nonexistent",\n}\n', 'lib.lua');
  r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lib = problems(r.stderr);
  assert.ok(lib.length >= 1 && lib.every((l) => l.startsWith(`${file}:4: lua.lib_path: cannot read /nonexistent/hookgate/`)), r.stderr);

  file = configFile('listen = "127.0.0.1:0"\n\nadmin_key = "short"\n', 'admin.lua');
  r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.deepEqual(problems(r.stderr), [`${file}:3: admin_key: must be at least 16 characters`]);
  // Set by the environment, the value is not the file's: the variable is named.
  r = await hookgate(['check', '-c', file], { env: { HOOKGATE_ADMIN_KEY: 'short-too' } });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.deepEqual(problems(r.stderr), ['HOOKGATE_ADMIN_KEY: must be at least 16 characters']);

  file = configFile('listen = "127.0.0.1:0"\ntls = {\n  cert = "/x/cert.pem",\n  listen = "127.0.0.1:0",\n}\n', 'tls.lua');
  r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.deepEqual(problems(r.stderr), [`${file}:4: tls.listen: needs both cert and key (tls.cert, tls.key)`]);
});

test('check: a nested key is found inside its own assignment, also in ["quoted"] form and after a same-named key elsewhere', async () => {
  const file = configFile([
    'http = { max_body = 1048576 }', //          1
    '-- delivery = { timeout = "no" }', //         2 (a comment)
    'delivery = {', //                             3
    '  connect_timeout = 5,', //                   4
    '  ["timeout"] = "15",', //                    5
    '}', //                                        6
    '',
  ].join('\n'), 'nested2.lua');
  const r = await hookgate(['check', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.ok(r.stderr.includes(`${file}:5: delivery.timeout: must be a number`), r.stderr);
});

test('check: the file can read the environment with env()', async () => {
  const file = configFile('log = { level = env("HG_TEST_LEVEL", "info") }\n', 'env.lua');
  let r = await hookgate(['check', '-c', file], { env: { HG_TEST_LEVEL: 'warn' } });
  assert.equal(r.code, 0, r.stderr);
  r = await hookgate(['check', '-c', file], { env: { HG_TEST_LEVEL: 'noisy' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /log\.level: .*noisy/);
});

// ---- environment overrides ----

test('HOOKGATE_LOG_LEVEL / HOOKGATE_LOG_FORMAT=bogus: a clear error, exit 1', async () => {
  const file = configFile(GOOD, 'good.lua');
  let r = await hookgate(['check', '-c', file], { env: { HOOKGATE_LOG_LEVEL: 'bogus' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /HOOKGATE_LOG_LEVEL: .*debug, info, warn, error.*"bogus"/);
  r = await hookgate(['check', '-c', file], { env: { HOOKGATE_LOG_FORMAT: 'xml' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /HOOKGATE_LOG_FORMAT: .*"xml"/);
  // serve refuses the same way, before starting anything.
  r = await hookgate(['serve', '-c', file], { env: { HOOKGATE_LOG_LEVEL: 'bogus' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /HOOKGATE_LOG_LEVEL/);
  // An empty value is ignored.
  r = await hookgate(['check', '-c', file], { env: { HOOKGATE_LOG_LEVEL: '' } });
  assert.equal(r.code, 0, r.stderr);
});

test('HOOKGATE_LOG_LEVEL overrides log.level for serve', async () => {
  // At warn the "listening" info line is not logged, so the test picks the
  // port itself.
  const dir = tempDir();
  const port = await freePort();
  const g2 = spawn(BIN, ['serve', '-c', configFile('log = { level = "debug" }\n', 'lvl.lua', dir)], {
    env: cleanEnv({ HOOKGATE_LOG_LEVEL: 'warn', HOOKGATE_LISTEN: `127.0.0.1:${port}`, HOOKGATE_STORE: join(dir, 'db2'), HOOKGATE_ADMIN_KEY: ADMIN_KEY }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  g2.stderr.on('data', (d) => { out += d; });
  g2.stdout.on('data', (d) => { out += d; });
  const exited = new Promise((r) => g2.on('exit', (code, signal) => r({ code, signal })));
  try {
    await waitFor(async () => (await httpGet(port, '/healthz')).status === 200, T(10000), 'the gateway to answer');
    g2.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null });
    assert.doesNotMatch(out, /level=(info|debug)/, out);
  } finally {
    g2.kill('SIGKILL');
  }
});

test('HOOKGATE_LISTEN replaces the file\'s listen list', async () => {
  // The file names a port that is taken: serving there would fail.
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  const taken = blocker.address().port;
  try {
    const config = `listen = { "127.0.0.1:${taken}" }\n`;
    const gw = await startGateway({ config, env: { HOOKGATE_LISTEN: '127.0.0.1:0,127.0.0.1:0' } });
    gateways.push(gw);
    // The launcher returns at the first "listening" line; wait for both.
    const addrs = await waitFor(() => {
      const found = [...gw.logs().matchAll(/msg=listening addr=(\S+)/g)].map((m) => m[1]);
      return found.length >= 2 && found;
    }, T(5000), 'two listening lines');
    assert.equal(addrs.length, 2, gw.logs());
    for (const a of addrs) {
      const port = Number(a.slice(a.lastIndexOf(':') + 1));
      assert.notEqual(port, taken);
      assert.equal((await httpGet(port, '/healthz')).status, 200);
    }
    // Without the override the file's address is used, and is taken.
    const dir = tempDir();
    const r = await hookgate(['serve', '-c', configFile(config, 'hookgate.lua', dir)], {
      env: { HOOKGATE_STORE: join(dir, 'db'), HOOKGATE_ADMIN_KEY: ADMIN_KEY },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${taken}: address already in use`));
  } finally {
    blocker.close();
  }
});

test('HOOKGATE_LISTEN=bogus: serve exits 1 with a clear error', async () => {
  const dir = tempDir();
  const r = await hookgate(['serve', '-c', configFile('', 'hookgate.lua', dir)], {
    env: { HOOKGATE_LISTEN: 'bogus', HOOKGATE_STORE: join(dir, 'db') },
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /listen bogus: invalid address/);
});

// ---- keys ----

// A config file plus the store its keys commands share with a gateway.
function keyEnv() {
  const dir = tempDir();
  const cfg = configFile('', 'hookgate.lua', dir);
  const env = { HOOKGATE_STORE: storeFor(dir) };
  return { dir, cfg, env };
}

async function createKey(cfg, env, scopes, extra = []) {
  const r = await hookgate(['keys', 'create', '-c', cfg, '--scopes', scopes, ...extra], { env });
  assert.equal(r.code, 0, r.stderr);
  // Exactly one line on stdout: the key.
  assert.match(r.stdout, /^hg_[A-Za-z0-9_-]{20,}\n$/, `stdout is not one key line: ${JSON.stringify(r.stdout)}`);
  const m = /created key (key_[a-z0-9]+)/.exec(r.stderr);
  assert.ok(m, `no key id on stderr: ${r.stderr}`);
  assert.ok(!r.stderr.includes(r.stdout.trim()), 'the key is on stderr too');
  return { key: r.stdout.trim(), id: m[1] };
}

test('keys create / list / revoke', async () => {
  const { cfg, env } = keyEnv();
  const a = await createKey(cfg, env, 'webhooks:read');
  const b = await createKey(cfg, env, 'webhooks:read,webhooks:write', ['--org', 'org_1']);
  assert.notEqual(a.key, b.key);

  let r = await hookgate(['keys', 'list', '-c', cfg], { env });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^ID\s+PREFIX\s+SCOPES\s+ORGANIZATION\s+CREATED\s+REVOKED$/);
  const row = (id) => lines.find((l) => l.startsWith(id + ' '));
  assert.ok(row(a.id), r.stdout);
  assert.ok(row(b.id), r.stdout);
  assert.match(row(a.id), /\swebhooks:read\s+-\s+\S+Z\s+-$/);
  assert.match(row(b.id), /\swebhooks:read,webhooks:write\s+org_1\s/);
  for (const k of [a.key, b.key]) {
    assert.ok(!r.stdout.includes(k), 'keys list shows a key');
    assert.ok(!r.stderr.includes(k), 'keys list shows a key');
  }

  r = await hookgate(['keys', 'revoke', '-c', cfg, a.id], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stderr.includes(a.id));
  r = await hookgate(['keys', 'list', '-c', cfg], { env });
  assert.match(r.stdout.split('\n').find((l) => l.startsWith(a.id)), /\d{4}-\d\d-\d\dT\S+Z$/, 'no revocation time');
  assert.match(r.stdout.split('\n').find((l) => l.startsWith(b.id)), /\s-$/);

  // Revoking again, or an unknown id, exits 1.
  r = await hookgate(['keys', 'revoke', '-c', cfg, a.id], { env });
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(a.id), r.stderr);
  r = await hookgate(['keys', 'revoke', '-c', cfg, 'key_00000000000000000000000000'], { env });
  assert.equal(r.code, 1);
});

test('keys: usage errors exit 2 with a message', async () => {
  const { cfg, env } = keyEnv();
  for (const scopes of [undefined, '', 'webhooks:delete', 'webhooks:read,,admin', 'WEBHOOKS:READ']) {
    const args = ['keys', 'create', '-c', cfg];
    if (scopes !== undefined) args.push('--scopes', scopes);
    const r = await hookgate(args, { env });
    assert.equal(r.code, 2, `--scopes ${JSON.stringify(scopes)}: exit ${r.code}\n${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, '', 'a key was printed');
    assert.match(r.stderr, /--scopes must list one or more of webhooks:read, webhooks:write, events:publish, admin/);
  }
  let r = await hookgate(['keys', 'create', '-c', cfg, '--scopes', 'admin', '--org', 'bad org!'], { env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--org/);
  r = await hookgate(['keys'], { env });
  assert.equal(r.code, 2);
  r = await hookgate(['keys', 'delete', '-c', cfg], { env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'delete'/);
  r = await hookgate(['keys', 'revoke', '-c', cfg], { env });
  assert.equal(r.code, 2);
  // None of these created anything.
  r = await hookgate(['keys', 'list', '-c', cfg], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 1, r.stdout);
});

test('a key from `keys create` works against a running gateway; scopes hold; revocation bites within ~6 s', { timeout: T(40000) }, async () => {
  const dir = tempDir();
  const gw = await startGateway({ dir, config: '' });
  gateways.push(gw);
  const env = { HOOKGATE_STORE: storeFor(dir) };
  const cfg = configFile('', 'keys.lua', dir);
  // Created beside the running gateway, in the same store.
  const reader = await createKey(cfg, env, 'webhooks:read');
  const writer = await createKey(cfg, env, 'webhooks:write');

  let res = await gw.request('GET', '/v1/webhooks', { key: reader.key });
  assert.equal(res.status, 200, res.body);
  assert.ok(Array.isArray(res.json.webhooks), res.body);

  const hook = { url: 'https://example.com/hooks', events: ['user.created'] };
  res = await gw.request('POST', '/v1/webhooks', { key: reader.key, body: hook });
  assert.equal(res.status, 403, res.body);
  assert.equal(res.json.error.type, 'forbidden');
  assert.ok(Array.isArray(res.json.error.details));
  res = await gw.request('POST', '/v1/webhooks', { key: writer.key, body: hook });
  assert.equal(res.status, 201, res.body);

  // No key, and a made-up key, are 401.
  res = await gw.request('GET', '/v1/webhooks', { key: null });
  assert.equal(res.status, 401);
  assert.equal(res.json.error.type, 'unauthorized');
  res = await gw.request('GET', '/v1/webhooks', { key: reader.key + 'x' });
  assert.equal(res.status, 401);

  const r = await hookgate(['keys', 'revoke', '-c', cfg, reader.id], { env });
  assert.equal(r.code, 0, r.stderr);
  const t0 = Date.now();
  let last;
  await waitFor(async () => {
    last = await gw.request('GET', '/v1/webhooks', { key: reader.key });
    return last.status === 401;
  }, T(7000), 'the revoked key to be refused');
  const took = Date.now() - t0;
  assert.ok(took <= 6500 * SLOW, `revocation took ${took} ms`);
  assert.equal(last.json.error.type, 'unauthorized');
  // It stays revoked; the other key keeps working.
  await sleep(200);
  assert.equal((await gw.request('GET', '/v1/webhooks', { key: reader.key })).status, 401);
  assert.equal((await gw.request('POST', '/v1/webhooks', { key: writer.key, body: hook })).status, 201);

  // The key never reaches the logs.
  await gw.stop();
  for (const k of [reader.key, writer.key]) assert.ok(!gw.logs().includes(k), 'a key is in the gateway log');
});

// ---- helpers ----

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// GET over a fresh connection; {status} or {status: 0} when it fails.
function httpGet(port, path) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let buf = '';
    s.on('data', (d) => { buf += d; });
    s.on('error', () => resolve({ status: 0 }));
    s.on('close', () => { const m = /^HTTP\/1\.1 (\d{3})/.exec(buf); resolve({ status: m ? Number(m[1]) : 0, text: buf }); });
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
}
