import { createHash, hash } from 'node:crypto'
import {
  hasErrorCode,
  isPanelkitError,
  NotFoundError,
  ProtocolError,
  toFailure,
  ValidationError,
} from '@panelkit/core'
import type { WhmcsClient } from '../client.ts'
import type { Page } from '../pagination.ts'
import {
  GetClientsProductsRowsSchema,
  SyncServiceSchema,
  type WhmcsSyncService as WhmcsService,
} from '../protocol/schemas.ts'
import type {
  DriftEntry,
  IntentKind,
  ProductMapping,
  ProvisionedService,
  ProvisionedView,
  SyncError,
  SyncIntent,
  SyncReport,
  UnreadRange,
} from './types.ts'

export interface ReverseSyncOptions {
  client: WhmcsClient
  mappings: readonly ProductMapping[]
  view: ProvisionedView
  /**
   * Key for password fingerprints (HMAC-SHA256). Set it to a secret of the app so a fingerprint in
   * the store cannot be tested against guesses.
   */
  passwordKey?: string
  /** Says whether an intent key is already queued in the app; such intents are not emitted again. */
  isQueued?: (key: string) => boolean | Promise<boolean>
  /** Rows per page for the full pass. */
  pageSize?: number
  /**
   * Receives each intent as it is found instead of collecting it in the report (the report still
   * counts them in `intentCount`), so a pass over 100 000 services keeps nothing per service.
   */
  onIntent?: (intent: SyncIntent) => void | Promise<void>
  /** Receives each drift entry instead of collecting it (counted in `driftCount`). */
  onDrift?: (entry: DriftEntry) => void
  /**
   * When a page still fails after the client's own retries, the pass resumes from that page's offset
   * this many times (with a growing pause) before it skips the page, records it in `unread` and goes
   * on with the next. Progress resets the count. Default 3; 0 skips at once.
   */
  resumeAttempts?: number
  /** The pause before the first resume; doubled for each further one. Default 1000 ms. */
  resumeDelayMs?: number
  /** Look up users (WHMCS 8 logins) when an email is not a client email. Default true. */
  resolveUserEmails?: boolean
  now?: () => Date
}

export interface ReverseSync {
  /** Every service of every mapped product, every page. Never throws. */
  fullPass(options?: { signal?: AbortSignal }): Promise<SyncReport>
  /** One client's services (by client id or by email: the login case). Never throws. */
  clientPass(
    lookup: { clientId: string | number } | { email: string },
    options?: { signal?: AbortSignal },
  ): Promise<SyncReport>
  /** One service. Never throws. */
  servicePass(serviceId: string | number, options?: { signal?: AbortSignal }): Promise<SyncReport>
  /** The intents and drift for one service as WHMCS reports it (pure apart from the view lookup). */
  evaluate(
    service: WhmcsService,
    provisioned: ProvisionedService | undefined,
  ): { intents: SyncIntent[]; drift: DriftEntry[] }
}

/** HMAC-SHA256 of a password, base64url; what the app stores to notice a changed password. */
export function fingerprintPassword(password: string, key = 'panelkit-whmcs'): string {
  return fingerprinter(key)(password)
}

/**
 * HMAC-SHA256 (RFC 2104) with the padded keys computed once and each hash done by the one-shot
 * `crypto.hash`, which skips making a Hash object: over 100 000 services per pass, several times
 * cheaper than a new Hmac (or copies of prepared Hash objects) per password. Same output as
 * `createHmac('sha256', key)`, so fingerprints already stored stay valid.
 */
function fingerprinter(key: string): (password: string) => string {
  const cached = fingerprinters.get(key)
  if (cached) return cached
  let k = Buffer.from(key, 'utf8')
  if (k.length > 64) k = createHash('sha256').update(k).digest()
  const block = Buffer.alloc(64)
  k.copy(block)
  const ipad = block.map((b) => b ^ 0x36)
  const opad = block.map((b) => b ^ 0x5c)
  const fn = (password: string) => {
    const inner = hash('sha256', Buffer.concat([ipad, Buffer.from(password, 'utf8')]), 'buffer')
    return hash('sha256', Buffer.concat([opad, inner]), 'base64url').slice(0, 32)
  }
  if (fingerprinters.size > 16) fingerprinters.clear()
  fingerprinters.set(key, fn)
  return fn
}
const fingerprinters = new Map<string, (password: string) => string>()

/** Compares WHMCS ids as values: `"7"`, `7` and `"07"` are the same id. */
export function sameId(a: string | number, b: string | number): boolean {
  const x = String(a).trim()
  const y = String(b).trim()
  if (/^\d+$/.test(x) && /^\d+$/.test(y)) return BigInt(x) === BigInt(y)
  return x === y
}

const PLAIN_ID = /^[1-9][0-9]*$/

function canonicalId(id: string | number): string {
  if (typeof id === 'number') return String(id)
  // The common case (WHMCS's own "123") needs no work; "0123" and " 123" are brought to it.
  if (PLAIN_ID.test(id)) return id
  const s = id.trim()
  return /^\d+$/.test(s) ? BigInt(s).toString() : s
}

function intentKey(kind: IntentKind, serviceId: string, parts: readonly unknown[]): string {
  const digest = hash('sha256', JSON.stringify([kind, serviceId, ...parts]), 'base64url').slice(0, 16)
  return `whmcs:${serviceId}:${kind}:${digest}`
}

/**
 * The intents and drift of one service being evaluated. A class rather than closures: a pass makes one
 * per service, and per-call closures cost more than the work they do.
 */
class Evaluation {
  readonly service: WhmcsService
  readonly o: ProvisionedService | undefined
  readonly m: ProductMapping
  readonly serviceId: string
  readonly settings: Record<string, unknown>
  readonly intents: SyncIntent[]
  readonly drift: DriftEntry[]
  constructor(
    service: WhmcsService,
    o: ProvisionedService | undefined,
    m: ProductMapping,
    serviceId: string,
    settings: Record<string, unknown>,
    intents: SyncIntent[],
    drift: DriftEntry[],
  ) {
    this.service = service
    this.o = o
    this.m = m
    this.serviceId = serviceId
    this.settings = settings
    this.intents = intents
    this.drift = drift
  }

  drifted(kind: DriftEntry['kind'], message: string): void {
    const d: DriftEntry = { kind, serviceId: this.serviceId, whmcsStatus: this.service.status, message }
    if (this.o) d.serverState = this.o.state
    this.drift.push(d)
  }

  intent(kind: IntentKind, reason: string, extra: Partial<SyncIntent>, keyParts: readonly unknown[]): void {
    const { service, m } = this
    const configOptions: Record<string, string> = {}
    for (const c of service.configoptions) configOptions[c.option] = c.value
    const customFields: Record<string, string> = {}
    for (const f of service.customfields) if (f.name !== m.passwordField) customFields[f.name] = f.value
    const parts = [...keyParts, this.o?.state ?? 'none', this.o?.revision ?? '']
    this.intents.push({
      serviceId: this.serviceId,
      clientId: canonicalId(service.clientid),
      productId: canonicalId(service.pid),
      connector: m.connector,
      settings: this.settings,
      whmcsStatus: service.status,
      username: service.username,
      domain: service.domain,
      nextDueDate: service.nextduedate,
      billingCycle: service.billingcycle,
      configOptions,
      customFields,
      ...extra,
      kind,
      reason,
      key: intentKey(kind, this.serviceId, parts),
    })
  }
}

/** Newest first: by id, which grows with every order (registration dates can be edited). */
function newer(a: WhmcsService, b: WhmcsService): boolean {
  const x = BigInt(/^\d+$/.test(a.id) ? a.id : '0')
  const y = BigInt(/^\d+$/.test(b.id) ? b.id : '0')
  return x > y
}

export function createReverseSync(options: ReverseSyncOptions): ReverseSync {
  const { client, view } = options
  const mappings = new Map<string, ProductMapping>()
  const settingsOf = new Map<ProductMapping, Record<string, unknown>>()
  for (const m of options.mappings) {
    // One frozen copy per product, shared by its intents (100 000 copies would be waste).
    settingsOf.set(m, Object.freeze({ ...m.settings }))
    const id = canonicalId(m.productId)
    if (mappings.has(id))
      throw new ValidationError(`Product ${id} is mapped twice`, [
        { path: 'mappings', message: `duplicate product ${id}` },
      ])
    mappings.set(id, m)
  }
  const passwordKey = options.passwordKey ?? 'panelkit-whmcs'
  const now = options.now ?? (() => new Date())

  function planOf(service: WhmcsService, m: ProductMapping): string | undefined {
    if (!m.planOption) return m.defaultPlan
    const option = service.configoptions.find((o) => o.option === m.planOption)
    if (!option || option.value === '') {
      if (m.defaultPlan !== undefined) return m.defaultPlan
      throw new ValidationError(
        `Service ${service.id}: configurable option "${m.planOption}" is missing or empty`,
        [{ path: `configoptions.${m.planOption}`, message: 'is missing' }],
      )
    }
    if (!m.planMap) return option.value
    const mapped = m.planMap[option.value]
    if (mapped === undefined)
      throw new ValidationError(
        `Service ${service.id}: plan "${option.value}" of option "${m.planOption}" has no mapping`,
        [{ path: `configoptions.${m.planOption}`, message: `no mapping for ${option.value}` }],
      )
    return mapped
  }

  function passwordOf(service: WhmcsService, m: ProductMapping): string {
    if (m.passwordField) {
      const field = service.customfields.find((f) => f.name === m.passwordField)
      if (field && field.value !== '') return field.value
    }
    return service.password
  }

  function evaluate(
    service: WhmcsService,
    o: ProvisionedService | undefined,
  ): { intents: SyncIntent[]; drift: DriftEntry[] } {
    const m = mappings.get(canonicalId(service.pid))
    const intents: SyncIntent[] = []
    const drift: DriftEntry[] = []
    if (!m) return { intents, drift }
    const serviceId = canonicalId(service.id)
    const status = service.status
    const e = new Evaluation(service, o, m, serviceId, settingsOf.get(m) ?? {}, intents, drift)
    const present = o !== undefined && o.state !== 'terminated'
    switch (status) {
      case 'Active': {
        const plan = planOf(service, m)
        const password = passwordOf(service, m)
        const fp = password === '' ? undefined : fingerprintPassword(password, passwordKey)
        // The service password itself, tracked apart from the mapped first-password field: a client or
        // admin changing it in WHMCS (ModuleChangePw, the client area) leaves that field as it was.
        const servicePassword = service.password
        const serviceFp =
          servicePassword === ''
            ? undefined
            : servicePassword === password
              ? fp
              : fingerprintPassword(servicePassword, passwordKey)
        if (!present) {
          e.drifted(
            o ? 'terminated-on-server-active-in-whmcs' : 'missing-on-server',
            o ? 'Active in WHMCS, terminated on the server' : 'Active in WHMCS, not provisioned',
          )
          const extra: Partial<SyncIntent> = {}
          if (plan !== undefined) extra.plan = plan
          if (password !== '') extra.password = password
          if (fp !== undefined) extra.passwordFingerprint = fp
          if (serviceFp !== undefined) extra.servicePasswordFingerprint = serviceFp
          e.intent('create', 'Active in WHMCS and not provisioned', extra, [plan ?? '', fp ?? ''])
          break
        }
        if (o.state === 'suspended') {
          e.drifted('active-in-whmcs-suspended-on-server', 'Active in WHMCS, suspended on the server')
          e.intent('unsuspend', 'Active in WHMCS, suspended on the server', {}, [])
        }
        if (plan !== undefined && o.plan !== undefined && plan !== o.plan) {
          e.drifted('plan-differs', `Plan ${plan} in WHMCS, ${o.plan} on the server`)
          e.intent(
            'changePackage',
            `Plan changed from ${o.plan} to ${plan}`,
            { plan, previousPlan: o.plan },
            [plan],
          )
        }
        if (fp !== undefined && o.passwordFingerprint !== undefined && fp !== o.passwordFingerprint) {
          e.drifted('password-differs', 'The password in WHMCS changed since it was last applied')
          const extra: Partial<SyncIntent> = { password, passwordFingerprint: fp }
          if (serviceFp !== undefined) extra.servicePasswordFingerprint = serviceFp
          e.intent('changePassword', 'Password changed in WHMCS', extra, [fp])
        } else if (
          serviceFp !== undefined &&
          o.servicePasswordFingerprint !== undefined &&
          serviceFp !== o.servicePasswordFingerprint
        ) {
          e.drifted('password-differs', 'The service password in WHMCS changed since it was last applied')
          // passwordFingerprint stays that of the mapped field, so applying this does not make the
          // next pass "change back" to the first password.
          const extra: Partial<SyncIntent> = {
            password: servicePassword,
            servicePasswordFingerprint: serviceFp,
          }
          if (o.passwordFingerprint !== undefined) extra.passwordFingerprint = o.passwordFingerprint
          e.intent('changePassword', 'Service password changed in WHMCS', extra, ['service', serviceFp])
        }
        break
      }
      case 'Suspended':
        if (o?.state === 'active') {
          e.drifted('suspended-in-whmcs-active-on-server', 'Suspended in WHMCS, active on the server')
          e.intent(
            'suspend',
            `Suspended in WHMCS${service.suspensionreason ? ` (${service.suspensionreason})` : ''}`,
            {},
            [],
          )
        }
        break
      case 'Terminated':
      case 'Cancelled':
        if (present) {
          e.drifted(
            'terminated-in-whmcs-present-on-server',
            `${status} in WHMCS, still ${o.state} on the server`,
          )
          e.intent('terminate', `${status} in WHMCS`, {}, [])
        }
        break
      case 'Pending':
      case 'Fraud':
        // Nothing is provisioned before the order is accepted or paid.
        if (present)
          e.drifted(
            status === 'Fraud' ? 'provisioned-while-fraud' : 'provisioned-while-pending',
            `${status} in WHMCS, yet ${o.state} on the server`,
          )
        break
      case 'Completed':
        // A finished one-time service: left as it is.
        break
      default:
        throw new ValidationError(`Service ${serviceId}: unknown WHMCS status "${status}"`, [
          { path: 'status', message: `unknown status ${status}` },
        ])
    }
    return { intents, drift }
  }

  function newReport(pass: SyncReport['pass']): SyncReport & { started: number } {
    return {
      pass,
      complete: true,
      startedAt: now().toISOString(),
      durationMs: 0,
      servicesSeen: 0,
      intents: [],
      drift: [],
      intentCount: 0,
      driftCount: 0,
      errors: [],
      alreadyQueued: 0,
      resumes: 0,
      unread: [],
      notEvaluated: [],
      started: performance.now(),
    }
  }

  function finish(report: SyncReport & { started: number }): SyncReport {
    const { started, ...rest } = report
    rest.durationMs = performance.now() - started
    return rest
  }

  async function lookup(ids: string[]): Promise<Map<string, ProvisionedService>> {
    if (view.getMany) return await view.getMany(ids)
    const out = new Map<string, ProvisionedService>()
    for (const id of ids) {
      const p = await view.get(id)
      if (p) out.set(id, p)
    }
    return out
  }

  /** Evaluates a batch of services into the report; each failure stays with its service. */
  async function process(
    report: SyncReport,
    services: readonly WhmcsService[],
    seen: Set<string> | undefined,
  ): Promise<void> {
    const mapped = services.filter((s) => mappings.has(canonicalId(s.pid)))
    const fresh = seen ? mapped.filter((s) => !seen.has(canonicalId(s.id))) : mapped
    for (const s of fresh) seen?.add(canonicalId(s.id))
    report.servicesSeen += fresh.length
    let known: Map<string, ProvisionedService>
    try {
      known = await lookup(fresh.map((s) => canonicalId(s.id)))
    } catch (error) {
      report.complete = false
      report.errors.push({ stage: 'view', error: toFailure(error) })
      for (const s of fresh) report.notEvaluated?.push(canonicalId(s.id))
      return
    }
    for (const s of fresh) {
      const id = canonicalId(s.id)
      try {
        const { intents, drift } = evaluate(s, known.get(id))
        for (const i of intents) {
          if (options.isQueued && (await options.isQueued(i.key))) report.alreadyQueued++
          else {
            report.intentCount++
            if (options.onIntent) await options.onIntent(i)
            else report.intents.push(i)
          }
        }
        for (const d of drift) {
          report.driftCount++
          if (options.onDrift) options.onDrift(d)
          else report.drift.push(d)
        }
      } catch (error) {
        report.notEvaluated?.push(id)
        report.errors.push({
          serviceId: id,
          clientId: canonicalId(s.clientid),
          productId: canonicalId(s.pid),
          stage: 'evaluate',
          error: toFailure(error),
        })
      }
    }
  }

  const resumeAttempts = Math.max(0, options.resumeAttempts ?? 3)
  const resumeDelayMs = Math.max(0, options.resumeDelayMs ?? 1000)

  function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve()
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  /** The rows that pass `SyncServiceSchema`; the others go to `errors` and `notEvaluated`. */
  function validRows(
    report: SyncReport,
    rows: readonly unknown[],
    context: Partial<SyncError>,
    seen: Set<string>,
  ): WhmcsService[] {
    const out: WhmcsService[] = []
    for (const row of rows) {
      const parsed = SyncServiceSchema.safeParse(row)
      if (parsed.success) {
        out.push(parsed.data)
        continue
      }
      const raw = row !== null && typeof row === 'object' ? (row as Record<string, unknown>).id : undefined
      const id = typeof raw === 'string' || typeof raw === 'number' ? canonicalId(raw) : undefined
      const issues = parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .join('; ')
      const error = new ProtocolError(
        `WHMCS GetClientsProducts: service ${id ?? '(no id)'} is malformed (${issues})`,
        { cause: parsed.error },
      )
      const entry: SyncError = { ...context, stage: 'read', error: toFailure(error) }
      if (id !== undefined) {
        // Seen (so it is never "unknown to WHMCS"), but not evaluated.
        entry.serviceId = id
        seen.add(id)
        report.notEvaluated?.push(id)
      } else report.complete = false
      report.errors.push(entry)
    }
    return out
  }

  /**
   * Reads every page of one list (a product's or a client's services) into the report. A page that
   * still fails after the client's retries is read again from its own offset (pages before it are
   * not re-read), up to `resumeAttempts` times; then it is skipped and recorded in `unread`, and the
   * pass goes on with the next page. Credential refusals and aborts end the list at once: every
   * further call would fail the same way.
   */
  async function consume(
    report: SyncReport,
    params: { pid: string } | { clientid: string },
    seen: Set<string>,
    context: Partial<SyncError>,
    signal: AbortSignal | undefined,
    onService?: (s: WhmcsService) => void,
  ): Promise<void> {
    const pageSize = options.pageSize ?? client.pageSize ?? 250
    let offset = 0
    let total: number | undefined
    let failures = 0
    const unread = (count: number | null, error: unknown) => {
      const range: UnreadRange = { offset, count, error: toFailure(error) }
      if (context.productId !== undefined) range.productId = context.productId
      if (context.clientId !== undefined) range.clientId = context.clientId
      report.unread?.push(range)
    }
    for (;;) {
      try {
        // Rows are validated one by one: a malformed service is reported with its id and the rest
        // of its page is still evaluated.
        const pages: AsyncGenerator<Page<unknown>> = client.pages<unknown>(
          'GetClientsProducts',
          { ...params },
          { key: 'products', schema: GetClientsProductsRowsSchema },
          { pageSize, startAt: offset, ...(signal ? { signal } : {}) },
        )
        for await (const page of pages) {
          const services = validRows(report, page.items, context, seen)
          if (onService) for (const s of services) onService(s)
          await process(report, services, seen)
          total = page.totalresults
          offset = page.startnumber + page.numreturned
          failures = 0
        }
        return
      } catch (error) {
        const final =
          signal?.aborted === true ||
          (isPanelkitError(error) && (error.kind === 'AUTH' || error.kind === 'ABORTED'))
        const rest = total === undefined ? null : Math.max(0, total - offset)
        if (final) {
          report.complete = false
          report.errors.push({ ...context, stage: 'read', error: toFailure(error) })
          unread(rest, error)
          return
        }
        const retryable = isPanelkitError(error) ? error.retryable : true
        if (retryable && failures < resumeAttempts) {
          failures++
          report.resumes = (report.resumes ?? 0) + 1
          await pause(resumeDelayMs * 2 ** (failures - 1), signal)
          continue
        }
        report.complete = false
        report.errors.push({ ...context, stage: 'read', error: toFailure(error) })
        if (total === undefined || offset + pageSize >= total) {
          // The first page (total unknown) or the last one: nothing after it to go on with.
          unread(rest === null ? null : Math.min(rest, pageSize), error)
          return
        }
        unread(pageSize, error)
        offset += pageSize
        failures = 0
      }
    }
  }

  return {
    evaluate,

    async fullPass(passOptions = {}) {
      const report = newReport('full')
      const seen = new Set<string>()
      for (const [productId] of mappings) {
        await consume(report, { pid: productId }, seen, { productId }, passOptions.signal)
      }
      if (report.complete && view.list) {
        try {
          for await (const p of view.list()) {
            const id = canonicalId(p.serviceId)
            if (p.state === 'terminated' || seen.has(id)) continue
            const entry: DriftEntry = {
              kind: 'unknown-to-whmcs',
              serviceId: id,
              serverState: p.state,
              message: `${p.state === 'active' ? 'Active' : 'Suspended'} on the server, unknown to WHMCS (no service of a mapped product)`,
            }
            report.driftCount++
            if (options.onDrift) options.onDrift(entry)
            else report.drift.push(entry)
          }
        } catch (error) {
          report.errors.push({ stage: 'view', error: toFailure(error) })
        }
      }
      return finish(report)
    },

    async clientPass(who, passOptions = {}) {
      const report = newReport('client')
      const signal = passOptions.signal ? { signal: passOptions.signal } : {}
      const clientIds: string[] = []
      try {
        if ('clientId' in who) clientIds.push(canonicalId(who.clientId))
        else {
          const email = who.email.trim()
          try {
            const details = await client.getClientsDetails({ email }, signal)
            clientIds.push(canonicalId(details.client.id))
          } catch (error) {
            if (!hasErrorCode(error, 'NOT_FOUND') || options.resolveUserEmails === false) throw error
          }
          if (options.resolveUserEmails !== false) {
            // In WHMCS 8+ the login (a user) can have an email no client account has, and can reach
            // several client accounts.
            try {
              for await (const user of client.iterateUsers({ search: email }, signal)) {
                if (user.email.toLowerCase() !== email.toLowerCase()) continue
                for (const c of user.clients) {
                  const id = canonicalId(c.id)
                  if (!clientIds.includes(id)) clientIds.push(id)
                }
              }
            } catch (error) {
              // Without GetUsers in the API role the client email still works.
              if (clientIds.length === 0) throw error
              report.errors.push({ stage: 'read', error: toFailure(error) })
            }
          }
          if (clientIds.length === 0)
            throw new NotFoundError(`No WHMCS client or user has the email ${email}`)
        }
      } catch (error) {
        report.complete = false
        report.errors.push({ stage: 'read', error: toFailure(error) })
        report.clientIds = clientIds
        return finish(report)
      }
      report.clientIds = clientIds
      let best: WhmcsService | undefined
      let bestActive: WhmcsService | undefined
      const seen = new Set<string>()
      for (const clientId of clientIds) {
        await consume(report, { clientid: clientId }, seen, { clientId }, passOptions.signal, (s) => {
          if (!mappings.has(canonicalId(s.pid))) return
          if (!best || newer(s, best)) best = s
          if (s.status === 'Active' && (!bestActive || newer(s, bestActive))) bestActive = s
        })
      }
      const primary = bestActive ?? best
      if (primary)
        report.primaryService = {
          serviceId: canonicalId(primary.id),
          productId: canonicalId(primary.pid),
          status: primary.status,
        }
      return finish(report)
    },

    async servicePass(serviceId, passOptions = {}) {
      const report = newReport('service')
      try {
        const r = await client.getClientsProducts(
          { serviceid: serviceId },
          passOptions.signal ? { signal: passOptions.signal } : {},
        )
        const matching = r.products.filter((s) => sameId(s.id, serviceId))
        if (matching.length === 0) throw new NotFoundError(`WHMCS has no service ${serviceId}`)
        await process(report, matching, undefined)
      } catch (error) {
        report.complete = false
        report.errors.push({ serviceId: canonicalId(serviceId), stage: 'read', error: toFailure(error) })
      }
      return finish(report)
    },
  }
}

/** A provisioned view over a Map, for tests, demos and benchmarks. */
export class MemoryProvisionedView implements ProvisionedView {
  readonly services = new Map<string, ProvisionedService>()
  get(serviceId: string): ProvisionedService | undefined {
    return this.services.get(serviceId)
  }
  getMany(serviceIds: readonly string[]): Map<string, ProvisionedService> {
    const out = new Map<string, ProvisionedService>()
    for (const id of serviceIds) {
      const p = this.services.get(id)
      if (p) out.set(id, p)
    }
    return out
  }
  list(): Iterable<ProvisionedService> {
    return this.services.values()
  }
  /** Records an intent as done, the way an app's engine would after running it. */
  apply(intent: SyncIntent): void {
    const current = this.services.get(intent.serviceId)
    const revision = Number(current?.revision ?? 0) + 1
    const next: ProvisionedService = {
      ...current,
      serviceId: intent.serviceId,
      connector: intent.connector,
      state: current?.state ?? 'active',
      revision,
    }
    switch (intent.kind) {
      case 'create':
        next.state = 'active'
        if (intent.plan !== undefined) next.plan = intent.plan
        if (intent.passwordFingerprint !== undefined) next.passwordFingerprint = intent.passwordFingerprint
        if (intent.servicePasswordFingerprint !== undefined)
          next.servicePasswordFingerprint = intent.servicePasswordFingerprint
        break
      case 'suspend':
        next.state = 'suspended'
        break
      case 'unsuspend':
        next.state = 'active'
        break
      case 'terminate':
        next.state = 'terminated'
        break
      case 'changePackage':
        if (intent.plan !== undefined) next.plan = intent.plan
        break
      case 'changePassword':
        if (intent.passwordFingerprint !== undefined) next.passwordFingerprint = intent.passwordFingerprint
        if (intent.servicePasswordFingerprint !== undefined)
          next.servicePasswordFingerprint = intent.servicePasswordFingerprint
        break
    }
    this.services.set(intent.serviceId, next)
  }
}
