#!/usr/bin/env node
// receiver.mjs: a webhook receiver for trying hookgate on one machine.
//
//   WEBHOOK_SECRET=whsec_... node examples/receiver.mjs [--port 9000]
//   node examples/receiver.mjs --secret whsec_... [--port 9000]
//
// Listens on 127.0.0.1:PORT (default 9000, or the PORT environment variable),
// accepts a POST on any path, verifies its Standard Webhooks signature and
// prints the event on one line:
//
//   verified id=evt_01jx... type=user.created data={"userId":"usr_1"}
//
// It answers 204 when the signature verifies and 401 when it does not (no
// signature made with the secret, a webhook-timestamp more than 5 minutes
// away from this machine's clock, or a missing header), so a refused
// delivery shows up as failed in the gateway's delivery log and is retried.
//
// No dependencies: node:http and node:crypto only, so it runs from a bare
// checkout. In an application, use the SDK's verifyWebhook or a Standard
// Webhooks library instead, and dedupe on webhook-id before acting.
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

const TOLERANCE_SECONDS = 5 * 60;
const MAX_BODY = 5 * 1024 * 1024;

function usage(problem) {
  if (problem) console.error(`receiver: ${problem}`);
  console.error('usage: WEBHOOK_SECRET=whsec_... node examples/receiver.mjs [--port PORT]');
  console.error('       node examples/receiver.mjs --secret whsec_... [--port PORT]');
  process.exit(problem ? 2 : 0);
}

function parseArgs(argv) {
  const opts = { secret: process.env.WEBHOOK_SECRET || '', port: process.env.PORT || '9000' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) usage(`${name} needs a value`);
      return argv[++i];
    };
    if (name === '--secret') opts.secret = value();
    else if (name === '--port') opts.port = value();
    else if (name === '--help' || name === '-h') usage();
    else usage(`unknown argument: ${a}`);
  }
  return opts;
}

// The key is the base64 part of the secret, after the optional "whsec_".
function secretKey(secret) {
  const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) usage('the secret must be whsec_ followed by base64');
  const key = Buffer.from(b64, 'base64');
  if (key.length === 0) usage('the secret is empty');
  return key;
}

function header(req, name) {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

// Returns null when the request is signed with key, else why not.
function verify(key, req, body) {
  const id = header(req, 'webhook-id');
  const ts = header(req, 'webhook-timestamp');
  const sigs = header(req, 'webhook-signature');
  if (!id || !ts || !sigs) return 'missing webhook-id, webhook-timestamp or webhook-signature';
  if (!/^\d+$/.test(ts)) return 'webhook-timestamp is not a number of seconds';
  const age = Math.floor(Date.now() / 1000) - Number(ts);
  if (Math.abs(age) > TOLERANCE_SECONDS) return `webhook-timestamp is ${age} s away from this machine's clock`;
  const expected = createHmac('sha256', key)
    .update(`${id}.${ts}.`)
    .update(body)
    .digest();
  // One "v1,<base64>" entry per secret the gateway signs with (several
  // during a rotation's grace period): any one that matches will do.
  // Every entry is compared, in constant time, whichever matches.
  let ok = false;
  for (const entry of sigs.split(' ')) {
    if (!entry.startsWith('v1,')) continue;
    const got = Buffer.from(entry.slice(3), 'base64');
    if (got.length === expected.length && timingSafeEqual(got, expected)) ok = true;
  }
  return ok ? null : 'no v1 signature matches the secret';
}

const opts = parseArgs(process.argv.slice(2));
if (!opts.secret) usage('no secret: set WEBHOOK_SECRET or pass --secret');
const port = Number(opts.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad port: ${opts.port}`);
const key = secretKey(opts.secret);
const seen = new Set();

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'POST' }).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) {
      res.writeHead(413, { connection: 'close' }).end();
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (res.headersSent) return;
    const body = Buffer.concat(chunks); // verified as received, before any parsing
    const id = header(req, 'webhook-id') || '-';
    const why = verify(key, req, body);
    if (why) {
      console.log(`rejected id=${id} (401): ${why}`);
      res.writeHead(401).end();
      return;
    }
    let type = '?';
    let data = body.toString('utf8');
    try {
      const event = JSON.parse(data);
      type = event.type;
      data = JSON.stringify(event.data);
    } catch {
      // Not JSON: printed as it came.
    }
    const again = seen.has(id) ? ' (again: same webhook-id as before, a replay or a retry)' : '';
    seen.add(id);
    console.log(`verified id=${id} type=${type} data=${data}${again}`);
    res.writeHead(204).end();
  });
});

server.on('error', (e) => {
  console.error(`receiver: ${e.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  const from = opts.secret === process.env.WEBHOOK_SECRET ? 'WEBHOOK_SECRET' : '--secret';
  console.log(`receiver listening on http://127.0.0.1:${server.address().port}/ (secret from ${from}; Ctrl-C stops it)`);
});
