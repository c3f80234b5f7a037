import { AbortedError, isPanelkitError, RateLimitedError, TimeoutError, throwIfAborted } from './errors.ts'

export interface RetryPolicy {
  /** Total attempts including the first. */
  maxAttempts: number
  initialDelayMs: number
  maxDelayMs: number
  multiplier: number
  /**
   * `full`: uniform in [0, delay] (the AWS "full jitter" scheme, best against thundering herds);
   * `equal`: delay/2 plus uniform in [0, delay/2]; `none`: the bare exponential delay.
   */
  jitter: 'full' | 'equal' | 'none'
  /** Give up once this much time has passed since the first attempt. */
  deadlineMs?: number
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 5,
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  multiplier: 2,
  jitter: 'full',
})

/** The delay before retry number `attempt` (1 = the first retry). */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const exp = Math.min(
    policy.maxDelayMs,
    policy.initialDelayMs * policy.multiplier ** Math.max(0, attempt - 1),
  )
  switch (policy.jitter) {
    case 'none':
      return exp
    case 'equal':
      return exp / 2 + random() * (exp / 2)
    default:
      return random() * exp
  }
}

/** Resolves after `ms`, or rejects with `AbortedError` as soon as the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError('The wait was aborted', { cause: signal.reason }))
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(new AbortedError('The wait was aborted', { cause: signal?.reason }))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export interface RetryOptions {
  policy?: Partial<RetryPolicy>
  /** Defaults to: panelkit errors marked retryable. */
  shouldRetry?: (error: unknown, attempt: number) => boolean
  signal?: AbortSignal
  onRetry?: (info: { error: unknown; attempt: number; delayMs: number }) => void
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
  random?: () => number
  now?: () => number
}

export function isRetryable(error: unknown): boolean {
  return isPanelkitError(error) && error.retryable
}

/**
 * Runs `fn` until it succeeds, a failure is not retryable, attempts run out or the deadline passes;
 * the last error is rethrown. A server's `Retry-After` (on `RateLimitedError`) is honoured when it is
 * longer than the computed backoff.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.policy }
  const shouldRetry = options.shouldRetry ?? isRetryable
  const wait = options.sleep ?? sleep
  const now = options.now ?? Date.now
  const started = now()
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(options.signal)
    try {
      return await fn(attempt)
    } catch (error) {
      if (attempt >= policy.maxAttempts || !shouldRetry(error, attempt)) throw error
      let delayMs = backoffDelay(attempt, policy, options.random)
      if (error instanceof RateLimitedError && error.retryAfterMs !== undefined) {
        delayMs = Math.max(delayMs, error.retryAfterMs)
      }
      if (policy.deadlineMs !== undefined && now() - started + delayMs > policy.deadlineMs) {
        throw new TimeoutError(
          `Gave up after ${attempt} attempts: the retry deadline of ${policy.deadlineMs} ms passed`,
          {
            cause: error,
            retryable: true,
          },
        )
      }
      options.onRetry?.({ error, attempt, delayMs })
      await wait(delayMs, options.signal)
    }
  }
}
