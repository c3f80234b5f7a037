import { toFailure } from '@panelkit/core'
import type { App } from './app.ts'
import { DEFAULT_CONSOLE_CONFIG } from './console/config.ts'

/**
 * Notifications: a webhook POST (JSON) when a job is parked, a ledger entry becomes uncertain, or a
 * sync pass fails, with the reason and a link to the console page. Each event is claimed once in the
 * store (`meta`, `notify:<event>`), before it is sent, so several workers sharing a store, or a
 * restart, never send one event twice (at most once; a webhook that stays down loses the event, and
 * the failure is logged).
 */

export type NotificationEvent = 'job-parked' | 'ledger-uncertain' | 'sync-failed'

export interface Notification {
  event: NotificationEvent
  reason: string
  link: string
  at: string
  serviceId?: string
  jobId?: number
  operation?: string
  ledgerKey?: string
}

export interface Notifier {
  /** Sends a notification once per `eventKey`; false when it was already sent (or is being sent). */
  notify(eventKey: string, n: Omit<Notification, 'at' | 'link'>, page: string): Promise<boolean>
  /** Deliveries still in flight (for tests and shutdown). */
  idle(): Promise<void>
}

const installed = new WeakMap<App, Notifier | undefined>()

/** Installs the notifier on an app once (nothing when `console.notify` is not configured). */
export function startNotifier(app: App): Notifier | undefined {
  if (installed.has(app)) return installed.get(app)
  const n = createNotifier(app)
  installed.set(app, n)
  return n
}

function createNotifier(app: App): Notifier | undefined {
  const cfg = app.config.console ?? DEFAULT_CONSOLE_CONFIG
  if (!cfg.notify) return undefined
  const settings = cfg.notify
  const base = (cfg.publicUrl ?? `http://${app.config.http.listen}`).replace(/\/+$/, '')
  const { engine, store, redactor, logger } = app
  const inFlight = new Set<Promise<unknown>>()

  async function claim(eventKey: string): Promise<boolean> {
    const r = await store.db
      .insertInto('meta')
      .values({ key: `notify:${eventKey}`, value: new Date().toISOString() })
      .onConflict((oc) => oc.column('key').doNothing())
      .executeTakeFirst()
    return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1
  }

  async function deliver(body: Notification): Promise<void> {
    const payload = JSON.stringify(redactor.redact(body))
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const res = await fetch(settings.webhook, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...settings.headers },
          body: payload,
          signal: AbortSignal.timeout(settings.timeoutMs),
        })
        await res.arrayBuffer()
        if (res.ok) return
        if (res.status < 500 && res.status !== 429) throw new Error(`the webhook answered ${res.status}`)
      } catch (error) {
        if (attempt === 3) throw error
      }
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt))
    }
  }

  const notifier: Notifier = {
    async notify(eventKey, n, page) {
      if (!(await claim(eventKey))) return false
      const body: Notification = {
        ...n,
        reason: redactor.redactString(n.reason),
        link: `${base}${page}`,
        at: new Date().toISOString(),
      }
      const p = deliver(body)
        .catch((error) =>
          logger.error('notification not delivered', {
            event: n.event,
            eventKey,
            error: toFailure(error, redactor),
          }),
        )
        .finally(() => inFlight.delete(p))
      inFlight.add(p)
      await p
      return true
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight])
    },
  }

  const track = (p: Promise<unknown>) => {
    const q = p
      .catch((error) => logger.error('notification failed', { error: toFailure(error, redactor) }))
      .finally(() => inFlight.delete(q))
    inFlight.add(q)
  }

  async function uncertainEntries(): Promise<void> {
    for (const e of await store.ledger.list({ state: 'uncertain' })) {
      await notifier.notify(
        `ledger-uncertain:${e.key}:${e.createdAt}`,
        {
          event: 'ledger-uncertain',
          reason: e.reason ?? 'the outcome of the request is unknown: check WHMCS, then settle',
          ledgerKey: e.key,
          ...(e.serviceId ? { serviceId: e.serviceId } : {}),
        },
        '/console/ledger',
      )
    }
  }

  engine.on((event) => {
    if (event.type !== 'job-parked') return
    const { job, error } = event
    track(
      (async () => {
        await notifier.notify(
          // A job parked again after a retry is a new event; its updated time tells them apart.
          `job-parked:${job.id}:${job.attempts}:${job.updatedAt}`,
          {
            event: 'job-parked',
            reason: `${error.code}: ${error.detail}`,
            jobId: job.id,
            operation: job.operation,
            serviceId: job.serviceId,
          },
          job.serviceId.startsWith('client:')
            ? '/console/parked'
            : `/console/services/${encodeURIComponent(job.serviceId)}`,
        )
        if (job.operation === 'pushUsage' || job.operation === 'creditDeposit') await uncertainEntries()
      })(),
    )
  })

  engine.on((event) => {
    if (event.type === 'sync-done' && !event.summary.complete && event.summary.pass === 'full')
      track(
        notifier.notify(
          `sync-failed:${event.startedAt}`,
          {
            event: 'sync-failed',
            reason: `the pass could not read every WHMCS page: ${event.summary.errors
              .slice(0, 3)
              .map((e) => `${e.stage} ${e.code}: ${e.message}`)
              .join('; ')}`,
          },
          '/console/drift',
        ),
      )
    else if (event.type === 'sync-failed') {
      const f = toFailure(event.error, redactor)
      track(
        notifier.notify(
          `sync-failed:${event.startedAt}`,
          { event: 'sync-failed', reason: `${f.code}: ${f.detail}` },
          '/console',
        ),
      )
    }
  })
  return notifier
}
