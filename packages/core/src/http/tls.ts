import type { TLSSocket } from 'node:tls'
import { Agent, buildConnector } from 'undici'

/** The TLS choices every panelkit REST client offers, with the same names and the same meaning. */
export interface TlsOptions {
  /** PEM CA certificate(s) to trust instead of the system store (a self-signed panel, a cluster CA). */
  ca?: string | Buffer | readonly (string | Buffer)[]
  /**
   * SHA-256 fingerprint(s) of the server certificate (`AA:BB:…`, case and colons optional). When set,
   * only these certificates are trusted, whatever signed them (as Proxmox's own tools pin).
   */
  fingerprint?: string | readonly string[]
  /** Accept any certificate. Off unless asked for; warns once. */
  insecure?: boolean
}

export interface TlsAgentOptions {
  /** Connections kept per origin. Default 16. */
  connections?: number
  /** How long an idle keep-alive connection is kept. Default undici's (4 s). */
  keepAliveTimeoutMs?: number
  /** Names the system in warnings (`Proxmox`, `WHMCS`, …). */
  system?: string
  /** Where the one-time insecure-TLS warning goes (default: `process.emitWarning`, once per process). */
  warn?: (message: string) => void
}

/** The error code of a pinned connection whose certificate is not one of the pins. */
export const FINGERPRINT_MISMATCH = 'PANELKIT_TLS_FINGERPRINT_MISMATCH'

export function normaliseFingerprint(fp: string): string {
  const hex = fp.replace(/[^0-9a-fA-F]/g, '').toUpperCase()
  if (hex.length !== 64) throw new Error(`A SHA-256 fingerprint has 32 bytes; got ${hex.length / 2}`)
  return hex.match(/../g)?.join(':') ?? hex
}

const warnedThisProcess = new Set<string>()

/**
 * Emits a security warning: through `warn` when given (the caller decides how often), else through
 * `process.emitWarning` once per process and message, so a connector that builds a client per call
 * does not repeat itself.
 */
export function warnOnce(message: string, code: string, warn?: (message: string) => void): void {
  if (warn) {
    warn(message)
    return
  }
  const key = `${code}\n${message}`
  if (warnedThisProcess.has(key)) return
  warnedThisProcess.add(key)
  process.emitWarning(message, { code })
}

/** Builds the Agent that enforces the TLS choice: verify (default), a custom CA, pinning, or insecure. */
export function createTlsAgent(tls: TlsOptions = {}, options: TlsAgentOptions = {}): Agent {
  const pins =
    tls.fingerprint === undefined
      ? []
      : (typeof tls.fingerprint === 'string' ? [tls.fingerprint] : [...tls.fingerprint]).map(
          normaliseFingerprint,
        )
  const base: Agent.Options = { connections: options.connections ?? 16 }
  if (options.keepAliveTimeoutMs !== undefined) base.keepAliveTimeout = options.keepAliveTimeoutMs
  if (pins.length > 0) {
    // Chain verification is off because the pin is the trust anchor (a panel's default certificate is
    // often signed by its own CA), checked on every new connection before any byte is sent. TLS
    // session resumption is off: a resumed session presents no certificate to check.
    const connector = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 })
    const connect: buildConnector.connector = (opts, callback) =>
      connector(opts, (error, socket) => {
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
            { code: FINGERPRINT_MISMATCH },
          )
          socket.destroy(err)
          callback(err, null)
          return
        }
        callback(null, socket)
      })
    return new Agent({ ...base, connect })
  }
  if (tls.insecure) {
    warnOnce(
      `${options.system ?? 'panelkit'} client: TLS certificate verification is disabled (insecure: true). Pin the certificate fingerprint or pass the server's CA instead.`,
      'PANELKIT_INSECURE_TLS',
      options.warn,
    )
    return new Agent({ ...base, connect: { rejectUnauthorized: false } })
  }
  const connect: buildConnector.BuildOptions = { rejectUnauthorized: true }
  if (tls.ca !== undefined) connect.ca = tls.ca as string | Buffer | (string | Buffer)[]
  return new Agent({ ...base, connect })
}
