import { AbortedError, type CallRecorder, CapacityError, TimeoutError } from '@panelkit/core'
import { encodeCommand } from './protocol/encoder.ts'
import type { CliSession } from './session/session.ts'

export interface PoolOptions {
  /** Most sessions open at once to one server. Default 4. */
  max?: number
  /** Sessions idle longer than this are closed. Default 60 s. */
  idleTimeoutMs?: number
  /** A session idle longer than this is pinged before reuse. Default 30 s. */
  healthCheckAfterMs?: number
  /** Longest wait for a free session. Default 30 s. */
  acquireTimeoutMs?: number
  /** Most callers waiting for a session; more fail fast with CAPACITY. Default 1000. */
  maxWaiting?: number
}

interface Waiter {
  resolve: (s: CliSession) => void
  reject: (e: Error) => void
}

// HELP exists in every context (notes §2.3, C: S9 common commands); GET VERSION is confirmed only
// before login (§1.4), so a server that refuses it after login would fail every health check.
const PING = encodeCommand('HELP')

/**
 * A bounded set of logged-in sessions to one server, reused most-recent-first (so idle ones age out),
 * pinged when they have been idle a while, returned to the root before reuse and closed when idle.
 */
export class SessionPool {
  private readonly create: () => CliSession
  private readonly max: number
  private readonly idleTimeoutMs: number
  private readonly healthCheckAfterMs: number
  private readonly acquireTimeoutMs: number
  private readonly maxWaiting: number
  private readonly idle: CliSession[] = []
  private readonly waiting: Waiter[] = []
  private size = 0
  private closed = false
  private reaper: NodeJS.Timeout | undefined
  /** Sessions created over the pool's life (for tests and the benchmark). */
  created = 0

  constructor(create: () => CliSession, options: PoolOptions = {}) {
    this.create = create
    this.max = Math.max(1, options.max ?? 4)
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000
    this.healthCheckAfterMs = options.healthCheckAfterMs ?? 30_000
    this.acquireTimeoutMs = options.acquireTimeoutMs ?? 30_000
    this.maxWaiting = options.maxWaiting ?? 1000
  }

  /** Most sessions this pool opens to its server. */
  get capacity(): number {
    return this.max
  }

  get stats() {
    return { open: this.size, idle: this.idle.length, waiting: this.waiting.length, created: this.created }
  }

  /** Runs `fn` with a session of its own; the session goes back to the pool afterwards if healthy. */
  async use<T>(
    fn: (session: CliSession) => Promise<T>,
    options: { signal?: AbortSignal | undefined; recorder?: CallRecorder } = {},
  ): Promise<T> {
    const acquired = this.acquire(options.signal)
    // A free, recently used session is handed over without an extra promise turn.
    const session = acquired instanceof Promise ? await acquired : acquired
    let healthy = false
    try {
      const result = await fn(session)
      healthy = session.ready && session.atRoot
      return result
    } catch (error) {
      healthy = session.ready && session.atRoot
      throw error
    } finally {
      this.release(session, healthy)
    }
  }

  private acquire(signal: AbortSignal | undefined): CliSession | Promise<CliSession> {
    if (this.closed) throw new AbortedError('The Axigen session pool is closed')
    if (signal?.aborted) throw new AbortedError('The Axigen command was aborted', { cause: signal.reason })
    const session = this.idle.pop()
    if (session) {
      // Closed by the server while idle: reuse the object, runScript reconnects it.
      if (!session.ready) return session
      if (Date.now() - session.lastUsed > this.healthCheckAfterMs) return this.checked(session, signal)
      return session
    }
    return this.fresh(signal)
  }

  /** Pings a session that has been idle a while; a dead one is dropped and another acquired. */
  private async checked(session: CliSession, signal: AbortSignal | undefined): Promise<CliSession> {
    try {
      const reply = await session.send(PING, { signal, timeoutMs: 5_000 })
      if (reply.status?.ok && session.atRoot) return session
    } catch {
      // fall through: the session is dropped and another one tried
    }
    session.destroy()
    this.size--
    return this.acquire(signal)
  }

  private fresh(signal: AbortSignal | undefined): CliSession | Promise<CliSession> {
    if (this.size < this.max) {
      this.size++
      this.created++
      this.ensureReaper()
      return this.create()
    }
    if (this.waiting.length >= this.maxWaiting) {
      throw new CapacityError(
        `Too many callers are waiting for an Axigen CLI session (${this.waiting.length}); raise pool.max or slow down`,
        { retryable: true },
      )
    }
    return new Promise<CliSession>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (s) => {
          cleanup()
          resolve(s)
        },
        reject: (e) => {
          cleanup()
          reject(e)
        },
      }
      const cleanup = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        const i = this.waiting.indexOf(waiter)
        if (i !== -1) this.waiting.splice(i, 1)
      }
      const onAbort = () =>
        waiter.reject(new AbortedError('The Axigen command was aborted while waiting for a session'))
      const timer = setTimeout(
        () =>
          waiter.reject(
            new TimeoutError(
              `No Axigen CLI session became free within ${this.acquireTimeoutMs} ms (pool.max = ${this.max})`,
            ),
          ),
        this.acquireTimeoutMs,
      )
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(waiter)
    })
  }

  private release(session: CliSession, healthy: boolean): void {
    if (this.closed || !healthy) {
      session.destroy()
      if (this.closed) return
      this.size--
      // A waiter gets a fresh session in place of the broken one.
      const next = this.waiting.shift()
      if (next) {
        this.size++
        this.created++
        next.resolve(this.create())
      }
      return
    }
    const next = this.waiting.shift()
    if (next) next.resolve(session)
    else this.idle.push(session)
  }

  private ensureReaper(): void {
    if (this.reaper || this.idleTimeoutMs <= 0) return
    this.reaper = setInterval(() => this.reap(), Math.max(50, Math.min(this.idleTimeoutMs / 2, 30_000)))
    this.reaper.unref()
  }

  private reap(): void {
    const now = Date.now()
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const s = this.idle[i] as CliSession
      if (now - s.lastUsed > this.idleTimeoutMs || !s.ready) {
        this.idle.splice(i, 1)
        this.size--
        void s.close()
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.reaper) clearInterval(this.reaper)
    this.reaper = undefined
    for (const w of [...this.waiting]) w.reject(new AbortedError('The Axigen session pool was closed'))
    const sessions = this.idle.splice(0)
    this.size -= sessions.length
    await Promise.all(sessions.map((s) => s.close()))
  }
}
