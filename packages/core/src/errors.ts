/**
 * One error hierarchy for every panelkit package.
 *
 * Errors are branded with a registry symbol so that `isPanelkitError` keeps working when two copies of
 * `@panelkit/core` end up in one process (the same reason undici brands its errors): check errors by
 * `code` or `kind`, never with `instanceof`.
 */

export const ErrorKind = {
  VALIDATION: 'VALIDATION',
  CONNECTION: 'CONNECTION',
  PROTOCOL: 'PROTOCOL',
  AUTH: 'AUTH',
  COMMAND: 'COMMAND',
  HTTP: 'HTTP',
  TIMEOUT: 'TIMEOUT',
  ABORTED: 'ABORTED',
  CONFLICT: 'CONFLICT',
  NOT_FOUND: 'NOT_FOUND',
  CAPACITY: 'CAPACITY',
  RATE_LIMITED: 'RATE_LIMITED',
  UNSUPPORTED: 'UNSUPPORTED',
  INTERNAL: 'INTERNAL',
} as const
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind]

export type ErrorCode = `PANELKIT_ERR_${ErrorKind}`

export const ERROR_CODES: Readonly<Record<ErrorKind, ErrorCode>> = Object.freeze(
  Object.fromEntries(Object.values(ErrorKind).map((k) => [k, `PANELKIT_ERR_${k}`])) as Record<
    ErrorKind,
    ErrorCode
  >,
)

/** Whether a failure of this kind is worth retrying when the thrower did not say. */
const DEFAULT_RETRYABLE: Readonly<Record<ErrorKind, boolean>> = {
  VALIDATION: false,
  CONNECTION: true,
  PROTOCOL: false,
  AUTH: false,
  COMMAND: false,
  HTTP: false,
  TIMEOUT: true,
  ABORTED: false,
  CONFLICT: false,
  NOT_FOUND: false,
  CAPACITY: false,
  RATE_LIMITED: true,
  UNSUPPORTED: false,
  INTERNAL: false,
}

/** Messages that are safe to show to a customer; the operator detail carries the specifics. */
const CUSTOMER_MESSAGES: Readonly<Record<ErrorKind, string>> = {
  VALIDATION: 'Some of the service details are not valid.',
  CONNECTION: 'The service platform could not be reached. Please try again later.',
  PROTOCOL: 'The service platform answered unexpectedly.',
  AUTH: 'The service platform refused our credentials.',
  COMMAND: 'The service platform refused the request.',
  HTTP: 'The service platform returned an error.',
  TIMEOUT: 'The service platform did not answer in time. Please try again later.',
  ABORTED: 'The request was cancelled.',
  CONFLICT: 'An account with these details already exists.',
  NOT_FOUND: 'The account could not be found.',
  CAPACITY: 'No server has room for this service right now.',
  RATE_LIMITED: 'The service platform is busy. Please try again later.',
  UNSUPPORTED: 'This action is not available for this service.',
  INTERNAL: 'An unexpected error occurred.',
}

export function customerMessageFor(kind: ErrorKind): string {
  return CUSTOMER_MESSAGES[kind]
}

const BRAND = Symbol.for('panelkit.error')

export interface ValidationIssue {
  /** Dotted path of the offending field, e.g. `service.client.email`. */
  readonly path: string
  readonly message: string
}

export interface PanelkitErrorOptions {
  cause?: unknown
  retryable?: boolean
  /** Message safe to show to a customer; defaults to a generic one for the kind. */
  customerMessage?: string
  /** Extra structured facts for the operator (never secrets: they are redacted anyway). */
  details?: Record<string, unknown>
}

export class PanelkitError extends Error {
  readonly kind: ErrorKind
  readonly code: ErrorCode
  readonly retryable: boolean
  readonly customerMessage: string
  readonly details: Record<string, unknown> | undefined

  constructor(kind: ErrorKind, message: string, options: PanelkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'PanelkitError'
    this.kind = kind
    this.code = ERROR_CODES[kind]
    this.retryable = options.retryable ?? DEFAULT_RETRYABLE[kind]
    this.customerMessage = options.customerMessage ?? CUSTOMER_MESSAGES[kind]
    this.details = options.details
    Object.defineProperty(this, BRAND, { value: true })
  }
}

export function isPanelkitError(value: unknown): value is PanelkitError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
}

/** True when `value` is a panelkit error with this code (or kind). */
export function hasErrorCode(value: unknown, code: ErrorCode | ErrorKind): boolean {
  return isPanelkitError(value) && (value.code === code || value.kind === code)
}

export class ValidationError extends PanelkitError {
  readonly issues: readonly ValidationIssue[]
  constructor(message: string, issues: readonly ValidationIssue[] = [], options: PanelkitErrorOptions = {}) {
    super('VALIDATION', message, options)
    this.name = 'ValidationError'
    this.issues = issues
  }
  /** The first offending field, if known. */
  get field(): string | undefined {
    return this.issues[0]?.path
  }
}

export class ConnectionError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('CONNECTION', message, options)
    this.name = 'ConnectionError'
  }
}

export class ProtocolError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('PROTOCOL', message, options)
    this.name = 'ProtocolError'
  }
}

export class AuthError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('AUTH', message, options)
    this.name = 'AuthError'
  }
}

/** The server understood the request and said no. */
export class CommandError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('COMMAND', message, options)
    this.name = 'CommandError'
  }
}

export interface HttpErrorOptions extends PanelkitErrorOptions {
  status: number
  method?: string
  /** Path (without query string and secrets) of the failed request. */
  path?: string
  body?: unknown
}

export class HttpError extends PanelkitError {
  readonly status: number
  readonly method: string | undefined
  readonly path: string | undefined
  readonly body: unknown
  constructor(message: string, options: HttpErrorOptions) {
    super('HTTP', message, { ...options, retryable: options.retryable ?? options.status >= 500 })
    this.name = 'HttpError'
    this.status = options.status
    this.method = options.method
    this.path = options.path
    this.body = options.body
  }
}

export class TimeoutError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('TIMEOUT', message, options)
    this.name = 'TimeoutError'
  }
}

export class AbortedError extends PanelkitError {
  constructor(message = 'The operation was aborted', options: PanelkitErrorOptions = {}) {
    super('ABORTED', message, options)
    this.name = 'AbortedError'
  }
}

export class ConflictError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('CONFLICT', message, options)
    this.name = 'ConflictError'
  }
}

export class NotFoundError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('NOT_FOUND', message, options)
    this.name = 'NotFoundError'
  }
}

export class CapacityError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('CAPACITY', message, options)
    this.name = 'CapacityError'
  }
}

export class RateLimitedError extends PanelkitError {
  /** Milliseconds the server asked us to wait, when it said. */
  readonly retryAfterMs: number | undefined
  constructor(message: string, options: PanelkitErrorOptions & { retryAfterMs?: number } = {}) {
    super('RATE_LIMITED', message, options)
    this.name = 'RateLimitedError'
    this.retryAfterMs = options.retryAfterMs
  }
}

export class UnsupportedError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('UNSUPPORTED', message, options)
    this.name = 'UnsupportedError'
  }
}

export class InternalError extends PanelkitError {
  constructor(message: string, options: PanelkitErrorOptions = {}) {
    super('INTERNAL', message, options)
    this.name = 'InternalError'
  }
}

/** Throws an `AbortedError` when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('The operation was aborted', { cause: signal.reason })
}

/**
 * Wraps anything thrown by a transport (a bare `ECONNRESET`, a TLS error, …) into a typed error.
 * Panelkit errors pass through unchanged.
 */
export function toPanelkitError(error: unknown, context = 'Operation failed'): PanelkitError {
  if (isPanelkitError(error)) return error
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code
    if (error.name === 'AbortError') return new AbortedError(`${context}: aborted`, { cause: error })
    if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new TimeoutError(`${context}: timed out (${code})`, { cause: error })
    }
    if (
      code !== undefined &&
      /^(ECONNREFUSED|ECONNRESET|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|UND_ERR_SOCKET|UND_ERR_CLOSED)$/.test(
        code,
      )
    ) {
      return new ConnectionError(`${context}: ${code}`, { cause: error })
    }
    return new InternalError(`${context}: ${error.message}`, { cause: error })
  }
  return new InternalError(`${context}: ${String(error)}`, { cause: error })
}
