import { createHash } from 'node:crypto'
import {
  AuthError,
  type CallInfo,
  type CallRecorder,
  HttpError,
  isPanelkitError,
  type PanelkitError,
  ProtocolError,
} from '@panelkit/core'
import type { HttpTransport } from '@panelkit/core/http'
import { actionError, httpError, protocolError } from './errors.ts'
import { encodeForm, type FormValue } from './protocol/form.ts'

/**
 * WHMCS's own part of a call, on core's shared transport (`@panelkit/core/http`: TLS options and
 * pinning, capped reads, the time limit, socket and TLS errors with a diagnosis): the form with the
 * credentials, the `result`/`message` envelope and the fail-fast after a refused credential.
 */

/**
 * A maintenance page served instead of the API (WHMCS's upgrade page, a host's "back shortly"): it
 * passes, so it is retried like a 503. Any other HTML means the URL is not the WHMCS root.
 */
const MAINTENANCE =
  /maintenance|temporarily unavailable|be back (shortly|soon)|try again (later|shortly|in a few)|upgrade in progress/i

/** How the client authenticates. */
export type WhmcsAuth =
  | { type: 'credentials'; identifier: string; secret: string }
  /**
   * The legacy admin login (username + MD5 of the admin password). Kept by WHMCS for backwards
   * compatibility only: it sends an unsalted hash on every call. Choose it explicitly or not at all.
   */
  | { type: 'legacy-admin'; username: string; password: string }

export interface TransportOptions {
  /** Core's shared transport, for the origin of `endpoint`. */
  http: HttpTransport
  endpoint: URL
  auth: WhmcsAuth
  accessKey: string | undefined
  recorder: CallRecorder
  userAgent: string
  authFailureCooldownMs: number
  now: () => number
}

export interface SendOptions {
  access: 'read' | 'write'
  signal?: AbortSignal | undefined
  /** What the module log shows as the request (secrets already masked). */
  logRequest: unknown
  summarize: (response: Record<string, unknown>) => unknown
  dryRunResult: () => Record<string, unknown>
  target?: string | undefined
}

/**
 * One POST to `includes/api.php` per call: form-encoded, `responsetype=json`, credentials in the body
 * (never in the URL), through the injected dispatcher, timed and logged by the call recorder.
 */
export class WhmcsTransport {
  private readonly options: TransportOptions
  private readonly credentials: Record<string, string>
  /** The last authentication refusal: further calls fail fast until the cool-down ends. */
  private authFailure: { error: PanelkitError; until: number } | undefined
  private readonly path: string
  private readonly headers: Record<string, string>

  constructor(options: TransportOptions) {
    this.options = options
    this.path = options.endpoint.pathname
    this.headers = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      'user-agent': options.userAgent,
    }
    const auth = options.auth
    this.credentials =
      auth.type === 'credentials'
        ? { identifier: auth.identifier, secret: auth.secret }
        : { username: auth.username, password: createHash('md5').update(auth.password).digest('hex') }
    if (options.accessKey) this.credentials.accesskey = options.accessKey
    const redactor = options.recorder.redactor
    for (const [key, value] of Object.entries(this.credentials)) {
      if (key !== 'identifier' && key !== 'username') redactor.addValue(value)
    }
    if (auth.type === 'legacy-admin') redactor.addValue(auth.password)
  }

  /** Forgets a remembered authentication failure, e.g. after an operator fixed the credentials. */
  resetAuthFailure(): void {
    this.authFailure = undefined
  }

  get blockedUntil(): number | undefined {
    return this.authFailure && this.authFailure.until > this.options.now()
      ? this.authFailure.until
      : undefined
  }

  async send(
    action: string,
    params: Readonly<Record<string, FormValue>>,
    options: SendOptions,
  ): Promise<Record<string, unknown>> {
    const { recorder } = this.options
    const info: CallInfo<Record<string, unknown>> = {
      system: 'whmcs',
      action,
      access: options.access,
      request: options.logRequest,
      dryRunResult: options.dryRunResult,
      summarize: options.summarize,
    }
    if (options.target !== undefined) info.target = options.target
    return recorder.call(info, () => this.post(action, params, options.signal))
  }

  private async post(
    action: string,
    params: Readonly<Record<string, FormValue>>,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, unknown>> {
    const blocked = this.authFailure
    if (blocked && blocked.until > this.options.now()) {
      // Every refused secret counts as a failed admin login in WHMCS, and enough of them get this
      // machine's IP banned: do not ask again until an operator has had a chance to fix it.
      throw new AuthError(
        `Not sent: WHMCS refused our credentials or IP ${Math.round((this.options.now() - (blocked.until - this.options.authFailureCooldownMs)) / 1000)} s ago (${blocked.error.message}); calls resume at ${new Date(blocked.until).toISOString()} or after resetAuthFailure()`,
        { cause: blocked.error, retryable: false },
      )
    }
    const body = encodeForm({ ...params, action, responsetype: 'json', ...this.credentials })
    let status: number
    let text: string
    let contentType: string
    try {
      const response = await this.options.http.request({
        method: 'POST',
        path: this.path,
        headers: this.headers,
        body,
        signal,
        label: `WHMCS ${action}`,
      })
      status = response.status
      text = response.text
      contentType = response.headers['content-type'] ?? ''
    } catch (error) {
      // Core's transport says whether the request never left (`notSent`), which write-back helpers need.
      if (isPanelkitError(error)) {
        ;(error as { details: Record<string, unknown> | undefined }).details = { action, ...error.details }
      }
      throw error
    }
    let json: unknown
    try {
      json = text === '' ? undefined : JSON.parse(text)
    } catch (error) {
      if (status !== 200) throw httpError(action, status, text.slice(0, 200).trim(), undefined)
      const looksXml = text.trimStart().startsWith('<')
      const html = /html/i.test(contentType) || /<html/i.test(text)
      if (html && MAINTENANCE.test(text)) {
        throw new HttpError(
          `WHMCS ${action}: answered with a maintenance page instead of the API (HTTP ${status}); retried like a 503`,
          {
            status,
            method: 'POST',
            path: 'includes/api.php',
            retryable: true,
            details: { action, whmcsMessage: 'maintenance page', maintenance: true },
          },
        )
      }
      throw protocolError(
        action,
        looksXml
          ? `answered with ${html ? 'HTML' : 'XML'} instead of JSON (is the URL the WHMCS root?)`
          : 'answered with a body that is not JSON',
        error,
      )
    }
    const envelope =
      json !== null && typeof json === 'object' && !Array.isArray(json)
        ? (json as Record<string, unknown>)
        : undefined
    const message = typeof envelope?.message === 'string' ? envelope.message : ''
    if (status !== 200) {
      const error = httpError(action, status, message, envelope)
      if (status === 401 || (status === 403 && error.kind === 'AUTH' && !/permission/i.test(message))) {
        this.authFailure = { error, until: this.options.now() + this.options.authFailureCooldownMs }
      }
      throw error
    }
    if (envelope === undefined) throw protocolError(action, 'answered with an empty or non-object body')
    // WHMCS's own AddBillableItem example says `status` where every other answer says `result`.
    const result = envelope.result ?? envelope.status
    if (result === 'error') throw actionError(action, message || 'unspecified error')
    if (result !== 'success')
      throw new ProtocolError(`WHMCS ${action}: the answer has no result field`, {
        details: { action, keys: Object.keys(envelope).slice(0, 20) },
      })
    return envelope
  }
}

export function isNotSent(error: unknown): boolean {
  if (!isPanelkitError(error)) return false
  if (error.details?.notSent === true) return true
  // WHMCS looked at the request and refused it: nothing was written.
  return (
    error.kind === 'AUTH' ||
    error.kind === 'VALIDATION' ||
    error.kind === 'COMMAND' ||
    error.kind === 'NOT_FOUND' ||
    error.kind === 'CONFLICT' ||
    error.kind === 'UNSUPPORTED'
  )
}
