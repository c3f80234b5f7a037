import { toFailure } from '@panelkit/core'
import { createTransport, type Transporter } from 'nodemailer'
import type { App } from './app.ts'
import { DEFAULT_CONSOLE_CONFIG, type SmtpConfig } from './console/config.ts'

/**
 * Notifications: a webhook POST (JSON) and/or an e-mail through an SMTP server (nodemailer) when a job
 * is parked, a ledger entry becomes uncertain, or a sync pass fails, with the reason and a link to the
 * console page. Each event is claimed once in the store (`meta`, `notify:<event>`), before it is sent,
 * so several processes sharing a store (`serve` and any number of `worker`s), or a restart, never send
 * one event twice (at most once; a channel that stays down loses the event, and the failure is logged).
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
  /** Stops listening to the engine, waits for deliveries under way and closes the SMTP transport. */
  close(): Promise<void>
}

const installed = new WeakMap<App, Notifier | undefined>()

/**
 * Installs the notifier on an app once (nothing when `console.notify` is not configured); it closes
 * with the app.
 */
export function startNotifier(app: App): Notifier | undefined {
  if (installed.has(app)) return installed.get(app)
  const n = createNotifier(app)
  installed.set(app, n)
  if (n) app.onClose(() => n.close())
  return n
}

const SUBJECTS: Record<NotificationEvent, string> = {
  'job-parked': 'job parked',
  'ledger-uncertain': 'ledger entry uncertain',
  'sync-failed': 'sync pass failed',
}

/** The e-mail's text: what happened, where to look, and the facts the webhook's JSON carries. */
export function emailText(n: Notification): { subject: string; text: string } {
  const about = n.serviceId ? ` (service ${n.serviceId}${n.operation ? `, ${n.operation}` : ''})` : ''
  const lines = [
    `${SUBJECTS[n.event]}${about}`,
    '',
    `Reason: ${n.reason}`,
    `Console: ${n.link}`,
    '',
    `Event: ${n.event}`,
    `At: ${n.at}`,
    ...(n.serviceId ? [`Service: ${n.serviceId}`] : []),
    ...(n.jobId !== undefined ? [`Job: ${n.jobId}`] : []),
    ...(n.operation ? [`Operation: ${n.operation}`] : []),
    ...(n.ledgerKey ? [`Ledger entry: ${n.ledgerKey}`] : []),
  ]
  return { subject: `${SUBJECTS[n.event]}${about}`, text: `${lines.join('\n')}\n` }
}

function smtpTransport(settings: SmtpConfig, timeoutMs: number): Transporter {
  return createTransport({
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    requireTLS: !settings.secure && settings.starttls === 'required',
    ignoreTLS: !settings.secure && settings.starttls === 'never',
    ...(settings.auth ? { auth: { user: settings.auth.user, pass: settings.auth.pass } } : {}),
    ...(settings.ca ? { tls: { ca: settings.ca } } : {}),
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    // nodemailer's own logging stays off: it would print the SMTP dialogue, AUTH included.
    logger: false,
    debug: false,
  })
}

function createNotifier(app: App): Notifier | undefined {
  const cfg = app.config.console ?? DEFAULT_CONSOLE_CONFIG
  if (!cfg.notify) return undefined
  const settings = cfg.notify
  const base = (cfg.publicUrl ?? `http://${app.config.http.listen}`).replace(/\/+$/, '')
  const { engine, store, redactor, logger } = app
  const inFlight = new Set<Promise<unknown>>()
  if (settings.email?.auth) {
    const { user, pass } = settings.email.auth
    redactor.addValue(pass)
    // AUTH PLAIN and LOGIN carry the password base64-encoded: masked in that form too.
    redactor.addValue(Buffer.from(`\u0000${user}\u0000${pass}`).toString('base64'))
    redactor.addValue(Buffer.from(pass).toString('base64'))
  }
  const mail = settings.email ? smtpTransport(settings.email, settings.timeoutMs) : undefined

  async function claim(eventKey: string): Promise<boolean> {
    const r = await store.db
      .insertInto('meta')
      .values({ key: `notify:${eventKey}`, value: new Date().toISOString() })
      .onConflict((oc) => oc.column('key').doNothing())
      .executeTakeFirst()
    return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1
  }

  async function withRetries(send: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send()
      } catch (error) {
        if (attempt === 3 || (error as { permanent?: boolean }).permanent) throw error
      }
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt))
    }
  }

  async function postWebhook(url: string, body: Notification): Promise<void> {
    const payload = JSON.stringify(body)
    await withRetries(async () => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...settings.headers },
        body: payload,
        signal: AbortSignal.timeout(settings.timeoutMs),
      })
      await res.arrayBuffer()
      if (res.ok) return
      const error = Object.assign(new Error(`the webhook answered ${res.status}`), {
        permanent: res.status < 500 && res.status !== 429,
      })
      throw error
    })
  }

  async function sendEmail(transport: Transporter, smtp: SmtpConfig, body: Notification): Promise<void> {
    const { subject, text } = emailText(body)
    await withRetries(async () => {
      try {
        await transport.sendMail({
          from: smtp.from,
          to: smtp.to,
          subject: `${smtp.subjectPrefix} ${subject}`.trim(),
          text,
        })
      } catch (error) {
        // A refused login or address does not get better by asking again. nodemailer's message
        // names the SMTP reply ("Invalid login: 535 …"), never the credentials.
        const e = error as Error & { code?: string; responseCode?: number }
        const status = e.responseCode ?? 0
        throw Object.assign(new Error(`SMTP ${settings.email?.host}: ${e.message}`), {
          permanent: e.code === 'EAUTH' || e.code === 'EENVELOPE' || (status >= 500 && status < 600),
        })
      }
    })
  }

  async function deliver(eventKey: string, n: NotificationEvent, body: Notification): Promise<void> {
    const channels: [string, () => Promise<void>][] = []
    if (settings.webhook) channels.push(['webhook', () => postWebhook(settings.webhook as string, body)])
    if (mail && settings.email)
      channels.push(['email', () => sendEmail(mail, settings.email as SmtpConfig, body)])
    // Each channel on its own: an SMTP server that is down does not keep the webhook from firing.
    await Promise.all(
      channels.map(([channel, send]) =>
        send().catch((error) =>
          logger.error('notification not delivered', {
            event: n,
            eventKey,
            channel,
            error: toFailure(error, redactor),
          }),
        ),
      ),
    )
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
      const p = deliver(eventKey, n.event, redactor.redact(body)).finally(() => inFlight.delete(p))
      inFlight.add(p)
      await p
      return true
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight])
    },
    async close() {
      for (const off of unsubscribe.splice(0)) off()
      await notifier.idle()
      mail?.close()
    },
  }
  const unsubscribe: (() => void)[] = []

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

  unsubscribe.push(
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
    }),
  )

  unsubscribe.push(
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
    }),
  )
  return notifier
}
