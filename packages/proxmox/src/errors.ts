import { HttpError, type HttpErrorOptions } from '@panelkit/core'

/**
 * What the server said, classified by its message text where the text is stable across versions
 * (lock and "already exists" texts; never the 401 reason, which changed in 9.1.5).
 */
export const PveFailureKind = {
  LOCK: 'lock',
  DIGEST: 'digest',
  EXISTS: 'exists',
  MISSING: 'missing',
  RUNNING: 'running',
  OTHER: 'other',
} as const
export type PveFailureKind = (typeof PveFailureKind)[keyof typeof PveFailureKind]

const LOCK_PATTERNS = [
  /can't lock file '[^']*' - got timeout/,
  /cfs-lock '[^']*' error: got lock request timeout/,
  /VM is locked \([a-z-]+\)/,
  /got lock timeout/,
]

export function classifyPveMessage(message: string): PveFailureKind {
  if (LOCK_PATTERNS.some((p) => p.test(message))) return PveFailureKind.LOCK
  if (/checksum mismatch|detected modified configuration/.test(message)) return PveFailureKind.DIGEST
  if (/already exists|config file already exists/.test(message)) return PveFailureKind.EXISTS
  if (/Configuration file '[^']*' does not exist|does not exist|no such VM/i.test(message))
    return PveFailureKind.MISSING
  if (/is running - destroy failed|already running/.test(message)) return PveFailureKind.RUNNING
  return PveFailureKind.OTHER
}

export interface ProxmoxApiErrorOptions extends HttpErrorOptions {
  reason?: string
  apiMessage?: string
  errors?: Record<string, string>
}

/**
 * A request the API refused: HTTP status, the reason phrase (the first line of the server's error on
 * every version), the JSON `message` (pve-http-server ≥ 5.2) and the per-parameter `errors`.
 */
export class ProxmoxApiError extends HttpError {
  readonly reason: string | undefined
  readonly apiMessage: string | undefined
  readonly errors: Readonly<Record<string, string>> | undefined
  readonly failure: PveFailureKind

  constructor(message: string, options: ProxmoxApiErrorOptions) {
    const text = [options.apiMessage, options.reason, ...Object.values(options.errors ?? {})]
      .filter(Boolean)
      .join(' ')
    const failure = classifyPveMessage(text)
    const retryable =
      options.retryable ??
      (failure === PveFailureKind.LOCK ||
        failure === PveFailureKind.DIGEST ||
        options.status === 502 ||
        options.status === 503 ||
        options.status === 504 ||
        (options.status >= 595 && options.status <= 599))
    super(message, { ...options, retryable })
    this.name = 'ProxmoxApiError'
    this.reason = options.reason
    this.apiMessage = options.apiMessage
    this.errors = options.errors
    this.failure = failure
  }
}

export function isProxmoxApiError(error: unknown): error is ProxmoxApiError {
  return error instanceof Error && error.name === 'ProxmoxApiError' && 'failure' in error
}

export function isPveFailure(error: unknown, kind: PveFailureKind): boolean {
  if (isProxmoxApiError(error)) return error.failure === kind
  if (error instanceof Error && 'pveFailure' in error)
    return (error as { pveFailure: unknown }).pveFailure === kind
  return false
}
