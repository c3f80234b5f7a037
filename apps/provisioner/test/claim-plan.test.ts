import { CompiledQuery, sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { CLAIM_SQL_POSTGRES } from '../src/engine/jobs.ts'
import { openTestStore } from './helpers.ts'

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
