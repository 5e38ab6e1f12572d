// The HTTP client: one method per API operation (docs/openapi.yaml's
// operationId), timeouts, and retries of idempotent calls.
import {
  AbortedError,
  ConnectionError,
  HookgateError,
  RateLimitedError,
  ServerError,
  TimeoutError,
  errorFromResponse,
} from './errors.js';
import type {
  CreateWebhookParams,
  DeliveryDetail,
  DeliveryList,
  DeliveryRef,
  DeliveryState,
  Delivery,
  EventTypeList,
  HealthResult,
  ListWebhookDeliveriesParams,
  ListWebhooksParams,
  PluginState,
  PublishEventParams,
  PublishEventResult,
  PublishEventsParams,
  PublishEventsResult,
  Recovery,
  RecoveryRef,
  RecoverWebhookDeliveriesParams,
  ReloadResult,
  ReplayResult,
  RotateSecretResult,
  RotateWebhookSecretParams,
  TestWebhookParams,
  TestWebhookResult,
  UpdateWebhookParams,
  Webhook,
  WebhookList,
  WebhookRef,
  WebhookWithSecret,
} from './types.js';

export const SDK_VERSION = '0.1.0';

export interface RetryOptions {
  /** Retries after the first attempt (default 2; 0 turns retries off). */
  maxRetries?: number;
  /** The first backoff (default 250 ms); it doubles on each retry. */
  initialDelayMs?: number;
  /** The longest backoff (default 8000 ms). */
  maxDelayMs?: number;
  /** A `Retry-After` longer than this is not waited for: the error is thrown (default 60000 ms). */
  maxRetryAfterMs?: number;
}

export interface ClientOptions {
  /** The gateway, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An API key (`hg_…`) or the admin key; sent as `Authorization: Bearer`. */
  apiKey?: string;
  /** Each attempt's timeout, headers and body (default 30000 ms). */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** Another fetch (default: the global one). */
  fetch?: typeof globalThis.fetch;
  /** Headers added to every request. */
  headers?: Record<string, string>;
}

/** Options of one call, over the client's. */
export interface RequestOptions {
  timeoutMs?: number;
  /** Aborts the call (also between retries); it then throws `AbortedError`. */
  signal?: AbortSignal;
  /** Overrides `retry.maxRetries` for this call. */
  maxRetries?: number;
}

type Query = Record<string, string | number | boolean | null | undefined>;

interface Call {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
  path: string;
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  /** Safe to send again: GET, or a POST/PUT that the gateway dedupes. */
  idempotent: boolean;
  /** Whether the call sends the API key (false for /healthz and /metrics). */
  auth?: boolean;
  /** How to read a successful answer. */
  read?: 'json' | 'text' | 'none';
  /** Statuses returned as success although >= 400 (health's 503). */
  okStatuses?: number[];
}

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

/**
 * Every operation of the API: its operationId in docs/openapi.yaml, HTTP
 * method and path, and the client method that calls it. A test checks this
 * table against the OpenAPI document and the calls each method makes.
 */
export const OPERATIONS = {
  health: { method: 'GET', path: '/healthz', sdk: 'health' },
  metrics: { method: 'GET', path: '/metrics', sdk: 'metrics' },
  createWebhook: { method: 'POST', path: '/v1/webhooks', sdk: 'admin.createWebhook' },
  listWebhooks: { method: 'GET', path: '/v1/webhooks', sdk: 'admin.listWebhooks' },
  getWebhook: { method: 'GET', path: '/v1/webhooks/{id}', sdk: 'admin.getWebhook' },
  updateWebhook: { method: 'PATCH', path: '/v1/webhooks/{id}', sdk: 'admin.updateWebhook' },
  deleteWebhook: { method: 'DELETE', path: '/v1/webhooks/{id}', sdk: 'admin.deleteWebhook' },
  rotateWebhookSecret: { method: 'POST', path: '/v1/webhooks/{id}/rotate-secret', sdk: 'admin.rotateWebhookSecret' },
  publishEvent: { method: 'POST', path: '/v1/events', sdk: 'admin.publishEvent' },
  publishEvents: { method: 'POST', path: '/v1/events/batch', sdk: 'admin.publishEvents' },
  listEventTypes: { method: 'GET', path: '/v1/event-types', sdk: 'admin.listEventTypes' },
  testWebhook: { method: 'POST', path: '/v1/webhooks/{id}/test', sdk: 'admin.testWebhook' },
  listWebhookDeliveries: { method: 'GET', path: '/v1/webhooks/{id}/deliveries', sdk: 'admin.listWebhookDeliveries' },
  getWebhookDelivery: { method: 'GET', path: '/v1/webhooks/{id}/deliveries/{deliveryId}', sdk: 'admin.getWebhookDelivery' },
  replayWebhookDelivery: {
    method: 'POST',
    path: '/v1/webhooks/{id}/deliveries/{deliveryId}/replay',
    sdk: 'admin.replayWebhookDelivery',
  },
  recoverWebhookDeliveries: {
    method: 'POST',
    path: '/v1/webhooks/{id}/recover',
    sdk: 'admin.recoverWebhookDeliveries',
  },
  getWebhookRecovery: {
    method: 'GET',
    path: '/v1/webhooks/{id}/recover/{recoveryId}',
    sdk: 'admin.getWebhookRecovery',
  },
  getDeliveryState: { method: 'GET', path: '/v1/admin/delivery', sdk: 'admin.getDeliveryState' },
  pauseDelivery: { method: 'POST', path: '/v1/admin/delivery/pause', sdk: 'admin.pauseDelivery' },
  resumeDelivery: { method: 'POST', path: '/v1/admin/delivery/resume', sdk: 'admin.resumeDelivery' },
  reload: { method: 'POST', path: '/v1/admin/reload', sdk: 'admin.reload' },
  listPlugins: { method: 'GET', path: '/v1/admin/plugins', sdk: 'admin.listPlugins' },
} as const;

export type OperationId = keyof typeof OPERATIONS;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError(signal.reason));
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      reject(new AbortedError(signal?.reason));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

const seg = (v: string) => {
  if (typeof v !== 'string' || v === '') throw new TypeError('an id must be a non-empty string');
  return encodeURIComponent(v);
};

/** The low-level transport; `client.admin` and the helpers call it. */
export class Transport {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly timeoutMs: number;
  readonly retry: Required<RetryOptions>;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly headers: Record<string, string>;

  constructor(options: ClientOptions) {
    if (!options || typeof options.baseUrl !== 'string' || options.baseUrl === '') {
      throw new TypeError('baseUrl is required, e.g. "http://127.0.0.1:8080"');
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? 30000;
    this.retry = {
      maxRetries: options.retry?.maxRetries ?? 2,
      initialDelayMs: options.retry?.initialDelayMs ?? 250,
      maxDelayMs: options.retry?.maxDelayMs ?? 8000,
      maxRetryAfterMs: options.retry?.maxRetryAfterMs ?? 60000,
    };
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('no fetch: use Node.js 18 or later, or pass options.fetch');
    this.fetchImpl = f;
    this.headers = { ...(options.headers ?? {}) };
  }

  /** Backoff before retry number `n` (from 0): exponential, with the upper half jittered. */
  backoff(n: number): number {
    const cap = Math.min(this.retry.maxDelayMs, this.retry.initialDelayMs * 2 ** n);
    return cap / 2 + Math.random() * (cap / 2);
  }

  async call(c: Call, opts: RequestOptions = {}): Promise<Answer> {
    const maxRetries = c.idempotent ? (opts.maxRetries ?? this.retry.maxRetries) : 0;
    for (let n = 0; ; n++) {
      let answer: Answer;
      try {
        answer = await this.attempt(c, opts);
      } catch (err) {
        const transient = err instanceof TimeoutError || err instanceof ConnectionError;
        if (!transient || n >= maxRetries) throw err;
        await sleep(this.backoff(n), opts.signal);
        continue;
      }
      if (answer.status < 400 || c.okStatuses?.includes(answer.status)) return answer;
      const err = errorFromResponse(answer.status, answer.body as string, answer.headers);
      const retryable = answer.status === 429 || answer.status >= 500;
      if (!retryable || n >= maxRetries) throw err;
      const retryAfter = err instanceof RateLimitedError || err instanceof ServerError ? err.retryAfter : null;
      let delay = this.backoff(n);
      if (retryAfter !== null) {
        if (retryAfter * 1000 > this.retry.maxRetryAfterMs) throw err;
        delay = retryAfter * 1000;
      }
      await sleep(delay, opts.signal);
    }
  }

  private url(c: Call): string {
    let u = this.baseUrl + c.path;
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(c.query ?? {})) {
      if (v === undefined || v === null) continue;
      q.append(k, String(v));
    }
    const s = q.toString();
    if (s) u += '?' + s;
    return u;
  }

  private async attempt(c: Call, opts: RequestOptions): Promise<Answer> {
    if (opts.signal?.aborted) throw new AbortedError(opts.signal.reason);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, timeoutMs);
    const onAbort = () => ctl.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const headers: Record<string, string> = {
      accept: c.read === 'text' ? 'text/plain' : 'application/json',
      'user-agent': `hookgate-sdk-typescript/${SDK_VERSION}`,
      ...this.headers,
      ...(c.headers ?? {}),
    };
    if (c.auth !== false && this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let body: string | undefined;
    if (c.body !== undefined) {
      body = JSON.stringify(c.body);
      headers['content-type'] = 'application/json';
    }
    try {
      const res = await this.fetchImpl(this.url(c), { method: c.method, headers, body, signal: ctl.signal });
      const text = await res.text();
      let parsed: unknown = text;
      if (res.status < 400 || c.okStatuses?.includes(res.status)) {
        if (c.read === 'none' || res.status === 204) parsed = undefined;
        else if (c.read !== 'text') {
          try {
            parsed = JSON.parse(text);
          } catch (e) {
            throw new HookgateError({
              status: res.status,
              type: 'invalid_response',
              message: `the gateway answered ${res.status} with a body that is not JSON`,
              requestId: res.headers.get('x-request-id'),
              cause: e,
            });
          }
        }
      }
      return { status: res.status, headers: res.headers, body: parsed };
    } catch (err) {
      if (err instanceof HookgateError) throw err;
      if (timedOut) throw new TimeoutError(timeoutMs, err);
      if (opts.signal?.aborted) throw new AbortedError(opts.signal.reason);
      const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
      const detail = cause?.code || cause?.message || (err as Error)?.message || String(err);
      throw new ConnectionError(`could not reach ${this.baseUrl}: ${detail}`, err);
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/**
 * The management calls, named as the identity platform SDK's
 * `client.admin.*` webhook calls and as docs/openapi.yaml's operationIds.
 */
export class AdminApi {
  constructor(private readonly t: Transport) {}

  // ---- Webhooks ----

  /** `POST /v1/webhooks`: registers an endpoint; the answer holds its secret, shown only here. */
  async createWebhook(params: CreateWebhookParams, opts?: RequestOptions): Promise<WebhookWithSecret> {
    const body = pick(params, ['url', 'events', 'organizationId', 'secret', 'signatureScheme', 'active', 'metadata', 'plugins', 'transform', 'disableAfter', 'rateLimit', 'maxConcurrency', 'ordering'] as const);
    return (await this.t.call({ method: 'POST', path: '/v1/webhooks', body, idempotent: false }, opts)).body as WebhookWithSecret;
  }

  /** `GET /v1/webhooks`: one page of webhooks, newest first. */
  async listWebhooks(params: ListWebhooksParams = {}, opts?: RequestOptions): Promise<WebhookList> {
    const query = { pageSize: params.pageSize, pageToken: params.pageToken || undefined, organizationId: params.organizationId };
    return (await this.t.call({ method: 'GET', path: '/v1/webhooks', query, idempotent: true }, opts)).body as WebhookList;
  }

  /** Every page of `listWebhooks`, following `nextPageToken`. */
  async *listWebhooksPages(params: ListWebhooksParams = {}, opts?: RequestOptions): AsyncGenerator<WebhookList, void, undefined> {
    let pageToken = params.pageToken ?? null;
    do {
      const page = await this.listWebhooks({ ...params, pageToken }, opts);
      yield page;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Every webhook, page after page (`for await (const wh of client.admin.iterateWebhooks())`). */
  async *iterateWebhooks(params: ListWebhooksParams = {}, opts?: RequestOptions): AsyncGenerator<Webhook, void, undefined> {
    for await (const page of this.listWebhooksPages(params, opts)) yield* page.webhooks;
  }

  /** `GET /v1/webhooks/{id}`. */
  async getWebhook(params: WebhookRef, opts?: RequestOptions): Promise<Webhook> {
    const path = `/v1/webhooks/${seg(params.webhookId)}`;
    return (await this.t.call({ method: 'GET', path, idempotent: true }, opts)).body as Webhook;
  }

  /** `PATCH /v1/webhooks/{id}`: changes the fields given. */
  async updateWebhook(params: UpdateWebhookParams, opts?: RequestOptions): Promise<Webhook> {
    const path = `/v1/webhooks/${seg(params.webhookId)}`;
    const body = pick(params, ['url', 'events', 'active', 'metadata', 'plugins', 'transform', 'disableAfter', 'rateLimit', 'maxConcurrency', 'ordering'] as const);
    return (await this.t.call({ method: 'PATCH', path, body, idempotent: false }, opts)).body as Webhook;
  }

  /** `DELETE /v1/webhooks/{id}`: the webhook, its secrets and its deliveries. */
  async deleteWebhook(params: WebhookRef, opts?: RequestOptions): Promise<void> {
    const path = `/v1/webhooks/${seg(params.webhookId)}`;
    await this.t.call({ method: 'DELETE', path, idempotent: false, read: 'none' }, opts);
  }

  /** `POST /v1/webhooks/{id}/rotate-secret`: a new secret; the old one signs beside it for the grace period. */
  async rotateWebhookSecret(params: RotateWebhookSecretParams, opts?: RequestOptions): Promise<RotateSecretResult> {
    const path = `/v1/webhooks/${seg(params.webhookId)}/rotate-secret`;
    const body = pick(params, ['gracePeriodHours'] as const);
    return (await this.t.call({ method: 'POST', path, body, idempotent: false }, opts)).body as RotateSecretResult;
  }

  // ---- Events ----

  /**
   * `POST /v1/events`: publishes one event. Retried on 429/5xx and network
   * errors only when it carries an `idempotencyKey` or its own `id`.
   */
  async publishEvent(params: PublishEventParams, opts?: RequestOptions): Promise<PublishEventResult> {
    const body = pick(params, ['type', 'data', 'organizationId', 'id'] as const);
    const headers: Record<string, string> = {};
    if (params.idempotencyKey !== undefined) headers['idempotency-key'] = params.idempotencyKey;
    const idempotent = params.idempotencyKey !== undefined || params.id !== undefined;
    const a = await this.t.call({ method: 'POST', path: '/v1/events', body, headers, idempotent }, opts);
    const r = a.body as PublishEventResult;
    return { ...r, idempotentReplayed: a.headers.get('idempotent-replayed') === 'true' };
  }

  /**
   * `POST /v1/events/batch`: 1 to 1000 events, stored all or nothing.
   * Retried only when every event carries its own `id`.
   */
  async publishEvents(params: PublishEventsParams, opts?: RequestOptions): Promise<PublishEventsResult> {
    const events = params.events.map((e) => pick(e, ['type', 'data', 'organizationId', 'id'] as const));
    const idempotent = events.length > 0 && events.every((e) => e.id !== undefined);
    return (await this.t.call({ method: 'POST', path: '/v1/events/batch', body: { events }, idempotent }, opts))
      .body as PublishEventsResult;
  }

  /** `GET /v1/event-types`: the 15 built-in types, then the config's. */
  async listEventTypes(opts?: RequestOptions): Promise<EventTypeList> {
    return (await this.t.call({ method: 'GET', path: '/v1/event-types', idempotent: true }, opts)).body as EventTypeList;
  }

  // ---- Deliveries ----

  /** `POST /v1/webhooks/{id}/test`: sends one event to this webhook now and answers the outcome. */
  async testWebhook(params: TestWebhookParams, opts?: RequestOptions): Promise<TestWebhookResult> {
    const path = `/v1/webhooks/${seg(params.webhookId)}/test`;
    const body = pick(params, ['event', 'data'] as const);
    return (await this.t.call({ method: 'POST', path, body, idempotent: false }, opts)).body as TestWebhookResult;
  }

  /** `GET /v1/webhooks/{id}/deliveries`: one page of the delivery log, newest first. */
  async listWebhookDeliveries(params: ListWebhookDeliveriesParams, opts?: RequestOptions): Promise<DeliveryList> {
    const path = `/v1/webhooks/${seg(params.webhookId)}/deliveries`;
    const query = { pageSize: params.pageSize, pageToken: params.pageToken || undefined, status: params.status, event: params.event };
    return (await this.t.call({ method: 'GET', path, query, idempotent: true }, opts)).body as DeliveryList;
  }

  /** Every page of `listWebhookDeliveries`. */
  async *listWebhookDeliveriesPages(
    params: ListWebhookDeliveriesParams,
    opts?: RequestOptions,
  ): AsyncGenerator<DeliveryList, void, undefined> {
    let pageToken = params.pageToken ?? null;
    do {
      const page = await this.listWebhookDeliveries({ ...params, pageToken }, opts);
      yield page;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Every delivery of a webhook, page after page. */
  async *iterateWebhookDeliveries(
    params: ListWebhookDeliveriesParams,
    opts?: RequestOptions,
  ): AsyncGenerator<Delivery, void, undefined> {
    for await (const page of this.listWebhookDeliveriesPages(params, opts)) yield* page.deliveries;
  }

  /** `GET /v1/webhooks/{id}/deliveries/{deliveryId}`: one delivery with its attempts. */
  async getWebhookDelivery(params: DeliveryRef, opts?: RequestOptions): Promise<DeliveryDetail> {
    const path = `/v1/webhooks/${seg(params.webhookId)}/deliveries/${seg(params.deliveryId)}`;
    return (await this.t.call({ method: 'GET', path, idempotent: true }, opts)).body as DeliveryDetail;
  }

  /** `POST …/deliveries/{deliveryId}/replay`: sends a delivery again (same body and webhook-id). */
  async replayWebhookDelivery(params: DeliveryRef, opts?: RequestOptions): Promise<ReplayResult> {
    const path = `/v1/webhooks/${seg(params.webhookId)}/deliveries/${seg(params.deliveryId)}/replay`;
    return (await this.t.call({ method: 'POST', path, idempotent: false }, opts)).body as ReplayResult;
  }

  /**
   * `POST /v1/webhooks/{id}/recover`: sends a window of ended deliveries again (and, with `missed`,
   * the events the webhook never got). Runs in the background: poll `getWebhookRecovery` until
   * `state` is no longer `running`. Not retried (a retry after a lost answer could start a second
   * recovery; only what is still failed would go again).
   */
  async recoverWebhookDeliveries(params: RecoverWebhookDeliveriesParams, opts?: RequestOptions): Promise<Recovery> {
    const { webhookId, ...body } = params;
    const path = `/v1/webhooks/${seg(webhookId)}/recover`;
    return (await this.t.call({ method: 'POST', path, body, idempotent: false }, opts)).body as Recovery;
  }

  /** `GET /v1/webhooks/{id}/recover/{recoveryId}`: a recovery's progress (kept by the node that runs it). */
  async getWebhookRecovery(params: RecoveryRef, opts?: RequestOptions): Promise<Recovery> {
    const path = `/v1/webhooks/${seg(params.webhookId)}/recover/${seg(params.recoveryId)}`;
    return (await this.t.call({ method: 'GET', path, idempotent: true }, opts)).body as Recovery;
  }

  // ---- Gateway administration (scope `admin`) ----

  /** `GET /v1/admin/delivery`. */
  async getDeliveryState(opts?: RequestOptions): Promise<DeliveryState> {
    return (await this.t.call({ method: 'GET', path: '/v1/admin/delivery', idempotent: true }, opts)).body as DeliveryState;
  }

  /** `POST /v1/admin/delivery/pause`: no new attempt starts from the queue. Idempotent. */
  async pauseDelivery(opts?: RequestOptions): Promise<DeliveryState> {
    return (await this.t.call({ method: 'POST', path: '/v1/admin/delivery/pause', idempotent: true }, opts)).body as DeliveryState;
  }

  /** `POST /v1/admin/delivery/resume`. Idempotent. */
  async resumeDelivery(opts?: RequestOptions): Promise<DeliveryState> {
    return (await this.t.call({ method: 'POST', path: '/v1/admin/delivery/resume', idempotent: true }, opts)).body as DeliveryState;
  }

  /** `POST /v1/admin/reload`: reloads the Lua plugins (a 422 lists what failed; nothing changes then). */
  async reload(opts?: RequestOptions): Promise<ReloadResult> {
    return (await this.t.call({ method: 'POST', path: '/v1/admin/reload', idempotent: false }, opts)).body as ReloadResult;
  }

  /** `GET /v1/admin/plugins`: the bound plugins in run order, and those available. */
  async listPlugins(opts?: RequestOptions): Promise<PluginState> {
    return (await this.t.call({ method: 'GET', path: '/v1/admin/plugins', idempotent: true }, opts)).body as PluginState;
  }
}

/**
 * A hookgate client.
 *
 * ```ts
 * const client = new HookgateClient({ baseUrl: 'http://127.0.0.1:8080', apiKey: process.env.HOOKGATE_KEY });
 * const webhook = await client.admin.createWebhook({ url: 'https://app.test/hooks', events: ['user.created'] });
 * ```
 */
export class HookgateClient {
  /** The management API: webhooks, events, deliveries, gateway administration. */
  readonly admin: AdminApi;
  private readonly t: Transport;

  constructor(options: ClientOptions) {
    this.t = new Transport(options);
    this.admin = new AdminApi(this.t);
  }

  /** `GET /healthz` (no key): `{status: "ok"}`, or `{status: "shutting_down"}` during a graceful shutdown. Not retried. */
  async health(opts?: RequestOptions): Promise<HealthResult> {
    const a = await this.t.call(
      { method: 'GET', path: '/healthz', idempotent: false, auth: false, okStatuses: [503] },
      opts,
    );
    return a.body as HealthResult;
  }

  /** `GET /metrics` (no key): the Prometheus text. */
  async metrics(opts?: RequestOptions): Promise<string> {
    return (await this.t.call({ method: 'GET', path: '/metrics', idempotent: true, auth: false, read: 'text' }, opts)).body as string;
  }
}
