import {
  type AssignmentStore,
  placeService,
  type Redactor,
  type Result,
  type ServerGroup,
  type StepRecord,
  settingsSchema,
  toFailure,
  ValidationError,
} from '@panelkit/core'
import { writeBackService } from '@panelkit/whmcs'
import type { Db } from '../store/store.ts'
import {
  type ConnectorEntry,
  type EngineContext,
  type ExecuteOutcome,
  emit,
  permanent,
  type ServiceChange,
  STATE_AFTER,
  serverFor,
  serverInput,
  wake,
} from './context.ts'
import { enqueue, type Job, type JobOperation, type NewJob, type Prefetched } from './jobs.ts'
import { type ServiceRecord, type ServiceState, serviceFromRow } from './services.ts'
import { recordable, resolveSettings } from './settings.ts'

/**
 * Lifecycle operations — create, suspend, unsuspend, terminate, changePackage, changePassword — from
 * an operator's request to the connector call and what the service records once it is confirmed
 * (including the write-back of a new account's server, username and IPs to WHMCS). The connector
 * runs each operation as a resumable pipeline keyed by the job (`runKey`), so a job re-run after a
 * crash resumes from its last checkpoint.
 */

/**
 * An operator's or the API's request for a service: a new state, password or package. It is queued
 * like a sync intent (the service's version is part of the key, so a repeated request collapses).
 * WHMCS stays the source of truth: the next sync plans from what is queued here.
 */
export async function request(
  ctx: EngineContext,
  serviceId: string,
  change: ServiceChange,
  source: string,
): Promise<{ jobs: Job[]; created: number }> {
  // The password is not added to the app's redactor (it would grow with every change, forever): it
  // is sealed here, and only the job that sends it opens it, into its own redactor.
  const out = await ctx.store.tx(async (trx) => {
    let q = trx.selectFrom('services').selectAll().where('service_id', '=', serviceId)
    if (ctx.store.dialect === 'postgres') q = q.forUpdate()
    const row = await q.executeTakeFirst()
    if (!row)
      throw new ValidationError(`No service ${serviceId}`, [{ path: 'serviceId', message: 'unknown' }])
    const current = serviceFromRow(row)
    // Refused here, before anything is stored or queued: a change the connector would refuse would
    // only park the job and block the service's later work.
    validateChange(ctx, current, change)
    const ops = operatorOps(current.desired, change)
    const hasPackage = change.settings !== undefined
    const settings = hasPackage ? { ...current.settings, ...change.settings } : current.settings
    const overrides = {
      ...((current.context.settingsOverrides as Record<string, unknown> | undefined) ?? {}),
      ...(change.settings ?? {}),
    }
    if (hasPackage && JSON.stringify(settings) !== JSON.stringify(current.settings)) {
      if (current.desired === 'active' || current.desired === 'suspended') ops.push('changePackage')
    }
    if (
      change.password &&
      (current.desired === 'active' || current.desired === 'suspended' || ops.includes('create'))
    )
      ops.push('changePassword')
    if (ops.length === 0) return { jobs: [], created: 0 }
    const version = current.version + 1
    await trx
      .updateTable('services')
      .set({
        desired: change.desired ?? current.desired,
        version,
        settings_json: JSON.stringify(settings),
        ...(hasPackage
          ? { context_json: JSON.stringify({ ...current.context, settingsOverrides: overrides }) }
          : {}),
        updated_at: Date.now(),
        // An operator's password is kept (sealed) for later re-creates; the WHMCS fingerprint is
        // left alone, so the next sync does not undo it unless WHMCS's own password changes.
        ...(change.password ? { password_enc: ctx.store.seal(change.password, `service:${serviceId}`) } : {}),
      })
      .where('service_id', '=', serviceId)
      .execute()
    const jobs: Job[] = []
    let created = 0
    for (const op of ops) {
      if (op === 'changePassword' && ops.includes('create')) continue // create sets it
      const key = `${source}:${serviceId}:v${version}:${op}`
      const payload: Record<string, unknown> = { reason: `requested by ${source}` }
      // The operator's own values, for the record; the job resolves its settings when it runs.
      if (op === 'changePackage' || op === 'create') {
        if (change.settings) payload.overrides = change.settings
        if (current.plan !== null) payload.plan = current.plan
      }
      const r = await enqueue(trx, {
        key,
        serviceId,
        operation: op,
        payload,
        source,
        ...(change.password && (op === 'changePassword' || op === 'create')
          ? { secretEnc: ctx.store.seal(change.password, `job:${key}`) }
          : {}),
      })
      jobs.push(r.job)
      if (r.created) created++
    }
    return { jobs, created }
  })
  if (out.created > 0) wake(ctx)
  return out
}

/**
 * An operator's change checked against the service's connector: every setting it names must be one
 * the connector declares, the settings it would leave must pass the connector's own schema, and a
 * password may not hold control characters. Throws a `ValidationError` naming each field.
 */
export function validateChange(ctx: EngineContext, service: ServiceRecord, change: ServiceChange): void {
  const issues: { path: string; message: string }[] = []
  if (change.password !== undefined && CONTROL_CHARACTERS.test(change.password))
    issues.push({ path: 'password', message: 'must not contain control characters (CR, LF, NUL, …)' })
  const entry = ctx.connectors.get(service.connector)
  if (change.settings !== undefined && entry) {
    const spec = entry.instance.definition.settings as Record<string, unknown>
    const known = Object.keys(spec)
    for (const key of Object.keys(change.settings)) {
      if (!Object.hasOwn(spec, key))
        issues.push({
          path: `settings.${key}`,
          message: `is not a setting of ${service.connector} (known: ${known.join(', ') || 'none'})`,
        })
    }
    const merged = { ...service.settings, ...change.settings }
    const checked = settingsSchema(entry.instance.definition.settings).safeParse(merged)
    if (!checked.success) {
      for (const i of checked.error.issues)
        issues.push({ path: ['settings', ...i.path.map(String)].join('.'), message: i.message })
    }
  }
  if (issues.length > 0) {
    throw new ValidationError(
      `Invalid request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    )
  }
}

/** Runs a `writeBack` job: a new account's server, username and IPs, written to the WHMCS service. */
export async function runWriteBack(
  ctx: EngineContext,
  job: Job,
  service: ServiceRecord,
  signal: AbortSignal,
): Promise<ExecuteOutcome> {
  if (!ctx.whmcs) return { ok: true, data: { skipped: 'no WHMCS connection' } }
  const p = job.payload as {
    username?: string
    dedicatedIp?: string
    assignedIps?: string[]
    serverId?: number
  }
  const update: Parameters<typeof writeBackService>[1] = { serviceId: service.serviceId }
  if (p.serverId !== undefined) update.serverId = p.serverId
  if (p.username !== undefined) update.username = p.username
  if (p.dedicatedIp !== undefined) update.dedicatedIp = p.dedicatedIp
  if (p.assignedIps !== undefined) update.assignedIps = p.assignedIps
  const out = await writeBackService(ctx.whmcs, update, { signal })
  return out.ok ? { ok: true, data: { written: out.written } } : { ok: false, error: out.error }
}

/** A service ready for a connector call: its connector, server, settings and the call's `service` input. */
export interface PreparedService {
  ready: true
  entry: ConnectorEntry
  serverId: string
  settings: Record<string, unknown>
  serviceInput: Record<string, unknown>
}

/**
 * Everything a connector call on the service needs: the connector, the server (placed now for a
 * create that has none), the settings from today's config, and — for the operations that send it —
 * the password, opened into the job's own `redactor`. Or the outcome that ends the job here.
 */
export async function prepareService(
  ctx: EngineContext,
  job: Job,
  service: ServiceRecord,
  redactor: Redactor,
  prefetched?: Prefetched,
): Promise<PreparedService | { ready: false; outcome: ExecuteOutcome }> {
  const end = (outcome: ExecuteOutcome) => ({ ready: false as const, outcome })
  const entry = ctx.connectors.get(service.connector)
  if (!entry) {
    return end(
      permanent(
        `Connector ${service.connector} is not available in this provisioner (known: ${[...ctx.connectors.keys()].join(', ')})`,
      ),
    )
  }
  const group = ctx.config.serverGroups.find((g) => g.id === service.serverGroup)
  if (!group) return end(permanent(`Server group ${service.serverGroup} is not configured`))
  let serverId = prefetched ? prefetched.serverId : await ctx.store.assignments.get(service.serviceId)
  if (!serverId) {
    if (job.operation !== 'create') {
      if (job.operation === 'terminate')
        return end({ ok: true, data: { changed: false, note: 'never created' } })
      return end(permanent(`Service ${service.serviceId} has no server yet (it was never created)`))
    }
    const placementGroup: ServerGroup = {
      id: group.id,
      fillType: group.fillType,
      servers: group.servers.map((id) => {
        const s = serverFor(ctx, id)
        const out: ServerGroup['servers'][number] = { id, enabled: s?.enabled ?? false }
        if (s?.maxAccounts !== undefined) (out as { maxAccounts?: number }).maxAccounts = s.maxAccounts
        return out
      }),
    }
    // The claim read this service's assignment with the job (none): placement need not read it again.
    // Only the holder of the job's lease places its service, so nobody assigned it since.
    const store = ctx.store.assignments
    const assignments: AssignmentStore = prefetched
      ? {
          get: async (id) => (id === service.serviceId ? prefetched.serverId : store.get(id)),
          set: (id, server) => store.set(id, server),
          release: (id) => store.release(id),
          nextCursor: (group) => store.nextCursor(group),
        }
      : store
    const placed = await placeService({
      group: placementGroup,
      serviceId: service.serviceId,
      assignments,
      countServices: (id) => ctx.store.assignments.count(id),
      ...(entry.probe ? { probe: entry.probe } : {}),
    })
    if (!placed.ok) return end({ ok: false, error: toFailure(placed.error, ctx.redactor) })
    serverId = placed.serverId
  }
  const server = serverFor(ctx, serverId)
  if (!server) return end(permanent(`Server ${serverId} of service ${service.serviceId} is not configured`))
  const resolved = resolveSettings(ctx, job, service)
  if (!resolved.ok) return end(resolved)
  const settings = resolved.settings
  const serviceInput: Record<string, unknown> = {
    ...service.context,
    settings,
    server: serverInput(server),
  }
  delete serviceInput.password
  if (service.username) serviceInput.username = service.username
  // The password is opened only for the operations that send it, and only in this process's memory.
  if (job.operation === 'create' || job.operation === 'changePassword') {
    const password = await passwordFor(ctx, job, service)
    // Core adds it to the invocation's own redactor, so the module log and failures mask it; the
    // job's layer masks it in whatever the engine logs about this job.
    redactor.addValue(password)
    if (password) serviceInput.password = password
    else if (job.operation === 'changePassword') {
      return end(permanent(`Job ${job.key} has no password to set`))
    }
  }
  return { ready: true, entry, serverId, settings, serviceInput }
}

/** Runs a lifecycle operation's connector call; an operation without a pipeline still gets one step line. */
export async function runOperation(
  ctx: EngineContext,
  job: Job,
  service: ServiceRecord,
  prepared: PreparedService,
  invokeOptions: { runKey: string; signal: AbortSignal; onProgress: (event: { step: StepRecord }) => void },
  steps: StepRecord[],
): Promise<ExecuteOutcome> {
  const { entry, serverId, settings, serviceInput } = prepared
  const started = performance.now()
  let result: Result<unknown>
  if (job.operation === 'changePackage') {
    const input: Record<string, unknown> = { service: serviceInput }
    // What the service was provisioned with (0010), else what an older job recorded.
    const previous = service.confirmedSettings ?? job.payload.previousSettings
    if (previous) input.previousSettings = previous
    result = await entry.instance.invoke('changePackage', input as never, invokeOptions)
  } else {
    result = await entry.instance.invoke(
      job.operation as 'create',
      { service: serviceInput } as never,
      invokeOptions,
    )
  }
  if (steps.length === 0) {
    const step: StepRecord = {
      index: 1,
      name: job.operation,
      label: OPERATION_LABELS[job.operation] ?? job.operation,
      outcome: result.ok
        ? (result.data as { changed?: boolean }).changed === false
          ? 'skipped'
          : 'success'
        : 'failed',
      from: service.actual,
      to: STATE_AFTER[job.operation] ?? service.actual,
      durationMs: performance.now() - started,
      at: new Date().toISOString(),
    }
    if (!result.ok) {
      step.reason = result.error.detail
      step.retryable = result.error.retryable
    }
    steps.push(step)
    emit(ctx, { type: 'step', job, step })
  }
  if (!result.ok) return { ok: false, error: result.error }
  const data = result.data as Record<string, unknown>
  return { ok: true, data: { ...data, serverId }, settings }
}

/**
 * What a finished job confirmed, recorded on its service in the job's finishing transaction: the
 * state it left, the plan, settings and password fingerprints now on the server (the drift report
 * compares WHMCS with these), the new account's server, username and IPs — and, when WHMCS is
 * connected, a `writeBack` job to copy those into the WHMCS service.
 */
export function confirmedChanges(
  ctx: EngineContext,
  job: Job,
  service: ServiceRecord,
  d: Record<string, unknown>,
  steps: StepRecord[],
  settings: Record<string, unknown> | undefined,
): ConfirmedChanges {
  const changes: ConfirmedChanges = {}
  const next = STATE_AFTER[job.operation]
  const patch: Record<string, unknown> = {
    last_job_id: job.id,
    last_step: steps.at(-1) ? `${steps.at(-1)?.label} (${steps.at(-1)?.to})` : job.operation,
    last_error: null,
    updated_at: Date.now(),
  }
  if (next) patch.actual = next
  // What the connector now confirms: the reverse sync's view for the drift report.
  if (job.operation === 'create' || job.operation === 'changePackage') {
    if (typeof job.payload.plan === 'string') patch.confirmed_plan = job.payload.plan
    // The settings the service now has on the server: a later change in the config is drift.
    if (settings) patch.confirmed_settings_json = JSON.stringify(recordable(ctx, service.connector, settings))
  }
  if (job.operation === 'create' || job.operation === 'changePassword') {
    if (typeof job.payload.passwordFingerprint === 'string')
      patch.confirmed_password_fp = job.payload.passwordFingerprint
    if (typeof job.payload.servicePasswordFingerprint === 'string')
      patch.confirmed_service_password_fp = job.payload.servicePasswordFingerprint
  }
  if (job.operation === 'create') {
    if (typeof d.serverId === 'string') patch.server_id = d.serverId
    if (typeof d.accountId === 'string') patch.account_id = d.accountId
    if (typeof d.username === 'string') patch.username = d.username
    if (Array.isArray(d.ips)) patch.ips_json = JSON.stringify(d.ips)
    if (ctx.whmcs) {
      const fields: Record<string, unknown> = {}
      const placed = typeof d.serverId === 'string' ? serverFor(ctx, d.serverId) : undefined
      if (placed?.whmcsServerId !== undefined) fields.serverId = placed.whmcsServerId
      if (typeof d.username === 'string') fields.username = d.username
      if (Array.isArray(d.ips) && d.ips.length > 0) {
        fields.dedicatedIp = d.ips[0]
        fields.assignedIps = d.ips.slice(1)
      }
      changes.enqueue = {
        key: `${job.key}:writeBack`,
        serviceId: job.serviceId,
        operation: 'writeBack',
        payload: fields,
        source: 'engine',
      }
    }
  }
  if (job.operation === 'terminate') {
    changes.releaseServer = true
    patch.server_id = null
  }
  if (job.operation !== 'writeBack' && job.operation !== 'pushUsage' && job.operation !== 'creditDeposit') {
    changes.service = patch
  }
  return changes
}

/** What a finished job changes beside its own row, written in the transaction that finishes it. */
export interface ConfirmedChanges {
  /** Columns of the service's row to set; absent, the row is not touched. */
  service?: Record<string, unknown>
  /** A job queued behind this one (a create's write-back). */
  enqueue?: NewJob
  /** The service's server assignment goes (a terminate). */
  releaseServer?: boolean
}

/** Applies the changes in `trx` (the finish's transaction), in the order the engine always has. */
export async function applyChanges(trx: Db, job: Job, changes: ConfirmedChanges): Promise<void> {
  if (changes.enqueue) await enqueue(trx, changes.enqueue)
  if (changes.releaseServer)
    await trx.deleteFrom('assignments').where('service_id', '=', job.serviceId).execute()
  if (changes.service)
    await trx.updateTable('services').set(changes.service).where('service_id', '=', job.serviceId).execute()
}

/**
 * Jobs run in the order they were queued, so a job queued behind a terminate (a write-back queued when
 * a create finished, a usage push, a package change) runs after the account is gone. It is moot: it
 * is cancelled with the reason instead of parking with a misleading one ("never created") or writing
 * a deleted account's username and a released IP back to WHMCS. A create queued after the terminate
 * runs as usual, and the jobs after it find the account again.
 */
export function mootAfterTerminate(job: Job, service: ServiceRecord): string | undefined {
  if (!MOOT_AFTER_TERMINATE.has(job.operation) || service.actual !== 'terminated') return undefined
  return `Service ${service.serviceId} was terminated before this ${job.operation} ran; nothing to do`
}

/** The job's own sealed password, else (a create) the service's current one. */
async function passwordFor(
  ctx: EngineContext,
  job: Job,
  service: ServiceRecord,
): Promise<string | undefined> {
  if (job.secretEnc) return ctx.store.open(job.secretEnc, `job:${job.key}`)
  if (job.operation !== 'create' || !service.hasPassword) return undefined
  const row = await ctx.store.db
    .selectFrom('services')
    .select('password_enc')
    .where('service_id', '=', service.serviceId)
    .executeTakeFirst()
  return row?.password_enc ? ctx.store.open(row.password_enc, `service:${service.serviceId}`) : undefined
}

/** The operations an operator's change of state asks for, from the state queued so far. */
function operatorOps(from: ServiceState, change: ServiceChange): JobOperation[] {
  const to = change.desired ?? from
  const exists = (s: ServiceState) => s === 'active' || s === 'suspended'
  const ops: JobOperation[] = []
  if (!exists(from) && exists(to)) ops.push('create')
  if (to === 'suspended' && from !== 'suspended') ops.push('suspend')
  if (to === 'active' && from === 'suspended') ops.push('unsuspend')
  if (to === 'terminated' && exists(from)) ops.push('terminate')
  return ops
}

const OPERATION_LABELS: Record<string, string> = {
  create: 'Create account',
  suspend: 'Suspend',
  unsuspend: 'Unsuspend',
  terminate: 'Terminate',
  changePassword: 'Change password',
  changePackage: 'Change package',
  writeBack: 'Write back to WHMCS',
  pushUsage: 'Push usage',
  creditDeposit: 'Credit deposit',
}

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/

/** Work on an account that only makes sense while it exists. */
const MOOT_AFTER_TERMINATE = new Set<JobOperation>([
  'suspend',
  'unsuspend',
  'changePassword',
  'changePackage',
  'writeBack',
  'pushUsage',
])
