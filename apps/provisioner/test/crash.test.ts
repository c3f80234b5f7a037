import { describe, expect, it } from 'vitest'
import { listJobs } from '../src/engine/jobs.ts'
import { listServices } from '../src/engine/services.ts'
import { STORE_KINDS } from './helpers.ts'
import { processWorld } from './processes.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.each(STORE_KINDS)('kill -9 of worker processes at random moments (%s)', (kind) => {
  it('ends with every service in its desired state and every effect applied once', {
    timeout: 90_000,
  }, async () => {
    const world = await processWorld(kind, { writeDelayMs: 80, concurrency: 4 })
    try {
      const n = 16
      for (let i = 1; i <= n; i++) world.order(String(1000 + i), i % 3 === 0 ? 'Pro' : 'Basic')
      await world.app.engine.sync()
      let kills = 0
      for (let round = 0; round < 2; round++) {
        const workers = [world.spawnWorker(), world.spawnWorker()]
        // Wait until the workers are busy (process start-up takes a moment), then let them work a while.
        const writesBefore = world.panel.writes
        for (let t = 0; t < 200 && world.panel.writes === writesBefore; t++) await sleep(50)
        await sleep(Math.random() * 500)
        // Billing changes while workers run and die: suspensions, an upgrade, terminations.
        if (round === 0)
          for (let i = 1; i <= n; i += 4) world.billing.update(String(1000 + i), { status: 'Suspended' })
        if (round === 1) {
          for (let i = 2; i <= n; i += 5) world.billing.update(String(1000 + i), { status: 'Terminated' })
          world.billing.update('1003', { configOptions: { Plan: 'Basic' } })
        }
        await world.app.engine.sync()
        await sleep(Math.random() * 400)
        for (const w of workers) {
          w.kill('SIGKILL')
          kills++
        }
        await Promise.all(workers.map((w) => w.done))
      }
      expect(kills).toBe(4)
      // A restart: one worker runs until nothing is left (expired leases are taken over).
      const last = world.spawnWorker(['--once'])
      expect(await last.done).toBe(0)

      const services = await listServices(world.app.store.db)
      expect(services).toHaveLength(n)
      for (const s of services)
        expect({ id: s.serviceId, state: s.actual }).toEqual({ id: s.serviceId, state: s.desired })
      const jobs = await listJobs(world.app.store.db, { limit: 10_000 })
      expect(jobs.filter((j) => j.status !== 'done')).toEqual([])
      // The kills did land in the middle of work: some jobs were taken over after a lost lease.
      const takenOver = jobs.filter((j) => j.attempts > 1).length
      expect(takenOver).toBeGreaterThan(0)
      // Every account was created exactly once on the panel, and no IP was handed out twice.
      expect([...world.panel.creates.values()].every((c) => c === 1)).toBe(true)
      expect(world.panel.creates.size).toBe(n)
      const live = [...world.panel.accounts.values()]
      expect(live).toHaveLength(services.filter((s) => s.actual !== 'terminated').length)
      const ips = live.map((a) => a.ip)
      expect(new Set(ips).size).toBe(ips.length)
      for (const a of live) expect(await world.app.store.ipPool('p1').addressOf(a.serviceId)).toBe(a.ip)
      const stats = await world.app.store.ipPool('p1').stats()
      expect(stats.used).toBe(live.length)
      for (const s of services.filter((x) => x.actual === 'suspended'))
        expect(world.panel.accounts.get(`svc${s.serviceId}`)?.suspended).toBe(true)
      expect(world.panel.accounts.get('svc1003')?.plan).toBe('basic')
    } finally {
      await world.close()
    }
  })
})
