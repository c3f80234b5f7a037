import type { Failure, StepRecord } from '@panelkit/core'
import { type Selectable, sql } from 'kysely'
import type { JobsTable, ServicesTable } from '../store/schema.ts'
import type { Db, Store } from '../store/store.ts'
import { type ServiceRecord, serviceFromRow } from './services.ts'

/**
 * Jobs: one row per lifecycle intent, keyed by an idempotency key (a duplicate intent collapses into
 * the existing job). Jobs of one service run one at a time in id order; a worker claims a job with a
 * lease it renews while working, and a job whose lease ran out is claimed again by anyone.
 */

export const JobStatus = {
  QUEUED: 'queued',
  RUNNING: 'running',
  DONE: 'done',
  PARKED: 'parked',
  CANCELLED: 'cancelled',
} as const
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus]

export type JobOperation =
  | 'create'
  | 'suspend'
  | 'unsuspend'
  | 'terminate'
  | 'changePassword'
  | 'changePackage'
  | 'writeBack'
  | 'pushUsage'
  | 'creditDeposit'

export const LIFECYCLE_OPERATIONS = [
  'create',
  'suspend',
  'unsuspend',
  'terminate',
  'changePassword',
  'changePackage',
] as const

export interface Job {
  id: number
  key: string
  serviceId: string
  operation: JobOperation
  payload: Record<string, unknown>
  status: JobStatus
  attempts: number
  runAfter: number
  leaseOwner: string | null
  leaseUntil: number | null
  lastError: Failure | null
  result: unknown
  steps: StepRecord[]
  source: string
  createdAt: number
  updatedAt: number
  finishedAt: number | null
  /** The sealed password this job sets (create, changePassword); opened only when it runs. */
  secretEnc: string | null
}

/**
 * What the claim read together with the job (PostgreSQL, in the claim's own statement): the service
 * row and its server assignment as of the claim. The runner uses them instead of reading both again
 * (two round trips less per job); nothing else can have changed them in between but a sync, which may
 * as well have run a moment later.
 */
export interface Prefetched {
  service: ServiceRecord | undefined
  serverId: string | undefined
}

/** A job as claimed; `prefetched` when the claim read the service with it. */
export interface ClaimedJob extends Job {
  prefetched?: Prefetched
}

/** The claim's read of the job's service and server, used at most once per run. */
export function takePrefetched(job: Job): Prefetched | undefined {
  const claimed = job as ClaimedJob
  const prefetched = claimed.prefetched
  delete claimed.prefetched
  return prefetched
}

export interface NewJob {
  key: string
  serviceId: string
  operation: JobOperation
  payload?: Record<string, unknown>
  /** sync | api | cli | engine */
  source: string
  runAfter?: number
  /** A password, already sealed for `job:<key>`. */
  secretEnc?: string
}

/** A `jobs` row as the store returns it. */
type Row = Selectable<JobsTable>

export function jobFromRow(row: Row): Job {
  return {
    id: Number(row.id),
    key: row.key,
    serviceId: row.service_id,
    operation: row.operation as JobOperation,
    payload: JSON.parse(row.payload_json) as Record<string, unknown>,
    status: row.status as JobStatus,
    attempts: Number(row.attempts),
    runAfter: Number(row.run_after),
    leaseOwner: row.lease_owner,
    leaseUntil: row.lease_until === null ? null : Number(row.lease_until),
    lastError: row.last_error ? (JSON.parse(row.last_error) as Failure) : null,
    result: row.result_json ? JSON.parse(row.result_json) : null,
    steps: row.steps_json ? (JSON.parse(row.steps_json) as StepRecord[]) : [],
    source: row.source,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    secretEnc: row.secret_enc,
  }
}

/** Inserts a job unless one with the same key exists; returns the job and whether it is new. */
/** The row a new job is inserted as (queued, no attempts yet). */
export function newJobRow(job: NewJob, now: number): Omit<Row, 'id'> {
  return {
    key: job.key,
    service_id: job.serviceId,
    operation: job.operation,
    payload_json: JSON.stringify(job.payload ?? {}),
    status: JobStatus.QUEUED,
    attempts: 0,
    run_after: job.runAfter ?? now,
    lease_owner: null,
    lease_until: null,
    last_error: null,
    result_json: null,
    steps_json: null,
    source: job.source,
    created_at: now,
    updated_at: now,
    finished_at: null,
    secret_enc: job.secretEnc ?? null,
  }
}

export async function enqueue(db: Db, job: NewJob): Promise<{ job: Job; created: boolean }> {
  const inserted = await db
    .insertInto('jobs')
    .values(newJobRow(job, Date.now()))
    .onConflict((oc) => oc.column('key').doNothing())
    .returningAll()
    .executeTakeFirst()
  if (inserted) return { job: jobFromRow(inserted), created: true }
  const existing = await db
    .selectFrom('jobs')
    .selectAll()
    .where('key', '=', job.key)
    .executeTakeFirstOrThrow()
  return { job: jobFromRow(existing), created: false }
}

/**
 * Claims up to `limit` runnable jobs for `owner`: queued and due, or running with an expired lease,
 * and the oldest unfinished job of their service (so a service's jobs run one at a time, in order).
 * PostgreSQL locks the candidates with `FOR UPDATE SKIP LOCKED`; SQLite runs it all under
 * `BEGIN IMMEDIATE`, which holds the database's write lock.
 */
export async function claimJobs(
  store: Store,
  owner: string,
  limit: number,
  leaseMs: number,
): Promise<ClaimedJob[]> {
  if (limit <= 0) return []
  if (store.dialect === 'postgres') {
    // One statement, committed on its own: the candidates are locked (`FOR UPDATE SKIP LOCKED`) and
    // leased by the same UPDATE, which is as atomic as the two statements in a transaction below and
    // costs one round trip instead of four. The text is written once (the hottest query of a worker,
    // run at every turn of its loop), not built per call.
    const now = Date.now()
    const rows = await store.prepared<ClaimedRow>('panelkit_claim', CLAIM_SQL_POSTGRES, [
      owner,
      now + leaseMs,
      now,
      limit,
    ])
    return claimedFromRows(rows)
  }
  return store.tx((trx) => claimIn(trx, owner, limit, leaseMs))
}

/**
 * The SQLite claim, in a transaction the caller holds (`BEGIN IMMEDIATE`: the database's write lock):
 * its own, or a finish's that claims the worker's next job in the same commit.
 */
export async function claimIn(trx: Db, owner: string, limit: number, leaseMs: number): Promise<Job[]> {
  if (limit <= 0) return []
  const now = Date.now()
  const query = trx
    .selectFrom('jobs as j')
    .select(['j.id'])
    .where((eb) =>
      eb.or([
        eb.and([eb('j.status', '=', JobStatus.QUEUED), eb('j.run_after', '<=', now)]),
        eb.and([eb('j.status', '=', JobStatus.RUNNING), eb('j.lease_until', '<', now)]),
      ]),
    )
    .where(noEarlierJobOfService(OPEN_IN_SERVICE))
    .orderBy('j.id')
    .limit(limit)
  const ids = (await query.execute()).map((r) => Number(r.id))
  if (ids.length === 0) return []
  const rows = await trx
    .updateTable('jobs')
    .set((eb) => ({
      status: JobStatus.RUNNING,
      lease_owner: owner,
      lease_until: now + leaseMs,
      attempts: eb('attempts', '+', 1),
      updated_at: now,
    }))
    .where('id', 'in', ids)
    .returningAll()
    .execute()
  return rows.map(jobFromRow).sort((a, b) => a.id - b.id)
}

/**
 * The statuses of the partial indexes jobs_claimable and jobs_open_service (migrations 0012 and 0013),
 * written out in SQL as their predicates are: a planner uses a partial index only for a condition that
 * implies its predicate, which a bound parameter does not.
 */
const CLAIMABLE = `'${JobStatus.QUEUED}', '${JobStatus.RUNNING}'`
const OPEN_IN_SERVICE = `${CLAIMABLE}, '${JobStatus.PARKED}'`

/**
 * No earlier job of the same service as `j` has one of these statuses (an SQL list of literals). Written
 * out, not bound: SQLite uses the partial index jobs_open_service only for the very terms of its WHERE,
 * and a bound list would walk the service's whole history instead.
 */
function noEarlierJobOfService(statuses: string) {
  return sql<boolean>`not exists (select 1 from jobs p
    where p.service_id = j.service_id and p.id < j.id and p.status in (${sql.raw(statuses)}))`
}

/**
 * The rows of `claimed` with the service and server the runner needs (see Prefetched); `head` puts
 * columns of the caller's before them, `from` names where `claimed c` comes from.
 */
export function selectClaimed(head = '', from = 'claimed c') {
  return `select ${head}c.*, to_jsonb(s.*) as prefetched_service, a.server_id as prefetched_server
  from ${from}
  left join services s on s.service_id = c.service_id
  left join assignments a on a.service_id = c.service_id`
}

/**
 * The PostgreSQL claim, written so that its cost does not depend on the planner's estimates.
 *
 * - `walk` steps through the open jobs in id order, one probe of the partial index jobs_claimable per
 *   step, and only as far as the claim reads (a recursive CTE is evaluated on demand).
 * - Each job the walk reaches is checked and locked on its own (`lateral … for update skip locked`):
 *   it must be runnable and the lowest open job of its service, asked as "the least open id of this
 *   service is mine", one probe of the partial index jobs_open_service.
 * - `limit $4` stops the walk once enough jobs are locked.
 *
 * The plain form (`order by id limit n` over the open jobs, `not exists` an earlier open job) leaves
 * the plan to the statistics, and they lag behind a burst. A sync that queued a thousand jobs into a
 * table last analysed with two open ones got a plan that scanned every open job once per candidate
 * (auto_explain in the bench, 4 workers, 1,200 queued: 827 ms and 117,000 buffers for one claim).
 * Prepared, its generic plan read and sorted every open job on each claim (13 ms, 3,500 buffers).
 * test/claim-plan.test.ts runs this text with fresh and with stale statistics, custom and generic.
 */
export const CLAIM_SQL_POSTGRES = `with recursive ${claimCtes({ owner: '$1', leaseUntil: '$2', now: '$3', limit: '$4' })}
${selectClaimed()}`

/**
 * The claim's two common table expressions (`walk`, `claimed`), with its values as the given
 * placeholders; used by the claim above and by a finish that claims the worker's next job in its own
 * statement (finish.ts). `except` leaves one job out (the one being finished, whose row the same
 * statement updates: a row may be modified only once per statement). Needs `with recursive`.
 */
export function claimCtes(p: {
  owner: string
  leaseUntil: string
  now: string
  limit: string
  except?: string
}) {
  return `walk(id) as (
    (select j.id from jobs j where j.status in (${CLAIMABLE}) order by j.id limit 1)
  union all
    (select n.id from walk w cross join lateral (
       select j.id from jobs j
        where j.status in (${CLAIMABLE}) and j.id > w.id
        order by j.id limit 1) n)
),
claimed as (
  update jobs
     set status = '${JobStatus.RUNNING}', lease_owner = ${p.owner}, lease_until = ${p.leaseUntil}, attempts = attempts + 1, updated_at = ${p.now}
   where id in (
     select x.id from walk w cross join lateral (
       select j.id from jobs j
        where j.id = w.id${p.except ? ` and j.id <> ${p.except}` : ''}
          and ((j.status = '${JobStatus.QUEUED}' and j.run_after <= ${p.now}) or (j.status = '${JobStatus.RUNNING}' and j.lease_until < ${p.now}))
          and (select min(p.id) from jobs p
                where p.service_id = j.service_id
                  and p.status in (${OPEN_IN_SERVICE})) = j.id
        for update skip locked) x
      limit ${p.limit})
   returning *)`
}

/** A row of `claimed` joined with its prefetched service and server. */
export type ClaimedRow = Row & { prefetched_service: ServicesTable | null; prefetched_server: string | null }

/** Claimed jobs from the rows of a PostgreSQL claim, in id order. */
export function claimedFromRows(rows: ClaimedRow[]): ClaimedJob[] {
  return rows
    .map((row): ClaimedJob => {
      const service = row.prefetched_service ? serviceFromRow(row.prefetched_service) : undefined
      return { ...jobFromRow(row), prefetched: { service, serverId: row.prefetched_server ?? undefined } }
    })
    .sort((a, b) => a.id - b.id)
}

/** Extends the lease; false when it was lost (another worker took the job over). */
export async function renewLease(db: Db, job: Job, owner: string, leaseMs: number): Promise<boolean> {
  const result = await db
    .updateTable('jobs')
    .set({ lease_until: Date.now() + leaseMs })
    .where('id', '=', job.id)
    .where('lease_owner', '=', owner)
    .where('status', '=', JobStatus.RUNNING)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

/** How a claimed job moves on: its next status and what it leaves behind. */
export interface JobUpdate {
  status: JobStatus
  runAfter?: number
  lastError?: Failure | null
  result?: unknown
  steps?: StepRecord[]
}

/** The columns `finishJob` sets for an update. */
export function finishedColumns(update: JobUpdate, now: number): Record<string, unknown> {
  return {
    status: update.status,
    lease_owner: null,
    lease_until: null,
    updated_at: now,
    ...(update.runAfter !== undefined ? { run_after: update.runAfter } : {}),
    ...(update.lastError !== undefined
      ? { last_error: update.lastError ? JSON.stringify(update.lastError) : null }
      : {}),
    ...(update.result !== undefined ? { result_json: JSON.stringify(update.result) } : {}),
    ...(update.steps !== undefined ? { steps_json: JSON.stringify(update.steps.slice(-100)) } : {}),
    // A finished job's password is not needed again: the sealed copy goes.
    ...(update.status === JobStatus.DONE || update.status === JobStatus.CANCELLED
      ? { finished_at: now, secret_enc: null }
      : {}),
  }
}

/** Moves a claimed job on, but only while `owner` still holds it (fencing). */
export async function finishJob(db: Db, job: Job, owner: string, update: JobUpdate): Promise<boolean> {
  const result = await db
    .updateTable('jobs')
    .set(finishedColumns(update, Date.now()))
    .where('id', '=', job.id)
    .where('lease_owner', '=', owner)
    .where('status', '=', JobStatus.RUNNING)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

/**
 * Gives up every lease `owner` still holds (a worker shutting down): the jobs are queued again at
 * once and resume from their last checkpoint wherever they are claimed next. Returns how many.
 */
export async function releaseLeases(db: Db, owner: string): Promise<number> {
  const now = Date.now()
  const result = await db
    .updateTable('jobs')
    .set({ status: JobStatus.QUEUED, lease_owner: null, lease_until: null, run_after: now, updated_at: now })
    .where('lease_owner', '=', owner)
    .where('status', '=', JobStatus.RUNNING)
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/** Puts parked jobs (all, one service's, or one job) back in the queue. Returns how many. */
export async function retryParked(
  db: Db,
  filter: { jobId?: number; serviceId?: string } = {},
): Promise<number> {
  let q = db
    .updateTable('jobs')
    .set({ status: JobStatus.QUEUED, run_after: Date.now(), attempts: 0, updated_at: Date.now() })
    .where('status', '=', JobStatus.PARKED)
  if (filter.jobId !== undefined) q = q.where('id', '=', filter.jobId)
  if (filter.serviceId !== undefined) q = q.where('service_id', '=', filter.serviceId)
  const result = await q.executeTakeFirst()
  return Number(result.numUpdatedRows)
}

export async function getJob(db: Db, id: number): Promise<Job | undefined> {
  const row = await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst()
  return row ? jobFromRow(row) : undefined
}

export async function listJobs(
  db: Db,
  filter: { serviceId?: string; status?: readonly JobStatus[]; limit?: number } = {},
): Promise<Job[]> {
  let q = db.selectFrom('jobs').selectAll()
  if (filter.serviceId !== undefined) q = q.where('service_id', '=', filter.serviceId)
  if (filter.status !== undefined && filter.status.length > 0) q = q.where('status', 'in', [...filter.status])
  const rows = await q
    .orderBy('id', 'desc')
    .limit(filter.limit ?? 500)
    .execute()
  return rows.map(jobFromRow).reverse()
}

export async function countJobs(db: Db): Promise<Record<JobStatus, number>> {
  const rows = await db
    .selectFrom('jobs')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('status')
    .execute()
  const out: Record<JobStatus, number> = { queued: 0, running: 0, done: 0, parked: 0, cancelled: 0 }
  for (const r of rows) out[r.status as JobStatus] = Number(r.n)
  return out
}

/**
 * Queued or running jobs that can still make progress on their own: not stuck behind a parked job of
 * the same service (those wait for an operator's retry).
 */
export async function countPending(db: Db): Promise<number> {
  const row = await db
    .selectFrom('jobs as j')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('j.status', 'in', [JobStatus.QUEUED, JobStatus.RUNNING])
    .where(noEarlierJobOfService(`'${JobStatus.PARKED}'`))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}
