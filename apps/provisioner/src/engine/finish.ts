import { type RawBuilder, sql } from 'kysely'
import { moduleLogRow } from '../store/store.ts'
import type { EngineContext } from './context.ts'
import { finishedColumns, finishJob, type Job, JobStatus, type JobUpdate, newJobRow } from './jobs.ts'
import { applyChanges, type ConfirmedChanges } from './lifecycle.ts'

/** More module-log rows than this go through the transaction (a statement has at most 65,535 parameters). */
const MAX_ROWS_IN_STATEMENT = 1000

/**
 * Finishes a claimed job in one commit: its new status, the module-log entries of its calls, and what
 * it changes beside its own row (the service's confirmed state, a write-back queued behind it, a
 * released server). Everything but the log entries happens only while this worker still holds the job
 * (fencing); false when the lease was lost — the entries are written all the same, since the calls
 * were made.
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
): Promise<boolean> {
  if (ctx.store.dialect !== 'postgres') return finishInTransaction(ctx, job, update, changes)
  const entries = await ctx.moduleLog.take()
  if (entries.length > MAX_ROWS_IN_STATEMENT) {
    ctx.moduleLog.restore(entries)
    return finishInTransaction(ctx, job, update, changes)
  }
  const rows = entries.map(moduleLogRow)
  try {
    const now = Date.now()
    const held = sql`exists (select 1 from j)`
    const parts: RawBuilder<unknown>[] = [
      sql`j as (update jobs set ${assignments(finishedColumns(update, now))}
        where id = ${job.id} and lease_owner = ${ctx.owner} and status = ${JobStatus.RUNNING} returning id)`,
    ]
    if (rows.length > 0) {
      const columns = Object.keys(rows[0] as object)
      parts.push(
        sql`m as (insert into module_log (${sql.join(columns.map((c) => sql.ref(c)))}) values ${sql.join(
          rows.map((r) => sql`(${sql.join(columns.map((c) => (r as Record<string, unknown>)[c]))})`),
        )})`,
      )
    }
    if (changes?.enqueue) {
      // INSERT … SELECT does not type its parameters from the columns: numbers are cast, nulls left to
      // the columns' defaults (null), strings are text.
      const row = Object.entries(newJobRow(changes.enqueue, now)).filter(([, v]) => v !== null)
      parts.push(
        sql`w as (insert into jobs (${sql.join(row.map(([c]) => sql.ref(c)))})
          select ${sql.join(row.map(([, v]) => (typeof v === 'number' ? sql`${v}::bigint` : sql`${v}`)))}
          where ${held} on conflict (key) do nothing)`,
      )
    }
    if (changes?.releaseServer)
      parts.push(sql`d as (delete from assignments where service_id = ${job.serviceId} and ${held})`)
    if (changes?.service)
      parts.push(
        sql`s as (update services set ${assignments(changes.service)} where service_id = ${job.serviceId} and ${held})`,
      )
    const result = await sql<{ n: number }>`with ${sql.join(parts)} select count(*)::int as n from j`.execute(
      ctx.store.db,
    )
    return result.rows[0]?.n === 1
  } catch (error) {
    ctx.moduleLog.restore(entries)
    throw error
  }
}

function finishInTransaction(
  ctx: EngineContext,
  job: Job,
  update: JobUpdate,
  changes: ConfirmedChanges | undefined,
): Promise<boolean> {
  return ctx.moduleLog.flushWith(ctx.store, async (trx) => {
    const ok = await finishJob(trx, job, ctx.owner, update)
    if (ok && changes) await applyChanges(trx, job, changes)
    return ok
  })
}

function assignments(values: Record<string, unknown>) {
  return sql.join(
    Object.entries(values)
      .filter(([, v]) => v !== undefined)
      .map(([column, v]) => sql`${sql.ref(column)} = ${v}`),
  )
}
