import type { ModuleLogEntry } from '@panelkit/core'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import type { EngineContext } from '../src/engine/context.ts'
import { finishStatement, finishWith, type Handoff } from '../src/engine/finish.ts'
import { claimJobs, enqueue, JobStatus } from '../src/engine/jobs.ts'
import { openTestStore, STORE_KINDS } from './helpers.ts'

// A PostgreSQL finish is one prepared statement whose text depends only on its shape; the module-log
// entries travel as one array per column. These tests check what that must not change: every entry
// arrives exactly as it was written (whatever characters it holds, however many there are), a finish
// that lost its lease writes the entries and nothing else, and no value ever ends up in the text.

/** Values that an array literal or a statement text would get wrong if they were not escaped. */
const AWKWARD = [
  'plain',
  'quote " and \\ backslash',
  "single ' quote; drop table jobs; --",
  '{braces,commas}',
  'NULL',
  '',
  'line\nbreak\ttab',
  'accents é ü ß, CJK 漢字, emoji 📫',
]

function entry(i: number): ModuleLogEntry {
  const text = AWKWARD[i % AWKWARD.length] as string
  return {
    id: `e-${i}`,
    time: new Date(1_700_000_000_000 + i).toISOString(),
    connector: 'axigen-account',
    // Every third entry leaves the optional columns out: they must arrive as nulls.
    ...(i % 3 === 0 ? {} : { operation: 'create', serviceId: `svc-${i % 7}` }),
    system: 'axigen',
    action: `UPDATE Account ${text}`,
    access: i % 2 === 0 ? 'read' : 'write',
    request: { lines: [text, `${text}-${i}`] },
    durationMs: i + 0.5,
    outcome: i % 5 === 0 ? 'error' : 'ok',
    ...(i % 5 === 0 ? { error: { code: 'PROTOCOL', message: text } } : {}),
  }
}

async function claimOne(store: Awaited<ReturnType<typeof openTestStore>>['store'], key: string) {
  await enqueue(store.db, { key, serviceId: `svc-${key}`, operation: 'create', source: 'sync' })
  const [job] = await claimJobs(store, 'w1', 1, 30_000)
  if (!job) throw new Error('nothing claimed')
  return job
}

/** The job's row as the store holds it now. */
function jobRow(store: Awaited<ReturnType<typeof openTestStore>>['store'], id: number) {
  return store.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
}

describe('the PostgreSQL finish statement', () => {
  it('writes every entry exactly as written, 1,500 of them with awkward text, in the same commit as the job', async () => {
    const { store, cleanup } = await openTestStore('postgres')
    try {
      const job = await claimOne(store, 'j1')
      const moduleLog = store.moduleLog()
      const written = Array.from({ length: 1500 }, (_, i) => entry(i))
      for (const e of written) moduleLog.write(e)
      const ctx = { store, moduleLog, owner: 'w1' } as unknown as EngineContext
      const { held } = await finishWith(ctx, job, { status: JobStatus.DONE, result: { note: AWKWARD[2] } })
      expect(held).toBe(true)

      const rows = await store.db
        .selectFrom('module_log')
        .select(['entry_id', 'operation', 'service_id', 'action', 'duration_ms', 'error_code', 'entry_json'])
        .orderBy('id')
        .execute()
      expect(rows).toHaveLength(1500)
      rows.forEach((row, i) => {
        const e = written[i] as ModuleLogEntry
        expect(row.entry_id).toBe(e.id)
        expect(JSON.parse(row.entry_json)).toEqual(e)
        expect(row.action).toBe(e.action)
        expect(row.operation).toBe(e.operation ?? null)
        expect(row.service_id).toBe(e.serviceId ?? null)
        expect(row.error_code).toBe(e.error?.code ?? null)
        expect(Number(row.duration_ms)).toBe(e.durationMs)
      })
      const after = await jobRow(store, job.id)
      expect(after.status).toBe(JobStatus.DONE)
      expect(after.lease_owner).toBeNull()
      expect(JSON.parse(after.result_json as string)).toEqual({ note: AWKWARD[2] })
    } finally {
      await cleanup()
    }
  })

  it('a finish that lost its lease writes the entries and leaves the job to its new holder', async () => {
    const { store, cleanup } = await openTestStore('postgres')
    try {
      const job = await claimOne(store, 'j2')
      await sql`update jobs set lease_owner = 'w2' where id = ${job.id}`.execute(store.db)
      const moduleLog = store.moduleLog()
      moduleLog.write(entry(1))
      const ctx = { store, moduleLog, owner: 'w1' } as unknown as EngineContext
      const { held } = await finishWith(ctx, job, { status: JobStatus.DONE }, { releaseServer: true })
      expect(held).toBe(false)
      const after = await jobRow(store, job.id)
      expect(after.status).toBe(JobStatus.RUNNING)
      expect(after.lease_owner).toBe('w2')
      const logged = await store.db.selectFrom('module_log').select('entry_id').execute()
      expect(logged.map((r) => r.entry_id)).toEqual(['e-1'])
    } finally {
      await cleanup()
    }
  })

  it('plans a finish that claims once, not on every run (generic plans on the prepared statements)', async () => {
    const { store, cleanup } = await openTestStore('postgres')
    try {
      for (let i = 0; i < 12; i++)
        await enqueue(store.db, { key: `g${i}`, serviceId: `svc-g${i}`, operation: 'create', source: 'sync' })
      const ctx = workerContext(store)
      const handoff: Handoff = { reserve: () => 1, settle: () => undefined }
      let [job] = await claimJobs(store, 'w1', 1, 30_000)
      let finished = 0
      while (job) {
        const done = await finishWith(
          ctx,
          job,
          { status: JobStatus.DONE, result: { i: finished } },
          undefined,
          handoff,
        )
        expect(done.held).toBe(true)
        finished++
        job = done.claimed[0]
      }
      expect(finished).toBe(12)
      // One at a time, the pool hands out the same session each time; its prepared statements say how
      // they were planned. Left to the server's default, the claim's parameters made it plan the
      // statement again on every run (custom plans), which cost more than running it.
      const plans = await store.prepared<{ name: string; generic_plans: number; custom_plans: number }>(
        'finish_plans_test',
        `select name, generic_plans::int, custom_plans::int from pg_prepared_statements where name like 'panelkit_%'`,
        [],
      )
      const finish = plans.filter((p) => p.name.startsWith('panelkit_finish_'))
      expect(finish.reduce((n, p) => n + p.generic_plans, 0)).toBeGreaterThanOrEqual(6)
      expect(plans.reduce((n, p) => n + p.custom_plans, 0)).toBe(0)
    } finally {
      await cleanup()
    }
  })

  it('keeps values out of the text: one text per shape, another shape another name', () => {
    const job = { id: 7, serviceId: "svc'; drop table jobs; --" } as Parameters<typeof finishStatement>[0]
    const a = finishStatement(job, 'w1', { status: JobStatus.DONE, result: { a: 1 } }, undefined, [entry(1)])
    const b = finishStatement(job, 'w9', { status: JobStatus.DONE, result: { b: "'" } }, undefined, [
      entry(2),
      entry(3),
    ])
    expect(b.name).toBe(a.name)
    expect(b.text).toBe(a.text)
    expect(b.values).toContain('w9')
    const c = finishStatement(
      job,
      'w1',
      { status: JobStatus.QUEUED, runAfter: 5 },
      { releaseServer: true },
      [],
    )
    expect(c.name).not.toBe(a.name)
    for (const s of [a, b, c]) {
      expect(s.text).not.toContain('drop table')
      expect(s.text).not.toContain('w1')
    }
  })
})

/** What a finish needs of a worker's context: the store, its module log, the owner and the lease. */
function workerContext(store: Awaited<ReturnType<typeof openTestStore>>['store']): EngineContext {
  return {
    store,
    moduleLog: store.moduleLog(),
    owner: 'w1',
    config: { worker: { leaseSeconds: 30 } },
  } as unknown as EngineContext
}

/** A handoff that offers `slots` and keeps what it is given back. */
function offering(slots: number) {
  const settled: { reserved: number; claimed: number[] }[] = []
  const reserving: number[] = []
  const handoff: Handoff = {
    reserve(job) {
      reserving.push(job.id)
      return slots
    },
    settle(reserved, claimed) {
      settled.push({ reserved, claimed: claimed.map((j) => j.id) })
    },
  }
  return { handoff, settled, reserving }
}

describe.each(STORE_KINDS)("a finish claims the worker's next jobs in its own commit (%s)", (kind) => {
  it('claims what is due and first of its service, leased to the same worker; never the job it finishes', async () => {
    const { store, cleanup } = await openTestStore(kind)
    try {
      const job = await claimOne(store, 'a1')
      // b1 is due; a2 waits behind a1 (same service); c1 is not due yet.
      await enqueue(store.db, { key: 'b1', serviceId: 'svc-b1', operation: 'create', source: 'sync' })
      await enqueue(store.db, { key: 'a2', serviceId: 'svc-a1', operation: 'suspend', source: 'sync' })
      await enqueue(store.db, {
        key: 'c1',
        serviceId: 'svc-c1',
        operation: 'create',
        source: 'sync',
        runAfter: Date.now() + 60_000,
      })
      const ctx = workerContext(store)
      ctx.moduleLog.write(entry(1))
      const { handoff, settled, reserving } = offering(3)
      const done = await finishWith(ctx, job, { status: JobStatus.DONE }, undefined, handoff)
      expect(done.held).toBe(true)
      expect(reserving).toEqual([job.id])
      const ids = async (...keys: string[]) =>
        Promise.all(
          keys.map(async (key) =>
            Number(
              (
                await store.db
                  .selectFrom('jobs')
                  .select('id')
                  .where('key', '=', key)
                  .executeTakeFirstOrThrow()
              ).id,
            ),
          ),
        )
      const [b1, a2] = await ids('b1', 'a2')
      // PostgreSQL's statement sees the jobs as they were before it, a1 still running, so a2 waits for
      // the next claim; SQLite claims after the finish in the same transaction and sees a1 done.
      const expected = kind === 'postgres' ? [b1] : [b1, a2]
      expect(done.claimed.map((j) => j.id)).toEqual(expected)
      expect(settled).toEqual([{ reserved: 3, claimed: expected }])
      for (const id of expected) {
        const row = await jobRow(store, id as number)
        expect(row.status).toBe(JobStatus.RUNNING)
        expect(row.lease_owner).toBe('w1')
        expect(Number(row.attempts)).toBe(1)
      }
      expect((await jobRow(store, job.id)).status).toBe(JobStatus.DONE)
      const c1 = await store.db
        .selectFrom('jobs')
        .select('status')
        .where('key', '=', 'c1')
        .executeTakeFirstOrThrow()
      expect(c1.status).toBe(JobStatus.QUEUED)
      const logged = await store.db.selectFrom('module_log').select('entry_id').execute()
      expect(logged.map((r) => r.entry_id)).toEqual(['e-1'])
      if (kind === 'postgres') expect(done.claimed[0]?.prefetched).toBeDefined()
    } finally {
      await cleanup()
    }
  })

  it("does not claim the job it finishes when that job's own lease has run out", async () => {
    const { store, cleanup } = await openTestStore(kind)
    try {
      const job = await claimOne(store, 'x1')
      // Expired, but still this worker's: the finish holds it, and the claim must not take it again.
      await sql`update jobs set lease_until = ${Date.now() - 1000} where id = ${job.id}`.execute(store.db)
      const ctx = workerContext(store)
      const { handoff, settled } = offering(2)
      const done = await finishWith(ctx, job, { status: JobStatus.DONE }, undefined, handoff)
      expect(done).toEqual({ held: true, claimed: [] })
      expect(settled).toEqual([{ reserved: 2, claimed: [] }])
      const row = await jobRow(store, job.id)
      expect(row.status).toBe(JobStatus.DONE)
      expect(Number(row.attempts)).toBe(1)
    } finally {
      await cleanup()
    }
  })

  it('with no slot offered it claims nothing, and a failed finish claims nothing and gives its slots back', async () => {
    const { store, cleanup } = await openTestStore(kind)
    try {
      const job = await claimOne(store, 'y1')
      await enqueue(store.db, { key: 'z1', serviceId: 'svc-z1', operation: 'create', source: 'sync' })
      const ctx = workerContext(store)
      const none = offering(0)
      expect(await finishWith(ctx, job, { status: JobStatus.DONE }, undefined, none.handoff)).toEqual({
        held: true,
        claimed: [],
      })
      expect(none.settled).toEqual([{ reserved: 0, claimed: [] }])
      const z1 = await store.db
        .selectFrom('jobs')
        .selectAll()
        .where('key', '=', 'z1')
        .executeTakeFirstOrThrow()
      expect(z1.status).toBe(JobStatus.QUEUED)
      // A finish that fails (here: a result that cannot be written) claims nothing either.
      const [next] = await claimJobs(store, 'w1', 1, 30_000)
      await enqueue(store.db, { key: 'q1', serviceId: 'svc-q1', operation: 'create', source: 'sync' })
      const some = offering(1)
      await expect(
        finishWith(
          ctx,
          next as NonNullable<typeof next>,
          { status: JobStatus.DONE, result: { n: 1n } },
          undefined,
          some.handoff,
        ),
      ).rejects.toThrow(/BigInt/)
      const q1 = await store.db
        .selectFrom('jobs')
        .selectAll()
        .where('key', '=', 'q1')
        .executeTakeFirstOrThrow()
      expect(q1.status).toBe(JobStatus.QUEUED)
      expect(some.settled).toEqual([{ reserved: 1, claimed: [] }])
    } finally {
      await cleanup()
    }
  })
})
