import { type CallRecorder, createCallRecorder, type RetryPolicy, ValidationError } from '@panelkit/core'
import { Agent, type Dispatcher } from 'undici'
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
  auth: ComputeStacksAuth
  /** Sent as `Accept: application/json; api_version=NN`. Default 80, the only version not deprecated in 9.3. */
  apiVersion?: number
  /** Bring your own undici dispatcher (pool, proxy, MockAgent). The client never touches the global one. */
  dispatcher?: Dispatcher
  /** PEM CA certificate(s) to trust for this server (self-signed portals); ignored with `dispatcher`. */
  ca?: string | Buffer | (string | Buffer)[]
  /** Module log, timing and dry-run. Defaults to a recorder of its own. */
  recorder?: CallRecorder
  /** Time limit for the headers and for the body of one request. Default 30 s. */
  timeoutMs?: number
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
}

export interface LoginUrlOptions {
  /** Adds `from_admin=true`, which sends the person to the deployments page as an admin would land. */
  admin?: boolean
}

function originOf(host: string, port: number | undefined): string {
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
  return `https://${bare}${effectivePort !== undefined && effectivePort !== 443 ? `:${effectivePort}` : ''}`
}

export function createComputeStacksClient(options: ComputeStacksClientOptions) {
  const origin = originOf(options.host, options.port)
  const ownDispatcher =
    options.dispatcher === undefined
      ? new Agent({
          connect: options.ca === undefined ? {} : { ca: options.ca },
          keepAliveTimeout: 10_000,
          connections: 16,
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

  const http: Http = createHttp({
    origin,
    dispatcher,
    auth,
    apiVersion,
    recorder,
    timeoutMs,
    retry: options.retry ?? {},
    maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
    userAgent,
    ...(options.maxResponseBytes !== undefined ? { maxResponseBytes: options.maxResponseBytes } : {}),
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
