import { describe, expect, it } from 'vitest'
import { listJobs } from '../src/engine/jobs.ts'
import { listServices } from '../src/engine/services.ts'
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
