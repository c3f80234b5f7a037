import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createWhmcsClient,
  creditDeposit,
  MemoryLedger,
  pushUsage,
  type WhmcsClient,
  writeBackService,
} from '../../src/index.ts'
import { createWhmcsSimulator, type WhmcsSimulator } from '../../src/testing/index.ts'

let sim: WhmcsSimulator
let client: WhmcsClient
let clientId: number
let serviceId: number

beforeAll(async () => {
  sim = await createWhmcsSimulator()
  const product = sim.createProduct({ name: 'VM' })
  clientId = sim.createClient({ email: 'wb@example.test' }).id
  serviceId = sim.createService({ clientId, pid: product.id, status: 'Active' }).id
  client = createWhmcsClient({
    url: sim.url,
    identifier: sim.credential.identifier,
    secret: sim.credential.secret,
    ca: sim.ca,
    retry: { initialDelayMs: 1, maxDelayMs: 2 },
  })
})
afterAll(async () => {
  await client.close()
  await sim.close()
})

describe('write-back', () => {
  it('writes username, dedicated and assigned IPs and server with UpdateClientProduct', async () => {
    const r = await writeBackService(client, {
      serviceId,
      username: 'vm1234',
      dedicatedIp: '198.51.100.7',
      assignedIps: ['198.51.100.8', '2001:db8::8'],
      serverId: 1,
    })
    expect(r).toEqual({ ok: true, written: ['username', 'dedicatedip', 'assignedips', 'serverid'] })
    const s = sim.service(serviceId)
    expect([s.username, s.dedicatedip, s.assignedips]).toEqual([
      'vm1234',
      '198.51.100.7',
      '198.51.100.8\n2001:db8::8',
    ])
    const fetched = await client.getClientsProducts({ serviceid: serviceId })
    expect(fetched.products[0]?.dedicatedip).toBe('198.51.100.7')
    const missing = await writeBackService(client, { serviceId: 999_999, username: 'x' })
    expect(missing.ok).toBe(false)
    if (!missing.ok) expect(missing.error.code).toBe('NOT_FOUND')
  })

  it('bills usage exactly once per service and period, however often it is pushed', async () => {
    const ledger = new MemoryLedger()
    const push = { serviceId, clientId, period: '2026-05', description: 'Usage May', amount: '12.34' }
    const before = sim.billableItems.size
    const results = await Promise.all([pushUsage(client, ledger, push), pushUsage(client, ledger, push)])
    expect(results.map((r) => r.status).sort()).toEqual(['uncertain', 'written'])
    expect((await pushUsage(client, ledger, push)).status).toBe('already-done')
    expect(sim.billableItems.size).toBe(before + 1)
    const item = [...sim.billableItems.values()].at(-1)
    expect(item).toMatchObject({
      clientid: clientId,
      amount: '12.34',
      unit: 'quantity',
      invoiceaction: 'nextinvoice',
    })
    expect((await pushUsage(client, ledger, { ...push, period: '2026-06' })).status).toBe('written')
    expect(sim.billableItems.size).toBe(before + 2)
  })

  it('never bills twice when the answer to a push was lost', async () => {
    const ledger = new MemoryLedger()
    const push = { serviceId, clientId, period: '2026-07', description: 'Usage July', amount: '5.00' }
    const before = sim.billableItems.size
    sim.injectFault({ kind: 'drop-after', action: 'AddBillableItem' })
    const lost = await pushUsage(client, ledger, push)
    expect(lost.status).toBe('failed')
    if (lost.status === 'failed') expect(lost.retryable).toBe(false)
    expect(sim.billableItems.size).toBe(before + 1)
    const retried = await pushUsage(client, ledger, push)
    expect(retried.status).toBe('uncertain')
    expect(sim.billableItems.size).toBe(before + 1)
  })

  it('frees the key when WHMCS refused the push, so a corrected retry bills once', async () => {
    const ledger = new MemoryLedger()
    const before = sim.billableItems.size
    const refused = await pushUsage(client, ledger, {
      serviceId,
      clientId: 999_999,
      period: '2026-08',
      description: 'x',
      amount: '1.00',
    })
    expect(refused.status).toBe('failed')
    if (refused.status === 'failed') expect(refused.error.code).toBe('NOT_FOUND')
    expect(await ledger.get(refused.key)).toBeUndefined()
    const ok = await pushUsage(client, ledger, {
      serviceId,
      clientId,
      period: '2026-08',
      description: 'x',
      amount: '1.00',
    })
    expect(ok.status).toBe('written')
    expect(sim.billableItems.size).toBe(before + 1)
  })

  it('credits a deposit exactly once', async () => {
    const ledger = new MemoryLedger()
    const deposit = { clientId, depositId: 'order-77', amount: '25.00', description: 'Deposit for order 77' }
    const first = await creditDeposit(client, ledger, deposit)
    expect(first).toMatchObject({ status: 'written', result: '25.00' })
    expect(await creditDeposit(client, ledger, deposit)).toMatchObject({
      status: 'already-done',
      result: '25.00',
    })
    expect(sim.clients.get(clientId)?.creditCents).toBe(2500)
    expect((await client.getCredits(clientId)).credits.map((c) => c.amount)).toEqual(['25.00'])
  })
})
