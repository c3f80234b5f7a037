import type { ModuleLogEntry } from '@panelkit/core'
import { MODULE_LOG_COLUMNS, moduleLogRow } from '../store/store.ts'
import type { EngineContext } from './context.ts'
import { finishedColumns, finishJob, type Job, JobStatus, type JobUpdate, newJobRow } from './jobs.ts'
import { applyChanges, type ConfirmedChanges } from './lifecycle.ts'

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
  try {
    const { name, text, values } = finishStatement(job, ctx.owner, update, changes, entries)
    const rows = await ctx.store.prepared<{ n: number }>(name, text, values)
    return rows[0]?.n === 1
  } catch (error) {
    ctx.moduleLog.restore(entries)
    throw error
  }
}

/** A finish statement's text, by its shape (which parts it has, which columns they set). */
const finishTexts = new Map<string, { name: string; text: string }>()

/**
 * The one statement of a PostgreSQL finish. Its text depends only on the statement's shape — the
 * columns the job's update sets, whether it writes log entries, queues a job, releases a server or
 * updates the service — never on the values, so each shape is prepared once per connection and a
 * finish sends only its values. The log entries go as one array per column (`unnest`), so their
 * number does not change the text either (and is not bounded by the protocol's 65,535 parameters).
 */
export function finishStatement(
  job: Job,
  owner: string,
  update: JobUpdate,
  changes: ConfirmedChanges | undefined,
  entries: ModuleLogEntry[],
): { name: string; text: string; values: unknown[] } {
  const now = Date.now()
  const values: unknown[] = [job.id, owner, JobStatus.RUNNING]
  const param = (v: unknown) => {
    values.push(v)
    return `$${values.length}`
  }
  const shape: string[] = []
  const set = (columns: Record<string, unknown>) => {
    const parts: string[] = []
    for (const column in columns) {
      const v = columns[column]
      if (v === undefined) continue
      parts.push(`${quoteIdent(column)} = ${param(v)}`)
      shape.push(column)
    }
    return parts.join(', ')
  }
  const held = 'exists (select 1 from j)'
  const parts = [
    `j as (update jobs set ${set(finishedColumns(update, now))}
      where id = $1 and lease_owner = $2 and status = $3 returning id)`,
  ]
  if (entries.length > 0) {
    shape.push('|log')
    const arrays = MODULE_LOG_COLUMNS.map((): unknown[] => [])
    for (const entry of entries) {
      const row = moduleLogRow(entry)
      MODULE_LOG_COLUMNS.forEach(([column], i) => {
        ;(arrays[i] as unknown[]).push(row[column])
      })
    }
    const columns = MODULE_LOG_COLUMNS.map(([column]) => column).join(', ')
    const unnest = MODULE_LOG_COLUMNS.map(([, type], i) => `${param(arrays[i])}::${type}[]`).join(', ')
    parts.push(`m as (insert into module_log (${columns}) select * from unnest(${unnest}))`)
  }
  if (changes?.enqueue) {
    // INSERT … SELECT does not type its parameters from the columns: numbers are cast, nulls left to
    // the columns' defaults (null), strings are text.
    const row = Object.entries(newJobRow(changes.enqueue, now)).filter(([, v]) => v !== null)
    shape.push('|enqueue', ...row.map(([c, v]) => (typeof v === 'number' ? `${c}:n` : c)))
    const columns = row.map(([c]) => quoteIdent(c)).join(', ')
    const selected = row.map(([, v]) => (typeof v === 'number' ? `${param(v)}::bigint` : param(v))).join(', ')
    parts.push(
      `w as (insert into jobs (${columns}) select ${selected} where ${held} on conflict (key) do nothing)`,
    )
  }
  if (changes?.releaseServer || changes?.service) {
    const serviceId = param(job.serviceId)
    if (changes.releaseServer) {
      shape.push('|release')
      parts.push(`d as (delete from assignments where service_id = ${serviceId} and ${held})`)
    }
    if (changes.service) {
      shape.push('|service')
      parts.push(
        `s as (update services set ${set(changes.service)} where service_id = ${serviceId} and ${held})`,
      )
    }
  }
  const key = shape.join(',')
  let known = finishTexts.get(key)
  if (!known) {
    known = {
      name: `panelkit_finish_${finishTexts.size + 1}`,
      text: `with ${parts.join(',\n')}\nselect count(*)::int as n from j`,
    }
    finishTexts.set(key, known)
  }
  return { ...known, values }
}

/** A column name as an SQL identifier (the names are the engine's own; quoted all the same). */
function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
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
