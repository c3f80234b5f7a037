import { createHash, hash, timingSafeEqual } from 'node:crypto'
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
import type { WhmcsClientDetails } from '../protocol/schemas.ts'
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
  SyncCustomer,
  SyncError,
  SyncEvent,
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
  /** Receives each due-date event instead of collecting it in `events` (counted in `eventCount`). */
  onEvent?: (event: SyncEvent) => void | Promise<void>
  /**
   * Also report `due-date-recorded` for a provisioned service whose view has no `nextDueDate` yet (an
   * app that started keeping due dates after its services were made). Default false: a view that
   * keeps no due dates gets no events.
   */
  recordDueDates?: boolean
  /**
   * Read each client's details (GetClientsDetails, once per client per pass) into create intents'
   * `customer`. Default true; a failed read is a sync error for that service and no create is emitted.
   */
  customerDetails?: boolean
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
  /**
   * The login-time hook (Ticketz's first-login flow, done properly): a SaaS calls it when someone
   * signs in with an email and password it does not know yet. It runs a client pass for the email
   * (client or WHMCS 8 user email), takes the newest Active service of a mapped product, and checks the
   * typed password against that service's password field (or its service password when the mapping
   * names no field). `allowed` says whether the login may proceed; `report.intents` holds what to
   * queue (the create of a first login). Never throws; the typed password appears nowhere in the
   * answer, logs or errors.
   */
  checkLogin(
    login: { email: string; password: string },
    options?: { signal?: AbortSignal },
  ): Promise<LoginCheck>
  /** The intents, drift and due-date events for one service as WHMCS reports it (pure). */
  evaluate(
    service: WhmcsService,
    provisioned: ProvisionedService | undefined,
  ): { intents: SyncIntent[]; drift: DriftEntry[]; events: SyncEvent[] }
}

export type LoginCheckReason =
  | 'ok'
  | 'not-found'
  | 'unavailable'
  | 'no-active-service'
  | 'not-provisionable'
  | 'password-field-missing'
  | 'password-mismatch'
  | 'overdue'

export interface LoginCheck {
  allowed: boolean
  reason: LoginCheckReason
  /** Safe to log; never contains the password. */
  message: string
  clientId?: string
  serviceId?: string
  productId?: string
  /** The client pass behind the answer: queue its intents (a first login's create). */
  report: SyncReport
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
  /** The custom field the password came from, left out of the intent's `customFields`. */
  passwordFieldName: string | undefined
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
    const skip = this.passwordFieldName ?? m.passwordField
    for (const f of service.customfields) if (f.name !== skip) customFields[f.name] = f.value
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

/** The UTC calendar day of a date, `YYYY-MM-DD`. */
function utcDay(d: Date): string {
  return d.toISOString().slice(0, 10)
}

/** `YYYY-MM-DD` plus whole days, in UTC. */
function addDays(day: string, days: number): string {
  const d = new Date(`${day}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + days)
  return utcDay(d)
}

/**
 * The product's password custom field as Ticketz finds it: case-insensitively, an exact name first,
 * else the first field whose name starts with the configured one.
 */
function findPasswordField(
  service: WhmcsService,
  name: string,
): WhmcsService['customfields'][number] | undefined {
  const want = name.trim().toLowerCase()
  let byPrefix: WhmcsService['customfields'][number] | undefined
  for (const f of service.customfields) {
    const have = f.name.trim().toLowerCase()
    if (have === want) return f
    if (byPrefix === undefined && have.startsWith(want)) byPrefix = f
  }
  return byPrefix
}

/** Equal strings in time that does not depend on where they differ (digests of equal length). */
function samePassword(a: string, b: string): boolean {
  const x = createHash('sha256').update(a, 'utf8').digest()
  const y = createHash('sha256').update(b, 'utf8').digest()
  return timingSafeEqual(x, y) && a.length === b.length
}

/** GetClientsDetails as core's `ClientDetails` fields; empty values left out. */
function customerFrom(c: WhmcsClientDetails): SyncCustomer {
  const out: SyncCustomer = {
    id: canonicalId(c.id),
    email: c.email,
    firstName: c.firstname,
    lastName: c.lastname,
  }
  const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined)
  const company = text(c.companyname)
  if (company) out.company = company
  const phone = text(c.phonenumberformatted) ?? text(c.telephoneNumber) ?? text(c.phonenumber)
  if (phone) out.phone = phone
  for (const key of ['address1', 'address2', 'city', 'state', 'postcode'] as const) {
    const v = text(c[key])
    if (v) out[key] = v
  }
  const country = text(c.countrycode) ?? text(c.country)
  if (country && /^[A-Z]{2}$/.test(country)) out.country = country
  const currency = text(c.currency_code)
  if (currency && /^[A-Z]{3}$/.test(currency)) out.currency = currency
  return out
}

type PasswordLookup =
  | { ok: true; password: string; fieldName?: string }
  | { ok: false; problem: 'missing' | 'empty'; fieldName: string }

/** A report being filled: its start time and the pass's customer cache are dropped by `finish`. */
type Working = SyncReport & { started: number; customers: Map<string, Promise<SyncCustomer>> }

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

  /**
   * The password to provision with: the mapped field's value (never another password when it is
   * missing or empty), else the service password.
   */
  function passwordOf(service: WhmcsService, m: ProductMapping): PasswordLookup {
    if (!m.passwordField) return { ok: true, password: service.password }
    const field = findPasswordField(service, m.passwordField)
    if (!field) return { ok: false, problem: 'missing', fieldName: m.passwordField }
    if (field.value === '') return { ok: false, problem: 'empty', fieldName: field.name }
    return { ok: true, password: field.value, fieldName: field.name }
  }

  /** With an overdue policy: the last day of grace when it has passed, else undefined. */
  function overdueUntil(service: WhmcsService, m: ProductMapping): string | undefined {
    const grace = m.overdueGraceDays
    if (grace === undefined || service.nextduedate === null) return undefined
    const last = addDays(service.nextduedate, Math.max(0, Math.floor(grace)))
    return utcDay(now()) > last ? last : undefined
  }

  function dueDateEvents(
    service: WhmcsService,
    o: ProvisionedService | undefined,
    events: SyncEvent[],
  ): void {
    if (!o || o.state === 'terminated') return
    const next = service.nextduedate
    const previous = o.nextDueDate
    if (previous === undefined && !options.recordDueDates) return
    if (previous !== undefined && (previous ?? null) === next) return
    const serviceId = canonicalId(service.id)
    const kind: SyncEvent['kind'] =
      previous === undefined
        ? 'due-date-recorded'
        : previous !== null && next !== null && next > previous
          ? 'renewed'
          : 'due-date-changed'
    const message =
      kind === 'renewed'
        ? `Renewed in WHMCS: due date moved from ${previous} to ${next}`
        : kind === 'due-date-changed'
          ? `Due date changed in WHMCS from ${previous ?? 'none'} to ${next ?? 'none'}`
          : `Due date ${next ?? 'none'} recorded`
    const event: SyncEvent = {
      key: `whmcs:${serviceId}:${kind}:${hash('sha256', JSON.stringify([previous ?? null, next]), 'base64url').slice(0, 16)}`,
      kind,
      serviceId,
      clientId: canonicalId(service.clientid),
      productId: canonicalId(service.pid),
      nextDueDate: next,
      billingCycle: service.billingcycle,
      whmcsStatus: service.status,
      message,
    }
    if (previous !== undefined) event.previousDueDate = previous
    events.push(event)
  }

  function evaluate(
    service: WhmcsService,
    o: ProvisionedService | undefined,
  ): { intents: SyncIntent[]; drift: DriftEntry[]; events: SyncEvent[] } {
    const m = mappings.get(canonicalId(service.pid))
    const intents: SyncIntent[] = []
    const drift: DriftEntry[] = []
    const events: SyncEvent[] = []
    if (!m) return { intents, drift, events }
    const serviceId = canonicalId(service.id)
    const status = service.status
    const e = new Evaluation(service, o, m, serviceId, settingsOf.get(m) ?? {}, intents, drift)
    const present = o !== undefined && o.state !== 'terminated'
    switch (status) {
      case 'Active': {
        const overdue = overdueUntil(service, m)
        if (overdue !== undefined) {
          // The overdue policy: suspended after the grace period although WHMCS still says Active.
          e.drifted(
            'overdue-past-grace',
            `Active in WHMCS but overdue: due ${service.nextduedate}, grace ended ${overdue}${present ? '' : '; not provisioned'}`,
          )
          if (present && o.state === 'active')
            e.intent(
              'suspend',
              `Overdue since ${service.nextduedate} (grace of ${m.overdueGraceDays} days ended ${overdue})`,
              {},
              ['overdue', service.nextduedate],
            )
          break
        }
        const plan = planOf(service, m)
        const lookup = passwordOf(service, m)
        if (!lookup.ok) {
          const what = `the password field "${lookup.fieldName}" ${lookup.problem === 'missing' ? 'is missing' : 'is empty'}`
          if (!present)
            throw new ValidationError(
              `Service ${serviceId}: ${what}; not provisioned without the password the customer chose`,
              [
                {
                  path: `customfields.${lookup.fieldName}`,
                  message: lookup.problem === 'missing' ? 'is missing' : 'is empty',
                },
              ],
            )
          e.drifted(
            'password-field-missing',
            `${what[0]?.toUpperCase()}${what.slice(1)}; its password is not compared`,
          )
        } else e.passwordFieldName = lookup.fieldName
        const password = lookup.ok ? lookup.password : ''
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
          const extra: Partial<SyncIntent> = { nextDueDate: service.nextduedate }
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
    dueDateEvents(service, o, events)
    return { intents, drift, events }
  }

  function newReport(pass: SyncReport['pass']): Working {
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
      events: [],
      eventCount: 0,
      errors: [],
      alreadyQueued: 0,
      resumes: 0,
      unread: [],
      notEvaluated: [],
      started: performance.now(),
      customers: new Map(),
    }
  }

  function finish(report: Working): SyncReport {
    const { started, customers, ...rest } = report
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

  /** The client's details for create intents, read once per client per pass. */
  function customerOf(report: Working, clientId: string): Promise<SyncCustomer> {
    let p = report.customers.get(clientId)
    if (!p) {
      p = client.getClientsDetails({ clientid: clientId }).then((r) => customerFrom(r.client))
      // A failed read is not kept: the next service of the same client tries again.
      p.catch(() => report.customers.delete(clientId))
      report.customers.set(clientId, p)
    }
    return p
  }

  /** Evaluates a batch of services into the report; each failure stays with its service. */
  async function process(
    report: Working,
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
    // Evaluate the page first, then read the customers its creates need, a few clients at a time,
    // then emit in page order.
    const evaluated: ({ s: WhmcsService; id: string } & (
      | { ok: true; intents: SyncIntent[]; drift: DriftEntry[]; events: SyncEvent[] }
      | { ok: false; error: unknown }
    ))[] = []
    for (const s of fresh) {
      const id = canonicalId(s.id)
      try {
        evaluated.push({ s, id, ok: true, ...evaluate(s, known.get(id)) })
      } catch (error) {
        evaluated.push({ s, id, ok: false, error })
      }
    }
    const customers = new Map<string, SyncCustomer | { error: unknown }>()
    if (options.customerDetails !== false) {
      const wanted = new Set<string>()
      for (const e of evaluated)
        if (e.ok) for (const i of e.intents) if (i.kind === 'create') wanted.add(i.clientId)
      const queue = [...wanted]
      const worker = async () => {
        for (let clientId = queue.shift(); clientId !== undefined; clientId = queue.shift()) {
          try {
            customers.set(clientId, await customerOf(report, clientId))
          } catch (error) {
            customers.set(clientId, { error })
          }
        }
      }
      await Promise.all(Array.from({ length: Math.min(4, queue.length) }, worker))
    }
    for (const e of evaluated) {
      const { s, id } = e
      const context = { serviceId: id, clientId: canonicalId(s.clientid), productId: canonicalId(s.pid) }
      if (!e.ok) {
        report.notEvaluated?.push(id)
        report.errors.push({ ...context, stage: 'evaluate', error: toFailure(e.error) })
        continue
      }
      try {
        const { intents, drift, events } = e
        let unreadCustomer: unknown
        for (const i of intents) {
          if (i.kind !== 'create' || options.customerDetails === false) continue
          const c = customers.get(i.clientId)
          if (c === undefined || 'error' in c) unreadCustomer = c?.error ?? new Error('client not read')
          else i.customer = c
        }
        if (unreadCustomer !== undefined) {
          // No create without the customer: the next pass tries again.
          report.notEvaluated?.push(id)
          report.errors.push({ ...context, stage: 'read', error: toFailure(unreadCustomer) })
          continue
        }
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
        for (const ev of events) {
          report.eventCount = (report.eventCount ?? 0) + 1
          if (options.onEvent) await options.onEvent(ev)
          else report.events?.push(ev)
        }
      } catch (error) {
        report.notEvaluated?.push(id)
        report.errors.push({ ...context, stage: 'evaluate', error: toFailure(error) })
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
    report: Working,
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

  async function runClientPass(
    who: { clientId: string | number } | { email: string },
    abort: AbortSignal | undefined,
  ): Promise<{ report: Working; primary: WhmcsService | undefined }> {
    const report = newReport('client')
    const signal = abort ? { signal: abort } : {}
    const clientIds: string[] = []
    try {
      if ('clientId' in who) clientIds.push(canonicalId(who.clientId))
      else {
        const email = who.email.trim()
        try {
          const details = await client.getClientsDetails({ email }, signal)
          const id = canonicalId(details.client.id)
          clientIds.push(id)
          report.customers.set(id, Promise.resolve(customerFrom(details.client)))
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
        if (clientIds.length === 0) throw new NotFoundError(`No WHMCS client or user has the email ${email}`)
      }
    } catch (error) {
      report.complete = false
      report.errors.push({ stage: 'read', error: toFailure(error) })
      report.clientIds = clientIds
      return { report, primary: undefined }
    }
    report.clientIds = clientIds
    let best: WhmcsService | undefined
    let bestActive: WhmcsService | undefined
    const seen = new Set<string>()
    for (const clientId of clientIds) {
      await consume(report, { clientid: clientId }, seen, { clientId }, abort, (s) => {
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
    return { report, primary }
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
      return finish((await runClientPass(who, passOptions.signal)).report)
    },

    async checkLogin(login, passOptions = {}) {
      const email = login.email.trim()
      const { report, primary } = await runClientPass({ email }, passOptions.signal)
      const done = (allowed: boolean, reason: LoginCheckReason, message: string): LoginCheck => {
        const out: LoginCheck = { allowed, reason, message, report: finish(report) }
        if (report.clientIds?.[0] !== undefined) out.clientId = report.clientIds[0]
        if (primary) {
          out.serviceId = canonicalId(primary.id)
          out.productId = canonicalId(primary.pid)
          out.clientId = canonicalId(primary.clientid)
        }
        return out
      }
      if ((report.clientIds ?? []).length === 0) {
        const notFound = report.errors.some((e) => e.error.code === 'NOT_FOUND')
        return notFound
          ? done(false, 'not-found', 'No WHMCS client or user has this email')
          : done(false, 'unavailable', 'WHMCS could not be asked; try again later')
      }
      if (primary?.status !== 'Active')
        return done(
          false,
          report.complete ? 'no-active-service' : 'unavailable',
          report.complete
            ? 'The client has no Active service of a mapped product'
            : 'Not every service of the client could be read; try again later',
        )
      const m = mappings.get(canonicalId(primary.pid)) as ProductMapping
      const id = canonicalId(primary.id)
      const failed = report.errors.find((e) => e.serviceId === id)
      if (failed)
        return done(false, 'not-provisionable', `Service ${id} cannot be provisioned: ${failed.error.detail}`)
      const lookup = passwordOf(primary, m)
      if (!lookup.ok || lookup.password === '')
        return done(
          false,
          'password-field-missing',
          `Service ${id} has no password to check the login against`,
        )
      if (!samePassword(login.password, lookup.password))
        return done(false, 'password-mismatch', `The password does not match service ${id}'s`)
      const overdue = overdueUntil(primary, m)
      if (overdue !== undefined)
        return done(
          false,
          'overdue',
          `Service ${id} is overdue: due ${primary.nextduedate}, grace ended ${overdue}`,
        )
      return done(true, 'ok', `Service ${id} is Active and the password matches`)
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
        if (intent.nextDueDate !== undefined) next.nextDueDate = intent.nextDueDate
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
  /** Records a due-date event (a renewal) as done: the view keeps the new due date. */
  record(event: SyncEvent): void {
    const current = this.services.get(event.serviceId)
    if (current) this.services.set(event.serviceId, { ...current, nextDueDate: event.nextDueDate })
  }
}
