// package.test.mjs: hookgate installed like a server, away from its checkout.
//
// 1. `cmake --install` of the build folder to a temp prefix, the prefix then
//    moved elsewhere (nothing compiled in points at it) and one bundled plugin
//    deleted from it (so that a gateway reading the checkout's plugins/ would
//    show): the installed binary finds share/hookgate beside its own folder,
//    serves /healthz, loads the bundled plugins, delivers an event through a
//    globally bound plugin and a sandboxed transform; an explicit
//    lua.plugin_paths still wins.
// 2. The .deb (cpack on the build folder, into a temp dir; skipped under
//    AddressSanitizer, HG_SANITIZE=1): its control data (conffile, maintainer
//    scripts, computed Depends) and contents, the extracted binary run the
//    same way, the systemd unit through `systemd-analyze verify`, and lintian
//    with no error.
//
// Run from the repository root: node --test tests/integration/package.test.mjs
// (HOOKGATE_BIN names the binary, default build/hookgate; its folder is the
// build folder installed and packaged). Needs cmake/cpack, dpkg-deb, lintian
// and systemd-analyze (scripts/install-deps --test).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { BIN, tempDir } from './lib/gateway.mjs';
import { startReceiver } from './lib/receiver.mjs';
import { stopClean } from './lib/delivery.mjs';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const BUILD = dirname(BIN);
const ASAN = process.env.HG_SANITIZE === '1' || process.env.HG_SANITIZE === 'ON' || /asan/.test(BIN);
const VERSION = readFileSync(join(ROOT, 'CMakeLists.txt'), 'utf8').match(/project\(hookgate VERSION (\d+\.\d+\.\d+)/)[1];

// Runs a command; resolves with {code, stdout, stderr} whatever its status.
async function run(cmd, args, { env = process.env, timeout = 60000 } = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(cmd, args, { env, timeout, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (e.code === 'ENOENT') throw new Error(`${cmd} is not installed (scripts/install-deps --test installs it)`);
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout || '', stderr: (e.stderr || '') + (e.killed ? ' (timed out)' : '') };
  }
}

// The environment without the caller's HOOKGATE_* variables.
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HOOKGATE_')) env[k] = v;
  return env;
}

// tests/integration/lib/gateway.mjs with BIN = bin (it reads HOOKGATE_BIN
// once, when loaded: a query string loads a copy of its own).
async function gatewayLib(bin) {
  const saved = process.env.HOOKGATE_BIN;
  process.env.HOOKGATE_BIN = bin;
  try {
    return await import(new URL(`./lib/gateway.mjs?bin=${encodeURIComponent(bin)}`, import.meta.url));
  } finally {
    if (saved === undefined) delete process.env.HOOKGATE_BIN;
    else process.env.HOOKGATE_BIN = saved;
  }
}

// A gateway with a bundled plugin bound globally (custom-headers), allowed
// to deliver to a receiver on 127.0.0.1.
const CONFIG = `
webhooks = { allow_http = true }
delivery = { allow_cidrs = { "127.0.0.1/32" }, schedule = { 0, 0.2, 0.2 }, jitter = 0, timeout = 2 }
plugins = { ["custom-headers"] = { headers = { ["X-Installed"] = "yes" } } }
`;

// Runs the binary at bin as a gateway: /healthz, the plugins it loaded
// (every bundled one but those in missing), and one event delivered through
// the global plugin and a webhook's transform (a sandbox worker: the same
// binary, started from its own descriptor).
async function servesFromInstalledTree(bin, { missing = [] } = {}) {
  const lib = await gatewayLib(bin);
  const rx = await startReceiver();
  const gw = await lib.startGateway({ config: CONFIG });
  try {
    let r = await gw.request('GET', '/healthz', { key: null });
    assert.equal(r.status, 200, r.body);

    r = await gw.request('GET', '/v1/admin/plugins');
    assert.equal(r.status, 200, r.body);
    const available = r.json.available;
    for (const name of ['custom-headers', 'payload-filter', 'github-source', 'backoff'].filter((n) => !missing.includes(n)))
      assert.ok(available.includes(name), `${name} not loaded: ${JSON.stringify(r.json)}`);
    for (const name of missing)
      assert.ok(!available.includes(name), `${name} was loaded, not from the installed tree: ${JSON.stringify(available)}`);
    const bound = JSON.stringify(r.json);
    assert.match(bound, /"name":\s*"custom-headers"/, bound);
    assert.doesNotMatch(bound, /"yes"/, 'the secret headers setting is shown');

    r = await gw.request('POST', '/v1/webhooks', {
      body: {
        url: rx.url('/installed'), events: ['user.created'],
        transform: 'function(d) d.headers["X-Transformed"] = "sandbox" end',
      },
    });
    assert.equal(r.status, 201, r.body);
    r = await gw.request('POST', '/v1/events', { body: { type: 'user.created', data: { id: 'user_1' } } });
    assert.equal(r.status, 202, r.body);
    const [req] = await rx.waitFor((q) => q.path === '/installed', { timeout: ASAN ? 30000 : 10000 });
    assert.equal(req.headers['x-installed'], 'yes', JSON.stringify(req.headers));
    assert.equal(req.headers['x-transformed'], 'sandbox', JSON.stringify(req.headers));
    assert.equal(req.headers['user-agent'], `hookgate/${VERSION}`);
  } finally {
    await stopClean(gw);
    await rx.close();
  }
}

describe('cmake --install to a prefix, then moved', () => {
  let prefix;
  before(async () => {
    const first = join(tempDir('hookgate-install-'), 'first');
    const r = await run('cmake', ['--install', BUILD, '--prefix', first]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // Not in the checkout's layout any more, and not where it was installed.
    prefix = join(tempDir('hookgate-prefix-'), 'opt', 'hookgate');
    mkdirSync(dirname(prefix), { recursive: true });
    renameSync(first, prefix);
    // A plugin the checkout has and the installed tree now has not.
    rmSync(join(prefix, 'share/hookgate/plugins/slack-format'), { recursive: true });
  });

  it('lays out bin/, share/hookgate/{lua,plugins,examples}, a sample config, the docs; no /etc, no unit', () => {
    for (const f of ['bin/hookgate', 'share/hookgate/lua/hookgate/runtime.lua', 'share/hookgate/lua/hookgate/schema.lua',
      'share/hookgate/plugins/custom-headers/init.lua', 'share/hookgate/plugins/payload-filter/README.md',
      'share/hookgate/plugins/README.md', 'share/hookgate/examples/quickstart.lua', 'share/hookgate/hookgate.lua',
      'share/man/man1/hookgate.1.gz', 'share/doc/hookgate/LICENSE', 'share/doc/hookgate/CHANGELOG.md'])
      assert.ok(existsSync(join(prefix, f)), `${f} is not installed`);
    assert.ok(statSync(join(prefix, 'bin/hookgate')).mode & 0o111, 'bin/hookgate is not executable');
    // The package's own files (component deb) stay out of a plain install.
    for (const f of ['etc', 'lib', 'usr', 'share/lintian', 'share/doc/hookgate/copyright'])
      assert.ok(!existsSync(join(prefix, f)), `${f} was installed`);
  });

  it('the installed binary reports the version of CMakeLists.txt and checks the sample config', async () => {
    const bin = join(prefix, 'bin/hookgate');
    let r = await run(bin, ['version'], { env: cleanEnv() });
    assert.equal(r.stdout, `hookgate ${VERSION}\n`);
    r = await run(bin, ['check', '-c', join(prefix, 'share/hookgate/hookgate.lua')], { env: cleanEnv() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('finds its Lua library and plugins in ../share/hookgate: serves, loads them, delivers through one', async () => {
    await servesFromInstalledTree(join(prefix, 'bin/hookgate'), { missing: ['slack-format'] });
  });

  it('lua.plugin_paths and lua.lib_path in the config still win', async () => {
    const bin = join(prefix, 'bin/hookgate');
    const dir = tempDir();
    const cfg = join(dir, 'hookgate.lua');
    // The installed tree lacks slack-format: binding it fails...
    writeFileSync(cfg, 'plugins = { ["slack-format"] = true }\n');
    let r = await run(bin, ['check', '-c', cfg], { env: cleanEnv() });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /slack-format/);
    // ... unless the config names a folder that has it.
    writeFileSync(cfg, `lua = { plugin_paths = { ${JSON.stringify(join(ROOT, 'plugins'))} } }\nplugins = { ["slack-format"] = true }\n`);
    r = await run(bin, ['check', '-c', cfg], { env: cleanEnv() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // A lib_path without the library is used as given (and fails), not replaced.
    writeFileSync(cfg, `lua = { lib_path = ${JSON.stringify(dir)} }\n`);
    r = await run(bin, ['check', '-c', cfg], { env: cleanEnv() });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stderr.includes(join(dir, 'hookgate')), r.stderr);
  });
});

describe('the Debian package', { skip: ASAN ? 'the .deb is built from the normal build (HG_SANITIZE=1 here)' : false }, () => {
  let deb, root;
  before(async () => {
    const out = tempDir('hookgate-deb-');
    const r = await run('cpack', ['--config', join(BUILD, 'CPackConfig.cmake'), '-B', out], { timeout: 120000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const debs = readdirSync(out).filter((f) => f.endsWith('.deb'));
    assert.deepEqual(debs.length, 1, `one .deb expected in ${out}: ${debs}`);
    deb = join(out, debs[0]);
    assert.match(debs[0], new RegExp(`^hookgate_${VERSION.replace(/\./g, '\\.')}_[a-z0-9]+\\.deb$`));
    root = tempDir('hookgate-root-');
    const x = await run('dpkg', ['-x', deb, root]);
    assert.equal(x.code, 0, x.stderr);
  });

  it('control: name, version, computed Depends, the conffile, the maintainer scripts', async () => {
    let r = await run('dpkg-deb', ['--info', deb]);
    assert.equal(r.code, 0, r.stderr);
    const info = r.stdout;
    assert.match(info, /^ Package: hookgate$/m);
    assert.match(info, new RegExp(`^ Version: ${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    const depends = info.match(/^ Depends: (.*)$/m)?.[1] || '';
    // dpkg-shlibdeps' libraries, and what the maintainer scripts use.
    for (const dep of ['libc6', 'libuv1', 'liblua5\\.4-\\d+', 'libsqlite3-\\d+', 'libmbedtls\\d+', 'libssl\\d', 'libseccomp\\d',
      'libjansson\\d', 'adduser'])
      assert.match(depends, new RegExp(`(^|, )${dep}( |,|$)`), `Depends lacks ${dep}: ${depends}`);
    for (const script of ['postinst', 'prerm', 'postrm']) assert.match(info, new RegExp(`\\* +${script} +#!/bin/sh`), info);
    r = await run('dpkg-deb', ['--info', deb, 'conffiles']);
    assert.equal(r.stdout.trim(), '/etc/hookgate/hookgate.lua');
    // The scripts at least parse.
    const ctrl = tempDir();
    r = await run('dpkg-deb', ['--control', deb, ctrl]);
    assert.equal(r.code, 0, r.stderr);
    for (const script of ['postinst', 'prerm', 'postrm']) {
      r = await run('sh', ['-n', join(ctrl, script)]);
      assert.equal(r.code, 0, `${script}: ${r.stderr}`);
    }
    const postinst = readFileSync(join(ctrl, 'postinst'), 'utf8');
    assert.match(postinst, /adduser --system/);
    // The admin key: random per machine, never a constant of the package.
    assert.match(postinst, /\/dev\/urandom/);
    assert.doesNotMatch(postinst, /HOOKGATE_ADMIN_KEY=[A-Za-z0-9_]{16,}$/m, 'a fixed admin key');
  });

  it('contents: the binary, the Lua library, the plugins, the config, the unit, the docs', async () => {
    const r = await run('dpkg-deb', ['--contents', deb]);
    assert.equal(r.code, 0, r.stderr);
    const files = new Set(r.stdout.split('\n').map((l) => l.split(/\s+/).pop()).filter(Boolean));
    for (const f of ['./usr/bin/hookgate', './usr/share/hookgate/lua/hookgate/runtime.lua',
      './usr/share/hookgate/plugins/custom-headers/init.lua', './usr/share/hookgate/plugins/payload-filter/init.lua',
      './usr/share/hookgate/examples/quickstart.lua', './etc/hookgate/hookgate.lua', './lib/systemd/system/hookgate.service',
      './usr/share/doc/hookgate/copyright', './usr/share/doc/hookgate/changelog.gz', './usr/share/man/man1/hookgate.1.gz'])
      assert.ok(files.has(f), `${f} is not in the package:\n${r.stdout}`);
    assert.ok(![...files].some((f) => f.startsWith('./usr/local') || f.startsWith('./var')), r.stdout);
  });

  it('the extracted binary: its version, the shipped config checks, it serves and delivers through a plugin', async () => {
    const bin = join(root, 'usr/bin/hookgate');
    let r = await run(bin, ['version'], { env: cleanEnv() });
    assert.equal(r.stdout, `hookgate ${VERSION}\n`);
    const conf = readFileSync(join(root, 'etc/hookgate/hookgate.lua'), 'utf8');
    assert.match(conf, /^listen = \{ "127\.0\.0\.1:8080" \}$/m);
    assert.match(conf, /^store = "\/var\/lib\/hookgate\/hookgate\.db"$/m);
    assert.doesNotMatch(conf, /^\s*admin_key\s*=/m, 'an admin key in the config file');
    r = await run(bin, ['check', '-c', join(root, 'etc/hookgate/hookgate.lua')], { env: cleanEnv() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await servesFromInstalledTree(bin);
  });

  it('the systemd unit: hardened, reloads on SIGHUP, passes systemd-analyze verify', async () => {
    const unit = readFileSync(join(root, 'lib/systemd/system/hookgate.service'), 'utf8');
    for (const line of ['User=hookgate', 'StateDirectory=hookgate', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes',
      'NoNewPrivileges=yes', 'LimitNOFILE=65536', 'Restart=on-failure', 'ExecReload=/bin/kill -HUP $MAINPID',
      'ExecStart=/usr/bin/hookgate serve -c /etc/hookgate/hookgate.lua', 'EnvironmentFile=-/etc/hookgate/hookgate.env'])
      assert.ok(unit.split('\n').includes(line), `the unit lacks ${line}`);
    // The sandbox workers install their own seccomp filter: no filter of the
    // unit's may refuse them that (docs/security.md).
    assert.doesNotMatch(unit, /^SystemCallFilter=/m);
    // verify wants the binaries to exist: the unit as shipped, its ExecStart
    // pointed at the extracted binary.
    const dir = tempDir();
    writeFileSync(join(dir, 'hookgate.service'), unit.replaceAll('/usr/bin/hookgate', join(root, 'usr/bin/hookgate')));
    // It also opens the Documentation= man page, with man: the extracted one
    // (without man-db, as in a bare container, that check is off).
    const hasMan = (await run('sh', ['-c', 'command -v man'])).code === 0;
    const r = await run('systemd-analyze', ['verify', ...(hasMan ? [] : ['--man=no']), join(dir, 'hookgate.service')],
      { env: { ...process.env, MANPATH: join(root, 'usr/share/man') } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stderr.trim(), '', 'systemd-analyze verify warned');
  });

  it('lintian: no error', async () => {
    const r = await run('lintian', ['--fail-on', 'error', deb], { timeout: 120000 });
    const errors = (r.stdout + r.stderr).split('\n').filter((l) => /^E: /.test(l));
    assert.deepEqual(errors, [], r.stdout + r.stderr);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
});
