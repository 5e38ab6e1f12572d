// A service that uses @hookgate/sdk: registers a webhook pointing at the
// receiver, publishes an event, waits for its delivery and prints the
// delivery log.
//
//   HOOKGATE_URL=http://127.0.0.1:8080 HOOKGATE_API_KEY=... \
//   RECEIVER_URL=http://127.0.0.1:9000/webhooks WEBHOOK_SECRET=whsec_... node dist/service.js
//
// WEBHOOK_SECRET is optional: without it the gateway generates the secret
// and this prints it (give it to the receiver). KEEP_WEBHOOK=1 keeps the
// webhook afterwards; by default it is deleted at the end.
import { HookgateClient, HookgateError, type Delivery } from '@hookgate/sdk';

const env = (name: string, fallback?: string): string => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') {
    console.error(`set ${name}`);
    process.exit(2);
  }
  return v;
};

const client = new HookgateClient({
  baseUrl: env('HOOKGATE_URL', 'http://127.0.0.1:8080'),
  apiKey: env('HOOKGATE_API_KEY'),
  timeoutMs: 20000,
});

async function main(): Promise<void> {
  const webhook = await client.admin.createWebhook({
    url: env('RECEIVER_URL', 'http://127.0.0.1:9000/webhooks'),
    events: ['user.created', 'user.updated'],
    metadata: { example: 'typescript' },
    ...(process.env.WEBHOOK_SECRET ? { secret: process.env.WEBHOOK_SECRET } : {}),
  });
  console.log(`created webhook ${webhook.id} -> ${webhook.url}`);
  if (!process.env.WEBHOOK_SECRET) console.log(`its secret (give it to the receiver): ${webhook.secret}`);

  // An Idempotency-Key makes the publish safe to retry (the SDK does on 429/5xx and network errors).
  const event = await client.admin.publishEvent({
    type: 'user.created',
    data: { userId: 'usr_123', email: 'ada@acme.test' },
    idempotencyKey: `example-signup-${webhook.id}`,
  });
  console.log(`published ${event.id} (${event.deliveries} deliver${event.deliveries === 1 ? 'y' : 'ies'})`);

  // Wait until the delivery is no longer pending, then print the log.
  let delivery: Delivery | undefined;
  for (let i = 0; i < 100; i++) {
    const page = await client.admin.listWebhookDeliveries({ webhookId: webhook.id, pageSize: 10 });
    delivery = page.deliveries.find((d) => d.eventId === event.id);
    if (delivery && delivery.status !== 'pending') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log('deliveries:');
  for await (const d of client.admin.iterateWebhookDeliveries({ webhookId: webhook.id })) {
    console.log(`  ${d.id} ${d.event} ${d.status} ${d.statusCode ?? '-'} attempts=${d.attempts}`);
  }
  if (delivery) {
    const detail = await client.admin.getWebhookDelivery({ webhookId: webhook.id, deliveryId: delivery.id });
    for (const a of detail.attempts) {
      console.log(`    attempt ${a.attempt}: ${a.statusCode ?? '-'} in ${a.durationMs} ms${a.error ? ` (${a.error})` : ''}`);
    }
  }

  if (process.env.KEEP_WEBHOOK !== '1') {
    await client.admin.deleteWebhook({ webhookId: webhook.id });
    console.log(`deleted webhook ${webhook.id}`);
  }
  if (delivery?.status !== 'success') {
    console.error(`the delivery did not succeed: ${delivery?.status ?? 'not found'}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  if (err instanceof HookgateError) {
    console.error(`${err.name} ${err.status} ${err.type}: ${err.message}`);
    for (const d of err.details) console.error(`  ${d.field}: ${d.message}`);
  } else {
    console.error(err);
  }
  process.exitCode = 1;
});
