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
import { apiCaller, TEST_KEY } from './helpers.ts'
import { startWhmcs, type WhmcsWorld } from './whmcs.ts'

const TOKEN = 'api-token-0123456789abcdef'
const host = `api-panel-${process.pid}`
let app: App
let api: ApiServer
let panel: MemoryPanel
let whmcs: WhmcsWorld
let s31 = ''
let s32 = ''
let client1 = 0

const call = apiCaller(() => api.url, TOKEN)

beforeAll(async () => {
  panel = registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Panel-Pw-77' }))
  whmcs = await startWhmcs()
  const { config, secrets } = parseConfig(
    {
      whmcs: whmcs.config,
      servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: 'Panel-Pw-77' }],
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
  client1 = whmcs.customer('one@example.com')
  const client2 = whmcs.customer('two@example.com')
  s31 = whmcs.order({ clientId: client1, password: 'Initial-31-pw' })
  s32 = whmcs.order({ clientId: client2, password: 'Initial-32-pw' })
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

  it('syncs one client on demand (by email: the login hook), then all', async () => {
    const one = await call('POST', '/v1/sync', { email: 'one@example.com' })
    expect(one.status).toBe(200)
    expect(one.body.report).toMatchObject({
      pass: 'client',
      servicesSeen: 1,
      jobsCreated: 1,
      clientIds: [String(client1)],
      primaryService: { serviceId: s31, status: 'Active' },
    })
    const all = await call('POST', '/v1/sync', {})
    expect(all.body.report).toMatchObject({ pass: 'full', servicesSeen: 2, jobsCreated: 1 })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    const list = await call('GET', '/v1/services')
    expect(list.body.services.map((s: { actual: string }) => s.actual)).toEqual(['active', 'active'])
    // No password, sealed or not, leaves the API.
    expect(JSON.stringify(list.body)).not.toMatch(/Initial-3\d-pw|pk1:/)
    const one31 = await call('GET', `/v1/services/${s31}`)
    expect(one31.body.service.serverId).toBe('s1')
    expect(one31.body.jobs[0].steps.length).toBeGreaterThan(0)
    expect(one31.body.pipelines[0]).toMatchObject({ pipeline: 'memory-provision', completed: true })
  })

  it('validates bodies, names the field, and changes nothing on bad input', async () => {
    const before = await countJobs(app.store.db)
    const cases = [
      await call('POST', `/v1/services/${s31}/actions`, { action: 'explode' }),
      await call('POST', `/v1/services/${s31}/actions`, { action: 'changePassword' }),
      await call('POST', `/v1/services/${s31}/actions`, { action: 'suspend', extra: 1 }),
      await call('POST', `/v1/services/${s31}/actions`, '{not json'),
      await call('POST', '/v1/sync', { clientId: 'abc' }),
      await call('POST', '/v1/sync', { email: 'not-an-email' }),
      await call('POST', '/v1/sync', { clientId: '1', email: 'one@example.com' }),
      await call('POST', `/v1/clients/${client1}/credit`, {
        depositId: 'd1',
        amount: '-5',
        description: 'x',
      }),
      await call('POST', '/v1/ledger/settle', { key: 'k', outcome: 'maybe' }),
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
    const r = await call('POST', `/v1/services/${s32}/actions`, {
      action: 'changePassword',
      password: 'Brand-New-Pw-9',
    })
    expect(r.status).toBe(202)
    const s = await call('POST', `/v1/services/${s32}/actions`, { action: 'suspend' })
    expect(s.body.jobs[0].operation).toBe('suspend')
    // The same request again collapses into the same job.
    const again = await call('POST', `/v1/services/${s32}/actions`, { action: 'suspend' })
    expect(again.body.jobs).toEqual([])
    const drift = await call('GET', '/v1/drift')
    expect(drift.body.complete).toBe(true)
    expect(drift.body.entries.find((d: { serviceId: string }) => d.serviceId === s32)).toMatchObject({
      kind: 'queued',
      intended: 'suspended',
      confirmed: 'active',
      openJobs: 2,
    })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find(`svc${s32}`)).toMatchObject({ suspended: true, password: 'Brand-New-Pw-9' })
    // WHMCS still says Active: the drift report (from the reverse sync) says so.
    const after = (await call('GET', '/v1/drift')).body.entries
    expect(after).toEqual([
      expect.objectContaining({
        serviceId: s32,
        kind: 'active-in-whmcs-suspended-on-server',
        whmcsStatus: 'Active',
      }),
    ])
    // The next sync brings it back to what WHMCS wants; the operator's password stays.
    expect((await call('POST', '/v1/sync', { serviceId: s32 })).body.report.intentsByKind).toEqual({
      unsuspend: 1,
    })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find(`svc${s32}`)).toMatchObject({ suspended: false, password: 'Brand-New-Pw-9' })
    expect((await call('GET', '/v1/drift')).body.entries).toEqual([])
    const log = await call('GET', `/v1/log?serviceId=${s32}&limit=50`)
    expect(log.body.entries.length).toBeGreaterThan(0)
    const text = JSON.stringify(log.body)
    expect(text).not.toContain('Brand-New-Pw-9')
    expect(text).not.toContain('Panel-Pw-77')
  })

  it('parks a permanent failure and retries it on request', async () => {
    panel.accounts.delete(`svc${s31}`)
    await call('POST', `/v1/services/${s31}/actions`, { action: 'suspend' })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    const detail = await call('GET', `/v1/services/${s31}`)
    expect(detail.body.jobs.at(-1)).toMatchObject({ operation: 'suspend', status: 'parked' })
    expect(detail.body.service.lastError).toMatch(/NOT_FOUND/)
    panel.handle('Panel-Pw-77', 'create', { username: `svc${s31}`, serviceId: s31, email: 'c31@example.com' })
    expect((await call('POST', '/v1/retry', { serviceId: s31 })).body.retried).toBe(1)
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find(`svc${s31}`)?.suspended).toBe(true)
  })

  it('redirects to the panel for single sign-on', async () => {
    const r = await call('GET', `/v1/services/${s32}/sso?audience=admin`)
    expect(r.status).toBe(302)
    expect(r.headers.get('location')).toMatch(new RegExp(`^https://${host}/sso\\?token=admin-`))
    expect((await call('GET', `/v1/services/${s32}/sso?audience=root`)).status).toBe(400)
  })

  it('pushes usage and credits deposits exactly once, and parks an uncertain push for an operator', async () => {
    await app.engine.scheduleUsage('2026-05')
    expect(await app.engine.scheduleUsage('2026-05')).toBe(0)
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(2)
    // A deposit asked for twice is credited once.
    for (let i = 0; i < 2; i++) {
      const r = await call('POST', `/v1/clients/${client1}/credit`, {
        depositId: 'order-77',
        amount: '25.00',
        description: 'Deposit',
      })
      expect(r.status).toBe(202)
    }
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect([...whmcs.sim.credits.values()].filter((c) => c.clientid === client1)).toHaveLength(1)
    // The answer to one of the next pushes is lost after WHMCS wrote it: uncertain, parked, never sent again.
    whmcs.sim.injectFault({ kind: 'drop-after', action: 'AddBillableItem', times: 1 })
    await app.engine.scheduleUsage('2026-06')
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(4)
    const status = await call('GET', '/v1/status')
    expect(status.body.parkedJobs).toBe(1)
    expect(status.body.uncertainLedger).toHaveLength(1)
    const key = status.body.uncertainLedger[0].key as string
    expect(await app.engine.retry()).toBe(1)
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(4)
    // The operator checked WHMCS: it is there. Settling finishes the job without sending.
    const settled = await call('POST', '/v1/ledger/settle', { key, outcome: 'done' })
    expect(settled.body).toEqual({ settled: true, retried: 1 })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(4)
    expect((await call('GET', '/v1/status')).body).toMatchObject({ parkedJobs: 0, uncertainLedger: [] })
  })
})
