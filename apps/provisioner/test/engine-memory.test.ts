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
import { openTestStore, STORE_KINDS, type StoreKind, TEST_KEY } from './helpers.ts'
import { startWhmcs } from './whmcs.ts'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

async function setup(kind: StoreKind) {
  const host = `panel-${Math.random().toString(36).slice(2)}`
  const panel = registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Panel-Secret-1' }))
  const whmcs = await startWhmcs()
  const { config } = parseConfig(
    {
      whmcs: whmcs.config,
      servers: [
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        { id: 's1', connector: 'memory-panel', hostname: host, password: '${PANEL_PW}', whmcsServerId: 1 },
      ],
      serverGroups: [{ id: 'g1', servers: ['s1'] }],
      products: [
        {
          whmcsProductId: whmcs.pid,
          connector: 'memory-panel',
          serverGroup: 'g1',
          plans: { option: 'Plan', values: { Basic: { plan: 'basic' }, Pro: { plan: 'pro' } } },
          passwordField: 'Password',
        },
      ],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { encryptionKey: '${KEY}' },
      worker: { concurrency: 4, leaseSeconds: 5, maxAttempts: 5, backoffMs: 5, maxBackoffMs: 20 },
    },
    { PANEL_PW: 'Panel-Secret-1', KEY: TEST_KEY, ...whmcs.env },
  )
  const { store, cleanup } = await openTestStore(kind)
  const redactor = createRedactor({ values: ['Panel-Secret-1'] })
  const engine = new Engine({
    store,
    config,
    connectors: [{ definition: memoryPanelConnector }],
    whmcs: whmcs.client(),
    redactor,
    logger: silentLogger(redactor),
    moduleLog: store.moduleLog(redactor),
  })
  cleanups.push(async () => {
    await engine.close()
    await cleanup()
    await whmcs.close()
    unregisterMemoryPanel(host)
  })
  const order = (plan = 'Basic') => {
    const id = whmcs.order({ plan, field: 'placeholder' })
    whmcs.setField(id, 'Password', `Pw-${id}-secret`)
    return id
  }
  return { panel, store, whmcs, engine, order }
}

describe.each(STORE_KINDS)('engine with the in-memory example connector (%s)', (kind) => {
  it('provisions, suspends, upgrades, changes the password and terminates, each once', async () => {
    const { panel, store, whmcs, engine, order } = await setup(kind)
    const a = order()
    const b = order('Pro')
    whmcs.sim.service(Number(a)).serverId = 0
    const first = await engine.sync()
    expect(first).toMatchObject({ pass: 'full', complete: true, servicesSeen: 2, jobsCreated: 2 })
    expect(first.intentsByKind).toEqual({ create: 2 })
    // A second pass of the same state finds nothing to do: it plans against what is queued.
    expect(await engine.sync()).toMatchObject({ intents: 0, jobsCreated: 0 })
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find(`svc${a}`)?.plan).toBe('basic')
    expect(panel.find(`svc${b}`)?.plan).toBe('pro')
    // The first password came from the custom field.
    expect(panel.find(`svc${a}`)?.password).toBe(`Pw-${a}-secret`)
    expect((await getService(store.db, a))?.actual).toBe('active')
    // Written back to WHMCS through the library's writeBackService.
    expect(whmcs.sim.service(Number(a)).username).toBe(`svc${a}`)
    expect(whmcs.sim.service(Number(a)).serverId).toBe(1)

    whmcs.sim.setStatus(Number(a), 'Suspended')
    whmcs.sim.upgrade(Number(b), { options: { Plan: 'Basic' } })
    whmcs.setField(b, 'Password', 'New-Pw-102')
    const second = await engine.sync()
    expect(second.intentsByKind).toEqual({ suspend: 1, changePackage: 1, changePassword: 1 })
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find(`svc${a}`)?.suspended).toBe(true)
    expect(panel.find(`svc${b}`)?.plan).toBe('basic')
    expect(panel.find(`svc${b}`)?.password).toBe('New-Pw-102')

    whmcs.sim.setStatus(Number(a), 'Active')
    whmcs.sim.setStatus(Number(b), 'Terminated')
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find(`svc${a}`)?.suspended).toBe(false)
    expect(panel.find(`svc${b}`)).toBeUndefined()
    expect((await getService(store.db, b))?.actual).toBe('terminated')
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
    // Sync jobs carry the library's idempotency keys.
    expect(jobs.filter((j) => j.operation !== 'writeBack').every((j) => j.key.startsWith('whmcs:'))).toBe(
      true,
    )
    // Nothing drifts any more: WHMCS against what the panel confirmed.
    expect((await engine.drift()).entries).toEqual([])
    // The module log is durable, queryable and carries no secret.
    const log = await engine.moduleLog.query({ serviceId: b })
    expect(log.length).toBeGreaterThan(0)
    expect(JSON.stringify(log)).not.toContain('New-Pw-102')
    expect(JSON.stringify(log)).not.toContain('Panel-Secret-1')
  })

  it('a service password changed in WHMCS itself (ModuleChangePw) is applied once', async () => {
    const { panel, store, whmcs, engine } = await setup(kind)
    // The first password comes from the mapped custom field; the service password is another one.
    const a = whmcs.order({ field: 'Field-Pw-first', password: 'Service-Pw-1' })
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find(`svc${a}`)?.password).toBe('Field-Pw-first')
    expect(await engine.sync()).toMatchObject({ intents: 0, jobsCreated: 0 })

    // Changed through WHMCS's API, as the client area or an admin does; the custom field stays.
    await whmcs.client().call('ModuleChangePw', { serviceid: Number(a), servicepassword: 'Service-Pw-2' })
    expect(whmcs.sim.service(Number(a)).password).toBe('Service-Pw-2')
    const changed = await engine.sync()
    expect(changed).toMatchObject({ intentsByKind: { changePassword: 1 }, jobsCreated: 1 })
    // Queued, not yet run: the sync plans against what is queued, the drift report against what is done.
    expect(await engine.sync()).toMatchObject({ intents: 0, jobsCreated: 0 })
    expect((await engine.drift()).entries).toMatchObject([{ serviceId: a, kind: 'password-differs' }])
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find(`svc${a}`)?.password).toBe('Service-Pw-2')
    const jobs = (await listJobs(store.db, { serviceId: a })).filter((j) => j.operation === 'changePassword')
    expect(jobs.map((j) => j.status)).toEqual(['done'])

    // Applied: further passes queue nothing, the field's password is not "changed back", no drift.
    expect(await engine.sync()).toMatchObject({ intents: 0, jobsCreated: 0 })
    expect(await engine.sync()).toMatchObject({ intents: 0, jobsCreated: 0 })
    expect((await engine.drift()).entries).toEqual([])
    expect(panel.find(`svc${a}`)?.password).toBe('Service-Pw-2')
    expect((await listJobs(store.db, { serviceId: a })).map((j) => j.operation).sort()).toEqual(
      ['changePassword', 'create', 'writeBack'].sort(),
    )
    // Only fingerprints are stored for it, never the password.
    const row = await store.db
      .selectFrom('services')
      .select(['service_password_fp', 'confirmed_service_password_fp'])
      .where('service_id', '=', a)
      .executeTakeFirstOrThrow()
    expect(row.service_password_fp).toMatch(/\S/)
    expect(row.confirmed_service_password_fp).toBe(row.service_password_fp)
    expect(JSON.stringify(row)).not.toContain('Service-Pw-2')
  })

  it('syncs one client by id or by a login email, and one service', async () => {
    const { whmcs, engine } = await setup(kind)
    const ada = whmcs.customer('ada@example.com')
    const bob = whmcs.customer('bob@example.com')
    // The product maps a password field: a service without it is not provisioned with another one.
    const a1 = whmcs.order({ clientId: ada, field: 'Ada-Pw-1' })
    const a2 = whmcs.order({ clientId: ada, field: 'Ada-Pw-2' })
    const b1 = whmcs.order({ clientId: bob, field: 'Bob-Pw-1' })
    // A WHMCS 8 login with its own email that can reach Bob's account.
    const login = whmcs.sim.createUser({ firstname: 'Helper', lastname: 'X', email: 'helper@example.com' })
    whmcs.sim.grantUserAccess(login.id, bob)
    const byEmail = await engine.sync({ email: 'ada@example.com' })
    expect(byEmail).toMatchObject({ pass: 'client', jobsCreated: 2, clientIds: [String(ada)] })
    // The newest Active service of a mapped product is the one a login should use.
    expect(byEmail.primaryService?.serviceId).toBe(a2)
    const byLogin = await engine.sync({ email: 'helper@example.com' })
    expect(byLogin).toMatchObject({ clientIds: [String(bob)], jobsCreated: 1 })
    expect(byLogin.primaryService?.serviceId).toBe(b1)
    whmcs.sim.setStatus(Number(a1), 'Suspended')
    expect(await engine.sync({ serviceId: a1 })).toMatchObject({
      pass: 'service',
      intentsByKind: { suspend: 1 },
    })
    const unknown = await engine.sync({ email: 'nobody@example.com' })
    expect(unknown.complete).toBe(false)
    expect(unknown.errors[0]?.code).toBe('NOT_FOUND')
  })

  it('retries retryable failures and parks permanent ones with the reason', async () => {
    const { panel, store, engine, order } = await setup(kind)
    const a = order()
    panel.failNext = 2
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find(`svc${a}`)).toBeDefined()
    const [create] = await listJobs(store.db, { serviceId: a })
    expect(create?.attempts).toBe(3)
    // A foreign account with the same username: a CONFLICT is parked, not retried.
    const b = String(Number(a) + 1)
    panel.handle(panel.apiPassword, 'create', { username: `svc${b}`, serviceId: 'other' })
    expect(order()).toBe(b)
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    const parked = await listJobs(store.db, { serviceId: b })
    expect(parked[0]?.status).toBe('parked')
    expect(parked[0]?.lastError?.code).toBe('CONFLICT')
    const drift = (await engine.drift()).entries.find((d) => d.serviceId === b)
    expect(drift).toMatchObject({
      kind: 'missing-on-server',
      parkedJobs: 1,
      intended: 'active',
      confirmed: 'none',
    })
    // Fix the cause, retry: it converges.
    panel.accounts.delete(`svc${b}`)
    expect(await engine.retry({ serviceId: b })).toBe(1)
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect((await getService(store.db, b))?.actual).toBe('active')
  })
})
