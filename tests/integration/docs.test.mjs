// docs.test.mjs: the documents agree with the binary.
//
// - Every route `hookgate routes` prints is in docs/api.md's endpoint table,
//   has an endpoint section (### `METHOD /path`) there, and is a path of
//   docs/openapi.yaml; nothing documented in any of the three is missing
//   from the binary (methods and paths, path parameters compared by
//   position, whatever their names); docs/configuration.md's sample output
//   of `hookgate routes` is the binary's.
// - Every error `type` the C code answers (hg_http_respond_error's literal
//   types, the HTTP layer's error_type(), a raw {"type": ...} body) is in
//   api.md's error table with its status, and in openapi.yaml's Error.type
//   enum; neither document lists a type the code does not answer; each row
//   of the table names the TypeScript SDK's error class for its status.
// - The scope table's `admin` row names every admin-only route.
// - Against a real gateway: a webhook created, read, listed and changed with
//   `plugins` and `transform`, its validation errors, and the reload and
//   plugins answers all fit openapi.yaml's schemas.
//
// Run from the repository root: node --test tests/integration/docs.test.mjs
// (HOOKGATE_BIN names the binary; default build/hookgate). Needs
// `cd tests && npm ci` first for the yaml parser.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { BIN, startGateway, tempDir } from './lib/gateway.mjs';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (rel) => readFileSync(join(ROOT, rel), 'utf8');
const require = createRequire(join(ROOT, 'tests', 'package.json'));
const YAML = require('yaml');
const DOC = YAML.parse(read('docs/openapi.yaml'));
const API_MD = read('docs/api.md');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

// "/v1/webhooks/{id}/deliveries/{deliveryId}" -> "/v1/webhooks/{}/deliveries/{}".
const norm = (route) => route.replace(/\{[^}/]*\}/g, '{}');
const sorted = (it) => [...it].sort();

async function binaryRoutes() {
  const { stdout } = await run(BIN, ['routes']);
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  for (const l of lines) assert.match(l, /^[A-Z]+ \/\S*$/, `unexpected line from "hookgate routes": ${l}`);
  assert.ok(lines.length > 0, '"hookgate routes" printed nothing');
  return { lines, set: new Set(lines.map(norm)) };
}

// The rows of api.md's endpoint table: | `GET` | `/v1/webhooks` | `listWebhooks` | scope |
function apiTableRoutes() {
  return [...API_MD.matchAll(/^\| `([A-Z]+)` \| `(\/[^`]*)` \| `\w+` \|/gm)].map((m) => norm(`${m[1]} ${m[2]}`));
}

// The endpoint sections: "### `GET /v1/admin/delivery`, `POST /v1/admin/delivery/pause`, ..."
function apiSectionRoutes() {
  const out = [];
  const section = API_MD.slice(API_MD.indexOf('\n## Endpoints\n'), API_MD.indexOf('\n## ', API_MD.indexOf('\n## Endpoints\n') + 5));
  assert.ok(section.length > 100, 'docs/api.md has no "## Endpoints" section');
  for (const h of section.matchAll(/^### (.*)$/gm)) {
    for (const m of h[1].matchAll(/`([A-Z]+) (\/[^`]*)`/g)) out.push(norm(`${m[1]} ${m[2]}`));
  }
  return out;
}

function openapiRoutes() {
  const out = [];
  for (const [path, item] of Object.entries(DOC.paths)) {
    for (const m of Object.keys(item || {})) if (METHODS.includes(m)) out.push(norm(`${m.toUpperCase()} ${path}`));
  }
  return out;
}

function sameRoutes(binary, documented, where) {
  const dup = documented.filter((r, i) => documented.indexOf(r) !== i);
  assert.deepEqual(dup, [], `${where} lists a route twice`);
  const missing = sorted(binary).filter((r) => !documented.includes(r));
  const extra = documented.filter((r) => !binary.has(r));
  assert.deepEqual(missing, [], `routes the binary serves that ${where} lacks`);
  assert.deepEqual(extra, [], `routes ${where} documents that the binary does not serve`);
}

test("api.md's endpoint table, its endpoint sections and openapi.yaml's paths are exactly the binary's routes", async () => {
  const { set } = await binaryRoutes();
  sameRoutes(set, apiTableRoutes(), "docs/api.md's endpoint table");
  sameRoutes(set, apiSectionRoutes(), "docs/api.md's endpoint sections (### `METHOD /path`)");
  sameRoutes(set, openapiRoutes(), 'docs/openapi.yaml');
});

test("configuration.md's sample output of `hookgate routes` is the binary's", async () => {
  const { lines } = await binaryRoutes();
  const md = read('docs/configuration.md');
  const at = md.indexOf('### `hookgate routes`');
  assert.ok(at >= 0, 'docs/configuration.md has no `hookgate routes` section');
  const block = /```\n([\s\S]*?)```/.exec(md.slice(at));
  assert.ok(block, 'no sample output under `hookgate routes`');
  assert.deepEqual(block[1].trim().split('\n'), lines);
});

// ---- error types ----

function cFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...cFiles(p));
    else if (/\.[ch]$/.test(name)) out.push(p);
  }
  return out;
}

// [{status: number|null, type, where}] for every error the C code answers.
function answeredTypes() {
  const found = [];
  for (const file of cFiles(join(ROOT, 'core'))) {
    const src = readFileSync(file, 'utf8');
    const rel = file.slice(ROOT.length);
    // hg_http_respond_error(req, 404, "not_found", ...): the status may be a variable.
    for (const m of src.matchAll(/hg_http_respond_error\(\s*[^,]+,\s*([^,]+?)\s*,\s*("(?:[^"\\]|\\.)*"|[^,]+?)\s*,/g)) {
      if (/^const char \*/.test(m[2]) || m[1].startsWith('int ')) continue; // the declaration
      if (m[2] === 'error_type(status)') continue; // below
      assert.match(m[2], /^"[a-z_]+"$/, `${rel}: hg_http_respond_error with a type that is not a literal (${m[2]}): teach this test where it comes from`);
      const status = /^\d+$/.test(m[1]) ? Number(m[1]) : null;
      found.push({ status, type: m[2].slice(1, -1), where: rel });
    }
    // The HTTP layer: static const char *error_type(int status) { case 408: return "..."; default: return "..."; }
    const et = /static const char \*error_type\(int status\) \{([\s\S]*?)\n\}/.exec(src);
    if (et) {
      for (const m of et[1].matchAll(/case (\d+): return "([a-z_]+)";/g)) found.push({ status: Number(m[1]), type: m[2], where: rel });
      const d = /default: return "([a-z_]+)";/.exec(et[1]);
      assert.ok(d, `${rel}: error_type() has no default`);
      found.push({ status: 400, type: d[1], where: rel });
    }
    // A body written out by hand: "{\"error\":{\"type\":\"internal\",..." (respond_raw(..., 500, ...)).
    for (const m of src.matchAll(/respond_raw\([^,]+,\s*(\d+),[^;]*?\\"type\\":\\"([a-z_]+)\\"/g)) {
      found.push({ status: Number(m[1]), type: m[2], where: rel });
    }
  }
  return found;
}

// api.md's error table: | 404 | `not_found` | When | SDK class |
function errorTable() {
  const at = API_MD.indexOf('| Status | `type` | When | SDK error class |');
  assert.ok(at >= 0, "docs/api.md's error table is gone");
  const rows = [];
  for (const line of API_MD.slice(at).split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    const type = /^`([a-z_]+)`$/.exec(cells[1]);
    assert.ok(type, `error table row without a type: ${line}`);
    rows.push({ status: Number(/^\d+/.exec(cells[0])[0]), statusCell: cells[0], type: type[1], sdk: cells[3] });
  }
  return rows;
}

// The SDK's class per status (clients/typescript/src/errors.ts).
function sdkClass(status) {
  const map = { 400: 'BadRequestError', 401: 'UnauthorizedError', 403: 'ForbiddenError', 404: 'NotFoundError', 409: 'ConflictError', 422: 'ValidationError', 429: 'RateLimitedError' };
  return map[status] || (status >= 500 ? 'ServerError' : 'HookgateError');
}

test('every error type the gateway answers is in api.md\'s error table (with its status) and openapi.yaml\'s Error.type, and no other', () => {
  const answered = answeredTypes();
  const types = new Set(answered.map((a) => a.type));
  // A sanity floor: the greps still find what they are meant to.
  for (const t of ['not_found', 'validation_error', 'request_timeout', 'storage_full', 'reload_failed', 'script_error', 'rejected'])
    assert.ok(types.has(t), `the grep of core/ no longer finds "${t}": fix this test`);

  const rows = errorTable();
  for (const a of answered) {
    const row = rows.find((r) => r.type === a.type && (a.status === null || r.status === a.status));
    assert.ok(row, `${a.where} answers ${a.status ?? '(a status chosen at run time)'} ${a.type}: not in docs/api.md's error table`);
  }
  const stale = rows.filter((r) => !types.has(r.type)).map((r) => r.type);
  assert.deepEqual(stale, [], "docs/api.md's error table lists types the gateway never answers");

  const schema = DOC.components.schemas.Error.properties.error.properties.type;
  assert.ok(Array.isArray(schema.enum), 'Error.type has no enum');
  assert.deepEqual(sorted(schema.enum), sorted(types), "openapi.yaml's Error.type enum vs the types core/ answers");
  for (const t of types) assert.ok(schema.description.includes(t), `Error.type's description does not explain ${t}`);
});

test("each row of api.md's error table names the SDK error class of its status", () => {
  for (const r of errorTable()) {
    assert.ok(r.sdk.includes(`\`${sdkClass(r.status)}\``), `${r.statusCell} ${r.type}: SDK class cell "${r.sdk}", expected \`${sdkClass(r.status)}\``);
  }
  // The classes named exist in the SDK.
  const errors = read('clients/typescript/src/errors.ts');
  for (const c of ['BadRequestError', 'UnauthorizedError', 'ForbiddenError', 'NotFoundError', 'ConflictError', 'ValidationError', 'RateLimitedError', 'ServerError', 'HookgateError'])
    assert.match(errors, new RegExp(`export class ${c}\\b`));
});

test("the scope table's admin row names every admin-only route", async () => {
  const { stdout } = await run(BIN, ['routes', '--json']);
  const adminOnly = JSON.parse(stdout).filter((r) => r.adminOnly);
  assert.ok(adminOnly.length >= 5, stdout);
  const row = /^\| `admin` \| (.*) \|$/m.exec(API_MD);
  assert.ok(row, "docs/api.md's scope table has no admin row");
  const named = [...row[1].matchAll(/`([A-Z]+) (\/[^`]*)`/g)].map((m) => norm(`${m[1]} ${m[2]}`));
  for (const r of adminOnly) assert.ok(named.includes(norm(`${r.method} ${r.path}`)), `the admin row does not name ${r.method} ${r.path}`);
});

// ---- answers against the schemas ----

// A JSON Schema validator for the keywords openapi.yaml uses; any other
// keyword fails the test rather than being ignored.
const ANNOTATIONS = new Set(['description', 'example', 'examples', 'default', 'format', 'title']);
function validate(value, schema, path = '$', errors = []) {
  if (schema.$ref) {
    const name = schema.$ref.replace('#/components/schemas/', '');
    assert.ok(DOC.components.schemas[name], `no schema ${schema.$ref}`);
    return validate(value, DOC.components.schemas[name], path, errors);
  }
  const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);
  for (const [k, s] of Object.entries(schema)) {
    const fail = (msg) => errors.push(`${path}: ${msg}`);
    switch (k) {
      case 'type': {
        const want = [].concat(s);
        const t = typeOf(value);
        if (!want.includes(t) && !(t === 'integer' && want.includes('number'))) fail(`is ${t}, not ${want.join(' or ')}`);
        break;
      }
      case 'enum': if (!s.some((x) => JSON.stringify(x) === JSON.stringify(value))) fail(`${JSON.stringify(value)} is not one of ${s.join(', ')}`); break;
      case 'const': if (JSON.stringify(s) !== JSON.stringify(value)) fail(`is not ${JSON.stringify(s)}`); break;
      case 'required':
        if (typeOf(value) === 'object') for (const r of s) if (!(r in value)) fail(`lacks ${r}`);
        break;
      case 'properties':
        if (typeOf(value) === 'object') for (const [p, ps] of Object.entries(s)) if (p in value) validate(value[p], ps, `${path}.${p}`, errors);
        break;
      case 'additionalProperties':
        if (typeOf(value) === 'object' && s !== true) {
          for (const [p, v] of Object.entries(value)) {
            if (schema.properties && p in schema.properties) continue;
            if (s === false) fail(`has a field the schema does not: ${p}`);
            else validate(v, s, `${path}.${p}`, errors);
          }
        }
        break;
      case 'maxProperties': if (typeOf(value) === 'object' && Object.keys(value).length > s) fail(`more than ${s} fields`); break;
      case 'propertyNames': if (typeOf(value) === 'object') for (const p of Object.keys(value)) validate(p, s, `${path}[${JSON.stringify(p)}]`, errors); break;
      case 'items': if (Array.isArray(value)) value.forEach((v, i) => validate(v, s, `${path}[${i}]`, errors)); break;
      case 'minItems': if (Array.isArray(value) && value.length < s) fail(`fewer than ${s} items`); break;
      case 'maxItems': if (Array.isArray(value) && value.length > s) fail(`more than ${s} items`); break;
      case 'uniqueItems': if (s && Array.isArray(value) && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) fail('has duplicates'); break;
      case 'minLength': if (typeof value === 'string' && [...value].length < s) fail(`shorter than ${s}`); break;
      case 'maxLength': if (typeof value === 'string' && [...value].length > s) fail(`longer than ${s}`); break;
      case 'pattern': if (typeof value === 'string' && !new RegExp(s, 'u').test(value)) fail(`${JSON.stringify(value)} does not match ${s}`); break;
      case 'minimum': if (typeof value === 'number' && value < s) fail(`below ${s}`); break;
      case 'maximum': if (typeof value === 'number' && value > s) fail(`above ${s}`); break;
      case 'allOf': for (const sub of s) validate(value, sub, path, errors); break;
      case 'oneOf': {
        const ok = s.filter((sub) => validate(value, sub, path, []).length === 0).length;
        if (ok !== 1) fail(`matches ${ok} of oneOf's ${s.length} schemas, not exactly one`);
        break;
      }
      default:
        assert.ok(ANNOTATIONS.has(k), `the test's validator does not know the keyword ${k}: teach it`);
    }
  }
  return errors;
}

// The schema of an operation's answer with this status, as openapi.yaml says.
function answerSchema(method, path, status) {
  let r = DOC.paths[path]?.[method]?.responses?.[String(status)];
  assert.ok(r, `openapi.yaml: ${method.toUpperCase()} ${path} documents no ${status} answer`);
  if (r.$ref) r = DOC.components.responses[r.$ref.replace('#/components/responses/', '')];
  const s = r.content?.['application/json']?.schema;
  assert.ok(s, `openapi.yaml: ${method.toUpperCase()} ${path} ${status} has no JSON schema`);
  return s;
}

function requestSchema(method, path) {
  const s = DOC.paths[path][method].requestBody?.content?.['application/json']?.schema;
  assert.ok(s, `openapi.yaml: ${method.toUpperCase()} ${path} has no request schema`);
  return s;
}

function fits(value, schema, what) {
  const errors = validate(value, schema);
  assert.deepEqual(errors, [], `${what} does not fit openapi.yaml:\n${JSON.stringify(value, null, 2)}`);
}

let gw;
after(async () => { if (gw) await gw.stop('SIGKILL'); });

// A plugin of the test's own, bound globally, so reload has something to
// reload and a file to break.
function pluginDir() {
  const dir = tempDir();
  mkdirSync(join(dir, 'plugins', 'acme-tag'), { recursive: true });
  writeFileSync(join(dir, 'plugins', 'acme-tag', 'init.lua'),
    'return {\n  name = "acme-tag",\n  version = "1.0.0",\n  transform = function(delivery)\n    delivery.headers["X-Acme"] = "1"\n  end,\n}\n');
  return dir;
}

async function gateway() {
  if (gw) return gw;
  const dir = pluginDir();
  gw = await startGateway({
    dir,
    config: `
webhooks = { allow_http = true }
lua = { plugin_paths = { ${JSON.stringify(join(ROOT, 'plugins'))}, ${JSON.stringify(join(dir, 'plugins'))} } }
plugins = {
  ["custom-headers"] = { headers = { ["X-Gateway"] = "eu-1" } },
  ["acme-tag"] = true,
}
`,
  });
  return gw;
}

async function ask(method, path, body) {
  const g = await gateway();
  const headers = { authorization: `Bearer ${g.adminKey}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${g.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const TRANSFORM = 'return function(delivery)\n  delivery.headers["X-Tenant"] = "acme"\nend\n';
const PLUGINS = [
  { name: 'payload-filter', config: { condition: { field: 'data.country', op: 'in', value: ['FR', 'DE'] }, reason: 'not an EU user' } },
  { name: 'custom-headers', config: { headers: { 'X-Api-Key': 'k_live_123' } } },
  { name: 'backoff' },
];

test('a webhook with plugins and transform: the request and every answer fit openapi.yaml', async () => {
  const create = { url: 'https://eu-orders.example.com/hook', events: ['user.created'], plugins: PLUGINS, transform: TRANSFORM };
  fits(create, requestSchema('post', '/v1/webhooks'), 'the createWebhook request');
  let res = await ask('POST', '/v1/webhooks', create);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  fits(res.body, answerSchema('post', '/v1/webhooks', 201), 'the createWebhook answer');
  assert.equal(res.body.transform, TRANSFORM);
  assert.deepEqual(res.body.plugins.map((p) => p.name), ['payload-filter', 'custom-headers', 'backoff']);
  assert.deepEqual(res.body.plugins[0].config, PLUGINS[0].config);
  assert.deepEqual(res.body.plugins[1].config, { headers: '[redacted]' }, 'a secret setting is redacted');
  assert.ok(!JSON.stringify(res.body).includes('k_live_123'), 'the secret header value is answered');
  const id = res.body.id;

  res = await ask('GET', `/v1/webhooks/${id}`);
  assert.equal(res.status, 200);
  fits(res.body, answerSchema('get', '/v1/webhooks/{id}', 200), 'the getWebhook answer');
  assert.equal(res.body.transform, TRANSFORM);

  res = await ask('GET', '/v1/webhooks');
  assert.equal(res.status, 200);
  fits(res.body, answerSchema('get', '/v1/webhooks', 200), 'the listWebhooks answer');

  const patch = { plugins: [], transform: null };
  fits(patch, requestSchema('patch', '/v1/webhooks/{id}'), 'the updateWebhook request');
  res = await ask('PATCH', `/v1/webhooks/${id}`, patch);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  fits(res.body, answerSchema('patch', '/v1/webhooks/{id}', 200), 'the updateWebhook answer');
  assert.deepEqual(res.body.plugins, []);
  assert.equal(res.body.transform, null);

  // A webhook without either answers them too: [] and null.
  res = await ask('POST', '/v1/webhooks', { url: 'https://a.example.com/h', events: ['user.created'] });
  assert.equal(res.status, 201);
  fits(res.body, answerSchema('post', '/v1/webhooks', 201), 'a plain createWebhook answer');
  assert.deepEqual([res.body.plugins, res.body.transform], [[], null]);
});

test('bad plugins and transform: 422 with the fields api.md names, fitting the Error schema', async () => {
  const cases = [
    [{ plugins: {}, transform: 5 }, ['plugins', 'transform']],
    [{ plugins: null }, ['plugins']],
    [{ plugins: Array(21).fill({ name: 'backoff' }) }, ['plugins']],
    [{ transform: 'x'.repeat(65537) }, ['transform']],
    [{ plugins: [{ name: 'nope' }, { name: 'payload-filter', config: { condition: { field: 'x', op: 'zz' } } },
      { name: 'custom-headers', colour: 1, config: { headers: { 'X-A': 'b' } } }, 5], transform: 'return function(d)\n x x\nend' },
    ['plugins[0].name', 'plugins[1].config.condition', 'plugins[2].colour', 'plugins[3]', 'transform']],
    [{ plugins: [{ name: 'custom-headers', config: {} }] }, ['plugins[0].config.headers']],
  ];
  for (const [extra, fields] of cases) {
    const res = await ask('POST', '/v1/webhooks', { url: 'https://a.example.com/h', events: ['user.created'], ...extra });
    assert.equal(res.status, 422, JSON.stringify(res.body));
    fits(res.body, answerSchema('post', '/v1/webhooks', 422), 'the 422 answer');
    assert.equal(res.body.error.type, 'validation_error');
    assert.deepEqual(res.body.error.details.map((d) => d.field), fields, JSON.stringify(res.body));
    for (const f of fields) assert.ok(API_MD.includes(`\`${f}\``), `api.md's plugins rules do not name the field ${f}`);
  }
  // The transform's syntax error names its line, as documented.
  const res = await ask('POST', '/v1/webhooks', { url: 'https://a.example.com/h', events: ['user.created'], transform: 'return function(d)\n x x\nend' });
  assert.match(res.body.error.details[0].message, /^transform:2: /);
});

test('reload and listPlugins: the answers fit openapi.yaml, and a failed reload answers reload_failed', async () => {
  const g = await gateway();
  let res = await ask('GET', '/v1/admin/plugins');
  assert.equal(res.status, 200);
  fits(res.body, answerSchema('get', '/v1/admin/plugins', 200), 'the listPlugins answer');
  assert.deepEqual(res.body.plugins.map((p) => p.name), ['custom-headers', 'acme-tag'], 'run order: priority, then name');
  assert.ok(res.body.available.includes('acme-tag') && res.body.available.includes('payload-filter'));

  res = await ask('POST', '/v1/admin/reload');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  fits(res.body, answerSchema('post', '/v1/admin/reload', 200), 'the reload answer');
  assert.equal(res.body.status, 'reloaded');

  // Break the plugin: the reload fails, names the file and line, and the running generation stays.
  const file = join(g.dir, 'plugins', 'acme-tag', 'init.lua');
  writeFileSync(file, readFileSync(file, 'utf8').replace('= "1"', '= = "1"'));
  res = await ask('POST', '/v1/admin/reload');
  assert.equal(res.status, 422, JSON.stringify(res.body));
  fits(res.body, answerSchema('post', '/v1/admin/reload', 422), 'the failed reload answer');
  assert.equal(res.body.error.type, 'reload_failed');
  assert.ok(res.body.error.details.every((d) => d.field === 'plugins'), JSON.stringify(res.body));
  assert.ok(res.body.error.details.some((d) => d.message.startsWith('plugin acme-tag: acme-tag/init.lua:5: ')), JSON.stringify(res.body));
  res = await ask('GET', '/v1/admin/plugins');
  assert.deepEqual(res.body.plugins.map((p) => p.name), ['custom-headers', 'acme-tag'], 'the running generation stays');
});
