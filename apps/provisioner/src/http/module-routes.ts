import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  type ConnectorInstance,
  customerMessageFor,
  type Failure,
  type ModuleLogEntry,
  toFailure,
} from '@panelkit/core'
import { sameId, type WhmcsClient, type WhmcsService } from '@panelkit/whmcs'
import { z } from 'zod'
import type { App } from '../app.ts'
import { withCallSource } from '../call-source.ts'
import { serverInput } from '../engine/engine.ts'
import { type Job, JobStatus, LIFECYCLE_OPERATIONS, listJobs } from '../engine/jobs.ts'
import { getService, listServices, type ServiceRecord, type ServiceState } from '../engine/services.ts'

/**
 * The endpoints the WHMCS server module (`apps/whmcs-module`, `modules/servers/panelkit`) calls, under
 * `/v1/module/…`, behind the API's bearer token (server.ts checks it before handing a request here).
 *
 * A lifecycle call (CreateAccount, SuspendAccount, …) is an explicit intent: the service id and the
 * `$params` WHMCS gave the module. It is not trusted blindly. The provisioner reads the service from
 * WHMCS's own API (GetClientsProducts), refuses a call that does not match it (another client, another
 * product, other options, a product the provisioner does not map), and then runs the reverse sync's
 * single-service pass over that very row with the status WHMCS gives the service once the call
 * succeeds (WHMCS marks a service Active only after CreateAccount returns `success`). The jobs are
 * therefore queued under the reverse sync's own idempotency keys: a button pressed twice, or a button
 * and a sync pass, queue one job. The call then waits, up to its deadline, for those jobs: `done`;
 * `failed` (parked, with the customer-safe message and the operator's detail); `accepted` (still
 * running and durable — a VM deploy — so WHMCS may go on, the rest shows in the admin tab); or
 * `retrying` (an attempt failed and the engine retries; WHMCS should not treat it as done).
 *
 * Every call is written to the module log with source `whmcs-module`, as are the connector and WHMCS
 * calls it causes.
 */

const MODULE_ERROR = {
  VALIDATION: 'PANELKIT_ERR_VALIDATION',
  NOT_FOUND: 'PANELKIT_ERR_NOT_FOUND',
  MISMATCH: 'PANELKIT_ERR_WHMCS_MISMATCH',
  NOT_MAPPED: 'PANELKIT_ERR_NOT_MAPPED',
  STATE: 'PANELKIT_ERR_STATE',
  NO_WHMCS: 'PANELKIT_ERR_NO_WHMCS',
  METHOD: 'PANELKIT_ERR_METHOD_NOT_ALLOWED',
  TOO_LARGE: 'PANELKIT_ERR_PAYLOAD_TOO_LARGE',
  INTERNAL: 'PANELKIT_ERR_INTERNAL',
} as const

/** An answer the module shows: `message` is safe for a customer, `detail` is for the module log. */
class ModuleError extends Error {
  readonly status: number
  readonly code: string
  readonly detail: string
  readonly issues: { path: string; message: string }[] | undefined
  constructor(
    status: number,
    code: string,
    message: string,
    detail = message,
    issues?: { path: string; message: string }[],
  ) {
    super(message)
    this.status = status
    this.code = code
    this.detail = detail
    this.issues = issues
  }
}

export const WhmcsIdSchema = z
  .union([z.number().int().positive(), z.string().regex(/^\d{1,12}$/)])
  .transform(String)
const ServiceIdSchema = z.string().regex(/^\d{1,12}$/, 'must be a WHMCS service id')
const TextSchema = z.string().max(1000)
const ValueSchema = z.union([z.string().max(1000), z.number()]).transform(String)

export const LifecycleActionSchema = z.enum([
  'create',
  'suspend',
  'unsuspend',
  'terminate',
  'changePassword',
  'changePackage',
])
type LifecycleAction = z.infer<typeof LifecycleActionSchema>

/** The `$params` a lifecycle call carries (module-parameters.md names: userid, pid, configoptions, …). */
export const IntentBodySchema = z
  .object({
    clientId: WhmcsIdSchema,
    productId: WhmcsIdSchema,
    domain: TextSchema.optional(),
    username: TextSchema.optional(),
    configOptions: z.record(TextSchema, ValueSchema).default({}),
    customFields: z.record(TextSchema, ValueSchema).default({}),
    clientEmail: z.email().max(254).optional(),
    /** The product's "Connector product" setting: a connector id, or `auto` (as the provisioner maps it). */
    connector: z
      .string()
      .regex(/^(auto|[a-z][a-z0-9-]{1,63})$/, 'must be a connector id or auto')
      .default('auto'),
    /** How long the call may wait for the work to finish before answering `accepted`. */
    waitSeconds: z.number().int().min(0).max(55).default(20),
  })
  .strict()

export const SsoBodySchema = z
  .object({ clientId: WhmcsIdSchema, audience: z.enum(['client', 'admin']).default('client') })
  .strict()
export const ActionBodySchema = z
  .object({
    clientId: WhmcsIdSchema,
    audience: z.enum(['client', 'admin']).default('admin'),
    params: z
      .record(z.string().max(64), z.union([z.string().max(1000), z.number(), z.boolean()]))
      .default({}),
  })
  .strict()

/** The status WHMCS gives a service once the module function returned `success`. */
const STATUS_AFTER: Record<LifecycleAction, string | undefined> = {
  create: 'Active',
  suspend: 'Suspended',
  unsuspend: 'Active',
  terminate: 'Terminated',
  changePassword: undefined,
  changePackage: undefined,
}

/** The state the store should confirm once the call's jobs are done. */
const STATE_AFTER: Partial<Record<LifecycleAction, ServiceState>> = {
  create: 'active',
  suspend: 'suspended',
  unsuspend: 'active',
  terminate: 'terminated',
}

const LIFECYCLE = new Set<string>(LIFECYCLE_OPERATIONS)

function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(body)', message: i.message }))
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value)
  if (!r.success) {
    const issues = issuesOf(r.error)
    const text = issues.map((i) => `${i.path}: ${i.message}`).join('; ')
    throw new ModuleError(400, MODULE_ERROR.VALIDATION, `Invalid request: ${text}`, text, issues)
  }
  return r.data
}

async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit)
      throw new ModuleError(413, MODULE_ERROR.TOO_LARGE, `The body is larger than ${limit} bytes`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  if (!(req.headers['content-type'] ?? '').includes('application/json'))
    throw new ModuleError(
      400,
      MODULE_ERROR.VALIDATION,
      'The body must be JSON (content-type: application/json)',
    )
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ModuleError(400, MODULE_ERROR.VALIDATION, 'The body is not valid JSON')
  }
}

/** A WHMCS client whose GetClientsProducts answers with one row already read (status as after the call). */
function frozenClient(client: WhmcsClient, row: WhmcsService, status: string): WhmcsClient {
  const bound = Object.create(client) as WhmcsClient
  bound.getClientsProducts = async () =>
    ({
      result: 'success',
      clientid: row.clientid,
      serviceid: row.id,
      pid: null,
      domain: null,
      totalresults: 1,
      startnumber: 0,
      numreturned: 1,
      products: [{ ...row, status }],
    }) as never
  return bound
}

function publicJob(j: Job) {
  const step = j.steps.at(-1)
  return {
    id: j.id,
    operation: j.operation,
    status: j.status,
    source: j.source,
    attempts: j.attempts,
    createdAt: new Date(j.createdAt).toISOString(),
    ...(step ? { step: { label: step.label, outcome: step.outcome, at: step.at } } : {}),
    ...(j.lastError
      ? { error: { code: j.lastError.code, message: j.lastError.message, detail: j.lastError.detail } }
      : {}),
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export async function handleModuleRequest(
  app: App,
  req: IncomingMessage,
  res: ServerResponse,
  segments: string[],
  url: URL,
): Promise<void> {
  const started = performance.now()
  const method = req.method ?? 'GET'
  const path = `/v1/module/${segments.join('/')}`
  const log: { serviceId?: string; operation: string; request?: unknown; response?: unknown } = {
    operation: segments[0] === 'services' ? (segments[2] ?? 'status') : (segments[0] ?? 'info'),
  }
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
    res.end(JSON.stringify(body))
  }
  await withCallSource('whmcs-module', async () => {
    let failure: { code: string; message: string } | undefined
    try {
      const body = await route(app, req, segments, url, method, log)
      log.response = body
      send(200, body)
    } catch (error) {
      let status = 500
      let out: Record<string, unknown>
      if (error instanceof ModuleError) {
        status = error.status
        out = {
          code: error.code,
          message: error.message,
          detail: error.detail,
          ...(error.issues ? { issues: error.issues } : {}),
        }
      } else {
        const f = toFailure(error, app.redactor)
        app.logger.error('WHMCS module request failed', { path, error: f })
        out = { code: MODULE_ERROR.INTERNAL, message: f.message, detail: f.detail }
      }
      failure = { code: String(out.code), message: String(out.detail ?? out.message) }
      log.response = out
      if (!res.headersSent) send(status, { error: app.redactor.redact(out) })
      else res.end()
    } finally {
      // The module's own call, beside the connector and WHMCS calls it caused (same source).
      const entry: ModuleLogEntry = {
        id: `module-${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`,
        time: new Date().toISOString(),
        connector: 'whmcs-module',
        operation: log.operation,
        system: 'panelkit',
        action: `${method} ${path}`,
        access: method === 'GET' ? 'read' : 'write',
        durationMs: performance.now() - started,
        outcome: failure ? 'error' : 'ok',
        ...(log.serviceId ? { serviceId: log.serviceId } : {}),
        ...(log.request !== undefined ? { request: log.request } : {}),
        ...(log.response !== undefined ? { response: log.response } : {}),
        ...(failure ? { error: failure } : {}),
      }
      app.engine.moduleLog.write(entry)
    }
  })
}

async function route(
  app: App,
  req: IncomingMessage,
  segments: string[],
  url: URL,
  method: string,
  log: { serviceId?: string; operation: string; request?: unknown },
): Promise<unknown> {
  const allow = (...methods: string[]) => {
    if (!methods.includes(method))
      throw new ModuleError(
        405,
        MODULE_ERROR.METHOD,
        `${method} is not allowed here (use ${methods.join(', ')})`,
      )
  }
  const [resource, id, sub, name] = segments
  if (resource === 'info' && id === undefined) {
    allow('GET')
    return info(app)
  }
  if (resource === 'usage' && id === undefined) {
    allow('GET')
    return usage(app)
  }
  if (resource !== 'services' || id === undefined)
    throw new ModuleError(404, MODULE_ERROR.NOT_FOUND, `No endpoint /v1/module/${segments.join('/')}`)
  const serviceId = parse(ServiceIdSchema, id)
  log.serviceId = serviceId
  if (sub !== undefined && LifecycleActionSchema.safeParse(sub).success && name === undefined) {
    allow('POST')
    const body = parse(IntentBodySchema, await readJson(req))
    log.request = body
    return lifecycle(app, serviceId, sub as LifecycleAction, body)
  }
  if (sub === undefined) {
    allow('GET')
    const clientId = parse(WhmcsIdSchema, url.searchParams.get('clientId') ?? '')
    return adminTab(app, serviceId, clientId)
  }
  if (sub === 'client-area' && name === undefined) {
    allow('GET')
    const clientId = parse(WhmcsIdSchema, url.searchParams.get('clientId') ?? '')
    return clientArea(app, await ownedService(app, serviceId, clientId))
  }
  if (sub === 'sso' && name === undefined) {
    allow('POST')
    const body = parse(SsoBodySchema, await readJson(req))
    log.request = body
    return sso(app, await ownedService(app, serviceId, body.clientId), body.audience)
  }
  if (sub === 'actions') {
    if (name === undefined) {
      allow('GET')
      const clientId = parse(WhmcsIdSchema, url.searchParams.get('clientId') ?? '')
      const service = await ownedService(app, serviceId, clientId)
      return { actions: actionsOf(app, service.connector) }
    }
    allow('POST')
    const action = parse(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'must be an action name'), name)
    const body = parse(ActionBodySchema, await readJson(req))
    log.request = { action, ...body }
    return runAction(app, await ownedService(app, serviceId, body.clientId), action, body)
  }
  throw new ModuleError(404, MODULE_ERROR.NOT_FOUND, `No endpoint /v1/module/${segments.join('/')}`)
}

/** What TestConnection and the product's "Connector product" dropdown show. */
function info(app: App) {
  return {
    ok: true,
    service: 'panelkit-provisioner',
    whmcs: app.engine.whmcs !== undefined,
    store: app.store.dialect,
    connectors: app.engine.connectorIds.map((id) => {
      const c = app.engine.connector(id) as ConnectorInstance
      return { id, displayName: c.definition.metadata.displayName }
    }),
    products: app.config.products.map((p) => ({ whmcsProductId: p.whmcsProductId, connector: p.connector })),
  }
}

/** The service, if the store has it for that WHMCS client; anyone else's is "not found". */
async function ownedService(app: App, serviceId: string, clientId: string): Promise<ServiceRecord> {
  const service = await getService(app.store.db, serviceId)
  if (!service || !sameId(service.clientId, clientId))
    throw new ModuleError(
      404,
      MODULE_ERROR.NOT_FOUND,
      'This service has not been provisioned yet.',
      `The provisioner has no service ${serviceId} of client ${clientId}`,
    )
  return service
}

async function lifecycle(
  app: App,
  serviceId: string,
  action: LifecycleAction,
  body: z.infer<typeof IntentBodySchema>,
) {
  const { engine, store } = app
  const whmcs = engine.whmcs
  if (!whmcs)
    throw new ModuleError(
      409,
      MODULE_ERROR.NO_WHMCS,
      'The provisioner is not connected to WHMCS.',
      'The provisioner has no `whmcs` section, so it cannot check a module call against WHMCS',
    )
  // 1. WHMCS's own record of the service: the module's word is checked against it.
  let row: WhmcsService | undefined
  try {
    // Bounded, so the check fails cleanly well before the module's own deadline.
    const r = await whmcs.getClientsProducts(
      { serviceid: serviceId },
      { signal: AbortSignal.timeout(15_000) },
    )
    row = r.products.find((p) => sameId(p.id, serviceId))
  } catch (error) {
    const f = toFailure(error, app.redactor)
    throw new ModuleError(
      502,
      `PANELKIT_ERR_${f.code}`,
      'The provisioner could not check this service with WHMCS; nothing was changed. Try again shortly.',
      `GetClientsProducts for service ${serviceId} failed: ${f.detail}`,
    )
  }
  const mismatch = (detail: string) =>
    new ModuleError(
      409,
      MODULE_ERROR.MISMATCH,
      'This request does not match the service in WHMCS; nothing was changed.',
      detail,
    )
  if (!row) throw mismatch(`WHMCS has no service ${serviceId}`)
  if (!sameId(row.clientid, body.clientId))
    throw mismatch(`Service ${serviceId} belongs to client ${row.clientid} in WHMCS, not ${body.clientId}`)
  if (!sameId(row.pid, body.productId))
    throw mismatch(`Service ${serviceId} is of product ${row.pid} in WHMCS, not ${body.productId}`)
  for (const o of row.configoptions) {
    const said = body.configOptions[o.option]
    if (said !== undefined && said !== String(o.value))
      throw mismatch(`Configurable option "${o.option}" is "${o.value}" in WHMCS, not "${said}"`)
  }
  for (const f of row.customfields) {
    const said = body.customFields[f.name]
    // Secret-looking fields are not compared (WHMCS may hand them over differently encoded); the
    // provisioner uses WHMCS's value anyway. Names only in the detail, never values.
    if (app.redactor.isSecretKey(f.name)) continue
    if (said !== undefined && said !== String(f.value))
      throw mismatch(`Custom field "${f.name}" differs from WHMCS's value`)
  }
  if (body.domain !== undefined && body.domain !== '' && row.domain !== '' && body.domain !== row.domain)
    throw mismatch(`The domain is "${row.domain}" in WHMCS, not "${body.domain}"`)
  const product = engine.productFor(String(row.pid))
  if (!product)
    throw new ModuleError(
      409,
      MODULE_ERROR.NOT_MAPPED,
      'This product is not set up in the provisioner; nothing was changed.',
      `WHMCS product ${row.pid} is not mapped in the provisioner's config (products[].whmcsProductId)`,
    )
  if (body.connector !== 'auto' && body.connector !== product.connector)
    throw new ModuleError(
      409,
      MODULE_ERROR.NOT_MAPPED,
      'This product is not set up in the provisioner; nothing was changed.',
      `The WHMCS product's "Connector product" is ${body.connector}, but the provisioner maps product ${row.pid} to ${product.connector}`,
    )
  if (body.clientEmail !== undefined && action === 'create') {
    const details = await whmcs
      .getClientsDetails({ clientid: body.clientId }, { signal: AbortSignal.timeout(15_000) })
      .catch(() => undefined)
    const email = details ? String(details.client.email ?? '') : undefined
    if (email !== undefined && email.toLowerCase() !== body.clientEmail.toLowerCase())
      throw mismatch(`Client ${body.clientId}'s email in WHMCS is not the one the module sent`)
  }
  const status = row.status
  if (status === 'Fraud')
    throw new ModuleError(
      409,
      MODULE_ERROR.STATE,
      'This service is marked as fraud in WHMCS; nothing was changed.',
      `Service ${serviceId} is Fraud in WHMCS`,
    )
  if ((action === 'changePassword' || action === 'changePackage') && status !== 'Active')
    // The reverse sync applies passwords and packages to Active services only (as WHMCS's own
    // ChangePassword: "the status of the product must also be active", supported-functions.md).
    throw new ModuleError(
      409,
      MODULE_ERROR.STATE,
      'The service must be active for this change.',
      `Service ${serviceId} is ${status} in WHMCS; ${action} needs Active`,
    )

  // 2. Parked jobs of this service block its queue: a button pressed again is the retry.
  const lastIdBefore = (await listJobs(store.db, { serviceId, limit: 1 })).at(-1)?.id ?? 0
  const retried = new Set<number>()
  for (const j of await listJobs(store.db, { serviceId, status: [JobStatus.PARKED] }))
    if (LIFECYCLE.has(j.operation)) {
      await engine.retry({ jobId: j.id })
      retried.add(j.id)
    }

  // 3. The reverse sync's single-service pass over that row, as WHMCS will have it after success.
  const after = STATUS_AFTER[action] ?? status
  const summary = await engine.sync({
    serviceId,
    source: 'whmcs-module',
    whmcs: frozenClient(whmcs, row, after),
  })
  if (summary.errors.length > 0) {
    const e = summary.errors[0] as (typeof summary.errors)[number]
    throw new ModuleError(
      422,
      e.code === 'VALIDATION' ? MODULE_ERROR.VALIDATION : `PANELKIT_ERR_${e.code}`,
      e.code === 'VALIDATION'
        ? "The service's options cannot be provisioned as they are; nothing was changed."
        : customerMessageFor(e.code as never),
      summary.errors.map((x) => `${x.stage}: ${x.message}`).join('; '),
    )
  }

  // 4. Wait for this service's lifecycle work, up to the deadline: what was open, what this call queued
  //    or retried (even if a fast worker already finished or parked it).
  const watched = (await listJobs(store.db, { serviceId, limit: 200 }))
    .filter(
      (j) =>
        LIFECYCLE.has(j.operation) &&
        (j.id > lastIdBefore ||
          retried.has(j.id) ||
          j.status === JobStatus.QUEUED ||
          j.status === JobStatus.RUNNING),
    )
    .map((j) => j.id)
  const deadline = Date.now() + body.waitSeconds * 1000
  let jobs: Job[] = []
  for (;;) {
    const all = await listJobs(store.db, { serviceId, limit: 200 })
    jobs = all.filter((j) => watched.includes(j.id))
    const open = jobs.filter((j) => j.status === JobStatus.QUEUED || j.status === JobStatus.RUNNING)
    const parked = jobs.find((j) => j.status === JobStatus.PARKED)
    if (parked) return answer(app, serviceId, 'failed', jobs, parked.lastError)
    if (open.length === 0) break
    if (Date.now() >= deadline) {
      const failing = open.find((j) => j.lastError !== null)
      return answer(app, serviceId, failing ? 'retrying' : 'accepted', jobs, failing?.lastError ?? null)
    }
    await sleep(Math.min(100, Math.max(0, deadline - Date.now())))
  }
  const service = await getService(store.db, serviceId)
  const expected = STATE_AFTER[action]
  if (expected === 'active' && service?.actual !== 'active')
    // A create or unsuspend must leave a live account; "nothing to do" is not success here.
    return answer(app, serviceId, 'failed', jobs, {
      code: 'CONFLICT',
      message: customerMessageFor('CONFLICT'),
      detail: `Service ${serviceId} is ${service?.actual ?? 'unknown to the provisioner'} after ${action}; nothing was queued`,
      retryable: false,
    })
  if (expected && service && service.actual !== expected && service.actual !== 'none')
    return answer(app, serviceId, 'failed', jobs, {
      code: 'CONFLICT',
      message: customerMessageFor('CONFLICT'),
      detail: `Service ${serviceId} is ${service.actual} after ${action}; expected ${expected}`,
      retryable: false,
    })
  return answer(app, serviceId, 'done', jobs, null, summary.jobsCreated)
}

async function answer(
  app: App,
  serviceId: string,
  outcome: 'done' | 'accepted' | 'retrying' | 'failed',
  jobs: Job[],
  error: Failure | null,
  created?: number,
) {
  const service = await getService(app.store.db, serviceId)
  return {
    outcome,
    ...(error ? { message: error.message, detail: error.detail, code: `PANELKIT_ERR_${error.code}` } : {}),
    ...(created !== undefined ? { jobsCreated: created } : {}),
    jobs: jobs.map(publicJob),
    service: service ? serviceSummary(service) : null,
  }
}

function serviceSummary(s: ServiceRecord) {
  return {
    serviceId: s.serviceId,
    connector: s.connector,
    desired: s.desired,
    actual: s.actual,
    serverId: s.serverId,
    username: s.username,
    ips: s.ips,
    lastStep: s.lastStep,
    updatedAt: new Date(s.updatedAt).toISOString(),
  }
}

/** The admin tab: provisioning state, the last job and the pipeline's step (operator detail included). */
async function adminTab(app: App, serviceId: string, clientId: string) {
  const service = await getService(app.store.db, serviceId)
  if (!service || !sameId(service.clientId, clientId)) return { provisioned: false }
  const jobs = await listJobs(app.store.db, { serviceId, limit: 20 })
  const lifecycle = jobs.filter((j) => LIFECYCLE.has(j.operation))
  const last = lifecycle.at(-1)
  const pipelines = await app.store.checkpoints.list(`${service.connector}:${serviceId}:`)
  const pipeline = pipelines
    .filter((c) => !c.completed || c.lastError)
    .concat(pipelines)
    .at(0)
  return {
    provisioned: true,
    service: { ...serviceSummary(service), lastError: service.lastError },
    lastJob: last ? publicJob(last) : null,
    openJobs: jobs.filter((j) => j.status === JobStatus.QUEUED || j.status === JobStatus.RUNNING).length,
    parkedJobs: jobs.filter((j) => j.status === JobStatus.PARKED).length,
    pipeline: pipeline
      ? {
          name: pipeline.pipeline,
          state: pipeline.state,
          completed: pipeline.completed,
          nextStep: pipeline.nextStep,
          lastError: pipeline.lastError,
        }
      : null,
  }
}

function serviceInput(app: App, service: ServiceRecord): Record<string, unknown> {
  const server = service.serverId ? app.engine.server(service.serverId) : undefined
  if (!server)
    throw new ModuleError(
      409,
      MODULE_ERROR.STATE,
      'This service has not been provisioned yet.',
      `Service ${service.serviceId} has no server`,
    )
  const input: Record<string, unknown> = {
    ...service.context,
    settings: service.settings,
    server: serverInput(server),
  }
  delete input.password
  if (service.username) input.username = service.username
  return input
}

function connectorOf(app: App, service: ServiceRecord): ConnectorInstance {
  const c = app.engine.connector(service.connector)
  if (!c)
    throw new ModuleError(
      409,
      MODULE_ERROR.STATE,
      'This service cannot be managed right now.',
      `Connector ${service.connector} is not available in this provisioner`,
    )
  return c
}

function failureError(f: Failure): ModuleError {
  const status = f.code === 'UNSUPPORTED' ? 501 : f.code === 'VALIDATION' ? 400 : 502
  return new ModuleError(status, `PANELKIT_ERR_${f.code}`, f.message, f.detail)
}

const live = (s: ServiceRecord) => s.actual === 'active' || s.actual === 'suspended'

/** The client area: state, addresses, the last step, and the connector's overview fields. */
async function clientArea(app: App, service: ServiceRecord) {
  const base = {
    state: service.actual,
    desired: service.desired,
    ips: service.ips,
    username: service.username,
    lastStep: service.lastStep,
    working: service.desired !== service.actual,
  }
  const connector = app.engine.connector(service.connector)
  if (!live(service) || !connector?.capabilities.operations.includes('clientArea'))
    return { ...base, fields: [], links: [] }
  const r = await connector.invoke('clientArea', { service: serviceInput(app, service) } as never)
  if (!r.ok) throw failureError(r.error)
  const data = r.data as { fields: unknown[]; links: unknown[] }
  return { ...base, fields: data.fields, links: data.links }
}

async function sso(app: App, service: ServiceRecord, audience: 'client' | 'admin') {
  if (!live(service))
    throw new ModuleError(
      409,
      MODULE_ERROR.STATE,
      'There is no account to sign in to yet.',
      `Service ${service.serviceId} is ${service.actual}`,
    )
  const r = await connectorOf(app, service).invoke('sso', {
    audience,
    service: serviceInput(app, service),
  } as never)
  if (!r.ok) throw failureError(r.error)
  return { url: (r.data as { url: string }).url }
}

/** The connector's custom actions; `runsWithoutInput` marks those a plain button can run. */
function actionsOf(app: App, connectorId: string) {
  const c = app.engine.connector(connectorId)
  if (!c) return []
  return Object.entries(c.definition.actions ?? {})
    .map(([name, a]) => ({
      name,
      label: a.label,
      audience: [...a.audience],
      access: a.access,
      runsWithoutInput: a.params ? a.params.safeParse({}).success : true,
    }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

async function runAction(
  app: App,
  service: ServiceRecord,
  action: string,
  body: z.infer<typeof ActionBodySchema>,
) {
  if (!live(service))
    throw new ModuleError(
      409,
      MODULE_ERROR.STATE,
      'This service is not active.',
      `Service ${service.serviceId} is ${service.actual}`,
    )
  const r = await connectorOf(app, service).invoke('action', {
    service: serviceInput(app, service),
    action,
    audience: body.audience,
    params: body.params,
  } as never)
  if (!r.ok) throw failureError(r.error)
  const data = r.data as { message?: string; data?: unknown }
  return { message: data.message ?? 'Done.', ...(data.data !== undefined ? { data: data.data } : {}) }
}

/** Disk and bandwidth per provisioned service, in MB, for WHMCS's daily UsageUpdate. */
async function usage(app: App) {
  const out: Record<string, unknown>[] = []
  const errors: { serviceId: string; code: string; message: string }[] = []
  for (const s of await listServices(app.store.db)) {
    if (!live(s)) continue
    const c = app.engine.connector(s.connector)
    if (!c?.capabilities.operations.includes('usage')) continue
    let input: Record<string, unknown>
    try {
      input = serviceInput(app, s)
    } catch {
      continue
    }
    const r = await c.invoke('usage', { service: input } as never)
    if (!r.ok) {
      errors.push({ serviceId: s.serviceId, code: r.error.code, message: r.error.detail })
      continue
    }
    const metrics = (
      r.data as { metrics: { name: string; value: number | string; unit: string; limit?: number | string }[] }
    ).metrics
    const mb = (v: number | string | undefined, unit: string) => {
      if (v === undefined) return undefined
      const n = Number(v)
      if (!Number.isFinite(n)) return undefined
      const u = unit.toLowerCase()
      const f =
        u === 'bytes' || u === 'b'
          ? 1 / 1024 ** 2
          : u === 'kb'
            ? 1 / 1024
            : u === 'gb'
              ? 1024
              : u === 'mb'
                ? 1
                : undefined
      return f === undefined ? undefined : Math.round(n * f * 100) / 100
    }
    const disk = metrics.find((m) => m.name === 'disk' || m.name === 'storage')
    const traffic = metrics.filter((m) => /^(network_in|network_out|bandwidth|traffic)$/.test(m.name))
    const bw = traffic.reduce<number | undefined>((sum, m) => {
      const v = mb(m.value, m.unit)
      return v === undefined ? sum : (sum ?? 0) + v
    }, undefined)
    out.push({
      serviceId: s.serviceId,
      clientId: s.clientId,
      username: s.username,
      domain: typeof s.context.domain === 'string' ? s.context.domain : null,
      diskUsageMb: disk ? (mb(disk.value, disk.unit) ?? null) : null,
      diskLimitMb: disk ? (mb(disk.limit, disk.unit) ?? null) : null,
      bandwidthUsageMb: bw ?? null,
      bandwidthLimitMb: null,
      collectedAt: (r.data as { collectedAt: string }).collectedAt,
    })
  }
  return { services: out, errors }
}
