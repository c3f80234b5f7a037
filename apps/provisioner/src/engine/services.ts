import { createHash } from 'node:crypto'
import type { DesiredState } from '../billing.ts'
import type { Db } from '../store/store.ts'
import { enqueue, type Job, type JobOperation } from './jobs.ts'

/** A service as the store knows it: what billing wants, what the connector confirmed, where it lives. */
export interface ServiceRecord {
  serviceId: string
  clientId: string
  productId: string
  connector: string
  serverGroup: string
  desired: DesiredState
  version: number
  actual: DesiredState
  settings: Record<string, unknown>
  settingsHash: string
  passwordHash: string
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

type Row = {
  service_id: string
  client_id: string
  product_id: string
  connector: string
  server_group: string
  desired: string
  version: number
  actual: string
  settings_json: string
  settings_hash: string
  password_hash: string
  context_json: string
  server_id: string | null
  account_id: string | null
  username: string | null
  ips_json: string | null
  last_job_id: number | null
  last_step: string | null
  last_error: string | null
  created_at: number
  updated_at: number
}

export function serviceFromRow(row: Row): ServiceRecord {
  return {
    serviceId: row.service_id,
    clientId: row.client_id,
    productId: row.product_id,
    connector: row.connector,
    serverGroup: row.server_group,
    desired: row.desired as DesiredState,
    version: Number(row.version),
    actual: row.actual as DesiredState,
    settings: JSON.parse(row.settings_json) as Record<string, unknown>,
    settingsHash: row.settings_hash,
    passwordHash: row.password_hash,
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

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((value as Record<string, unknown>)[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** A short fingerprint (never the value) to notice a changed password or package. */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(stable(value)).digest('hex').slice(0, 24)
}

export interface ServiceIntent {
  serviceId: string
  clientId: string
  productId: string
  connector: string
  serverGroup: string
  desired: DesiredState
  settings: Record<string, unknown>
  password: string | undefined
  /** The service context for the connector (without server and settings). */
  context: Record<string, unknown>
  source: string
}

/**
 * The operations that take a service from one intended state to another, in order. Changes of package
 * or password only matter for an account that exists before and after.
 */
export function planTransition(
  from: { desired: DesiredState; settingsHash: string; passwordHash: string } | undefined,
  to: { desired: DesiredState; settingsHash: string; passwordHash: string },
): JobOperation[] {
  const before = from?.desired ?? 'none'
  const ops: JobOperation[] = []
  const exists = (s: DesiredState) => s === 'active' || s === 'suspended'
  if (exists(before) && exists(to.desired)) {
    if (from && from.settingsHash !== to.settingsHash) ops.push('changePackage')
    if (from && from.passwordHash !== to.passwordHash) ops.push('changePassword')
  }
  if (!exists(before) && exists(to.desired)) ops.push('create')
  if (to.desired === 'suspended' && before !== 'suspended') ops.push('suspend')
  if (to.desired === 'active' && before === 'suspended') ops.push('unsuspend')
  if (to.desired === 'terminated' && exists(before)) ops.push('terminate')
  return ops
}

/**
 * Records what billing wants for a service and enqueues the jobs that get it there. Runs in the caller's
 * transaction. Each job's key is `<service>:v<version>:<operation>`: a repeated or concurrent sync of
 * the same change produces the same keys and collapses into the same jobs.
 */
export async function applyIntent(
  trx: Db,
  intent: ServiceIntent,
): Promise<{ jobs: Job[]; created: number; changed: boolean }> {
  const now = Date.now()
  const settingsHash = fingerprint(intent.settings)
  const passwordHash = fingerprint(intent.password ?? '')
  const row = await trx
    .selectFrom('services')
    .selectAll()
    .where('service_id', '=', intent.serviceId)
    .executeTakeFirst()
  const current = row ? serviceFromRow(row) : undefined
  const target = { desired: intent.desired, settingsHash, passwordHash }
  const ops = planTransition(current, target)
  const context = JSON.stringify({ ...intent.context, password: intent.password })
  if (!current) {
    if (intent.desired === 'none' || intent.desired === 'terminated')
      return { jobs: [], created: 0, changed: false }
    await trx
      .insertInto('services')
      .values({
        service_id: intent.serviceId,
        client_id: intent.clientId,
        product_id: intent.productId,
        connector: intent.connector,
        server_group: intent.serverGroup,
        desired: intent.desired,
        version: 1,
        actual: 'none',
        settings_json: JSON.stringify(intent.settings),
        settings_hash: settingsHash,
        password_hash: passwordHash,
        context_json: context,
        server_id: null,
        account_id: null,
        username: null,
        ips_json: null,
        last_job_id: null,
        last_step: null,
        last_error: null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('service_id').doNothing())
      .execute()
  } else {
    // `none` (Pending, Fraud) after something existed asks for no change.
    if (intent.desired === 'none') return { jobs: [], created: 0, changed: false }
    if (ops.length === 0 && current.desired === intent.desired) {
      await trx
        .updateTable('services')
        .set({ context_json: context, updated_at: now })
        .where('service_id', '=', intent.serviceId)
        .execute()
      return { jobs: [], created: 0, changed: false }
    }
  }
  const version = (current?.version ?? 0) + 1
  if (current) {
    await trx
      .updateTable('services')
      .set({
        desired: intent.desired,
        version,
        settings_json: JSON.stringify(intent.settings),
        settings_hash: settingsHash,
        password_hash: passwordHash,
        context_json: context,
        connector: intent.connector,
        server_group: intent.serverGroup,
        updated_at: now,
      })
      .where('service_id', '=', intent.serviceId)
      .where('version', '=', current.version)
      .execute()
  }
  const jobs: Job[] = []
  let created = 0
  for (const op of ops) {
    const payload: Record<string, unknown> = {}
    if (op === 'changePackage') {
      payload.settings = intent.settings
      if (current) payload.previousSettings = current.settings
    }
    const out = await enqueue(trx, {
      key: `${intent.serviceId}:v${version}:${op}`,
      serviceId: intent.serviceId,
      operation: op,
      payload,
      source: intent.source,
    })
    jobs.push(out.job)
    if (out.created) created++
  }
  return { jobs, created, changed: true }
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
