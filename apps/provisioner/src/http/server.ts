import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Failure, isPanelkitError, toFailure } from '@panelkit/core'
import { z } from 'zod'
import type { App } from '../app.ts'
import { withCallSource } from '../call-source.ts'
import { apiTokens, type TokenScope } from '../config.ts'
import { consoleHandler } from '../console/handler.ts'
import { serverInput } from '../engine/engine.ts'
import { listJobs } from '../engine/jobs.ts'
import { getService, listServices, type ServiceRecord } from '../engine/services.ts'
import { cancelJobs, publicJob } from '../engine/supersede.ts'
import { handleModuleRequest } from './module-routes.ts'
import {
  ActionBodySchema,
  CancelBodySchema,
  CreditBodySchema,
  ReconcileBodySchema,
  ReconcileQuerySchema,
  RetryBodySchema,
  ServiceIdSchema,
  SettleBodySchema,
  SyncBodySchema,
} from './schemas.ts'

/**
 * The HTTP API: JSON in, JSON out, bearer tokens compared in constant time, each with its scopes. Every
 * error is a JSON body `{ error: { code, message, detail, issues? } }` with a stable code — never a
 * stack trace or a file path (those go to the operator log); nothing changes unless the request was
 * authenticated, allowed and valid.
 */

export const API_ERROR = {
  AUTH: 'PANELKIT_ERR_AUTH',
  FORBIDDEN: 'PANELKIT_ERR_FORBIDDEN',
  VALIDATION: 'PANELKIT_ERR_VALIDATION',
  NOT_FOUND: 'PANELKIT_ERR_NOT_FOUND',
  METHOD: 'PANELKIT_ERR_METHOD_NOT_ALLOWED',
  TOO_LARGE: 'PANELKIT_ERR_PAYLOAD_TOO_LARGE',
  INTERNAL: 'PANELKIT_ERR_INTERNAL',
  NO_WHMCS: 'PANELKIT_ERR_NO_WHMCS',
  CONFLICT: 'PANELKIT_ERR_CONFLICT',
} as const

class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly issues: { path: string; message: string }[] | undefined
  readonly detail: string | undefined
  constructor(
    status: number,
    code: string,
    message: string,
    issues?: { path: string; message: string }[],
    detail?: string,
  ) {
    super(message)
    this.status = status
    this.code = code
    this.issues = issues
    this.detail = detail
  }
}

/** Bodies up to this size are read (and discarded) to answer 413 instead of resetting the connection. */
const DRAIN_LIMIT = 32 * 1024 * 1024

/** A source file in a stack frame or an error message: operators see it in the log, API callers never. */
const SOURCE_PATH =
  /(?:file:\/\/)?(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+)+\.(?:[cm]?[jt]sx?|node)(?::\d+){0,2}|node:internal\/[\w/.-]+(?::\d+){0,2}/g

function withoutPaths(text: string): string {
  return text.replace(SOURCE_PATH, '<path>')
}

/**
 * A stored failure as an API caller may see it: code, message, detail, retryable and the field — the
 * cause's name and message, without its stack (the operator log and the store keep that).
 */
export function publicFailure(f: Failure | null): Record<string, unknown> | null {
  if (!f) return null
  const out: Record<string, unknown> = {
    code: f.code,
    message: withoutPaths(f.message),
    detail: withoutPaths(f.detail),
    retryable: f.retryable,
  }
  if (f.field !== undefined) out.field = f.field
  if (f.issues) out.issues = f.issues.map((i) => ({ path: i.path, message: withoutPaths(i.message) }))
  if (f.cause) {
    const cause: Record<string, unknown> = { name: f.cause.name, message: withoutPaths(f.cause.message) }
    if (f.cause.code !== undefined) cause.code = f.cause.code
    out.cause = cause
  }
  return out
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

/** True when `given` equals one of the tokens; the time taken does not depend on where they differ. */
export function tokenMatches(given: string, tokens: readonly string[]): boolean {
  return (
    matchToken(
      given,
      tokens.map((token) => ({ token })),
    ) !== undefined
  )
}

/** The entry whose token equals `given`, every entry compared in constant time. */
function matchToken<T extends { token: string }>(given: string, entries: readonly T[]): T | undefined {
  const g = digest(given)
  let found: T | undefined
  for (const e of entries) if (timingSafeEqual(g, digest(e.token)) && !found) found = e
  return found
}

function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(body)', message: i.message }))
}

/**
 * Reads a body of at most `limit` bytes. A larger one is read to its end and dropped (up to
 * `DRAIN_LIMIT`), so the client gets its 413 instead of a connection reset in the middle of sending.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > DRAIN_LIMIT) {
      resolve('too-large')
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
      else if (size > DRAIN_LIMIT) {
        req.off('data', onData)
        req.pause()
        resolve('too-large')
      }
    }
    req.on('data', onData)
    req.once('end', () => resolve(size > limit ? 'too-large' : Buffer.concat(chunks)))
    req.once('error', reject)
  })
}

/** Reads what is left of a request body (up to `DRAIN_LIMIT`, for a few seconds) before answering. */
async function drain(req: IncomingMessage): Promise<void> {
  if (req.complete || req.readableEnded || req.destroyed) return
  await Promise.race([
    readBody(req, 0).catch(() => undefined),
    new Promise((resolve) => setTimeout(resolve, 5000).unref()),
  ])
}

async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  const body = await readBody(req, limit)
  if (body === 'too-large')
    throw new ApiError(413, API_ERROR.TOO_LARGE, `The body is larger than ${limit} bytes`)
  const size = body.length
  const chunks = [body]
  if (size === 0) return {}
  if (!(req.headers['content-type'] ?? '').includes('application/json'))
    throw new ApiError(400, API_ERROR.VALIDATION, 'The body must be JSON (content-type: application/json)')
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ApiError(400, API_ERROR.VALIDATION, 'The body is not valid JSON')
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value)
  if (!r.success) {
    const issues = issuesOf(r.error)
    throw new ApiError(
      400,
      API_ERROR.VALIDATION,
      `Invalid request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    )
  }
  return r.data
}

function publicService(s: ServiceRecord) {
  return {
    serviceId: s.serviceId,
    clientId: s.clientId,
    productId: s.productId,
    connector: s.connector,
    desired: s.desired,
    actual: s.actual,
    serverId: s.serverId,
    username: s.username,
    accountId: s.accountId,
    ips: s.ips,
    lastStep: s.lastStep,
    lastError: s.lastError === null ? null : withoutPaths(s.lastError),
    updatedAt: new Date(s.updatedAt).toISOString(),
  }
}

const DESIRED_FOR: Record<string, 'active' | 'suspended' | 'terminated' | undefined> = {
  create: 'active',
  unsuspend: 'active',
  suspend: 'suspended',
  terminate: 'terminated',
}

export interface ApiServer {
  url: string
  server: Server
  close(): Promise<void>
}

/** The scope each request needs (an `admin` token has every scope). */
function requiredScope(method: string, resource: string | undefined, body?: { action?: string }): TokenScope {
  if (resource === 'clients' || (resource === 'ledger' && method === 'POST')) return 'billing'
  if (method === 'GET' || method === 'HEAD') return 'read'
  if (body?.action === 'terminate') return 'admin'
  return 'operate'
}

export function createApiHandler(app: App) {
  const tokens = apiTokens(app.config)
  const { engine, store } = app

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const path = url.pathname.replace(/\/+$/, '') || '/'
    const method = req.method ?? 'GET'
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
      res.end(JSON.stringify(body))
    }
    if (path === '/health' || path === '/v1/health') {
      // Unauthenticated on purpose (load balancers), and says nothing beyond "alive".
      if (method === 'HEAD') {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
        res.end()
        return
      }
      if (method === 'GET') {
        send(200, { ok: true }, { 'cache-control': 'no-store' })
        return
      }
      throw new ApiError(405, API_ERROR.METHOD, `${method} is not allowed here (use GET, HEAD)`)
    }
    const header = req.headers.authorization ?? ''
    const m = /^Bearer\s+(\S+)$/i.exec(header)
    const caller = m && tokens.length > 0 ? matchToken(m[1] as string, tokens) : undefined
    if (!caller) {
      throw new ApiError(
        401,
        API_ERROR.AUTH,
        tokens.length === 0
          ? 'The API has no tokens configured (http.tokens), so it refuses every request'
          : 'A valid bearer token is required (Authorization: Bearer <token>)',
      )
    }
    const allow = (...methods: string[]) => {
      if (!methods.includes(method))
        throw new ApiError(405, API_ERROR.METHOD, `${method} is not allowed here (use ${methods.join(', ')})`)
    }
    const segments = path.split('/').filter(Boolean)
    if (segments[0] !== 'v1') throw new ApiError(404, API_ERROR.NOT_FOUND, `No endpoint ${path}`)
    const [, resource, id, sub] = segments
    // Every endpoint has a fixed depth: `/v1/services/1/actions/extra` is not `/actions`.
    // The WHMCS module's routes (module-routes.ts) match their own exact paths.
    const depth: Record<string, number> = {
      services: 4,
      clients: 4,
      ledger: 3,
      module: Number.POSITIVE_INFINITY,
    }
    if (segments.length > (depth[resource ?? ''] ?? 2))
      throw new ApiError(404, API_ERROR.NOT_FOUND, `No endpoint ${path}`)
    const need = (scope: TokenScope) => {
      if (!caller.scopes.includes(scope) && !caller.scopes.includes('admin'))
        throw new ApiError(
          403,
          API_ERROR.FORBIDDEN,
          `This token may not do that: it needs the ${scope} scope (it has ${caller.scopes.join(', ')})`,
        )
    }
    // A module call names its action last (`/v1/module/services/3/terminate`): terminate needs admin there too.
    need(
      requiredScope(method, resource, resource === 'module' ? { action: segments.at(-1) ?? '' } : undefined),
    )
    switch (resource) {
      case 'module':
        // The WHMCS server module's endpoints (module-routes.ts): they answer for themselves.
        await handleModuleRequest(app, req, res, segments.slice(2), url)
        return
      case 'status': {
        allow('GET')
        const jobs = await listJobs(store.db, { status: ['queued', 'running', 'parked'], limit: 10_000 })
        const uncertain = await store.ledger.list({ state: 'uncertain' })
        send(200, {
          ok: true,
          store: store.dialect,
          connectors: engine.connectorIds,
          whmcs: engine.whmcs !== undefined,
          openJobs: jobs.filter((j) => j.status !== 'parked').length,
          parkedJobs: jobs.filter((j) => j.status === 'parked').length,
          // Usage pushes or credits whose outcome is unknown: an operator settles them (POST /v1/ledger/settle).
          uncertainLedger: uncertain,
        })
        return
      }
      case 'ledger': {
        if (id === 'settle') {
          allow('POST')
          const body = parse(SettleBodySchema, await readJson(req))
          const out = await engine.settle(body.key, body.outcome)
          if (!out.settled) throw new ApiError(404, API_ERROR.NOT_FOUND, `No open ledger entry ${body.key}`)
          send(200, out)
          return
        }
        if (id !== undefined) throw new ApiError(404, API_ERROR.NOT_FOUND, `No endpoint ${path}`)
        allow('GET')
        const state = parse(
          z.enum(['pending', 'done', 'uncertain']).optional(),
          url.searchParams.get('state') ?? undefined,
        )
        send(200, { entries: await store.ledger.list(state ? { state } : {}) })
        return
      }
      case 'clients': {
        if (id === undefined || sub !== 'credit')
          throw new ApiError(404, API_ERROR.NOT_FOUND, `No endpoint ${path}`)
        allow('POST')
        const clientId = parse(z.string().regex(/^\d{1,12}$/, 'must be a WHMCS client id'), id)
        const body = parse(CreditBodySchema, await readJson(req))
        const out = await engine.creditDeposit({ clientId, ...body }, 'api')
        send(202, { accepted: true, created: out.created, job: { id: out.job.id, key: out.job.key } })
        return
      }
      case 'services': {
        if (id === undefined) {
          allow('GET')
          const clientId = url.searchParams.get('clientId') ?? undefined
          const services = await listServices(store.db, clientId ? { clientId } : {})
          send(200, { services: services.map(publicService) })
          return
        }
        const serviceId = parse(ServiceIdSchema, id)
        const service = await getService(store.db, serviceId)
        if (!service) throw new ApiError(404, API_ERROR.NOT_FOUND, `No service ${serviceId}`)
        if (sub === undefined) {
          allow('GET')
          const jobs = await listJobs(store.db, { serviceId, limit: 50 })
          const pipelines = await store.checkpoints.list(`${service.connector}:${serviceId}:`)
          send(200, {
            service: publicService(service),
            jobs: jobs.map((j) => ({
              id: j.id,
              key: j.key,
              operation: j.operation,
              status: j.status,
              attempts: j.attempts,
              lastError: publicFailure(j.lastError),
              steps: j.steps,
              createdAt: new Date(j.createdAt).toISOString(),
            })),
            pipelines: pipelines.map((c) => ({
              key: c.key,
              pipeline: c.pipeline,
              state: c.state,
              completed: c.completed,
              nextStep: c.nextStep,
              lastError: publicFailure(c.lastError ?? null),
              history: c.history.slice(-20),
            })),
          })
          return
        }
        if (sub === 'actions') {
          allow('POST')
          const body = parse(ActionBodySchema, await readJson(req))
          need(requiredScope(method, resource, body))
          const change: Parameters<typeof engine.request>[1] = {}
          const desired = DESIRED_FOR[body.action]
          if (desired) change.desired = desired
          if (body.password) change.password = body.password
          if (body.settings) change.settings = body.settings
          const out = await engine.request(serviceId, change, 'api')
          send(202, {
            accepted: true,
            jobs: out.jobs.map((j) => ({ id: j.id, key: j.key, operation: j.operation })),
          })
          return
        }
        if (sub === 'sso') {
          allow('GET')
          const audience = parse(z.enum(['client', 'admin']), url.searchParams.get('audience') ?? 'client')
          // A sign-on URL is a logged-in session: the client's needs operate, the panel admin's admin.
          need(audience === 'admin' ? 'admin' : 'operate')
          const connector = engine.connector(service.connector)
          const serverId = service.serverId ?? (await store.assignments.get(serviceId))
          const server = serverId ? engine.server(serverId) : undefined
          if (!connector || !server || service.actual === 'none' || service.actual === 'terminated')
            throw new ApiError(
              404,
              API_ERROR.NOT_FOUND,
              `Service ${serviceId} has no live account to sign in to`,
            )
          const result = await connector.invoke('sso', {
            audience,
            service: {
              ...(service.context as Record<string, never>),
              settings: service.settings,
              ...(service.username ? { username: service.username } : {}),
              server: serverInput(server),
            },
          } as never)
          if (!result.ok) {
            throw new ApiError(
              result.error.code === 'UNSUPPORTED' ? 501 : 502,
              `PANELKIT_ERR_${result.error.code}`,
              result.error.message,
              undefined,
              result.error.detail,
            )
          }
          const target = (result.data as { url: string }).url
          if (url.searchParams.get('format') === 'json') send(200, { url: target })
          else {
            res.writeHead(302, { location: target, 'cache-control': 'no-store' })
            res.end()
          }
          return
        }
        throw new ApiError(404, API_ERROR.NOT_FOUND, `No endpoint ${path}`)
      }
      case 'sync': {
        allow('POST')
        const body = parse(SyncBodySchema, await readJson(req))
        if (!engine.whmcs)
          throw new ApiError(
            409,
            API_ERROR.NO_WHMCS,
            'No WHMCS connection is configured (the `whmcs` section)',
          )
        const report = await engine.sync({
          ...(body.clientId ? { clientId: body.clientId } : {}),
          ...(body.email ? { email: body.email } : {}),
          ...(body.serviceId ? { serviceId: body.serviceId } : {}),
        })
        send(200, { report })
        return
      }
      case 'retry': {
        allow('POST')
        const body = parse(RetryBodySchema, await readJson(req))
        const retried = await engine.retry({
          ...(body.jobId !== undefined ? { jobId: body.jobId } : {}),
          ...(body.serviceId !== undefined ? { serviceId: body.serviceId } : {}),
        })
        send(200, { retried })
        return
      }
      case 'cancel': {
        allow('POST')
        const body = parse(CancelBodySchema, await readJson(req))
        if (body.serviceId !== undefined && !(await getService(store.db, body.serviceId)))
          throw new ApiError(404, API_ERROR.NOT_FOUND, `No service ${body.serviceId}`)
        if (body.resync && !engine.whmcs)
          throw new ApiError(
            409,
            API_ERROR.NO_WHMCS,
            'No WHMCS connection is configured (the `whmcs` section), so resync is not possible: nothing was cancelled',
          )
        const out = await cancelJobs(
          engine,
          {
            ...(body.jobId !== undefined ? { jobId: body.jobId } : {}),
            ...(body.serviceId !== undefined ? { serviceId: body.serviceId } : {}),
          },
          {
            reason: body.reason ?? `cancelled through the API (token ${caller.name})`,
            resync: body.resync === true,
          },
        )
        send(200, {
          cancelled: out.cancelled.map((j) => ({
            ...publicJob(j),
            lastError: publicFailure(j.lastError),
          })),
          services: out.services,
          ...(body.resync ? { syncs: out.syncs } : {}),
        })
        return
      }
      case 'reconcile': {
        allow('GET', 'POST')
        // GET (read): the plan only. POST (operate): with `apply: true` the changePackage jobs are queued.
        const q =
          method === 'GET'
            ? { ...parse(ReconcileQuerySchema, Object.fromEntries(url.searchParams)), apply: false }
            : parse(ReconcileBodySchema, await readJson(req))
        if (q.serviceId !== undefined && !(await getService(store.db, q.serviceId)))
          throw new ApiError(404, API_ERROR.NOT_FOUND, `No service ${q.serviceId}`)
        const out = await engine.reconcile({
          apply: q.apply === true,
          ...(q.serviceId !== undefined ? { serviceId: q.serviceId } : {}),
        })
        send(200, { applied: q.apply === true, queued: out.queued, entries: out.entries })
        return
      }
      case 'log': {
        allow('GET')
        const q = parse(
          z
            .object({
              serviceId: ServiceIdSchema,
              connector: z.string().max(64),
              operation: z.string().max(64),
              outcome: z.enum(['ok', 'error', 'dry-run']),
              source: z.enum(['whmcs-module', 'sync', 'api', 'cli', 'engine']),
              after: z.coerce.number().int().nonnegative(),
              limit: z.coerce.number().int().min(1).max(1000),
            })
            .partial()
            .strict(),
          Object.fromEntries(url.searchParams),
        )
        const entries = await engine.moduleLog.query(q as never)
        send(200, { entries })
        return
      }
      case 'drift': {
        allow('GET')
        const clientId = url.searchParams.get('clientId')
        const q = parse(
          z
            .string()
            .regex(/^\d{1,12}$/, 'must be a WHMCS client id')
            .optional(),
          clientId ?? undefined,
        )
        send(200, await engine.drift(q ? { clientId: q } : {}))
        return
      }
      default:
        throw new ApiError(404, API_ERROR.NOT_FOUND, `No endpoint ${path}`)
    }
  }

  const extra = consoleHandler(app)
  return async (req: IncomingMessage, res: ServerResponse) => {
    try {
      if (await extra(req, res)) return // the console, /metrics and /openapi.json (src/console)
      await withCallSource('api', () => route(req, res))
    } catch (error) {
      let status = 500
      let body: Record<string, unknown>
      if (error instanceof ApiError) {
        status = error.status
        body = {
          code: error.code,
          message: error.message,
          detail: withoutPaths(error.detail ?? error.message),
          ...(error.issues ? { issues: error.issues } : {}),
        }
      } else if (isPanelkitError(error) && error.kind === 'CONFLICT') {
        // The request is right but the state is not (a running job cannot be cancelled): nothing changed.
        const f = toFailure(error, app.redactor)
        status = 409
        body = { code: API_ERROR.CONFLICT, message: withoutPaths(f.detail), detail: withoutPaths(f.detail) }
      } else if (isPanelkitError(error) && error.kind === 'VALIDATION') {
        const f = toFailure(error, app.redactor)
        status = /^No (service|job) /.test(error.message) ? 404 : 400
        body = {
          code: status === 404 ? API_ERROR.NOT_FOUND : API_ERROR.VALIDATION,
          message: withoutPaths(f.detail),
          detail: withoutPaths(f.detail),
          ...(f.issues ? { issues: f.issues } : {}),
        }
      } else {
        // The stack and whatever the error says stay in the operator log, found by the request id.
        const requestId = randomUUID()
        const f = toFailure(error, app.redactor)
        app.logger.error('API request failed', { requestId, method: req.method, path: req.url, error: f })
        body = {
          code: API_ERROR.INTERNAL,
          message: 'The request failed on the server.',
          detail: `An unexpected error; the operator log has it under requestId ${requestId}.`,
          requestId,
        }
      }
      if (!res.headersSent) {
        // Read what the client is still sending, so it gets this answer rather than a reset.
        await drain(req)
        res.writeHead(status, {
          'content-type': 'application/json; charset=utf-8',
          ...(status === 413 ? { connection: 'close' } : {}),
        })
        res.end(req.method === 'HEAD' ? undefined : JSON.stringify({ error: app.redactor.redact(body) }))
      } else res.end()
    }
  }
}

/** Listens on `host:port` (port 0 picks a free one). */
export async function startApiServer(app: App, listen = app.config.http.listen): Promise<ApiServer> {
  const m = /^(.*):(\d+)$/.exec(listen)
  const host = m ? (m[1] as string).replace(/^\[|\]$/g, '') : '127.0.0.1'
  const port = m ? Number(m[2]) : Number(listen)
  const server = createServer(createApiHandler(app))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const address = server.address() as AddressInfo
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${shown}:${address.port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
