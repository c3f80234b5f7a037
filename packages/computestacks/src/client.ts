import { type CallRecorder, createCallRecorder, type RetryPolicy, ValidationError } from '@panelkit/core'
import { createHttpTransport, createTlsAgent, type TlsOptions } from '@panelkit/core/http'
import type { Dispatcher } from 'undici'
import { DEFAULT_API_VERSION } from './api-versions.ts'
import { type ComputeStacksAuth, createBasicAuth, createOAuth2Auth } from './auth.ts'
import {
  billingPlansEndpoint,
  getVersion,
  locationsEndpoint,
  userGroupsEndpoint,
} from './endpoints/catalog.ts'
import { usersEndpoint } from './endpoints/users.ts'
import { createHttp, type Http } from './http.ts'
import type { SsoToken } from './schemas.ts'

export interface ComputeStacksClientOptions {
  /** The controller's host name (`portal.example.com`), optionally with `:port`. The API is at `https://{host}/api/`. */
  host: string
  /** Overrides the port in `host`. */
  port?: number
  /**
   * `false` talks plain HTTP (the API key and secret then travel in clear: a warning is emitted once);
   * default true. An `http://` prefix on `host` means the same.
   */
  secure?: boolean
  auth: ComputeStacksAuth
  /** Sent as `Accept: application/json; api_version=NN`. Default 80, the only version not deprecated in 9.3. */
  apiVersion?: number
  /** Bring your own undici dispatcher (pool, proxy, MockAgent). The client never touches the global one. */
  dispatcher?: Dispatcher
  /** Certificate trust: `ca`, `fingerprint` (pinning) or `insecure` (warns once); ignored with `dispatcher`. */
  tls?: TlsOptions
  /** @deprecated Use `tls.ca`. */
  ca?: string | Buffer | (string | Buffer)[]
  /** Connections kept to the server (when the client builds its own dispatcher). Default 16. */
  connections?: number
  /** Module log, timing and dry-run. Defaults to a recorder of its own. */
  recorder?: CallRecorder
  /** Time limit for one request, from sending to the last body byte. Default 30 s. */
  timeoutMs?: number
  /** Time to wait for the response headers. Default `timeoutMs`. */
  headersTimeoutMs?: number
  /** Longest pause between body chunks. Default `timeoutMs`. */
  bodyTimeoutMs?: number
  /** Largest response body read; a larger one is a PROTOCOL error. Default 64 MiB. */
  maxResponseBytes?: number
  /** Retry policy for 429, 5xx and dropped connections (5xx and drops only for idempotent calls); false disables. */
  retry?: Partial<RetryPolicy> | false
  /** A `Retry-After` longer than this is not waited for; the RateLimitedError goes to the caller. Default 60 s. */
  maxRetryAfterMs?: number
  /** Page size the iterators ask for. Default 100 (the server's own default is 30; it has no maximum). */
  perPage?: number
  /** Called once when the server marks the requested API version as deprecated (`API-Deprecated: true`). */
  onDeprecated?: (info: { apiVersion: number; path: string }) => void
  userAgent?: string
  /** Where the one-time security warnings go (insecure TLS, plain HTTP). Default `process.emitWarning`. */
  warn?: (message: string) => void
}

export interface LoginUrlOptions {
  /** Adds `from_admin=true`, which sends the person to the deployments page as an admin would land. */
  admin?: boolean
}

function originOf(host: string, port: number | undefined, secure: boolean | undefined): string {
  const scheme = /^(https?):\/\//i.exec(host.trim())?.[1]?.toLowerCase()
  if (scheme === 'https' && secure === false) {
    throw new ValidationError(
      `ComputeStacks host ${JSON.stringify(host)} says https:// but secure is false`,
      [{ path: 'secure', message: 'contradicts the https:// in host' }],
    )
  }
  const plain = secure === false || scheme === 'http'
  const trimmed = host
    .trim()
    .replace(/^https?:\/\//i, '')
    .replace(/\/.*$/, '')
  if (!/^[A-Za-z0-9.\-[\]:]+$/.test(trimmed) || trimmed === '') {
    throw new ValidationError(`Invalid ComputeStacks host ${JSON.stringify(host)}`, [
      { path: 'host', message: 'must be a host name, optionally with :port' },
    ])
  }
  const hasPort = /:\d+$/.test(trimmed) && !trimmed.endsWith(']')
  const bare = hasPort ? trimmed.replace(/:\d+$/, '') : trimmed
  const effectivePort = port ?? (hasPort ? Number(trimmed.split(':').pop()) : undefined)
  const defaultPort = plain ? 80 : 443
  return `${plain ? 'http' : 'https'}://${bare}${effectivePort !== undefined && effectivePort !== defaultPort ? `:${effectivePort}` : ''}`
}

export function createComputeStacksClient(options: ComputeStacksClientOptions) {
  const origin = originOf(options.host, options.port, options.secure)
  const tls: TlsOptions =
    options.ca !== undefined && options.tls?.ca === undefined
      ? { ...options.tls, ca: options.ca }
      : (options.tls ?? {})
  // One dispatcher for the API and the OAuth2 token requests, built by core's TLS layer when not given.
  const ownDispatcher =
    options.dispatcher === undefined
      ? createTlsAgent(origin.startsWith('http:') ? {} : tls, {
          system: 'ComputeStacks',
          keepAliveTimeoutMs: 10_000,
          connections: options.connections ?? 16,
          ...(options.warn ? { warn: options.warn } : {}),
        })
      : undefined
  const dispatcher = options.dispatcher ?? (ownDispatcher as Dispatcher)
  const recorder = options.recorder ?? createCallRecorder({ connector: 'computestacks-client' })
  const timeoutMs = options.timeoutMs ?? 30_000
  const userAgent = options.userAgent ?? 'panelkit-computestacks'
  const apiVersion = options.apiVersion ?? DEFAULT_API_VERSION
  if (!Number.isInteger(apiVersion) || apiVersion <= 0) {
    throw new ValidationError(`Invalid apiVersion ${apiVersion}`, [
      { path: 'apiVersion', message: 'must be a positive integer' },
    ])
  }
  const auth =
    options.auth.type === 'basic'
      ? createBasicAuth(options.auth)
      : createOAuth2Auth(options.auth, { origin, dispatcher, recorder, timeoutMs, userAgent })
  for (const key of ['password_confirmation', 'auth_token', 'api_secret']) recorder.redactor.addKey(key)
  for (const secret of auth.secrets()) recorder.redactor.addValue(secret)
  const perPage = options.perPage ?? 100

  const transport = createHttpTransport({
    origin,
    dispatcher,
    system: 'ComputeStacks',
    tlsHint:
      "give the server's CA certificate (tls.ca), pin its certificate (tls.fingerprint), or, for a test portal only, tls.insecure",
    timeoutMs,
    ...(options.headersTimeoutMs !== undefined ? { headersTimeoutMs: options.headersTimeoutMs } : {}),
    ...(options.bodyTimeoutMs !== undefined ? { bodyTimeoutMs: options.bodyTimeoutMs } : {}),
    ...(options.maxResponseBytes !== undefined ? { maxResponseBytes: options.maxResponseBytes } : {}),
    ...(options.warn ? { warn: options.warn } : {}),
  })
  const http: Http = createHttp({
    origin,
    transport,
    auth,
    apiVersion,
    recorder,
    timeoutMs,
    retry: options.retry ?? {},
    maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
    userAgent,
    ...(options.onDeprecated ? { onDeprecated: options.onDeprecated } : {}),
  })

  return {
    origin,
    apiVersion,
    http,
    users: usersEndpoint(http, perPage),
    userGroups: userGroupsEndpoint(http, perPage),
    locations: locationsEndpoint(http),
    billingPlans: billingPlansEndpoint(http, perPage),
    /** `GET /api/version`: the product version and the API versions it lists. */
    version: (opts: { signal?: AbortSignal } = {}) => getVersion(http, opts),
    /** The address that signs the token's user in: `https://{host}/?username=…&token=…`. */
    loginUrl(token: SsoToken, opts: LoginUrlOptions = {}): string {
      const url = new URL('/', origin)
      url.searchParams.set('username', token.username)
      url.searchParams.set('token', token.token)
      if (opts.admin) url.searchParams.set('from_admin', 'true')
      return url.href
    },
    /** Closes the dispatcher this client made for itself (not one that was passed in). */
    async close(): Promise<void> {
      await ownDispatcher?.close()
    },
  }
}

export type ComputeStacksClient = ReturnType<typeof createComputeStacksClient>
