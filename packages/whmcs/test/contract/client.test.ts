import { createCallRecorder, hasErrorCode, MemoryLogSink } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWhmcsClient, type WhmcsClientOptions } from '../../src/index.ts'
import { decodePhpArray } from '../../src/protocol/php-serialize.ts'
import { createWhmcsSimulator, type WhmcsSimulator } from '../../src/testing/index.ts'

let sim: WhmcsSimulator
let pid: number
let clientId: number

function client(sim: WhmcsSimulator, extra: Partial<WhmcsClientOptions> = {}) {
  return createWhmcsClient({
    url: sim.url,
    identifier: sim.credential.identifier,
    secret: sim.credential.secret,
    ca: sim.ca,
    retry: { initialDelayMs: 1, maxDelayMs: 5 },
    ...extra,
  })
}

beforeAll(async () => {
  sim = await createWhmcsSimulator()
  const product = sim.createProduct({
    name: 'Workspace',
    customFields: [{ name: 'Password', type: 'password' }, { name: 'Notes' }],
    configOptions: [{ name: 'Plan', options: ['Basic', 'Pro'] }],
  })
  pid = product.id
  clientId = sim.createClient({ email: 'ada@example.test', firstname: 'Ada', lastname: 'Lovelace' }).id
  for (let i = 0; i < 60; i++)
    sim.createService({
      clientId,
      pid,
      status: i % 2 ? 'Active' : 'Suspended',
      password: `svc-pw-${i}`,
      options: { Plan: 'Pro' },
      fields: { Password: `first-pw-${i}` },
    })
})
afterAll(async () => {
  await sim.close()
})

describe('WHMCS client against the simulator', () => {
  it('normalises string ids, money, zero dates and list wrappers', async () => {
    const c = client(sim)
    const r = await c.getClientsProducts({ clientid: clientId, limitnum: 2 })
    expect(r.totalresults).toBe(60)
    expect(r.products).toHaveLength(2)
    const s = r.products[0]
    expect(s?.id).toBe('1')
    expect(s?.pid).toBe(String(pid))
    expect(s?.recurringamount).toBe('10.00')
    expect(s?.overidesuspenduntil).toBeNull()
    expect(s?.configoptions[0]).toMatchObject({ option: 'Plan', value: 'Pro' })
    expect(s?.customfields.map((f) => f.name)).toEqual(['Password', 'Notes'])
    await c.close()
  })

  it('turns every empty shape into an empty array', async () => {
    const c = client(sim)
    const lonely = sim.createClient({ email: 'nobody@example.test' })
    expect((await c.getClientsProducts({ clientid: lonely.id })).products).toEqual([])
    expect((await c.getInvoices({ userid: lonely.id })).invoices).toEqual([])
    expect((await c.getOrders({ userid: lonely.id })).orders).toEqual([])
    expect((await c.getClients({ search: 'zzz-nobody' })).clients).toEqual([])
    await c.close()
  })

  it('iterates every page with bounded parallel fetches and in order', async () => {
    const c = client(sim, { pageSize: 7, pageConcurrency: 3 })
    const ids: string[] = []
    for await (const s of c.iterateClientsProducts({ clientid: clientId })) ids.push(s.id)
    expect(ids).toHaveLength(60)
    expect(ids).toEqual([...ids].sort((a, b) => Number(a) - Number(b)))
    expect(new Set(ids).size).toBe(60)
    await c.close()
  })

  it('never sends credentials in the URL, never sends "false", never loses array values', async () => {
    const c = client(sim)
    await c.getClientsDetails({ email: 'ada@example.test' }, { stats: false })
    const order = await c.addOrder({
      clientid: clientId,
      paymentmethod: 'mailin',
      items: [
        { pid, billingcycle: 'monthly', customfields: { 1: 'x' }, configoptions: { 1: 2 } },
        { pid, billingcycle: 'annually' },
      ],
      noinvoice: false,
    })
    expect(order.serviceids).toHaveLength(2)
    const second = sim.service(Number(order.serviceids[1]))
    expect(second.billingcycle).toBe('Annually')
    expect(sim.service(Number(order.serviceids[0])).customFields[1]).toBe('x')
    expect(sim.violations).toEqual([])
    expect(sim.requests.every((r) => r.queryKeys.length === 0)).toBe(true)
    await c.close()
  })

  it('maps result:"error" at HTTP 200 to typed errors and keeps WHMCS message', async () => {
    const c = client(sim)
    const notFound = await c.getClientsDetails({ clientid: 99_999 }).catch((e: unknown) => e)
    expect(hasErrorCode(notFound, 'NOT_FOUND')).toBe(true)
    expect((notFound as Error).message).toContain('Client Not Found')
    const bad = await c
      .call('AddBillableItem', { clientid: clientId, description: 'x', amount: '1', unit: 'bogus' })
      .catch((e: unknown) => e)
    expect(hasErrorCode(bad, 'VALIDATION')).toBe(true)
    expect((bad as Error).message).toContain('Invalid Unit')
    await c.close()
  })

  it('maps the 400 for an empty action', async () => {
    const { request } = await import('undici')
    const { Agent } = await import('undici')
    const agent = new Agent({ connect: { ca: sim.ca } })
    const res = await request(`${sim.url}includes/api.php`, {
      method: 'POST',
      body: `identifier=${sim.credential.identifier}&secret=${sim.credential.secret}&responsetype=json`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      dispatcher: agent,
    })
    expect(res.statusCode).toBe(400)
    expect(await res.body.json()).toEqual({ result: 'error', message: 'Empty action request' })
    await agent.close()
  })

  it('redacts service passwords and password custom fields in the module log', async () => {
    const sink = new MemoryLogSink()
    const c = client(sim, { recorder: createCallRecorder({ connector: 'test', sink }) })
    await c.getClientsProducts({ serviceid: 3 })
    await c.updateClientProduct({
      serviceid: 3,
      servicepassword: 'New-Secret-77',
      customfields: { 1: 'cf-secret' },
    })
    const log = JSON.stringify(sink.entries)
    expect(log).not.toContain('svc-pw-2')
    expect(log).not.toContain('first-pw-2')
    expect(log).not.toContain('New-Secret-77')
    expect(log).not.toContain('cf-secret')
    expect(log).not.toContain(sim.credential.secret)
    expect(log).toContain('GetClientsProducts')
    expect(sim.service(3).password).toBe('New-Secret-77')
    expect(decodePhpArray(Buffer.from('a:0:{}').toString('base64'))).toEqual([])
    await c.close()
  })
})

describe('access control and authentication', () => {
  it('answers 403 for a bad secret once and does not retry in a loop', async () => {
    const s = await createWhmcsSimulator({ quirks: { banAfterFailures: 3 } })
    const c = client(s, { secret: 'wrong-secret' })
    const first = await c.getHealthStatus().catch((e: unknown) => e)
    expect(hasErrorCode(first, 'AUTH')).toBe(true)
    expect((first as Error).message).toContain('Authentication Failed')
    for (let i = 0; i < 5; i++) await c.getClients().catch(() => undefined)
    expect(s.authFailures.get('127.0.0.1')).toBe(1)
    expect(s.bannedIps.size).toBe(0)
    expect(c.authBlockedUntil).toBeGreaterThan(Date.now())
    await c.close()
    await s.close()
  })

  it('refuses an IP outside the allow-list unless the access key is sent', async () => {
    const s = await createWhmcsSimulator({ allowedIps: ['203.0.113.9'], accessKey: 'k3y!@#' })
    const denied = await client(s)
      .getHealthStatus()
      .catch((e: unknown) => e)
    expect(hasErrorCode(denied, 'AUTH')).toBe(true)
    expect((denied as Error).message).toContain('Invalid IP 127.0.0.1')
    const wrongKey = await client(s, { accessKey: 'nope' })
      .getHealthStatus()
      .catch((e: unknown) => e)
    expect((wrongKey as Error).message).toContain('Invalid Access Key')
    await expect(client(s, { accessKey: 'k3y!@#' }).getHealthStatus()).resolves.toBeDefined()
    await s.close()
  })

  it('enforces API roles per action', async () => {
    const s = await createWhmcsSimulator({
      credentials: [{ identifier: 'ro', secret: 'ro-secret', actions: ['GetClientsProducts'] }],
    })
    const c = client(s)
    await expect(c.getClientsProducts()).resolves.toMatchObject({ products: [] })
    const denied = await c.getClients().catch((e: unknown) => e)
    expect(hasErrorCode(denied, 'AUTH')).toBe(true)
    expect((denied as Error).message).toContain('Invalid Permissions')
    // A permission refusal is not a credential failure: the client is not blocked.
    expect(c.authBlockedUntil).toBeUndefined()
    await s.close()
  })

  it('supports the legacy admin login only when chosen, with a warning', async () => {
    const s = await createWhmcsSimulator({ admins: { admin: 'Admin-Pass-1' } })
    const warnings: string[] = []
    const c = createWhmcsClient({
      url: s.url,
      ca: s.ca,
      legacyAdminLogin: { username: 'admin', password: 'Admin-Pass-1' },
      onWarning: (m) => warnings.push(m),
    })
    await expect(c.whmcsDetails()).resolves.toMatchObject({ version: '8.13.1' })
    expect(warnings[0]).toMatch(/legacy admin login/)
    expect(() => createWhmcsClient({ url: s.url })).toThrow(/identifier and secret/)
    await s.close()
  })
})

describe('faults', () => {
  it('retries reads on 5xx and dropped connections, but not writes', async () => {
    const c = client(sim)
    sim.injectFault({ kind: 'status', status: 503, action: 'GetClients' })
    sim.injectFault({ kind: 'drop', action: 'GetClients' })
    await expect(c.getClients()).resolves.toMatchObject({ totalresults: expect.any(Number) })
    sim.injectFault({ kind: 'status', status: 502, action: 'AddCredit' })
    const before = sim.callCount('AddCredit')
    const err = await c
      .addCredit({ clientid: clientId, description: 'x', amount: '1.00' })
      .catch((e: unknown) => e)
    expect(hasErrorCode(err, 'HTTP')).toBe(true)
    expect(sim.callCount('AddCredit')).toBe(before + 1)
    await c.close()
  })

  it('reports HTML and XML bodies as protocol errors and slow answers as timeouts', async () => {
    const c = client(sim, { retry: false, timeoutMs: 200 })
    sim.injectFault({ kind: 'html', action: 'GetClients' })
    const html = await c.getClients().catch((e: unknown) => e)
    expect(hasErrorCode(html, 'PROTOCOL')).toBe(true)
    expect((html as Error).message).toMatch(/HTML/)
    sim.injectFault({ kind: 'slow', delayMs: 600, action: 'GetClients' })
    const slow = await c.getClients().catch((e: unknown) => e)
    expect(hasErrorCode(slow, 'TIMEOUT')).toBe(true)
    await c.close()
  })
})
