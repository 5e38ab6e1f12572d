// openapi.test.mjs: docs/openapi.yaml is valid and describes exactly the
// routes the router knows (as `hookgate routes` prints them), no more, no less.
//
// Run from the repository root: node --test tests/integration/openapi.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate). Needs
// `cd tests && npm ci` first for the Redocly CLI and the yaml parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TESTS = join(ROOT, 'tests');
const DOC = join(ROOT, 'docs', 'openapi.yaml');
const BIN = process.env.HOOKGATE_BIN || join(ROOT, 'build', 'hookgate');
const REDOCLY = join(TESTS, 'node_modules', '.bin', 'redocly');

// The methods an OpenAPI path item may hold; its other keys (parameters,
// summary, servers, ...) are not operations.
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function needModules() {
  assert.ok(existsSync(REDOCLY), `${REDOCLY} is missing: run "cd tests && npm ci" first`);
}

test('docs/openapi.yaml passes redocly lint', async () => {
  needModules();
  let out = '';
  let code = 0;
  try {
    const r = await run(REDOCLY, ['lint', '--config', join(TESTS, 'redocly.yaml'), '--format', 'stylish', DOC], {
      cwd: ROOT,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      maxBuffer: 16 << 20,
    });
    out = r.stdout + r.stderr;
  } catch (e) {
    code = e.code ?? 1;
    out = (e.stdout || '') + (e.stderr || '') + (typeof e.code === 'string' ? e.message : '');
  }
  assert.equal(code, 0, `redocly lint failed:\n${out}`);
});

test('every route is documented, and every documented operation is a route', async () => {
  needModules();
  assert.ok(existsSync(BIN), `${BIN} is missing: build it or set HOOKGATE_BIN`);
  const { stdout } = await run(BIN, ['routes']);
  const routes = new Set();
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const m = /^([A-Z]+) (\/\S*)$/.exec(line.trim());
    assert.ok(m, `unexpected line from "hookgate routes": ${JSON.stringify(line)}`);
    routes.add(`${m[1]} ${m[2]}`);
  }
  assert.ok(routes.size > 0, '"hookgate routes" printed no routes');

  // The yaml package lives in tests/node_modules, next to package.json.
  const require = createRequire(join(TESTS, 'package.json'));
  const YAML = require('yaml');
  const doc = YAML.parse(readFileSync(DOC, 'utf8'));
  assert.ok(doc && typeof doc.paths === 'object' && doc.paths !== null, 'docs/openapi.yaml has no paths');
  const documented = new Set();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item || {})) {
      if (METHODS.includes(method)) documented.add(`${method.toUpperCase()} ${path}`);
    }
  }

  const undocumented = [...routes].filter((r) => !documented.has(r));
  const unrouted = [...documented].filter((r) => !routes.has(r));
  assert.deepEqual(undocumented, [], `routes missing from docs/openapi.yaml: ${undocumented.join(', ')}`);
  assert.deepEqual(unrouted, [], `documented operations the router does not know: ${unrouted.join(', ')}`);
});
