import {
  AuthError,
  type CallInfo,
  type CallRecorder,
  CommandError,
  ConflictError,
  HttpError,
  isPanelkitError,
  NotFoundError,
  type PanelkitError,
  ProtocolError,
  RateLimitedError,
  type RetryPolicy,
  TimeoutError,
  UnsupportedError,
  ValidationError,
} from '@panelkit/core'
import { type HttpTransport, retryAfterMs, retryRequest } from '@panelkit/core/http'
import { acceptHeader } from './api-versions.ts'

/**
 * ComputeStacks' own part of a request, on core's shared transport (`@panelkit/core/http`: TLS, capped
 * reads, time limits, socket errors, retries): base URL, version header, authentication, the
 * `{"errors": [...]}` envelope, status mapping onto core's errors and the module log.
 */

export { retryAfterMs }

export const SYSTEM = 'computestacks'

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export type QueryValue = string | number | boolean | undefined
export type Query = Record<string, QueryValue>

export interface HttpRequest<T> {
  method: HttpMethod
  /** Relative to `/api/`, e.g. `admin/users/42`. */
  path: string
  query?: Query
  body?: unknown
  /** Module-log action name; defaults to `METHOD /api/path`. */
  action?: string
  target?: string
  /** Under dry-run, writes are not sent and this is returned instead. */
  dryRunResult?: () => HttpResponse<T>
  /** Retry 5xx and dropped connections even though the method is not idempotent. */
  idempotent?: boolean
  /** Turns the response body into what the caller wants, or throws (a ProtocolError) when it cannot. */
  parse?: (body: unknown, response: RawResponse) => T
  signal?: AbortSignal
  /** False drops the parsed wire body from the response once `parse` has run (page listings). */
  keepBody?: boolean
}

export interface RawResponse {
  status: number
  headers: Record<string, string | undefined>
  /** Parsed JSON, or undefined for an empty body. */
  body: unknown
}

export interface HttpResponse<T> extends RawResponse {
  data: T
}

export interface Authenticator {
  /** The Authorization header value for the next request. */
  header(signal?: AbortSignal): Promise<string>
  /** Set when the header never changes (Basic), so the request path needs no await for it. */
  readonly staticHeader?: string
  /** Called after a 401 for a header this authenticator issued; true when a retry may help. */
  invalidate?(header: string): boolean
  /** Called when the server accepted a header (any answer but 401). */
  accepted?(header: string): void
  /** Secret values this authenticator knows, for the redactor. */
  secrets(): string[]
}

export interface HttpOptions {
  /** `https://host[:port]` without a path. */
  origin: string
  /** Core's shared transport, on the client's dispatcher. */
  transport: HttpTransport
  auth: Authenticator
  apiVersion: number
  recorder: CallRecorder
  /** Time limit of one attempt (enforced by the transport; named in messages). */
  timeoutMs: number
  retry: Partial<RetryPolicy> | false
  /** A server asking us to wait longer than this is not waited for: the RateLimitedError is thrown. */
  maxRetryAfterMs: number
  userAgent: string
  onDeprecated?: (info: { apiVersion: number; path: string }) => void
  now?: () => number
}

export interface Http {
  send<T = unknown>(req: HttpRequest<T>): Promise<HttpResponse<T>>
  readonly options: HttpOptions
}

const IDEMPOTENT = new Set<string>(['GET', 'PUT', 'DELETE'])

export function buildPath(path: string, query?: Query): string {
  const clean = path.charCodeAt(0) === 47 ? path.replace(/^\/+/, '') : path
  if (query === undefined) return `/api/${clean}`
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined) params.append(key, String(value))
  }
  const qs = params.toString()
  return `/api/${clean}${qs ? `?${qs}` : ''}`
}

/** The `errors` of a `{"errors": ...}` envelope as a list of strings (the server sometimes sends one string). */
export function envelopeMessages(body: unknown): string[] {
  if (body === null || typeof body !== 'object') return []
  const record = body as Record<string, unknown>
  const errors = record.errors ?? record.error_description ?? record.error
  if (typeof errors === 'string') return [errors]
  if (Array.isArray(errors)) return errors.map((e) => (typeof e === 'string' ? e : JSON.stringify(e)))
  if (errors && typeof errors === 'object') {
    return Object.entries(errors as Record<string, unknown>).map(([k, v]) => `${k} ${String(v)}`)
  }
  return []
}

interface ErrorContext {
  method: string
  path: string
  status: number
  headers: Record<string, string | undefined>
  body: unknown
  text: string
  now: number
}

/** Maps a non-2xx response onto core's errors, keeping the server's own messages. */
export function errorForResponse(ctx: ErrorContext): PanelkitError {
  const messages = envelopeMessages(ctx.body)
  const said = messages.length > 0 ? messages.join('; ') : ctx.text.trim().slice(0, 200)
  const where = `ComputeStacks ${ctx.method} ${ctx.path.split('?')[0]}`
  const bare = ctx.path.split('?')[0] ?? ctx.path
  const details = { status: ctx.status, method: ctx.method, path: bare, errors: messages }
  const message = `${where}: ${ctx.status}${said ? ` ${said}` : ''}`
  switch (ctx.status) {
    case 400:
      return new CommandError(message, { details })
    case 401:
    case 403:
      return new AuthError(
        `${message} (check the API key and secret, that their user is an admin, and that it is not locked out)`,
        { details },
      )
    case 404:
      return new NotFoundError(said ? message : `${where}: 404 not found`, { details })
    case 406:
      return new ProtocolError(message, { details })
    case 408:
      return new TimeoutError(message, { details })
    case 422: {
      if (ctx.headers['api-version-supported'] === 'false') {
        return new UnsupportedError(`${message} (set apiVersion to one the server supports)`, { details })
      }
      if (messages.some((m) => /has already been taken/i.test(m))) {
        return new ConflictError(message, { details })
      }
      return new ValidationError(
        message,
        messages.map((m) => ({ path: fieldOf(m), message: m })),
        { details, ...optional('customerMessage', messages[0]) },
      )
    }
    case 429:
      return new RateLimitedError(`${where}: 429 too many requests${said ? ` (${said})` : ''}`, {
        details,
        ...optional('retryAfterMs', retryAfterMs(ctx.headers, ctx.now)),
      })
    default:
      return new HttpError(message, {
        status: ctx.status,
        method: ctx.method,
        path: details.path,
        body: ctx.body ?? ctx.text.slice(0, 500),
        details,
      })
  }
}

/** Rails full messages start with the humanised attribute: `Email has already been taken` → `email`. */
function fieldOf(message: string): string {
  const first = /^([A-Z][a-z]+(?: [a-z]+)?) (?:is|has|can't|must|doesn't|should|are)\b/.exec(message)
  return first?.[1] ? first[1].toLowerCase().replace(/ /g, '_') : 'request'
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V }
}

/** A 401 on a bearer token the server used to accept: fetch a new token and send once more. */
class TokenRefresh extends AuthError {}

export function createHttp(options: HttpOptions): Http {
  const now = options.now ?? Date.now
  const accept = acceptHeader(options.apiVersion)
  let warnedDeprecated = false
  // Header objects are built once: undici reads them and never keeps or changes them.
  const staticAuth = options.auth.staticHeader
  const plainHeaders = staticAuth
    ? { accept, authorization: staticAuth, 'user-agent': options.userAgent }
    : undefined
  const jsonHeaders = plainHeaders ? { ...plainHeaders, 'content-type': 'application/json' } : undefined

  async function send<T>(
    req: HttpRequest<T>,
    path: string,
    where: string,
    bodyText: string | undefined,
    mayRefresh: boolean,
  ): Promise<HttpResponse<T>> {
    const signal = req.signal
    const authorization = staticAuth ?? (await options.auth.header(signal))
    let headers: Record<string, string>
    if (plainHeaders && jsonHeaders) headers = bodyText === undefined ? plainHeaders : jsonHeaders
    else {
      headers = { accept, authorization, 'user-agent': options.userAgent }
      if (bodyText !== undefined) headers['content-type'] = 'application/json'
    }
    const response = await options.transport.request({
      method: req.method,
      path,
      headers,
      body: bodyText ?? null,
      signal,
      label: where,
    })
    const text = response.text
    const status = response.status
    const responseHeaders = response.headers
    let body: unknown
    if (text.length > 0 && /json/i.test(responseHeaders['content-type'] ?? 'application/json')) {
      try {
        body = JSON.parse(text)
      } catch (error) {
        if (status < 300) {
          throw new ProtocolError(`${where}: ${status} with a body that is not JSON`, { cause: error })
        }
      }
    }
    if (!warnedDeprecated && responseHeaders['api-deprecated'] === 'true') {
      warnedDeprecated = true
      options.onDeprecated?.({ apiVersion: options.apiVersion, path: path.split('?')[0] as string })
    }
    if (status !== 401) options.auth.accepted?.(authorization)
    else if (options.auth.invalidate?.(authorization) && mayRefresh) {
      throw new TokenRefresh(`${where}: 401 token expired`, { details: { tokenRefresh: true } })
    }
    if (status < 200 || status >= 300) {
      throw errorForResponse({
        method: req.method,
        path,
        status,
        headers: responseHeaders,
        body,
        text,
        now: now(),
      })
    }
    let data: T
    try {
      data = req.parse ? req.parse(body, { status, headers: responseHeaders, body }) : (body as T)
    } catch (error) {
      if (isPanelkitError(error)) throw error
      throw new ProtocolError(`${where}: unexpected response: ${(error as Error).message}`, { cause: error })
    }
    // Collections drop the wire body once parsed, so a page is held once, not twice.
    return { status, headers: responseHeaders, body: req.keepBody === false ? undefined : body, data }
  }

  function attempt<T>(req: HttpRequest<T>, path: string): Promise<HttpResponse<T>> {
    const bare = path.split('?')[0] as string
    const where = `ComputeStacks ${req.method} ${bare}`
    const bodyText = req.body === undefined ? undefined : JSON.stringify(req.body)
    const info: CallInfo<HttpResponse<T>> = {
      system: SYSTEM,
      action: req.action ?? `${req.method} ${bare}`,
      access: req.method === 'GET' ? 'read' : 'write',
      target: req.target ?? options.origin,
      request:
        req.body === undefined ? { method: req.method, path } : { method: req.method, path, body: req.body },
      summarize,
    }
    if (req.dryRunResult) info.dryRunResult = req.dryRunResult
    return options.recorder.call(info, async () => {
      try {
        return await send(req, path, where, bodyText, true)
      } catch (error) {
        // One fresh token and one more try, whatever the retry policy: a 401 means nothing was done.
        if (error instanceof TokenRefresh) return send(req, path, where, bodyText, false)
        throw error
      }
    })
  }

  return {
    options,
    async send<T>(req: HttpRequest<T>): Promise<HttpResponse<T>> {
      const path = buildPath(req.path, req.query)
      if (options.retry === false) return attempt(req, path)
      // A 5xx, a reset or a timeout may have happened after the server acted: repeat only what is safe
      // to repeat (a request that never arrived, a 429 and a token request failed in transit always are).
      return retryRequest(() => attempt(req, path), {
        policy: options.retry,
        idempotent: req.idempotent ?? IDEMPOTENT.has(req.method),
        signal: req.signal,
        maxRetryAfterMs: options.maxRetryAfterMs,
      })
    },
  }
}

/** What the module log keeps of a response: status, size and the facts, not a 50,000-user page. */
function summarize(response: HttpResponse<unknown>): unknown {
  if (Array.isArray(response.data) && response.body === undefined) {
    return { status: response.status, items: response.data.length, total: response.headers.total }
  }
  const body = response.body
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const keys = Object.keys(body)
    const only = keys.length === 1 ? (body as Record<string, unknown>)[keys[0] as string] : undefined
    if (Array.isArray(only)) {
      return {
        status: response.status,
        [keys[0] as string]: `${only.length} items`,
        total: response.headers.total,
      }
    }
  }
  return { status: response.status, body }
}
