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
import { getService } from '../src/engine/services.ts'
import { silentLogger } from '../src/logger.ts'
import { openTestStore, STORE_KINDS, type StoreKind, TEST_KEY } from './helpers.ts'
import { startWhmcs } from './whmcs.ts'

/**
 * The app's side of the reverse sync's due dates, customer identity and overdue policy: the due date
 * kept on the service (migration 0007), renewals recorded and counted, the customer from the create
 * intent (no second GetClientsDetails), and a product's grace period suspending an overdue service.
 */

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

async function setup(kind: StoreKind, product: { overdueGraceDays?: number } = {}) {
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
          ...product,
        },
      ],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { encryptionKey: '${KEY}' },
      worker: { concurrency: 2, leaseSeconds: 5, maxAttempts: 5, backoffMs: 5, maxBackoffMs: 20 },
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
  return { panel, store, whmcs, engine }
}

async function dueDateOf(store: Awaited<ReturnType<typeof setup>>['store'], serviceId: string) {
  const row = await store.db
    .selectFrom('services')
    .select('next_due_date')
    .where('service_id', '=', serviceId)
    .executeTakeFirstOrThrow()
  return row.next_due_date
}

describe.each(STORE_KINDS)('WHMCS due dates, customers and overdue policy in the app (%s)', (kind) => {
  it('keeps the due date from the create, records a renewal once, and takes the customer from the intent', async () => {
    const { store, whmcs, engine } = await setup(kind)
    const clientId = whmcs.sim.createClient({
      email: 'ada@example.com',
      firstname: 'Ada',
      lastname: 'Lovelace',
      companyname: 'Engines Ltd',
      address1: '12 St James Square',
      city: 'London',
      state: 'Greater London',
      postcode: 'SW1Y 4JH',
      country: 'GB',
      phonenumber: '2079460000',
    }).id
    const a = whmcs.order({ clientId, field: 'Field-Pw-1' })
    const due = whmcs.sim.service(Number(a)).nextduedate
    const first = await engine.sync()
    expect(first.intentsByKind).toEqual({ create: 1 })
    expect(await dueDateOf(store, a)).toBe(due)
    // One GetClientsDetails (the reverse sync's), the engine did not read the client again.
    expect(whmcs.sim.callCount('GetClientsDetails')).toBe(1)
    expect((await getService(store.db, a))?.context.client).toMatchObject({
      email: 'ada@example.com',
      company: 'Engines Ltd',
      phone: '+44.2079460000',
      address1: '12 St James Square',
      city: 'London',
      postcode: 'SW1Y 4JH',
      country: 'GB',
    })
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(await engine.sync()).toMatchObject({ intents: 0, eventsByKind: {} })

    // Renewed in WHMCS: recorded on the service and counted, no lifecycle job.
    whmcs.sim.markInvoicePaid(whmcs.sim.createRenewalInvoice(Number(a)).id)
    const next = whmcs.sim.service(Number(a)).nextduedate
    expect(next > due).toBe(true)
    const renewed = await engine.sync()
    expect(renewed).toMatchObject({ intents: 0, jobsCreated: 0, eventsByKind: { renewed: 1 } })
    expect(await dueDateOf(store, a)).toBe(next)
    expect(await engine.sync()).toMatchObject({ intents: 0, eventsByKind: {} })
  })

  it('records the due date of a service made before due dates were kept', async () => {
    const { store, whmcs, engine } = await setup(kind)
    const a = whmcs.order({ field: 'Field-Pw-1' })
    await engine.sync()
    await store.db.updateTable('services').set({ next_due_date: null }).where('service_id', '=', a).execute()
    expect(await engine.sync()).toMatchObject({ eventsByKind: { 'due-date-recorded': 1 } })
    expect(await dueDateOf(store, a)).toBe(whmcs.sim.service(Number(a)).nextduedate)
  })

  it('suspends a service past its product grace period while WHMCS says Active, and shows it as drift', async () => {
    const { panel, whmcs, engine } = await setup(kind, { overdueGraceDays: 5 })
    const a = whmcs.order({ field: 'Field-Pw-1' })
    whmcs.sim.service(Number(a)).nextduedate = '2099-01-01'
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find(`svc${a}`)?.suspended).toBe(false)

    whmcs.sim.service(Number(a)).nextduedate = '2020-01-01'
    const late = await engine.sync()
    expect(late.intentsByKind).toEqual({ suspend: 1 })
    await engine.runWorker({ untilIdle: true, pollMs: 10 })
    expect(panel.find(`svc${a}`)?.suspended).toBe(true)
    expect((await engine.drift()).entries).toMatchObject([{ serviceId: a, kind: 'overdue-past-grace' }])
  })
})
