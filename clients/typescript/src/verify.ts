// Standard Webhooks signatures (https://www.standardwebhooks.com/), as
// hookgate signs its deliveries: HMAC-SHA256, keyed with the base64-decoded
// part of the secret after `whsec_`, of `<webhook-id>.<webhook-timestamp>.<body>`,
// sent as `webhook-signature: v1,<base64>` with one space-separated entry
// per secret still valid (several during a rotation's grace period).
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { WebhookEvent } from './types.js';

/** Why a delivery failed verification. */
export type WebhookVerificationReason =
  | 'missing_header'
  | 'invalid_timestamp'
  | 'timestamp_too_old'
  | 'timestamp_too_new'
  | 'invalid_signature'
  | 'invalid_secret'
  | 'invalid_body';

/** A delivery that must not be trusted; `reason` says why. Answer it with 400 (or 401). */
export class WebhookVerificationError extends Error {
  readonly reason: WebhookVerificationReason;
  constructor(reason: WebhookVerificationReason, message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
    this.reason = reason;
  }
}

/** Request headers as Node's `req.headers`, a fetch `Headers`, or a plain object (names in any case). */
export type WebhookHeaders =
  | Headers
  | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** How far `webhook-timestamp` may be from now, either way (default 300 s). */
  toleranceSeconds?: number;
  /** The current time in Unix seconds (default: the clock). For tests. */
  now?: number;
}

/** The body as the receiver got it: the raw bytes, before any JSON parsing. */
export type WebhookBody = string | Uint8Array;

const DEFAULT_TOLERANCE = 300;
const SIG_BYTES = 32; // HMAC-SHA256

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function') {
    const v = (headers as Headers).get(name);
    return v === null ? undefined : v;
  }
  const rec = headers as Record<string, string | string[] | undefined>;
  let v = rec[name];
  if (v === undefined) {
    for (const k of Object.keys(rec)) {
      if (k.toLowerCase() === name) {
        v = rec[k];
        break;
      }
    }
  }
  if (Array.isArray(v)) return v.join(' ');
  return v;
}

/** The key bytes of a `whsec_…` secret (the prefix is optional). */
function secretKey(secret: string): Buffer {
  if (typeof secret !== 'string') throw new WebhookVerificationError('invalid_secret', 'the secret must be a string');
  const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  if (b64.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
    throw new WebhookVerificationError('invalid_secret', 'the secret is not "whsec_" followed by base64');
  }
  const key = Buffer.from(b64, 'base64');
  if (key.length === 0) throw new WebhookVerificationError('invalid_secret', 'the secret is empty');
  return key;
}

function bodyBytes(body: WebhookBody): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new WebhookVerificationError('invalid_body', 'the body must be the raw string or bytes');
}

function hmac(key: Buffer, id: string, timestamp: string, body: Buffer): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`, 'utf8').update(body).digest();
}

function secretList(secret: string | readonly string[]): string[] {
  const list = typeof secret === 'string' ? [secret] : [...secret];
  if (list.length === 0) throw new WebhookVerificationError('invalid_secret', 'no secret given');
  return list;
}

/**
 * Checks a delivery's signature and timestamp and returns its parsed body.
 *
 * `body` must be the raw body (string or bytes) exactly as received.
 * `secret` is the webhook's `whsec_…` secret, or several (during a
 * rotation): the delivery is accepted when any `v1` signature in
 * `webhook-signature` matches any of them. Signatures are compared in
 * constant time. `webhook-timestamp` must be within `toleranceSeconds`
 * (default 300) of now. Throws `WebhookVerificationError` otherwise.
 */
export function verifyWebhook<D = Record<string, unknown>>(
  body: WebhookBody,
  headers: WebhookHeaders,
  secret: string | readonly string[],
  options: VerifyWebhookOptions = {},
): WebhookEvent<D> {
  const keys = secretList(secret).map(secretKey);
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signature = header(headers, 'webhook-signature');
  for (const [name, v] of [['webhook-id', id], ['webhook-timestamp', timestamp], ['webhook-signature', signature]] as const) {
    if (v === undefined || v === '') throw new WebhookVerificationError('missing_header', `missing header ${name}`);
  }
  const ts = (timestamp as string).trim();
  if (!/^\d{1,15}$/.test(ts)) {
    throw new WebhookVerificationError('invalid_timestamp', 'webhook-timestamp is not a Unix time in seconds');
  }
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const t = Number(ts);
  if (t < now - tolerance) throw new WebhookVerificationError('timestamp_too_old', 'webhook-timestamp is too old');
  if (t > now + tolerance) throw new WebhookVerificationError('timestamp_too_new', 'webhook-timestamp is in the future');

  const raw = bodyBytes(body);
  const expected = keys.map((k) => hmac(k, id as string, ts, raw));
  let match = false;
  for (const entry of (signature as string).split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue; // other schemes (v1a, …) are not ours
    const given = Buffer.from(entry.slice(comma + 1), 'base64');
    if (given.length !== SIG_BYTES) continue;
    for (const e of expected) {
      // Every pair is compared, match or not: the time taken does not tell which one matched.
      if (timingSafeEqual(given, e)) match = true;
    }
  }
  if (!match) throw new WebhookVerificationError('invalid_signature', 'no signature matches');
  try {
    return JSON.parse(raw.toString('utf8')) as WebhookEvent<D>;
  } catch {
    throw new WebhookVerificationError('invalid_body', 'the body is not JSON');
  }
}

export interface SignWebhookParams {
  /** The `webhook-id` (the event id). */
  id: string;
  /** The body, exactly as it will be sent. */
  body: WebhookBody;
  /** One secret, or several: one `v1,` entry each, in this order. */
  secret: string | readonly string[];
  /** Unix seconds (default: now). */
  timestamp?: number;
}

/** The three headers of a signed delivery (a type, not an interface, so it is a `WebhookHeaders` too). */
export type SignedWebhookHeaders = {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
};

/**
 * Signs a body as the gateway does, for tests of a receiver: returns the
 * `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
 */
export function signWebhook(params: SignWebhookParams): SignedWebhookHeaders {
  const ts = String(params.timestamp ?? Math.floor(Date.now() / 1000));
  const raw = bodyBytes(params.body);
  const signature = secretList(params.secret)
    .map((s) => 'v1,' + hmac(secretKey(s), params.id, ts, raw).toString('base64'))
    .join(' ');
  return { 'webhook-id': params.id, 'webhook-timestamp': ts, 'webhook-signature': signature };
}
