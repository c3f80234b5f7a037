import { CompiledQuery, sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { CLAIM_SQL_POSTGRES, listJobs } from '../src/engine/jobs.ts'
import { listServices } from '../src/engine/services.ts'
import { openTestStore } from './helpers.ts'
import { processWorld } from './processes.ts'

describe('two worker processes on PostgreSQL', () => {
  it('share the work and run no job twice', { timeout: 60_000 }, async () => {
    const world = await processWorld('postgres', { writeDelayMs: 60, concurrency: 3 })
    try {
      const n = 40
      for (let i = 1; i <= n; i++) world.order()
      await world.app.engine.sync()
      const a = world.spawnWorker(['--once'])
      const b = world.spawnWorker(['--once'])
      expect(await a.done).toBe(0)
      expect(await b.done).toBe(0)
      const jobs = await listJobs(world.app.store.db, { limit: 10_000 })
      expect(jobs.every((j) => j.status === 'done')).toBe(true)
      // Each job was claimed once (no takeover, no double claim) and both workers got some.
      expect(jobs.every((j) => j.attempts === 1)).toBe(true)
      const owners = new Set(jobs.map((j) => (j.result as { ranBy: string }).ranBy))
      expect(owners.size).toBe(2)
      expect([...world.panel.creates.values()].every((c) => c === 1)).toBe(true)
      const creates = await world.app.engine.moduleLog.query({ operation: 'create', limit: 1000 })
      const perService = new Map<string, number>()
      for (const e of creates.filter((x) => x.action === 'create'))
        perService.set(e.serviceId ?? '', (perService.get(e.serviceId ?? '') ?? 0) + 1)
      expect(perService.size).toBe(n)
      expect([...perService.values()].every((c) => c === 1)).toBe(true)
      expect((await listServices(world.app.store.db)).every((s) => s.actual === 'active')).toBe(true)
    } finally {
      await world.close()
    }
  })
})

describe('claiming with a long history', () => {
  it('the claim reads the open jobs only, not every finished one (partial index jobs_claimable)', async () => {
    const { store, cleanup } = await openTestStore('postgres')
    try {
      // 5,000 finished jobs and a few queued ones, as a store looks after a few weeks.
      await sql`insert into jobs (key, service_id, operation, payload_json, status, attempts, run_after, source, created_at, updated_at)
        select 'k' || g, 's' || (g % 700), 'create', '{}', case when g > 5000 then 'queued' else 'done' end, 0, 0, 'sync', 0, 0
          from generate_series(1, 5005) g`.execute(store.db)
      await sql`analyze jobs`.execute(store.db)
      const now = Date.now()
      const plan = await store.db.executeQuery<{ 'QUERY PLAN': unknown }>(
        CompiledQuery.raw(`explain (analyze, format json) ${CLAIM_SQL_POSTGRES}`, ['w', now + 1000, now, 1]),
      )
      const text = JSON.stringify(plan.rows)
      expect(text).toContain('jobs_claimable')
      // No node of the plan filtered the finished jobs out one by one.
      const removed = [...text.matchAll(/"Rows Removed by Filter":(\d+)/g)].map((m) => Number(m[1]))
      expect(Math.max(0, ...removed)).toBeLessThan(100)
    } finally {
      await cleanup()
    }
  })
})
