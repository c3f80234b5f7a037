import { createHash } from 'node:crypto'
import {
  AbortedError,
  AuthError,
  type CallInfo,
  type CallRecorder,
  isPanelkitError,
  type PanelkitError,
  ProtocolError,
  TimeoutError,
  toPanelkitError,
} from '@panelkit/core'
import { type Dispatcher, request } from 'undici'
import { actionError, httpError, protocolError } from './errors.ts'
import { encodeForm, type FormValue } from './protocol/form.ts'

/**
 * The abort source of one request. undici's `request()` takes an AbortSignal or an EventEmitter
 * (`once`/`removeListener`); this minimal emitter costs a fraction of an AbortController (whose
 * signal undici listens to through EventTarget) and, unlike `AbortSignal.timeout()`, leaves no timer
 * behind: at a few hundred microseconds per WHMCS call that difference is measurable.
 */
class CallAbort {
  aborted = false
  reason: unknown
  private listener: (() => void) | undefined
  on(_event: 'abort', listener: () => void): this {
    this.listener = listener
    return this
  }
  once(event: 'abort', listener: () => void): this {
    return this.on(event, listener)
  }
  removeListener(_event: 'abort', _listener: () => void): this {
    this.listener = undefined
    return this
  }
  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    const listener = this.listener
    this.listener = undefined
    listener?.()
  }
}

/** Reads a body up to `max` bytes; a larger one is dropped (the socket is not reused) and refused. */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void }, max: number, action: string) {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > max) {
      body.destroy()
      throw protocolError(action, `answered with more than ${max} bytes (maxResponseBytes)`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size).toString('utf8')
}

/** How the client authenticates. */
export type WhmcsAuth =
  | { type: 'credentials'; identifier: string; secret: string }
  /**
   * The legacy admin login (username + MD5 of the admin password). Kept by WHMCS for backwards
   * compatibility only: it sends an unsalted hash on every call. Choose it explicitly or not at all.
   */
  | { type: 'legacy-admin'; username: string; password: string }

export interface TransportOptions {
  endpoint: URL
  auth: WhmcsAuth
  accessKey: string | undefined
  dispatcher: Dispatcher | undefined
  recorder: CallRecorder
  timeoutMs: number
  maxResponseBytes: number
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

  constructor(options: TransportOptions) {
    this.options = options
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
    // The time limit and the caller's signal abort the request through one CallAbort, whose timer is
    // cleared as soon as the answer is in (see CallAbort for why not an AbortSignal per call).
    const abort = new CallAbort()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      abort.abort(undefined)
    }, this.options.timeoutMs)
    const onAbort = () => abort.abort(signal?.reason)
    if (signal) {
      if (signal.aborted) abort.abort(signal.reason)
      else signal.addEventListener('abort', onAbort, { once: true })
    }
    let status: number
    let text: string
    let contentType: string
    try {
      const response = await request(this.options.endpoint, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          'user-agent': this.options.userAgent,
        },
        // undici's own header/body timers are coarse (about a second), so the limit is a signal.
        signal: abort,
        ...(this.options.dispatcher ? { dispatcher: this.options.dispatcher } : {}),
      })
      status = response.statusCode
      const header = response.headers['content-type']
      contentType = Array.isArray(header) ? (header[0] ?? '') : (header ?? '')
      text = await readCapped(response.body, this.options.maxResponseBytes, action)
    } catch (error) {
      if (signal?.aborted) throw new AbortedError(`WHMCS ${action} was aborted`, { cause: error })
      if (timedOut)
        throw new TimeoutError(`WHMCS ${action}: no answer within ${this.options.timeoutMs} ms`, {
          cause: error,
        })
      const wrapped = toPanelkitError(error, `WHMCS ${action}`)
      // A refused connection never reached WHMCS; a reset or a closed socket may have (the write may
      // have happened), which write-back helpers need to know.
      if (wrapped.details === undefined && error instanceof Error) {
        const code = (error as { code?: string }).code
        ;(wrapped as { details: Record<string, unknown> | undefined }).details = {
          action,
          notSent: code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'UND_ERR_CONNECT_TIMEOUT',
        }
      }
      throw wrapped
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    let json: unknown
    try {
      json = text === '' ? undefined : JSON.parse(text)
    } catch (error) {
      if (status !== 200) throw httpError(action, status, text.slice(0, 200).trim(), undefined)
      const looksXml = text.trimStart().startsWith('<')
      throw protocolError(
        action,
        looksXml
          ? `answered with ${/html/i.test(contentType) || /<html/i.test(text) ? 'HTML' : 'XML'} instead of JSON (is the URL the WHMCS root?)`
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
