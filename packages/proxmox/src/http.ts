import type { TLSSocket } from 'node:tls'
import { AbortedError, ConnectionError, ProtocolError, TimeoutError } from '@panelkit/core'
import { Agent, buildConnector, type Dispatcher } from 'undici'

/**
 * The transport: one `request()` over an undici Dispatcher. The dispatcher is injected (a MockAgent,
 * a shared Agent, a proxy) or built here from the TLS options; the global dispatcher is never touched.
 */

export interface TlsOptions {
  /** PEM CA certificate(s) to trust instead of the system store (e.g. the cluster's pve-root-ca.pem). */
  ca?: string | Buffer | readonly (string | Buffer)[]
  /**
   * SHA-256 fingerprint(s) of the server certificate (`AA:BB:…`, case and colons optional). When set,
   * only these certificates are trusted, whatever signed them — as Proxmox's own client pins.
   */
  fingerprint?: string | readonly string[]
  /** Accept any certificate. Off unless asked for; warns once per client. */
  insecure?: boolean
}

export interface HttpTransportOptions {
  /** `https://pve1.example.com:8006`; the API path `/api2/json` is added by the client. */
  baseUrl: string
  dispatcher?: Dispatcher
  tls?: TlsOptions
  /** Time to wait for response headers. */
  headersTimeoutMs?: number
  /** Time to wait between body chunks. */
  bodyTimeoutMs?: number
  /** Largest response body read before the request fails with a PROTOCOL error. Default 64 MiB. */
  maxResponseBytes?: number
  /** Connections kept per origin (when the transport builds its own Agent). */
  connections?: number
  /** Where the one-time insecure-TLS warning goes (default: `process.emitWarning`). */
  warn?: (message: string) => void
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** Path and query string, already encoded. */
  path: string
  headers?: Record<string, string>
  body?: string
  signal?: AbortSignal
}

export interface HttpResponse {
  status: number
  /** The HTTP reason phrase: the first line of the error text on every PVE version. */
  reason: string
  headers: Record<string, string | string[] | undefined>
  text: string
}

export interface HttpTransport {
  readonly origin: string
  request(request: HttpRequest): Promise<HttpResponse>
  close(): Promise<void>
}

export function normaliseFingerprint(fp: string): string {
  const hex = fp.replace(/[^0-9a-fA-F]/g, '').toUpperCase()
  if (hex.length !== 64) throw new Error(`A SHA-256 fingerprint has 32 bytes; got ${hex.length / 2}`)
  return hex.match(/../g)?.join(':') ?? hex
}

/** Builds the Agent that enforces the TLS choice: verify (default), custom CA, pinning, or insecure. */
export function createTlsAgent(
  tls: TlsOptions = {},
  options: { connections?: number; warn?: (m: string) => void } = {},
): Agent {
  const pins =
    tls.fingerprint === undefined
      ? []
      : (typeof tls.fingerprint === 'string' ? [tls.fingerprint] : [...tls.fingerprint]).map(
          normaliseFingerprint,
        )
  const connections = options.connections ?? 16
  if (pins.length > 0) {
    // Chain verification is off because PVE's default certificate is signed by the cluster's own CA;
    // the pin is the trust anchor, checked on every new connection before any byte is sent.
    // TLS session resumption is off: a resumed session presents no certificate to check.
    const base = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 })
    const connect: buildConnector.connector = (opts, callback) =>
      base(opts, (error, socket) => {
        if (error || !socket) {
          callback(error ?? new Error('TLS connection failed'), null)
          return
        }
        const cert = (socket as TLSSocket).getPeerCertificate?.()
        const seen = cert?.fingerprint256?.toUpperCase()
        if (!seen || !pins.includes(seen)) {
          const err = Object.assign(
            new Error(
              `TLS fingerprint mismatch: the server presented ${seen ?? 'no certificate'}, expected ${pins.join(' or ')}`,
            ),
            { code: 'PANELKIT_TLS_FINGERPRINT_MISMATCH' },
          )
          socket.destroy(err)
          callback(err, null)
          return
        }
        callback(null, socket)
      })
    return new Agent({ connect, connections })
  }
  if (tls.insecure) {
    const warn =
      options.warn ?? ((m: string) => process.emitWarning(m, { code: 'PANELKIT_PROXMOX_INSECURE_TLS' }))
    warn(
      'Proxmox client: TLS certificate verification is disabled (insecure: true). Pin the fingerprint or pass the cluster CA instead.',
    )
    return new Agent({ connect: { rejectUnauthorized: false }, connections })
  }
  const connect: Record<string, unknown> = { rejectUnauthorized: true }
  if (tls.ca !== undefined) connect.ca = tls.ca
  return new Agent({ connect, connections })
}

function transportError(error: unknown, what: string): Error {
  const e = error as NodeJS.ErrnoException & { name?: string }
  const code = e?.code
  if (e?.name === 'AbortError' || code === 'UND_ERR_ABORTED')
    return new AbortedError(`${what}: aborted`, { cause: error })
  if (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'ETIMEDOUT'
  )
    return new TimeoutError(`${what}: timed out (${code})`, { cause: error })
  if (code === 'PANELKIT_TLS_FINGERPRINT_MISMATCH')
    return new ConnectionError(`${what}: ${e.message}`, { cause: error, retryable: false })
  if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code))
    return new ConnectionError(
      `${what}: TLS verification failed (${code}). Pass the cluster CA or pin the certificate fingerprint.`,
      {
        cause: error,
        retryable: false,
      },
    )
  return new ConnectionError(`${what}: ${code ?? e?.message ?? 'connection failed'}`, { cause: error })
}

export function createHttpTransport(options: HttpTransportOptions): HttpTransport {
  const url = new URL(options.baseUrl)
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new Error(`Unsupported URL ${options.baseUrl}`)
  const origin = url.origin
  const owned = options.dispatcher === undefined
  const agentOptions: { connections?: number; warn?: (m: string) => void } = {}
  if (options.connections !== undefined) agentOptions.connections = options.connections
  if (options.warn !== undefined) agentOptions.warn = options.warn
  const dispatcher: Dispatcher = options.dispatcher ?? createTlsAgent(options.tls, agentOptions)
  const headersTimeout = options.headersTimeoutMs ?? 60_000
  const bodyTimeout = options.bodyTimeoutMs ?? 60_000
  const maxResponseBytes = options.maxResponseBytes ?? 64 * 1024 * 1024

  function request(req: HttpRequest): Promise<HttpResponse> {
    const what = `${req.method} ${req.path.split('?')[0]}`
    return new Promise<HttpResponse>((resolve, reject) => {
      if (req.signal?.aborted) {
        reject(new AbortedError(`${what}: aborted`, { cause: req.signal.reason }))
        return
      }
      const chunks: Buffer[] = []
      let received = 0
      let status = 0
      let reason = ''
      let headers: Record<string, string | string[] | undefined> = {}
      let controller: Dispatcher.DispatchController | undefined
      let settled = false
      const onAbort = () => {
        controller?.abort(req.signal?.reason ?? new Error('aborted'))
        finish(new AbortedError(`${what}: aborted`, { cause: req.signal?.reason }))
      }
      const finish = (error: Error | undefined, value?: HttpResponse) => {
        if (settled) return
        settled = true
        req.signal?.removeEventListener('abort', onAbort)
        if (error) reject(error)
        else resolve(value as HttpResponse)
      }
      req.signal?.addEventListener('abort', onAbort, { once: true })
      const headerList: Record<string, string> = { ...req.headers }
      if (req.body !== undefined) {
        headerList['content-type'] = 'application/x-www-form-urlencoded'
      }
      try {
        dispatcher.dispatch(
          {
            origin,
            path: req.path,
            method: req.method,
            headers: headerList,
            body: req.body ?? null,
            headersTimeout,
            bodyTimeout,
          },
          {
            onRequestStart(c) {
              controller = c
            },
            onResponseStart(_c, statusCode, responseHeaders, statusMessage) {
              status = statusCode
              reason = statusMessage ?? ''
              headers = responseHeaders as Record<string, string | string[] | undefined>
            },
            onResponseData(c, chunk) {
              if (settled) return
              received += chunk.length
              if (received > maxResponseBytes) {
                // The connection is dropped (not reused half-read); the client stays usable.
                const error = new ProtocolError(
                  `${what}: the server sent more than ${maxResponseBytes} bytes (maxResponseBytes)`,
                )
                chunks.length = 0
                finish(error)
                c.abort(error)
                return
              }
              chunks.push(chunk)
            },
            onResponseEnd() {
              finish(undefined, { status, reason, headers, text: Buffer.concat(chunks).toString('utf8') })
            },
            onResponseError(_c, error) {
              finish(transportError(error, what))
            },
          },
        )
      } catch (error) {
        finish(transportError(error, what))
      }
    })
  }

  return {
    origin,
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

/** Parses a JSON body, naming the request when the server sent something else. */
export function parseJsonBody(response: HttpResponse, what: string): unknown {
  if (response.text === '') return undefined
  try {
    return JSON.parse(response.text)
  } catch (error) {
    throw new ProtocolError(`${what}: the server sent a body that is not JSON (HTTP ${response.status})`, {
      cause: error,
    })
  }
}
