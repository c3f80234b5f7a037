import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createApp } from '../src/app.ts'
import { SchedulesConfigSchema } from '../src/console/config.ts'
import { startDemoWorld } from '../src/demo/world.ts'
import { serverInput } from '../src/engine/engine.ts'
import { getService } from '../src/engine/services.ts'
import { startScheduler } from '../src/scheduler.ts'

/** The Proxmox connector's scheduled backup and snapshot clean-up on croner timers, against the simulator. */
describe('the scheduler', () => {
  it('takes the day’s backup once on its timer and runs the snapshot clean-up', {
    timeout: 60_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-scheduler-'))
    const world = await startDemoWorld({ store: { dataDir: dir } })
    try {
      const { app } = world
      await app.engine.sync()
      await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
      const vm = await getService(app.store.db, String(world.sid.vm))
      expect(vm?.actual).toBe('active')
      expect(() =>
        SchedulesConfigSchema.parse([{ product: 1, backup: { cron: 'every day', days: ['mon'] } }]),
      ).toThrow(/cron expression/)
      const schedules = SchedulesConfigSchema.parse([
        {
          product: world.products.vm.id,
          backup: { cron: '* * * * * *', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] },
          snapshotCleanup: { cron: '* * * * * *' },
        },
      ])
      const scheduler = startScheduler(app, schedules)
      try {
        const key = (a: string) => `${world.products.vm.id}:${a}`
        await expect
          .poll(() => scheduler.last.get(key('scheduledBackup'))?.results, { timeout: 20_000 })
          .toBeDefined()
        await expect
          .poll(() => scheduler.last.get(key('cleanupSnapshots'))?.results, { timeout: 20_000 })
          .toBeDefined()
        expect(scheduler.last.get(key('cleanupSnapshots'))?.results).toEqual([
          { serviceId: String(world.sid.vm), ok: true, message: '0 expired snapshots deleted' },
        ])
        // Ticks keep coming; the day's backup is taken once.
        await new Promise((r) => setTimeout(r, 2500))
        const again = await scheduler.run(String(world.products.vm.id), 'scheduledBackup')
        expect(again.results).toEqual([
          { serviceId: String(world.sid.vm), ok: true, message: "Today's backup exists" },
        ])
        const connector = app.engine.connector('proxmox-kvm')
        const server = app.engine.server(vm?.serverId as string)
        const list = await connector?.invoke('action', {
          action: 'listBackups',
          audience: 'admin',
          params: {},
          service: {
            ...(vm?.context as object),
            settings: vm?.settings,
            server: serverInput(server as never),
          },
        } as never)
        expect(list?.ok).toBe(true)
        expect((list as { data: { data: { backups: unknown[] } } }).data.data.backups).toHaveLength(1)
      } finally {
        scheduler.stop()
      }
    } finally {
      await world.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('runs each slot once when two processes share the store', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-scheduler-'))
    const world = await startDemoWorld({ store: { dataDir: dir } })
    // A second engine on the same store, as a `worker` process next to `serve` has.
    const other = await createApp({
      config: world.app.config,
      logStream: null,
      seedPools: false,
      builtinOptions: {
        proxmoxClient: {
          client: { tasks: { pollMs: 2, maxPollMs: 20 }, lockRetry: { initialDelayMs: 5, maxDelayMs: 50 } },
        },
      },
    })
    try {
      await world.app.engine.sync()
      await world.app.engine.runWorker({ untilIdle: true, pollMs: 5 })
      const schedules = SchedulesConfigSchema.parse([
        {
          product: world.products.vm.id,
          backup: { cron: '* * * * * *', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] },
        },
      ])
      const a = startScheduler(world.app, schedules)
      const b = startScheduler(other, schedules)
      try {
        // Both timers tick every second; each second's slot is run by one of them.
        await expect
          .poll(() => a.history.length + b.history.length, { timeout: 30_000, interval: 200 })
          .toBeGreaterThanOrEqual(4)
      } finally {
        await a.close()
        await b.close()
      }
      const slots = [...a.history, ...b.history].map((r) => r.slot)
      expect(slots.every((slot) => typeof slot === 'string')).toBe(true)
      expect(new Set(slots).size).toBe(slots.length)
      // A tick for a slot already run is refused, whoever asks.
      const taken = new Date(slots[0] as string)
      expect(await a.tick(String(world.products.vm.id), 'scheduledBackup', taken)).toBeUndefined()
      expect(await b.tick(String(world.products.vm.id), 'scheduledBackup', taken)).toBeUndefined()
      // The day's backup exists once on the server.
      const backups = [...a.history, ...b.history].flatMap((r) => r.results.map((x) => x.message))
      expect(backups.filter((m) => m !== "Today's backup exists")).toHaveLength(1)
    } finally {
      await other.close()
      await world.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
