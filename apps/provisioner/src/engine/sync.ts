import { toFailure, ValidationError } from '@panelkit/core'
import {
  createReverseSync,
  type ProvisionedView,
  type ReverseSync,
  type SyncIntent,
  type WhmcsClient,
  type DriftEntry as WhmcsDriftEntry,
} from '@panelkit/whmcs'
import { withCallSource } from '../call-source.ts'
import type { StoreProvisionedView } from '../store/store.ts'
import {
  type ConfigDriftEntry,
  type DriftEntry,
  type EngineContext,
  emit,
  productFor,
  requireWhmcs,
  STATE_AFTER,
  type SyncPassKind,
  type SyncSummary,
  wake,
} from './context.ts'
import { syncDeposits } from './deposits.ts'
import { enqueue, type Job, type JobOperation, listJobs } from './jobs.ts'
import { getService, listServices, type ServiceRecord, serviceFromRow, settingsFor } from './services.ts'
import { recordable, resolveSettings } from './settings.ts'

/**
 * Sync and drift. A sync pass drives `@panelkit/whmcs`'s reverse sync against the store's intended
 * view and queues each intent as a job under the intent's own idempotency key (recording the new
 * intended state on the service in the same transaction). The drift report runs the reverse sync
 * against what the connectors confirmed instead, and adds what the store holds: work under way or
 * parked, and settings the config has changed since a service was provisioned (`reconcile`).
 */

/** A sync pass's scope and hooks (see `sync`). */
export interface SyncOptions {
  clientId?: string
  email?: string
  serviceId?: string
  onProgress?: (done: number, total: number | undefined) => void
  signal?: AbortSignal
  /** Who asked (the jobs' `source` and the module log's); default by pass: `sync`, `sync-client`, `sync-service`. */
  source?: string
  /** The client the pass reads services through (the WHMCS module route reads one as WHMCS will have it). */
  whmcs?: WhmcsClient
}

/** A sync intent's kind is one of the engine's lifecycle operations. */
const LIFECYCLE = new Set(['create', 'suspend', 'unsuspend', 'terminate', 'changePackage', 'changePassword'])
export interface ReverseSyncHooks {
  observed?: Map<string, number>
  onIntent?: (intent: SyncIntent) => Promise<void>
  onDrift?: (entry: WhmcsDriftEntry) => void
}

/** A reverse sync over one of the store's views. */
export function reverseSync(
  ctx: EngineContext,
  mode: 'intended' | 'confirmed',
  hooks: ReverseSyncHooks = {},
): ReverseSync {
  return createReverseSync({
    client: requireWhmcs(ctx),
    mappings: ctx.mappings,
    view: ctx.store.provisionedView(mode, hooks.observed),
    passwordKey: ctx.passwordKey,
    onIntent: hooks.onIntent ?? (() => undefined),
    onDrift: hooks.onDrift ?? (() => undefined),
  })
}

/**
 * A reverse sync pass — everything, one client (by id or by email: the login hook), or one
 * service — with every intent queued as a job under the intent's own idempotency key. The pass is
 * planned against what is already queued, so a change is queued once however often sync runs.
 */
export async function sync(ctx: EngineContext, options: SyncOptions = {}): Promise<SyncSummary> {
  const pass: SyncPassKind = options.serviceId
    ? 'service'
    : options.clientId || options.email
      ? 'client'
      : 'full'
  const source = options.source ?? (pass === 'full' ? 'sync' : `sync-${pass}`)
  const startedAt = Date.now()
  try {
    const summary = await withCallSource(source, () => syncPass(ctx, options, source))
    emit(ctx, { type: 'sync-done', pass, startedAt, durationMs: Date.now() - startedAt, summary })
    return summary
  } catch (error) {
    emit(ctx, { type: 'sync-failed', pass, startedAt, durationMs: Date.now() - startedAt, error })
    throw error
  }
}

async function syncPass(ctx: EngineContext, options: SyncOptions, source: string): Promise<SyncSummary> {
  const whmcs = options.whmcs ?? requireWhmcs(ctx)
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
    total = await countServices(ctx).catch(() => undefined)
  }
  let seenSoFar = 0
  const reverse = createReverseSync({
    client: whmcs,
    mappings: ctx.mappings,
    view: {
      ...wrapView(ctx.store.provisionedView('intended', observed), (n) => {
        seenSoFar += n
        options.onProgress?.(seenSoFar, total)
      }),
    },
    passwordKey: ctx.passwordKey,
    onDrift: () => undefined,
    // Due dates: kept on the service; a renewal is logged so an operator (or a hook) can act on it.
    recordDueDates: true,
    onEvent: async (event) => {
      try {
        if (!(await ctx.store.recordDueDate(event.serviceId, event.nextDueDate))) return
        summary.eventsByKind[event.kind] = (summary.eventsByKind[event.kind] ?? 0) + 1
        if (event.kind !== 'due-date-recorded')
          ctx.logger.info(event.kind === 'renewed' ? 'service renewed' : 'due date changed', {
            serviceId: event.serviceId,
            previousDueDate: event.previousDueDate ?? null,
            nextDueDate: event.nextDueDate,
          })
      } catch (error) {
        const f = toFailure(error, ctx.redactor)
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
        const out = await queueIntent(ctx, intent, observed, clients, source)
        if (out === 'stale') summary.stale++
        else if (out === 'created') summary.jobsCreated++
      } catch (error) {
        const f = toFailure(error, ctx.redactor)
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
  if (!options.email) summary.queueErrors.push(...(await syncDeposits(ctx, options)).errors)
  if (summary.jobsCreated > 0) wake(ctx)
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
          message: ctx.redactor.redactString(e.error.detail),
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
  ctx.logger.info('sync finished', { ...rest, errorCount: errors.length })
  for (const e of errors.slice(0, 20)) ctx.logger.warn('sync error', { ...e })
  return out
}

/** Services of the mapped products in WHMCS (one cheap call per product), for a progress bar. */
async function countServices(ctx: EngineContext): Promise<number> {
  let n = 0
  for (const p of ctx.config.products) {
    const r = await requireWhmcs(ctx).getClientsProducts({ pid: p.whmcsProductId, limitnum: 1 })
    n += Number(r.totalresults ?? 0)
  }
  return n
}

function clientDetails(
  ctx: EngineContext,
  clientId: string,
  cache: Map<string, Promise<Record<string, unknown>>>,
): Promise<Record<string, unknown>> {
  let p = cache.get(clientId)
  if (!p) {
    p = requireWhmcs(ctx)
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
        if (typeof c.countrycode === 'string' && /^[A-Z]{2}$/.test(c.countrycode)) out.country = c.countrycode
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
async function queueIntent(
  ctx: EngineContext,
  intent: SyncIntent,
  observed: Map<string, number>,
  clients: Map<string, Promise<Record<string, unknown>>>,
  source: string,
): Promise<'created' | 'collapsed' | 'stale'> {
  if (!LIFECYCLE.has(intent.kind)) throw new ValidationError(`Unknown intent kind ${intent.kind}`)
  const product = productFor(ctx, intent.productId)
  if (!product) throw new ValidationError(`Product ${intent.productId} is not mapped`)
  // The password is not added to the app's redactor (a first pass over 100 000 services would grow
  // it without bound): it is only sealed here, and core masks it in the invocation that sends it.
  // The reverse sync carries the customer in creates; the app's own lookup is the fallback.
  const client =
    intent.kind === 'create'
      ? (intent.customer ?? (await clientDetails(ctx, intent.clientId, clients)))
      : undefined
  const settings =
    intent.kind === 'create' || intent.kind === 'changePackage'
      ? settingsFor(product, intent.plan)
      : undefined
  return ctx.store.tx(async (trx) => {
    let q = trx.selectFrom('services').selectAll().where('service_id', '=', intent.serviceId)
    if (ctx.store.dialect === 'postgres') q = q.forUpdate()
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
      ? ctx.store.seal(intent.password, `service:${intent.serviceId}`)
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
      ...(intent.password ? { secretEnc: ctx.store.seal(intent.password, `job:${intent.key}`) } : {}),
    })
    observed.set(intent.serviceId, version)
    return out.created ? 'created' : 'collapsed'
  })
}

/**
 * Services whose settings on the server (what their last create or changePackage applied) differ
 * from what today's config gives their plan: a product's or a plan's settings were changed. With
 * `apply`, a changePackage is queued for each one that has none open. Without it, nothing changes.
 */
export async function reconcile(
  ctx: EngineContext,
  options: { apply?: boolean; serviceId?: string } = {},
): Promise<{ entries: ConfigDriftEntry[]; queued: number }> {
  const entries = await configDrift(ctx, options.serviceId)
  let queued = 0
  if (options.apply) {
    for (const e of entries) {
      if (e.pendingJob !== undefined) continue
      const job = await ctx.store.tx(async (trx) => {
        let q = trx.selectFrom('services').selectAll().where('service_id', '=', e.serviceId)
        if (ctx.store.dialect === 'postgres') q = q.forUpdate()
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
    if (queued > 0) wake(ctx)
  }
  return { entries, queued }
}

/** The services whose provisioned settings differ from today's config (see `reconcile`). */
export async function configDrift(ctx: EngineContext, serviceId?: string): Promise<ConfigDriftEntry[]> {
  const services = serviceId
    ? [await getService(ctx.store.db, serviceId)].filter((s): s is ServiceRecord => s !== undefined)
    : await listServices(ctx.store.db)
  const open = await listJobs(ctx.store.db, { status: ['queued', 'running', 'parked'], limit: 100_000 })
  const out: ConfigDriftEntry[] = []
  for (const s of services) {
    if (s.actual !== 'active' && s.actual !== 'suspended') continue
    if (!productFor(ctx, s.productId)) continue
    const want = resolveSettings(ctx, { operation: 'changePackage', payload: {} }, s)
    if (!want.ok) continue
    const expected = recordable(ctx, s.connector, want.settings)
    const recorded = s.confirmedSettings ?? recordable(ctx, s.connector, s.settings)
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
 * The drift report: a reverse-sync pass of WHMCS against what the connectors confirmed (not what is
 * merely queued), each entry with the service's queued and parked jobs; plus services whose work is
 * under way or parked without WHMCS drift. Without a WHMCS connection, the store's view alone.
 */
export async function drift(
  ctx: EngineContext,
  options: { clientId?: string; signal?: AbortSignal } = {},
): Promise<{
  complete: boolean
  entries: DriftEntry[]
  errors: SyncSummary['errors']
}> {
  const open = await listJobs(ctx.store.db, { status: ['queued', 'running', 'parked'], limit: 100_000 })
  const jobsOf = new Map<string, Job[]>()
  for (const j of open) jobsOf.set(j.serviceId, [...(jobsOf.get(j.serviceId) ?? []), j])
  const services = new Map((await listServices(ctx.store.db)).map((s) => [s.serviceId, s]))
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
  if (ctx.whmcs) {
    const reverse = reverseSync(ctx, 'confirmed', {
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
    if (mine.length === 0 && (ctx.whmcs || s.desired === s.actual)) continue
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
  for (const c of await configDrift(ctx)) {
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
