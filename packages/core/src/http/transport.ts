import type { Dispatcher } from 'undici'
import {
  AbortedError,
  ConnectionError,
  isPanelkitError,
  type PanelkitError,
  ProtocolError,
  TimeoutError,
} from '../errors.ts'
import { createTlsAgent, FINGERPRINT_MISMATCH, type TlsOptions, warnOnce } from './tls.ts'

/**
 * One `request()` over an undici Dispatcher, shared by the REST clients: the dispatcher is injected
 * (a MockAgent, a shared Agent, a proxy) or built from the TLS options; the global dispatcher is never
 * touched. It caps what it reads, enforces the time limits and turns socket and TLS failures into
 * core errors with a diagnosis. Authentication, the error envelope and retries stay with the caller.
 */

export interface HttpLimits {
  /** Time limit for one attempt, from sending to the last body byte (a timer of the transport's own). */
  timeoutMs?: number
  /** Time to wait for the response headers (undici's `headersTimeout`). */
  headersTimeoutMs?: number
  /** Longest pause between two body chunks (undici's `bodyTimeout`). */
  bodyTimeoutMs?: number
  /** Largest response body read before the request fails with a PROTOCOL error. Default 64 MiB. */
  maxResponseBytes?: number
}

export interface HttpTransportOptions extends HttpLimits {
  /** `https://host[:port]`; any path is ignored (requests carry their own). */
  origin: string | URL
  /** Send through this dispatcher; the TLS options and `connections` then do not apply. */
  dispatcher?: Dispatcher
  tls?: TlsOptions
  /** Connections kept per origin (when the transport builds its own Agent). Default 16. */
  connections?: number
  keepAliveTimeoutMs?: number
  /** Names the system in errors and warnings: `Proxmox`, `ComputeStacks`, `WHMCS`. */
  system: string
  /** What to tell an operator after a certificate failure (default: the three TLS options). */
  tlsHint?: string
  /** Where the one-time security warnings go (default: `process.emitWarning`, once per process). */
  warn?: (message: string) => void
}

export interface HttpRequest {
  method: string
  /** Path and query string, already encoded. */
  path: string
  headers?: Record<string, string>
  body?: string | Buffer | null
  signal?: AbortSignal | undefined
  /** Overrides the transport's `timeoutMs` for this request. */
  timeoutMs?: number
  /** Names the request in errors (default: `{system} {method} {path without query}`). */
  label?: string
}

export interface HttpResponse {
  status: number
  /** The HTTP reason phrase (Proxmox puts its error text there). */
  reason: string
  /** Lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string | undefined>
  text: string
}

export interface HttpTransport {
  readonly origin: string
  /** True when requests travel without TLS. */
  readonly plain: boolean
  request(request: HttpRequest): Promise<HttpResponse>
  /** Closes the dispatcher the transport made for itself (not one that was passed in). */
  close(): Promise<void>
}

export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

const DEFAULT_TLS_HINT =
  "pass the server's CA certificate (tls.ca), pin its certificate fingerprint (tls.fingerprint), or, for a test server only, tls.insecure"

/** Failures where the request certainly never reached the server, so any request may be sent again. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'])

const TIMEOUTS = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
])

/** True when `error` says the request was never delivered (a refused connection, an unknown host). */
export function isNotSent(error: unknown): boolean {
  if (isPanelkitError(error) && error.details?.notSent === true) return true
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause
  return typeof cause?.code === 'string' && NOT_SENT.has(cause.code)
}

function isTlsCode(code: string): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|HOSTNAME|ERR_TLS|ERR_SSL/i.test(code)
}

/**
 * Turns what a socket, TLS or undici throws into a core error naming the request: TIMEOUT, ABORTED,
 * or CONNECTION (not retryable for certificate failures, with what to do about them).
 */
export function transportError(
  error: unknown,
  what: string,
  options: { signal?: AbortSignal | undefined; tlsHint?: string } = {},
): PanelkitError {
  if (isPanelkitError(error)) return error
  const err = error as (NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException }) | undefined
  const code = err?.code ?? err?.cause?.code
  const notSent = typeof code === 'string' && NOT_SENT.has(code)
  const details = { notSent }
  if (options.signal?.aborted || err?.name === 'AbortError' || code === 'UND_ERR_ABORTED')
    return new AbortedError(`${what}: aborted`, { cause: error })
  if (typeof code === 'string' && TIMEOUTS.has(code))
    return new TimeoutError(`${what}: no answer in time (${code})`, { cause: error, details })
  if (code === FINGERPRINT_MISMATCH)
    return new ConnectionError(`${what}: ${err?.message}`, { cause: error, retryable: false })
  if (typeof code === 'string' && isTlsCode(code)) {
    const wrongProtocol = /WRONG_VERSION_NUMBER|HTTP_REQUEST|PACKET_LENGTH/i.test(code)
    return new ConnectionError(
      wrongProtocol
        ? `${what}: TLS handshake failed (${code}): the port does not speak HTTPS (check the port, or the server's secure setting)`
        : `${what}: TLS verification failed (${code}): ${options.tlsHint ?? DEFAULT_TLS_HINT}`,
      { cause: error, retryable: false, details },
    )
  }
  const message = err instanceof Error && err.message && err.message !== code ? ` (${err.message})` : ''
  return new ConnectionError(`${what}: ${code ?? 'connection failed'}${message}`, { cause: error, details })
}

/** undici already lower-cases header names; only repeated headers (arrays) need joining. */
function flattenHeaders(
  raw: Record<string, string | string[] | undefined>,
): Record<string, string | undefined> {
  for (const key in raw) {
    if (Array.isArray(raw[key])) {
      const out: Record<string, string | undefined> = {}
      for (const [k, value] of Object.entries(raw)) out[k] = Array.isArray(value) ? value.join(', ') : value
      return out
    }
  }
  return raw as Record<string, string | undefined>
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\./.test(hostname)
}

export function createHttpTransport(options: HttpTransportOptions): HttpTransport {
  const url = new URL(options.origin)
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new Error(`Unsupported URL ${url.protocol}//${url.host}: use https://`)
  const origin = url.origin
  const plain = url.protocol === 'http:'
  if (plain && !isLoopback(url.hostname)) {
    warnOnce(
      `${options.system} client: ${origin} is plain HTTP, so credentials travel in clear text. Use HTTPS (pass the CA or pin the certificate if it is self-signed).`,
      'PANELKIT_PLAIN_HTTP',
      options.warn,
    )
  }
  const owned = options.dispatcher === undefined
  const dispatcher: Dispatcher =
    options.dispatcher ??
    createTlsAgent(plain ? {} : options.tls, {
      system: options.system,
      ...(options.connections !== undefined ? { connections: options.connections } : {}),
      ...(options.keepAliveTimeoutMs !== undefined ? { keepAliveTimeoutMs: options.keepAliveTimeoutMs } : {}),
      ...(options.warn ? { warn: options.warn } : {}),
    })
  const headersTimeout = options.headersTimeoutMs ?? options.timeoutMs ?? 60_000
  const bodyTimeout = options.bodyTimeoutMs ?? options.timeoutMs ?? 60_000
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
  const tlsHint = options.tlsHint
  const system = options.system

  function request(req: HttpRequest): Promise<HttpResponse> {
    return new Promise<HttpResponse>((resolve, reject) => {
      const signal = req.signal
      const label = () => req.label ?? `${system} ${req.method} ${req.path.split('?')[0]}`
      if (signal?.aborted) {
        reject(new AbortedError(`${label()}: aborted`, { cause: signal.reason }))
        return
      }
      const chunks: Buffer[] = []
      let received = 0
      let status = 0
      let reason = ''
      let headers: Record<string, string | undefined> = {}
      let controller: Dispatcher.DispatchController | undefined
      let settled = false
      let timer: NodeJS.Timeout | undefined
      const stop = (error: Error) => {
        finish(error)
        controller?.abort(error)
      }
      const onAbort = () => stop(new AbortedError(`${label()}: aborted`, { cause: signal?.reason }))
      const finish = (error: Error | undefined, value?: HttpResponse) => {
        if (settled) return
        settled = true
        if (timer) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (error) reject(error)
        else resolve(value as HttpResponse)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      const limit = req.timeoutMs ?? options.timeoutMs
      if (limit !== undefined) {
        timer = setTimeout(
          () =>
            stop(
              new TimeoutError(`${label()}: no answer within ${limit} ms`, { details: { timeoutMs: limit } }),
            ),
          limit,
        )
      }
      try {
        dispatcher.dispatch(
          {
            origin,
            path: req.path,
            method: req.method as Dispatcher.HttpMethod,
            headers: req.headers ?? {},
            body: req.body ?? null,
            headersTimeout,
            bodyTimeout,
          },
          {
            onRequestStart(c) {
              controller = c
              // Settled before the request started (aborted, timed out): drop it now.
              if (settled) c.abort(new Error('request no longer wanted'))
            },
            onResponseStart(_c, statusCode, responseHeaders, statusMessage) {
              status = statusCode
              reason = statusMessage ?? ''
              headers = flattenHeaders(responseHeaders as Record<string, string | string[] | undefined>)
            },
            onResponseData(c, chunk) {
              if (settled) return
              received += chunk.length
              if (received > maxResponseBytes) {
                // The connection is dropped (not reused half-read); the client stays usable.
                chunks.length = 0
                const error = new ProtocolError(
                  `${label()}: the server sent more than ${maxResponseBytes} bytes (maxResponseBytes)`,
                )
                finish(error)
                c.abort(error)
                return
              }
              chunks.push(chunk)
            },
            onResponseEnd() {
              const text =
                chunks.length === 1
                  ? (chunks[0] as Buffer).toString('utf8')
                  : Buffer.concat(chunks, received).toString('utf8')
              finish(undefined, { status, reason, headers, text })
            },
            onResponseError(_c, error) {
              finish(transportError(error, label(), { signal, ...(tlsHint ? { tlsHint } : {}) }))
            },
          },
        )
      } catch (error) {
        finish(transportError(error, label(), { signal, ...(tlsHint ? { tlsHint } : {}) }))
      }
    })
  }

  return {
    origin,
    plain,
    request,
    async close() {
      if (!owned) return
      // Requests still in flight get a moment to finish; one nobody waits for any more (an operation
      // that timed out, a login to a server that never answers) must not hold the close for minutes.
      let timer: NodeJS.Timeout | undefined
      const graceOver = new Promise<'grace-over'>((resolve) => {
        timer = setTimeout(() => resolve('grace-over'), CLOSE_GRACE_MS)
      })
      const closed = dispatcher.close().then(
        () => 'closed' as const,
        () => 'closed' as const,
      )
      const outcome = await Promise.race([closed, graceOver])
      clearTimeout(timer)
      // undici's close() keeps waiting for the destroyed requests' own timeouts: not awaited again.
      if (outcome === 'grace-over') await dispatcher.destroy().catch(() => undefined)
    },
  }
}

/** How long `close()` lets requests in flight finish before it ends their connections. */
const CLOSE_GRACE_MS = 2_000
