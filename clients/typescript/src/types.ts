// The shapes of hookgate's HTTP API (docs/api.md, docs/openapi.yaml), field
// for field: camelCase JSON, as the gateway writes it.

/** The 15 built-in event types, in the order `GET /v1/event-types` lists them. */
export const EVENT_TYPES = [
  'user.created',
  'user.updated',
  'user.deleted',
  'session.created',
  'session.revoked',
  'organization.created',
  'organization.updated',
  'organization.member.added',
  'organization.member.removed',
  'oauth.consent.granted',
  'oauth.consent.revoked',
  'mfa.enrolled',
  'mfa.removed',
  'sso.connection.created',
  'directory.sync.completed',
] as const;

/** One of the 15 built-in event types. */
export type BuiltinEventType = (typeof EVENT_TYPES)[number];

/**
 * The gateway's own operational events, listed after the built-in types by
 * `GET /v1/event-types`: subscribed to by name or prefix (`webhook.*`), never
 * through `*`, and never published by clients.
 */
export const OPERATIONAL_EVENT_TYPES = ['webhook.disabled', 'webhook.recovered', 'delivery.exhausted'] as const;

/** One of the gateway's operational event types. */
export type OperationalEventType = (typeof OPERATIONAL_EVENT_TYPES)[number];

/**
 * An event type: one of the built-in ones (suggested by editors), or a
 * custom type the gateway's config adds (`webhooks.event_types`, e.g.
 * `invoice.paid`).
 */
// `string & {}` keeps the literals visible to completion while any string is accepted.
export type EventType = BuiltinEventType | OperationalEventType | (string & {});

/**
 * What a webhook subscribes to: an event type, a prefix pattern such as
 * `user.*` or `organization.member.*`, or `*` for everything.
 */
export type EventPattern = EventType | `${string}.*` | '*';

/** Custom string-to-string data on a webhook (up to 50 keys). */
export type Metadata = Record<string, string>;

/**
 * How a webhook's deliveries are signed (Standard Webhooks): `v1` is
 * HMAC-SHA256 with a shared `whsec_…` secret; `v1a` is Ed25519, the gateway
 * keeping the private key and receivers verifying with the `whpk_…` public key.
 */
export type SignatureScheme = 'v1' | 'v1a';

/**
 * A webhook's delivery order. `fifo`: its deliveries go out one at a time,
 * in the order their events were accepted; while the oldest pending one is
 * retrying nothing behind it is sent, and once it succeeds or is `failed`
 * the next goes. Tests are outside the line; a replay of an ended delivery
 * and a recovery's requeues join its end.
 */
export type Ordering = 'fifo';

/** A webhook endpoint, as the API answers it (without its secret). */
export interface Webhook {
  /** `wh_` and 26 characters; ids sort by creation time. */
  id: string;
  url: string;
  events: EventPattern[];
  organizationId: string | null;
  active: boolean;
  metadata: Metadata;
  /** RFC 3339, UTC, milliseconds. */
  createdAt: string;
  updatedAt: string;
  /** The Lua plugins bound to this webhook ([] when none); secret config fields read `"[redacted]"`. */
  plugins: PluginBinding[];
  /** The webhook's own Lua transform code, or null. */
  transform: string | null;
  /** Set at creation, never changed. */
  signatureScheme: SignatureScheme;
  /** `v1a`: the current public key (`whpk_…`), which signs new deliveries; null for `v1`. */
  publicKey: string | null;
  /** `v1a`: every public key that still signs, newest first (more than one during a rotation's grace period); [] for `v1`. */
  publicKeys: string[];
  /** When the webhook was made inactive (by the gateway or a PATCH); null while active. */
  disabledAt: string | null;
  /** Why it is inactive; null while active. */
  disabledReason: DisabledReason | null;
  /** Its own disable rule; null: the gateway's (`delivery.disable_after`). */
  disableAfter: DisableAfter | null;
  /** The first failed attempt since the last success; null when not failing. */
  failingSince: string | null;
  /** Deliveries in a row that failed every attempt, since the last success or re-enabling. */
  exhaustedDeliveries: number;
  /** The most deliveries per second sent to it (0.01–10000, per node); null: no limit. */
  rateLimit: number | null;
  /** The most attempts open at once to it (1–1000, per node); null: no limit of its own. */
  maxConcurrency: number | null;
  /** `fifo`: one delivery at a time, in the order the events were accepted, a failing head holding the rest; null: unordered. */
  ordering: Ordering | null;
}

/** Why a webhook is inactive. */
export type DisabledReasonCode = 'consecutive_failures' | 'gone' | 'retry_policy' | 'manual';

export interface DisabledReason {
  code: DisabledReasonCode;
  /** A sentence for people. */
  message: string;
}

/**
 * When a failing webhook is disabled: both must hold; a key left out takes
 * the gateway's value, 0 leaves its condition out.
 */
export interface DisableAfter {
  /** Deliveries in a row that failed every attempt (0 – 1 000 000). */
  exhausted?: number;
  /** How long no delivery has succeeded: `"5d"`, `"12h"`, `"30m"`, `"90s"`, or seconds; answered as a duration. */
  failingFor?: string | number;
}

/** `webhook.disabled`: the gateway made a webhook inactive. */
export interface WebhookDisabledEvent {
  type: 'webhook.disabled';
  /** RFC 3339, UTC, milliseconds. */
  timestamp: string;
  data: WebhookDisabledData;
}

export interface WebhookDisabledData {
  webhookId: string;
  disabledAt: string;
  disabledReason: DisabledReason;
  exhaustedDeliveries: number;
  failingSince: string | null;
  /** The delivery whose last attempt disabled it, and its event. */
  deliveryId: string;
  eventId: string;
}

/** `webhook.recovered`: the first success after exhausted deliveries. */
export interface WebhookRecoveredEvent {
  type: 'webhook.recovered';
  timestamp: string;
  data: WebhookRecoveredData;
}

export interface WebhookRecoveredData {
  webhookId: string;
  recoveredAt: string;
  /** The streak this success ended. */
  exhaustedDeliveries: number;
  failingSince: string | null;
  /** The delivery that succeeded, and its event. */
  deliveryId: string;
  eventId: string;
}

/** `delivery.exhausted`: a delivery's last attempt failed. */
export interface DeliveryExhaustedEvent {
  type: 'delivery.exhausted';
  timestamp: string;
  data: DeliveryExhaustedData;
}

export interface DeliveryExhaustedData {
  webhookId: string;
  deliveryId: string;
  eventId: string;
  eventType: string;
  attempts: number;
  /** null when the last attempt got no answer. */
  lastStatusCode: number | null;
  /** Deliveries in a row that failed every attempt, this one included. */
  exhaustedDeliveries: number;
  failingSince: string | null;
}

/** Any of the gateway's operational events, as a receiver gets it. */
export type OperationalEvent = WebhookDisabledEvent | WebhookRecoveredEvent | DeliveryExhaustedEvent;

/** A plugin bound to one webhook: a loaded plugin's name and its configuration (default `{}`). */
export type PluginBinding = { name: string; config?: Record<string, unknown> };

/** A webhook as answered by `createWebhook`: a `v1` webhook with its signing secret, shown only then. */
export interface WebhookWithSecret extends Webhook {
  /** `v1` only: `whsec_…`, keep it to verify deliveries. A `v1a` webhook has none (verify with `publicKey`). */
  secret?: string;
}

/** One page of webhooks. */
export interface WebhookList {
  webhooks: Webhook[];
  /** Pass as `pageToken` for the next page; null on the last page. */
  nextPageToken: string | null;
}

export type DeliveryStatus = 'pending' | 'success' | 'failed' | 'skipped';

/** A delivery in the delivery log (`listWebhookDeliveries`). */
export interface Delivery {
  /** `del_` and 26 characters. */
  id: string;
  /** The event's id: the `webhook-id` receivers got. */
  eventId: string;
  /** The event's type (`webhook.test` for a default test). */
  event: EventType;
  status: DeliveryStatus;
  /** HTTP status of the last attempt; 0 when it got no answer; null before the first attempt. */
  statusCode: number | null;
  /** How many attempts were made. */
  attempts: number;
  createdAt: string;
  updatedAt: string;
  /** When the next attempt is due, while `pending`; null otherwise. */
  nextAttemptAt: string | null;
}

/** One attempt of a delivery. */
export interface DeliveryAttempt {
  /** `att_` and 26 characters. */
  id: string;
  /** Its number, from 1. */
  attempt: number;
  startedAt: string;
  durationMs: number;
  /** The receiver's status; null when no answer came. */
  statusCode: number | null;
  /** The start of the receiver's answer (up to 64 KiB); null when none. */
  responseBody: string | null;
  /** Why it failed (`HTTP 500`, `connection refused`, `ssrf: …`), or null. */
  error: string | null;
  /**
   * The headers of the request made on this attempt, name → value, names as sent. The gateway's
   * own headers (Content-Type, webhook-id, webhook-timestamp, webhook-signature, User-Agent,
   * Content-Length) show their values; every other value is `"[redacted]"`. Host is left out.
   * Null when no request was made, and for attempts recorded before the gateway kept them.
   */
  requestHeaders: Record<string, string> | null;
}

/** One delivery with its attempts, oldest first (`getWebhookDelivery`). */
export interface DeliveryDetail extends Omit<Delivery, 'attempts'> {
  attempts: DeliveryAttempt[];
  /**
   * The event as receivers get it by default, `{ type, timestamp, data }`, before any transform
   * (null if the gateway cannot parse it back: a number beyond a double's range).
   */
  payload: WebhookEvent | null;
}

/** One page of the delivery log. */
export interface DeliveryList {
  deliveries: Delivery[];
  nextPageToken: string | null;
}

/** The outcome of `testWebhook`. */
export interface TestWebhookResult {
  /** The receiver's status; 0 when no answer came. */
  statusCode: number;
  /** The start of the receiver's answer; `""` when there was none. */
  responseBody: string;
  durationMs: number;
  /** True for a 2xx answer. */
  success: boolean;
  /** The test's delivery, in the delivery log (it can be replayed). */
  deliveryId: string;
  /** Why it failed, or null. */
  error: string | null;
}

/** The answer to `replayWebhookDelivery`: the delivery is pending again. */
export interface ReplayResult {
  id: string;
  status: 'pending';
}

/** A bulk recovery (`recoverWebhookDeliveries`, `getWebhookRecovery`). */
export interface Recovery {
  /** `rcv_…`. */
  id: string;
  webhookId: string;
  /** `running`, then `done`, `failed` (see `error`) or `stopped` (the gateway stopped). */
  state: 'running' | 'done' | 'failed' | 'stopped';
  since: string;
  until: string;
  /** Which ended deliveries go again. */
  status: 'failed' | 'skipped' | 'all';
  missed: boolean;
  dryRun: boolean;
  createdAt: string;
  finishedAt: string | null;
  /** Deliveries made pending so far (not on a dry run). */
  requeued?: number;
  /** A dry run: deliveries that would go again (counted up to 1,000,000). */
  count?: number;
  /** A dry run: true when there are more than `count`. */
  countCapped?: boolean;
  /** With `missed`: events found that the webhook never got. */
  missedFound?: number;
  /** With `missed`, not a dry run: deliveries added for them. */
  missedAdded?: number;
  error: string | null;
}

/** The answer to `rotateWebhookSecret`. */
export interface RotateSecretResult {
  /** `v1`: the new `whsec_…` secret; it signs from now on. */
  secret?: string;
  /** `v1a`: the new key pair's public key (`whpk_…`); its private key signs from now on. */
  publicKey?: string;
  /** `v1a`: every public key that still signs, newest first. */
  publicKeys?: string[];
  /** When the previous secret stops signing. */
  previousSecretExpiresAt: string;
}

/** The answer to `publishEvent` (and one entry of `publishEvents`). */
export interface EventAccepted {
  /** The event id (`evt_…`, or the publisher's own `id`). */
  id: string;
  /** How many deliveries it fanned out into. */
  deliveries: number;
}

/** `publishEvent`'s answer, with whether it was answered from an earlier event. */
export interface PublishEventResult extends EventAccepted {
  /**
   * True when the gateway answered with an earlier event (same
   * `Idempotency-Key` or `id`; header `Idempotent-Replayed: true`): nothing
   * new was stored or sent. Not part of the JSON body.
   */
  idempotentReplayed: boolean;
}

export interface PublishEventsResult {
  /** One entry per event, in request order. */
  events: EventAccepted[];
}

export interface EventTypeList {
  eventTypes: EventType[];
}

/** The gateway's delivery state (`getDeliveryState`, `pauseDelivery`, `resumeDelivery`). */
export interface DeliveryState {
  paused: boolean;
  /** Pending deliveries in the in-memory queue, due now or later. */
  queued: number;
  /** Deliveries being loaded, sent or recorded right now. */
  inFlight: number;
}

export interface PluginInfo {
  name: string;
  version: string;
  priority: number;
  phases: string[];
  /** Its configuration, fields marked secret redacted. */
  config: Record<string, unknown>;
}

/** `listPlugins`: the bound plugins in run order, and every plugin available for per-webhook binding. */
export interface PluginState {
  plugins: PluginInfo[];
  available: string[];
}

export interface ReloadResult {
  status: 'reloaded';
  plugins: PluginState;
}

export interface HealthResult {
  /** `ok` while serving; `shutting_down` once a graceful shutdown began (HTTP 503). */
  status: 'ok' | 'shutting_down';
}

/** The body every delivery carries, as a receiver parses it. */
export interface WebhookEvent<D = Record<string, unknown>> {
  type: EventType;
  /** When the gateway accepted the event (RFC 3339). */
  timestamp: string;
  data: D;
}

// ---- Parameters ----

export interface CreateWebhookParams {
  /** The receiver: an https URL (http only if the gateway allows it). */
  url: string;
  /** Event types and patterns to subscribe to. */
  events: EventPattern[];
  /** Scope to an organization; left out: none, or the key's organization. */
  organizationId?: string | null;
  /** `v1` only: `whsec_…`; generated when left out. */
  secret?: string;
  /** `v1` (default) or `v1a`; cannot be changed later. */
  signatureScheme?: SignatureScheme;
  /** Deliver at once (default true). */
  active?: boolean;
  metadata?: Metadata;
  /** Lua plugins for this webhook's deliveries (at most 20). */
  plugins?: PluginBinding[];
  /** Lua transform code run in the sandbox (at most 64 KiB), or null. */
  transform?: string | null;
  /** Its own disable rule; null or left out: the gateway's. */
  disableAfter?: DisableAfter | null;
  /** Deliveries per second at most (0.01–10000); null or left out: no limit. */
  rateLimit?: number | null;
  /** Attempts open at once at most (1–1000); null or left out: no limit of its own. */
  maxConcurrency?: number | null;
  /** `fifo`: one delivery at a time, in event order; null or left out: unordered. */
  ordering?: Ordering | null;
}

export interface WebhookRef {
  webhookId: string;
}

export interface UpdateWebhookParams extends WebhookRef {
  url?: string;
  /** Replaces the subscription list whole. */
  events?: EventPattern[];
  /** `true` re-enables a disabled webhook (clears `disabledAt`, `disabledReason` and its failing streak). */
  active?: boolean;
  /** Replaces the metadata whole (not merged). */
  metadata?: Metadata;
  /** Replaces the plugin bindings whole; [] removes them. */
  plugins?: PluginBinding[];
  /** Replaces the transform code; null removes it. */
  transform?: string | null;
  /** Its own disable rule; null: back to the gateway's. */
  disableAfter?: DisableAfter | null;
  /** Deliveries per second at most (0.01–10000); null: no limit. */
  rateLimit?: number | null;
  /** Attempts open at once at most (1–1000); null: no limit of its own. */
  maxConcurrency?: number | null;
  /** `fifo`: pending deliveries line up in the order they were created; null: the line's waiting deliveries go at once. */
  ordering?: Ordering | null;
}

export interface PageParams {
  /** 1–100, default 25. */
  pageSize?: number;
  /** The `nextPageToken` of the previous page. */
  pageToken?: string | null;
}

export interface ListWebhooksParams extends PageParams {
  organizationId?: string;
}

export interface RotateWebhookSecretParams extends WebhookRef {
  /** 0–168 hours the current secret keeps signing beside the new one (default 24). */
  gracePeriodHours?: number;
}

export interface TestWebhookParams extends WebhookRef {
  /** A known event type; default `webhook.test`. */
  event?: EventType;
  /** Default `{"test":true,"webhookId":"wh_…"}`. */
  data?: Record<string, unknown>;
}

export interface ListWebhookDeliveriesParams extends WebhookRef, PageParams {
  status?: DeliveryStatus;
  /** An exact event type (not a pattern). */
  event?: EventType;
}

export interface DeliveryRef extends WebhookRef {
  deliveryId: string;
}

export interface RecoverWebhookDeliveriesParams extends WebhookRef {
  /** ISO 8601 date or date-time (UTC when it names no offset): deliveries created at or after it. */
  since: string;
  /** Deliveries created before it; default now. At most 366 days after `since`. */
  until?: string;
  /** Which ended deliveries go again; default `failed`. */
  status?: 'failed' | 'skipped' | 'all';
  /** Also add deliveries for the events in the window the webhook never got. */
  missed?: boolean;
  /** Count only; nothing changes. */
  dryRun?: boolean;
}

export interface RecoveryRef extends WebhookRef {
  recoveryId: string;
}

export interface EventInput<D = Record<string, unknown>> {
  type: EventType;
  /** Any JSON object. */
  data: D;
  organizationId?: string | null;
  /** Your own event id: it becomes the `webhook-id`; a repeat answers the first event. */
  id?: string;
}

export interface PublishEventParams<D = Record<string, unknown>> extends EventInput<D> {
  /** Sent as the `Idempotency-Key` header: a repeat within 24 h answers the first event. Makes the call retryable. */
  idempotencyKey?: string;
}

export interface PublishEventsParams {
  /** 1 to 1000 events, stored all or nothing. */
  events: EventInput[];
}
