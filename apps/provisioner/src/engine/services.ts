import type { ProductConfig } from '../config.ts'
import type { ServicesTable } from '../store/schema.ts'
import type { Db } from '../store/store.ts'

/** The lifecycle state of a service: what is intended (queued) or what a connector confirmed. */
export type ServiceState = 'none' | 'active' | 'suspended' | 'terminated'

/**
 * A service as the store knows it: what is queued for it (`desired`, `plan`), what the connector
 * confirmed (`actual`, `confirmedPlan`), where it lives. The password is never part of it: it is
 * sealed in the row and opened only by the job that sends it.
 */
export interface ServiceRecord {
  serviceId: string
  clientId: string
  productId: string
  connector: string
  serverGroup: string
  desired: ServiceState
  /** Bumped whenever an intent is queued: the reverse sync's `revision`. */
  version: number
  actual: ServiceState
  plan: string | null
  confirmedPlan: string | null
  /** The settings last queued (kept for services whose product left the config). */
  settings: Record<string, unknown>
  /**
   * The settings the service was provisioned with (its last create or changePackage that succeeded),
   * secret settings as fingerprints; null for services provisioned before migration 0005.
   */
  confirmedSettings: Record<string, unknown> | null
  /** True when a sealed password is stored. */
  hasPassword: boolean
  context: Record<string, unknown>
  serverId: string | null
  accountId: string | null
  username: string | null
  ips: string[]
  lastJobId: number | null
  lastStep: string | null
  lastError: string | null
  createdAt: number
  updatedAt: number
}

export function serviceFromRow(row: ServicesTable): ServiceRecord {
  return {
    serviceId: row.service_id,
    clientId: row.client_id,
    productId: row.product_id,
    connector: row.connector,
    serverGroup: row.server_group,
    desired: row.desired as ServiceState,
    version: Number(row.version),
    actual: row.actual as ServiceState,
    plan: row.plan,
    confirmedPlan: row.confirmed_plan,
    settings: JSON.parse(row.settings_json) as Record<string, unknown>,
    confirmedSettings: row.confirmed_settings_json
      ? (JSON.parse(row.confirmed_settings_json) as Record<string, unknown>)
      : null,
    hasPassword: row.password_enc !== null,
    context: JSON.parse(row.context_json) as Record<string, unknown>,
    serverId: row.server_id,
    accountId: row.account_id,
    username: row.username,
    ips: row.ips_json ? (JSON.parse(row.ips_json) as string[]) : [],
    lastJobId: row.last_job_id === null ? null : Number(row.last_job_id),
    lastStep: row.last_step,
    lastError: row.last_error,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  }
}

/** The connector settings of a product on a plan: the product's settings, then the plan's. */
export function settingsFor(product: ProductConfig, plan: string | undefined): Record<string, unknown> {
  const extra = plan !== undefined ? product.plans?.values[plan] : undefined
  return extra ? { ...product.settings, ...extra } : { ...product.settings }
}

export async function getService(db: Db, serviceId: string): Promise<ServiceRecord | undefined> {
  const row = await db
    .selectFrom('services')
    .selectAll()
    .where('service_id', '=', serviceId)
    .executeTakeFirst()
  return row ? serviceFromRow(row) : undefined
}

export async function listServices(db: Db, filter: { clientId?: string } = {}): Promise<ServiceRecord[]> {
  let q = db.selectFrom('services').selectAll()
  if (filter.clientId !== undefined) q = q.where('client_id', '=', filter.clientId)
  const rows = await q.orderBy('service_id').execute()
  return rows.map(serviceFromRow)
}
