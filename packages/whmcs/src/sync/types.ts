import type { Failure } from '@panelkit/core'

/** One WHMCS product the provisioner serves, and how its services map to a connector. */
export interface ProductMapping {
  /** WHMCS product id (`pid`). Compared as a value: `5` and `"5"` are the same product. */
  productId: string | number
  /** The connector id that provisions it (`axigen-domain`, `proxmox-kvm`, …). */
  connector: string
  /** Product settings handed to the connector. */
  settings?: Record<string, unknown>
  /** The configurable option (by name, e.g. `Plan`) whose chosen value is the plan. */
  planOption?: string
  /** Option value → plan name. Without a map the value is the plan name, exactly. */
  planMap?: Record<string, string>
  /** The plan when the product has no plan option. */
  defaultPlan?: string
  /**
   * The custom field (by name, e.g. `Password`) that carries the password chosen at order time. It is
   * matched as Ticketz matches it: case-insensitively, an exact name first, else the first field whose
   * name starts with it (`Password` finds `password (first login)`). When the product has no such
   * field, or it is empty, the service is reported (a sync error for a create, a `password-field-missing`
   * drift line otherwise) — never provisioned with another password. Without `passwordField` the
   * service password is used.
   */
  passwordField?: string
  /**
   * Overdue policy, off by default: days after the due date (`nextduedate`) after which an Active
   * service is suspended even though WHMCS still says Active (Ticketz blocks after due date + grace).
   * `0` suspends the day after the due date. The next renewal (a later due date) unsuspends it.
   */
  overdueGraceDays?: number
}

export type ProvisionedState = 'active' | 'suspended' | 'terminated'

/** What the provisioner knows it has done for one service. */
export interface ProvisionedService {
  serviceId: string
  connector?: string
  state: ProvisionedState
  plan?: string
  /** `fingerprintPassword()` of the WHMCS password last applied; never the password itself. */
  passwordFingerprint?: string
  /**
   * `fingerprintPassword()` of the WHMCS *service* password last seen applied (from the create and
   * changePassword intents' `servicePasswordFingerprint`). When the view keeps it, a service password
   * changed in WHMCS (ModuleChangePw, the client area) yields changePassword even when the mapped
   * first-password field did not change. Optional: without it only the mapped password is compared.
   */
  servicePasswordFingerprint?: string
  /**
   * The due date (`YYYY-MM-DD`, WHMCS's `nextduedate`) last recorded; `null` for a service without one
   * (one-time, free). Keep it from create intents and `due-date` events: when WHMCS moves it, the pass
   * reports a `renewed` (later) or `due-date-changed` event. Without it no due-date events are made.
   */
  nextDueDate?: string | null
  /**
   * Anything that changes each time the app applies an intent (a counter, an update time). It makes
   * the next identical transition (suspend, unsuspend, suspend again) get a new idempotency key.
   */
  revision?: string | number
}

/** The app's view of what is already provisioned (its store). */
export interface ProvisionedView {
  get(serviceId: string): Promise<ProvisionedService | undefined> | ProvisionedService | undefined
  /** Batch lookup for a page of services; preferred over `get` when present. */
  getMany?(
    serviceIds: readonly string[],
  ): Promise<Map<string, ProvisionedService>> | Map<string, ProvisionedService>
  /** Everything provisioned, for "on the server, unknown to WHMCS" drift after a complete full pass. */
  list?(): AsyncIterable<ProvisionedService> | Iterable<ProvisionedService>
}

export type IntentKind = 'create' | 'suspend' | 'unsuspend' | 'terminate' | 'changePackage' | 'changePassword'

/** One lifecycle operation the app should run for a service. */
export interface SyncIntent {
  /** Stable for the same service, transition and observed state: a repeated pass repeats the key. */
  key: string
  kind: IntentKind
  serviceId: string
  clientId: string
  productId: string
  connector: string
  settings: Record<string, unknown>
  /** WHMCS's status that asked for this. */
  whmcsStatus: string
  plan?: string
  previousPlan?: string
  /**
   * The password to set (create, changePassword). A secret: the key name `password` is masked by
   * every panelkit redactor; store intents encrypted or re-read the service when executing.
   */
  password?: string
  passwordFingerprint?: string
  /** Fingerprint of the WHMCS service password at this point; keep it in the view (see ProvisionedService). */
  servicePasswordFingerprint?: string
  username?: string
  domain?: string
  nextDueDate?: string | null
  billingCycle?: string
  /** Configurable options by name → chosen value. */
  configOptions: Record<string, string>
  /** Custom fields by name → value, with the password field left out. */
  customFields: Record<string, string>
  /**
   * Create intents: the WHMCS client (GetClientsDetails, read once per client per pass), shaped as
   * `@panelkit/core`'s `ClientDetails`, so the app needs no second lookup.
   */
  customer?: SyncCustomer
  reason: string
}

/** The customer identity a create carries: core's `ClientDetails` fields, as WHMCS names them there. */
export interface SyncCustomer {
  id: string
  email: string
  firstName: string
  lastName: string
  company?: string
  phone?: string
  address1?: string
  address2?: string
  city?: string
  state?: string
  postcode?: string
  /** ISO 3166-1 alpha-2. */
  country?: string
  /** ISO 4217. */
  currency?: string
}

export type SyncEventKind = 'renewed' | 'due-date-changed' | 'due-date-recorded'

/**
 * Something WHMCS did that is not a lifecycle operation but that the app may act on: a renewal (the
 * due date moved later: a renewal invoice was paid), a due date moved otherwise (an admin edit), or a
 * due date seen for a service the view has none for. Apply it by storing `nextDueDate` in the view.
 */
export interface SyncEvent {
  /** Stable for the same service and the same change. */
  key: string
  kind: SyncEventKind
  serviceId: string
  clientId: string
  productId: string
  previousDueDate?: string | null
  nextDueDate: string | null
  billingCycle: string
  whmcsStatus: string
  message: string
}

export type DriftKind =
  | 'missing-on-server'
  | 'active-in-whmcs-suspended-on-server'
  | 'suspended-in-whmcs-active-on-server'
  | 'terminated-in-whmcs-present-on-server'
  | 'terminated-on-server-active-in-whmcs'
  | 'plan-differs'
  | 'password-differs'
  | 'provisioned-while-pending'
  | 'provisioned-while-fraud'
  | 'unknown-to-whmcs'
  | 'password-field-missing'
  | 'overdue-past-grace'

export interface DriftEntry {
  kind: DriftKind
  serviceId: string
  whmcsStatus?: string
  serverState?: ProvisionedState
  message: string
}

export interface SyncError {
  /** The service, when the failure concerned one. */
  serviceId?: string
  clientId?: string
  productId?: string
  stage: 'read' | 'evaluate' | 'view'
  error: Failure
}

/**
 * A stretch of a list a pass could not read, even after resuming from the failed offset. WHMCS never
 * sent those rows, so their service ids are unknown: the range (product or client, offset, count) is
 * what identifies them.
 */
export interface UnreadRange {
  productId?: string
  clientId?: string
  /** `limitstart` of the first row not read. */
  offset: number
  /** Rows not read; null when the failing page was the first, so WHMCS never told the total. */
  count: number | null
  error: Failure
}

export interface SyncReport {
  pass: 'full' | 'client' | 'service'
  /** Every page of every mapped product was read. Only then is "unknown to WHMCS" reported. */
  complete: boolean
  startedAt: string
  durationMs: number
  servicesSeen: number
  /** The intents found (empty when `onIntent` received them). */
  intents: SyncIntent[]
  /** The drift found (empty when `onDrift` received it). */
  drift: DriftEntry[]
  /** Due-date events (empty when `onEvent` received them). */
  events?: SyncEvent[]
  eventCount?: number
  intentCount: number
  driftCount: number
  errors: SyncError[]
  /** Intents left out because `isQueued` said their key is already waiting. */
  alreadyQueued: number
  /** Page reads that failed and were resumed from the failed offset within this pass. */
  resumes?: number
  /**
   * Parts of lists that could not be read after every resume (the pass skipped past them and went on).
   * Their services were not evaluated. Empty when every page was read.
   */
  unread?: UnreadRange[]
  /**
   * Services that were read but not evaluated (the view lookup failed for their page, or their own
   * evaluation failed; see `errors`), by id. With `unread`, exactly what this pass did not evaluate.
   */
  notEvaluated?: string[]
  /** Client pass: the client accounts looked at. */
  clientIds?: string[]
  /**
   * Client pass: the service a login should use — the newest Active service of a mapped product,
   * else the newest of any status (never simply the first one WHMCS lists).
   */
  primaryService?: { serviceId: string; productId: string; status: string }
}
