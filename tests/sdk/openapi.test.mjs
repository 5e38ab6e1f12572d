// The SDK cannot drift from docs/openapi.yaml: every operation has an SDK
// method (the SDK's OPERATIONS table, operationId -> method, path, client
// method), each method sends the documented method and path, the route
// table of the real binary has nothing the SDK lacks, and the SDK's types
// (clients/typescript/dist/types.d.ts) name exactly the documented fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { BIN } from '../integration/lib/gateway.mjs';
import { sdk, SDK_DIR } from './lib/sdk.mjs';

const { HookgateClient, OPERATIONS, EVENT_TYPES } = sdk;
const require = createRequire(new URL('../package.json', import.meta.url));
const YAML = require('yaml');
const doc = YAML.parse(readFileSync(new URL('../../docs/openapi.yaml', import.meta.url), 'utf8'));
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

// Operations marked `x-hookgate-sdk: false` (the console's static files,
// for a browser, not a program) are not the SDK's; every other one is.
const documented = new Map(); // operationId -> { method, path, op }
const notSdk = new Set(); // "GET /console", ...
for (const [path, item] of Object.entries(doc.paths)) {
  for (const m of METHODS) {
    if (!item[m]) continue;
    if (item[m]['x-hookgate-sdk'] === false) notSdk.add(`${m.toUpperCase()} ${path}`);
    else documented.set(item[m].operationId, { method: m.toUpperCase(), path, op: item[m] });
  }
}

// Arguments for each SDK method, and the values its path parameters take.
const ID = 'wh_01jdx3k7q9v2m8r4t6y0a5b3c1';
const DEL = 'del_01jdx4a2b3c4d5e6f7g8h9j0k2';
const RCV = 'rcv_01jdx5m2n3p4q5r6s7t8v9w0x1';
const ARGS = {
  health: [],
  metrics: [],
  createWebhook: [{ url: 'https://a.test/h', events: ['user.created'] }],
  listWebhooks: [{}],
  getWebhook: [{ webhookId: ID }],
  updateWebhook: [{ webhookId: ID, active: false }],
  deleteWebhook: [{ webhookId: ID }],
  rotateWebhookSecret: [{ webhookId: ID, gracePeriodHours: 1 }],
  publishEvent: [{ type: 'user.created', data: {} }],
  publishEvents: [{ events: [{ type: 'user.created', data: {} }] }],
  listEventTypes: [],
  testWebhook: [{ webhookId: ID }],
  listWebhookDeliveries: [{ webhookId: ID }],
  getWebhookDelivery: [{ webhookId: ID, deliveryId: DEL }],
  replayWebhookDelivery: [{ webhookId: ID, deliveryId: DEL }],
  recoverWebhookDeliveries: [{ webhookId: ID, since: '2026-12-01T00:00:00Z' }],
  getWebhookRecovery: [{ webhookId: ID, recoveryId: RCV }],
  getDeliveryState: [],
  pauseDelivery: [],
  resumeDelivery: [],
  reload: [],
  listPlugins: [],
};

function sdkMethod(client, name) {
  return name.split('.').reduce((o, k) => (o == null ? undefined : o[k]), client);
}

test('every documented operation has an SDK method, and the table has no other', () => {
  const client = new HookgateClient({ baseUrl: 'http://127.0.0.1:9', apiKey: 'k' });
  assert.deepEqual([...Object.keys(OPERATIONS)].sort(), [...documented.keys()].sort());
  for (const [opId, d] of documented) {
    const o = OPERATIONS[opId];
    assert.equal(o.method, d.method, `${opId}: method`);
    assert.equal(o.path, d.path, `${opId}: path`);
    assert.equal(typeof sdkMethod(client, o.sdk), 'function', `${opId}: client.${o.sdk} is not a method`);
    // named as the operation (client.admin.createWebhook for createWebhook)
    assert.equal(o.sdk.split('.').pop(), opId);
    assert.ok(ARGS[opId], `${opId}: no arguments in this test's table`);
  }
});

test('each SDK method sends the documented method and path', async () => {
  const sent = [];
  const client = new HookgateClient({
    baseUrl: 'http://gw.test',
    apiKey: 'k',
    retry: { maxRetries: 0 },
    fetch: async (url, init) => {
      sent.push({ url: new URL(url), method: init.method, headers: new Headers(init.headers) });
      const text = url.endsWith('/metrics') ? '# metrics\n' : '{}';
      return new Response(init.method === 'DELETE' ? null : text, { status: init.method === 'DELETE' ? 204 : 200 });
    },
  });
  for (const [opId, d] of documented) {
    sent.length = 0;
    await sdkMethod(client, OPERATIONS[opId].sdk).apply(sdkMethod(client, OPERATIONS[opId].sdk.split('.').slice(0, -1).join('.')) ?? client, ARGS[opId]);
    assert.equal(sent.length, 1, opId);
    const want = d.path.replace('{id}', ID).replace('{deliveryId}', DEL).replace('{recoveryId}', RCV);
    assert.equal(sent[0].method, d.method, opId);
    assert.equal(sent[0].url.pathname, want, opId);
    // a key only where the document asks for one
    const open = Array.isArray(d.op.security) && d.op.security.length === 0;
    assert.equal(sent[0].headers.has('authorization'), !open, `${opId}: Authorization`);
  }
});

test('the query parameters each list call takes are the documented ones', async () => {
  const sent = [];
  const client = new HookgateClient({
    baseUrl: 'http://gw.test',
    apiKey: 'k',
    fetch: async (url) => {
      sent.push(new URL(url));
      return new Response('{"webhooks":[],"deliveries":[],"nextPageToken":null}', { status: 200 });
    },
  });
  const queryOf = (opId) => documented.get(opId).op.parameters
    .map((p) => (p.$ref ? doc.components.parameters[p.$ref.split('/').pop()] : p))
    .filter((p) => p.in === 'query').map((p) => p.name).sort();
  const all = { pageSize: 5, pageToken: 't', organizationId: 'org_1', status: 'failed', event: 'user.created' };
  await client.admin.listWebhooks(all);
  assert.deepEqual([...sent[0].searchParams.keys()].sort(), queryOf('listWebhooks'));
  await client.admin.listWebhookDeliveries({ webhookId: ID, ...all });
  assert.deepEqual([...sent[1].searchParams.keys()].sort(), queryOf('listWebhookDeliveries'));
});

test('the gateway\'s route table has no route the SDK lacks', async () => {
  const { stdout } = await promisify(execFile)(BIN, ['routes', '--json']);
  const routes = JSON.parse(stdout);
  assert.ok(routes.length > 0);
  const known = new Set(Object.values(OPERATIONS).map((o) => `${o.method} ${o.path}`));
  for (const r of routes) {
    if (notSdk.has(`${r.method} ${r.path}`)) continue;
    assert.ok(known.has(`${r.method} ${r.path}`), `no SDK method for ${r.method} ${r.path}`);
  }
});

// ---- types.d.ts against the schemas ----

// The interfaces of dist/types.d.ts: name -> { fields, extends }.
function interfaces() {
  const src = readFileSync(`${SDK_DIR}/dist/types.d.ts`, 'utf8').replace(/\/\*\*[\s\S]*?\*\//g, '');
  const out = new Map();
  const re = /export interface (\w+)(?:<[^{]*?>)?(?: extends ([^{]+))? \{([\s\S]*?)\n\}/g;
  for (const m of src.matchAll(re)) {
    const fields = [...m[3].matchAll(/^ {4}(?:readonly )?(\w+)\??:/gm)].map((x) => x[1]);
    const parents = (m[2] || '').split(/,(?![^<]*>)/).map((s) => s.trim()).filter(Boolean);
    out.set(m[1], { fields, parents });
  }
  return out;
}
const IFACES = interfaces();

function tsFields(name) {
  const i = IFACES.get(name);
  assert.ok(i, `no interface ${name} in types.d.ts`);
  const f = new Set(i.fields);
  for (const p of i.parents) {
    const omit = /^Omit<(\w+), ([^>]+)>$/.exec(p);
    if (omit) {
      const dropped = omit[2].split('|').map((s) => s.trim().replace(/'/g, ''));
      for (const x of tsFields(omit[1])) if (!dropped.includes(x)) f.add(x);
    } else {
      for (const x of tsFields(p.replace(/<.*$/, ''))) f.add(x);
    }
  }
  return [...f];
}

function schemaFields(name) {
  const s = doc.components.schemas[name];
  assert.ok(s, `no schema ${name}`);
  const f = new Set(Object.keys(s.properties || {}));
  for (const part of s.allOf || []) {
    if (part.$ref) for (const x of schemaFields(part.$ref.split('/').pop())) f.add(x);
    for (const x of Object.keys(part.properties || {})) f.add(x);
  }
  return [...f];
}

// schema -> interface, and the interface's fields that are the SDK's own (path ids, headers).
const TYPE_MAP = [
  ['Webhook', 'Webhook'],
  ['WebhookWithSecret', 'WebhookWithSecret'],
  ['WebhookList', 'WebhookList'],
  ['Delivery', 'Delivery'],
  ['DeliveryAttempt', 'DeliveryAttempt'],
  ['DeliveryDetail', 'DeliveryDetail'],
  ['DeliveryList', 'DeliveryList'],
  ['TestResult', 'TestWebhookResult'],
  ['ReplayAccepted', 'ReplayResult'],
  ['Recovery', 'Recovery'],
  ['RecoverRequest', 'RecoverWebhookDeliveriesParams', ['webhookId']],
  ['RotateSecretResponse', 'RotateSecretResult'],
  ['EventAccepted', 'EventAccepted'],
  ['EventAccepted', 'PublishEventResult', ['idempotentReplayed']],
  ['PublishBatchResponse', 'PublishEventsResult'],
  ['EventTypeList', 'EventTypeList'],
  ['DeliveryState', 'DeliveryState'],
  ['PluginState', 'PluginState'],
  ['Health', 'HealthResult'],
  ['CreateWebhookRequest', 'CreateWebhookParams'],
  ['UpdateWebhookRequest', 'UpdateWebhookParams', ['webhookId']],
  ['RotateSecretRequest', 'RotateWebhookSecretParams', ['webhookId']],
  ['TestWebhookRequest', 'TestWebhookParams', ['webhookId']],
  ['PublishEventRequest', 'EventInput'],
  ['PublishEventRequest', 'PublishEventParams', ['idempotencyKey']],
  ['PublishBatchRequest', 'PublishEventsParams'],
  ['DisabledReason', 'DisabledReason'],
  ['DisableAfter', 'DisableAfter'],
  ['WebhookDisabledEvent', 'WebhookDisabledEvent'],
  ['WebhookRecoveredEvent', 'WebhookRecoveredEvent'],
  ['DeliveryExhaustedEvent', 'DeliveryExhaustedEvent'],
];

test('the SDK\'s types have exactly the documented fields', () => {
  const covered = new Set(TYPE_MAP.map(([s]) => s));
  for (const [schema, iface, own = []] of TYPE_MAP) {
    const want = schemaFields(schema).sort();
    const got = tsFields(iface).filter((f) => !own.includes(f)).sort();
    assert.deepEqual(got, want, `${iface} vs schema ${schema}`);
  }
  // every object schema of a request or an answer is mapped (the rest are scalars, or the error envelope)
  for (const [name, s] of Object.entries(doc.components.schemas)) {
    const isObject = s.type === 'object' || s.allOf;
    if (!isObject || ['Error', 'ErrorDetail', 'Metadata'].includes(name)) continue;
    assert.ok(covered.has(name), `schema ${name} has no SDK type in this test's map`);
  }
  // the error detail
  assert.deepEqual(Object.keys(doc.components.schemas.ErrorDetail.properties).sort(), ['field', 'message', 'offset']);
});

test('the 15 event types are the documented ones', () => {
  const desc = doc.components.schemas.EventPattern.description.replace(/\s+/g, ' ');
  const m = /The 15 built-in types are ([^;]+);/.exec(desc);
  assert.ok(m, desc);
  assert.deepEqual(m[1].split(',').map((s) => s.trim()), [...EVENT_TYPES]);
  const statuses = doc.components.schemas.DeliveryStatus.enum;
  const dts = readFileSync(`${SDK_DIR}/dist/types.d.ts`, 'utf8');
  assert.match(dts, new RegExp(`DeliveryStatus = ${statuses.map((s) => `'${s}'`).join(' \\| ')};`));
});

test('every public method of the client is called by some SDK test against a gateway or the scripted server', () => {
  const dir = new URL('./', import.meta.url);
  const sources = ['api', 'deliveries', 'retries', 'example']
    .map((n) => readFileSync(new URL(`${n}.test.mjs`, dir), 'utf8')).join('\n') +
    readFileSync(new URL('../../examples/typescript/src/service.ts', import.meta.url), 'utf8');
  const client = new HookgateClient({ baseUrl: 'http://127.0.0.1:9' });
  const names = [
    ...Object.getOwnPropertyNames(Object.getPrototypeOf(client.admin)).map((n) => `admin.${n}`),
    ...Object.getOwnPropertyNames(Object.getPrototypeOf(client)),
  ].filter((n) => !n.endsWith('constructor'));
  assert.ok(names.length >= 24, names.join(' '));
  for (const n of names) {
    const short = n.split('.').pop();
    assert.match(sources, new RegExp(`\\.${short}\\(`), `no test calls ${n}`);
  }
});
