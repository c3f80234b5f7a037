import { createRedactor } from '@panelkit/core'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config.ts'
import { Engine } from '../src/engine/engine.ts'
import { listJobs } from '../src/engine/jobs.ts'
import { getService } from '../src/engine/services.ts'
import { silentLogger } from '../src/logger.ts'
import { MemoryBilling } from '../src/testing/memory-billing.ts'
import { openTestStore, STORE_KINDS, type StoreKind } from './helpers.ts'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

async function setup(kind: StoreKind) {
  const host = `panel-${Math.random().toString(36).slice(2)}`
  const panel = registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Panel-Secret-1' }))
  const { config } = parseConfig(
    {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: '${PANEL_PW}' }],
      serverGroups: [{ id: 'g1', servers: ['s1'] }],
      products: [
        {
          whmcsProductId: 1,
          connector: 'memory-panel',
          serverGroup: 'g1',
          plans: { option: 'Plan', values: { Basic: { plan: 'basic' }, Pro: { plan: 'pro' } } },
          passwordField: 'Password',
        },
      ],
      worker: { concurrency: 4, leaseSeconds: 5, maxAttempts: 5, backoffMs: 5, maxBackoffMs: 20 },
    },
    { PANEL_PW: 'Panel-Secret-1' },
  )
  const { store, cleanup } = await openTestStore(kind)
  const redactor = createRedactor({ values: ['Panel-Secret-1'] })
  const billing = new MemoryBilling()
  const engine = new Engine({
    store,
    config,
    connectors: [{ definition: memoryPanelConnector }],
    billing,
    redactor,
    logger: silentLogger(redactor),
    moduleLog: store.moduleLog(redactor),
  })
  cleanups.push(async () => {
    await engine.close()
    await cleanup()
    unregisterMemoryPanel(host)
  })
  const order = (id: string, plan = 'Basic') =>
    billing.add({
      serviceId: id,
      clientId: '7',
      productId: '1',
      status: 'Active',
      configOptions: { Plan: plan },
      customFields: { Password: `Pw-${id}-secret` },
      client: { email: `c${id}@example.com`, firstName: 'Ada', lastName: 'L' },
    })
  return { panel, store, billing, engine, order }
}

describe.each(STORE_KINDS)('engine with the in-memory example connector (%s)', (kind) => {
  it('provisions, suspends, upgrades, changes the password and terminates, each once', async () => {
    const { panel, store, billing, engine, order } = await setup(kind)
    order('101')
    order('102', 'Pro')
    const first = await engine.sync()
    expect(first).toMatchObject({ seen: 2, mapped: 2, jobsCreated: 2 })
    // A second sync of the same state creates nothing.
    expect((await engine.sync()).jobsCreated).toBe(0)
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find('svc101')?.plan).toBe('basic')
    expect(panel.find('svc102')?.plan).toBe('pro')
    expect((await getService(store.db, '101'))?.actual).toBe('active')
    expect(billing.writeBacks.map((w) => w.serviceId).sort()).toEqual(['101', '102'])

    billing.update('101', { status: 'Suspended' })
    billing.update('102', { configOptions: { Plan: 'Basic' }, customFields: { Password: 'New-Pw-102' } })
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find('svc101')?.suspended).toBe(true)
    expect(panel.find('svc102')?.plan).toBe('basic')
    expect(panel.find('svc102')?.password).toBe('New-Pw-102')

    billing.update('101', { status: 'Active' })
    billing.update('102', { status: 'Terminated' })
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find('svc101')?.suspended).toBe(false)
    expect(panel.find('svc102')).toBeUndefined()
    expect((await getService(store.db, '102'))?.actual).toBe('terminated')
    const jobs = await listJobs(store.db)
    expect(jobs.every((j) => j.status === 'done')).toBe(true)
    expect(jobs.map((j) => j.operation).sort()).toEqual(
      [
        'create',
        'create',
        'writeBack',
        'writeBack',
        'suspend',
        'changePackage',
        'changePassword',
        'unsuspend',
        'terminate',
      ].sort(),
    )
    // The module log is durable, queryable and carries no secret.
    const log = await engine.moduleLog.query({ serviceId: '102' })
    expect(log.length).toBeGreaterThan(0)
    expect(JSON.stringify(log)).not.toContain('New-Pw-102')
    expect(JSON.stringify(log)).not.toContain('Panel-Secret-1')
  })

  it('retries retryable failures and parks permanent ones with the reason', async () => {
    const { panel, store, engine, order } = await setup(kind)
    order('201')
    panel.failNext = 2
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find('svc201')).toBeDefined()
    const [create] = await listJobs(store.db, { serviceId: '201' })
    expect(create?.attempts).toBe(3)
    // A foreign account with the same username: a CONFLICT is parked, not retried.
    panel.handle(panel.apiPassword, 'create', { username: 'svc202', serviceId: 'other' })
    order('202')
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    const parked = await listJobs(store.db, { serviceId: '202' })
    expect(parked[0]?.status).toBe('parked')
    expect(parked[0]?.lastError?.code).toBe('CONFLICT')
    expect((await engine.drift()).find((d) => d.serviceId === '202')?.parkedJobs).toBe(1)
    // Fix the cause, retry: it converges.
    panel.accounts.delete('svc202')
    expect(await engine.retry({ serviceId: '202' })).toBe(1)
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect((await getService(store.db, '202'))?.actual).toBe('active')
  })
})
