import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type App, createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { countJobs } from '../src/engine/jobs.ts'
import { type ApiServer, startApiServer, tokenMatches } from '../src/http/server.ts'
import { MemoryBilling } from '../src/testing/memory-billing.ts'

const TOKEN = 'api-token-0123456789abcdef'
const host = `api-panel-${process.pid}`
let app: App
let api: ApiServer
let panel: MemoryPanel
const billing = new MemoryBilling()

async function call(method: string, path: string, body?: unknown, token: string | null = TOKEN) {
  const headers: Record<string, string> = {}
  if (token !== null) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers,
    redirect: 'manual',
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers }
}

beforeAll(async () => {
  panel = registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Panel-Pw-77' }))
  const { config, secrets } = parseConfig({
    servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: 'Panel-Pw-77' }],
    serverGroups: [{ id: 'g1', servers: ['s1'] }],
    products: [{ whmcsProductId: 5, connector: 'memory-panel', serverGroup: 'g1' }],
    store: { dataDir: ':memory:' },
    http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
    worker: { backoffMs: 5, maxBackoffMs: 10 },
  })
  for (const id of ['31', '32'])
    billing.add({
      serviceId: id,
      clientId: id === '31' ? '1' : '2',
      productId: '5',
      status: 'Active',
      password: `Initial-${id}-pw`,
      configOptions: {},
      customFields: {},
      client: { email: `c${id}@example.com`, firstName: 'A', lastName: 'B' },
    })
  app = await createApp({
    config,
    secrets,
    billing,
    logStream: null,
    store: { file: ':memory:' },
    connectors: [{ definition: memoryPanelConnector }],
  })
  api = await startApiServer(app)
})

afterAll(async () => {
  await api.close()
  await app.close()
  unregisterMemoryPanel(host)
})

describe('HTTP API', () => {
  it('compares tokens in constant time and refuses missing or wrong ones with a JSON error', async () => {
    expect(tokenMatches(TOKEN, [TOKEN])).toBe(true)
    expect(tokenMatches(`${TOKEN}x`, [TOKEN])).toBe(false)
    for (const token of [null, 'wrong-token-0123456789abc']) {
      const r = await call('POST', '/v1/sync', {}, token)
      expect(r.status).toBe(401)
      expect(r.body.error.code).toBe('PANELKIT_ERR_AUTH')
    }
    expect((await countJobs(app.store.db)).queued).toBe(0)
    expect((await call('GET', '/health', undefined, null)).body).toEqual({ ok: true })
  })

  it('syncs one client on demand, then all', async () => {
    const one = await call('POST', '/v1/sync', { clientId: '1' })
    expect(one.status).toBe(200)
    expect(one.body.report).toMatchObject({ seen: 1, jobsCreated: 1 })
    const all = await call('POST', '/v1/sync', {})
    expect(all.body.report).toMatchObject({ seen: 2, jobsCreated: 1 })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    const list = await call('GET', '/v1/services')
    expect(list.body.services.map((s: { actual: string }) => s.actual)).toEqual(['active', 'active'])
    const one31 = await call('GET', '/v1/services/31')
    expect(one31.body.service.serverId).toBe('s1')
    expect(one31.body.jobs[0].steps.length).toBeGreaterThan(0)
    expect(one31.body.pipelines[0]).toMatchObject({ pipeline: 'memory-provision', completed: true })
  })

  it('validates bodies, names the field, and changes nothing on bad input', async () => {
    const before = await countJobs(app.store.db)
    const cases = [
      await call('POST', '/v1/services/31/actions', { action: 'explode' }),
      await call('POST', '/v1/services/31/actions', { action: 'changePassword' }),
      await call('POST', '/v1/services/31/actions', { action: 'suspend', extra: 1 }),
      await call('POST', '/v1/services/31/actions', '{not json'),
      await call('POST', '/v1/sync', { clientId: 'abc' }),
      await call('POST', '/v1/retry', { jobId: -1 }),
      await call('GET', '/v1/log?limit=0'),
    ]
    for (const c of cases) {
      expect(c.status).toBe(400)
      expect(c.body.error.code).toBe('PANELKIT_ERR_VALIDATION')
    }
    expect(cases[1]?.body.error.issues[0].path).toBe('password')
    expect(await countJobs(app.store.db)).toEqual(before)
    const missing = await call('POST', '/v1/services/999/actions', { action: 'suspend' })
    expect(missing.status).toBe(404)
    expect(missing.body.error.code).toBe('PANELKIT_ERR_NOT_FOUND')
    expect((await call('DELETE', '/v1/drift')).body.error.code).toBe('PANELKIT_ERR_METHOD_NOT_ALLOWED')
    expect((await call('GET', '/v1/nothing')).status).toBe(404)
  })

  it('runs lifecycle actions, shows drift until they converge, and keeps secrets out of the log', async () => {
    const r = await call('POST', '/v1/services/32/actions', {
      action: 'changePassword',
      password: 'Brand-New-Pw-9',
    })
    expect(r.status).toBe(202)
    const s = await call('POST', '/v1/services/32/actions', { action: 'suspend' })
    expect(s.body.jobs[0].operation).toBe('suspend')
    // The same request again collapses into the same job.
    const again = await call('POST', '/v1/services/32/actions', { action: 'suspend' })
    expect(again.body.jobs).toEqual([])
    const drift = await call('GET', '/v1/drift')
    expect(drift.body.drift.find((d: { serviceId: string }) => d.serviceId === '32')).toMatchObject({
      desired: 'suspended',
      actual: 'active',
    })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find('svc32')).toMatchObject({ suspended: true, password: 'Brand-New-Pw-9' })
    expect((await call('GET', '/v1/drift')).body.drift).toEqual([])
    const log = await call('GET', '/v1/log?serviceId=32&limit=50')
    expect(log.body.entries.length).toBeGreaterThan(0)
    const text = JSON.stringify(log.body)
    expect(text).not.toContain('Brand-New-Pw-9')
    expect(text).not.toContain('Panel-Pw-77')
  })

  it('parks a permanent failure and retries it on request', async () => {
    panel.accounts.delete('svc31')
    await call('POST', '/v1/services/31/actions', { action: 'suspend' })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    const detail = await call('GET', '/v1/services/31')
    expect(detail.body.jobs.at(-1)).toMatchObject({ operation: 'suspend', status: 'parked' })
    expect(detail.body.service.lastError).toMatch(/NOT_FOUND/)
    panel.handle('Panel-Pw-77', 'create', { username: 'svc31', serviceId: '31', email: 'c31@example.com' })
    expect((await call('POST', '/v1/retry', { serviceId: '31' })).body.retried).toBe(1)
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find('svc31')?.suspended).toBe(true)
  })

  it('redirects to the panel for single sign-on', async () => {
    const r = await call('GET', '/v1/services/32/sso?audience=admin')
    expect(r.status).toBe(302)
    expect(r.headers.get('location')).toMatch(new RegExp(`^https://${host}/sso\\?token=admin-`))
    expect((await call('GET', '/v1/services/32/sso?audience=root')).status).toBe(400)
  })
})
