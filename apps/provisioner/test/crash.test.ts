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
    const world = await processWorld(kind, { writeDelayMs: 120, concurrency: 4 })
    try {
      const n = 16
      const ids: string[] = []
      for (let i = 1; i <= n; i++) ids.push(world.order(i % 3 === 0 ? 'Pro' : 'Basic'))
      const id = (i: number) => Number(ids[i - 1])
      const jobInFlight = async () =>
        (await listJobs(world.app.store.db, { limit: 10_000 })).some((j) => j.status === 'running')
      await world.app.engine.sync()
      let kills = 0
      for (let round = 0; round < 2; round++) {
        const workers = [world.spawnWorker(), world.spawnWorker()]
        // Wait until the workers are busy (process start-up takes a moment), then let them work a while.
        const writesBefore = world.panel.writes
        for (let t = 0; t < 200 && world.panel.writes === writesBefore; t++) await sleep(50)
        await sleep(Math.random() * 250)
        // Billing changes while workers run and die: suspensions, an upgrade, terminations.
        if (round === 0) for (let i = 1; i <= n; i += 4) world.whmcs.sim.setStatus(id(i), 'Suspended')
        if (round === 1) {
          for (let i = 2; i <= n; i += 5) world.whmcs.sim.setStatus(id(i), 'Terminated')
          world.whmcs.sim.upgrade(id(3), { options: { Plan: 'Basic' } })
        }
        await world.app.engine.sync()
        // Kill while a worker holds a job's lease, at a random point inside that job (each panel write
        // takes 120 ms), so the kill loses work in flight; a pause before looking could land after the
        // workers ran out of work on a fast machine, or between jobs on a loaded one.
        for (let t = 0; t < 1000 && !(await jobInFlight()); t++) await sleep(5)
        await sleep(Math.random() * 60)
        for (const w of workers) {
          w.kill('SIGKILL')
          kills++
        }
        await Promise.all(workers.map((w) => w.done))
      }
      expect(kills).toBe(4)
      // A restart: one worker runs until nothing is left (expired leases are taken over), then the
      // next sync finds what WHMCS changed while creates were still queued, and a worker finishes it.
      const last = world.spawnWorker(['--once'])
      expect(await last.done).toBe(0)
      await world.app.engine.sync()
      const final = world.spawnWorker(['--once'])
      expect(await final.done).toBe(0)
      expect((await world.app.engine.sync()).intents).toBe(0)

      const services = await listServices(world.app.store.db)
      expect(services).toHaveLength(n)
      for (const s of services)
        expect({ id: s.serviceId, state: s.actual }).toEqual({ id: s.serviceId, state: s.desired })
      const jobs = await listJobs(world.app.store.db, { limit: 10_000 })
      // Every job is done, but a write-back queued behind a terminate: cancelled, as moot (17.5).
      const notDone = jobs.filter((j) => j.status !== 'done')
      for (const j of notDone) {
        expect({ operation: j.operation, status: j.status }).toEqual({
          operation: 'writeBack',
          status: 'cancelled',
        })
        expect(services.find((s) => s.serviceId === j.serviceId)?.actual).toBe('terminated')
      }
      const cancelledWriteBack = new Set(notDone.map((j) => j.serviceId))
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
      expect(world.panel.accounts.get(`svc${id(3)}`)?.plan).toBe('basic')
      // WHMCS and the panel agree, and every account's username was written back once — but that of
      // an account terminated before its write-back ran: a deleted account is not written back.
      expect((await world.app.engine.drift()).entries).toEqual([])
      for (const s of services)
        expect(world.whmcs.sim.service(Number(s.serviceId)).username).toBe(
          cancelledWriteBack.has(s.serviceId) ? '' : `svc${s.serviceId}`,
        )
    } finally {
      await world.close()
    }
  })
})
