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
   * The custom field (by name, e.g. `Password`) that carries the password chosen at order time.
   * Without it the service password is used.
   */
  passwordField?: string
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
  reason: string
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
