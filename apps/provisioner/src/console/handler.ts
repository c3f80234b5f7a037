import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { toFailure } from '@panelkit/core'
import { sql } from 'kysely'
import { z } from 'zod'
import type { App } from '../app.ts'
import { apiTokens } from '../config.ts'
import { serverInput } from '../engine/engine.ts'
import { getJob, type Job, listJobs } from '../engine/jobs.ts'
import { getService, type ServiceRecord, serviceFromRow } from '../engine/services.ts'
import { createAppMetrics } from '../http/metrics.ts'
import { buildOpenApi } from '../http/openapi.ts'
import { DEFAULT_CONSOLE_CONFIG } from './config.ts'
import { type Html, html } from './html.ts'
import { cancelParked } from './ops.ts'
import { actionForm, layout, logRows, stateBadge, table, timeline } from './pages.ts'
import {
  type ConsoleToken,
  cookie,
  cookies,
  isTls,
  LOGIN_COOKIE,
  newSecret,
  SESSION_COOKIE,
  type Session,
  SessionStore,
  sameSecret,
  securityHeaders,
  tokenMatches,
} from './session.ts'

/**
 * The operator console (`/console/**`), `GET /metrics` and `GET /openapi.json`, served by the API's
 * server. The handler answers the requests it owns and returns false for the rest. Actions call the
 * same engine functions as the API routes (`engine.retry`, `engine.settle`, `engine.sync`, the
 * connector's `sso` and custom actions).
 */

const require = createRequire(import.meta.url)
const ASSETS: Record<string, { type: string; body: () => Buffer }> = {
  'htmx.min.js': {
    type: 'text/javascript; charset=utf-8',
    body: once(() => readFileSync(require.resolve('htmx.org/dist/htmx.min.js'))),
  },
  'console.css': {
    type: 'text/css; charset=utf-8',
    body: once(() => readFileSync(new URL('./console.css', import.meta.url))),
  },
}

function once<T>(fn: () => T): () => T {
  let v: { value: T } | undefined
  return () => {
    v ??= { value: fn() }
    return v.value
  }
}

type Probe =
  | {
      kind: 'found'
      /** active, suspended, absent (not on the server) or unknown. */
      state: string
      /** What the connector reported (e.g. a VM's running or stopped). */
      status: string
      ms: number
      server: string
      fields: { key: string; label: string; value: unknown; unit?: string }[]
    }
  | { kind: 'error' | 'unplaced' | 'unsupported'; text: string }

class ConsoleError extends Error {
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

const Id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'must be a plain id')
const ServicesQuerySchema = z
  .object({
    state: z.enum(['none', 'active', 'suspended', 'terminated']),
    connector: z.string().max(64),
    server: z.string().max(64),
    client: z.string().regex(/^\d{1,12}$/, 'must be a WHMCS client id'),
    q: z.string().max(100),
  })
  .partial()
const LogQuerySchema = z
  .object({
    serviceId: Id,
    connector: z.string().max(64),
    outcome: z.enum(['ok', 'error', 'dry-run']),
    from: z.string().regex(/^\d{4}-\d\d-\d\d(T\d\d:\d\d)?$/, 'must be a date such as 2026-05-01T10:00'),
    to: z.string().regex(/^\d{4}-\d\d-\d\d(T\d\d:\d\d)?$/, 'must be a date such as 2026-05-01T10:00'),
  })
  .partial()
const SettleFormSchema = z.object({
  key: z.string().min(1).max(200),
  outcome: z.enum(['done', 'release']),
  confirm: z.literal('yes').optional(),
})

export interface ConsoleHandler {
  (req: IncomingMessage, res: ServerResponse): Promise<boolean>
  metrics: ReturnType<typeof createAppMetrics>
  sessions: SessionStore
  /** The separate metrics address once it listens (`console.metrics.listen`). */
  metricsUrl?: string
}

const handlers = new WeakMap<App, ConsoleHandler>()

/** The console's request handler for an app (one per app: its metrics observe the app's engine once). */
export function consoleHandler(app: App): ConsoleHandler {
  const existing = handlers.get(app)
  if (existing) return existing
  const h = createConsoleHandler(app)
  handlers.set(app, h)
  return h
}

function blank(v: string | null): string | undefined {
  return v === null || v === '' ? undefined : v
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value)
  if (!r.success)
    throw new ConsoleError(
      400,
      'PANELKIT_ERR_VALIDATION',
      `Invalid request: ${r.error.issues.map((i) => `${i.path.join('.') || '(form)'}: ${i.message}`).join('; ')}`,
    )
  return r.data
}

async function readForm(req: IncomingMessage, limit = 16 * 1024): Promise<URLSearchParams> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit) throw new ConsoleError(413, 'PANELKIT_ERR_PAYLOAD_TOO_LARGE', 'The form is too large')
    chunks.push(chunk as Buffer)
  }
  const type = req.headers['content-type'] ?? ''
  if (size > 0 && !type.startsWith('application/x-www-form-urlencoded'))
    throw new ConsoleError(400, 'PANELKIT_ERR_VALIDATION', 'Console actions take a form body')
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 120) return `${s}s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  return `${Math.round(s / 3600)} h`
}

export function createConsoleHandler(app: App): ConsoleHandler {
  const cfg = app.config.console ?? DEFAULT_CONSOLE_CONFIG
  const { engine, store } = app
  // The console acts with an operator's full power (retry, cancel, settle, SSO, custom actions): only a
  // token with the admin scope signs in. /metrics needs a token with the read scope.
  const tokens: ConsoleToken[] = apiTokens(app.config).filter((t) => t.scopes.includes('admin'))
  const readTokens = apiTokens(app.config)
    .filter((t) => t.scopes.includes('read') || t.scopes.includes('admin'))
    .map((t) => t.token)
  const metrics = createAppMetrics(app)
  const sessions = new SessionStore(store.db, cfg.sessionMinutes)
  const whmcsStatus = new Map<string, { at: number; value: Promise<string> }>()

  const secure = (req: IncomingMessage) => cfg.secureCookie || isTls(req)

  function sendHtml(
    res: ServerResponse,
    status: number,
    page: Html,
    headers: Record<string, string | string[]> = {},
  ) {
    securityHeaders(res)
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers })
    res.end(page.value)
  }
  function redirect(res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}) {
    securityHeaders(res)
    res.writeHead(303, { location, ...headers })
    res.end()
  }
  /**
   * Where an action returns to (a console page named by the form, else the overview), with its
   * outcome kept in the session for the next page — not in the URL, where anyone could write one.
   */
  async function back(
    s: Session,
    form: URLSearchParams,
    flash: string,
    kind: 'ok' | 'error' = 'ok',
  ): Promise<string> {
    const to = form.get('back') ?? '/console'
    await sessions.setFlash(s, { kind, text: flash.slice(0, 500) })
    return /^\/console(\/[A-Za-z0-9_.:/-]*)?$/.test(to) ? to : '/console'
  }

  // ---- pages --------------------------------------------------------------------------------------

  async function overview(): Promise<Html> {
    const [byState, jobCounts, uncertain, calls] = await Promise.all([
      store.db
        .selectFrom('services')
        .select(['actual', 'connector', (eb) => eb.fn.countAll<number>().as('n')])
        .groupBy(['actual', 'connector'])
        .execute(),
      store.db
        .selectFrom('jobs')
        .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('status', 'in', ['queued', 'running', 'parked'])
        .groupBy('status')
        .execute(),
      store.db
        .selectFrom('ledger_entries')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('state', '=', 'uncertain')
        .executeTakeFirstOrThrow(),
      store.db
        .selectFrom('module_log')
        .select(['connector', 'outcome', (eb) => eb.fn.countAll<number>().as('n')])
        .where('time', '>=', new Date(Date.now() - 3_600_000).toISOString())
        .groupBy(['connector', 'outcome'])
        .execute(),
    ])
    const states = ['none', 'active', 'suspended', 'terminated']
    const connectors = [...new Set(byState.map((r) => r.connector))].sort()
    const count = (state: string, connector?: string) =>
      byState
        .filter((r) => r.actual === state && (connector === undefined || r.connector === connector))
        .reduce((n, r) => n + Number(r.n), 0)
    const jobsIn = (status: string) => Number(jobCounts.find((r) => r.status === status)?.n ?? 0)
    const last = metrics.lastSync()
    const rate = new Map<string, { total: number; errors: number }>()
    for (const r of calls) {
      const x = rate.get(r.connector) ?? { total: 0, errors: 0 }
      x.total += Number(r.n)
      if (r.outcome === 'error') x.errors += Number(r.n)
      rate.set(r.connector, x)
    }
    return html`<section class="cards">
<a class="card" href="/console/services"><span class="n" data-metric="services">${count('active') + count('suspended') + count('none') + count('terminated')}</span> services</a>
<a class="card" href="/console/services"><span class="n" data-metric="queued">${jobsIn('queued')}</span> queued jobs</a>
<a class="card" href="/console/services"><span class="n" data-metric="running">${jobsIn('running')}</span> running</a>
<a class="card${jobsIn('parked') > 0 ? ' alert' : ''}" href="/console/parked"><span class="n" data-metric="parked">${jobsIn('parked')}</span> parked</a>
<a class="card${Number(uncertain.n) > 0 ? ' alert' : ''}" href="/console/ledger"><span class="n" data-metric="uncertain">${Number(uncertain.n)}</span> uncertain ledger entries</a>
<span class="card"><span class="n">${last ? ago(Date.now() - last.at) : '–'}</span> since the last sync${last ? html` (${last.ok ? `ok, ${last.summary?.servicesSeen ?? 0} services read` : 'with errors'})` : html` (none yet in this process)`}</span>
</section>
<h2>Services by confirmed state</h2>
${table(
  ['connector', ...states],
  connectors.map(
    (c) =>
      html`<tr><td>${c}</td>${states.map((st) => html`<td><a href="/console/services?connector=${encodeURIComponent(c)}&amp;state=${st}">${count(st, c)}</a></td>`)}</tr>`,
  ),
  'No services yet: a sync queues them from WHMCS.',
)}
<h2>External calls in the last hour</h2>
${table(
  ['connector', 'calls', 'errors', 'error rate'],
  [...rate.entries()].map(
    ([c, x]) =>
      html`<tr><td><a href="/console/log?connector=${encodeURIComponent(c)}">${c}</a></td><td>${x.total}</td><td>${x.errors}</td><td>${((x.errors / x.total) * 100).toFixed(1)}%</td></tr>`,
  ),
  'No external calls in the last hour.',
)}`
  }

  async function servicesPage(url: URL): Promise<Html> {
    const q = parseWith(ServicesQuerySchema, {
      state: blank(url.searchParams.get('state')),
      connector: blank(url.searchParams.get('connector')),
      server: blank(url.searchParams.get('server')),
      client: blank(url.searchParams.get('client')),
      q: blank(url.searchParams.get('q')),
    })
    let query = store.db.selectFrom('services').selectAll()
    if (q.state) query = query.where('actual', '=', q.state)
    if (q.connector) query = query.where('connector', '=', q.connector)
    if (q.server) query = query.where('server_id', '=', q.server)
    if (q.client) query = query.where('client_id', '=', q.client)
    if (q.q) {
      const like = `%${q.q.replace(/[%_\\]/g, (c) => `\\${c}`)}%`
      query = query.where((eb) =>
        eb.or([
          eb('service_id', 'like', like),
          eb('username', 'like', like),
          eb(sql<string>`coalesce(account_id, '')`, 'like', like),
          eb(sql<string>`coalesce(ips_json, '')`, 'like', like),
        ]),
      )
    }
    const rows = (await query.orderBy('service_id').limit(200).execute()).map(serviceFromRow)
    return table(
      ['service', 'client', 'connector', 'server', 'wanted', 'confirmed', 'last step', 'error'],
      rows.map(
        (r) =>
          html`<tr><td><a href="/console/services/${encodeURIComponent(r.serviceId)}">${r.serviceId}</a></td><td>${r.clientId}</td><td>${r.connector}</td><td>${r.serverId ?? '-'}</td><td>${stateBadge(r.desired)}</td><td>${stateBadge(r.actual)}</td><td>${r.lastStep ?? ''}</td><td class="error">${r.lastError ?? ''}</td></tr>`,
      ),
      'No service matches.',
    )
  }

  function servicesFilter(url: URL): Html {
    const v = (k: string) => url.searchParams.get(k) ?? ''
    const options = (name: string, values: readonly string[]) =>
      html`<select name="${name}"><option value="">any ${name}</option>${values.map(
        (x) => html`<option${v(name) === x ? html` selected` : ''}>${x}</option>`,
      )}</select>`
    return html`<form method="get" action="/console/services" class="filters">
${options('state', ['none', 'active', 'suspended', 'terminated'])}
${options('connector', engine.connectorIds)}
${options(
  'server',
  app.config.servers.map((s) => s.id),
)}
<input name="client" placeholder="client id" value="${v('client')}" size="8">
<input name="q" type="search" placeholder="service, username, account, IP" value="${v('q')}">
<button type="submit">Filter</button></form>`
  }

  function statusInWhmcs(serviceId: string): Promise<string> {
    const hit = whmcsStatus.get(serviceId)
    if (hit && Date.now() - hit.at < 15_000) return hit.value
    const w = engine.whmcs
    const value = w
      ? w
          .getClientsProducts({ serviceid: serviceId })
          .then((r) => {
            const p = r.products.find((x) => String(x.id) === serviceId)
            return p?.status ? String(p.status) : 'not found in WHMCS'
          })
          .catch((error) => `unknown (${toFailure(error, app.redactor).code})`)
      : Promise.resolve('no WHMCS configured')
    whmcsStatus.set(serviceId, { at: Date.now(), value })
    return value
  }

  async function servicePage(s: Session, id: string): Promise<Html> {
    const serviceId = parseWith(Id, id)
    const service = await getService(store.db, serviceId)
    if (!service) throw new ConsoleError(404, 'PANELKIT_ERR_NOT_FOUND', `No service ${serviceId}`)
    const [jobs, log, status] = await Promise.all([
      listJobs(store.db, { serviceId, limit: 20 }),
      engine.moduleLog.query({ serviceId, limit: 25 }),
      statusInWhmcs(serviceId),
    ])
    const here = `/console/services/${encodeURIComponent(serviceId)}`
    const connector = engine.connector(service.connector)
    // The connector's admin buttons that take no parameters (others need a form of their own).
    const custom =
      connector?.capabilities.actions.filter((a) => {
        const params = connector.definition.actions?.[a.name]?.params
        return a.audience.includes('admin') && (!params || params.safeParse({}).success)
      }) ?? []
    const live = service.actual === 'active' || service.actual === 'suspended'
    const parked = jobs.filter((j) => j.status === 'parked')
    return html`<dl class="facts">
<dt>WHMCS status</dt><dd data-field="whmcs">${status}</dd>
<dt>Wanted</dt><dd data-field="wanted">${stateBadge(service.desired)}${service.plan ? ` plan ${service.plan}` : ''}</dd>
<dt>Confirmed</dt><dd data-field="confirmed">${stateBadge(service.actual)}${service.confirmedPlan ? ` plan ${service.confirmedPlan}` : ''}</dd>
<dt>Placed on</dt><dd>${service.serverId ?? 'not placed'}${service.username ? ` · ${service.username}` : ''}${service.accountId ? ` · account ${service.accountId}` : ''}${service.ips.length ? ` · ${service.ips.join(', ')}` : ''}</dd>
<dt>Client, product</dt><dd>${service.clientId}, ${service.productId} (${service.connector})</dd>
${service.lastError ? html`<dt>Last error</dt><dd class="error">${service.lastError}</dd>` : ''}
</dl>
<div class="actions">
${engine.whmcs ? actionForm(`${here}/sync`, s.csrf, 'Sync now', { back: here }) : ''}
${parked.map((j) => [
  actionForm(`/console/jobs/${j.id}/retry`, s.csrf, `Retry parked job ${j.id}`, { back: here }),
  actionForm(`/console/jobs/${j.id}/cancel`, s.csrf, `Cancel parked job ${j.id}`, { back: here }, true),
])}
${live && connector?.capabilities.operations.includes('sso') ? [actionForm(`${here}/sso`, s.csrf, 'Sign in as admin', { audience: 'admin' }), actionForm(`${here}/sso`, s.csrf, 'Sign in as client', { audience: 'client' })] : ''}
</div>
${live && custom.length ? html`<details class="connector-actions"><summary>${service.connector} actions (${custom.length})</summary>${custom.map((a) => actionForm(`${here}/action`, s.csrf, a.label, { name: a.name }))}</details>` : ''}
<h2>Jobs</h2>
${jobs.length === 0 ? html`<p class="empty">No jobs.</p>` : [...jobs].reverse().map((j) => jobBlock(j))}
<h2>Module log <small><a href="/console/log?serviceId=${encodeURIComponent(serviceId)}">(all of this service's calls)</a></small></h2>
${table(['time', 'service', 'connector', 'operation', 'call', 'outcome', 'duration', 'error'], logRows(log.reverse()), 'No calls logged for this service.')}`
  }

  // ---- the live probe: the service as its server has it now ----------------------------------------

  /**
   * Loaded once per page view, and again on request. It sits above the live region (next to the
   * facts it compares with), so the region's polling does not ask the server every two seconds.
   */
  function probeBlock(here: string): Html {
    return html`<dl class="facts probe-facts"><dt>On the server now</dt>${probePlaceholder(here)}</dl>`
  }
  function probePlaceholder(here: string): Html {
    return html`<dd id="probe" class="probe probe-loading" hx-get="${here}/probe" hx-trigger="load" hx-swap="outerHTML"><a href="${here}/probe">Ask the server</a></dd>`
  }

  /**
   * Reads the service on its server with the connector's read-only `clientArea` operation (every
   * connector reports a `status` there), under a short deadline. Compares what it finds with the
   * wanted and the confirmed state; an error is shown as its code and redacted detail.
   */
  async function probe(service: ServiceRecord): Promise<Probe> {
    const connector = engine.connector(service.connector)
    const serverId = service.serverId ?? (await store.assignments.get(service.serviceId))
    const server = serverId ? engine.server(serverId) : undefined
    if (!connector?.capabilities.operations.includes('clientArea'))
      return { kind: 'unsupported', text: `${service.connector} cannot be asked for a service's state` }
    if (!server) return { kind: 'unplaced', text: 'not placed on a server: nothing to ask' }
    const input: Record<string, unknown> = {
      ...(service.context as Record<string, unknown>),
      settings: service.settings,
      ...(service.username ? { username: service.username } : {}),
      server: serverInput(server),
    }
    delete input.password
    const started = performance.now()
    const r = await connector.invoke('clientArea', { service: input } as never, {
      timeoutMs: cfg.probeTimeoutMs,
    })
    const ms = Math.round(performance.now() - started)
    if (r.ok) {
      const fields = (r.data as { fields: { key: string; label: string; value: unknown; unit?: string }[] })
        .fields
      const raw = fields.find((f) => f.key === 'status')?.value
      const status = typeof raw === 'string' ? raw : 'unknown'
      // A stopped or running VM is an account that exists and is not suspended.
      const state = status === 'suspended' ? 'suspended' : status === 'unknown' ? 'unknown' : 'active'
      return { kind: 'found', state, status, ms, server: server.id, fields }
    }
    if (r.error.code === 'NOT_FOUND')
      return { kind: 'found', state: 'absent', status: 'not found', ms, server: server.id, fields: [] }
    const detail = app.redactor.redactString(`${r.error.code}: ${r.error.detail}`).slice(0, 400)
    return {
      kind: 'error',
      text:
        r.error.code === 'TIMEOUT'
          ? `no answer from ${server.id} within ${cfg.probeTimeoutMs / 1000} s`
          : `could not ask ${server.id}: ${detail}`,
    }
  }

  function probeFragment(here: string, service: ServiceRecord, p: Probe): Html {
    const again = html`<button type="button" class="probe-again" hx-get="${here}/probe" hx-target="#probe" hx-swap="outerHTML">Ask again</button>`
    if (p.kind !== 'found')
      return html`<dd id="probe" class="probe probe-${p.kind}" data-probe="${p.kind}"><span class="${p.kind === 'error' ? 'error' : ''}">${p.text}</span> ${again}</dd>`
    // What a confirmed state looks like on the server: terminated and never-created are "absent".
    const expect = (s: string) => (s === 'terminated' || s === 'none' ? 'absent' : s)
    const differsConfirmed = p.state !== 'unknown' && p.state !== expect(service.actual)
    const differsWanted = p.state !== 'unknown' && p.state !== expect(service.desired)
    const notes: Html[] = []
    if (differsConfirmed)
      notes.push(html`<strong class="differs">differs from confirmed (${service.actual})</strong>`)
    if (differsWanted && service.desired !== service.actual)
      notes.push(html`<strong class="differs">differs from wanted (${service.desired})</strong>`)
    const details = p.fields
      .filter((f) => f.key !== 'status')
      .slice(0, 8)
      .map((f) => `${f.label}: ${f.value === null ? '-' : String(f.value)}${f.unit ? ` ${f.unit}` : ''}`)
      .join(' · ')
    return html`<dd id="probe" class="probe${differsConfirmed ? ' probe-differs' : ''}" data-probe="found" data-probe-state="${p.state}">${stateBadge(p.state === 'absent' ? 'absent' : p.state)}${p.status !== p.state && p.state !== 'absent' ? ` (${p.status})` : ''} ${notes} <small>on ${p.server}, asked ${new Date().toISOString().slice(11, 19)} UTC, ${p.ms} ms</small> ${again}${details ? html`<br><small class="probe-details">${app.redactor.redactString(details)}</small>` : ''}</dd>`
  }

  async function probePage(
    req: IncomingMessage,
    res: ServerResponse,
    s: Session,
    id: string,
    flash: Session['flash'],
  ): Promise<void> {
    const serviceId = parseWith(Id, id)
    const service = await getService(store.db, serviceId)
    if (!service) throw new ConsoleError(404, 'PANELKIT_ERR_NOT_FOUND', `No service ${serviceId}`)
    const here = `/console/services/${encodeURIComponent(serviceId)}`
    const fragment = probeFragment(here, service, await probe(service))
    if (req.headers['hx-request'] !== undefined) {
      sendHtml(res, 200, fragment)
      return
    }
    sendHtml(
      res,
      200,
      layout(
        { title: `Service ${serviceId} on the server`, path: here, csrf: s.csrf, flash },
        html`<dl class="facts">
<dt>Wanted</dt><dd data-field="wanted">${stateBadge(service.desired)}</dd>
<dt>Confirmed</dt><dd data-field="confirmed">${stateBadge(service.actual)}</dd>
<dt>On the server</dt>${fragment}
</dl><p><a href="${here}">Back to service ${serviceId}</a></p>`,
      ),
    )
  }

  function jobBlock(j: Job): Html {
    return html`<section class="job job-${j.status}" data-job="${j.id}"><h3>Job ${j.id}: ${j.operation} ${stateBadge(j.status)} <small>${j.source}, ${new Date(j.createdAt).toISOString().replace('T', ' ').slice(0, 19)}</small></h3>
${timeline(j)}${j.lastError ? html`<p class="error">${j.lastError.code}: ${j.lastError.detail}</p>` : ''}</section>`
  }

  async function parkedPage(s: Session): Promise<Html> {
    const jobs = await listJobs(store.db, { status: ['parked'], limit: 500 })
    return table(
      ['job', 'service', 'operation', 'attempts', 'reason', ''],
      jobs.map(
        (j) =>
          html`<tr data-job="${j.id}"><td>${j.id}</td><td><a href="/console/services/${encodeURIComponent(j.serviceId)}">${j.serviceId}</a></td><td>${j.operation}</td><td>${j.attempts}</td><td class="error">${j.lastError ? `${j.lastError.code}: ${j.lastError.detail}` : ''}</td><td>${actionForm(`/console/jobs/${j.id}/retry`, s.csrf, 'Retry', { back: '/console/parked' })}${actionForm(`/console/jobs/${j.id}/cancel`, s.csrf, 'Cancel', { back: '/console/parked' }, true)}</td></tr>`,
      ),
      'No parked jobs.',
    )
  }

  async function driftPage(): Promise<Html> {
    const report = await engine.drift()
    return html`<p>${report.complete ? 'Every WHMCS page was read.' : 'Incomplete: some WHMCS pages could not be read, so nothing is reported as unknown to WHMCS.'}</p>
${table(
  ['service', 'kind', 'WHMCS', 'wanted', 'confirmed', 'open', 'parked', 'message'],
  report.entries.map(
    (e) =>
      html`<tr><td><a href="/console/services/${encodeURIComponent(e.serviceId)}">${e.serviceId}</a></td><td>${e.kind}</td><td>${e.whmcsStatus ?? ''}</td><td>${e.intended ?? ''}</td><td>${e.confirmed ?? ''}</td><td>${e.openJobs}</td><td>${e.parkedJobs}</td><td>${e.message}</td></tr>`,
  ),
  'No drift: every service is as WHMCS asks.',
)}
${
  report.errors.length
    ? table(
        ['service', 'stage', 'code', 'message'],
        report.errors.map(
          (e) =>
            html`<tr><td>${e.serviceId ?? ''}</td><td>${e.stage}</td><td>${e.code}</td><td>${e.message}</td></tr>`,
        ),
      )
    : ''
}`
  }

  async function ledgerPage(s: Session): Promise<Html> {
    const entries = await store.ledger.list({ limit: 500 })
    entries.sort((a, b) => (a.state === 'uncertain' ? -1 : 0) - (b.state === 'uncertain' ? -1 : 0))
    return table(
      ['key', 'kind', 'service', 'state', 'phase', 'reason', 'created', ''],
      entries.map(
        (e) =>
          html`<tr data-key="${e.key}"><td><code>${e.key}</code></td><td>${e.kind}</td><td>${e.serviceId ?? ''}</td><td>${stateBadge(e.state)}</td><td>${e.phase}</td><td>${e.reason ?? ''}</td><td>${e.createdAt.replace('T', ' ').slice(0, 19)}</td><td>${
            e.state === 'uncertain'
              ? [
                  actionForm('/console/ledger/settle', s.csrf, 'It is in WHMCS: settle as done', {
                    key: e.key,
                    outcome: 'done',
                  }),
                  actionForm(
                    '/console/ledger/settle',
                    s.csrf,
                    'It is not: release to send once',
                    { key: e.key, outcome: 'release' },
                    true,
                  ),
                ]
              : ''
          }</td></tr>`,
      ),
      'No usage pushes or credits yet.',
    )
  }

  function settleConfirm(s: Session, key: string, outcome: 'done' | 'release'): Html {
    return layout(
      { title: 'Settle a ledger entry', path: '/console/ledger', csrf: s.csrf },
      html`<p class="confirm">${
        outcome === 'done'
          ? `Settle ${key} as done: you checked WHMCS and the item is there. Its parked job finishes without sending.`
          : `Release ${key}: you checked WHMCS and the item is not there. Its parked job sends it once more.`
      }</p>
${actionForm('/console/ledger/settle', s.csrf, 'Confirm', { key, outcome, confirm: 'yes' })} <a href="/console/ledger">Back</a>`,
    )
  }

  async function logPage(url: URL): Promise<Html> {
    const q = parseWith(LogQuerySchema, {
      serviceId: blank(url.searchParams.get('serviceId')),
      connector: blank(url.searchParams.get('connector')),
      outcome: blank(url.searchParams.get('outcome')),
      from: blank(url.searchParams.get('from')),
      to: blank(url.searchParams.get('to')),
    })
    let query = store.db.selectFrom('module_log').select(['id', 'entry_json'])
    if (q.serviceId) query = query.where('service_id', '=', q.serviceId)
    if (q.connector) query = query.where('connector', '=', q.connector)
    if (q.outcome) query = query.where('outcome', '=', q.outcome)
    if (q.from) query = query.where('time', '>=', new Date(`${q.from}Z`).toISOString())
    if (q.to) query = query.where('time', '<=', new Date(`${q.to}Z`).toISOString())
    await engine.moduleLog.flush()
    const rows = await query.orderBy('id', 'desc').limit(200).execute()
    const entries = rows.map((r) => ({ ...JSON.parse(r.entry_json), seq: Number(r.id) }))
    return table(
      ['time', 'service', 'connector', 'operation', 'call', 'outcome', 'duration', 'error'],
      logRows(entries),
      'No calls match.',
    )
  }

  function logFilter(url: URL): Html {
    const v = (k: string) => url.searchParams.get(k) ?? ''
    return html`<form method="get" action="/console/log" class="filters">
<input name="serviceId" placeholder="service id" value="${v('serviceId')}" size="8">
<input name="connector" placeholder="connector" value="${v('connector')}" size="14">
<select name="outcome"><option value="">any outcome</option>${['ok', 'error', 'dry-run'].map((o) => html`<option${v('outcome') === o ? html` selected` : ''}>${o}</option>`)}</select>
<label>from <input name="from" type="datetime-local" value="${v('from')}"></label>
<label>to <input name="to" type="datetime-local" value="${v('to')}"></label>
<button type="submit">Search</button></form><p class="hint">Times are UTC. Requests and answers are kept redacted in the store; the console shows the call and its outcome.</p>`
  }

  // ---- actions ------------------------------------------------------------------------------------

  async function act(s: Session, req: IncomingMessage, res: ServerResponse, parts: string[]): Promise<void> {
    const form = await readForm(req)
    const given = form.get('_csrf') ?? (req.headers['x-csrf-token'] as string | undefined) ?? ''
    if (!given || !sameSecret(given, s.csrf))
      throw new ConsoleError(
        403,
        'PANELKIT_ERR_CSRF',
        'The form is stale or did not come from the console (CSRF token missing or wrong); reload the page',
      )
    const [a, b, c] = parts
    if (a === 'logout' && b === undefined) {
      await sessions.end(s.id)
      redirect(res, '/console/login', {
        'set-cookie': cookie(SESSION_COOKIE, '', { secure: secure(req), maxAge: 0 }),
      })
      return
    }
    if (a === 'jobs' && b && (c === 'retry' || c === 'cancel')) {
      const jobId = parseWith(z.coerce.number().int().positive(), b)
      const job = await getJob(store.db, jobId)
      if (!job) throw new ConsoleError(404, 'PANELKIT_ERR_NOT_FOUND', `No job ${jobId}`)
      const n = c === 'retry' ? await engine.retry({ jobId }) : await cancelParked(store.db, jobId)
      redirect(
        res,
        await back(
          s,
          form,
          n === 1
            ? `Job ${jobId} ${c === 'retry' ? 'queued again' : 'cancelled'}`
            : `Job ${jobId} is not parked (it is ${job.status})`,
          n === 1 ? 'ok' : 'error',
        ),
      )
      return
    }
    if (a === 'ledger' && b === 'settle' && c === undefined) {
      const f = parseWith(SettleFormSchema, Object.fromEntries(form))
      if (f.confirm !== 'yes') {
        sendHtml(res, 200, settleConfirm(s, f.key, f.outcome))
        return
      }
      const out = await engine.settle(f.key, f.outcome)
      form.set('back', '/console/ledger')
      redirect(
        res,
        out.settled
          ? await back(
              s,
              form,
              `Settled ${f.key} as ${f.outcome}${out.retried ? '; its job is queued again' : ''}`,
            )
          : await back(s, form, `No open ledger entry ${f.key}`, 'error'),
      )
      return
    }
    if (a === 'services' && b) {
      const serviceId = parseWith(Id, b)
      const service = await getService(store.db, serviceId)
      if (!service) throw new ConsoleError(404, 'PANELKIT_ERR_NOT_FOUND', `No service ${serviceId}`)
      form.set('back', `/console/services/${serviceId}`)
      if (c === 'sync') {
        if (!engine.whmcs)
          throw new ConsoleError(409, 'PANELKIT_ERR_NO_WHMCS', 'No WHMCS connection is configured')
        whmcsStatus.delete(serviceId)
        const r = await engine.sync({ serviceId })
        redirect(
          res,
          await back(
            s,
            form,
            `Synced: ${r.intents} intents, ${r.jobsCreated} jobs queued${r.errors.length ? `, ${r.errors.length} errors: ${r.errors.map((e) => e.message).join('; ')}` : ''}`,
            r.errors.length ? 'error' : 'ok',
          ),
        )
        return
      }
      const connector = engine.connector(service.connector)
      const serverId = service.serverId ?? (await store.assignments.get(serviceId))
      const server = serverId ? engine.server(serverId) : undefined
      if (!connector || !server || service.actual === 'none' || service.actual === 'terminated')
        throw new ConsoleError(404, 'PANELKIT_ERR_NOT_FOUND', `Service ${serviceId} has no live account`)
      const input = {
        ...(service.context as Record<string, never>),
        settings: service.settings,
        ...(service.username ? { username: service.username } : {}),
        server: serverInput(server),
      }
      if (c === 'sso') {
        const audience = parseWith(z.enum(['client', 'admin']), form.get('audience'))
        const result = await connector.invoke('sso', { audience, service: input } as never)
        if (!result.ok) {
          redirect(
            res,
            await back(
              s,
              form,
              `Single sign-on failed: ${result.error.code}: ${result.error.detail}`,
              'error',
            ),
          )
          return
        }
        securityHeaders(res)
        res.writeHead(303, { location: (result.data as { url: string }).url })
        res.end()
        return
      }
      if (c === 'action') {
        const name = parseWith(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), form.get('name'))
        if (!connector.capabilities.actions.some((x) => x.name === name && x.audience.includes('admin')))
          throw new ConsoleError(
            404,
            'PANELKIT_ERR_NOT_FOUND',
            `Connector ${service.connector} has no admin action ${name}`,
          )
        if (form.get('confirm') !== 'yes') {
          const label = connector.capabilities.actions.find((x) => x.name === name)?.label ?? name
          sendHtml(
            res,
            200,
            layout(
              { title: `${label}?`, path: `/console/services/${serviceId}`, csrf: s.csrf },
              html`<p class="confirm">Run ${label} (${service.connector}) on service ${serviceId} now?</p>
${actionForm(`/console/services/${encodeURIComponent(serviceId)}/action`, s.csrf, 'Confirm', { name, confirm: 'yes' })} <a href="/console/services/${encodeURIComponent(serviceId)}">Back</a>`,
            ),
          )
          return
        }
        const result = await connector.invoke('action', {
          action: name,
          audience: 'admin',
          params: {},
          service: input,
        } as never)
        if (!result.ok) {
          redirect(
            res,
            await back(s, form, `${name} failed: ${result.error.code}: ${result.error.detail}`, 'error'),
          )
          return
        }
        // The answer is shown on the page (redacted), not carried in a redirect's URL.
        sendHtml(
          res,
          200,
          layout(
            {
              title: `${name}: done`,
              path: `/console/services/${serviceId}`,
              csrf: s.csrf,
              flash: { kind: 'ok', text: `${name}: done` },
            },
            html`<pre class="result">${JSON.stringify(app.redactor.redact(result.data ?? null), null, 2).slice(0, 20_000)}</pre>
<p><a href="/console/services/${encodeURIComponent(serviceId)}">Back to service ${serviceId}</a></p>`,
          ),
        )
        return
      }
    }
    throw new ConsoleError(404, 'PANELKIT_ERR_NOT_FOUND', 'No such console action')
  }

  // ---- login ----------------------------------------------------------------------------------------

  function loginPage(req: IncomingMessage, res: ServerResponse, status = 200, error?: string): void {
    // Login CSRF: a nonce in a SameSite cookie that the form must echo (double submit).
    const nonce = newSecret()
    sendHtml(
      res,
      status,
      layout(
        {
          title: 'Log in',
          path: '/console/login',
          ...(error ? { flash: { kind: 'error' as const, text: error } } : {}),
        },
        html`<form method="post" action="/console/login" class="login">
<input type="hidden" name="_csrf" value="${nonce}">
<label>API token <input type="password" name="token" autocomplete="current-password" required minlength="16"></label>
<button type="submit">Log in</button></form>
<p class="hint">Use a token of <code>http.tokens</code> with the admin scope. It is checked once and never kept; the session lives in a cookie and in the store.</p>`,
      ),
      { 'set-cookie': cookie(LOGIN_COOKIE, nonce, { secure: secure(req) }) },
    )
  }

  async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req)
    const nonce = cookies(req).get(LOGIN_COOKIE)
    const given = form.get('_csrf') ?? ''
    if (!nonce || !given || !sameSecret(nonce, given)) {
      loginPage(req, res, 403, 'The login form expired or did not come from this console; try again.')
      return
    }
    const token = form.get('token') ?? ''
    let match: ConsoleToken | undefined
    for (const t of tokens) if (sameSecret(token, t.token)) match ??= t
    if (!match) {
      app.logger.warn('console login refused', { remote: req.socket.remoteAddress })
      loginPage(
        req,
        res,
        401,
        tokens.length === 0 ? 'No API tokens are configured (http.tokens).' : 'That token is not valid.',
      )
      return
    }
    const s = await sessions.create(match)
    app.logger.info('console login', { remote: req.socket.remoteAddress, token: match.name })
    redirect(res, '/console', {
      'set-cookie': [
        cookie(SESSION_COOKIE, s.id, { secure: secure(req), maxAge: cfg.sessionMinutes * 60 }),
        cookie(LOGIN_COOKIE, '', { secure: secure(req), maxAge: 0 }),
      ],
    })
  }

  // ---- dispatch -------------------------------------------------------------------------------------

  function bearerOk(req: IncomingMessage): boolean {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')
    return m !== null && readTokens.length > 0 && tokenMatches(m[1] as string, readTokens)
  }

  function jsonError(res: ServerResponse, status: number, code: string, message: string) {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
    res.end(JSON.stringify({ error: { code, message } }))
  }

  async function page(req: IncomingMessage, res: ServerResponse, url: URL, path: string): Promise<void> {
    const method = req.method ?? 'GET'
    const parts = path.split('/').filter(Boolean).slice(1)
    if (parts[0] === 'assets' && parts.length === 2 && (method === 'GET' || method === 'HEAD')) {
      const asset = ASSETS[parts[1] as string]
      if (!asset) throw new ConsoleError(404, 'PANELKIT_ERR_NOT_FOUND', 'No such asset')
      res.writeHead(200, {
        'content-type': asset.type,
        'cache-control': 'public, max-age=3600',
        'x-content-type-options': 'nosniff',
      })
      res.end(method === 'HEAD' ? undefined : asset.body())
      return
    }
    if (parts[0] === 'login' && parts.length === 1) {
      if (method === 'GET') return loginPage(req, res)
      if (method === 'POST') return login(req, res)
      throw new ConsoleError(405, 'PANELKIT_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed here`)
    }
    const s = await sessions.get(req, tokens)
    if (!s) {
      if (method === 'GET') return redirect(res, '/console/login')
      throw new ConsoleError(401, 'PANELKIT_ERR_AUTH', 'Log in first: this action needs a console session')
    }
    // The cookie lives as long as the session's idle time: renewed with it.
    if (s.extended)
      res.setHeader(
        'set-cookie',
        cookie(SESSION_COOKIE, s.id, { secure: secure(req), maxAge: cfg.sessionMinutes * 60 }),
      )
    if (method === 'POST') return act(s, req, res, parts)
    if (method !== 'GET')
      throw new ConsoleError(405, 'PANELKIT_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed here`)
    // An action's outcome is shown once, on the next full page (not on the live region's polls).
    const flash = req.headers['hx-request'] === undefined ? await sessions.takeFlash(s) : s.flash
    const self = `${url.pathname}${url.search}`
    const view = (title: string, body: Html, live = true, before?: Html) =>
      sendHtml(
        res,
        200,
        layout(
          { title, path, csrf: s.csrf, live: live ? self : undefined, flash },
          before ? html`${before}${body}` : body,
        ),
      )
    const [a, b] = parts
    if (a === undefined) return view('Overview', await overview())
    if (a === 'services' && b === undefined) {
      const body = await servicesPage(url)
      // The filter form stays outside the live region so polling does not reset what is typed.
      securityHeaders(res)
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(
        layout({ title: 'Services', path, csrf: s.csrf, live: self, flash }, body).value.replace(
          '<div id="live"',
          `${servicesFilter(url).value}<div id="live"`,
        ),
      )
      return
    }
    if (a === 'services' && b !== undefined && parts.length === 2) {
      const body = await servicePage(s, b)
      securityHeaders(res)
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(
        layout({ title: `Service ${b}`, path, csrf: s.csrf, live: self, flash }, body).value.replace(
          '<div id="live"',
          `${probeBlock(`/console/services/${encodeURIComponent(b)}`).value}<div id="live"`,
        ),
      )
      return
    }
    if (a === 'services' && b !== undefined && parts[2] === 'probe' && parts.length === 3)
      return probePage(req, res, s, b, flash)
    if (a === 'parked' && b === undefined) return view('Parked jobs', await parkedPage(s))
    if (a === 'drift' && b === undefined) return view('Drift', await driftPage(), false)
    if (a === 'ledger' && b === undefined) return view('Ledger', await ledgerPage(s))
    if (a === 'log' && b === undefined) {
      const body = await logPage(url)
      securityHeaders(res)
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(
        layout({ title: 'Module log', path, csrf: s.csrf, live: self, flash }, body).value.replace(
          '<div id="live"',
          `${logFilter(url).value}<div id="live"`,
        ),
      )
      return
    }
    throw new ConsoleError(404, 'PANELKIT_ERR_NOT_FOUND', `No console page ${path}`)
  }

  const handler = (async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const path = url.pathname.replace(/\/+$/, '') || '/'
    const method = req.method ?? 'GET'
    if (path === '/metrics') {
      if (method !== 'GET' && method !== 'HEAD') {
        jsonError(res, 405, 'PANELKIT_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed here (use GET)`)
        return true
      }
      if (cfg.metrics.listen !== undefined) return false // served on its own address (metricsServer)
      if (!bearerOk(req)) {
        jsonError(
          res,
          401,
          'PANELKIT_ERR_AUTH',
          'A valid bearer token is required (Authorization: Bearer <token>)',
        )
        return true
      }
      const out = await metrics.render()
      res.writeHead(200, { 'content-type': out.contentType, 'cache-control': 'no-store' })
      res.end(method === 'HEAD' ? undefined : out.body)
      return true
    }
    if (path === '/openapi.json') {
      if (method !== 'GET' && method !== 'HEAD') {
        jsonError(res, 405, 'PANELKIT_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed here (use GET)`)
        return true
      }
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
      res.end(method === 'HEAD' ? undefined : JSON.stringify(buildOpenApi()))
      return true
    }
    if (!cfg.enabled || (path !== '/console' && !path.startsWith('/console/'))) return false
    try {
      await page(req, res, url, path)
    } catch (error) {
      if (res.headersSent) {
        res.end()
        return true
      }
      const known = error instanceof ConsoleError
      const f = known ? undefined : toFailure(error, app.redactor)
      if (f) app.logger.error('console request failed', { path: url.pathname, error: f })
      const status = known ? error.status : 500
      const text = known ? error.message : `Something failed (${f?.code}): ${f?.detail}`
      const s = await sessions.get(req, tokens).catch(() => undefined)
      sendHtml(
        res,
        status,
        layout(
          {
            title: status === 404 ? 'Not found' : 'Refused',
            path,
            csrf: s?.csrf,
            flash: { kind: 'error', text: app.redactor.redactString(text) },
          },
          html`<p><a href="/console">Back to the overview</a></p>`,
        ),
      )
    }
    return true
  }) as ConsoleHandler
  if (cfg.metrics.listen !== undefined) {
    const listen = cfg.metrics.listen
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(listen) as RegExpExecArray
    const server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname
      if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        jsonError(res, 404, 'PANELKIT_ERR_NOT_FOUND', 'Only GET /metrics is served here')
        return
      }
      metrics
        .render()
        .then((out) => {
          res.writeHead(200, { 'content-type': out.contentType, 'cache-control': 'no-store' })
          res.end(req.method === 'HEAD' ? undefined : out.body)
        })
        .catch((error) => {
          app.logger.error('metrics failed', { error: toFailure(error, app.redactor) })
          jsonError(res, 500, 'PANELKIT_ERR_INTERNAL', 'The metrics could not be read')
        })
    })
    server.on('error', (error) =>
      app.logger.error('metrics listener failed', { listen, error: toFailure(error, app.redactor) }),
    )
    server.listen(Number(m[2]), m[1], () => {
      const a = server.address() as AddressInfo
      handler.metricsUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`
      app.logger.info('metrics listening', { url: handler.metricsUrl })
    })
    app.onClose(async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    })
  }
  handler.metrics = metrics
  handler.sessions = sessions
  return handler
}
