/**
 * `@panelkit/core/http`: the HTTP layer the REST clients share (TLS options and pinning, capped reads,
 * time limits, socket/TLS errors as core errors, retries by idempotency and `Retry-After`). For
 * client authors; users of a client only meet its `TlsOptions` and limits.
 */
export {
  isIdempotentMethod,
  type RequestRetryOptions,
  retryAfterMs,
  retryRequest,
  shouldRetryRequest,
} from './retry.ts'
export {
  createTlsAgent,
  FINGERPRINT_MISMATCH,
  normaliseFingerprint,
  type TlsAgentOptions,
  type TlsOptions,
  warnOnce,
} from './tls.ts'
export {
  createHttpTransport,
  DEFAULT_MAX_RESPONSE_BYTES,
  type HttpLimits,
  type HttpRequest,
  type HttpResponse,
  type HttpTransport,
  type HttpTransportOptions,
  isNotSent,
  transportError,
} from './transport.ts'
