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
 *
 * Every process that runs the scheduler (`serve` and each `worker`) has the same timers; a tick first
 * claims its slot (the timer's scheduled time) in the store (`meta`, `schedule:<product>:<action>:<slot>`),
 * and only the process whose claim wins runs it, so a slot runs once however many processes share the
 * store. Claims older than a day are deleted as new ones are made.
 */

export type ScheduledAction = 'scheduledBackup' | 'cleanupSnapshots'

export interface ScheduleRun {
  product: string
  action: ScheduledAction
  at: string
  /** The timer's scheduled time this run claimed (none for a run started by hand). */
  slot?: string
  results: { serviceId: string; ok: boolean; message: string }[]
  skipped: string[]
}

export interface Scheduler {
  /** Runs one timer's tick now (what the timer does), and returns what it did. */
  run(product: string, action: ScheduledAction): Promise<ScheduleRun>
  /** The last run of each timer. */
  readonly last: Map<string, ScheduleRun>
  /** This process's latest runs, oldest first (at most 100). */
  readonly history: ScheduleRun[]
  /**
   * A timer's tick for one slot, as the timer runs it: claims the slot in the store, then runs. None
   * when another process (or an earlier tick) had claimed it.
   */
  tick(product: string, action: ScheduledAction, slot: Date): Promise<ScheduleRun | undefined>
  stop(): void
  /** Stops the timers and waits for a tick under way (before the store closes). */
  close(): Promise<void>
}

const DAY_MS = 24 * 3600 * 1000

export function startScheduler(app: App, schedules: SchedulesConfig = app.config.schedules ?? []): Scheduler {
  const { engine, store, logger, redactor } = app
  const timers: Cron[] = []
  const last = new Map<string, ScheduleRun>()
  const running = new Set<Promise<unknown>>()
  const history: ScheduleRun[] = []

  async function claim(product: string, action: ScheduledAction, slot: Date): Promise<boolean> {
    const prefix = `schedule:${product}:${action}:`
    const r = await store.db
      .insertInto('meta')
      .values({
        key: `${prefix}${slot.toISOString()}`,
        value: `${app.engine.owner} ${new Date().toISOString()}`,
      })
      .onConflict((oc) => oc.column('key').doNothing())
      .executeTakeFirst()
    const won = Number(r.numInsertedOrUpdatedRows ?? 0n) === 1
    if (won) {
      // ISO times sort as text: every claim of this timer older than a day goes.
      await store.db
        .deleteFrom('meta')
        .where('key', '>=', prefix)
        .where('key', '<', `${prefix}${new Date(slot.getTime() - DAY_MS).toISOString()}`)
        .execute()
    }
    return won
  }

  async function tick(
    product: string,
    action: ScheduledAction,
    slot: Date,
  ): Promise<ScheduleRun | undefined> {
    if (!(await claim(product, action, slot))) {
      logger.debug('scheduled slot taken by another process', { product, action, slot: slot.toISOString() })
      return undefined
    }
    return run(product, action, slot)
  }

  async function run(product: string, action: ScheduledAction, slot?: Date): Promise<ScheduleRun> {
    const schedule = schedules.find((s) => s.product === product)
    const out: ScheduleRun = {
      product,
      action,
      at: new Date().toISOString(),
      ...(slot ? { slot: slot.toISOString() } : {}),
      results: [],
      skipped: [],
    }
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
    history.push(out)
    if (history.length > 100) history.shift()
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
    new Cron(pattern, { timezone: 'UTC', protect: true, unref: true }, async (self: Cron) => {
      const p = (async () => {
        // The slot this tick is for: the latest scheduled time up to now (the same in every process).
        const slot = self.previousRuns(1, new Date(Date.now() + 1))[0] ?? new Date()
        await tick(product, action, slot)
      })()
        .catch((error) =>
          logger.error('scheduled run failed', { product, action, error: toFailure(error, redactor) }),
        )
        .finally(() => running.delete(p))
      running.add(p)
      await p
    })
  for (const s of schedules) {
    if (s.backup) timers.push(timer(s.backup.cron, s.product, 'scheduledBackup'))
    if (s.snapshotCleanup) timers.push(timer(s.snapshotCleanup.cron, s.product, 'cleanupSnapshots'))
  }
  return {
    run: (product, action) => run(product, action),
    tick,
    last,
    history,
    stop() {
      for (const t of timers) t.stop()
    },
    async close() {
      for (const t of timers) t.stop()
      while (running.size > 0) await Promise.allSettled([...running])
    },
  }
}
