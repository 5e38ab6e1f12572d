// Errors the client throws. Every API error answer has one shape:
// {"error": {"type", "message", "details": [{"field", "message", "offset"?}]}}.

/** One problem in a request, as the API names it (`url`, `events[1]`, `metadata.team`, `pageSize`, …). */
export interface ErrorDetail {
  field: string;
  message: string;
  /** For `invalid_json`: the byte offset where parsing stopped. */
  offset?: number;
}

export interface HookgateErrorInit {
  status: number;
  type: string;
  message: string;
  details?: ErrorDetail[];
  requestId?: string | null;
  retryAfter?: number | null;
  cause?: unknown;
}

/**
 * The base of every error the client throws: `status` is the HTTP status
 * (0 when no answer came), `type` the API's stable error type
 * (`not_found`, `validation_error`, …), `message` the API's sentence.
 */
export class HookgateError extends Error {
  readonly status: number;
  readonly type: string;
  readonly details: ErrorDetail[];
  /** The `X-Request-Id` of the answer (quote it when reporting a 500). */
  readonly requestId: string | null;

  constructor(init: HookgateErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status;
    this.type = init.type;
    this.details = init.details ?? [];
    this.requestId = init.requestId ?? null;
  }
}

/** 400: the body is not well-formed JSON (`invalid_json`) or the request is malformed (`bad_request`). */
export class BadRequestError extends HookgateError {}

/** 401: no API key, or an unknown or revoked one. */
export class UnauthorizedError extends HookgateError {}

/** 403: the key lacks the scope, or names another organization than its own. */
export class ForbiddenError extends HookgateError {}

/** 404: no such webhook or delivery (or not visible to this key). */
export class NotFoundError extends HookgateError {}

/** 409: an event id used by another organization; a replay of a delivery being sent right now. */
export class ConflictError extends HookgateError {}

/** 422: fields or query parameters are invalid; `details` names each one. */
export class ValidationError extends HookgateError {
  /** The fields named in `details`, in order. */
  get fields(): string[] {
    return this.details.map((d) => d.field);
  }
}

/** 429: too many requests. `retryAfter` is the `Retry-After` header in seconds, when given. */
export class RateLimitedError extends HookgateError {
  readonly retryAfter: number | null;
  constructor(init: HookgateErrorInit) {
    super(init);
    this.retryAfter = init.retryAfter ?? null;
  }
}

/** 5xx: the gateway failed, is shutting down, or its storage is full (`storage_full`, with `retryAfter`). */
export class ServerError extends HookgateError {
  readonly retryAfter: number | null;
  constructor(init: HookgateErrorInit) {
    super(init);
    this.retryAfter = init.retryAfter ?? null;
  }
}

/** No answer within the call's timeout (`timeoutMs`). `status` is 0, `type` is `timeout`. */
export class TimeoutError extends HookgateError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number, cause?: unknown) {
    super({ status: 0, type: 'timeout', message: `no answer within ${timeoutMs} ms`, cause });
    this.timeoutMs = timeoutMs;
  }
}

/** The request could not be sent or its answer not read (refused, reset, DNS). `status` is 0. */
export class ConnectionError extends HookgateError {
  constructor(message: string, cause?: unknown) {
    super({ status: 0, type: 'connection_error', message, cause });
  }
}

/** The caller's own `signal` aborted the call. `status` is 0. */
export class AbortedError extends HookgateError {
  constructor(cause?: unknown) {
    super({ status: 0, type: 'aborted', message: 'the call was aborted', cause });
  }
}

/** Builds the error for an API answer with a status of 400 or more. */
export function errorFromResponse(status: number, bodyText: string, headers: Headers): HookgateError {
  let type = `http_${status}`;
  let message = `HTTP ${status}`;
  let details: ErrorDetail[] = [];
  try {
    const parsed: unknown = JSON.parse(bodyText);
    const e = (parsed as { error?: unknown } | null)?.error as
      | { type?: unknown; message?: unknown; details?: unknown }
      | undefined;
    if (e && typeof e === 'object') {
      if (typeof e.type === 'string') type = e.type;
      if (typeof e.message === 'string') message = e.message;
      if (Array.isArray(e.details)) {
        details = e.details
          .filter((d): d is Record<string, unknown> => d !== null && typeof d === 'object')
          .map((d) => {
            const out: ErrorDetail = { field: String(d.field ?? ''), message: String(d.message ?? '') };
            if (typeof d.offset === 'number') out.offset = d.offset;
            return out;
          });
      }
    }
  } catch {
    if (bodyText) message = `HTTP ${status}: ${bodyText.slice(0, 200)}`;
  }
  const init: HookgateErrorInit = {
    status,
    type,
    message,
    details,
    requestId: headers.get('x-request-id'),
    retryAfter: parseRetryAfter(headers.get('retry-after')),
  };
  switch (status) {
    case 400:
      return new BadRequestError(init);
    case 401:
      return new UnauthorizedError(init);
    case 403:
      return new ForbiddenError(init);
    case 404:
      return new NotFoundError(init);
    case 409:
      return new ConflictError(init);
    case 422:
      return new ValidationError(init);
    case 429:
      return new RateLimitedError(init);
    default:
      return status >= 500 ? new ServerError(init) : new HookgateError(init);
  }
}

/**
 * `Retry-After` in seconds: delay-seconds, or an HTTP date (seconds from
 * now, at least 0); null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  if (!/[a-z]/i.test(v)) return null; // only a date spells a month or a weekday
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}
