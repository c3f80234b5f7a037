import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
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
})
