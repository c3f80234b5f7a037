import { afterEach, describe, expect, it } from 'vitest'
import { createWhmcsClient, creditDeposit, findPaidDeposits, MemoryLedger } from '../../src/index.ts'
import { createWhmcsSimulator, type WhmcsSimulator } from '../../src/testing/index.ts'

/** Paid deposits read from WHMCS (orders of one-time products with "Apply Credit"), credited once. */

const sims: WhmcsSimulator[] = []
afterEach(async () => {
  for (const s of sims.splice(0)) await s.close()
})

async function world() {
  const sim = await createWhmcsSimulator()
  sims.push(sim)
  const client = createWhmcsClient({
    url: sim.url,
    identifier: sim.credential.identifier,
    secret: sim.credential.secret,
    ca: sim.ca,
    retry: false,
  })
  const cloud = sim.createProduct({
    name: 'Cloud deposit',
    module: 'computestacks',
    paytype: 'onetime',
    monthlyCents: 2500,
  })
  const monthly = sim.createProduct({ name: 'Cloud monthly', module: 'computestacks', monthlyCents: 900 })
  const other = sim.createProduct({ name: 'Other one-time', paytype: 'onetime', monthlyCents: 4000 })
  const clientId = sim.createClient({
    email: 'depositor@example.com',
    firstname: 'Dee',
    lastname: 'Positor',
  }).id
  return { sim, client, cloud, monthly, other, clientId }
}

describe('findPaidDeposits', () => {
  it('finds the paid one-time fee of an order of a product with Apply Credit, once per order', async () => {
    const { sim, client, cloud, monthly, other, clientId } = await world()
    const paid = sim.placeOrder({ clientId, pid: cloud.id, billingcycle: 'One Time', paid: true })
    const unpaid = sim.placeOrder({ clientId, pid: cloud.id, billingcycle: 'One Time' })
    sim.placeOrder({ clientId, pid: monthly.id, billingcycle: 'Monthly', paid: true })
    sim.placeOrder({ clientId, pid: other.id, billingcycle: 'One Time', paid: true })
    const productIds = [cloud.id, monthly.id]

    const found = await findPaidDeposits(client, { productIds })
    expect(found).toEqual([
      {
        depositId: `whmcs-order-${paid.order.id}`,
        clientId: String(clientId),
        amount: '25.00',
        description: `Credit for Cloud Services Order #${paid.order.id}`,
        orderId: String(paid.order.id),
        invoiceId: String(paid.invoice.id),
        services: [{ serviceId: String(paid.service.id), pid: String(cloud.id), amount: '25.00' }],
      },
    ])
    // An unpaid order is no deposit until its invoice is paid; a refunded one is none either.
    sim.markInvoicePaid(unpaid.invoice.id)
    const later = await findPaidDeposits(client, { productIds, clientId })
    expect(later.map((d) => d.depositId).sort()).toEqual(
      [`whmcs-order-${paid.order.id}`, `whmcs-order-${unpaid.order.id}`].sort(),
    )
    ;(sim.invoices.get(paid.invoice.id) as { status: string }).status = 'Refunded'
    const one = await findPaidDeposits(client, { productIds, serviceId: paid.service.id })
    expect(one).toEqual([])
    expect(await findPaidDeposits(client, { productIds: [] })).toEqual([])
    await client.close()
  })

  it('credits a found deposit exactly once however often it is found', async () => {
    const { sim, client, cloud, clientId } = await world()
    sim.placeOrder({ clientId, pid: cloud.id, billingcycle: 'One Time', paid: true })
    const ledger = new MemoryLedger()
    for (let i = 0; i < 3; i++) {
      for (const deposit of await findPaidDeposits(client, { productIds: [cloud.id] }))
        await creditDeposit(client, ledger, deposit)
    }
    const credits = [...sim.credits.values()].filter((c) => c.clientid === clientId)
    expect(credits.map((c) => [c.amountCents, c.description])).toEqual([
      [2500, expect.stringMatching(/^Credit for Cloud Services Order #\d+$/)],
    ])
    await client.close()
  })
})
