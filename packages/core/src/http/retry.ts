import { isPanelkitError, type RateLimitedError } from '../errors.ts'
import { type RetryPolicy, retry } from '../retry.ts'
import { isNotSent } from './transport.ts'

/**
 * When a failed request may be sent again. A request that never reached the server (refused, unknown
 * host) always may; a 5xx, a reset or a timeout may have come after the server acted, so only an
 * idempotent request is repeated; a 429 is repeated when the server's `Retry-After` is short enough.
 */

export interface RequestRetryOptions {
  /** The backoff; `false` sends once. */
  policy?: Partial<RetryPolicy> | false
  /** Safe to repeat after the server may have acted (GET, PUT, DELETE by default; a caller may say otherwise). */
  idempotent: boolean
  signal?: AbortSignal | undefined
  /** A `Retry-After` longer than this is not waited for: the RateLimitedError goes to the caller. Default 60 s. */
  maxRetryAfterMs?: number
  /** The package's own verdict first (lock errors, token refresh): true or false decides, undefined falls through. */
  classify?: (error: unknown, attempt: number) => boolean | undefined
}

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

/** RFC 9110's idempotent methods. */
export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase())
}

export function shouldRetryRequest(
  error: unknown,
  options: { idempotent: boolean; maxRetryAfterMs?: number },
): boolean {
  if (!isPanelkitError(error)) return false
  if (error.kind === 'RATE_LIMITED') {
    const wait = (error as RateLimitedError).retryAfterMs
    return wait === undefined || wait <= (options.maxRetryAfterMs ?? 60_000)
  }
  if (!error.retryable || error.kind === 'ABORTED') return false
  // A token request that failed in transit; a refused credential is not retryable and stops above.
  if (error.kind === 'AUTH') return true
  return options.idempotent || isNotSent(error)
}

/** Milliseconds to wait from `Retry-After` (seconds or an HTTP date), else from `RateLimit-Reset`. */
export function retryAfterMs(
  headers: Record<string, string | undefined>,
  now = Date.now(),
): number | undefined {
  const retryAfter = headers['retry-after']?.trim()
  if (retryAfter) {
    if (/^\d+(\.\d+)?$/.test(retryAfter)) return Math.round(Number(retryAfter) * 1000)
    const date = Date.parse(retryAfter)
    if (!Number.isNaN(date)) return Math.max(0, date - now)
  }
  const reset = headers['ratelimit-reset']?.trim()
  if (reset && /^\d+$/.test(reset)) {
    const value = Number(reset)
    // Some servers (Rack::Attack) send the epoch second the window ends; small values are delta-seconds.
    return value > 1_000_000_000 ? Math.max(0, value * 1000 - now) : value * 1000
  }
  return undefined
}

/**
 * Runs `attempt` under the policy and the rules above. The first attempt runs outside the retry
 * machinery: most requests succeed at once.
 */
export async function retryRequest<T>(
  attempt: (n: number) => Promise<T>,
  options: RequestRetryOptions,
): Promise<T> {
  if (options.policy === false) return attempt(1)
  let firstError: unknown
  try {
    return await attempt(1)
  } catch (error) {
    firstError = error
  }
  const verdict = { idempotent: options.idempotent, maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000 }
  return retry((n) => (n === 1 ? Promise.reject(firstError) : attempt(n)), {
    ...(options.policy ? { policy: options.policy } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    shouldRetry: (error, n) => options.classify?.(error, n) ?? shouldRetryRequest(error, verdict),
  })
}
