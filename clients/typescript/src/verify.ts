// Standard Webhooks signatures (https://www.standardwebhooks.com/), as
// hookgate signs its deliveries: HMAC-SHA256, keyed with the base64-decoded
// part of the secret after `whsec_`, of `<webhook-id>.<webhook-timestamp>.<body>`,
// sent as `webhook-signature: v1,<base64>` with one space-separated entry
// per secret still valid (several during a rotation's grace period).
// A v1a webhook signs the same content with Ed25519 instead: entries
// `v1a,<base64 signature>`, verified with its `whpk_…` public key (the raw
// 32-byte key in base64).
import { createHmac, createPublicKey, timingSafeEqual, verify as ed25519Verify, type KeyObject } from 'node:crypto';
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
const ED25519_SIG_BYTES = 64;
// DER of an Ed25519 SubjectPublicKeyInfo up to the raw key (RFC 8410).
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

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

/** A verification key: a v1 secret's HMAC key, or a v1a public key. */
type VerifyKey = { scheme: 'v1'; key: Buffer } | { scheme: 'v1a'; key: KeyObject };

/** The Ed25519 key of a `whpk_…` public key. */
function publicKey(whpk: string): KeyObject {
  const b64 = whpk.slice(5);
  const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(b64) ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
  if (raw.length !== 32) {
    throw new WebhookVerificationError('invalid_secret', 'the public key is not "whpk_" followed by the base64 of 32 bytes');
  }
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

function verifyKey(secret: string): VerifyKey {
  if (typeof secret === 'string' && secret.startsWith('whpk_')) return { scheme: 'v1a', key: publicKey(secret) };
  return { scheme: 'v1', key: secretKey(secret) };
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
 * `secret` is the webhook's `whsec_…` secret (a `v1` webhook) or its
 * `whpk_…` public key (a `v1a` webhook), or several (during a rotation):
 * the delivery is accepted when any `v1` signature in `webhook-signature`
 * matches any of the secrets, or any `v1a` signature verifies (Ed25519)
 * with any of the public keys. HMAC signatures are compared in constant
 * time. `webhook-timestamp` must be within `toleranceSeconds`
 * (default 300) of now. Throws `WebhookVerificationError` otherwise.
 */
export function verifyWebhook<D = Record<string, unknown>>(
  body: WebhookBody,
  headers: WebhookHeaders,
  secret: string | readonly string[],
  options: VerifyWebhookOptions = {},
): WebhookEvent<D> {
  const keys = secretList(secret).map(verifyKey);
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
  const expected: Buffer[] = [];
  const publicKeys: KeyObject[] = [];
  for (const k of keys) {
    if (k.scheme === 'v1') expected.push(hmac(k.key, id as string, ts, raw));
    else publicKeys.push(k.key);
  }
  const content = publicKeys.length > 0 ? Buffer.concat([Buffer.from(`${id}.${ts}.`, 'utf8'), raw]) : raw;
  let match = false;
  for (const entry of (signature as string).split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0) continue;
    const version = entry.slice(0, comma);
    const given = Buffer.from(entry.slice(comma + 1), 'base64');
    if (version === 'v1' && given.length === SIG_BYTES) {
      for (const e of expected) {
        // Every pair is compared, match or not: the time taken does not tell which one matched.
        if (timingSafeEqual(given, e)) match = true;
      }
    } else if (version === 'v1a' && given.length === ED25519_SIG_BYTES) {
      // A signature is public: checking it against each public key leaks nothing.
      for (const k of publicKeys) if (ed25519Verify(null, content, k, given)) match = true;
    }
    // Entries of other versions are not ours.
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
