import { createHmac, randomUUID } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { hostname } from 'node:os'
import {
  type CapacityProbe,
  ConflictError,
  ConnectionError,
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
  secretSettingKeys,
  settingsSchema,
  sleep,
  toFailure,
  ValidationError,
} from '@panelkit/core'
import {
  createReverseSync,
  creditDeposit,
  type DepositCredit,
  depositKey,
  type LedgerWriteResult,
  type ProductMapping,
  type ProvisionedView,
  pushUsage,
  type ReverseSync,
  type SyncIntent,
  usageKey,
  type WhmcsClient,
  type DriftEntry as WhmcsDriftEntry,
  type SyncReport as WhmcsSyncReport,
  writeBackService,
} from '@panelkit/whmcs'
import { sql } from 'kysely'
import { withCallSource } from '../call-source.ts'
import type { Config, ProductConfig, ServerConfig } from '../config.ts'
import type { Logger } from '../logger.ts'
import type { DurableLedger, DurableModuleLog, Store, StoreProvisionedView } from '../store/store.ts'
import { syncDeposits } from './deposits.ts'
import {
  claimJobs,
  countPending,
  enqueue,
  finishJob,
  type Job,
  type JobOperation,
  JobStatus,
  jobFromRow,
  listJobs,
  releaseLeases,
  renewLease,
  retryParked,
} from './jobs.ts'
import {
  getService,
  listServices,
  type ServiceRecord,
  type ServiceState,
  serviceFromRow,
  settingsFor,
} from './services.ts'

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
  | { type: 'job-cancelled'; job: Job; reason: string }
  | { type: 'sync-done'; pass: SyncPassKind; startedAt: number; durationMs: number; summary: SyncSummary }
  | { type: 'sync-failed'; pass: SyncPassKind; startedAt: number; durationMs: number; error: unknown }

/** Which sync a pass was: every service, one client's (by id or login email), or one service. */
export type SyncPassKind = 'full' | 'client' | 'service'

export interface EngineOptions {
  store: Store
  config: Config
  connectors: readonly ConnectorRegistration[]
  /** The WHMCS External API client (`@panelkit/whmcs`); without it there is no sync or write-back. */
  whmcs?: WhmcsClient | undefined
  redactor: Redactor
  logger: Logger
  moduleLog: DurableModuleLog
  /** Identifies this worker in leases. */
  owner?: string
  onEvent?: (event: EngineEvent) => void
  /** Connector operation time limit (default: the config's `worker.operationTimeoutSeconds`). */
  operationTimeoutMs?: number
}

/** What a sync pass did: the library's report, and what the engine queued from it. */
export interface SyncSummary {
  pass: WhmcsSyncReport['pass']
  /** Every page was read (only then is "unknown to WHMCS" drift reported). */
  complete: boolean
  servicesSeen: number
  /** Intents the reverse sync found. */
  intents: number
  /** Jobs queued from them (an intent whose key is already queued collapses into that job). */
  jobsCreated: number
  /** Intents dropped because another sync changed the service in between (the next pass redoes them). */
  stale: number
  intentsByKind: Record<string, number>
  /** Due-date events recorded on services (`renewed`, `due-date-changed`, `due-date-recorded`). */
  eventsByKind?: Record<string, number>
  errors: { serviceId?: string; clientId?: string; stage: string; code: string; message: string }[]
  clientIds?: string[]
  primaryService?: WhmcsSyncReport['primaryService']
  durationMs: number
}

/** One line of the drift report: WHMCS against what the servers confirmed, and what is under way. */
export interface DriftEntry {
  serviceId: string
  /** The library's drift kind, or `queued` / `parked` for work the store holds without WHMCS drift. */
  kind: WhmcsDriftEntry['kind'] | 'queued' | 'parked' | 'settings-differ'
  whmcsStatus?: string
  connector?: string
  /** What is queued for the service. */
  intended?: ServiceState
  /** What the connector confirmed. */
  confirmed?: ServiceState
  message: string
  openJobs: number
  parkedJobs: number
  lastError?: string
}

/** A service whose settings on the server differ from what the config now gives its plan. */
export interface ConfigDriftEntry {
  serviceId: string
  productId: string
  plan: string | null
  /** Each setting that differs: what the service was provisioned with, what the config says now. */
  changes: { key: string; from?: unknown; to?: unknown }[]
  /** A changePackage already open for the service (queued, running or parked). */
  pendingJob?: number
}

/** An operator's (API, CLI) change to a service. */
export interface ServiceChange {
  desired?: 'active' | 'suspended' | 'terminated'
  password?: string
  settings?: Record<string, unknown>
}

/** A configured server as core's `ServerInput` (only the fields that are set). */
export function serverInput(server: ServerConfig): ServerInput {
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

const STATE_AFTER: Partial<Record<string, ServiceState>> = {
  create: 'active',
  suspend: 'suspended',
  unsuspend: 'active',
  terminate: 'terminated',
}

/** A sync intent's kind is one of the engine's lifecycle operations. */
const LIFECYCLE = new Set(['create', 'suspend', 'unsuspend', 'terminate', 'changePackage', 'changePassword'])

/** The reverse sync's product mappings from the config. */
export function productMappings(config: Config): ProductMapping[] {
  return config.products.map((p) => {
    const m: ProductMapping = { productId: p.whmcsProductId, connector: p.connector }
    if (p.plans) {
      m.planOption = p.plans.option
      // A value without settings is an error the pass reports for that service, not a silent default.
      m.planMap = Object.fromEntries(Object.keys(p.plans.values).map((v) => [v, v]))
      if (p.plans.default !== undefined) m.defaultPlan = p.plans.default
    }
    if (p.passwordField !== undefined) m.passwordField = p.passwordField
    if (p.overdueGraceDays !== undefined) m.overdueGraceDays = p.overdueGraceDays
    return m
  })
}

/**
 * The provisioning engine: drives `@panelkit/whmcs`'s reverse sync against the store's provisioned
 * view, queues its intents as jobs (keyed by the intents' idempotency keys), runs them with leases
 * against the connectors (as resumable pipelines keyed by the job), retries what can be retried,
 * parks what cannot, and records what each connector confirmed.
 */
export class Engine {
  readonly store: Store
  readonly config: Config
  readonly whmcs: WhmcsClient | undefined
  readonly owner: string
  readonly moduleLog: DurableModuleLog
  private readonly connectors = new Map<string, { instance: ConnectorInstance; probe?: CapacityProbe }>()
  // biome-ignore lint/suspicious/noExplicitAny: definitions of any settings shape are accepted
  readonly definitions = new Map<string, ConnectorDefinition<any, any>>()
  private readonly logger: Logger
  private readonly redactor: Redactor
  private readonly listeners = new Set<(event: EngineEvent) => void>()
  private readonly mappings: ProductMapping[]
  private readonly passwordKey: string
  private wake: (() => void) | undefined

  constructor(options: EngineOptions) {
    this.store = options.store
    this.config = options.config
    this.whmcs = options.whmcs
    this.logger = options.logger
    this.redactor = options.redactor
    this.moduleLog = options.moduleLog
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
    this.mappings = productMappings(options.config)
    // Password fingerprints are keyed by a secret derived from the encryption key, so a fingerprint
    // in the store cannot be tested against guesses by someone without the key.
    this.passwordKey = this.store.box ? this.store.box.derive('password fingerprint').toString('base64') : ''
    if (options.onEvent) this.listeners.add(options.onEvent)
    for (const reg of options.connectors) {
      const instance = createConnector(reg.definition, {
        sink: options.moduleLog,
        redactor: options.redactor,
        checkpoints: options.store.checkpoints,
        timeoutMs: options.operationTimeoutMs ?? options.config.worker.operationTimeoutSeconds * 1000,
      }) as unknown as ConnectorInstance
      this.definitions.set(reg.definition.id as string, reg.definition)
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

  private requireWhmcs(): WhmcsClient {
    if (!this.whmcs) throw new ValidationError('No WHMCS connection is configured (the `whmcs` section)')
    return this.whmcs
  }

  /** A reverse sync over one of the store's views. */
  reverseSync(
    mode: 'intended' | 'confirmed',
    hooks: {
      observed?: Map<string, number>
      onIntent?: (intent: SyncIntent) => Promise<void>
      onDrift?: (entry: WhmcsDriftEntry) => void
    } = {},
  ): ReverseSync {
    return createReverseSync({
      client: this.requireWhmcs(),
      mappings: this.mappings,
      view: this.store.provisionedView(mode, hooks.observed),
      passwordKey: this.passwordKey,
      onIntent: hooks.onIntent ?? (() => undefined),
      onDrift: hooks.onDrift ?? (() => undefined),
    })
  }

  /**
   * A reverse sync pass — everything, one client (by id or by email: the login hook), or one
   * service — with every intent queued as a job under the intent's own idempotency key. The pass is
   * planned against what is already queued, so a change is queued once however often sync runs.
   */
  async sync(
    options: {
      clientId?: string
      email?: string
      serviceId?: string
      onProgress?: (done: number, total: number | undefined) => void
      signal?: AbortSignal
      /** Who asked (the jobs' `source` and the module log's); default by pass: `sync`, `sync-client`, `sync-service`. */
      source?: string
      /** The client the pass reads services through (the WHMCS module route reads one as WHMCS will have it). */
      whmcs?: WhmcsClient
    } = {},
  ): Promise<SyncSummary> {
    const pass: SyncPassKind = options.serviceId
      ? 'service'
      : options.clientId || options.email
        ? 'client'
        : 'full'
    const source = options.source ?? (pass === 'full' ? 'sync' : `sync-${pass}`)
    const startedAt = Date.now()
    try {
      const summary = await withCallSource(source, () => this.syncPass(options, source))
      this.emit({ type: 'sync-done', pass, startedAt, durationMs: Date.now() - startedAt, summary })
      return summary
    } catch (error) {
      this.emit({ type: 'sync-failed', pass, startedAt, durationMs: Date.now() - startedAt, error })
      throw error
    }
  }

  private async syncPass(options: Parameters<Engine['sync']>[0] & {}, source: string): Promise<SyncSummary> {
    const whmcs = options.whmcs ?? this.requireWhmcs()
    const observed = new Map<string, number>()
    const clients = new Map<string, Promise<Record<string, unknown>>>()
    const summary = {
      intents: 0,
      jobsCreated: 0,
      stale: 0,
      intentsByKind: {} as Record<string, number>,
      eventsByKind: {} as Record<string, number>,
      queueErrors: [] as SyncSummary['errors'],
    }
    let total: number | undefined
    if (options.onProgress && !options.clientId && !options.email && !options.serviceId) {
      total = await this.countServices().catch(() => undefined)
    }
    let seenSoFar = 0
    const reverse = createReverseSync({
      client: whmcs,
      mappings: this.mappings,
      view: {
        ...wrapView(this.store.provisionedView('intended', observed), (n) => {
          seenSoFar += n
          options.onProgress?.(seenSoFar, total)
        }),
      },
      passwordKey: this.passwordKey,
      onDrift: () => undefined,
      // Due dates: kept on the service; a renewal is logged so an operator (or a hook) can act on it.
      recordDueDates: true,
      onEvent: async (event) => {
        try {
          if (!(await this.store.recordDueDate(event.serviceId, event.nextDueDate))) return
          summary.eventsByKind[event.kind] = (summary.eventsByKind[event.kind] ?? 0) + 1
          if (event.kind !== 'due-date-recorded')
            this.logger.info(event.kind === 'renewed' ? 'service renewed' : 'due date changed', {
              serviceId: event.serviceId,
              previousDueDate: event.previousDueDate ?? null,
              nextDueDate: event.nextDueDate,
            })
        } catch (error) {
          const f = toFailure(error, this.redactor)
          summary.queueErrors.push({
            serviceId: event.serviceId,
            stage: 'event',
            code: f.code,
            message: f.detail,
          })
        }
      },
      onIntent: async (intent) => {
        summary.intents++
        summary.intentsByKind[intent.kind] = (summary.intentsByKind[intent.kind] ?? 0) + 1
        try {
          const out = await this.queueIntent(intent, observed, clients, source)
          if (out === 'stale') summary.stale++
          else if (out === 'created') summary.jobsCreated++
        } catch (error) {
          const f = toFailure(error, this.redactor)
          summary.queueErrors.push({
            serviceId: intent.serviceId,
            stage: 'queue',
            code: f.code,
            message: f.detail,
          })
        }
      },
    })
    const signal = options.signal ? { signal: options.signal } : {}
    const report = options.serviceId
      ? await reverse.servicePass(options.serviceId, signal)
      : options.clientId
        ? await reverse.clientPass({ clientId: options.clientId }, signal)
        : options.email
          ? await reverse.clientPass({ email: options.email }, signal)
          : await reverse.fullPass(signal)
    // Paid deposits of Apply Credit products become account credit, once (deposits.ts).
    if (!options.email) summary.queueErrors.push(...(await syncDeposits(this, options)).errors)
    if (summary.jobsCreated > 0) this.wake?.()
    const out: SyncSummary = {
      pass: report.pass,
      complete: report.complete,
      servicesSeen: report.servicesSeen,
      intents: summary.intents,
      jobsCreated: summary.jobsCreated,
      stale: summary.stale,
      intentsByKind: summary.intentsByKind,
      eventsByKind: summary.eventsByKind,
      errors: [
        ...report.errors.map((e) => {
          const x: SyncSummary['errors'][number] = {
            stage: e.stage,
            code: e.error.code,
            message: this.redactor.redactString(e.error.detail),
          }
          if (e.serviceId !== undefined) x.serviceId = e.serviceId
          if (e.clientId !== undefined) x.clientId = e.clientId
          return x
        }),
        ...summary.queueErrors,
      ],
      durationMs: Math.round(report.durationMs),
    }
    if (report.clientIds) out.clientIds = report.clientIds
    if (report.primaryService) out.primaryService = report.primaryService
    const { errors, ...rest } = out
    this.logger.info('sync finished', { ...rest, errorCount: errors.length })
    for (const e of errors.slice(0, 20)) this.logger.warn('sync error', { ...e })
    return out
  }

  /** Services of the mapped products in WHMCS (one cheap call per product), for a progress bar. */
  private async countServices(): Promise<number> {
    let n = 0
    for (const p of this.config.products) {
      const r = await this.requireWhmcs().getClientsProducts({ pid: p.whmcsProductId, limitnum: 1 })
      n += Number(r.totalresults ?? 0)
    }
    return n
  }

  private clientDetails(
    clientId: string,
    cache: Map<string, Promise<Record<string, unknown>>>,
  ): Promise<Record<string, unknown>> {
    let p = cache.get(clientId)
    if (!p) {
      p = this.requireWhmcs()
        .getClientsDetails({ clientid: clientId })
        .then(({ client: c }) => {
          const out: Record<string, unknown> = {
            id: clientId,
            email: String(c.email),
            firstName: String(c.firstname ?? ''),
            lastName: String(c.lastname ?? ''),
          }
          if (c.companyname) out.company = String(c.companyname)
          for (const key of ['address1', 'address2', 'city', 'state', 'postcode'] as const)
            if (typeof c[key] === 'string' && c[key] !== '') out[key] = c[key]
          const phone = c.phonenumberformatted || c.telephoneNumber || c.phonenumber
          if (typeof phone === 'string' && phone !== '') out.phone = phone
          if (typeof c.countrycode === 'string' && /^[A-Z]{2}$/.test(c.countrycode))
            out.country = c.countrycode
          else if (typeof c.country === 'string' && /^[A-Z]{2}$/.test(c.country)) out.country = c.country
          if (typeof c.currency_code === 'string' && /^[A-Z]{3}$/.test(c.currency_code))
            out.currency = c.currency_code
          return out
        })
      cache.set(clientId, p)
    }
    return p
  }

  /**
   * Queues one reverse-sync intent: records the new intended state on the service (plan, password
   * fingerprint, sealed password) and inserts the job under the intent's key, in one transaction.
   * If the service changed since the pass read it (another sync or an operator got there first) the
   * intent is stale and dropped; the next pass plans again from the new state.
   */
  private async queueIntent(
    intent: SyncIntent,
    observed: Map<string, number>,
    clients: Map<string, Promise<Record<string, unknown>>>,
    source: string,
  ): Promise<'created' | 'collapsed' | 'stale'> {
    if (!LIFECYCLE.has(intent.kind)) throw new ValidationError(`Unknown intent kind ${intent.kind}`)
    const product = this.productFor(intent.productId)
    if (!product) throw new ValidationError(`Product ${intent.productId} is not mapped`)
    // The password is not added to the app's redactor (a first pass over 100 000 services would grow
    // it without bound): it is only sealed here, and core masks it in the invocation that sends it.
    // The reverse sync carries the customer in creates; the app's own lookup is the fallback.
    const client =
      intent.kind === 'create'
        ? (intent.customer ?? (await this.clientDetails(intent.clientId, clients)))
        : undefined
    const settings =
      intent.kind === 'create' || intent.kind === 'changePackage'
        ? settingsFor(product, intent.plan)
        : undefined
    return this.store.tx(async (trx) => {
      let q = trx.selectFrom('services').selectAll().where('service_id', '=', intent.serviceId)
      if (this.store.dialect === 'postgres') q = q.forUpdate()
      const row = await q.executeTakeFirst()
      const current = row ? serviceFromRow(row) : undefined
      if (current?.version !== observed.get(intent.serviceId)) return 'stale'
      const version = (current?.version ?? 0) + 1
      const context: Record<string, unknown> = {
        ...(current?.context ?? {}),
        serviceId: intent.serviceId,
        clientId: intent.clientId,
        configOptions: intent.configOptions,
        customFields: intent.customFields,
        status: intent.whmcsStatus,
      }
      if (client) context.client = client
      // A plan change from WHMCS replaces an operator's package overrides, as it always replaced the
      // settings they were merged into.
      if (settings) delete context.settingsOverrides
      if (intent.username) context.username = intent.username
      if (intent.domain) context.domain = intent.domain
      const now = Date.now()
      const sealed = intent.password
        ? this.store.seal(intent.password, `service:${intent.serviceId}`)
        : undefined
      const patch = {
        desired: STATE_AFTER[intent.kind] ?? current?.desired ?? 'none',
        version,
        context_json: JSON.stringify(context),
        connector: product.connector,
        server_group: product.serverGroup,
        updated_at: now,
        ...(settings ? { settings_json: JSON.stringify(settings) } : {}),
        ...(intent.plan !== undefined && settings ? { plan: intent.plan } : {}),
        ...(intent.passwordFingerprint !== undefined ? { password_fp: intent.passwordFingerprint } : {}),
        ...(intent.servicePasswordFingerprint !== undefined
          ? { service_password_fp: intent.servicePasswordFingerprint }
          : {}),
        ...(sealed ? { password_enc: sealed } : {}),
        ...(intent.kind === 'create' && intent.nextDueDate !== undefined
          ? { next_due_date: intent.nextDueDate ?? '' }
          : {}),
      }
      if (current) {
        const r = await trx
          .updateTable('services')
          .set(patch)
          .where('service_id', '=', intent.serviceId)
          .where('version', '=', current.version)
          .executeTakeFirst()
        if (Number(r.numUpdatedRows) !== 1) return 'stale'
      } else {
        const r = await trx
          .insertInto('services')
          .values({
            service_id: intent.serviceId,
            client_id: intent.clientId,
            product_id: intent.productId,
            actual: 'none',
            settings_json: JSON.stringify(settings ?? settingsFor(product, intent.plan)),
            settings_hash: '',
            password_hash: '',
            server_id: null,
            account_id: null,
            username: null,
            ips_json: null,
            last_job_id: null,
            last_step: null,
            last_error: null,
            created_at: now,
            plan: intent.plan ?? null,
            password_fp: intent.passwordFingerprint ?? null,
            password_enc: sealed ?? null,
            confirmed_plan: null,
            confirmed_password_fp: null,
            service_password_fp: intent.servicePasswordFingerprint ?? null,
            confirmed_service_password_fp: null,
            confirmed_settings_json: null,
            ...patch,
          })
          .onConflict((oc) => oc.column('service_id').doNothing())
          .returning('service_id')
          .executeTakeFirst()
        if (!r) return 'stale'
      }
      const payload: Record<string, unknown> = { reason: intent.reason, whmcsStatus: intent.whmcsStatus }
      if (intent.plan !== undefined) payload.plan = intent.plan
      if (intent.previousPlan !== undefined) payload.previousPlan = intent.previousPlan
      if (intent.passwordFingerprint !== undefined) payload.passwordFingerprint = intent.passwordFingerprint
      if (intent.servicePasswordFingerprint !== undefined)
        payload.servicePasswordFingerprint = intent.servicePasswordFingerprint
      // No copy of the settings: the job resolves them from the config when it runs (resolveSettings).
      const out = await enqueue(trx, {
        key: intent.key,
        serviceId: intent.serviceId,
        operation: intent.kind as JobOperation,
        payload,
        source,
        ...(intent.password ? { secretEnc: this.store.seal(intent.password, `job:${intent.key}`) } : {}),
      })
      observed.set(intent.serviceId, version)
      return out.created ? 'created' : 'collapsed'
    })
  }

  /**
   * An operator's or the API's request for a service: a new state, password or package. It is queued
   * like a sync intent (the service's version is part of the key, so a repeated request collapses).
   * WHMCS stays the source of truth: the next sync plans from what is queued here.
   */
  async request(
    serviceId: string,
    change: ServiceChange,
    source: string,
  ): Promise<{ jobs: Job[]; created: number }> {
    // The password is not added to the app's redactor (it would grow with every change, forever): it
    // is sealed here, and only the job that sends it opens it, into its own redactor.
    const out = await this.store.tx(async (trx) => {
      let q = trx.selectFrom('services').selectAll().where('service_id', '=', serviceId)
      if (this.store.dialect === 'postgres') q = q.forUpdate()
      const row = await q.executeTakeFirst()
      if (!row)
        throw new ValidationError(`No service ${serviceId}`, [{ path: 'serviceId', message: 'unknown' }])
      const current = serviceFromRow(row)
      // Refused here, before anything is stored or queued: a change the connector would refuse would
      // only park the job and block the service's later work.
      this.validateChange(current, change)
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
          ...(change.password
            ? { password_enc: this.store.seal(change.password, `service:${serviceId}`) }
            : {}),
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
            ? { secretEnc: this.store.seal(change.password, `job:${key}`) }
            : {}),
        })
        jobs.push(r.job)
        if (r.created) created++
      }
      return { jobs, created }
    })
    if (out.created > 0) this.wake?.()
    return out
  }

  /**
   * An operator's change checked against the service's connector: every setting it names must be one
   * the connector declares, the settings it would leave must pass the connector's own schema, and a
   * password may not hold control characters. Throws a `ValidationError` naming each field.
   */
  validateChange(service: ServiceRecord, change: ServiceChange): void {
    const issues: { path: string; message: string }[] = []
    if (change.password !== undefined && CONTROL_CHARACTERS.test(change.password))
      issues.push({ path: 'password', message: 'must not contain control characters (CR, LF, NUL, …)' })
    const entry = this.connectors.get(service.connector)
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

  /** Queues one usage push per provisioned service of a usage-billed product for the period. */
  async scheduleUsage(period: string): Promise<number> {
    let created = 0
    for (const s of await listServices(this.store.db)) {
      if (s.actual !== 'active' && s.actual !== 'suspended') continue
      // A terminate is queued: the push would run after it, against an account that is gone.
      if (s.desired === 'terminated') continue
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

  /** Queues a deposit to be credited to a WHMCS client (AddCredit exactly once per deposit id). */
  async creditDeposit(deposit: DepositCredit, source: string): Promise<{ job: Job; created: boolean }> {
    const out = await enqueue(this.store.db, {
      key: `credit:${deposit.depositId}`,
      serviceId: `client:${deposit.clientId}`,
      operation: 'creditDeposit',
      payload: { ...deposit, clientId: String(deposit.clientId) },
      source,
    })
    if (out.created) this.wake?.()
    return out
  }

  async retry(filter: { jobId?: number; serviceId?: string } = {}): Promise<number> {
    const n = await retryParked(this.store.db, filter)
    if (n > 0) this.wake?.()
    return n
  }

  /**
   * Cancels a parked or queued job, and every later open job of its service (they were queued on the
   * assumption that it would run). The service's intended state goes back to what was confirmed, so
   * the next sync plans it again from WHMCS with today's config: that is how a parked job is
   * superseded. A running job cannot be cancelled (stop its worker first, or let it finish).
   */
  async cancel(
    filter: { jobId?: number; serviceId?: string },
    reason = 'cancelled by an operator',
  ): Promise<{ cancelled: Job[]; services: string[] }> {
    if (filter.jobId === undefined && filter.serviceId === undefined)
      throw new ValidationError('Name a job or a service to cancel', [
        { path: 'jobId', message: 'give a job id or a service id' },
      ])
    return this.store.tx(async (trx) => {
      let serviceId = filter.serviceId
      let fromId = 0
      if (filter.jobId !== undefined) {
        const row = await trx.selectFrom('jobs').selectAll().where('id', '=', filter.jobId).executeTakeFirst()
        if (!row) throw new ValidationError(`No job ${filter.jobId}`, [{ path: 'jobId', message: 'unknown' }])
        if (serviceId !== undefined && row.service_id !== serviceId)
          throw new ValidationError(`Job ${filter.jobId} is not a job of service ${serviceId}`)
        serviceId = row.service_id
        fromId = Number(row.id)
        if (row.status === JobStatus.RUNNING)
          throw new ConflictError(
            `Job ${filter.jobId} is running; stop its worker or wait for it, then cancel it if it parks`,
          )
        if (row.status !== JobStatus.QUEUED && row.status !== JobStatus.PARKED)
          throw new ValidationError(
            `Job ${filter.jobId} is ${row.status}; only queued or parked jobs can be cancelled`,
          )
      }
      const open = await trx
        .selectFrom('jobs')
        .selectAll()
        .where('service_id', '=', serviceId as string)
        .where('id', '>=', fromId)
        .where('status', 'in', [JobStatus.QUEUED, JobStatus.PARKED, JobStatus.RUNNING])
        .orderBy('id')
        .execute()
      const running = open.find((r) => r.status === JobStatus.RUNNING)
      if (running)
        throw new ConflictError(
          `Job ${running.id} of service ${serviceId} is running; stop its worker or wait for it first`,
        )
      if (open.length === 0) return { cancelled: [], services: [] }
      const now = Date.now()
      const ids = open.map((r) => Number(r.id))
      await trx
        .updateTable('jobs')
        .set({
          // The key is freed (kept, suffixed), so the same intent planned again is a new job.
          key: sql<string>`key || ${':cancelled:'} || cast(id as text)`,
          status: JobStatus.CANCELLED,
          finished_at: now,
          updated_at: now,
          secret_enc: null,
          lease_owner: null,
          lease_until: null,
          result_json: JSON.stringify({ cancelled: reason }),
        })
        .where('id', 'in', ids)
        .execute()
      // The intended view goes back to the confirmed one (and the version moves on), so the next
      // sync sees the difference with WHMCS again and queues fresh jobs.
      await trx
        .updateTable('services')
        .set((eb) => ({
          desired: eb.ref('actual'),
          plan: eb.ref('confirmed_plan'),
          password_fp: eb.ref('confirmed_password_fp'),
          service_password_fp: eb.ref('confirmed_service_password_fp'),
          version: eb('version', '+', 1),
          last_error: null,
          updated_at: now,
        }))
        .where('service_id', '=', serviceId as string)
        .execute()
      const cancelled = open.map((r) => ({ ...jobFromRow(r), status: JobStatus.CANCELLED }))
      this.logger.info('jobs cancelled', { serviceId, jobs: ids, reason })
      return { cancelled, services: [serviceId as string] }
    })
  }

  /**
   * Services whose settings on the server (what their last create or changePackage applied) differ
   * from what today's config gives their plan: a product's or a plan's settings were changed. With
   * `apply`, a changePackage is queued for each one that has none open. Without it, nothing changes.
   */
  async reconcile(
    options: { apply?: boolean; serviceId?: string } = {},
  ): Promise<{ entries: ConfigDriftEntry[]; queued: number }> {
    const entries = await this.configDrift(options.serviceId)
    let queued = 0
    if (options.apply) {
      for (const e of entries) {
        if (e.pendingJob !== undefined) continue
        const job = await this.store.tx(async (trx) => {
          let q = trx.selectFrom('services').selectAll().where('service_id', '=', e.serviceId)
          if (this.store.dialect === 'postgres') q = q.forUpdate()
          const row = await q.executeTakeFirst()
          if (!row) return undefined
          const current = serviceFromRow(row)
          const version = current.version + 1
          await trx
            .updateTable('services')
            .set({ version, updated_at: Date.now() })
            .where('service_id', '=', e.serviceId)
            .execute()
          const payload: Record<string, unknown> = {
            reason: `config changed: ${e.changes.map((c) => c.key).join(', ')}`,
          }
          const plan = current.confirmedPlan ?? current.plan
          if (plan !== null) payload.plan = plan
          return enqueue(trx, {
            key: `reconcile:${e.serviceId}:v${version}:changePackage`,
            serviceId: e.serviceId,
            operation: 'changePackage',
            payload,
            source: 'reconcile',
          })
        })
        if (job?.created) {
          queued++
          e.pendingJob = job.job.id
        }
      }
      if (queued > 0) this.wake?.()
    }
    return { entries, queued }
  }

  /** The services whose provisioned settings differ from today's config (see `reconcile`). */
  async configDrift(serviceId?: string): Promise<ConfigDriftEntry[]> {
    const services = serviceId
      ? [await getService(this.store.db, serviceId)].filter((s): s is ServiceRecord => s !== undefined)
      : await listServices(this.store.db)
    const open = await listJobs(this.store.db, { status: ['queued', 'running', 'parked'], limit: 100_000 })
    const out: ConfigDriftEntry[] = []
    for (const s of services) {
      if (s.actual !== 'active' && s.actual !== 'suspended') continue
      if (!this.productFor(s.productId)) continue
      const want = this.resolveSettings({ operation: 'changePackage', payload: {} }, s)
      if (!want.ok) continue
      const expected = this.recordable(s.connector, want.settings)
      const recorded = s.confirmedSettings ?? this.recordable(s.connector, s.settings)
      const changes: ConfigDriftEntry['changes'] = []
      for (const key of new Set([...Object.keys(expected), ...Object.keys(recorded)])) {
        if (JSON.stringify(expected[key]) === JSON.stringify(recorded[key])) continue
        const change: ConfigDriftEntry['changes'][number] = { key }
        if (recorded[key] !== undefined) change.from = recorded[key]
        if (expected[key] !== undefined) change.to = expected[key]
        changes.push(change)
      }
      if (changes.length === 0) continue
      const entry: ConfigDriftEntry = {
        serviceId: s.serviceId,
        productId: s.productId,
        plan: s.confirmedPlan ?? s.plan,
        changes,
      }
      const pending = open.find((j) => j.serviceId === s.serviceId && j.operation === 'changePackage')
      if (pending) entry.pendingJob = pending.id
      out.push(entry)
    }
    return out
  }

  /**
   * An uncertain ledger entry decided by an operator: `done` (the item did reach WHMCS; the parked
   * job finishes without sending) or `release` (it did not; the parked job may send it once more).
   */
  async settle(key: string, outcome: 'done' | 'release'): Promise<{ settled: boolean; retried: number }> {
    const ledger = this.store.ledger
    const entry = await ledger.get(key)
    if (!entry || entry.state === 'done') return { settled: false, retried: 0 }
    if (outcome === 'done') await ledger.complete(key, entry.result ?? 'settled by an operator')
    else await ledger.release(key)
    const jobKey = jobKeyOfLedgerKey(key)
    let retried = 0
    if (jobKey) {
      const job = await this.store.db
        .selectFrom('jobs')
        .select('id')
        .where('key', '=', jobKey)
        .executeTakeFirst()
      if (job) retried = await this.retry({ jobId: Number(job.id) })
    }
    return { settled: true, retried }
  }

  /**
   * The drift report: a reverse-sync pass of WHMCS against what the connectors confirmed (not what is
   * merely queued), each entry with the service's queued and parked jobs; plus services whose work is
   * under way or parked without WHMCS drift. Without a WHMCS connection, the store's view alone.
   */
  async drift(options: { clientId?: string; signal?: AbortSignal } = {}): Promise<{
    complete: boolean
    entries: DriftEntry[]
    errors: SyncSummary['errors']
  }> {
    const open = await listJobs(this.store.db, { status: ['queued', 'running', 'parked'], limit: 100_000 })
    const jobsOf = new Map<string, Job[]>()
    for (const j of open) jobsOf.set(j.serviceId, [...(jobsOf.get(j.serviceId) ?? []), j])
    const services = new Map((await listServices(this.store.db)).map((s) => [s.serviceId, s]))
    const entries: DriftEntry[] = []
    const annotate = (serviceId: string, e: Omit<DriftEntry, 'openJobs' | 'parkedJobs'>): DriftEntry => {
      const mine = jobsOf.get(serviceId) ?? []
      const parked = mine.filter((j) => j.status === 'parked').length
      const s = services.get(serviceId)
      const out: DriftEntry = { ...e, openJobs: mine.length - parked, parkedJobs: parked }
      if (s) {
        out.connector = s.connector
        out.intended = s.desired
        out.confirmed = s.actual
        if (s.lastError && parked > 0) out.lastError = s.lastError
      }
      return out
    }
    let complete = true
    let errors: SyncSummary['errors'] = []
    const reported = new Set<string>()
    if (this.whmcs) {
      const reverse = this.reverseSync('confirmed', {
        onDrift: (d) => {
          reported.add(d.serviceId)
          const e: Omit<DriftEntry, 'openJobs' | 'parkedJobs'> = {
            serviceId: d.serviceId,
            kind: d.kind,
            message: d.message,
          }
          if (d.whmcsStatus !== undefined) e.whmcsStatus = d.whmcsStatus
          entries.push(annotate(d.serviceId, e))
        },
      })
      const signal = options.signal ? { signal: options.signal } : {}
      const report = options.clientId
        ? await reverse.clientPass({ clientId: options.clientId }, signal)
        : await reverse.fullPass(signal)
      complete = report.complete
      errors = report.errors.map((e) => {
        const x: SyncSummary['errors'][number] = {
          stage: e.stage,
          code: e.error.code,
          message: e.error.detail,
        }
        if (e.serviceId !== undefined) x.serviceId = e.serviceId
        return x
      })
    }
    for (const s of services.values()) {
      if (reported.has(s.serviceId)) continue
      if (options.clientId !== undefined && s.clientId !== options.clientId) continue
      const mine = jobsOf.get(s.serviceId) ?? []
      const parked = mine.some((j) => j.status === 'parked')
      if (mine.length === 0 && (this.whmcs || s.desired === s.actual)) continue
      entries.push(
        annotate(s.serviceId, {
          serviceId: s.serviceId,
          kind: parked ? 'parked' : 'queued',
          message: parked
            ? `parked: ${s.lastError ?? 'see the job'} (fix, then retry)`
            : mine.length > 0
              ? `${mine.length} job(s) queued or running`
              : `queued ${s.desired}, confirmed ${s.actual}`,
        }),
      )
    }
    // Settings changed in the config since a service was provisioned (`reconcile` applies them).
    for (const c of await this.configDrift()) {
      if (options.clientId !== undefined && services.get(c.serviceId)?.clientId !== options.clientId) continue
      entries.push(
        annotate(c.serviceId, {
          serviceId: c.serviceId,
          kind: 'settings-differ',
          message: `config differs from what the service was provisioned with: ${c.changes
            .map((x) => `${x.key} ${JSON.stringify(x.from ?? null)} -> ${JSON.stringify(x.to ?? null)}`)
            .join(
              ', ',
            )}${c.pendingJob !== undefined ? ` (changePackage job ${c.pendingJob} open)` : ' (`provisioner reconcile --apply`)'}`,
        }),
      )
    }
    entries.sort((a, b) => a.serviceId.localeCompare(b.serviceId, 'en', { numeric: true }))
    return { complete, entries, errors }
  }

  // ---- the worker -------------------------------------------------------------------------------

  /**
   * Claims and runs jobs until `signal` fires, or — with `untilIdle` — until no job is queued or
   * running. Up to `concurrency` jobs run at once (always different services).
   *
   * When `signal` fires the worker stops claiming and lets the jobs it is running reach their next
   * resting state for up to `drainMs`; jobs still running then are aborted, and every lease this
   * worker still holds is released (the job is queued again and resumes from its last checkpoint).
   */
  async runWorker(
    options: {
      signal?: AbortSignal
      untilIdle?: boolean
      concurrency?: number
      pollMs?: number
      drainMs?: number
    } = {},
  ): Promise<{ ran: number; released: number }> {
    const concurrency = options.concurrency ?? this.config.worker.concurrency
    const leaseMs = this.config.worker.leaseSeconds * 1000
    const pollMs = options.pollMs ?? 200
    const drainMs = options.drainMs ?? 20_000
    const active = new Map<number, Promise<void>>()
    // Running jobs are aborted by this one, not by the stop signal: stopping lets them finish first.
    const hard = new AbortController()
    setMaxListeners(concurrency + 16, hard.signal)
    const stop = options.signal
    const onStop = () => this.wake?.()
    stop?.addEventListener('abort', onStop, { once: true })
    let ran = 0
    try {
      while (!stop?.aborted) {
        let claimed: Job[] = []
        try {
          claimed = await claimJobs(this.store, this.owner, concurrency - active.size, leaseMs)
        } catch (error) {
          this.logger.warn('claiming jobs failed; will try again', { error: toFailure(error, this.redactor) })
        }
        for (const job of claimed) {
          ran++
          const p = this.runJob(job, hard.signal)
            .catch((error) => {
              this.logger.error('job runner failed', {
                jobId: job.id,
                error: toFailure(error, this.redactor),
              })
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
        // The idle wait has its own signal, aborted as soon as the race is decided, so no timer and
        // no abort listener outlives one turn of the loop (a busy worker turns many times a second).
        const nap = new AbortController()
        await Promise.race([...active.values(), woken, sleep(pollMs, nap.signal).catch(() => undefined)])
        nap.abort()
        this.wake = undefined
      }
      if (active.size > 0) {
        this.logger.info('stopping: letting running jobs finish', {
          running: active.size,
          deadlineMs: drainMs,
        })
        const deadline = setTimeout(() => hard.abort(new Error('shutdown deadline reached')), drainMs)
        await Promise.allSettled(active.values())
        clearTimeout(deadline)
      }
    } finally {
      stop?.removeEventListener('abort', onStop)
      if (!hard.signal.aborted && active.size > 0) hard.abort(new Error('worker stopped'))
      await Promise.allSettled(active.values())
    }
    await this.moduleLog.flush()
    const released = await releaseLeases(this.store.db, this.owner)
    if (released > 0) this.logger.warn('released the leases of unfinished jobs', { released })
    return { ran, released }
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
    // The job's own secrets (the password it opens) live in a layer dropped with the job.
    const redactor = this.redactor.child()
    this.emit({ type: 'job-started', job, service })
    try {
      let outcome: JobOutcome
      try {
        const moot = service ? mootAfterTerminate(job, service) : undefined
        outcome = moot
          ? { ok: 'cancelled', reason: moot }
          : await withCallSource(job.source, () =>
              this.execute(job, service, controller.signal, steps, redactor),
            )
      } catch (error) {
        outcome = { ok: false, error: toFailure(error, redactor) }
      }
      await this.moduleLog.flush().catch(() => undefined)
      if (controller.signal.aborted) return // lease lost or shutting down: whoever holds the job finishes it
      if (outcome.ok === 'cancelled') await this.finishMoot(job, outcome.reason)
      else if (outcome.ok)
        await this.succeed(job, service, outcome.data, steps, performance.now() - started, outcome.settings)
      else await this.fail(job, outcome.error, steps)
    } finally {
      clearInterval(renew)
      outerSignal?.removeEventListener('abort', onOuter)
    }
  }

  /** A job made moot by what ran before it: finished as cancelled, with the reason, nothing sent. */
  private async finishMoot(job: Job, reason: string): Promise<void> {
    const finished = await finishJob(this.store.db, job, this.owner, {
      status: JobStatus.CANCELLED,
      lastError: null,
      result: { cancelled: reason, ranBy: this.owner },
    })
    if (!finished) return
    this.logger.info('job cancelled', { jobId: job.id, key: job.key, operation: job.operation, reason })
    this.emit({ type: 'job-cancelled', job, reason })
  }

  /**
   * The settings a job runs with, from today's config: the product's settings, the plan's over them
   * (the plan the job was queued for; else the one the service has), then an operator's overrides. A
   * job keeps what identifies its intent (operation, plan), never a copy of the settings, so fixing the
   * config and running `retry` runs it with the fix. A product no longer in the config runs with the
   * settings the service was last provisioned with.
   */
  resolveSettings(
    job: Pick<Job, 'operation' | 'payload'>,
    service: ServiceRecord,
  ): { ok: true; settings: Record<string, unknown> } | { ok: false; error: Failure } {
    const product = this.productFor(service.productId)
    if (!product) return { ok: true, settings: service.confirmedSettings ?? service.settings }
    const packaged = job.operation === 'create' || job.operation === 'changePackage'
    const plan =
      packaged && typeof job.payload.plan === 'string'
        ? job.payload.plan
        : ((packaged ? service.plan : (service.confirmedPlan ?? service.plan)) ?? undefined)
    if (plan !== undefined && product.plans && !(plan in product.plans.values))
      return this.permanent(
        `Plan ${plan} of service ${service.serviceId} is not in the config (products[whmcsProductId=${product.whmcsProductId}].plans.values): add it, then \`provisioner retry --service ${service.serviceId}\``,
      )
    const overrides = service.context.settingsOverrides as Record<string, unknown> | undefined
    return { ok: true, settings: { ...settingsFor(product, plan), ...(overrides ?? {}) } }
  }

  private async execute(
    job: Job,
    service: ServiceRecord | undefined,
    signal: AbortSignal,
    steps: StepRecord[],
    redactor: Redactor = this.redactor,
  ): Promise<
    { ok: true; data: unknown; settings?: Record<string, unknown> } | { ok: false; error: Failure }
  > {
    if (job.operation === 'creditDeposit') return this.runCreditDeposit(job, signal)
    if (!service) return this.permanent(`Service ${job.serviceId} is not in the store`)
    if (job.operation === 'writeBack') {
      if (!this.whmcs) return { ok: true, data: { skipped: 'no WHMCS connection' } }
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
      const out = await writeBackService(this.whmcs, update, { signal })
      return out.ok ? { ok: true, data: { written: out.written } } : { ok: false, error: out.error }
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
    const resolved = this.resolveSettings(job, service)
    if (!resolved.ok) return resolved
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
      const password = await this.passwordFor(job, service)
      // Core adds it to the invocation's own redactor, so the module log and failures mask it; the
      // job's layer masks it in whatever the engine logs about this job.
      redactor.addValue(password)
      if (password) serviceInput.password = password
      else if (job.operation === 'changePassword') {
        return this.permanent(`Job ${job.key} has no password to set`)
      }
    }
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
      return this.runPushUsage(job, service, entry.instance, serviceInput, invokeOptions)
    }
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
    return { ok: true, data: { ...data, serverId }, settings }
  }

  /** The job's own sealed password, else (a create) the service's current one. */
  private async passwordFor(job: Job, service: ServiceRecord): Promise<string | undefined> {
    if (job.secretEnc) return this.store.open(job.secretEnc, `job:${job.key}`)
    if (job.operation !== 'create' || !service.hasPassword) return undefined
    const row = await this.store.db
      .selectFrom('services')
      .select('password_enc')
      .where('service_id', '=', service.serviceId)
      .executeTakeFirst()
    return row?.password_enc ? this.store.open(row.password_enc, `service:${service.serviceId}`) : undefined
  }

  /**
   * Settings as the store may keep them: a secret setting (a password-type one) becomes a keyed
   * fingerprint, so a change to it is still seen as drift without the value being stored.
   */
  recordable(connector: string, settings: Record<string, unknown>): Record<string, unknown> {
    const definition = this.definitions.get(connector)
    const secret = definition ? secretSettingKeys(definition.settings) : []
    // Compared as the connector reads them: defaults filled in, numbers from strings.
    const parsed = definition ? settingsSchema(definition.settings).safeParse(settings) : undefined
    const normal = parsed?.success ? { ...settings, ...(parsed.data as Record<string, unknown>) } : settings
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(normal)) {
      out[k] =
        secret.includes(k) && typeof v === 'string' && v !== ''
          ? `hmac:${createHmac('sha256', this.passwordKey || 'panelkit')
              .update(v)
              .digest('base64url')
              .slice(0, 22)}`
          : v
    }
    return out
  }

  /** The library's ledger outcome as the job's outcome. */
  private ledgerOutcome(
    what: string,
    out: LedgerWriteResult,
  ): { ok: true; data: unknown } | { ok: false; error: Failure } {
    switch (out.status) {
      case 'written':
        return { ok: true, data: { key: out.key, result: out.result, sent: true } }
      case 'already-done':
        return { ok: true, data: { key: out.key, result: out.result ?? null, sent: false } }
      case 'uncertain':
        // Never sent again automatically: billing twice is worse than asking an operator.
        return this.permanent(
          `${what} may or may not have reached WHMCS (ledger ${out.key} is ${out.entry.state}${out.entry.reason ? `: ${out.entry.reason}` : ''}). Check WHMCS, then \`provisioner settle --key ${out.key} --as done\` (it is there) or \`--as release\` (it is not; it will be sent once).`,
          'CONFLICT',
        )
      case 'failed':
        return { ok: false, error: { ...out.error, retryable: out.retryable && out.error.retryable } }
    }
  }

  private async runPushUsage(
    job: Job,
    service: ServiceRecord,
    instance: ConnectorInstance,
    serviceInput: Record<string, unknown>,
    invokeOptions: { runKey: string; signal: AbortSignal },
  ): Promise<{ ok: true; data: unknown } | { ok: false; error: Failure }> {
    const product = this.productFor(service.productId)
    const pricing = product?.usageBilling
    if (!pricing || !this.whmcs) return { ok: true, data: { skipped: 'no usage billing configured' } }
    const period = String(job.payload.period)
    const usage = (await instance.invoke(
      'usage',
      { service: serviceInput } as never,
      invokeOptions,
    )) as Result<OperationResult<'usage'>>
    if (!usage.ok) return { ok: false, error: usage.error }
    const metric = usage.data.metrics.find((m) => m.name === pricing.metric)
    const quantity = Number(metric?.value ?? 0)
    const amount = (Math.round(quantity * Number(pricing.unitPrice) * 100) / 100).toFixed(2)
    const push = {
      serviceId: service.serviceId,
      clientId: service.clientId,
      period: period.replace(/[^A-Za-z0-9_.:-]/g, '-'),
      description:
        `${pricing.description ?? pricing.metric} ${period}: ${quantity} ${metric?.unit ?? ''} (service ${service.serviceId})`.trim(),
      amount,
    }
    const ledger = this.store.ledgerFor(attemptHolder(this.owner, job))
    const out = await pushUsage(ledgerBoundClient(this.whmcs, ledger, usageKey(push)), ledger, push, {
      signal: invokeOptions.signal,
    })
    return this.ledgerOutcome(`Usage of service ${service.serviceId} for ${period}`, out)
  }

  private async runCreditDeposit(
    job: Job,
    signal: AbortSignal,
  ): Promise<{ ok: true; data: unknown } | { ok: false; error: Failure }> {
    if (!this.whmcs) return this.permanent('No WHMCS connection is configured (the `whmcs` section)')
    const d = job.payload as unknown as DepositCredit
    const ledger = this.store.ledgerFor(attemptHolder(this.owner, job))
    const out = await creditDeposit(ledgerBoundClient(this.whmcs, ledger, depositKey(d)), ledger, d, {
      signal,
    })
    return this.ledgerOutcome(`Deposit ${d.depositId} of client ${d.clientId}`, out)
  }

  private permanent(detail: string, code: Failure['code'] = 'VALIDATION'): { ok: false; error: Failure } {
    return {
      ok: false,
      error: {
        code,
        message: code === 'VALIDATION' ? 'The service is not set up correctly.' : 'An operator must decide.',
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
    settings?: Record<string, unknown>,
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
      // What the connector now confirms: the reverse sync's view for the drift report.
      if (job.operation === 'create' || job.operation === 'changePackage') {
        if (typeof job.payload.plan === 'string') patch.confirmed_plan = job.payload.plan
        // The settings the service now has on the server: a later change in the config is drift.
        if (settings)
          patch.confirmed_settings_json = JSON.stringify(this.recordable(service.connector, settings))
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
        if (this.whmcs) {
          const fields: Record<string, unknown> = {}
          const placed = typeof d.serverId === 'string' ? this.server(d.serverId) : undefined
          if (placed?.whmcsServerId !== undefined) fields.serverId = placed.whmcsServerId
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
      if (
        job.operation !== 'writeBack' &&
        job.operation !== 'pushUsage' &&
        job.operation !== 'creditDeposit'
      ) {
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
    await this.whmcs?.close()
  }
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

/** Counts the services of each page the reverse sync looks up (for a progress bar). */
function wrapView(view: StoreProvisionedView, onPage: (n: number) => void): ProvisionedView {
  return {
    get: (id) => view.get(id),
    getMany: async (ids) => {
      const out = await view.getMany(ids)
      onPage(ids.length)
      return out
    },
    list: () => view.list(),
  }
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

/** One attempt of one job, as a ledger claim's holder (unique: a re-run is a new attempt). */
function attemptHolder(owner: string, job: Job): string {
  return `${owner}:job-${job.id}:${job.attempts}:${randomUUID().slice(0, 8)}`
}

/**
 * The WHMCS client with AddBillableItem and AddCredit bracketed by the ledger. First the connection
 * is made — TCP, TLS and an authenticated read (`WhmcsDetails`) over the client's keep-alive pool —
 * and only then is `sending` recorded (durably, fenced on the claim), immediately before the request
 * goes out on that warm connection; `sent` is recorded with WHMCS's answer right after. A WHMCS that
 * cannot be reached, a handshake that stalls, or a worker killed while connecting leaves a claim that
 * was never sent: released and sent once by the next attempt, not an `uncertain` entry for an operator.
 */
function ledgerBoundClient(client: WhmcsClient, ledger: DurableLedger, key: string): WhmcsClient {
  const bound = Object.create(client) as WhmcsClient
  const connectFirst = async (action: string, options: { signal?: AbortSignal } | undefined) => {
    try {
      await client.whmcsDetails(options?.signal ? { signal: options.signal } : {})
    } catch (error) {
      const f = toFailure(error)
      throw new ConnectionError(`WHMCS could not be reached before ${action} was sent: ${f.detail}`, {
        cause: error,
        retryable: f.retryable || f.code === 'CONNECTION' || f.code === 'TIMEOUT',
        // Nothing went out: the ledger frees the key instead of marking it uncertain.
        details: { notSent: true },
      })
    }
  }
  bound.addBillableItem = async (params, options) => {
    await connectFirst('AddBillableItem', options)
    await ledger.beginSend(key)
    const r = await client.addBillableItem(params, options)
    await ledger.markSent(key, r.billableid)
    return r
  }
  bound.addCredit = async (params, options) => {
    await connectFirst('AddCredit', options)
    await ledger.beginSend(key)
    const r = await client.addCredit(params, options)
    await ledger.markSent(key, r.newbalance)
    return r
  }
  return bound
}

/** The job that pushes a ledger key's item (usage: `usage:<service>:<period>`; credit: `credit:<id>`). */
function jobKeyOfLedgerKey(key: string): string | undefined {
  const usage = /^whmcs:usage:([^:]+):(.+):[^:]+$/.exec(key)
  if (usage) return `usage:${usage[1]}:${usage[2]}`
  const credit = /^whmcs:credit:(.+)$/.exec(key)
  if (credit) return `credit:${credit[1]}`
  return undefined
}

type JobOutcome =
  | { ok: true; data: unknown; settings?: Record<string, unknown> }
  | { ok: false; error: Failure }
  | { ok: 'cancelled'; reason: string }

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

/**
 * Jobs run in the order they were queued, so a job queued behind a terminate (a write-back queued when
 * a create finished, a usage push, a package change) runs after the account is gone. It is moot: it
 * is cancelled with the reason instead of parking with a misleading one ("never created") or writing
 * a deleted account's username and a released IP back to WHMCS. A create queued after the terminate
 * runs as usual, and the jobs after it find the account again.
 */
function mootAfterTerminate(job: Job, service: ServiceRecord): string | undefined {
  if (!MOOT_AFTER_TERMINATE.has(job.operation) || service.actual !== 'terminated') return undefined
  return `Service ${service.serviceId} was terminated before this ${job.operation} ran; nothing to do`
}
