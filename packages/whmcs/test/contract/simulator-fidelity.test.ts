import { afterEach, describe, expect, it } from 'vitest'
import { createWhmcsSimulator, type SimulatorOptions, type WhmcsSimulator } from '../../src/testing/index.ts'

/**
 * The simulator against WHMCS's documented and decoded behaviour, spoken to with bare HTTP the way any
 * client would: plain `fetch`, no panelkit client in between. Sources are named next to each case.
 */

const sims: WhmcsSimulator[] = []
async function start(options: SimulatorOptions = {}) {
  const sim = await createWhmcsSimulator({ tls: false, ...options })
  sims.push(sim)
  return sim
}
afterEach(async () => {
  for (const s of sims.splice(0)) await s.close()
})

interface Answer {
  status: number
  contentType: string
  text: string
  json: () => Record<string, unknown>
}

async function post(
  sim: WhmcsSimulator,
  params: Record<string, string>,
  withCredential = true,
): Promise<Answer> {
  const body = new URLSearchParams(
    withCredential
      ? { identifier: sim.credential.identifier, secret: sim.credential.secret, ...params }
      : params,
  )
  const res = await fetch(`${sim.url}includes/api.php`, { method: 'POST', body })
  const text = await res.text()
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    text,
    json: () => JSON.parse(text) as Record<string, unknown>,
  }
}

function seeded(sim: WhmcsSimulator) {
  const product = sim.createProduct({
    name: 'Mail',
    configOptions: [{ name: 'Plan', options: ['Silver', 'Gold'] }],
    customFields: [{ name: 'Password', type: 'password' }],
  })
  const client = sim.createClient({ email: 'ada@example.test', firstname: 'Ada', lastname: 'Lovelace' })
  for (let i = 0; i < 3; i++)
    sim.createService({ clientId: client.id, pid: product.id, status: 'Active', options: { Plan: 'Gold' } })
  return { product, client }
}

describe('action names (DEC ActionFilter.php: lower-cased, non-alphanumerics stripped, legacy aliases)', () => {
  it('answers an action whatever its case and punctuation, and counts it under one name', async () => {
    const sim = await start()
    const { client } = seeded(sim)
    for (const action of [
      'getclientsproducts',
      'GETCLIENTSPRODUCTS',
      'Get-Clients_Products',
      'GetClientsProducts',
    ]) {
      const r = await post(sim, { action, clientid: String(client.id), responsetype: 'json' })
      expect(r.status, action).toBe(200)
      expect(r.json(), action).toMatchObject({ result: 'success', totalresults: '3' })
    }
    expect(sim.callCount('GetClientsProducts')).toBe(4)
  })

  it('answers the legacy getclientsdatabyemail as GetClientsDetails', async () => {
    const sim = await start()
    seeded(sim)
    const r = await post(sim, {
      action: 'getclientsdatabyemail',
      email: 'ada@example.test',
      responsetype: 'json',
    })
    expect(r.json()).toMatchObject({
      result: 'success',
      client: { email: 'ada@example.test', firstname: 'Ada' },
    })
  })

  it('still refuses an action that does not exist, by its resolved name', async () => {
    const sim = await start()
    const r = await post(sim, { action: 'Get-Nothing', responsetype: 'json' })
    expect(r.json()).toEqual({
      result: 'error',
      message: 'Invalid API Action: "getnothing" is not a valid API action',
    })
  })

  it('checks API roles against the resolved name', async () => {
    const sim = await start({
      credentials: [{ identifier: 'ro-id', secret: 'ro-secret-0123456789', actions: ['GetClientsProducts'] }],
    })
    seeded(sim)
    const ok = await post(sim, { action: 'getclientsproducts', responsetype: 'json' })
    expect(ok.json().result).toBe('success')
    const no = await post(sim, { action: 'addcredit', clientid: '1', amount: '1', responsetype: 'json' })
    expect(no.json().message).toBe('Invalid Permissions: API action "addcredit" is not allowed')
  })
})

describe('responsetype (DEC ActionResponseFormat.php and ResponseFactory.php)', () => {
  it('answers a list action without responsetype in XML that carries the data', async () => {
    const sim = await start()
    const { client } = seeded(sim)
    const r = await post(sim, { action: 'GetClientsProducts', clientid: String(client.id) })
    expect(r.contentType).toMatch(/^application\/xml/)
    expect(r.text.startsWith('<?xml version="1.0" encoding="utf-8"?>\n<whmcsapi version="8.13.1">')).toBe(
      true,
    )
    expect(r.text).toContain('<action>getclientsproducts</action>\n<result>success</result>')
    expect(r.text).toContain('<totalresults>3</totalresults>')
    // One <product> per service inside <products>, each with its own fields and nested lists.
    expect(r.text.match(/<product>\n<id>\d+<\/id>/g)).toHaveLength(3)
    expect(r.text).toContain('<configoptions>\n<configoption>\n<id>1</id>\n<option>Plan</option>')
    expect(r.text).toContain('<value>Gold</value>')
    expect(r.text.trimEnd().endsWith('</whmcsapi>')).toBe(true)
  })

  it('puts text with markup characters in CDATA and leaves empty lists out of the XML', async () => {
    const sim = await start()
    const client = sim.createClient({ email: 'x@example.test', companyname: 'Smith & <Sons>' })
    const r = await post(sim, { action: 'GetClients', search: 'x@' })
    expect(r.text).toContain(`<companyname><![CDATA[Smith & <Sons>]]></companyname>`)
    expect(r.text).toContain(`<id>${client.id}</id>`)
    const none = await post(sim, { action: 'GetClients', search: 'nobody' })
    expect(none.text).toContain('<numreturned>0</numreturned>')
    expect(none.text).not.toContain('<clients>')
  })

  it('answers a basic action without responsetype in NVP', async () => {
    const sim = await start()
    const { client } = seeded(sim)
    const r = await post(sim, { action: 'AddCredit', clientid: String(client.id), amount: '12.50' })
    expect(r.contentType).toMatch(/^text\/plain/)
    expect(r.text).toBe('result=success;newbalance=12.50')
  })

  it('answers JSON for responsetype in any case', async () => {
    const sim = await start()
    seeded(sim)
    for (const responsetype of ['json', 'JSON', 'Json']) {
      const r = await post(sim, { action: 'GetProducts', responsetype })
      expect(r.contentType).toMatch(/^application\/json/)
      expect(r.json().result).toBe('success')
    }
  })

  it('refuses NVP for a list action and an unknown format, and an error in XML has no version', async () => {
    const sim = await start()
    const nvp = await post(sim, { action: 'GetClients', responsetype: 'nvp' })
    expect(nvp.text).toContain('<result>error</result>')
    expect(nvp.text).toContain('This API action only supports the XML or JSON response type formats')
    expect(nvp.text).toContain('<whmcsapi version="">')
    const yaml = await post(sim, { action: 'AddCredit', responsetype: 'yaml' })
    expect(yaml.text).toContain('result=error;message=Unsupported API response type format "yaml"')
  })
})

describe('request bodies', () => {
  it('reads multipart/form-data as PHP does, bracketed arrays included', async () => {
    const sim = await start()
    const { client, product } = seeded(sim)
    const form = new FormData()
    form.set('identifier', sim.credential.identifier)
    form.set('secret', sim.credential.secret)
    form.set('action', 'AddOrder')
    form.set('clientid', String(client.id))
    form.set('paymentmethod', 'mailin')
    form.set('pid[0]', String(product.id))
    form.set('billingcycle[0]', 'monthly')
    form.set('responsetype', 'json')
    const res = await fetch(`${sim.url}includes/api.php`, { method: 'POST', body: form })
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    const body = (await res.json()) as Record<string, unknown>
    expect(body).toMatchObject({ result: 'success' })
    expect(sim.orders.get(Number(body.orderid))?.serviceIds).toHaveLength(1)
    expect(sim.requests.at(-1)?.contentType).toMatch(/^multipart\/form-data; boundary=/)
  })

  it('does not read a JSON body (PHP fills nothing from it)', async () => {
    const sim = await start()
    const res = await fetch(`${sim.url}includes/api.php`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'GetClients', responsetype: 'json' }),
    })
    expect(res.status).toBe(400)
    expect(await res.text()).toBe('result=error;message=Empty action request')
  })
})

describe('credential errors (DEC Route/Middleware/Authentication.php)', () => {
  it('says "Invalid or missing credentials" for an unknown identifier or no secret, without counting a failed login', async () => {
    const sim = await start({ quirks: { banAfterFailures: 2 } })
    for (let i = 0; i < 3; i++) {
      const r = await post(
        sim,
        { identifier: 'no-such-id', secret: 'whatever', action: 'GetClients', responsetype: 'json' },
        false,
      )
      expect(r.status).toBe(403)
      expect(r.json()).toEqual({ result: 'error', message: 'Invalid or missing credentials' })
    }
    const noSecret = await post(
      sim,
      { identifier: sim.credential.identifier, action: 'GetClients', responsetype: 'json' },
      false,
    )
    expect(noSecret.json().message).toBe('Invalid or missing credentials')
    expect(sim.authFailures.get('127.0.0.1') ?? 0).toBe(0)
    expect(sim.bannedIps.size).toBe(0)
  })

  it('counts a wrong secret for a known identifier, and bans after the configured number', async () => {
    const sim = await start({ quirks: { banAfterFailures: 2 } })
    const wrong = {
      identifier: sim.credential.identifier,
      secret: 'wrong-secret',
      action: 'GetClients',
      responsetype: 'json',
    }
    expect((await post(sim, wrong, false)).json().message).toBe('Authentication Failed')
    expect(sim.authFailures.get('127.0.0.1')).toBe(1)
    await post(sim, wrong, false)
    expect((await post(sim, { action: 'GetClients', responsetype: 'json' })).json().message).toBe('IP Banned')
  })

  it('treats username/password as a credential pair first, then as an admin login', async () => {
    const sim = await start({ admins: { admin: 'AdminPass1' } })
    const asPair = await post(
      sim,
      {
        username: sim.credential.identifier,
        password: sim.credential.secret,
        action: 'GetClients',
        responsetype: 'json',
      },
      false,
    )
    expect(asPair.json().result).toBe('success')
    const plain = await post(
      sim,
      { username: 'admin', password: 'AdminPass1', action: 'GetClients', responsetype: 'json' },
      false,
    )
    expect(plain.json().message).toBe('Invalid password provided')
    expect(sim.authFailures.get('127.0.0.1') ?? 0).toBe(0)
    const unknown = await post(
      sim,
      { username: 'nobody', password: 'x', action: 'GetClients', responsetype: 'json' },
      false,
    )
    expect(unknown.json().message).toBe('Authentication Failed')
    expect(sim.authFailures.get('127.0.0.1')).toBe(1)
  })
})

describe('paging (DEC getclients.php, getinvoices.php, getclientsproducts.php; DD examples)', () => {
  it('echoes startnumber and numreturned as integers, the legacy count as a string', async () => {
    const sim = await start()
    const { client } = seeded(sim)
    const r = (
      await post(sim, {
        action: 'GetClientsProducts',
        clientid: String(client.id),
        limitnum: '2',
        responsetype: 'json',
      })
    ).json()
    expect(r).toMatchObject({ totalresults: '3', startnumber: 0, numreturned: 2 })
    const c = (await post(sim, { action: 'GetClients', limitnum: '1', responsetype: 'json' })).json()
    expect(c).toMatchObject({ totalresults: 1, startnumber: 0, numreturned: 1 })
  })

  it('answers a page past the end with no rows: GetClientsProducts leaves the list out, "" only when nothing matches', async () => {
    const sim = await start()
    const { client } = seeded(sim)
    const past = (
      await post(sim, {
        action: 'GetClientsProducts',
        clientid: String(client.id),
        limitstart: '10',
        responsetype: 'json',
      })
    ).json()
    expect(past).toMatchObject({ result: 'success', totalresults: '3', startnumber: 10, numreturned: 0 })
    expect('products' in past).toBe(false)
    const none = (
      await post(sim, { action: 'GetClientsProducts', clientid: '999', responsetype: 'json' })
    ).json()
    expect(none.products).toBe('')
    const invoices = (
      await post(sim, { action: 'GetInvoices', limitstart: '50', responsetype: 'json' })
    ).json()
    expect(invoices).toMatchObject({ numreturned: 0, invoices: [] })
  })

  it('reads limitnum=0 as the default and a non-numeric limitstart as 0, as PHP casts them', async () => {
    const sim = await start()
    const client = sim.createClient({ email: 'many@example.test' })
    const product = sim.createProduct({ name: 'VM' })
    for (let i = 0; i < 30; i++) sim.createService({ clientId: client.id, pid: product.id })
    const zero = (
      await post(sim, {
        action: 'GetClientsProducts',
        clientid: String(client.id),
        limitnum: '0',
        responsetype: 'json',
      })
    ).json()
    expect(zero.numreturned).toBe(25)
    const text = (
      await post(sim, {
        action: 'GetClientsProducts',
        clientid: String(client.id),
        limitstart: 'abc',
        limitnum: '5',
        responsetype: 'json',
      })
    ).json()
    expect(text).toMatchObject({ result: 'success', startnumber: 0, numreturned: 5 })
    const leading = (
      await post(sim, {
        action: 'GetClientsProducts',
        clientid: String(client.id),
        limitstart: '28abc',
        responsetype: 'json',
      })
    ).json()
    expect(leading).toMatchObject({ startnumber: 28, numreturned: 2 })
  })
})

describe('AddBillableItem and AddCredit (DEC addbillableitem.php, addcredit.php; DD)', () => {
  it('refuses invoiceaction=recur without recur parameters and adds nothing', async () => {
    const sim = await start()
    const { client } = seeded(sim)
    const base = {
      action: 'AddBillableItem',
      clientid: String(client.id),
      description: 'Usage',
      amount: '5.00',
      unit: 'quantity',
      responsetype: 'json',
    }
    expect((await post(sim, { ...base, invoiceaction: 'recur' })).json()).toEqual({
      result: 'error',
      message: 'Recurring must have a unit, cycle and limit',
    })
    expect(
      (await post(sim, { ...base, invoiceaction: 'recur', recur: '1', recurcycle: 'Months' })).json().message,
    ).toBe('Recurring must have a unit, cycle and limit')
    expect(sim.billableItems.size).toBe(0)
    const ok = (
      await post(sim, { ...base, invoiceaction: 'recur', recur: '1', recurcycle: 'Months', recurfor: '12' })
    ).json()
    expect(ok.result).toBe('success')
    expect(sim.billableItems.get(Number(ok.billableid))).toMatchObject({
      recur: 1,
      recurcycle: 'Months',
      recurfor: 12,
    })
  })

  it('AddCredit refuses an unknown type and a removal beyond the balance, changing nothing', async () => {
    const sim = await start()
    const { client } = seeded(sim)
    const base = { action: 'AddCredit', clientid: String(client.id), responsetype: 'json' }
    expect((await post(sim, { ...base, amount: '5', type: 'subtract' })).json().message).toBe(
      'Type can only be add or remove',
    )
    expect((await post(sim, { ...base, amount: '10.00' })).json()).toEqual({
      result: 'success',
      newbalance: '10.00',
    })
    expect((await post(sim, { ...base, amount: '10.01', type: 'remove' })).json()).toEqual({
      result: 'error',
      message: 'Insufficient Credit Balance',
    })
    expect(sim.clients.get(client.id)?.creditCents).toBe(1000)
    expect(sim.credits.size).toBe(1)
    expect((await post(sim, { ...base, amount: '4', type: 'REMOVE' })).json()).toEqual({
      result: 'success',
      newbalance: '6.00',
    })
  })

  it('AddCredit takes no description and checks the amount format', async () => {
    const sim = await start()
    const { client } = seeded(sim)
    const base = { action: 'AddCredit', clientid: String(client.id), responsetype: 'json' }
    expect((await post(sim, { ...base, amount: '1.5' })).json().result).toBe('success')
    expect([...sim.credits.values()][0]?.description).toBe('')
    expect((await post(sim, { ...base })).json().message).toBe('No Amount Provided')
    expect((await post(sim, { ...base, amount: '1.555' })).json().message).toBe(
      'Amount must be in decimal format: ### or ###.##',
    )
  })
})

describe('answer fields (DD getproducts.md, getclientsdetails.md, getinvoices.md)', () => {
  it('GetProducts prices every cycle and setup fee, and each configurable sub-option, with the option type number', async () => {
    const sim = await start()
    sim.createProduct({
      name: 'VPS',
      monthlyCents: 1000,
      prices: { quarterly: 2800, msetupfee: 500 },
      configOptions: [
        {
          name: 'RAM',
          type: 'dropdown',
          options: [{ name: '2 GB' }, { name: '4 GB', prices: { monthly: 300, annually: 3000 } }],
        },
        { name: 'Backups', type: 'yesno', options: ['Enabled'] },
      ],
    })
    const r = (await post(sim, { action: 'GetProducts', responsetype: 'json' })).json() as {
      products: { product: Record<string, unknown>[] }
    }
    const p = r.products.product[0] as Record<string, unknown> & {
      pricing: Record<string, Record<string, string>>
      configoptions: {
        configoption: {
          type: string
          options: { option: { pricing: Record<string, Record<string, string>> }[] }
        }[]
      }
    }
    expect(p.pricing.USD).toEqual({
      prefix: '$',
      suffix: ' USD',
      msetupfee: '5.00',
      qsetupfee: '0.00',
      ssetupfee: '0.00',
      asetupfee: '0.00',
      bsetupfee: '0.00',
      tsetupfee: '0.00',
      monthly: '10.00',
      quarterly: '28.00',
      semiannually: '-1.00',
      annually: '120.00',
      biennially: '-1.00',
      triennially: '-1.00',
    })
    const [ram, backups] = p.configoptions.configoption
    expect(ram?.type).toBe('1')
    expect(backups?.type).toBe('3')
    expect(ram?.options.option[1]?.pricing.USD).toMatchObject({
      monthly: '3.00',
      annually: '30.00',
      quarterly: '0.00',
      msetupfee: '0.00',
    })
    expect(Object.keys(ram?.options.option[0]?.pricing.USD ?? {})).toHaveLength(12)
  })

  it('GetClientsDetails gives the phone number formatted with the calling code', async () => {
    const sim = await start()
    const gb = sim.createClient({ email: 'uk@example.test', country: 'GB', phonenumber: '1234 567890' })
    const r = (
      await post(sim, { action: 'GetClientsDetails', clientid: String(gb.id), responsetype: 'json' })
    ).json()
    expect(r.client).toMatchObject({
      phonecc: 44,
      phonenumberformatted: '+44.1234567890',
      telephoneNumber: '+44.1234567890',
      countryname: 'United Kingdom',
    })
  })

  it('GetOrders names each line item as WHMCS does: the product type spelled out, "Group - Name"', async () => {
    const sim = await start()
    const { client, product } = seeded(sim)
    sim.placeOrder({ clientId: client.id, pid: product.id, options: { Plan: 'Silver' } })
    const r = (await post(sim, { action: 'GetOrders', responsetype: 'json' })).json() as {
      orders: { order: { lineitems: { lineitem: Record<string, unknown>[] } }[] }
    }
    expect(r.orders.order[0]?.lineitems.lineitem[0]).toMatchObject({
      type: 'product',
      producttype: 'Other Product/Service',
      product: 'Hosting - Mail',
      amount: '10.00',
    })
  })

  it('GetInvoices carries every column of the invoice row', async () => {
    const sim = await start()
    const { client, product } = seeded(sim)
    sim.placeOrder({ clientId: client.id, pid: product.id, options: { Plan: 'Silver' } })
    const r = (await post(sim, { action: 'GetInvoices', responsetype: 'json' })).json() as {
      invoices: { invoice: Record<string, unknown>[] }
    }
    const invoice = r.invoices.invoice[0] as Record<string, unknown>
    for (const key of [
      'id',
      'userid',
      'firstname',
      'lastname',
      'companyname',
      'invoicenum',
      'date',
      'duedate',
      'datepaid',
      'last_capture_attempt',
      'date_refunded',
      'date_cancelled',
      'subtotal',
      'credit',
      'tax',
      'tax2',
      'total',
      'taxrate',
      'taxrate2',
      'status',
      'paymentmethod',
      'paymethodid',
      'notes',
      'created_at',
      'updated_at',
      'currencycode',
      'currencyprefix',
      'currencysuffix',
    ])
      expect(invoice, key).toHaveProperty(key)
  })
})
