import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createReverseSync,
  createWhmcsClient,
  MemoryProvisionedView,
  type ProductMapping,
  type ReverseSyncOptions,
  type SyncReport,
} from '../../src/index.ts'
import { createWhmcsSimulator, type SimProduct, type WhmcsSimulator } from '../../src/testing/index.ts'

/**
 * What Ticketz users get from its WHMCS gateway (seed 004; protocol notes §4), done properly: the
 * first-password field found as Ticketz finds it but never replaced by another password, plans through
 * a map, due dates and renewals, the overdue grace period, the customer's identity in creates, and the
 * login-time check.
 */

let sim: WhmcsSimulator
let product: SimProduct
let view: MemoryProvisionedView
let today = '2026-03-10'

function makeSync(extra: Partial<ReverseSyncOptions> = {}, mapping: Partial<ProductMapping> = {}) {
  const client = createWhmcsClient({
    url: sim.url,
    identifier: sim.credential.identifier,
    secret: sim.credential.secret,
    ca: sim.ca,
    retry: { initialDelayMs: 1, maxDelayMs: 2 },
  })
  return createReverseSync({
    client,
    view,
    now: () => new Date(`${today}T12:00:00Z`),
    mappings: [
      {
        productId: product.id,
        connector: 'memory-panel',
        planOption: 'Plan',
        passwordField: 'Password',
        ...mapping,
      },
    ],
    ...extra,
  })
}

function kinds(report: SyncReport) {
  return report.intents.map((i) => i.kind)
}

beforeEach(async () => {
  today = '2026-03-10'
  sim = await createWhmcsSimulator({ today })
  product = sim.createProduct({
    name: 'Workspace',
    // As TZDOC asks: a required Password field; here with a longer name to show the prefix match.
    customFields: [{ name: 'Company size' }, { name: 'password for the first login', type: 'password' }],
    configOptions: [{ name: 'Plan', options: ['Basic', 'Pro', 'Gold'] }],
  })
  view = new MemoryProvisionedView()
})
afterEach(async () => {
  await sim.close()
})

describe('1. the first-password custom field', () => {
  it('is found case-insensitively and by prefix, and left out of the intent custom fields', async () => {
    const c = sim.createClient({ email: 'prefix@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      password: 'generated-service-pw',
      options: { Plan: 'Pro' },
      fields: { 'password for the first login': 'Chosen-At-Order-1', 'Company size': '10' },
    })
    const report = await makeSync().servicePass(s.id)
    expect(report.errors).toEqual([])
    expect(report.intents[0]).toMatchObject({ kind: 'create', password: 'Chosen-At-Order-1' })
    expect(report.intents[0]?.customFields).toEqual({ 'Company size': '10' })
  })

  it('prefers an exact name over a prefix match', async () => {
    const p = sim.createProduct({
      name: 'Two fields',
      customFields: [{ name: 'Password hint' }, { name: 'PASSWORD' }],
      configOptions: [{ name: 'Plan', options: ['Basic'] }],
    })
    product = p
    const c = sim.createClient({ email: 'exact@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: p.id,
      status: 'Active',
      options: { Plan: 'Basic' },
      fields: { 'Password hint': 'my cat', PASSWORD: 'Real-Pw-1' },
    })
    const report = await makeSync().servicePass(s.id)
    expect(report.intents[0]).toMatchObject({ kind: 'create', password: 'Real-Pw-1' })
  })

  it('missing or empty: no create with another password, a sync error naming the field', async () => {
    const c = sim.createClient({ email: 'nopw@example.test' })
    const empty = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      password: 'service-password-must-not-be-used',
      options: { Plan: 'Basic' },
    })
    const report = await makeSync().servicePass(empty.id)
    expect(report.intents).toEqual([])
    expect(report.errors[0]).toMatchObject({ serviceId: String(empty.id), stage: 'evaluate' })
    expect(report.errors[0]?.error.code).toBe('VALIDATION')
    expect(report.errors[0]?.error.detail).toContain(
      'the password field "password for the first login" is empty',
    )
    expect(JSON.stringify(report)).not.toContain('service-password-must-not-be-used')
    const missing = await makeSync({}, { passwordField: 'First password' }).servicePass(empty.id)
    expect(missing.errors[0]?.error.detail).toContain('the password field "First password" is missing')
  })

  it('missing on a provisioned service: a drift line, and no change to the password', async () => {
    const c = sim.createClient({ email: 'drift@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Basic' },
      fields: { 'password for the first login': 'First-1' },
    })
    const sync = makeSync()
    for (const i of (await sync.servicePass(s.id)).intents) view.apply(i)
    sim.service(s.id).customFields[product.customFields[1]?.id ?? 0] = ''
    const report = await sync.servicePass(s.id)
    expect(report.intents).toEqual([])
    expect(report.drift).toEqual([
      expect.objectContaining({ kind: 'password-field-missing', serviceId: String(s.id) }),
    ])
  })
})

describe('2. plans through a map', () => {
  it('an unmapped value is a sync error for that service, on create and on a plan change', async () => {
    const c = sim.createClient({ email: 'plans@example.test' })
    const gold = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Gold' },
      fields: { 'password for the first login': 'pw-gold' },
    })
    const pro = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Pro' },
      fields: { 'password for the first login': 'pw-pro' },
    })
    const sync = makeSync({}, { planMap: { Basic: 'basic', Pro: 'pro' }, defaultPlan: 'basic' })
    const first = await sync.clientPass({ clientId: c.id })
    expect(first.intents.map((i) => `${i.kind}:${i.serviceId}:${i.plan}`)).toEqual([`create:${pro.id}:pro`])
    expect(first.errors).toEqual([expect.objectContaining({ serviceId: String(gold.id), stage: 'evaluate' })])
    expect(first.errors[0]?.error.detail).toContain('plan "Gold" of option "Plan" has no mapping')
    for (const i of first.intents) view.apply(i)
    sim.upgrade(pro.id, { options: { Plan: 'Gold' } })
    const second = await sync.clientPass({ clientId: c.id })
    expect(second.intents).toEqual([])
    expect(second.errors.map((e) => e.serviceId).sort()).toEqual([String(gold.id), String(pro.id)].sort())
  })
})

describe('3. due dates and renewals', () => {
  it('keeps the due date from the create and reports a renewal that moves it, once', async () => {
    const c = sim.createClient({ email: 'renew@example.test' })
    const { service } = sim.placeOrder({
      clientId: c.id,
      pid: product.id,
      options: { Plan: 'Basic' },
      fields: { 'password for the first login': 'pw-renew' },
      paid: true,
    })
    const sync = makeSync()
    const created = await sync.servicePass(service.id)
    expect(created.intents[0]).toMatchObject({ kind: 'create', nextDueDate: '2026-04-10' })
    for (const i of created.intents) view.apply(i)
    expect(view.get(String(service.id))?.nextDueDate).toBe('2026-04-10')
    expect((await sync.servicePass(service.id)).events).toEqual([])

    // The renewal invoice is paid in WHMCS: the due date moves a cycle on.
    sim.markInvoicePaid(sim.createRenewalInvoice(service.id).id)
    const renewed = await sync.servicePass(service.id)
    expect(renewed.intents).toEqual([])
    expect(renewed.eventCount).toBe(1)
    expect(renewed.events?.[0]).toMatchObject({
      kind: 'renewed',
      serviceId: String(service.id),
      previousDueDate: '2026-04-10',
      nextDueDate: '2026-05-10',
      billingCycle: 'Monthly',
    })
    const again = await sync.servicePass(service.id)
    expect(again.events?.[0]?.key).toBe(renewed.events?.[0]?.key)
    for (const e of renewed.events ?? []) view.record(e)
    expect((await sync.servicePass(service.id)).events).toEqual([])

    // An admin moving it back is reported too, as a change rather than a renewal.
    sim.service(service.id).nextduedate = '2026-04-20'
    const moved = await sync.servicePass(service.id)
    expect(moved.events?.[0]).toMatchObject({ kind: 'due-date-changed', nextDueDate: '2026-04-20' })
  })

  it('hands events to onEvent, and records due dates a view lacks only when asked', async () => {
    const c = sim.createClient({ email: 'record@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      nextduedate: '2026-06-01',
      options: { Plan: 'Basic' },
      fields: { 'password for the first login': 'pw' },
    })
    view.services.set(String(s.id), { serviceId: String(s.id), state: 'active', plan: 'Basic' })
    expect((await makeSync().servicePass(s.id)).eventCount).toBe(0)
    const seen: string[] = []
    const report = await makeSync({
      recordDueDates: true,
      onEvent: (e) => void seen.push(`${e.kind}:${e.nextDueDate}`),
    }).servicePass(s.id)
    expect(seen).toEqual(['due-date-recorded:2026-06-01'])
    expect(report.events).toEqual([])
    expect(report.eventCount).toBe(1)
  })
})

describe('4. overdue policy', () => {
  async function provisioned(grace: number | undefined) {
    const c = sim.createClient({ email: `late-${grace}@example.test` })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      nextduedate: '2026-03-01',
      options: { Plan: 'Basic' },
      fields: { 'password for the first login': 'pw-late' },
    })
    view.services.set(String(s.id), { serviceId: String(s.id), state: 'active', plan: 'Basic' })
    return s
  }

  it('is off by default: an Active service past its due date stays as it is', async () => {
    const s = await provisioned(undefined)
    today = '2026-04-30'
    const report = await makeSync().servicePass(s.id)
    expect(report.intents).toEqual([])
    expect(report.drift).toEqual([])
  })

  it('suspends after the grace period although WHMCS says Active, shows it as drift, and unsuspends after a renewal', async () => {
    const s = await provisioned(7)
    const sync = () => makeSync({}, { overdueGraceDays: 7 })
    today = '2026-03-08' // the last day of grace
    expect((await sync().servicePass(s.id)).intents).toEqual([])
    today = '2026-03-09'
    const late = await sync().servicePass(s.id)
    expect(kinds(late)).toEqual(['suspend'])
    expect(late.intents[0]?.reason).toContain('Overdue since 2026-03-01 (grace of 7 days ended 2026-03-08)')
    expect(late.drift).toEqual([
      expect.objectContaining({ kind: 'overdue-past-grace', whmcsStatus: 'Active', serverState: 'active' }),
    ])
    for (const i of late.intents) view.apply(i)
    // Still overdue: no unsuspend although WHMCS says Active; the drift line stays visible.
    const still = await sync().servicePass(s.id)
    expect(still.intents).toEqual([])
    expect(still.drift.map((d) => d.kind)).toEqual(['overdue-past-grace'])
    // Paid: the due date moves on and the service comes back.
    sim.service(s.id).nextduedate = '2026-04-01'
    expect(kinds(await sync().servicePass(s.id))).toEqual(['unsuspend'])
  })

  it('does not create a service that is already past its grace period', async () => {
    const c = sim.createClient({ email: 'never@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      nextduedate: '2026-01-01',
      options: { Plan: 'Basic' },
      fields: { 'password for the first login': 'pw' },
    })
    const report = await makeSync({}, { overdueGraceDays: 3 }).servicePass(s.id)
    expect(report.intents).toEqual([])
    expect(report.drift[0]?.message).toContain('not provisioned')
  })
})

describe('5. the customer in create intents', () => {
  it('carries name, email, company, phone and address, reading each client once per pass', async () => {
    const c = sim.createClient({
      email: 'ada@example.test',
      firstname: 'Ada',
      lastname: 'Lovelace',
      companyname: 'Analytical Engines Ltd',
      address1: '12 St James Square',
      address2: 'Floor 2',
      city: 'London',
      state: 'Greater London',
      postcode: 'SW1Y 4JH',
      country: 'GB',
      phonenumber: '2079460000',
    })
    for (let i = 0; i < 3; i++)
      sim.createService({
        clientId: c.id,
        pid: product.id,
        status: 'Active',
        options: { Plan: 'Basic' },
        fields: { 'password for the first login': `pw-${i}` },
      })
    const before = sim.callCount('GetClientsDetails')
    const report = await makeSync().clientPass({ clientId: c.id })
    expect(report.intents).toHaveLength(3)
    for (const intent of report.intents)
      expect(intent.customer).toEqual({
        id: String(c.id),
        email: 'ada@example.test',
        firstName: 'Ada',
        lastName: 'Lovelace',
        company: 'Analytical Engines Ltd',
        phone: '+44.2079460000',
        address1: '12 St James Square',
        address2: 'Floor 2',
        city: 'London',
        state: 'Greater London',
        postcode: 'SW1Y 4JH',
        country: 'GB',
        currency: 'USD',
      })
    expect(sim.callCount('GetClientsDetails') - before).toBe(1)
    // A login pass by email already read the client: no second read.
    const byEmail = sim.callCount('GetClientsDetails')
    await makeSync().clientPass({ email: 'ada@example.test' })
    expect(sim.callCount('GetClientsDetails') - byEmail).toBe(1)
  })

  it('a failed client read is a sync error for the service, and no create goes out without it', async () => {
    const c = sim.createClient({ email: 'gone@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Basic' },
      fields: { 'password for the first login': 'pw' },
    })
    sim.injectFault({ kind: 'status', status: 500, action: 'GetClientsDetails', times: 10 })
    const report = await makeSync().servicePass(s.id)
    expect(report.intents).toEqual([])
    expect(report.errors[0]).toMatchObject({ serviceId: String(s.id), stage: 'read' })
    expect(report.notEvaluated).toEqual([String(s.id)])
    const without = await makeSync({ customerDetails: false }).servicePass(s.id)
    expect(without.intents[0]?.customer).toBeUndefined()
    expect(kinds(without)).toEqual(['create'])
  })
})

describe('7. the login-time check', () => {
  function order(email: string, password: string, extra: { nextduedate?: string } = {}) {
    const c = sim.createClient({ email, firstname: 'Lin', lastname: 'Login' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Pro' },
      fields: { 'password for the first login': password },
      ...extra,
    })
    return { c, s }
  }

  it('lets the login proceed with the password chosen at order time, and hands over the create', async () => {
    const { s } = order('first@example.test', 'Typed-Pw-1')
    const check = await makeSync().checkLogin({ email: 'First@Example.test ', password: 'Typed-Pw-1' })
    expect(check).toMatchObject({ allowed: true, reason: 'ok', serviceId: String(s.id) })
    expect(check.report.intents.map((i) => i.kind)).toEqual(['create'])
    expect(check.report.intents[0]?.customer?.email).toBe('first@example.test')
  })

  it('refuses a wrong password without saying it anywhere', async () => {
    order('wrong@example.test', 'Typed-Pw-1')
    const check = await makeSync().checkLogin({ email: 'wrong@example.test', password: 'Guess-Pw-9' })
    expect(check).toMatchObject({ allowed: false, reason: 'password-mismatch' })
    expect(JSON.stringify({ ...check, report: { ...check.report, intents: [] } })).not.toContain('Guess-Pw-9')
  })

  it('refuses an unknown email, a client without an Active service, an empty field and an overdue service', async () => {
    const sync = makeSync({}, { overdueGraceDays: 0 })
    expect(await sync.checkLogin({ email: 'nobody@example.test', password: 'x' })).toMatchObject({
      allowed: false,
      reason: 'not-found',
    })
    const { s } = order('suspended@example.test', 'Pw-1')
    sim.suspendForNonPayment(s.id)
    expect(await sync.checkLogin({ email: 'suspended@example.test', password: 'Pw-1' })).toMatchObject({
      allowed: false,
      reason: 'no-active-service',
    })
    order('empty@example.test', '')
    expect(await sync.checkLogin({ email: 'empty@example.test', password: '' })).toMatchObject({
      allowed: false,
    })
    order('late@example.test', 'Pw-2', { nextduedate: '2026-03-01' })
    const late = await sync.checkLogin({ email: 'late@example.test', password: 'Pw-2' })
    expect(late).toMatchObject({ allowed: false, reason: 'overdue' })
  })

  it('says WHMCS is unavailable rather than "not found" when it cannot be asked', async () => {
    order('down@example.test', 'Pw-1')
    sim.allowedIps = ['203.0.113.1']
    const check = await makeSync().checkLogin({ email: 'down@example.test', password: 'Pw-1' })
    expect(check).toMatchObject({ allowed: false, reason: 'unavailable' })
  })
})
