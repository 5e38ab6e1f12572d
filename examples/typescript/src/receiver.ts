// A webhook receiver: verifies each delivery with verifyWebhook (Standard
// Webhooks signatures, timestamp within 5 minutes) on the raw body, skips
// ids it has already processed, prints each event as one JSON line, and
// answers 204. A delivery that fails verification gets 400.
//
//   WEBHOOK_SECRET=whsec_... [RECEIVER_PORT=9000] node dist/receiver.js
//
// WEBHOOK_SECRET may list several secrets separated by spaces (during a
// secret rotation, the old one and the new one).
import http from 'node:http';
import { verifyWebhook, WebhookVerificationError } from '@hookgate/sdk';

const secrets = (process.env.WEBHOOK_SECRET ?? '').split(/\s+/).filter(Boolean);
if (secrets.length === 0) {
  console.error('set WEBHOOK_SECRET to the webhook\'s signing secret (whsec_...)');
  process.exit(2);
}
const host = process.env.RECEIVER_HOST ?? '127.0.0.1';
const port = Number(process.env.RECEIVER_PORT ?? 9000);
const path = process.env.RECEIVER_PATH ?? '/webhooks';

// Deliveries are at least once: remember the ids already processed (a real
// service keeps them for a few days in its database).
const seen = new Set<string>();

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== path) {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    let event;
    try {
      event = verifyWebhook(body, req.headers, secrets);
    } catch (err) {
      if (!(err instanceof WebhookVerificationError)) throw err;
      console.error(`rejected a delivery: ${err.reason}: ${err.message}`);
      res.writeHead(400, { 'content-type': 'text/plain' }).end(err.reason);
      return;
    }
    const id = String(req.headers['webhook-id']);
    if (!seen.has(id)) {
      seen.add(id);
      // The work would go here; print the event instead.
      console.log(JSON.stringify({ id, type: event.type, timestamp: event.timestamp, data: event.data }));
    }
    res.writeHead(204).end();
  });
});

server.listen(port, host, () => {
  const addr = server.address();
  const p = typeof addr === 'object' && addr ? addr.port : port;
  console.error(`receiver listening on http://${host}:${p}${path}`);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => server.close(() => process.exit(0)));
