import type { ModuleLogEntry } from '@panelkit/core'
import { MODULE_LOG_COLUMNS, moduleLogRow } from '../store/store.ts'
import type { EngineContext } from './context.ts'
import {
  type ClaimedJob,
  type ClaimedRow,
  claimCtes,
  claimedFromRows,
  claimIn,
  finishedColumns,
  finishJob,
  type Job,
  JobStatus,
  type JobUpdate,
  newJobRow,
  selectClaimed,
} from './jobs.ts'
import { applyChanges, type ConfirmedChanges } from './lifecycle.ts'

/**
 * A worker's offer to a finishing job: the finish may claim the worker's next jobs in its own commit,
 * instead of the worker claiming them in a round trip and a commit of their own once the job is done.
 * `reserve` says how many (its answer is held for this finish: two jobs finishing at once never claim
 * the same free slot); `settle` gives back the reservation with what was claimed, which the worker
 * starts (or, when it is stopping, leaves to the release of its leases).
 */
export interface Handoff {
  reserve(job: Job): number
  settle(reserved: number, claimed: ClaimedJob[]): void
}

/** How a finish went: whether this worker still held the job, and the jobs it claimed after it. */
export interface Finished {
  held: boolean
  claimed: ClaimedJob[]
}

/**
 * Finishes a claimed job in one commit: its new status, the module-log entries of its calls, and what
 * it changes beside its own row (the service's confirmed state, a write-back queued behind it, a
 * released server). Everything but the log entries happens only while this worker still holds the job
 * (fencing); `held` is false when the lease was lost — the entries are written all the same, since the
 * calls were made. With a `handoff`, the same commit also claims the worker's next jobs.
 *
 * SQLite: one transaction, in process. PostgreSQL: one statement whose data-modifying parts (`WITH`)
 * are gated on the job's own fenced update, so a finish is one round trip instead of five or more
 * (BEGIN, each statement, COMMIT). Both are one atomic commit.
 */
export async function finishWith(
  ctx: EngineContext,
  job: Job,
  update: JobUpdate,
  changes?: ConfirmedChanges,
  handoff?: Handoff,
): Promise<Finished> {
  const reserved = handoff ? Math.max(0, handoff.reserve(job)) : 0
  let claimed: ClaimedJob[] = []
  try {
    const leaseMs = reserved > 0 ? ctx.config.worker.leaseSeconds * 1000 : 0
    if (ctx.store.dialect !== 'postgres') {
      const done = await finishInTransaction(ctx, job, update, changes, reserved, leaseMs)
      claimed = done.claimed
      return done
    }
    const entries = await ctx.moduleLog.take()
    try {
      const claim = reserved > 0 ? { limit: reserved, leaseMs } : undefined
      const { name, text, values } = finishStatement(job, ctx.owner, update, changes, entries, claim)
      const rows = await ctx.store.prepared<{ n: number } & ClaimedRow>(name, text, values)
      if (claim) claimed = claimedFromRows(rows.filter((row) => row.id !== null))
      return { held: rows[0]?.n === 1, claimed }
    } catch (error) {
      ctx.moduleLog.restore(entries)
      throw error
    }
  } finally {
    if (handoff) handoff.settle(reserved, claimed)
  }
}

/** A finish statement's text and name, by its shape (which parts it has, which columns they set). */
const finishTexts = new Map<string, { name: string; text: string }>()

/** What a finish statement holds, apart from its values: enough to write its text. */
interface FinishShape {
  job: string[]
  log: boolean
  /** The queued job's columns, `true` where the value is a number. */
  enqueue?: [string, boolean][]
  release: boolean
  service?: string[]
  claim: boolean
}

/**
 * The one statement of a PostgreSQL finish. Its text depends only on the statement's shape — the
 * columns the job's update sets, whether it writes log entries, queues a job, releases a server,
 * updates the service or claims the worker's next jobs — never on the values, so each shape is
 * prepared once per connection and a finish sends only its values. The values and the shape's key
 * are gathered in one pass; the text is written only for a shape not seen before. The log entries go
 * as one array per column (`unnest`), so their number does not change the text either (and is not
 * bounded by the protocol's 65,535 parameters).
 */
export function finishStatement(
  job: Job,
  owner: string,
  update: JobUpdate,
  changes: ConfirmedChanges | undefined,
  entries: ModuleLogEntry[],
  claim?: { limit: number; leaseMs: number },
): { name: string; text: string; values: unknown[] } {
  const now = Date.now()
  const values: unknown[] = [job.id, owner, JobStatus.RUNNING]
  const shape: FinishShape = { job: [], log: entries.length > 0, release: false, claim: claim !== undefined }
  const columns = finishedColumns(update, now)
  for (const column in columns) {
    const v = columns[column]
    if (v === undefined) continue
    shape.job.push(column)
    values.push(v)
  }
  if (shape.log) {
    const arrays: unknown[][] = MODULE_LOG_COLUMNS.map(() => [])
    for (const entry of entries) {
      const row = moduleLogRow(entry)
      for (let i = 0; i < MODULE_LOG_COLUMNS.length; i++)
        (arrays[i] as unknown[]).push(row[(MODULE_LOG_COLUMNS[i] as (typeof MODULE_LOG_COLUMNS)[number])[0]])
    }
    values.push(...arrays)
  }
  if (changes?.enqueue) {
    shape.enqueue = []
    const row = newJobRow(changes.enqueue, now)
    for (const column in row) {
      const v = row[column as keyof typeof row]
      // Nulls are left to the columns' defaults (null).
      if (v === null) continue
      shape.enqueue.push([column, typeof v === 'number'])
      values.push(v)
    }
  }
  if (changes?.releaseServer || changes?.service) {
    values.push(job.serviceId)
    shape.release = changes.releaseServer === true
    if (changes.service) {
      shape.service = []
      for (const column in changes.service) {
        const v = changes.service[column as keyof typeof changes.service]
        if (v === undefined) continue
        shape.service.push(column)
        values.push(v)
      }
    }
  }
  if (claim) values.push(now + claim.leaseMs, now, claim.limit)
  const key = `${shape.job.join(',')}|${shape.log ? 'log' : ''}|${shape.enqueue?.map(([c, n]) => (n ? `${c}:n` : c)).join(',') ?? '-'}|${shape.release ? 'release' : ''}|${shape.service?.join(',') ?? '-'}|${shape.claim ? 'claim' : ''}`
  let known = finishTexts.get(key)
  if (!known) {
    known = { name: `panelkit_finish_${finishTexts.size + 1}`, text: finishText(shape) }
    finishTexts.set(key, known)
  }
  return { ...known, values }
}

/** The text of a finish statement of this shape, its parameters numbered as finishStatement pushes them. */
function finishText(shape: FinishShape): string {
  let n = 3
  const next = () => `$${++n}`
  const assign = (columns: string[]) => columns.map((c) => `${quoteIdent(c)} = ${next()}`).join(', ')
  const held = 'exists (select 1 from j)'
  const parts = [
    `j as (update jobs set ${assign(shape.job)}
      where id = $1 and lease_owner = $2 and status = $3 returning id)`,
  ]
  if (shape.log) {
    const columns = MODULE_LOG_COLUMNS.map(([column]) => column).join(', ')
    const unnest = MODULE_LOG_COLUMNS.map(([, type]) => `${next()}::${type}[]`).join(', ')
    parts.push(`m as (insert into module_log (${columns}) select * from unnest(${unnest}))`)
  }
  if (shape.enqueue) {
    // INSERT … SELECT does not type its parameters from the columns: numbers are cast, strings are text.
    const columns = shape.enqueue.map(([c]) => quoteIdent(c)).join(', ')
    const selected = shape.enqueue.map(([, numeric]) => (numeric ? `${next()}::bigint` : next())).join(', ')
    parts.push(
      `w as (insert into jobs (${columns}) select ${selected} where ${held} on conflict (key) do nothing)`,
    )
  }
  if (shape.release || shape.service) {
    const serviceId = next()
    if (shape.release)
      parts.push(`d as (delete from assignments where service_id = ${serviceId} and ${held})`)
    if (shape.service)
      parts.push(
        `s as (update services set ${assign(shape.service)} where service_id = ${serviceId} and ${held})`,
      )
  }
  if (!shape.claim) return `with ${parts.join(',\n')}\nselect count(*)::int as n from j`
  // The worker's next jobs, claimed in the same statement: the claim's own text (jobs.ts), leased to the
  // same owner ($2) and leaving out the job being finished ($1). It sees the jobs as they were before
  // this statement — the finished job still running, the write-back it queues not yet there — so a job
  // of the same service waits for the worker's next claim, as it would have without this part.
  parts.push(claimCtes({ owner: '$2', leaseUntil: next(), now: next(), limit: next(), except: '$1' }))
  // One row even when nothing was claimed, for the finish's own count.
  return `with recursive ${parts.join(',\n')}\n${selectClaimed('(select count(*)::int from j) as n, ', '(select 1) one left join claimed c on true')}`
}

/** A column name as an SQL identifier (the names are the engine's own; quoted all the same). */
function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

async function finishInTransaction(
  ctx: EngineContext,
  job: Job,
  update: JobUpdate,
  changes: ConfirmedChanges | undefined,
  claimLimit: number,
  leaseMs: number,
): Promise<Finished> {
  return ctx.moduleLog.flushWith(ctx.store, async (trx) => {
    const held = await finishJob(trx, job, ctx.owner, update)
    if (held && changes) await applyChanges(trx, job, changes)
    // Claimed after the finish, in the same transaction: the finished job is no longer running here,
    // so the next job of its service (or the write-back just queued) can be the one claimed.
    const claimed = await claimIn(trx, ctx.owner, claimLimit, leaseMs)
    return { held, claimed }
  })
}
