import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import {
  type CapacityProbe,
  type ConnectorDefinition,
  type ConnectorInstance,
  createConnector,
  type Failure,
  type OperationResult,
  placeService,
  type Redactor,
  type Result,
  type ServerGroup,
  type ServerInput,
  type StepRecord,
  sleep,
  toFailure,
  ValidationError,
} from '@panelkit/core'
import { type BillingService, type BillingSource, type DesiredState, desiredStateOf } from '../billing.ts'
import type { Config, ProductConfig, ServerConfig } from '../config.ts'
import type { Logger } from '../logger.ts'
import type { DurableModuleLog, Store } from '../store/store.ts'
import {
  claimJobs,
  countPending,
  enqueue,
  finishJob,
  type Job,
  JobStatus,
  listJobs,
  renewLease,
  retryParked,
} from './jobs.ts'
import { applyIntent, getService, listServices, type ServiceIntent, type ServiceRecord } from './services.ts'

/** A connector the engine can drive, with its optional capacity probe for placement. */
export interface ConnectorRegistration {
  // biome-ignore lint/suspicious/noExplicitAny: definitions of any settings shape are accepted
  definition: ConnectorDefinition<any, any>
  probe?: CapacityProbe
}

export type EngineEvent =
  | { type: 'job-started'; job: Job; service: ServiceRecord | undefined }
  | { type: 'step'; job: Job; step: StepRecord }
  | { type: 'job-done'; job: Job; durationMs: number; result: unknown }
  | { type: 'job-retry'; job: Job; error: Failure; runAfter: number }
  | { type: 'job-parked'; job: Job; error: Failure }

export interface EngineOptions {
  store: Store
  config: Config
  connectors: readonly ConnectorRegistration[]
  billing?: BillingSource | undefined
  redactor: Redactor
  logger: Logger
  moduleLog: DurableModuleLog
  /** Identifies this worker in leases. */
  owner?: string
  onEvent?: (event: EngineEvent) => void
  /** Connector operation time limit. */
  operationTimeoutMs?: number
}

export interface SyncReport {
  seen: number
  mapped: number
  changed: number
  jobsCreated: number
  unmappedProducts: string[]
}

export interface DriftEntry {
  serviceId: string
  connector: string
  desired: DesiredState
  actual: DesiredState
  reason: string
  openJobs: number
  parkedJobs: number
}

function serverInput(server: ServerConfig): ServerInput {
  const out: ServerInput = {
    id: server.id,
    hostname: server.hostname,
    secure: server.secure,
    options: server.options,
  }
  if (server.name !== undefined) out.name = server.name
  if (server.port !== undefined) out.port = server.port
  if (server.username !== undefined) out.username = server.username
  if (server.password !== undefined) out.password = server.password
  if (server.accessHash !== undefined) out.accessHash = server.accessHash
  return out
}

const STATE_AFTER: Partial<Record<string, DesiredState>> = {
  create: 'active',
  suspend: 'suspended',
  unsuspend: 'active',
  terminate: 'terminated',
}

/**
 * The provisioning engine: turns billing's wishes into jobs, runs them with leases against the
 * connectors (as resumable pipelines keyed by the job), retries what can be retried, parks what cannot,
 * and records what each connector confirmed.
 */
export class Engine {
  readonly store: Store
  readonly config: Config
  readonly billing: BillingSource | undefined
  readonly owner: string
  readonly moduleLog: DurableModuleLog
  private readonly connectors = new Map<string, { instance: ConnectorInstance; probe?: CapacityProbe }>()
  private readonly logger: Logger
  private readonly redactor: Redactor
  private readonly listeners = new Set<(event: EngineEvent) => void>()
  private wake: (() => void) | undefined

  constructor(options: EngineOptions) {
    this.store = options.store
    this.config = options.config
    this.billing = options.billing
    this.logger = options.logger
    this.redactor = options.redactor
    this.moduleLog = options.moduleLog
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
    if (options.onEvent) this.listeners.add(options.onEvent)
    for (const reg of options.connectors) {
      const instance = createConnector(reg.definition, {
        sink: options.moduleLog,
        redactor: options.redactor,
        checkpoints: options.store.checkpoints,
        ...(options.operationTimeoutMs !== undefined ? { timeoutMs: options.operationTimeoutMs } : {}),
      }) as unknown as ConnectorInstance
      this.connectors.set(
        reg.definition.id as string,
        reg.probe ? { instance, probe: reg.probe } : { instance },
      )
    }
  }

  on(listener: (event: EngineEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private emit(event: EngineEvent): void {
    for (const l of this.listeners) {
      try {
        l(event)
      } catch {
        // a listener's bug must not stop the engine
      }
    }
  }

  connector(id: string): ConnectorInstance | undefined {
    return this.connectors.get(id)?.instance
  }

  get connectorIds(): string[] {
    return [...this.connectors.keys()]
  }

  productFor(productId: string): ProductConfig | undefined {
    return this.config.products.find((p) => p.whmcsProductId === productId)
  }

  server(id: string): ServerConfig | undefined {
    return this.config.servers.find((s) => s.id === id)
  }

  /** What billing's service record asks of the connector, as an intent. */
  intentFor(service: BillingService, source: string): ServiceIntent | undefined {
    const product = this.productFor(service.productId)
    if (!product) return undefined
    let settings: Record<string, unknown> = { ...product.settings }
    if (product.plans) {
      const chosen = service.configOptions[product.plans.option]
      const extra = chosen === undefined ? undefined : product.plans.values[chosen]
      if (extra) settings = { ...settings, ...extra }
    }
    const password =
      (product.passwordField && service.customFields[product.passwordField]) || service.password
    if (password) this.redactor.addValue(password)
    const context: Record<string, unknown> = {
      serviceId: service.serviceId,
      clientId: service.clientId,
      configOptions: service.configOptions,
      customFields: service.customFields,
      client: service.client,
      status: service.status,
    }
    if (service.username) context.username = service.username
    if (service.domain) context.domain = service.domain
    return {
      serviceId: service.serviceId,
      clientId: service.clientId,
      productId: service.productId,
      connector: product.connector,
      serverGroup: product.serverGroup,
      desired: desiredStateOf(service.status),
      settings,
      password: password || undefined,
      context,
      source,
    }
  }

  /** Reads billing (everything, or one client's services) and enqueues what differs. */
  async sync(
    options: { clientId?: string; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<SyncReport> {
    if (!this.billing) throw new ValidationError('No billing source is configured (the `whmcs` section)')
    const productIds = this.config.products.map((p) => p.whmcsProductId)
    const services = await this.billing.listServices({
      ...(options.clientId !== undefined ? { clientId: options.clientId } : {}),
      productIds,
    })
    const report: SyncReport = {
      seen: services.length,
      mapped: 0,
      changed: 0,
      jobsCreated: 0,
      unmappedProducts: [],
    }
    let done = 0
    for (const service of services) {
      const intent = this.intentFor(service, options.clientId ? 'sync-client' : 'sync')
      if (!intent) {
        if (!report.unmappedProducts.includes(service.productId))
          report.unmappedProducts.push(service.productId)
      } else {
        report.mapped++
        const out = await this.store.tx((trx) => applyIntent(trx, intent))
        if (out.changed) report.changed++
        report.jobsCreated += out.created
      }
      options.onProgress?.(++done, services.length)
    }
    if (report.jobsCreated > 0) this.wake?.()
    this.logger.info('sync finished', { ...report })
    return report
  }

  /**
   * An operator's or the API's request for a service: a new desired state, password or package.
   * It goes through the same intent path as sync, so duplicates collapse the same way.
   */
  async request(
    serviceId: string,
    change: { desired?: DesiredState; password?: string; settings?: Record<string, unknown> },
    source: string,
  ): Promise<{ jobs: Job[]; created: number }> {
    const service = await getService(this.store.db, serviceId)
    if (!service)
      throw new ValidationError(`No service ${serviceId}`, [{ path: 'serviceId', message: 'unknown' }])
    if (change.password) this.redactor.addValue(change.password)
    const intent: ServiceIntent = {
      serviceId,
      clientId: service.clientId,
      productId: service.productId,
      connector: service.connector,
      serverGroup: service.serverGroup,
      desired: change.desired ?? service.desired,
      settings: change.settings ? { ...service.settings, ...change.settings } : service.settings,
      password: change.password ?? (service.context.password as string | undefined),
      context: service.context,
      source,
    }
    const out = await this.store.tx((trx) => applyIntent(trx, intent))
    if (out.created > 0) this.wake?.()
    return out
  }

  /** Enqueues a usage push for every active service for this period (once per service and period). */
  async scheduleUsage(period: string): Promise<number> {
    let created = 0
    for (const s of await listServices(this.store.db)) {
      if (s.actual !== 'active' && s.actual !== 'suspended') continue
      const product = this.productFor(s.productId)
      if (!product?.usageBilling) continue
      const out = await enqueue(this.store.db, {
        key: `usage:${s.serviceId}:${period}`,
        serviceId: s.serviceId,
        operation: 'pushUsage',
        payload: { period },
        source: 'engine',
      })
      if (out.created) created++
    }
    if (created > 0) this.wake?.()
    return created
  }

  async retry(filter: { jobId?: number; serviceId?: string } = {}): Promise<number> {
    const n = await retryParked(this.store.db, filter)
    if (n > 0) this.wake?.()
    return n
  }

  /** Services whose confirmed state is not what billing wants, and why. */
  async drift(): Promise<DriftEntry[]> {
    const out: DriftEntry[] = []
    const open = await listJobs(this.store.db, { status: ['queued', 'running', 'parked'], limit: 100_000 })
    for (const s of await listServices(this.store.db)) {
      const mine = open.filter((j) => j.serviceId === s.serviceId)
      const parked = mine.filter((j) => j.status === 'parked').length
      const wanted = s.desired
      if (wanted === s.actual && mine.length === 0) continue
      out.push({
        serviceId: s.serviceId,
        connector: s.connector,
        desired: wanted,
        actual: s.actual,
        reason:
          parked > 0
            ? `parked: ${s.lastError ?? 'see the job'}`
            : mine.length > 0
              ? `${mine.length} job(s) pending`
              : wanted === s.actual
                ? 'in sync'
                : 'no job pending (run a sync)',
        openJobs: mine.length - parked,
        parkedJobs: parked,
      })
    }
    return out
  }

  // ---- the worker -------------------------------------------------------------------------------

  /**
   * Claims and runs jobs until `signal` fires, or — with `untilIdle` — until no job is queued or
   * running. Up to `concurrency` jobs run at once (always different services).
   */
  async runWorker(
    options: { signal?: AbortSignal; untilIdle?: boolean; concurrency?: number; pollMs?: number } = {},
  ): Promise<{ ran: number }> {
    const concurrency = options.concurrency ?? this.config.worker.concurrency
    const leaseMs = this.config.worker.leaseSeconds * 1000
    const pollMs = options.pollMs ?? 200
    const active = new Map<number, Promise<void>>()
    let ran = 0
    while (!options.signal?.aborted) {
      let claimed: Job[] = []
      try {
        claimed = await claimJobs(this.store, this.owner, concurrency - active.size, leaseMs)
      } catch (error) {
        this.logger.warn('claiming jobs failed; will try again', { error: toFailure(error, this.redactor) })
      }
      for (const job of claimed) {
        ran++
        const p = this.runJob(job, options.signal)
          .catch((error) => {
            this.logger.error('job runner failed', { jobId: job.id, error: toFailure(error, this.redactor) })
          })
          .finally(() => {
            active.delete(job.id)
          })
        active.set(job.id, p)
      }
      if (claimed.length > 0 && active.size < concurrency) continue
      if (options.untilIdle && active.size === 0 && claimed.length === 0) {
        if ((await countPending(this.store.db)) === 0) break
      }
      const woken = new Promise<void>((resolve) => {
        this.wake = resolve
      })
      await Promise.race([...active.values(), woken, sleep(pollMs, options.signal).catch(() => undefined)])
      this.wake = undefined
    }
    await Promise.allSettled(active.values())
    await this.moduleLog.flush()
    return { ran }
  }

  /** Runs one claimed job to its next resting state (done, queued for retry, or parked). */
  async runJob(job: Job, outerSignal?: AbortSignal): Promise<void> {
    const leaseMs = this.config.worker.leaseSeconds * 1000
    const controller = new AbortController()
    const onOuter = () => controller.abort(outerSignal?.reason)
    outerSignal?.addEventListener('abort', onOuter, { once: true })
    const renew = setInterval(
      () => {
        renewLease(this.store.db, job, this.owner, leaseMs)
          .then((held) => {
            if (!held) controller.abort(new Error('lease lost'))
          })
          .catch(() => undefined)
      },
      Math.max(500, leaseMs / 3),
    )
    const started = performance.now()
    const steps: StepRecord[] = []
    const service = await getService(this.store.db, job.serviceId)
    this.emit({ type: 'job-started', job, service })
    try {
      let outcome: { ok: true; data: unknown } | { ok: false; error: Failure }
      try {
        outcome = await this.execute(job, service, controller.signal, steps)
      } catch (error) {
        outcome = { ok: false, error: toFailure(error, this.redactor) }
      }
      await this.moduleLog.flush().catch(() => undefined)
      if (controller.signal.aborted) return // lease lost or shutting down: whoever holds the job finishes it
      if (outcome.ok) await this.succeed(job, service, outcome.data, steps, performance.now() - started)
      else await this.fail(job, outcome.error, steps)
    } finally {
      clearInterval(renew)
      outerSignal?.removeEventListener('abort', onOuter)
    }
  }

  private async execute(
    job: Job,
    service: ServiceRecord | undefined,
    signal: AbortSignal,
    steps: StepRecord[],
  ): Promise<{ ok: true; data: unknown } | { ok: false; error: Failure }> {
    if (!service) return this.permanent(`Service ${job.serviceId} is not in the store`)
    if (job.operation === 'writeBack') {
      if (!this.billing) return { ok: true, data: { skipped: 'no billing source' } }
      await this.billing.writeBack(service.serviceId, job.payload as Record<string, never>)
      return { ok: true, data: job.payload }
    }
    const entry = this.connectors.get(service.connector)
    if (!entry) {
      return this.permanent(
        `Connector ${service.connector} is not available in this provisioner (known: ${this.connectorIds.join(', ')})`,
      )
    }
    const group = this.config.serverGroups.find((g) => g.id === service.serverGroup)
    if (!group) return this.permanent(`Server group ${service.serverGroup} is not configured`)
    let serverId = await this.store.assignments.get(service.serviceId)
    if (!serverId) {
      if (job.operation !== 'create') {
        if (job.operation === 'terminate')
          return { ok: true, data: { changed: false, note: 'never created' } }
        return this.permanent(`Service ${service.serviceId} has no server yet (it was never created)`)
      }
      const placementGroup: ServerGroup = {
        id: group.id,
        fillType: group.fillType,
        servers: group.servers.map((id) => {
          const s = this.server(id)
          const out: ServerGroup['servers'][number] = { id, enabled: s?.enabled ?? false }
          if (s?.maxAccounts !== undefined) (out as { maxAccounts?: number }).maxAccounts = s.maxAccounts
          return out
        }),
      }
      const placed = await placeService({
        group: placementGroup,
        serviceId: service.serviceId,
        assignments: this.store.assignments,
        countServices: (id) => this.store.assignments.count(id),
        ...(entry.probe ? { probe: entry.probe } : {}),
      })
      if (!placed.ok) return { ok: false, error: toFailure(placed.error, this.redactor) }
      serverId = placed.serverId
    }
    const server = this.server(serverId)
    if (!server) return this.permanent(`Server ${serverId} of service ${service.serviceId} is not configured`)
    const settings =
      job.operation === 'changePackage' && job.payload.settings
        ? (job.payload.settings as Record<string, unknown>)
        : service.settings
    const serviceInput: Record<string, unknown> = {
      ...service.context,
      settings,
      server: serverInput(server),
    }
    if (service.username) serviceInput.username = service.username
    if (serviceInput.password === undefined || serviceInput.password === null) delete serviceInput.password
    const invokeOptions = {
      runKey: job.key,
      signal,
      onProgress: (event: { step: StepRecord }) => {
        steps.push(event.step)
        this.emit({ type: 'step', job, step: event.step })
      },
    }
    const started = performance.now()
    let result: Result<unknown>
    if (job.operation === 'pushUsage') {
      return this.pushUsage(job, service, entry.instance, serviceInput, invokeOptions)
    }
    if (job.operation === 'changePackage') {
      const input: Record<string, unknown> = { service: serviceInput }
      if (job.payload.previousSettings) input.previousSettings = job.payload.previousSettings
      result = await entry.instance.invoke('changePackage', input as never, invokeOptions)
    } else {
      result = await entry.instance.invoke(
        job.operation as 'create',
        { service: serviceInput } as never,
        invokeOptions,
      )
    }
    if (steps.length === 0) {
      // An operation without a pipeline still gets one step line.
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
      this.emit({ type: 'step', job, step })
    }
    if (!result.ok) return { ok: false, error: result.error }
    const data = result.data as Record<string, unknown>
    return { ok: true, data: { ...data, serverId } }
  }

  private async pushUsage(
    job: Job,
    service: ServiceRecord,
    instance: ConnectorInstance,
    serviceInput: Record<string, unknown>,
    invokeOptions: { runKey: string; signal: AbortSignal },
  ): Promise<{ ok: true; data: unknown } | { ok: false; error: Failure }> {
    const product = this.productFor(service.productId)
    const pricing = product?.usageBilling
    if (!pricing || !this.billing) return { ok: true, data: { skipped: 'no usage billing configured' } }
    const ledger = this.store.ledger('usage')
    let entry = await ledger.get(job.key)
    if (!entry) {
      const usage = (await instance.invoke(
        'usage',
        { service: serviceInput } as never,
        invokeOptions,
      )) as Result<OperationResult<'usage'>>
      if (!usage.ok) return { ok: false, error: usage.error }
      const metric = usage.data.metrics.find((m) => m.name === pricing.metric)
      const quantity = Number(metric?.value ?? 0)
      const amount = (Math.round(quantity * Number(pricing.unitPrice) * 100) / 100).toFixed(2)
      entry = await ledger.reserve({
        key: job.key,
        serviceId: service.serviceId,
        amount,
        description:
          `${pricing.description ?? pricing.metric} ${job.payload.period}: ${quantity} ${metric?.unit ?? ''}`.trim(),
      })
    }
    if (entry.status === 'pushed') return { ok: true, data: { ...entry, pushed: false } }
    const item = {
      clientId: service.clientId,
      serviceId: service.serviceId,
      description: entry.description,
      amount: entry.amount,
      key: job.key,
    }
    let existing: string | undefined
    if (entry.status === 'sending') {
      // A push was started and its outcome never recorded (a crash, a lost answer). Ask billing when it
      // can tell; otherwise stop rather than risk billing the customer twice.
      if (!this.billing.findBillableItem) {
        return this.permanent(
          `Usage item ${job.key} may or may not have reached billing (interrupted push). Check for "${entry.description}" in billing, and settle it there by hand: this job stays parked so the item is never pushed twice.`,
        )
      }
      existing = await this.billing.findBillableItem(item)
    }
    if (existing === undefined) {
      await ledger.markSending(job.key)
      existing = undefined
    }
    const remoteId = existing ?? (await this.billing.addBillableItem(item))
    await ledger.markPushed(job.key, remoteId)
    return { ok: true, data: { ...entry, status: 'pushed', remoteId, pushed: existing === undefined } }
  }

  private permanent(detail: string): { ok: false; error: Failure } {
    return {
      ok: false,
      error: {
        code: 'VALIDATION',
        message: 'The service is not set up correctly.',
        detail,
        retryable: false,
      },
    }
  }

  private async succeed(
    job: Job,
    service: ServiceRecord | undefined,
    data: unknown,
    steps: StepRecord[],
    durationMs: number,
  ): Promise<void> {
    const d = (data ?? {}) as Record<string, unknown>
    const finished = await this.store.tx(async (trx) => {
      const ok = await finishJob(trx, job, this.owner, {
        status: JobStatus.DONE,
        lastError: null,
        result: { ...d, ranBy: this.owner },
        steps,
      })
      if (!ok) return false
      if (!service) return true
      const next = STATE_AFTER[job.operation]
      const patch: Record<string, unknown> = {
        last_job_id: job.id,
        last_step: steps.at(-1) ? `${steps.at(-1)?.label} (${steps.at(-1)?.to})` : job.operation,
        last_error: null,
        updated_at: Date.now(),
      }
      if (next) patch.actual = next
      if (job.operation === 'create') {
        if (typeof d.serverId === 'string') patch.server_id = d.serverId
        if (typeof d.accountId === 'string') patch.account_id = d.accountId
        if (typeof d.username === 'string') patch.username = d.username
        if (Array.isArray(d.ips)) patch.ips_json = JSON.stringify(d.ips)
        if (this.billing) {
          const fields: Record<string, unknown> = { serverId: d.serverId, accountId: d.accountId }
          if (typeof d.username === 'string') fields.username = d.username
          if (Array.isArray(d.ips) && d.ips.length > 0) {
            fields.dedicatedIp = d.ips[0]
            fields.assignedIps = d.ips.slice(1)
          }
          await enqueue(trx, {
            key: `${job.key}:writeBack`,
            serviceId: job.serviceId,
            operation: 'writeBack',
            payload: fields,
            source: 'engine',
          })
        }
      }
      if (job.operation === 'terminate') {
        await trx.deleteFrom('assignments').where('service_id', '=', job.serviceId).execute()
        patch.server_id = null
      }
      if (job.operation !== 'writeBack' && job.operation !== 'pushUsage') {
        await trx.updateTable('services').set(patch).where('service_id', '=', job.serviceId).execute()
      }
      return true
    })
    if (!finished) {
      this.logger.warn('lease lost before the job could be finished; another worker will finish it', {
        jobId: job.id,
      })
      return
    }
    this.logger.info('job done', {
      jobId: job.id,
      key: job.key,
      operation: job.operation,
      serviceId: job.serviceId,
      durationMs: Math.round(durationMs),
    })
    this.emit({ type: 'job-done', job, durationMs, result: d })
  }

  private async fail(job: Job, error: Failure, steps: StepRecord[]): Promise<void> {
    const w = this.config.worker
    const retryable = error.retryable && job.attempts < w.maxAttempts
    const runAfter = retryable
      ? Date.now() +
        Math.min(w.maxBackoffMs, w.backoffMs * 2 ** (job.attempts - 1)) * (0.5 + Math.random() / 2)
      : undefined
    const finished = await this.store.tx(async (trx) => {
      const ok = await finishJob(trx, job, this.owner, {
        status: retryable ? JobStatus.QUEUED : JobStatus.PARKED,
        ...(runAfter !== undefined ? { runAfter: Math.round(runAfter) } : {}),
        lastError: error,
        steps,
      })
      if (!ok) return false
      await trx
        .updateTable('services')
        .set({ last_error: `${error.code}: ${error.detail}`, last_job_id: job.id, updated_at: Date.now() })
        .where('service_id', '=', job.serviceId)
        .execute()
      return true
    })
    if (!finished) return
    if (retryable) {
      this.logger.warn('job failed; will retry', {
        jobId: job.id,
        key: job.key,
        attempt: job.attempts,
        error,
      })
      this.emit({ type: 'job-retry', job, error, runAfter: runAfter ?? Date.now() })
    } else {
      this.logger.error('job parked; needs attention (`provisioner retry`)', {
        jobId: job.id,
        key: job.key,
        error,
      })
      this.emit({ type: 'job-parked', job, error })
    }
  }

  async close(): Promise<void> {
    await this.moduleLog.flush().catch(() => undefined)
    for (const { instance } of this.connectors.values()) await instance.close()
    await this.billing?.close?.()
  }
}

const OPERATION_LABELS: Record<string, string> = {
  create: 'Create account',
  suspend: 'Suspend',
  unsuspend: 'Unsuspend',
  terminate: 'Terminate',
  changePassword: 'Change password',
  changePackage: 'Change package',
  writeBack: 'Write back to billing',
  pushUsage: 'Push usage',
}
