// @hookgate/sdk: a TypeScript client for the hookgate webhook gateway.
export { HookgateClient, AdminApi, Transport, OPERATIONS, SDK_VERSION } from './client.js';
export type { ClientOptions, RequestOptions, RetryOptions, OperationId } from './client.js';
export {
  HookgateError,
  BadRequestError,
  UnauthorizedError,
  ForbiddenError,
  NotFoundError,
  ConflictError,
  ValidationError,
  RateLimitedError,
  ServerError,
  TimeoutError,
  ConnectionError,
  AbortedError,
  parseRetryAfter,
} from './errors.js';
export type { ErrorDetail, HookgateErrorInit } from './errors.js';
export { verifyWebhook, signWebhook, WebhookVerificationError } from './verify.js';
export type {
  VerifyWebhookOptions,
  WebhookHeaders,
  WebhookBody,
  WebhookVerificationReason,
  SignWebhookParams,
  SignedWebhookHeaders,
} from './verify.js';
export { EVENT_TYPES, OPERATIONAL_EVENT_TYPES } from './types.js';
export type * from './types.js';
