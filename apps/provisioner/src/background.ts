import type { App } from './app.ts'
import { type Notifier, startNotifier } from './notify.ts'
import { type Scheduler, startScheduler } from './scheduler.ts'

/**
 * What runs beside the jobs in every long-lived process (`serve` and `worker`): the notifier
 * (webhook, e-mail) and the scheduler's timers. Several processes may share a store; each event and
 * each scheduled slot is claimed in the store first, so it is acted on once (src/notify.ts,
 * src/scheduler.ts). Both stop when the app closes, before the engine and the store.
 */
export interface Background {
  notifier: Notifier | undefined
  scheduler: Scheduler | undefined
}

const started = new WeakMap<App, Background>()

export function startBackground(app: App, options: { scheduler?: boolean } = {}): Background {
  const existing = started.get(app)
  if (existing) return existing
  const notifier = startNotifier(app)
  let scheduler: Scheduler | undefined
  if (options.scheduler !== false && (app.config.schedules ?? []).length > 0) {
    const s = startScheduler(app)
    scheduler = s
    app.onClose(() => s.close())
  }
  const out = { notifier, scheduler }
  started.set(app, out)
  return out
}
