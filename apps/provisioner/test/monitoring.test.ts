import { readFileSync } from 'node:fs'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { Validator } from '@seriousme/openapi-schema-validator'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type App, createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { consoleHandler } from '../src/console/handler.ts'
import { type ApiServer, startApiServer } from '../src/http/server.ts'
import { apiCaller, TEST_KEY } from './helpers.ts'
import { startWhmcs, type WhmcsWorld } from './whmcs.ts'

/**
 * /metrics parsed with a Prometheus text-format parser and checked against the store; /openapi.json
 * validated as OpenAPI 3.1 and checked against the routes the server answers and the README lists.
 */

const TOKEN = 'metrics-token-0123456789abcdef'
const host = `metrics-panel-${process.pid}`
let app: App
let api: ApiServer
let whmcs: WhmcsWorld

const call = apiCaller(() => api.url, TOKEN)

beforeAll(async () => {
  registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Metrics-Panel-Pw-1' }))
  whmcs = await startWhmcs()
  const { config, secrets } = parseConfig(
    {
      whmcs: whmcs.config,
      servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: 'Metrics-Panel-Pw-1' }],
      serverGroups: [{ id: 'g1', servers: ['s1'] }],
      products: [
        {
          whmcsProductId: whmcs.pid,
          connector: 'memory-panel',
          serverGroup: 'g1',
          usageBilling: { metric: 'disk', unitPrice: '0.10', description: 'Disk' },
        },
      ],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { encryptionKey: '${KEY}' },
      http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
      worker: { backoffMs: 5, maxBackoffMs: 10 },
    },
    { KEY: TEST_KEY, ...whmcs.env },
  )
  for (let i = 0; i < 3; i++) whmcs.order({ password: `Metrics-Service-${i}-pw` })
  app = await createApp({
    config,
    secrets,
    logStream: null,
    store: { file: ':memory:' },
    connectors: [{ definition: memoryPanelConnector }],
  })
  api = await startApiServer(app)
})

afterAll(async () => {
  await api.close()
  await app.close()
  await whmcs.close()
  unregisterMemoryPanel(host)
})

type Families = ReturnType<typeof parsePrometheusTextFormat>
function family(all: Families, name: string) {
  const f = all.find((x) => x.name === name)
  if (!f) throw new Error(`metric ${name} is missing from /metrics`)
  return f
}
/** The sum of a series' samples with these labels (a histogram's `_count` series by its `_count` name). */
function value(all: Families, name: string, labels: Record<string, string> = {}): number {
  const families = all.filter((x) => x.name === name)
  if (families.length === 0) throw new Error(`series ${name} is missing from /metrics`)
  return families
    .flatMap((f) => f.metrics)
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((n, m) => n + Number(m.value ?? 0), 0)
}

describe('GET /metrics', () => {
  it('refuses a request without the token', async () => {
    const r = await call('GET', '/metrics', undefined, null)
    expect(r.status).toBe(401)
    expect(JSON.parse(r.text).error.code).toBe('PANELKIT_ERR_AUTH')
  })

  it('reports jobs, services, calls, sync, parked jobs and uncertain entries as the store has them', async () => {
    expect((await call('POST', '/v1/sync', {})).status).toBe(200)
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    await app.engine.scheduleUsage('2026-05')
    // The answer to a usage push is lost after WHMCS wrote it: uncertain, its job parked.
    whmcs.sim.injectFault({ kind: 'drop-after', action: 'AddBillableItem', times: 1 })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    await app.engine.moduleLog.flush()

    const r = await call('GET', '/metrics')
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(r.text).not.toContain(TOKEN)
    // The parser checks the whole exposition (types, help, sample syntax). It folds a histogram's
    // series into one unlabelled sample, so the labelled `_count` series are read from a second parse
    // of the same text with the histogram families declared untyped.
    const typed = parsePrometheusTextFormat(r.text)
    const all = parsePrometheusTextFormat(r.text.replace(/^(# TYPE \S+) histogram$/gm, '$1 untyped'))
    const db = app.store.db

    // Jobs by state and connector, against the store.
    const jobRows = await db
      .selectFrom('jobs as j')
      .leftJoin('services as s', 's.service_id', 'j.service_id')
      .select(['j.status', 'j.operation', 's.connector'])
      .execute()
    const lifecycleDone = jobRows.filter(
      (j) => j.status === 'done' && j.connector === 'memory-panel' && ['create'].includes(j.operation),
    ).length
    expect(lifecycleDone).toBe(3)
    expect(value(all, 'provisioner_jobs', { state: 'done', connector: 'memory-panel' })).toBe(lifecycleDone)
    const whmcsJobs = jobRows.filter((j) => ['writeBack', 'pushUsage'].includes(j.operation))
    expect(value(all, 'provisioner_jobs', { connector: 'whmcs' })).toBe(whmcsJobs.length)
    const parked = jobRows.filter((j) => j.status === 'parked').length
    expect(parked).toBe(1)
    expect(value(all, 'provisioner_parked_jobs')).toBe(parked)
    expect(value(all, 'provisioner_jobs', { state: 'parked', connector: 'whmcs' })).toBe(1)
    // Services by confirmed state.
    expect(value(all, 'provisioner_services', { state: 'active', connector: 'memory-panel' })).toBe(3)
    // Uncertain ledger entries.
    const uncertain = await app.store.ledger.list({ state: 'uncertain' })
    expect(uncertain).toHaveLength(1)
    expect(value(all, 'provisioner_ledger_uncertain_entries')).toBe(1)

    // Every external call the module log holds was observed, by connector; the lost answer is an error.
    const logRows = await db.selectFrom('module_log').select(['connector', 'outcome', 'operation']).execute()
    for (const connector of new Set(logRows.map((l) => l.connector))) {
      const n = logRows.filter((l) => l.connector === connector).length
      expect(value(all, 'provisioner_external_call_seconds_count', { connector }), connector).toBe(n)
      const errors = logRows.filter((l) => l.connector === connector && l.outcome === 'error').length
      if (errors > 0) expect(value(all, 'provisioner_external_call_errors_total', { connector })).toBe(errors)
    }
    expect(logRows.some((l) => l.connector === 'whmcs-client' && l.outcome === 'error')).toBe(true)
    expect(family(typed, 'provisioner_external_call_seconds').type).toBe('HISTOGRAM')

    // Job runs: every finished job's run was timed once, the parked one as parked.
    const done = jobRows.filter((j) => j.status === 'done').length
    expect(value(all, 'provisioner_job_run_seconds_count', { outcome: 'done' })).toBe(done)
    expect(value(all, 'provisioner_job_run_seconds_count', { outcome: 'parked' })).toBe(1)
    expect(family(typed, 'provisioner_pipeline_step_seconds').type).toBe('HISTOGRAM')
    expect(family(typed, 'provisioner_jobs').type).toBe('GAUGE')

    // The sync pass: one full pass through the API, three services seen, a lag since it began.
    expect(value(all, 'provisioner_sync_pass_seconds_count', { pass: 'full', outcome: 'ok' })).toBe(1)
    expect(value(all, 'provisioner_sync_services_seen')).toBe(3)
    const lag = value(all, 'provisioner_sync_lag_seconds')
    expect(lag).toBeGreaterThan(0)
    expect(lag).toBeLessThan(120)
    expect(value(all, 'provisioner_store_query_seconds')).toBeGreaterThan(0)
  })
})

describe('GET /metrics on a separate address', () => {
  it('is served there without a token, and not on the API address', async () => {
    const { config } = parseConfig(
      {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        store: { encryptionKey: '${KEY}' },
        http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
        console: { metrics: { listen: '127.0.0.1:0' } },
      },
      { KEY: TEST_KEY },
    )
    const other = await createApp({ config, logStream: null, store: { file: ':memory:' }, builtins: false })
    const otherApi = await startApiServer(other)
    try {
      const handler = consoleHandler(other)
      await expect.poll(() => handler.metricsUrl).toBeDefined()
      const res = await fetch(handler.metricsUrl as string)
      expect(res.status).toBe(200)
      const all = parsePrometheusTextFormat(await res.text())
      expect(value(all, 'provisioner_parked_jobs')).toBe(0)
      const onApi = await fetch(`${otherApi.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
      expect(onApi.status).toBe(404)
    } finally {
      await otherApi.close()
      await other.close()
    }
  })
})

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document whose request bodies are the routes’ zod schemas', async () => {
    const r = await call('GET', '/openapi.json', undefined, null)
    expect(r.status).toBe(200)
    const doc = JSON.parse(r.text)
    expect(doc.openapi).toBe('3.1.0')
    const validator = new Validator()
    const result = await validator.validate(doc)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
    expect(validator.version).toBe('3.1')
    const action = doc.paths['/v1/services/{id}/actions'].post.requestBody.content['application/json'].schema
    expect(action.properties.action.enum).toEqual([
      'create',
      'suspend',
      'unsuspend',
      'terminate',
      'changePassword',
      'changePackage',
    ])
    expect(action.additionalProperties).toBe(false)
  })

  it('lists every route of the README’s API table, and every route it lists is served', async () => {
    const doc = JSON.parse((await call('GET', '/openapi.json')).text)
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const routes = [...readme.matchAll(/^\| `(GET|POST) (\/[^`?[\s]*)/gm)].map((m) => ({
      method: (m[1] as string).toLowerCase(),
      path: (m[2] as string).replace(/:(\w+)/g, '{$1}'),
    }))
    expect(routes.length).toBeGreaterThanOrEqual(12)
    for (const route of routes)
      expect(doc.paths[route.path]?.[route.method], `${route.method} ${route.path}`).toBeDefined()
    // Each documented operation is answered by the server (not "no endpoint", not a wrong method).
    const services = JSON.parse((await call('GET', '/v1/services')).text).services
    const sid = services[0].serviceId as string
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(ops)) {
        const concrete = path
          .replace('{id}', path.startsWith('/v1/clients') ? '1' : sid)
          .replace('{action}', 'suspend')
          .replace('{name}', 'status')
        const res = await call(method.toUpperCase(), concrete, method === 'post' ? {} : undefined)
        const unrouted = res.status === 405 || (res.status === 404 && /No endpoint/.test(res.text))
        expect(unrouted, `${method} ${path} -> ${res.status} ${res.text.slice(0, 120)}`).toBe(false)
      }
    }
  })
})
