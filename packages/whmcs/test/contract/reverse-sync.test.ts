import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createReverseSync,
  createWhmcsClient,
  fingerprintPassword,
  MemoryProvisionedView,
  type ProductMapping,
  type ReverseSyncOptions,
  type SyncReport,
  sameId,
} from '../../src/index.ts'
import { createWhmcsSimulator, type SimProduct, type WhmcsSimulator } from '../../src/testing/index.ts'

let sim: WhmcsSimulator
let product: SimProduct
let other: SimProduct
let view: MemoryProvisionedView

function makeSync(extra: Partial<ReverseSyncOptions> = {}, mapping: Partial<ProductMapping> = {}, s = sim) {
  const client = createWhmcsClient({
    url: s.url,
    identifier: s.credential.identifier,
    secret: s.credential.secret,
    ca: s.ca,
    retry: { initialDelayMs: 1, maxDelayMs: 2 },
  })
  return createReverseSync({
    client,
    view,
    mappings: [
      {
        // A number, while WHMCS sends "1": ids are compared as values (Ticketz used ===).
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
  return report.intents.map((i) => `${i.kind}:${i.serviceId}`).sort()
}

beforeEach(async () => {
  sim = await createWhmcsSimulator()
  product = sim.createProduct({
    name: 'Workspace',
    customFields: [{ name: 'Password', type: 'password' }],
    configOptions: [{ name: 'Plan', options: ['Basic', 'Pro'] }],
  })
  other = sim.createProduct({ name: 'Domain', module: '' })
  view = new MemoryProvisionedView()
})
afterEach(async () => {
  await sim.close()
})

describe('reverse sync: the Ticketz defects', () => {
  it('matches the product id as a value whether WHMCS sends "1" or 1', async () => {
    for (const stringNumbers of ['legacy-actions', 'none'] as const) {
      sim.quirks.stringNumbers = stringNumbers
      const c = sim.createClient({ email: `a-${stringNumbers}@example.test` })
      sim.createService({
        clientId: c.id,
        pid: product.id,
        status: 'Active',
        options: { Plan: 'Pro' },
        fields: { Password: 'pw-1' },
      })
      const report = await makeSync({}, { productId: String(product.id) }).clientPass({ clientId: c.id })
      expect(report.errors).toEqual([])
      expect(report.intents.map((i) => i.kind)).toEqual(['create'])
      expect(report.intents[0]).toMatchObject({
        plan: 'Pro',
        password: 'pw-1',
        productId: String(product.id),
      })
    }
    expect(sameId('007', 7)).toBe(true)
    expect(sameId('7', '8')).toBe(false)
  })

  it('picks the newest matching service, not the first one listed', async () => {
    const c = sim.createClient({ email: 'newest@example.test' })
    const old = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Cancelled',
      options: { Plan: 'Basic' },
    })
    const current = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Pro' },
      fields: { Password: 'x' },
    })
    const report = await makeSync().clientPass({ email: 'newest@example.test' })
    expect(report.primaryService).toEqual({
      serviceId: String(current.id),
      productId: String(product.id),
      status: 'Active',
    })
    expect(kinds(report)).toEqual([`create:${current.id}`])
    expect(report.intents.some((i) => i.serviceId === String(old.id))).toBe(false)
  })

  it('reads every page: the mapped service behind 40 others is found when WHMCS pages by 25', async () => {
    // The server caps pages at 25 whatever limitnum says; Ticketz read only the first page.
    sim.quirks.maxPageSize = 25
    const c = sim.createClient({ email: 'many@example.test' })
    for (let i = 0; i < 40; i++) sim.createService({ clientId: c.id, pid: other.id, status: 'Active' })
    const wanted = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Basic' },
      fields: { Password: 'pw-many' },
    })
    const report = await makeSync().clientPass({ clientId: c.id })
    expect(kinds(report)).toEqual([`create:${wanted.id}`])
    expect(sim.requests.filter((r) => r.action === 'GetClientsProducts').map((r) => r.limitstart)).toEqual([
      0, 25,
    ])
  })

  it('honours suspension, unsuspension, termination, plan and password changes', async () => {
    const c = sim.createClient({ email: 'life@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Basic' },
      fields: { Password: 'first' },
    })
    const sync = makeSync()
    const run = async () => {
      const r = await sync.servicePass(s.id)
      expect(r.errors).toEqual([])
      for (const i of r.intents) view.apply(i)
      return r.intents.map((i) => i.kind)
    }
    expect(await run()).toEqual(['create'])
    expect(view.get(String(s.id))?.passwordFingerprint).toBe(fingerprintPassword('first'))
    expect(await run()).toEqual([])
    sim.suspendForNonPayment(s.id)
    expect(await run()).toEqual(['suspend'])
    sim.unsuspend(s.id)
    expect(await run()).toEqual(['unsuspend'])
    sim.upgrade(s.id, { options: { Plan: 'Pro' } })
    expect(await run()).toEqual(['changePackage'])
    expect(view.get(String(s.id))?.plan).toBe('Pro')
    sim.service(s.id).customFields[product.customFields[0]?.id ?? 0] = 'second'
    expect(await run()).toEqual(['changePassword'])
    sim.cancel(s.id)
    expect(await run()).toEqual(['terminate'])
    expect(await run()).toEqual([])
  })

  it('notices a service password changed in WHMCS even when the first-password field did not change', async () => {
    const c = sim.createClient({ email: 'pw@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      password: 'generated-by-whmcs',
      options: { Plan: 'Basic' },
      fields: { Password: 'first-login' },
    })
    const sync = makeSync()
    const run = async () => {
      const r = await sync.servicePass(s.id)
      expect(r.errors).toEqual([])
      for (const i of r.intents) view.apply(i)
      return r.intents
    }
    const [created] = await run()
    expect(created).toMatchObject({ kind: 'create', password: 'first-login' })
    expect(view.get(String(s.id))?.servicePasswordFingerprint).toBe(fingerprintPassword('generated-by-whmcs'))
    // The client changes the service password in WHMCS (ModuleChangePw); the custom field stays.
    const client = createWhmcsClient({
      url: sim.url,
      identifier: sim.credential.identifier,
      secret: sim.credential.secret,
      ca: sim.ca,
    })
    await client.moduleChangePw(s.id, 'chosen-by-client')
    await client.close()
    const [changed, ...rest] = await run()
    expect(rest).toEqual([])
    expect(changed).toMatchObject({ kind: 'changePassword', password: 'chosen-by-client' })
    // Applied: no change back to the first password, no repeat.
    expect(await run()).toEqual([])
    expect(view.get(String(s.id))?.passwordFingerprint).toBe(fingerprintPassword('first-login'))
    // A view that does not keep service fingerprints sees only the mapped field, as before.
    const kept = view.get(String(s.id))
    if (kept) {
      const { servicePasswordFingerprint: _dropped, ...plain } = kept
      view.services.set(String(s.id), plain)
    }
    sim.setServicePassword(s.id, 'third')
    expect(await run()).toEqual([])
  })

  it('keeps a WHMCS outage from blocking anything: typed errors, no throw', async () => {
    const sync = makeSync()
    const c = sim.createClient({ email: 'outage@example.test' })
    sim.injectFault({ kind: 'status', status: 503, times: 10 })
    const report = await sync.clientPass({ email: 'outage@example.test' })
    expect(report.complete).toBe(false)
    expect(report.errors[0]?.error.code).toBe('HTTP')
    expect(report.errors[0]?.error.retryable).toBe(true)
    sim.faults.length = 0
    await sim.close()
    const down = await sync.clientPass({ clientId: c.id })
    expect(down.errors[0]?.error.code).toBe('CONNECTION')
    sim = await createWhmcsSimulator()
  })

  it('turns a 403 (IP not allowed) during a login pass into a typed result, asking WHMCS once', async () => {
    const c = sim.createClient({ email: 'ip@example.test' })
    sim.createService({ clientId: c.id, pid: product.id, status: 'Active', options: { Plan: 'Basic' } })
    sim.allowedIps = ['203.0.113.1']
    const sync = makeSync()
    const before = sim.requests.length
    const report = await sync.clientPass({ email: 'ip@example.test' })
    expect(report.complete).toBe(false)
    expect(report.errors[0]?.error.code).toBe('AUTH')
    expect(report.errors[0]?.error.retryable).toBe(false)
    expect(report.errors[0]?.error.detail).toContain('Invalid IP 127.0.0.1')
    // Later passes fail fast without asking WHMCS again (failed access counts towards an IP ban).
    const again = await sync.clientPass({ clientId: c.id })
    expect(again.errors[0]?.error.code).toBe('AUTH')
    expect(sim.requests.length - before).toBe(1)
  })

  it('reports a bad service and carries on with the next', async () => {
    const c = sim.createClient({ email: 'mixed@example.test' })
    const broken = sim.createService({ clientId: c.id, pid: product.id, status: 'Active' })
    const zeroDate = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      billingcycle: 'One Time',
      options: { Plan: 'Pro' },
      fields: { Password: 'pw-once' },
    })
    const report = await makeSync().clientPass({ clientId: c.id })
    expect(report.errors).toHaveLength(1)
    expect(report.errors[0]).toMatchObject({ serviceId: String(broken.id), stage: 'evaluate' })
    expect(report.errors[0]?.error.detail).toContain('"Plan" is missing')
    expect(kinds(report)).toEqual([`create:${zeroDate.id}`])
    expect(report.intents[0]?.nextDueDate).toBeNull()
  })

  it('finds the client by a login (user) email that differs from the client email', async () => {
    const c = sim.createClient({ email: 'billing@company.test' })
    const user = sim.createUser({ firstname: 'Dev', lastname: 'Ops', email: 'dev@company.test' })
    sim.grantUserAccess(user.id, c.id)
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Pro' },
      fields: { Password: 'pw-dev' },
    })
    const report = await makeSync().clientPass({ email: 'dev@company.test' })
    expect(report.clientIds).toEqual([String(c.id)])
    expect(kinds(report)).toEqual([`create:${s.id}`])
    const missing = await makeSync().clientPass({ email: 'nobody@company.test' })
    expect(missing.errors[0]?.error.code).toBe('NOT_FOUND')
  })

  it('maps plans through a map when given, and reports unmapped values', async () => {
    const c = sim.createClient({ email: 'map@example.test' })
    const s1 = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Pro' },
      fields: { Password: 'pw-map' },
    })
    const s2 = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Active',
      options: { Plan: 'Basic' },
    })
    const report = await makeSync({}, { planMap: { Pro: 'plan-pro-2' } }).clientPass({ clientId: c.id })
    expect(report.intents.find((i) => i.serviceId === String(s1.id))?.plan).toBe('plan-pro-2')
    expect(report.errors.find((e) => e.serviceId === String(s2.id))?.error.detail).toContain('no mapping')
  })
})

describe('reverse sync: full pass, idempotency and drift', () => {
  it('emits intents for exactly what differs, with stable keys, and zero after applying them', async () => {
    const clients = Array.from({ length: 5 }, (_, i) => sim.createClient({ email: `f${i}@example.test` }))
    const statuses = [
      'Active',
      'Suspended',
      'Terminated',
      'Cancelled',
      'Pending',
      'Fraud',
      'Completed',
    ] as const
    for (let i = 0; i < 70; i++)
      sim.createService({
        clientId: clients[i % 5]?.id ?? 1,
        pid: i % 10 === 9 ? other.id : product.id,
        status: statuses[i % statuses.length] ?? 'Active',
        options: i % 10 === 9 ? {} : { Plan: 'Basic' },
        fields: i % 10 === 9 ? {} : { Password: `pw-${i}` },
      })
    const sync = makeSync({ pageSize: 9 })
    const first = await sync.fullPass()
    expect(first.complete).toBe(true)
    expect(first.errors).toEqual([])
    expect(first.servicesSeen).toBe(63)
    expect(new Set(first.intents.map((i) => i.kind))).toEqual(new Set(['create']))
    const again = await sync.fullPass()
    expect(again.intents.map((i) => i.key)).toEqual(first.intents.map((i) => i.key))
    const queued = new Set(first.intents.map((i) => i.key))
    const deduped = await makeSync({ isQueued: (k) => queued.has(k), pageSize: 9 }).fullPass()
    expect(deduped.intents).toEqual([])
    expect(deduped.alreadyQueued).toBe(first.intents.length)
    for (const i of first.intents) view.apply(i)
    const third = await sync.fullPass()
    expect(third.intents).toEqual([])
    expect(third.drift).toEqual([])
  })

  it('gives a repeated transition a new key once the previous one was applied', async () => {
    const c = sim.createClient({ email: 'k@example.test' })
    const s = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Suspended',
      options: { Plan: 'Basic' },
    })
    view.services.set(String(s.id), { serviceId: String(s.id), state: 'active', plan: 'Basic', revision: 1 })
    const sync = makeSync()
    const a = (await sync.servicePass(s.id)).intents[0]
    expect(a?.kind).toBe('suspend')
    if (a) view.apply(a)
    sim.unsuspend(s.id)
    const b = (await sync.servicePass(s.id)).intents[0]
    if (b) view.apply(b)
    sim.suspendForNonPayment(s.id)
    const c2 = (await sync.servicePass(s.id)).intents[0]
    expect(c2?.kind).toBe('suspend')
    expect(c2?.key).not.toBe(a?.key)
  })

  it('reports drift both ways, and "unknown to WHMCS" only after a complete pass', async () => {
    const c = sim.createClient({ email: 'd@example.test' })
    const susp = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Suspended',
      options: { Plan: 'Basic' },
    })
    const fraud = sim.createService({
      clientId: c.id,
      pid: product.id,
      status: 'Fraud',
      options: { Plan: 'Basic' },
    })
    view.services.set(String(susp.id), { serviceId: String(susp.id), state: 'active' })
    view.services.set(String(fraud.id), { serviceId: String(fraud.id), state: 'active' })
    view.services.set('9999', { serviceId: '9999', state: 'active' })
    const sync = makeSync()
    const report = await sync.fullPass()
    const drift = Object.fromEntries(report.drift.map((d) => [d.serviceId, d.kind]))
    expect(drift).toEqual({
      [String(susp.id)]: 'suspended-in-whmcs-active-on-server',
      [String(fraud.id)]: 'provisioned-while-fraud',
      '9999': 'unknown-to-whmcs',
    })
    expect(kinds(report)).toEqual([`suspend:${susp.id}`])
    sim.injectFault({ kind: 'status', status: 500, times: 1000 })
    const partial = await makeSync({ resumeAttempts: 1, resumeDelayMs: 1 }).fullPass()
    expect(partial.complete).toBe(false)
    expect(partial.drift.some((d) => d.kind === 'unknown-to-whmcs')).toBe(false)
  })
})
