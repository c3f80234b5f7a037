import { describe, expect, it } from 'vitest'
import {
  AuthError,
  ConnectionError,
  ERROR_CODES,
  HttpError,
  hasErrorCode,
  isPanelkitError,
  PanelkitError,
  RateLimitedError,
  toPanelkitError,
  ValidationError,
} from '../../src/errors.ts'
import { backoffDelay, retry, sleep } from '../../src/retry.ts'

describe('errors', () => {
  it('carry a stable code, a kind, retryable and the cause', () => {
    const cause = new Error('ECONNRESET')
    const e = new ConnectionError('socket closed', { cause })
    expect(e.code).toBe('PANELKIT_ERR_CONNECTION')
    expect(e.kind).toBe('CONNECTION')
    expect(e.retryable).toBe(true)
    expect(e.cause).toBe(cause)
    expect(new AuthError('no').retryable).toBe(false)
    expect(new HttpError('boom', { status: 503 }).retryable).toBe(true)
    expect(new HttpError('bad', { status: 400 }).retryable).toBe(false)
    expect(Object.values(ERROR_CODES).every((c) => c.startsWith('PANELKIT_ERR_'))).toBe(true)
  })

  it('are recognised across duplicate copies of the package through the registry brand', () => {
    const foreign = Object.assign(new Error('from another copy'), {})
    Object.defineProperty(foreign, Symbol.for('panelkit.error'), { value: true })
    expect(isPanelkitError(foreign)).toBe(true)
    expect(isPanelkitError(new Error('plain'))).toBe(false)
    expect(hasErrorCode(new ValidationError('x'), 'PANELKIT_ERR_VALIDATION')).toBe(true)
    expect(hasErrorCode(new ValidationError('x'), 'VALIDATION')).toBe(true)
    expect(new ValidationError('x') instanceof PanelkitError).toBe(true)
    expect(new ValidationError('x') instanceof ConnectionError).toBe(false)
  })

  it('wrap bare Node errors into typed ones instead of rethrowing them', () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    expect(toPanelkitError(reset, 'read').kind).toBe('CONNECTION')
    const timeout = Object.assign(new Error('t'), { code: 'ETIMEDOUT' })
    expect(toPanelkitError(timeout).kind).toBe('TIMEOUT')
    expect(toPanelkitError('weird').kind).toBe('INTERNAL')
    const typed = new AuthError('x')
    expect(toPanelkitError(typed)).toBe(typed)
  })
})

describe('retry', () => {
  const policy = {
    maxAttempts: 5,
    initialDelayMs: 100,
    maxDelayMs: 1000,
    multiplier: 2,
    jitter: 'none' as const,
  }

  it('computes exponential backoff with a cap and jitter inside the bound', () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, policy))).toEqual([100, 200, 400, 800, 1000])
    for (let a = 1; a < 8; a++) {
      const full = backoffDelay(a, { ...policy, jitter: 'full' })
      expect(full).toBeGreaterThanOrEqual(0)
      expect(full).toBeLessThanOrEqual(backoffDelay(a, policy))
      const equal = backoffDelay(a, { ...policy, jitter: 'equal' })
      expect(equal).toBeGreaterThanOrEqual(backoffDelay(a, policy) / 2)
    }
  })

  it('retries retryable failures, then succeeds', async () => {
    const waits: number[] = []
    let calls = 0
    const value = await retry(
      async () => {
        calls++
        if (calls < 3) throw new ConnectionError('flaky')
        return 'ok'
      },
      { policy, sleep: async (ms) => void waits.push(ms) },
    )
    expect(value).toBe('ok')
    expect(calls).toBe(3)
    expect(waits).toEqual([100, 200])
  })

  it('does not retry permanent failures and stops after maxAttempts', async () => {
    let calls = 0
    await expect(
      retry(
        async () => {
          calls++
          throw new AuthError('bad credentials')
        },
        { policy, sleep: async () => {} },
      ),
    ).rejects.toThrow('bad credentials')
    expect(calls).toBe(1)
    calls = 0
    await expect(
      retry(
        async () => {
          calls++
          throw new ConnectionError('down')
        },
        { policy, sleep: async () => {} },
      ),
    ).rejects.toThrow('down')
    expect(calls).toBe(5)
  })

  it('honours Retry-After and the deadline', async () => {
    const waits: number[] = []
    let calls = 0
    await retry(
      async () => {
        if (++calls === 1) throw new RateLimitedError('slow down', { retryAfterMs: 5000 })
        return 1
      },
      { policy, sleep: async (ms) => void waits.push(ms) },
    )
    expect(waits).toEqual([5000])
    let t = 0
    await expect(
      retry(
        async () => {
          throw new ConnectionError('down')
        },
        {
          policy: { ...policy, deadlineMs: 250 },
          sleep: async (ms) => {
            t += ms
          },
          now: () => t,
        },
      ),
    ).rejects.toMatchObject({ kind: 'TIMEOUT' })
  })

  it('sleep is cut short by an abort', async () => {
    const controller = new AbortController()
    const started = Date.now()
    const pending = sleep(10_000, controller.signal)
    controller.abort()
    await expect(pending).rejects.toMatchObject({ kind: 'ABORTED' })
    expect(Date.now() - started).toBeLessThan(1000)
  })
})
