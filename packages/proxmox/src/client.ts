import {
  AuthError,
  type CallRecorder,
  createCallRecorder,
  DEFAULT_RETRY_POLICY,
  isPanelkitError,
  type RetryPolicy,
  retry,
  ValidationError,
} from '@panelkit/core'
import { isNotSent } from '@panelkit/core/http'
import type { Dispatcher } from 'undici'
import { type AuthState, createAuthState, type ProxmoxCredentials, type TicketGrant } from './auth.ts'
import { encodeForm, type Params, toNumber } from './encoding.ts'
import { ENDPOINTS } from './endpoints/catalog.ts'
import type { EndpointDefinition, ParamsOf, ResultOf } from './endpoints/define.ts'
import { specFor } from './endpoints/define.ts'
import { isProxmoxApiError, ProxmoxApiError } from './errors.ts'
import {
  createHttpTransport,
  type HttpResponse,
  type HttpTransport,
  parseJsonBody,
  type TlsOptions,
} from './http.ts'
import { dryRunUpid, isUpid, type TaskResult, type WaitForTaskOptions, waitForTask } from './tasks.ts'

export interface ProxmoxClientOptions {
  /** `https://pve1.example.com:8006`. Either this or `host`. */
  baseUrl?: string
  host?: string
  /** Default 8006. */
  port?: number
  credentials: ProxmoxCredentials
  /** An undici Dispatcher to send through (MockAgent, a shared Agent); TLS options then do not apply. */
  dispatcher?: Dispatcher
  tls?: TlsOptions
  /** Every call goes through it (module log, timing, dry-run). Defaults to a private recorder. */
  recorder?: CallRecorder
  /** Time limit for one request, from sending to the last body byte. Default none (the two below apply). */
  timeoutMs?: number
  /** Time to wait for response headers. Default 60 s. */
  headersTimeoutMs?: number
  /** Longest pause between body chunks. Default 60 s. */
  bodyTimeoutMs?: number
  /** Largest response body read; a larger one is a PROTOCOL error. Default 64 MiB. */
  maxResponseBytes?: number
  connections?: number
  /** Backoff for lock errors (`can't lock file`, `cfs-lock`, `VM is locked`). */
  lockRetry?: Partial<RetryPolicy>
  /** Backoff for network errors and 5xx on requests that are safe to repeat. */
  networkRetry?: Partial<RetryPolicy>
  /** Renew the ticket once it is this old (default 1 hour). */
  renewAfterMs?: number
  /** Defaults for task waiting. */
  tasks?: WaitForTaskOptions
  warn?: (message: string) => void
  now?: () => number
}

export interface CallOptions {
  signal?: AbortSignal
  /**
   * Whether the request may be sent again after the server may have acted on it (a 5xx, a reset, a
   * time-out). Defaults to the endpoint's definition (GETs and idempotent writes); pass `false` for a
   * write that must never be resent, such as a config change that allocates a volume. A request that
   * never reached the server, and a lock refusal, are retried either way.
   */
  idempotent?: boolean
}

type Api = {
  [K in keyof typeof ENDPOINTS]: (
    params: ParamsOf<(typeof ENDPOINTS)[K]>,
    options?: CallOptions,
  ) => Promise<ResultOf<(typeof ENDPOINTS)[K]>>
}

export interface ProxmoxClient {
  readonly origin: string
  readonly recorder: CallRecorder
  readonly auth: AuthState
  /** Typed endpoints: `client.api.vmClone({ node, vmid, newid, full: true })`. */
  readonly api: Api
  /** Calls any endpoint definition (the typed `api` uses this). */
  call<E extends EndpointDefinition>(
    endpoint: E,
    params: ParamsOf<E>,
    options?: CallOptions,
  ): Promise<ResultOf<E>>
  /** Calls an endpoint that starts a task and waits for it; null when the server finished synchronously. */
  run<E extends EndpointDefinition>(
    endpoint: E,
    params: ParamsOf<E>,
    options?: CallOptions & WaitForTaskOptions,
  ): Promise<TaskResult | null>
  waitForTask(upid: string, options?: WaitForTaskOptions): Promise<TaskResult>
  /** `GET /cluster/nextid`, coerced to a number (servers send a string). */
  nextId(vmid?: number, options?: CallOptions): Promise<number>
  /** A view of this client (same session and connections) that records through another recorder. */
  withRecorder(recorder: CallRecorder): ProxmoxClient
  close(): Promise<void>
}

const API_PREFIX = '/api2/json'

/** Builds `/nodes/pve1/qemu/100/config` and splits the remaining parameters off. */
export function buildPath(definition: EndpointDefinition, params: Params): { path: string; rest: Params } {
  const rest: Params = { ...params }
  const path = definition.path.replace(/\{([^}]+)\}/g, (_m, name: string) => {
    const value = rest[name]
    delete rest[name]
    if (value === undefined || value === null || value === '') {
      // An empty segment reaches the server as another path (a 501); refuse it here.
      throw new ValidationError(`${definition.method} ${definition.path}: ${name} is required`, [
        { path: name, message: 'is required' },
      ])
    }
    return encodeURIComponent(String(value))
  })
  return { path, rest }
}

/** PVE's `pve-vmid` range. */
const VMID_KEYS = new Set(['vmid', 'newid'])
/** PVE's `pve-node` format: a host name label. */
const NODE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/

function checkParams(definition: EndpointDefinition, params: Params): void {
  const issues: { path: string; message: string }[] = []
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue
    const spec = specFor(definition, key)
    if (!spec) {
      issues.push({ path: key, message: `is not a parameter of ${definition.method} ${definition.path}` })
      continue
    }
    const n = toNumber(value)
    if ((spec.type === 'integer' || spec.type === 'number') && n === undefined)
      issues.push({ path: key, message: `must be a ${spec.type}` })
    else if (spec.type === 'integer' && !Number.isInteger(n))
      issues.push({ path: key, message: 'must be a whole number' })
    else if (VMID_KEYS.has(key) && ((n as number) < 100 || (n as number) > 999_999_999))
      issues.push({ path: key, message: 'must be a VMID from 100 to 999999999' })
    if (typeof value === 'string' && /[\r\n\0]/.test(value) && key !== 'description')
      issues.push({ path: key, message: 'must not contain line breaks or NUL' })
    else if (typeof value === 'string' && /[\u0001-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(value))
      issues.push({ path: key, message: 'must not contain control characters' })
    if (key === 'node' && typeof value === 'string' && value !== '' && !NODE_NAME.test(value))
      issues.push({ path: key, message: 'must be a node name (letters, digits and hyphens)' })
  }
  for (const [key, spec] of Object.entries(definition.params)) {
    if (!spec.optional && !key.endsWith('[n]') && (params[key] === undefined || params[key] === null))
      issues.push({ path: key, message: 'is required' })
  }
  if (issues.length > 0) {
    throw new ValidationError(
      `${definition.method} ${definition.path}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
      issues,
    )
  }
}

function errorFromResponse(response: HttpResponse, method: string, path: string): ProxmoxApiError {
  let body: unknown
  try {
    body = response.text ? JSON.parse(response.text) : undefined
  } catch {
    body = response.text
  }
  const object = body && typeof body === 'object' ? (body as Record<string, unknown>) : undefined
  const errors =
    object?.errors && typeof object.errors === 'object'
      ? (object.errors as Record<string, string>)
      : undefined
  const apiMessage =
    typeof object?.message === 'string'
      ? object.message.trim()
      : typeof body === 'string' && body.trim() !== ''
        ? body.trim().split('\n')[0]
        : undefined
  const reason = response.reason || undefined
  const text = apiMessage ?? reason ?? `HTTP ${response.status}`
  const perParam = errors
    ? ` (${Object.entries(errors)
        .map(([k, v]) => `${k}: ${v}`)
        .join('; ')})`
    : ''
  const options: ConstructorParameters<typeof ProxmoxApiError>[1] = {
    status: response.status,
    method,
    path,
    body,
  }
  if (reason !== undefined) options.reason = reason
  if (apiMessage !== undefined) options.apiMessage = apiMessage
  if (errors !== undefined) options.errors = errors
  return new ProxmoxApiError(`${method} ${path}: HTTP ${response.status} ${text}${perParam}`, options)
}

function isNetworkFailure(error: unknown): boolean {
  return isPanelkitError(error) && (error.kind === 'CONNECTION' || error.kind === 'TIMEOUT')
}

const LOGIN_FAILURE = Symbol.for('panelkit.proxmox.loginFailure')

/**
 * Marks an error that came from the login a call needed. The login (`POST /access/ticket`) is a call
 * with its own bounded retries; a call that retried on it too multiplied them (3 × 3 logins, 60 s each,
 * against a server that accepts and never answers).
 */
function markLoginFailure(error: unknown): unknown {
  if (error !== null && typeof error === 'object' && !Object.isFrozen(error))
    Object.defineProperty(error, LOGIN_FAILURE, { value: true, enumerable: false, configurable: true })
  return error
}

function isLoginFailure(error: unknown): boolean {
  return error !== null && typeof error === 'object' && LOGIN_FAILURE in error
}

interface Shared {
  transport: HttpTransport
  auth: AuthState
  options: ProxmoxClientOptions
}

export function createProxmoxClient(options: ProxmoxClientOptions): ProxmoxClient {
  const baseUrl =
    options.baseUrl ?? (options.host ? `https://${options.host}:${options.port ?? 8006}` : undefined)
  if (!baseUrl)
    throw new ValidationError('Either baseUrl or host is required', [
      { path: 'host', message: 'is required' },
    ])
  const recorder = options.recorder ?? createCallRecorder({ connector: 'proxmox-client' })
  const transportOptions: Parameters<typeof createHttpTransport>[0] = { baseUrl }
  if (options.dispatcher) transportOptions.dispatcher = options.dispatcher
  if (options.tls) transportOptions.tls = options.tls
  if (options.timeoutMs !== undefined) transportOptions.timeoutMs = options.timeoutMs
  if (options.headersTimeoutMs !== undefined) transportOptions.headersTimeoutMs = options.headersTimeoutMs
  if (options.bodyTimeoutMs !== undefined) transportOptions.bodyTimeoutMs = options.bodyTimeoutMs
  if (options.connections !== undefined) transportOptions.connections = options.connections
  if (options.maxResponseBytes !== undefined) transportOptions.maxResponseBytes = options.maxResponseBytes
  if (options.warn) transportOptions.warn = options.warn
  const transport = createHttpTransport(transportOptions)
  // The login goes through whichever recorder is current, so the session's secrets reach its redactor.
  let loginVia: ProxmoxClient | undefined
  const authOptions: Parameters<typeof createAuthState>[0] = {
    credentials: options.credentials,
    redactor: recorder.redactor,
    login: (form) =>
      (loginVia as ProxmoxClient).call(ENDPOINTS.login, form as unknown as ParamsOf<typeof ENDPOINTS.login>),
  }
  if (options.renewAfterMs !== undefined) authOptions.renewAfterMs = options.renewAfterMs
  if (options.now) authOptions.now = options.now
  const auth = createAuthState(authOptions)
  const client = makeClient({ transport, auth, options }, recorder, (c) => {
    loginVia = c
  })
  loginVia = client
  return client
}

function makeClient(
  shared: Shared,
  recorder: CallRecorder,
  onUse: (c: ProxmoxClient) => void,
): ProxmoxClient {
  const { transport, auth, options } = shared
  const lockPolicy: Partial<RetryPolicy> = {
    maxAttempts: 8,
    initialDelayMs: 200,
    maxDelayMs: 5_000,
    // Half the delay is fixed so the total wait across attempts is predictable (a lock lasts a while).
    jitter: 'equal',
    ...options.lockRetry,
  }
  const networkPolicy: Partial<RetryPolicy> = {
    ...DEFAULT_RETRY_POLICY,
    maxAttempts: 3,
    ...options.networkRetry,
  }

  async function once(
    method: EndpointDefinition['method'],
    url: string,
    body: string | undefined,
    signal?: AbortSignal,
    isLogin = false,
  ) {
    let recovered = false
    for (;;) {
      let headers: Record<string, string> = {}
      if (!isLogin) {
        try {
          headers = await auth.headers(method)
        } catch (error) {
          throw markLoginFailure(error)
        }
      }
      const request: Parameters<HttpTransport['request']>[0] = { method, path: url, headers }
      if (body !== undefined) request.body = body
      if (signal) request.signal = signal
      const response = await transport.request(request)
      if (response.status === 401 && !isLogin && !recovered && auth.kind === 'ticket') {
        recovered = true
        // Any 401 (expired ticket, rotated key, restarted cluster): one fresh login, one retry.
        if (await auth.recover()) continue
      }
      return response
    }
  }

  async function call<E extends EndpointDefinition>(
    endpoint: E,
    params: ParamsOf<E>,
    callOptions: CallOptions = {},
  ): Promise<ResultOf<E>> {
    onUse(self)
    const raw = params as unknown as Params
    checkParams(endpoint, raw)
    const { path, rest } = buildPath(endpoint, raw)
    const method = endpoint.method
    const hasBody = method === 'POST' || method === 'PUT'
    const encoded = encodeForm(rest)
    const url = `${API_PREFIX}${path}${!hasBody && encoded ? `?${encoded}` : ''}`
    const isLogin = endpoint.path === '/access/ticket'
    const access = endpoint.access ?? (method === 'GET' ? 'read' : 'write')
    const vmid = raw.vmid
    return recorder.call<ResultOf<E>>(
      {
        system: 'proxmox',
        action: `${method} ${endpoint.path}`,
        access,
        target: transport.origin,
        request: rest,
        dryRunResult: () =>
          (endpoint.returns === 'upid'
            ? dryRunUpid(
                endpoint.path.split('/').pop() ?? 'task',
                vmid === undefined || vmid === null ? '' : String(vmid),
              )
            : null) as ResultOf<E>,
        summarize: (response) =>
          isLogin
            ? { username: (response as Partial<TicketGrant> | null)?.username }
            : Array.isArray(response)
              ? { rows: response.length }
              : response,
      },
      async () => {
        const attempt = async () => {
          const response = await once(method, url, hasBody ? encoded : undefined, callOptions.signal, isLogin)
          if (response.status >= 200 && response.status < 300) {
            const parsed = parseJsonBody(response, `${method} ${endpoint.path}`) as
              | { data?: unknown }
              | undefined
            if (isLogin) {
              const grant = parsed?.data as Partial<TicketGrant> | undefined
              recorder.redactor.addValue(grant?.ticket)
              recorder.redactor.addValue(grant?.CSRFPreventionToken)
            }
            return (parsed?.data ?? null) as ResultOf<E>
          }
          const error = errorFromResponse(response, method, endpoint.path)
          if (response.status === 401) {
            throw new AuthError(
              isLogin
                ? 'Proxmox refused the login (check the user name, realm and password)'
                : auth.kind === 'token'
                  ? 'Proxmox refused the API token (check the token id, secret and expiry)'
                  : 'Proxmox refused the session even after a fresh login',
              { cause: error, retryable: false, details: { status: 401, reason: error.reason } },
            )
          }
          throw error
        }
        // An endpoint may be idempotent for some parameters only: a config write that allocates a
        // volume (`scsi1=local-lvm:8`) is not, and is never resent after an unknown outcome. A caller's
        // explicit `idempotent` option decides over both.
        const repeatable =
          callOptions.idempotent ??
          (method === 'GET' ||
            (endpoint.idempotent === true &&
              (endpoint.repeatable?.(params as Record<string, unknown>) ?? true)))
        let networkAttempts = 0
        return retry(attempt, {
          policy: {
            ...lockPolicy,
            maxAttempts: (lockPolicy.maxAttempts ?? 8) + (networkPolicy.maxAttempts ?? 3),
          },
          ...(callOptions.signal ? { signal: callOptions.signal } : {}),
          shouldRetry: (error, n) => {
            // The login already retried on its own: repeating the call would repeat all its attempts.
            if (isLoginFailure(error)) return false
            if (isProxmoxApiError(error)) {
              if (error.failure === 'lock' || error.failure === 'digest')
                return n < (lockPolicy.maxAttempts ?? 8)
              // A 5xx from a proxy hop: the server may have acted. Repeat only what is safe to repeat.
              if (error.retryable && repeatable) return ++networkAttempts < (networkPolicy.maxAttempts ?? 3)
              return false
            }
            if (isNetworkFailure(error) && (repeatable || isNotSent(error))) {
              return ++networkAttempts < (networkPolicy.maxAttempts ?? 3)
            }
            return false
          },
        })
      },
    )
  }

  async function waitFor(upid: string, waitOptions: WaitForTaskOptions = {}): Promise<TaskResult> {
    onUse(self)
    const merged: WaitForTaskOptions = { ...options.tasks, ...waitOptions }
    return waitForTask(
      upid,
      (node, id, signal) => call(ENDPOINTS.taskStatus, { node, upid: id }, signal ? { signal } : {}),
      merged,
    )
  }

  const api = Object.fromEntries(
    Object.entries(ENDPOINTS).map(([name, endpoint]) => [
      name,
      (params: never, callOptions?: CallOptions) => call(endpoint as EndpointDefinition, params, callOptions),
    ]),
  ) as unknown as Api

  const self: ProxmoxClient = {
    origin: transport.origin,
    recorder,
    auth,
    api,
    call,
    async run(endpoint, params, runOptions = {}) {
      const callOptions: CallOptions = {}
      if (runOptions.signal) callOptions.signal = runOptions.signal
      if (runOptions.idempotent !== undefined) callOptions.idempotent = runOptions.idempotent
      const result = await call(endpoint, params, callOptions)
      if (result === null || result === undefined) return null
      if (!isUpid(result)) return null
      return waitFor(result, runOptions)
    },
    waitForTask: waitFor,
    async nextId(vmid, callOptions) {
      const value = await call(ENDPOINTS.nextId, vmid === undefined ? {} : { vmid }, callOptions)
      const n = toNumber(value)
      if (n === undefined) throw new ValidationError(`nextid returned ${JSON.stringify(value)}`)
      return n
    },
    withRecorder(other) {
      return makeClient(shared, other, onUse)
    },
    async close() {
      await transport.close()
    },
  }
  return self
}

export type { TicketGrant }
