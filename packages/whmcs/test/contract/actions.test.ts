import { hasErrorCode } from '@panelkit/core'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createReverseSync,
  createWhmcsClient,
  creditDeposit,
  MemoryLedger,
  MemoryProvisionedView,
  pushUsage,
  type WhmcsClientOptions,
  writeBackService,
} from '../../src/index.ts'
import {
  createWhmcsSimulator,
  type SimulatorOptions,
  seedSimulator,
  type WhmcsSimulator,
} from '../../src/testing/index.ts'

/** The typed actions not covered elsewhere, the simulator's admin operations, and the README's API role. */

const sims: WhmcsSimulator[] = []
async function start(options: SimulatorOptions = {}) {
  const sim = await createWhmcsSimulator(options)
  sims.push(sim)
  return sim
}
function clientOf(sim: WhmcsSimulator, extra: Partial<WhmcsClientOptions> = {}) {
  return createWhmcsClient({
    url: sim.url,
    identifier: sim.credential.identifier,
    secret: sim.credential.secret,
    ca: sim.ca,
    retry: { initialDelayMs: 1, maxDelayMs: 2 },
    ...extra,
  })
}
afterEach(async () => {
  for (const s of sims.splice(0)) await s.close()
})

const address = {
  address1: '1 Main St',
  city: 'Springfield',
  state: 'IL',
  postcode: '62701',
  country: 'US',
  phonenumber: '+1.5555550100',
}

describe('typed actions against the simulator', () => {
  it('runs a client and order through AddClient, UpdateClient, AddOrder, AcceptOrder and every module command', async () => {
    const sim = await start()
    const product = sim.createProduct({
      name: 'Workspace',
      customFields: [{ name: 'Password', type: 'password' }],
      configOptions: [{ name: 'Plan', options: ['Basic', 'Pro'] }],
    })
    const c = clientOf(sim)
    const { clientid } = await c.addClient({
      firstname: 'Grace',
      lastname: 'Hopper',
      email: 'grace@example.test',
      password2: 'Client-Pw-1',
      noemail: true,
      ...address,
    })
    expect(sim.clients.get(Number(clientid))?.email).toBe('grace@example.test')
    const dup = await c
      .addClient({ firstname: 'G', lastname: 'H', email: 'grace@example.test', ...address })
      .catch((e: unknown) => e)
    expect(hasErrorCode(dup, 'CONFLICT')).toBe(true)
    await c.updateClient({ clientid, companyname: 'Navy' })
    expect(sim.clients.get(Number(clientid))?.companyname).toBe('Navy')

    const products = await c.getProducts({ pid: [product.id] })
    expect(products.products[0]).toMatchObject({ pid: String(product.id), name: 'Workspace' })
    expect(products.products[0]?.configoptions[0]?.options.map((o) => o.name)).toEqual(['Basic', 'Pro'])
    expect(products.products[0]?.customfields.map((f) => f.name)).toEqual(['Password'])

    const plan = product.configOptions[0]
    const pro = plan?.options.find((o) => o.name === 'Pro')
    const order = await c.addOrder({
      clientid,
      paymentmethod: 'mailin',
      items: [
        {
          pid: product.id,
          billingcycle: 'monthly',
          customfields: { [product.customFields[0]?.id ?? 0]: 'First-Pw-1' },
          configoptions: { [plan?.id ?? 0]: pro?.id ?? 0 },
        },
      ],
    })
    const serviceid = order.serviceids[0] as string
    expect((await c.getOrders({ id: order.orderid })).orders[0]).toMatchObject({ status: 'Pending' })
    await c.acceptOrder({ orderid: order.orderid, autosetup: true, servicepassword: 'Svc-Pw-1' })
    const accepted = (await c.getClientsProducts({ serviceid })).products[0]
    expect(accepted).toMatchObject({ status: 'Active', password: 'Svc-Pw-1' })
    expect(accepted?.configoptions[0]).toMatchObject({ option: 'Plan', value: 'Pro' })
    expect(accepted?.customfields[0]).toMatchObject({ name: 'Password', value: 'First-Pw-1' })
    const again = await c.acceptOrder({ orderid: order.orderid }).catch((e: unknown) => e)
    expect((again as Error).message).toContain('Status not Pending')

    const status = async () => (await c.getClientsProducts({ serviceid })).products[0]?.status
    await c.moduleSuspend(serviceid, { reason: 'abuse' })
    expect(await status()).toBe('Suspended')
    expect(sim.service(Number(serviceid)).suspendreason).toBe('abuse')
    await c.moduleUnsuspend(serviceid)
    expect(await status()).toBe('Active')
    await c.moduleChangePw(serviceid, 'Svc-Pw-2')
    expect(sim.service(Number(serviceid)).password).toBe('Svc-Pw-2')
    await c.moduleChangePackage(serviceid)
    await c.moduleTerminate(serviceid)
    expect(await status()).toBe('Terminated')
    await c.moduleCreate(serviceid)
    expect(await status()).toBe('Active')
    sim.moduleFailures.set(Number(serviceid), 'Remote panel unreachable')
    const failed = await c.moduleSuspend(serviceid).catch((e: unknown) => e)
    expect(hasErrorCode(failed, 'COMMAND')).toBe(true)
    expect((failed as Error).message).toContain('Remote panel unreachable')
    const missing = await c.moduleCreate(999_999).catch((e: unknown) => e)
    expect(hasErrorCode(missing, 'NOT_FOUND')).toBe(true)
    await c.close()
  })

  it('iterates invoices, orders and users page by page', async () => {
    const sim = await start()
    const product = sim.createProduct({ name: 'VM' })
    const cl = sim.createClient({ email: 'pages@example.test' })
    for (let i = 0; i < 12; i++) sim.placeOrder({ clientId: cl.id, pid: product.id })
    for (let i = 0; i < 7; i++) {
      const u = sim.createUser({ firstname: 'U', lastname: String(i), email: `u${i}@pages.test` })
      sim.grantUserAccess(u.id, cl.id)
    }
    const c = clientOf(sim, { pageSize: 5, pageConcurrency: 2 })
    const invoices = []
    for await (const i of c.iterateInvoices({ userid: cl.id })) invoices.push(i)
    expect(invoices).toHaveLength(12)
    expect(invoices.every((i) => i.status === 'Unpaid' && /^\d+\.\d{2}$/.test(i.total))).toBe(true)
    const orders = []
    for await (const o of c.iterateOrders({ userid: cl.id })) orders.push(o)
    expect(orders.map((o) => Number(o.id))).toEqual(
      [...orders.map((o) => Number(o.id))].sort((a, b) => b - a),
    )
    expect(new Set(orders.map((o) => o.id)).size).toBe(12)
    const users = []
    for await (const u of c.iterateUsers({ search: 'U ' })) users.push(u)
    expect(users).toHaveLength(7)
    expect(users[0]?.clients.map((x) => x.id)).toEqual([String(cl.id)])
    expect(sim.requests.filter((r) => r.action === 'GetInvoices').map((r) => r.limitstart)).toEqual([
      0, 5, 10,
    ])
    await c.close()
  })
})

describe('simulator behaviour', () => {
  it('pages GetClientsProducts by the documented 25 when limitnum is absent, or by the configured default', async () => {
    const sim = await start()
    const product = sim.createProduct({ name: 'VM' })
    const cl = sim.createClient({ email: 'default@example.test' })
    for (let i = 0; i < 30; i++) sim.createService({ clientId: cl.id, pid: product.id, status: 'Active' })
    const c = clientOf(sim)
    const raw = await c.call<Record<string, unknown>>('GetClientsProducts', { clientid: cl.id })
    // The count is a string (a legacy row fetch), the offset and page length integers (DD
    // getclientsproducts.md example; DEC getclientsproducts.php).
    expect(raw).toMatchObject({ totalresults: '30', startnumber: 0, numreturned: 25 })
    sim.quirks.clientsProductsDefaultLimit = 999_999
    expect((await c.getClientsProducts({ clientid: cl.id })).products).toHaveLength(30)
    await c.close()
  })

  it('switches empty-list shapes per quirk, and the client reads each as []', async () => {
    const sim = await start()
    const lonely = sim.createClient({ email: 'empty@example.test' })
    const c = clientOf(sim)
    for (const shape of ['missing', 'empty-string', 'empty-array'] as const) {
      sim.quirks.emptyShape = shape
      const raw = await c.call<Record<string, unknown>>('GetInvoices', { userid: lonely.id })
      if (shape === 'missing') expect('invoices' in raw).toBe(false)
      else expect(raw.invoices).toEqual(shape === 'empty-string' ? '' : [])
      expect((await c.getInvoices({ userid: lonely.id })).invoices).toEqual([])
    }
    await c.close()
  })

  it('admin operations: a paid order sets the service up, a paid renewal moves the due date and lifts an overdue suspension', async () => {
    const sim = await start({ today: '2026-03-15' })
    const product = sim.createProduct({ name: 'VM' })
    const cl = sim.createClient({ email: 'admin@example.test' })
    const { service, invoice, order } = sim.placeOrder({ clientId: cl.id, pid: product.id })
    expect(service.status).toBe('Pending')
    sim.markInvoicePaid(invoice.id)
    expect([service.status, order.status, sim.invoices.get(invoice.id)?.status]).toEqual([
      'Active',
      'Active',
      'Paid',
    ])
    const due = service.nextduedate
    sim.suspendForNonPayment(service.id)
    expect(service).toMatchObject({ status: 'Suspended', suspendreason: 'Overdue on Payment' })
    const renewal = sim.createRenewalInvoice(service.id)
    sim.markInvoicePaid(renewal.id)
    expect(service.status).toBe('Active')
    expect(service.nextduedate > due).toBe(true)
    sim.terminate(service.id)
    expect(service.status).toBe('Terminated')
  })

  it('seeds a deterministic data set of any size', async () => {
    const a = await start()
    const b = await start()
    const sa = seedSimulator(a, { services: 500, seed: 7 })
    seedSimulator(b, { services: 500, seed: 7 })
    expect(a.services.size).toBe(500)
    const statuses = (s: WhmcsSimulator) => [...s.services.values()].map((x) => `${x.status}:${x.pid}`)
    expect(statuses(a)).toEqual(statuses(b))
    expect(new Set(statuses(a).map((x) => x.split(':')[0])).size).toBeGreaterThan(3)
    expect(sa.products).toHaveLength(2)
  })
})

describe('the API role the README lists', () => {
  const ROLE = [
    'GetClientsProducts',
    'GetClientsDetails',
    'GetUsers',
    'UpdateClientProduct',
    'AddBillableItem',
    'AddCredit',
    'GetHealthStatus',
    'WhmcsDetails',
  ]

  it('is enough for every pass, write-back, usage push and deposit credit', async () => {
    const sim = await start({ credentials: [{ identifier: 'sync', secret: 'sync-secret-1', actions: ROLE }] })
    const product = sim.createProduct({
      name: 'Workspace',
      configOptions: [{ name: 'Plan', options: ['Basic'] }],
    })
    const cl = sim.createClient({ email: 'role@example.test' })
    const s = sim.createService({
      clientId: cl.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Basic' },
    })
    const c = clientOf(sim)
    const sync = createReverseSync({
      client: c,
      view: new MemoryProvisionedView(),
      mappings: [{ productId: product.id, connector: 'memory-panel', planOption: 'Plan' }],
    })
    for (const report of [
      await sync.fullPass(),
      await sync.clientPass({ email: 'role@example.test' }),
      await sync.clientPass({ clientId: cl.id }),
      await sync.servicePass(s.id),
    ]) {
      expect(report.errors).toEqual([])
      expect(report.intents.map((i) => i.kind)).toEqual(['create'])
    }
    expect((await writeBackService(c, { serviceId: s.id, username: 'ws1' })).ok).toBe(true)
    const ledger = new MemoryLedger()
    expect(
      (
        await pushUsage(c, ledger, {
          serviceId: s.id,
          clientId: cl.id,
          period: 'p1',
          description: 'u',
          amount: '1.00',
        })
      ).status,
    ).toBe('written')
    expect(
      (await creditDeposit(c, ledger, { clientId: cl.id, depositId: 'd1', amount: '2.00', description: 'd' }))
        .status,
    ).toBe('written')
    await expect(c.whmcsDetails()).resolves.toMatchObject({ version: expect.any(String) })
    await expect(c.getHealthStatus()).resolves.toBeDefined()
    // Anything else is refused, so the role is also no wider than needed for these.
    expect(hasErrorCode(await c.getClients().catch((e: unknown) => e), 'AUTH')).toBe(true)
    await c.close()
  })
})

describe('ledger: a push that never reached WHMCS', () => {
  it('frees the key on a refused connection, so the next attempt bills exactly once', async () => {
    const sim = await start()
    const product = sim.createProduct({ name: 'VM' })
    const cl = sim.createClient({ email: 'down@example.test' })
    const s = sim.createService({ clientId: cl.id, pid: product.id, status: 'Active' })
    const url = sim.url
    const ca = sim.ca
    const credential = { ...sim.credential }
    await sim.close()
    const ledger = new MemoryLedger()
    const push = { serviceId: s.id, clientId: cl.id, period: '2026-09', description: 'u', amount: '3.00' }
    const down = createWhmcsClient({ url, ca, identifier: credential.identifier, secret: credential.secret })
    const refused = await pushUsage(down, ledger, push)
    expect(refused).toMatchObject({ status: 'failed', retryable: true })
    expect(await ledger.get(refused.key)).toBeUndefined()
    await down.close()
    const up = await start()
    up.createProduct({ name: 'VM' })
    up.createClient({ email: 'down@example.test' })
    const c = clientOf(up)
    expect((await pushUsage(c, ledger, push)).status).toBe('written')
    expect((await pushUsage(c, ledger, push)).status).toBe('already-done')
    expect(up.billableItems.size).toBe(1)
    await c.close()
  })
})
