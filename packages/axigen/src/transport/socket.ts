import { X509Certificate } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import { AbortedError, ConnectionError, type PanelkitError, TimeoutError } from '@panelkit/core'
import type { Transport, TransportFactory } from './transport.ts'

export interface SocketTransportOptions {
  host: string
  port: number
  /** Implicit TLS: the handshake happens right after TCP connect, before the banner. */
  secure: boolean
  /**
   * Trusted CA certificates (PEM) for a private CA or a self-signed server certificate. They replace
   * Node's public CA list; pass `tls.rootCertificates` too to trust both.
   */
  ca?: string | Buffer | readonly (string | Buffer)[]
  /**
   * SHA-256 fingerprint of the server certificate (`AA:BB:…`, colons and case ignored). When set, the
   * certificate must match it exactly, and chain validation is not required (pinning a self-signed
   * certificate is the point).
   */
  fingerprint256?: string
  /** Accepts any certificate. Logs a warning once per process; for lab servers only. */
  insecure?: boolean
  /** TLS server name (SNI and name check); defaults to the host when it is a name. */
  servername?: string
  connectTimeoutMs?: number
  /** Closes a socket that has been silent this long (the pool reconnects transparently). */
  socketIdleTimeoutMs?: number
  onWarning?: (message: string) => void
}

let insecureWarned = false
let plaintextWarned = false

/** For tests: lets the once-per-process insecure and plain-text warnings fire again. */
export function resetInsecureWarning(): void {
  insecureWarned = false
  plaintextWarned = false
}

/** A connection to this machine never leaves it (the SSH-tunnel set-up the notes recommend, §6.2). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

export function normaliseFingerprint(f: string): string {
  return f.replace(/[^0-9a-fA-F]/g, '').toUpperCase()
}

const TLS_MISMATCH =
  /wrong version number|packet length too long|unknown protocol|record layer failure|http request|ssl3_get_record|tls_get_more_records/i
const CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
])

/** Turns a socket error into a typed error whose message tells the operator what to change. */
export function classifySocketError(error: unknown, where: string, secure: boolean): PanelkitError {
  const e = error as NodeJS.ErrnoException & { reason?: string }
  const code = e?.code ?? ''
  const message = e?.message ?? String(error)
  if (code === 'ECONNREFUSED') {
    return new ConnectionError(
      `Connection refused by ${where}: nothing listens on that port. Check that the Axigen CLI service is ` +
        `running and has a listener on this address and port (plain default 7000; the TLS port is ` +
        `whatever your TLS listener uses), and that no firewall rejects the connection.`,
      { cause: error, details: { diagnosis: 'refused', code } },
    )
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new ConnectionError(`Cannot resolve the host name of ${where} (${code}): check the hostname.`, {
      cause: error,
      retryable: code === 'EAI_AGAIN',
      details: { diagnosis: 'dns', code },
    })
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new ConnectionError(`No route to ${where} (${code}): check the address and the network.`, {
      cause: error,
      details: { diagnosis: 'unreachable', code },
    })
  }
  if (secure && (TLS_MISMATCH.test(message) || code === 'ERR_SSL_WRONG_VERSION_NUMBER')) {
    return new ConnectionError(
      `TLS handshake with ${where} failed: the port answered in plain text, not TLS. Either this is the ` +
        `plain CLI listener (turn Secure off, or use the TLS port), or enable TLS (sslEnable yes) on ` +
        `this Axigen CLI listener — both ends must agree.`,
      { cause: error, retryable: false, details: { diagnosis: 'tls-expected-plain-found', code } },
    )
  }
  if (CERT_CODES.has(code)) {
    return new ConnectionError(
      `The TLS certificate of ${where} is not trusted (${code}). Pass the issuing CA (tls.ca option), pin the ` +
        `certificate's SHA-256 fingerprint (tls.fingerprint option), or fix the certificate's name and dates.`,
      { cause: error, retryable: false, details: { diagnosis: 'certificate', code } },
    )
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new ConnectionError(`The connection to ${where} was reset (${code}).`, {
      cause: error,
      details: { diagnosis: 'reset', code },
    })
  }
  if (code === 'ETIMEDOUT') {
    return new TimeoutError(`Connecting to ${where} timed out (${code}).`, {
      cause: error,
      details: { diagnosis: 'timeout', code },
    })
  }
  return new ConnectionError(`Connection to ${where} failed: ${message}`, {
    cause: error,
    details: { diagnosis: 'other', code },
  })
}

class SocketTransport implements Transport {
  readonly description: string
  private readonly socket: net.Socket
  private closeHandler: ((error: Error | undefined) => void) | undefined
  private closeError: Error | undefined
  private isClosed = false

  constructor(socket: net.Socket, description: string, socketIdleTimeoutMs: number | undefined) {
    this.socket = socket
    this.description = description
    socket.setNoDelay(true)
    if (socketIdleTimeoutMs !== undefined && socketIdleTimeoutMs > 0) {
      socket.setTimeout(socketIdleTimeoutMs, () => socket.destroy())
    }
    socket.on('error', (error) => {
      this.closeError ??= error
    })
    socket.on('close', () => {
      this.isClosed = true
      this.closeHandler?.(this.closeError)
    })
  }

  get closed(): boolean {
    return this.isClosed || this.socket.destroyed
  }

  write(data: string): void {
    this.socket.write(data)
  }

  onData(handler: (chunk: Buffer) => void): void {
    this.socket.on('data', handler)
  }

  onClose(handler: (error: Error | undefined) => void): void {
    this.closeHandler = handler
    if (this.isClosed) handler(this.closeError)
  }

  end(): void {
    this.socket.end()
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** A factory of TCP or implicit-TLS connections with a connect timeout, abort and certificate pinning. */
export function socketTransportFactory(options: SocketTransportOptions): TransportFactory {
  const where = `${options.host}:${options.port}${options.secure ? ' (TLS)' : ''}`
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000
  const pin = options.fingerprint256 === undefined ? undefined : normaliseFingerprint(options.fingerprint256)
  // One TLS context per factory, built on first use: a pool's sessions and every reconnect share the
  // parsed CA list instead of parsing it again (a public-CA bundle takes tens of milliseconds).
  let secureContext: tls.SecureContext | undefined
  const sharedContext = (ca: string | Buffer | (string | Buffer)[]) =>
    (secureContext ??= tls.createSecureContext({ ca }))
  if (options.secure && options.insecure && !insecureWarned) {
    insecureWarned = true
    const warn =
      options.onWarning ??
      ((m: string) =>
        process.emitWarning(m, { code: 'PANELKIT_AXIGEN_INSECURE_TLS', type: 'SecurityWarning' }))
    warn(
      `Axigen client: TLS certificate verification is disabled for ${where} (tls.insecure option); ` +
        'anyone on the path can read the admin password. Use tls.ca or tls.fingerprint instead.',
    )
  }
  if (!options.secure && !plaintextWarned && !isLoopback(options.host)) {
    plaintextWarned = true
    const warn =
      options.onWarning ??
      ((m: string) => process.emitWarning(m, { code: 'PANELKIT_AXIGEN_PLAINTEXT', type: 'SecurityWarning' }))
    warn(
      `Axigen client: the CLI connection to ${where} is plain text (secure: false); the admin password and ` +
        'every service password travel in clear. Enable TLS on the CLI listener and set secure (with tls.ca or ' +
        'tls.fingerprint), or reach the CLI through an SSH tunnel to localhost.',
    )
  }
  return (signal) =>
    new Promise<Transport>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new AbortedError(`Connecting to ${where} was aborted`, { cause: signal.reason }))
        return
      }
      let socket: net.Socket
      let settled = false
      // Set once TCP is up, so a stalled TLS handshake is told apart from a dropped SYN.
      let tcpUp = false
      const finish = (error: PanelkitError | undefined) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        socket.removeListener('error', onError)
        if (error) {
          socket.destroy()
          reject(error)
        } else {
          resolve(new SocketTransport(socket, where, options.socketIdleTimeoutMs))
        }
      }
      const onError = (error: Error) => finish(classifySocketError(error, where, options.secure))
      const onAbort = () =>
        finish(new AbortedError(`Connecting to ${where} was aborted`, { cause: signal?.reason }))
      const timer = setTimeout(
        () =>
          finish(
            tcpUp
              ? new TimeoutError(
                  `${where} accepted the TCP connection but did not complete the TLS handshake within ` +
                    `${connectTimeoutMs} ms: the port is probably not a TLS listener. Check the port, or turn ` +
                    'Secure off if this is the plain CLI listener.',
                  { details: { diagnosis: 'tls-handshake-timeout', connectTimeoutMs } },
                )
              : new TimeoutError(
                  `No answer from ${where} within ${connectTimeoutMs} ms: a firewall is probably dropping the ` +
                    'packets, or the host is down. Check that the Axigen CLI port is open from this machine.',
                  { details: { diagnosis: 'timeout', connectTimeoutMs } },
                ),
          ),
        connectTimeoutMs,
      )
      signal?.addEventListener('abort', onAbort, { once: true })
      if (options.secure) {
        const isIp = net.isIP(options.host) !== 0
        const tlsOptions: tls.ConnectionOptions = {
          host: options.host,
          port: options.port,
          rejectUnauthorized: !(options.insecure || pin !== undefined),
        }
        const servername = options.servername ?? (isIp ? undefined : options.host)
        if (servername !== undefined) tlsOptions.servername = servername
        if (options.ca !== undefined)
          tlsOptions.secureContext = sharedContext(options.ca as string | Buffer | (string | Buffer)[])
        socket = tls.connect(tlsOptions, () => {
          const tlsSocket = socket as tls.TLSSocket
          if (pin !== undefined) {
            const raw = tlsSocket.getPeerCertificate(false)?.raw
            const actual = raw ? normaliseFingerprint(new X509Certificate(raw).fingerprint256) : ''
            if (actual !== pin) {
              finish(
                new ConnectionError(
                  `The TLS certificate of ${where} does not match the pinned SHA-256 fingerprint. ` +
                    'If the certificate was renewed on purpose, update fingerprint256; otherwise someone may ' +
                    'be intercepting the connection.',
                  { retryable: false, details: { diagnosis: 'fingerprint-mismatch' } },
                ),
              )
              return
            }
          }
          finish(undefined)
        })
      } else {
        socket = net.connect({ host: options.host, port: options.port }, () => finish(undefined))
      }
      socket.on('error', onError)
      socket.once('connect', () => {
        tcpUp = true
      })
    })
}
