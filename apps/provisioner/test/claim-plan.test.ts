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

  // A sync queues a thousand jobs at once into a table whose statistics were taken when two were open
  // (autovacuum analyses it only after enough changes, and a minute at the soonest). The claim's cost
  // must not follow those estimates: it reads a few index entries per job it takes, with stale and with
  // fresh statistics, planned for its parameters and as the generic plan of the prepared statement.
  describe.each(['stale', 'fresh'] as const)('after a burst of 1,200 queued jobs, statistics %s', (stats) => {
    it.each(['custom', 'generic'] as const)(
      'the %s plan walks the open jobs in order and stops early',
      async (mode) => {
        const { store, cleanup } = await openTestStore('postgres')
        try {
          await sql`alter table jobs set (autovacuum_enabled = false)`.execute(store.db)
          await sql`insert into jobs (key, service_id, operation, payload_json, status, attempts, run_after, source, created_at, updated_at)
          select 'k' || g, 's' || (g % 1200), 'create', '{}', case when g > 4998 then 'queued' else 'done' end, 0, 0, 'sync', 0, 0
            from generate_series(1, 5000) g`.execute(store.db)
          await sql`analyze jobs`.execute(store.db)
          await sql`insert into jobs (key, service_id, operation, payload_json, status, attempts, run_after, source, created_at, updated_at)
          select 'q' || g, 'burst' || g, 'suspend', '{}', 'queued', 0, 0, 'sync', 0, 0
            from generate_series(1, 1200) g`.execute(store.db)
          if (stats === 'fresh') await sql`analyze jobs`.execute(store.db)
          const now = Date.now()
          const plan = await store.db.connection().execute(async (conn) => {
            await sql`begin`.execute(conn)
            try {
              if (mode === 'generic') {
                await sql`set local plan_cache_mode = force_generic_plan`.execute(conn)
                await sql.raw(`prepare claim_plan_test as ${CLAIM_SQL_POSTGRES}`).execute(conn)
                return await conn.executeQuery<{ 'QUERY PLAN': unknown }>(
                  CompiledQuery.raw(
                    `explain (analyze, buffers, format json) execute claim_plan_test('w', ${now + 1000}, ${now}, 4)`,
                  ),
                )
              }
              return await conn.executeQuery<{ 'QUERY PLAN': unknown }>(
                CompiledQuery.raw(`explain (analyze, buffers, format json) ${CLAIM_SQL_POSTGRES}`, [
                  'w',
                  now + 1000,
                  now,
                  4,
                ]),
              )
            } finally {
              await sql`rollback`.execute(conn)
            }
          })
          const root = (plan.rows[0]?.['QUERY PLAN'] as { Plan: PlanNode }[] | undefined)?.[0]
            ?.Plan as PlanNode
          const nodes = flatten(root)
          // It took four jobs, the oldest (the first 4,998 jobs are finished, 4,999 and 5,000 queued).
          expect(root['Actual Rows']).toBe(4)
          // Nothing was sorted, and no scan of jobs returned more than a few rows in all its loops: 1,202
          // are open, and the plain form read every one of them (once per candidate, or to sort them).
          expect(nodes.filter((n) => n['Node Type'] === 'Sort')).toEqual([])
          const jobRows = nodes
            .filter((n) => n['Relation Name'] === 'jobs' && n['Node Type'] !== 'ModifyTable')
            .map((n) => (n['Actual Rows'] ?? 0) * (n['Actual Loops'] ?? 1))
          expect(jobRows.length).toBeGreaterThan(0)
          expect(Math.max(...jobRows)).toBeLessThan(50)
          // The plain form read 3,500 to 117,000 buffers here; this one reads a few per job it passes.
          expect(root['Shared Hit Blocks'] + (root['Shared Read Blocks'] ?? 0)).toBeLessThan(600)
        } finally {
          await cleanup()
        }
      },
    )
  })
})

interface PlanNode {
  'Node Type': string
  'Relation Name'?: string
  'Actual Rows'?: number
  'Actual Loops'?: number
  'Shared Hit Blocks': number
  'Shared Read Blocks'?: number
  Plans?: PlanNode[]
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)]
}
