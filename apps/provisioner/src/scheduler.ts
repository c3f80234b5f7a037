import { toFailure } from '@panelkit/core'
import { Cron } from 'croner'
import type { App } from './app.ts'
import type { SchedulesConfig } from './console/config.ts'
import { serverInput } from './engine/engine.ts'
import { JobStatus } from './engine/jobs.ts'
import { serviceFromRow } from './engine/services.ts'

/**
 * The timers that call connectors' scheduled admin actions (croner, UTC): for each configured
 * product, Proxmox's idempotent `scheduledBackup` tick (backs up on the chosen days, once a day, within
 * the slots) and `cleanupSnapshots` (deletes snapshots past their lifetime). A tick skips a service
 * with a job queued or running, so it never works on a VM a pipeline is changing; the next tick
 * catches up (both actions are idempotent). A run never overlaps the previous one of its timer.
 */

export type ScheduledAction = 'scheduledBackup' | 'cleanupSnapshots'

export interface ScheduleRun {
  product: string
  action: ScheduledAction
  at: string
  results: { serviceId: string; ok: boolean; message: string }[]
  skipped: string[]
}

export interface Scheduler {
  /** Runs one timer's tick now (what the timer does), and returns what it did. */
  run(product: string, action: ScheduledAction): Promise<ScheduleRun>
  /** The last run of each timer. */
  readonly last: Map<string, ScheduleRun>
  stop(): void
}

export function startScheduler(app: App, schedules: SchedulesConfig = app.config.schedules ?? []): Scheduler {
  const { engine, store, logger, redactor } = app
  const timers: Cron[] = []
  const last = new Map<string, ScheduleRun>()

  async function run(product: string, action: ScheduledAction): Promise<ScheduleRun> {
    const schedule = schedules.find((s) => s.product === product)
    const out: ScheduleRun = { product, action, at: new Date().toISOString(), results: [], skipped: [] }
    const params =
      action === 'scheduledBackup' && schedule?.backup
        ? { days: schedule.backup.days, ...(schedule.backup.after ? { after: schedule.backup.after } : {}) }
        : {}
    const rows = await store.db
      .selectFrom('services')
      .selectAll()
      .where('product_id', '=', product)
      .where('actual', 'in', ['active', 'suspended'])
      .orderBy('service_id')
      .execute()
    const busy = new Set(
      (
        await store.db
          .selectFrom('jobs')
          .select('service_id')
          .where('status', 'in', [JobStatus.QUEUED, JobStatus.RUNNING])
          .execute()
      ).map((r) => r.service_id),
    )
    for (const row of rows) {
      const service = serviceFromRow(row)
      if (busy.has(service.serviceId)) {
        out.skipped.push(service.serviceId)
        continue
      }
      const connector = engine.connector(service.connector)
      const server = service.serverId ? engine.server(service.serverId) : undefined
      if (!connector || !server || !connector.capabilities.actions.some((a) => a.name === action)) {
        out.results.push({
          serviceId: service.serviceId,
          ok: false,
          message: `${service.connector} has no ${action}`,
        })
        continue
      }
      const result = await connector.invoke('action', {
        action,
        audience: 'admin',
        params,
        service: {
          ...(service.context as Record<string, never>),
          settings: service.settings,
          ...(service.username ? { username: service.username } : {}),
          server: serverInput(server),
        },
      } as never)
      const message = result.ok
        ? String((result.data as { message?: string } | undefined)?.message ?? 'ok')
        : `${result.error.code}: ${result.error.detail}`
      out.results.push({
        serviceId: service.serviceId,
        ok: result.ok,
        message: redactor.redactString(message),
      })
      if (!result.ok)
        logger.warn('scheduled action failed', { action, serviceId: service.serviceId, message })
    }
    last.set(`${product}:${action}`, out)
    logger.info('scheduled actions ran', {
      product,
      action,
      services: out.results.length,
      failed: out.results.filter((r) => !r.ok).length,
      skipped: out.skipped.length,
    })
    return out
  }

  const timer = (pattern: string, product: string, action: ScheduledAction) =>
    new Cron(pattern, { timezone: 'UTC', protect: true, unref: true }, async () => {
      try {
        await run(product, action)
      } catch (error) {
        logger.error('scheduled run failed', { product, action, error: toFailure(error, redactor) })
      }
    })
  for (const s of schedules) {
    if (s.backup) timers.push(timer(s.backup.cron, s.product, 'scheduledBackup'))
    if (s.snapshotCleanup) timers.push(timer(s.snapshotCleanup.cron, s.product, 'cleanupSnapshots'))
  }
  return {
    run,
    last,
    stop() {
      for (const t of timers) t.stop()
    },
  }
}
