import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import {
  type CapacityProbe,
  type ConnectorDefinition,
  type ConnectorInstance,
  createConnector,
  type Failure,
  type Redactor,
  type ServerInput,
  type StepRecord,
  ValidationError,
} from '@panelkit/core'
import type {
  ProductMapping,
  WhmcsClient,
  DriftEntry as WhmcsDriftEntry,
  SyncReport as WhmcsSyncReport,
} from '@panelkit/whmcs'
import type { Config, ProductConfig, ServerConfig } from '../config.ts'
import type { Logger } from '../logger.ts'
import type { DurableModuleLog, Store } from '../store/store.ts'
import type { Job } from './jobs.ts'
import type { ServiceRecord, ServiceState } from './services.ts'

/**
 * What the engine's parts share: the engine's state as one plain object, the public types, and the
 * few helpers every part needs. The parts (runner.ts, lifecycle.ts, billing.ts, sync.ts, settings.ts)
 * are functions taking this context; engine.ts composes them into the `Engine` class. Nothing here
 * imports a part, so the parts never import each other through it.
 */

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

/** What running a job came to: its data (and the settings it ran with), or a failure. */
export type ExecuteOutcome =
  | { ok: true; data: unknown; settings?: Record<string, unknown> }
  | { ok: false; error: Failure }

/** A connector as the engine holds it: the instance, and its capacity probe for placement. */
export interface ConnectorEntry {
  instance: ConnectorInstance
  probe?: CapacityProbe
}

/** The engine's state, shared by its parts. */
export interface EngineContext {
  readonly store: Store
  readonly config: Config
  readonly whmcs: WhmcsClient | undefined
  readonly owner: string
  readonly moduleLog: DurableModuleLog
  readonly logger: Logger
  readonly redactor: Redactor
  readonly connectors: Map<string, ConnectorEntry>
  // biome-ignore lint/suspicious/noExplicitAny: definitions of any settings shape are accepted
  readonly definitions: Map<string, ConnectorDefinition<any, any>>
  readonly listeners: Set<(event: EngineEvent) => void>
  /** The reverse sync's product mappings from the config. */
  readonly mappings: ProductMapping[]
  /** The secret password fingerprints are keyed by (derived from the store's encryption key). */
  readonly passwordKey: string
  /** Set while the worker loop waits idle: calling it makes the loop claim at once. */
  wake: (() => void) | undefined
}

/** The context for an engine's options: connectors created, the worker's identity chosen. */
export function createContext(options: EngineOptions): EngineContext {
  const ctx: EngineContext = {
    store: options.store,
    config: options.config,
    whmcs: options.whmcs,
    logger: options.logger,
    redactor: options.redactor,
    moduleLog: options.moduleLog,
    owner: options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
    connectors: new Map(),
    definitions: new Map(),
    listeners: new Set(),
    mappings: productMappings(options.config),
    // Password fingerprints are keyed by a secret derived from the encryption key, so a fingerprint
    // in the store cannot be tested against guesses by someone without the key.
    passwordKey: options.store.box ? options.store.box.derive('password fingerprint').toString('base64') : '',
    wake: undefined,
  }
  if (options.onEvent) ctx.listeners.add(options.onEvent)
  for (const reg of options.connectors) {
    const instance = createConnector(reg.definition, {
      sink: options.moduleLog,
      redactor: options.redactor,
      checkpoints: options.store.checkpoints,
      timeoutMs: options.operationTimeoutMs ?? options.config.worker.operationTimeoutSeconds * 1000,
    }) as unknown as ConnectorInstance
    ctx.definitions.set(reg.definition.id as string, reg.definition)
    ctx.connectors.set(reg.definition.id as string, reg.probe ? { instance, probe: reg.probe } : { instance })
  }
  return ctx
}

export function emit(ctx: EngineContext, event: EngineEvent): void {
  for (const l of ctx.listeners) {
    try {
      l(event)
    } catch {
      // a listener's bug must not stop the engine
    }
  }
}

/** New work was queued: an idle worker loop claims it now instead of at its next poll. */
export function wake(ctx: EngineContext): void {
  ctx.wake?.()
}

export function productFor(ctx: EngineContext, productId: string): ProductConfig | undefined {
  return ctx.config.products.find((p) => p.whmcsProductId === productId)
}

export function serverFor(ctx: EngineContext, id: string): ServerConfig | undefined {
  return ctx.config.servers.find((s) => s.id === id)
}

export function requireWhmcs(ctx: EngineContext): WhmcsClient {
  if (!ctx.whmcs) throw new ValidationError('No WHMCS connection is configured (the `whmcs` section)')
  return ctx.whmcs
}

/** A failure no retry fixes: the setup is wrong (`VALIDATION`), or an operator must decide (`CONFLICT`). */
export function permanent(
  detail: string,
  code: Failure['code'] = 'VALIDATION',
): { ok: false; error: Failure } {
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

/** The state a lifecycle operation leaves the service in, once confirmed. */
export const STATE_AFTER: Partial<Record<string, ServiceState>> = {
  create: 'active',
  suspend: 'suspended',
  unsuspend: 'active',
  terminate: 'terminated',
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
