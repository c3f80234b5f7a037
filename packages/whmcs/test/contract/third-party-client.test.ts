import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { phpSerialize } from '../../src/index.ts'
import { createWhmcsSimulator, type WhmcsSimulator } from '../../src/testing/index.ts'

/**
 * The simulator driven by a client panelkit did not write: the npm `whmcs` package (apocas/node-whmcs
 * 1.2.2), which sends lower-case action names (`getclientsproducts`), `username`/`password` for the
 * credential, a urlencoded body built with `querystring`, and `responsetype=json`. Every call the
 * simulator answers wrongly fails here the way it would fail against it for a user. It cannot be given
 * a CA, so the simulator serves plain HTTP.
 */

type Callback = (error: Error | null, data?: Record<string, unknown>) => void
interface NodeWhmcs {
  customers: Record<string, (...args: unknown[]) => void>
  billing: Record<string, (...args: unknown[]) => void>
  products: Record<string, (...args: unknown[]) => void>
  utils: { modem: (options: { client: unknown; body: Record<string, unknown> }, cb: Callback) => void }
}
const WHMCS = createRequire(import.meta.url)('whmcs') as new (config: Record<string, string>) => NodeWhmcs

function call(target: Record<string, (...args: unknown[]) => void>, method: string, ...args: unknown[]) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const fn = target[method]
    if (!fn) throw new Error(`node-whmcs has no ${method}`)
    fn.call(target, ...args, (error: Error | null, data?: Record<string, unknown>) =>
      error ? reject(error) : resolve(data ?? {}),
    )
  })
}

let sim: WhmcsSimulator
let whmcs: NodeWhmcs
let productId: number
let clientId: number
let serviceId: number

beforeAll(async () => {
  sim = await createWhmcsSimulator({ tls: false })
  whmcs = new WHMCS({
    username: sim.credential.identifier,
    password: sim.credential.secret,
    serverUrl: `${sim.url}includes/api.php`,
  })
  const product = sim.createProduct({
    name: 'Mailbox',
    configOptions: [{ name: 'Plan', options: ['Silver', 'Gold'] }],
    customFields: [{ name: 'Password', type: 'password' }],
  })
  productId = product.id
  const client = sim.createClient({ email: 'ada@example.test', firstname: 'Ada', lastname: 'Lovelace' })
  clientId = client.id
  serviceId = sim.placeOrder({
    clientId,
    pid: productId,
    options: { Plan: 'Gold' },
    fields: { Password: 'First-Pw-1' },
    paid: true,
  }).service.id
})
afterAll(async () => {
  await sim.close()
})

describe('the npm whmcs client against the simulator', () => {
  it('reads a client by id, by email and by the legacy getclientsdatabyemail', async () => {
    const byId = await call(whmcs.customers, 'getCustomer', clientId)
    expect(byId).toMatchObject({ result: 'success', client: { id: clientId, email: 'ada@example.test' } })
    const byEmail = await call(whmcs.customers, 'getCustomerByEmail', 'ada@example.test')
    expect(byEmail).toMatchObject({ client: { id: clientId, firstname: 'Ada' } })
    const legacy = await new Promise<Record<string, unknown>>((resolve, reject) =>
      whmcs.utils.modem(
        { client: whmcs.customers, body: { action: 'getclientsdatabyemail', email: 'ada@example.test' } },
        (e, d) => (e ? reject(e) : resolve(d ?? {})),
      ),
    )
    expect(legacy).toMatchObject({ client: { id: clientId } })
  })

  it("reads a client's services with their options and fields, and the products", async () => {
    const services = (await call(whmcs.customers, 'getCustomerProducts', clientId)) as {
      products: { product: Record<string, unknown>[] }
    }
    expect(services.products.product).toHaveLength(1)
    expect(services.products.product[0]).toMatchObject({
      id: String(serviceId),
      status: 'Active',
      configoptions: { configoption: [{ option: 'Plan', value: 'Gold' }] },
      customfields: { customfield: [{ name: 'Password', value: 'First-Pw-1' }] },
    })
    const products = (await call(whmcs.products, 'getProduct', productId)) as {
      products: { product: { pid: number; pricing: { USD: Record<string, string> } }[] }
    }
    expect(products.products.product[0]?.pid).toBe(productId)
    expect(products.products.product[0]?.pricing.USD.monthly).toBe('10.00')
  })

  it('reads invoices and orders', async () => {
    const invoices = (await call(whmcs.customers, 'getCustomerInvoices', clientId)) as {
      invoices: { invoice: { status: string }[] }
    }
    expect(invoices.invoices.invoice.map((i) => i.status)).toEqual(['Paid'])
    const orders = (await call(whmcs.customers, 'getCustomerOrders', { userid: clientId })) as {
      orders: { order: { status: string }[] }
    }
    expect(orders.orders.order[0]?.status).toBe('Active')
  })

  it('creates and updates a client', async () => {
    const created = await call(whmcs.customers, 'createCustomer', {
      firstname: 'Grace',
      lastname: 'Hopper',
      email: 'grace@example.test',
      address1: '1 Navy Way',
      city: 'Arlington',
      state: 'VA',
      postcode: '22201',
      country: 'US',
      phonenumber: '5550100',
      password2: 'Client-Pw-1',
    })
    expect(created.result).toBe('success')
    const id = Number(created.clientid)
    expect(sim.clients.get(id)?.email).toBe('grace@example.test')
    await call(whmcs.customers, 'updateCustomer', id, { companyname: 'US Navy' })
    expect(sim.clients.get(id)?.companyname).toBe('US Navy')
  })

  it('adds credit (with the description it always sends) and reads it back', async () => {
    const added = await call(whmcs.billing, 'addCredit', clientId, '12.50', undefined)
    expect(added).toEqual({ result: 'success', newbalance: '12.50' })
    const credits = (await call(whmcs.customers, 'getCredits', clientId)) as {
      credits: { credit: { amount: string; description: string }[] }
    }
    expect(credits.credits.credit).toEqual([
      expect.objectContaining({ amount: '12.50', description: 'Added via API' }),
    ])
  })

  it('places and accepts an order, then updates the service', async () => {
    const order = await call(whmcs.billing, 'addOrder', clientId, {
      paymentmethod: 'mailin',
      'pid[0]': productId,
      'billingcycle[0]': 'monthly',
      'configoptions[0]': Buffer.from(phpSerialize({ 1: 1 })).toString('base64'),
    })
    expect(order.result).toBe('success')
    const newService = Number(order.serviceids)
    expect(sim.service(newService).configChoices).toEqual({ 1: 1 })
    await call(whmcs.billing, 'acceptOrder', order.orderid, { autosetup: 1 })
    expect(sim.service(newService).status).toBe('Active')
    await call(whmcs.customers, 'updateCustomerProduct', newService, {
      serviceusername: 'ada2',
      dedicatedip: '192.0.2.7',
    })
    expect(sim.service(newService)).toMatchObject({ username: 'ada2', dedicatedip: '192.0.2.7' })
  })

  it('gets WHMCS errors through its error path', async () => {
    await expect(call(whmcs.customers, 'getCustomer', 9999)).rejects.toThrow(/Client Not Found/)
  })
})
