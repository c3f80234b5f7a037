import type { ConnectorDefinition, ConnectorInstance, Failure } from '@panelkit/core'
import type { DepositCredit, ReverseSync, WhmcsClient } from '@panelkit/whmcs'
import type { Config, ProductConfig, ServerConfig } from '../config.ts'
import type { DurableModuleLog, Store } from '../store/store.ts'
import * as billing from './billing.ts'
import {
  type ConfigDriftEntry,
  createContext,
  type DriftEntry,
  type EngineContext,
  type EngineEvent,
  type EngineOptions,
  productFor,
  type ServiceChange,
  type SyncSummary,
  serverFor,
} from './context.ts'
import type { Job } from './jobs.ts'
import * as lifecycle from './lifecycle.ts'
import * as runner from './runner.ts'
import type { ServiceRecord } from './services.ts'
import * as settings from './settings.ts'
import * as syncing from './sync.ts'

// The engine's public types and helpers live with the parts that share them; they are exported here too.
export type {
  ConfigDriftEntry,
  ConnectorRegistration,
  DriftEntry,
  EngineEvent,
  EngineOptions,
  ServiceChange,
  SyncPassKind,
  SyncSummary,
} from './context.ts'
export { productMappings, serverInput } from './context.ts'

/**
 * The provisioning engine: drives `@panelkit/whmcs`'s reverse sync against the store's provisioned
 * view, queues its intents as jobs (keyed by the intents' idempotency keys), runs them with leases
 * against the connectors (as resumable pipelines keyed by the job), retries what can be retried,
 * parks what cannot, and records what each connector confirmed.
 *
 * The class is the public face; the work is in its parts, each a set of functions over one shared
 * context (context.ts):
 *
 * - runner.ts — the worker loop: claim, lease, run, finish (done, retry with back-off, park); retry
 *   and cancel
 * - lifecycle.ts — create, suspend, unsuspend, terminate, changePackage, changePassword: operator
 *   requests, placement, the connector call, what the service records once confirmed, write-back
 * - billing.ts — usage pushes and deposit credits through the WHMCS ledger; settling uncertain entries
 * - sync.ts — sync passes (intents queued as jobs), the drift report, config drift and `reconcile`
 * - settings.ts — the settings a job runs with, and as the store keeps them
 */
export class Engine {
  readonly store: Store
  readonly config: Config
  readonly whmcs: WhmcsClient | undefined
  readonly owner: string
  readonly moduleLog: DurableModuleLog
  // biome-ignore lint/suspicious/noExplicitAny: definitions of any settings shape are accepted
  readonly definitions: Map<string, ConnectorDefinition<any, any>>
  private readonly ctx: EngineContext

  constructor(options: EngineOptions) {
    this.ctx = createContext(options)
    this.store = this.ctx.store
    this.config = this.ctx.config
    this.whmcs = this.ctx.whmcs
    this.owner = this.ctx.owner
    this.moduleLog = this.ctx.moduleLog
    this.definitions = this.ctx.definitions
  }

  on(listener: (event: EngineEvent) => void): () => void {
    this.ctx.listeners.add(listener)
    return () => this.ctx.listeners.delete(listener)
  }

  connector(id: string): ConnectorInstance | undefined {
    return this.ctx.connectors.get(id)?.instance
  }

  get connectorIds(): string[] {
    return [...this.ctx.connectors.keys()]
  }

  productFor(productId: string): ProductConfig | undefined {
    return productFor(this.ctx, productId)
  }

  server(id: string): ServerConfig | undefined {
    return serverFor(this.ctx, id)
  }

  // ---- sync and drift (sync.ts) -----------------------------------------------------------------

  /** A reverse sync over one of the store's views. */
  reverseSync(mode: 'intended' | 'confirmed', hooks: syncing.ReverseSyncHooks = {}): ReverseSync {
    return syncing.reverseSync(this.ctx, mode, hooks)
  }

  /**
   * A reverse sync pass — everything, one client (by id or by email: the login hook), or one
   * service — with every intent queued as a job under the intent's own idempotency key. The pass is
   * planned against what is already queued, so a change is queued once however often sync runs.
   */
  sync(options: syncing.SyncOptions = {}): Promise<SyncSummary> {
    return syncing.sync(this.ctx, options)
  }

  /**
   * The drift report: a reverse-sync pass of WHMCS against what the connectors confirmed (not what is
   * merely queued), each entry with the service's queued and parked jobs; plus services whose work is
   * under way or parked without WHMCS drift. Without a WHMCS connection, the store's view alone.
   */
  drift(options: { clientId?: string; signal?: AbortSignal } = {}): Promise<{
    complete: boolean
    entries: DriftEntry[]
    errors: SyncSummary['errors']
  }> {
    return syncing.drift(this.ctx, options)
  }

  /**
   * Services whose settings on the server (what their last create or changePackage applied) differ
   * from what today's config gives their plan: a product's or a plan's settings were changed. With
   * `apply`, a changePackage is queued for each one that has none open. Without it, nothing changes.
   */
  reconcile(options: { apply?: boolean; serviceId?: string } = {}): Promise<{
    entries: ConfigDriftEntry[]
    queued: number
  }> {
    return syncing.reconcile(this.ctx, options)
  }

  /** The services whose provisioned settings differ from today's config (see `reconcile`). */
  configDrift(serviceId?: string): Promise<ConfigDriftEntry[]> {
    return syncing.configDrift(this.ctx, serviceId)
  }

  // ---- lifecycle operations (lifecycle.ts) ------------------------------------------------------

  /**
   * An operator's or the API's request for a service: a new state, password or package. It is queued
   * like a sync intent (the service's version is part of the key, so a repeated request collapses).
   * WHMCS stays the source of truth: the next sync plans from what is queued here.
   */
  request(
    serviceId: string,
    change: ServiceChange,
    source: string,
  ): Promise<{ jobs: Job[]; created: number }> {
    return lifecycle.request(this.ctx, serviceId, change, source)
  }

  /**
   * An operator's change checked against the service's connector: every setting it names must be one
   * the connector declares, the settings it would leave must pass the connector's own schema, and a
   * password may not hold control characters. Throws a `ValidationError` naming each field.
   */
  validateChange(service: ServiceRecord, change: ServiceChange): void {
    lifecycle.validateChange(this.ctx, service, change)
  }

  /** The settings a job runs with, from today's config (see settings.ts). */
  resolveSettings(
    job: Pick<Job, 'operation' | 'payload'>,
    service: ServiceRecord,
  ): { ok: true; settings: Record<string, unknown> } | { ok: false; error: Failure } {
    return settings.resolveSettings(this.ctx, job, service)
  }

  /** Settings as the store may keep them: secret settings as keyed fingerprints (see settings.ts). */
  recordable(connector: string, values: Record<string, unknown>): Record<string, unknown> {
    return settings.recordable(this.ctx, connector, values)
  }

  // ---- billing jobs (billing.ts) ----------------------------------------------------------------

  /** Queues one usage push per provisioned service of a usage-billed product for the period. */
  scheduleUsage(period: string): Promise<number> {
    return billing.scheduleUsage(this.ctx, period)
  }

  /** Queues a deposit to be credited to a WHMCS client (AddCredit exactly once per deposit id). */
  creditDeposit(deposit: DepositCredit, source: string): Promise<{ job: Job; created: boolean }> {
    return billing.creditDeposit(this.ctx, deposit, source)
  }

  /**
   * An uncertain ledger entry decided by an operator: `done` (the item did reach WHMCS; the parked
   * job finishes without sending) or `release` (it did not; the parked job may send it once more).
   */
  settle(key: string, outcome: 'done' | 'release'): Promise<{ settled: boolean; retried: number }> {
    return billing.settle(this.ctx, key, outcome)
  }

  // ---- running jobs (runner.ts) -----------------------------------------------------------------

  /**
   * Claims and runs jobs until `signal` fires, or — with `untilIdle` — until no job is queued or
   * running. Up to `concurrency` jobs run at once (always different services).
   *
   * When `signal` fires the worker stops claiming and lets the jobs it is running reach their next
   * resting state for up to `drainMs`; jobs still running then are aborted, and every lease this
   * worker still holds is released (the job is queued again and resumes from its last checkpoint).
   */
  runWorker(options: runner.WorkerOptions = {}): Promise<{ ran: number; released: number }> {
    return runner.runWorker(this.ctx, options)
  }

  /** Runs one claimed job to its next resting state (done, queued for retry, or parked). */
  runJob(job: Job, outerSignal?: AbortSignal): Promise<void> {
    return runner.runJob(this.ctx, job, outerSignal)
  }

  retry(filter: { jobId?: number; serviceId?: string } = {}): Promise<number> {
    return runner.retry(this.ctx, filter)
  }

  /**
   * Cancels a parked or queued job, and every later open job of its service (they were queued on the
   * assumption that it would run). The service's intended state goes back to what was confirmed, so
   * the next sync plans it again from WHMCS with today's config: that is how a parked job is
   * superseded. A running job cannot be cancelled (stop its worker first, or let it finish).
   */
  cancel(
    filter: { jobId?: number; serviceId?: string },
    reason?: string,
  ): Promise<{ cancelled: Job[]; services: string[] }> {
    return runner.cancel(this.ctx, filter, reason)
  }

  async close(): Promise<void> {
    await this.ctx.moduleLog.flush().catch(() => undefined)
    for (const { instance } of this.ctx.connectors.values()) await instance.close()
    await this.ctx.whmcs?.close()
  }
}
