import { createConnector, MemoryLogSink, type Result, type ServiceContextInput } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { computeStacksAccountConnector } from '../../src/index.ts'
import {
  type ComputeStacksSimulator,
  type SimUser,
  startComputeStacksSimulator,
} from '../../src/testing/index.ts'
import { plantAccountTiedElsewhereByExternalId } from './foreign-account.ts'

/**
 * Ownership is proven, never inferred: `labels.whmcs.service_id`, or `external_id` together with the
 * service's email, or an explicit `linkAccount`. `external_id` alone is free, non-unique text (the
 * controller's own doc calls it "a field you may use for your own purposes"), and ComputeStacks' v1
 * module stored the WHMCS client id there.
 */
let sim: ComputeStacksSimulator
const sink = new MemoryLogSink(100_000)
const connector = createConnector(computeStacksAccountConnector, { sink })
let server: {
  hostname: string
  port: number
  username: string
  password: string
  options: Record<string, unknown>
}
let n = 0

beforeAll(async () => {
  sim = await startComputeStacksSimulator({ userGroups: ['starter'] })
  server = {
    hostname: '127.0.0.1',
    port: sim.port,
    username: sim.apiKey,
    password: sim.apiSecret,
    options: { ca: sim.cert },
  }
})
afterAll(async () => {
  await connector.close()
  await sim.close()
})

function service(extra: Partial<ServiceContextInput> = {}): ServiceContextInput {
  n++
  return {
    serviceId: 41_000 + n,
    clientId: 900 + n,
    username: `owner${n}@example.com`,
    password: `Pw-${n}-long-enough`,
    server,
    settings: {},
    client: { email: `client${n}@example.com`, firstName: 'Olive', lastName: 'Owner', currency: 'EUR' },
    ...extra,
  }
}

async function ok<T = unknown>(promise: Promise<Result<unknown>>): Promise<T> {
  const result = await promise
  if (!result.ok) throw new Error(`expected ok, got ${result.error.code}: ${result.error.detail}`)
  return result.data as T
}

async function failure(promise: Promise<Result<unknown>>) {
  const result = await promise
  if (result.ok) throw new Error('expected a failure')
  return result.error
}

/** Everything about a user that an operation could change. */
const snapshot = (user: SimUser) =>
  JSON.parse(JSON.stringify({ ...user, authToken: null, authTokenExp: null }))

describe('an account tied to something else by external_id is never modified', () => {
  it('create makes the service its own account and every operation leaves the other one alone', async () => {
    const s = service({ settings: { terminateAction: 'delete' } })
    // A ComputeStacks v1 customer whose WHMCS client id equals this service id.
    const { user: v1, snapshot: probe } = plantAccountTiedElsewhereByExternalId(sim, s)
    const before = probe()
    const created = await ok<{ accountId: string; created: boolean }>(
      connector.invoke('create', { service: s }),
    )
    expect(created.created).toBe(true)
    expect(created.accountId).not.toBe(String(v1.id))
    for (const op of [
      'suspend',
      'unsuspend',
      'changePassword',
      'changePackage',
      'clientArea',
      'usage',
    ] as const)
      await ok(connector.invoke(op, { service: s }))
    await ok(connector.invoke('sso', { service: s, audience: 'client' }))
    await ok(connector.invoke('terminate', { service: s }))
    expect(sim.users.has(Number(created.accountId))).toBe(false)
    expect(probe()).toEqual(before)
    expect(v1.externalId).toBe(String(s.serviceId))
    // Nothing was ever looked up by external id.
    expect(sim.requests.some((r) => r.path.includes('find_by_external_id'))).toBe(false)
  })

  it('a service without an account of its own does not reach the other one', async () => {
    const s = service({ settings: { terminateAction: 'delete' } })
    const v1 = sim.addUser({ email: `v1.other${n}@example.com`, externalId: String(s.serviceId) })
    const before = snapshot(v1)
    const writes = sim.writeCount
    expect((await failure(connector.invoke('suspend', { service: s }))).code).toBe('NOT_FOUND')
    expect((await failure(connector.invoke('changePassword', { service: s }))).code).toBe('NOT_FOUND')
    expect((await failure(connector.invoke('sso', { service: s, audience: 'admin' }))).code).toBe('NOT_FOUND')
    expect(await ok(connector.invoke('terminate', { service: s }))).toMatchObject({ changed: false })
    expect(sim.writeCount).toBe(writes)
    expect(snapshot(v1)).toEqual(before)
  })

  it('the same email with the service id in external_id but a label of another service is a CONFLICT', async () => {
    const s = service()
    const other = sim.addUser({
      email: String(s.username),
      externalId: String(s.serviceId),
      labels: { whmcs: { client_id: 1, service_id: 5 } },
    })
    const before = snapshot(other)
    const error = await failure(connector.invoke('create', { service: s }))
    expect(error.code).toBe('CONFLICT')
    expect(error.detail).toContain('service 5')
    expect((await failure(connector.invoke('terminate', { service: s }))).code).toBe('CONFLICT')
    expect(snapshot(other)).toEqual(before)
  })
})

describe('proof of ownership', () => {
  it('external_id together with the service email is proof (an account made by a module that writes only external_id)', async () => {
    const s = service()
    const legacy = sim.addUser({ email: String(s.username), externalId: String(s.serviceId) })
    const created = await ok<{ accountId: string; created: boolean }>(
      connector.invoke('create', { service: s }),
    )
    expect(created).toMatchObject({ accountId: String(legacy.id), created: false })
    await ok(connector.invoke('suspend', { service: s }))
    expect(legacy.active).toBe(false)
  })

  it('terminate of an untied account with the service email is a CONFLICT naming linkAccount, like suspend', async () => {
    const s = service()
    const untied = sim.addUser({ email: String(s.username), externalId: '' })
    const before = snapshot(untied)
    const terminate = await failure(connector.invoke('terminate', { service: s }))
    const suspend = await failure(connector.invoke('suspend', { service: s }))
    for (const error of [terminate, suspend]) {
      expect(error.code).toBe('CONFLICT')
      expect(error.detail).toContain('linkAccount')
      expect(error.detail).toContain(`"accountId": ${untied.id}`)
    }
    expect(snapshot(untied)).toEqual(before)
    // An account whose external_id holds something else is pointed at the replacing link.
    const t = service()
    sim.addUser({ email: String(t.username), externalId: '17' })
    const other = await failure(connector.invoke('terminate', { service: t }))
    expect(other.code).toBe('CONFLICT')
    expect(other.detail).toContain('"replaceExternalId": true')
    // The way out works: link, then terminate (suspend-only by default).
    await ok(
      connector.invoke('action', { service: s, action: 'linkAccount', params: { accountId: untied.id } }),
    )
    expect(await ok(connector.invoke('terminate', { service: s }))).toMatchObject({ changed: true })
    expect(untied.active).toBe(false)
  })

  it('an empty external_id is untied: linkAccount accepts it and listAccounts reports no service', async () => {
    const s = service()
    const empty = sim.addUser({ email: `empty.external${n}@example.com`, externalId: '' })
    const onlyExternal = sim.addUser({ email: `only.external${n}@example.com`, externalId: '31337' })
    const listed = await ok<{
      accounts: { accountId: string; serviceId?: string; details: Record<string, unknown> }[]
    }>(connector.invoke('listAccounts', { server }))
    const emptyRow = listed.accounts.find((a) => a.accountId === String(empty.id))
    expect(emptyRow && 'serviceId' in emptyRow).toBe(false)
    const externalRow = listed.accounts.find((a) => a.accountId === String(onlyExternal.id))
    // external_id alone ties nothing; it is shown for the operator, not used as a service id.
    expect(externalRow?.serviceId).toBeUndefined()
    expect(externalRow?.details.externalId).toBe('31337')
    const linked = await ok<{ data: { changed: boolean } }>(
      connector.invoke('action', { service: s, action: 'linkAccount', params: { accountId: empty.id } }),
    )
    expect(linked.data.changed).toBe(true)
    expect(empty.externalId).toBe(String(s.serviceId))
  })

  it('linkAccount refuses an account carrying another external_id unless told to replace it', async () => {
    const s = service()
    const v1 = sim.addUser({ email: `v1.link${n}@example.com`, externalId: '17' })
    const refused = await failure(
      connector.invoke('action', { service: s, action: 'linkAccount', params: { accountId: v1.id } }),
    )
    expect(refused.code).toBe('CONFLICT')
    expect(refused.detail).toContain('replaceExternalId')
    expect(v1.externalId).toBe('17')
    await ok(
      connector.invoke('action', {
        service: s,
        action: 'linkAccount',
        params: { accountId: v1.id, replaceExternalId: true },
      }),
    )
    expect(v1.externalId).toBe(String(s.serviceId))
    expect(v1.labels).toEqual({ whmcs: { client_id: Number(s.clientId), service_id: Number(s.serviceId) } })
  })
})

describe('what create sends', () => {
  it("sends the client's address, so a server with billing_address on accepts the account", async () => {
    const strict = await startComputeStacksSimulator({ billingAddress: true })
    const strictServer = {
      ...server,
      port: strict.port,
      username: strict.apiKey,
      password: strict.apiSecret,
      options: { ca: strict.cert },
    }
    try {
      const bare = service({ server: strictServer })
      const refused = await failure(connector.invoke('create', { service: bare }))
      expect(refused.code).toBe('VALIDATION')
      expect(refused.detail).toContain('Address1 must be present; City must be present')
      const s = service({
        server: strictServer,
        client: {
          email: 'addressed@example.com',
          firstName: 'Ada',
          lastName: 'Dress',
          country: 'CA',
          address1: '1 Rue Principale',
          address2: 'App. 4',
          city: 'Montréal',
          state: 'Quebec',
          postcode: 'H2X 1Y4',
        },
      })
      const created = await ok<{ accountId: string }>(connector.invoke('create', { service: s }))
      expect(strict.users.get(Number(created.accountId))).toMatchObject({
        country: 'CA',
        address1: '1 Rue Principale',
        address2: 'App. 4',
        city: 'Montréal',
        state: 'Quebec',
        zip: 'H2X 1Y4',
      })
    } finally {
      await strict.close()
    }
  })

  it('builds an email ComputeStacks accepts for a server addressed by IP, keeping & and + in the name', async () => {
    const s = service({ username: 'R&D+ops' })
    const created = await ok<{ username: string; accountId: string }>(
      connector.invoke('create', { service: s }),
    )
    expect(created.username).toBe(`r&d+ops${s.clientId}-${s.serviceId}@[127.0.0.1]`)
    expect(sim.users.get(Number(created.accountId))?.email).toBe(created.username)
    // …and finds it again with that email.
    expect(await ok(connector.invoke('suspend', { service: s }))).toMatchObject({ changed: true })
  })

  it('takes as is a username Devise accepts as an email, even ones stricter checks refuse', async () => {
    for (const username of [`a=b/c${n}@example.com`, `kunde${n}@beispiel.例え`]) {
      const s = service({ username })
      const created = await ok<{ username: string }>(connector.invoke('create', { service: s }))
      expect(created.username).toBe(username)
    }
  })
})

describe('import and client area', () => {
  it('listAccounts gives the product (user group id) and the created date as Server Sync maps them', async () => {
    const s = service()
    const created = await ok<{ accountId: string }>(connector.invoke('create', { service: s }))
    const listed = await ok<{
      accounts: { accountId: string; serviceId?: string; details: Record<string, unknown> }[]
    }>(connector.invoke('listAccounts', { server }))
    const row = listed.accounts.find((a) => a.accountId === created.accountId)
    const user = sim.users.get(Number(created.accountId)) as SimUser
    expect(row?.serviceId).toBe(String(s.serviceId))
    expect(row?.details).toMatchObject({
      product: String(user.userGroupId),
      created: user.createdAt.slice(0, 19).replace('T', ' '),
      currency: 'EUR',
      currencySymbol: '€',
    })
    expect(row?.details.created).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/)
  })

  it('shows the currency with its symbol, and a recorded deposit, in the client area', async () => {
    const s = service()
    const created = await ok<{ accountId: string }>(connector.invoke('create', { service: s }))
    sim.addUsage(Number(created.accountId), { total: '3.456' })
    const before = await ok<{ fields: { key: string; value: unknown }[] }>(
      connector.invoke('clientArea', { service: s }),
    )
    const field = (area: typeof before, key: string) => area.fields.find((f) => f.key === key)?.value
    expect(field(before, 'currency')).toBe('EUR (€)')
    expect(field(before, 'balance')).toBe('3.456')
    expect(field(before, 'balanceDisplay')).toBe('€3.46')
    expect(field(before, 'depositCredit')).toBeUndefined()

    const recorded = await ok<{ data: { changed: boolean } }>(
      connector.invoke('action', {
        service: s,
        action: 'recordDeposit',
        params: { reference: 'whmcs-order-77', amount: '25.00' },
      }),
    )
    expect(recorded.data.changed).toBe(true)
    const again = await ok<{ data: { changed: boolean } }>(
      connector.invoke('action', {
        service: s,
        action: 'recordDeposit',
        params: { reference: 'whmcs-order-77', amount: '25.00' },
      }),
    )
    expect(again.data.changed).toBe(false)
    const user = sim.users.get(Number(created.accountId))
    // Its own label key: the service tie under `whmcs` is left as it was.
    expect(user?.labels).toEqual({
      whmcs: { client_id: Number(s.clientId), service_id: Number(s.serviceId) },
      panelkit_deposits: { 'whmcs-order-77': '25.00' },
    })
    const after = await ok<{ fields: { key: string; value: unknown }[] }>(
      connector.invoke('clientArea', { service: s }),
    )
    expect(field(after, 'depositCredit')).toBe('€25.00')
  })

  it('recordDeposit refuses a bad amount before sending anything', async () => {
    const s = service()
    const writes = sim.writeCount
    const error = await failure(
      connector.invoke('action', {
        service: s,
        action: 'recordDeposit',
        params: { reference: 'x', amount: '1e3' },
      }),
    )
    expect(error.code).toBe('VALIDATION')
    expect(error.field).toBe('params.amount')
    expect(sim.writeCount).toBe(writes)
  })
})
