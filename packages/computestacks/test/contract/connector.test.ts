import { createConnector, MemoryLogSink, type Result, type ServiceContextInput } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { computeStacksAccountConnector } from '../../src/index.ts'
import { type ComputeStacksSimulator, startComputeStacksSimulator } from '../../src/testing/index.ts'
import { visit } from './helpers.ts'

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
let starter = 0
let pro = 0

beforeAll(async () => {
  sim = await startComputeStacksSimulator({ userGroups: ['starter', 'pro'] })
  starter = [...sim.userGroups.values()].find((g) => g.name === 'starter')?.id ?? 0
  pro = [...sim.userGroups.values()].find((g) => g.name === 'pro')?.id ?? 0
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
    serviceId: 9000 + n,
    clientId: 300 + n,
    username: `Customer${n}@Example.com`,
    password: `Pw-${n}-long-enough`,
    server,
    settings: { userGroup: String(starter) },
    client: {
      email: `c${n}@example.com`,
      firstName: 'Chris',
      lastName: 'Customer',
      currency: 'GBP',
      company: 'Acme',
      phone: '+1.5551234',
    },
    ...extra,
  }
}

/** The data of an ok result, typed as the test wants to read it; a failure fails the test with its detail. */
async function ok<T = unknown>(promise: Promise<Result<unknown>>): Promise<T> {
  const result = await promise
  if (!result.ok) throw new Error(`expected ok, got ${result.error.code}: ${result.error.detail}`)
  return result.data as T
}

const accountOf = (s: ServiceContextInput) => sim.usersForService(String(s.serviceId))[0]

describe('create', () => {
  it('creates the account in the product group with the client details, tied to the service', async () => {
    const s = service()
    const data = await ok<{ accountId: string; created: boolean; username: string }>(
      connector.invoke('create', { service: s }),
    )
    expect(data.created).toBe(true)
    expect(data.username).toBe(`customer${n}@example.com`)
    const user = sim.users.get(Number(data.accountId))
    expect(user).toMatchObject({
      userGroupId: starter,
      currency: 'GBP',
      companyName: 'Acme',
      phone: '+1.5551234',
      fname: 'Chris',
      lname: 'Customer',
      externalId: String(s.serviceId),
      password: s.password,
      labels: { whmcs: { client_id: s.clientId, service_id: s.serviceId } },
    })
    expect(user?.confirmedAt).not.toBeNull()
  })

  it('builds a unique email when the username is not one, and uses the default group without a setting', async () => {
    const s = service({ username: 'jdoe', settings: { emailDomain: 'cloud.example.net' } })
    const data = await ok<{ username: string }>(connector.invoke('create', { service: s }))
    expect(data.username).toBe(`jdoe${s.clientId}-${s.serviceId}@cloud.example.net`)
    expect(accountOf(s)?.userGroupId).toBe(sim.defaultGroup().id)
  })

  it('finds the account after a lost create response instead of failing on the taken email', async () => {
    const s = service()
    sim.inject({ type: 'drop', afterHandling: true, match: { method: 'POST', path: '/api/admin/users' } })
    const first = await connector.invoke('create', { service: s })
    expect(first.ok).toBe(false)
    if (!first.ok) expect(first.error).toMatchObject({ code: 'CONNECTION', retryable: true })
    const second = await ok<{ created: boolean; accountId: string }>(
      connector.invoke('create', { service: s }),
    )
    expect(second.created).toBe(false)
    expect(sim.usersForService(String(s.serviceId))).toHaveLength(1)
  })

  it("adopts an account made by ComputeStacks' own module for this service, even with a capitalised username", async () => {
    const s = service({ username: 'Legacy.User@Example.com' })
    // BW sends the WHMCS username as the email (stored lower-cased) and ties it with external_id and labels.
    const legacy = sim.addUser({
      email: 'Legacy.User@Example.com',
      externalId: String(s.serviceId),
      labels: { whmcs: { client_id: Number(s.clientId), service_id: Number(s.serviceId) } },
    })
    const data = await ok<{ created: boolean; accountId: string }>(connector.invoke('create', { service: s }))
    expect(data).toMatchObject({ created: false, accountId: String(legacy.id) })
    await ok(connector.invoke('suspend', { service: s }))
    expect(legacy.active).toBe(false)
  })

  it('finds by lower-cased email an account whose label holds the service id as a string', async () => {
    const s = service({ username: 'Mixed.CASE.Owner@Example.com' })
    // A string id defeats find_by_label (JSONB containment is type-sensitive) and there is no external id,
    // so only the email can find it, and the server stored that email lower-cased.
    const stored = sim.addUser({
      email: 'mixed.case.owner@example.com',
      labels: { whmcs: { service_id: String(s.serviceId) } },
    })
    const data = await ok<{ created: boolean; accountId: string }>(connector.invoke('create', { service: s }))
    expect(data).toMatchObject({ created: false, accountId: String(stored.id) })
    const lookups = sim.requests.filter((r) => r.path.includes('find_by_email')).map((r) => r.status)
    expect(lookups.at(-1)).toBe(200)
  })

  it('is a CONFLICT when the email belongs to another service or to nobody we know', async () => {
    const s = service()
    sim.addUser({ email: String(s.username), labels: { whmcs: { service_id: 1 } } })
    const result = await connector.invoke('create', { service: s })
    expect(result.ok ? null : result.error.code).toBe('CONFLICT')
    expect(result.ok ? '' : result.error.detail).toContain('service 1')
    const t = service()
    sim.addUser({ email: String(t.username).toLowerCase() })
    const other = await connector.invoke('create', { service: t })
    expect(other.ok ? null : other.error.code).toBe('CONFLICT')
  })

  it('refuses what ComputeStacks would refuse before sending anything', async () => {
    const before = sim.requestCount
    const short = await connector.invoke('create', { service: service({ password: 'short' }) })
    expect(short.ok ? null : short.error.field).toBe('service.password')
    const nameless = await connector.invoke('create', {
      service: service({ client: { email: 'x@example.com', firstName: '', lastName: 'X' } }),
    })
    expect(nameless.ok ? null : nameless.error.field).toBe('service.client.firstName')
    const noKey = await connector.invoke('create', {
      service: service({ server: { ...server, username: undefined } }),
    })
    expect(noKey.ok ? null : noKey.error.field).toBe('server.username')
    expect(sim.requestCount).toBe(before)
  })

  it('names an unknown user group setting', async () => {
    const result = await connector.invoke('create', {
      service: service({ settings: { userGroup: 'platinum' } }),
    })
    expect(result.ok ? null : result.error.field).toBe('service.settings.userGroup')
  })
})

describe('lifecycle', () => {
  it('terminate suspends by default and keeps the account; delete is a setting', async () => {
    const s = service()
    await ok(connector.invoke('create', { service: s }))
    const first = await ok<{ changed: boolean; details: { mode: string } }>(
      connector.invoke('terminate', { service: s }),
    )
    expect(first).toMatchObject({ changed: true, details: { mode: 'suspend' } })
    expect(accountOf(s)?.active).toBe(false)
    const again = await ok<{ changed: boolean }>(connector.invoke('terminate', { service: s }))
    expect(again.changed).toBe(false)
    const deleting = { ...s, settings: { ...s.settings, terminateAction: 'delete' } }
    expect(
      await ok<{ changed: boolean }>(connector.invoke('terminate', { service: deleting })),
    ).toMatchObject({ changed: true })
    expect(accountOf(s)).toBeUndefined()
  })

  it('changes the password, masked everywhere', async () => {
    const s = service()
    await ok(connector.invoke('create', { service: s }))
    const next = { ...s, password: 'Brand-New-Password-9' }
    await ok(connector.invoke('changePassword', { service: next }))
    expect(accountOf(s)?.password).toBe('Brand-New-Password-9')
    expect(JSON.stringify(sink.entries)).not.toContain('Brand-New-Password-9')
    const missing = await connector.invoke('changePassword', { service: { ...s, password: undefined } })
    expect(missing.ok ? null : missing.error.field).toBe('service.password')
  })

  it('moves the account to the new user group (by id or name) and says when nothing changed', async () => {
    const s = service()
    await ok(connector.invoke('create', { service: s }))
    const moved = await ok<{ changed: boolean; applied: string[] }>(
      connector.invoke('changePackage', { service: { ...s, settings: { userGroup: String(pro) } } }),
    )
    expect(moved).toMatchObject({ changed: true, applied: ['userGroup'] })
    expect(accountOf(s)?.userGroupId).toBe(pro)
    const same = await ok<{ changed: boolean }>(
      connector.invoke('changePackage', { service: { ...s, settings: { userGroup: 'Pro' } } }),
    )
    expect(same.changed).toBe(false)
    const back = await ok<{ changed: boolean }>(
      connector.invoke('changePackage', { service: { ...s, settings: {} } }),
    )
    expect(back.changed).toBe(true)
    expect(accountOf(s)?.userGroupId).toBe(sim.defaultGroup().id)
  })

  it('operations on a service without an account are NOT_FOUND', async () => {
    const s = service()
    const result = await connector.invoke('suspend', { service: s })
    expect(result.ok ? null : result.error.code).toBe('NOT_FOUND')
  })

  it('dry-run records the writes and sends none', async () => {
    const s = service()
    await ok(connector.invoke('create', { service: s }))
    const writes = sim.writeCount
    const result = await connector.invoke('suspend', { service: s }, { dryRun: true })
    expect(result.ok).toBe(true)
    expect(result.dryRun?.writes.map((w) => w.action)).toEqual(['PATCH /api/admin/users/{id}'])
    expect(sim.writeCount).toBe(writes)
    expect(accountOf(s)?.active).toBe(true)
  })
})

describe('linking an imported account', () => {
  it('ties an account listed without a service to the service, after which every operation finds it', async () => {
    const imported = sim.addUser({ email: `imported${n}@example.com`, fname: 'Ivy', lname: 'Imported' })
    const s = service()
    const listed = await ok<{ accounts: { accountId: string; serviceId?: string }[] }>(
      connector.invoke('listAccounts', { server }),
    )
    expect(listed.accounts.find((a) => a.accountId === String(imported.id))?.serviceId).toBeUndefined()
    // Before the link the service has no account.
    const before = await connector.invoke('suspend', { service: s })
    expect(before.ok ? null : before.error.code).toBe('NOT_FOUND')

    const dry = await connector.invoke(
      'action',
      { service: s, action: 'linkAccount', params: { accountId: String(imported.id) } },
      { dryRun: true },
    )
    expect(dry.ok).toBe(true)
    expect(imported.externalId).toBeNull()

    const linked = await ok<{ message: string; data: { changed: boolean; username: string } }>(
      connector.invoke('action', { service: s, action: 'linkAccount', params: { accountId: imported.id } }),
    )
    expect(linked.data).toMatchObject({ changed: true, username: imported.email })
    expect(imported.externalId).toBe(String(s.serviceId))
    expect(imported.labels).toEqual({
      whmcs: { client_id: Number(s.clientId), service_id: Number(s.serviceId) },
    })
    const again = await ok<{ data: { changed: boolean } }>(
      connector.invoke('action', {
        service: s,
        action: 'linkAccount',
        params: { email: imported.email.toUpperCase() },
      }),
    )
    expect(again.data.changed).toBe(false)
    const relisted = await ok<{ accounts: { accountId: string; serviceId?: string }[] }>(
      connector.invoke('listAccounts', { server }),
    )
    expect(relisted.accounts.find((a) => a.accountId === String(imported.id))?.serviceId).toBe(
      String(s.serviceId),
    )
    // The service username is not the account's email, yet the tie finds it.
    expect((await ok<{ changed: boolean }>(connector.invoke('suspend', { service: s }))).changed).toBe(true)
    expect(imported.active).toBe(false)
  })

  it('refuses accounts tied to another service, a second account for the service, admins and unknown ids', async () => {
    const other = sim.addUser({
      email: `other${n}@example.com`,
      externalId: '777001',
      labels: { whmcs: { client_id: 1, service_id: 777001 } },
    })
    const s = service()
    const taken = await connector.invoke('action', {
      service: s,
      action: 'linkAccount',
      params: { accountId: other.id },
    })
    expect(taken.ok ? null : taken.error.code).toBe('CONFLICT')
    expect(other.externalId).toBe('777001')

    await ok(connector.invoke('create', { service: s }))
    const spare = sim.addUser({ email: `spare${n}@example.com` })
    const second = await connector.invoke('action', {
      service: s,
      action: 'linkAccount',
      params: { accountId: spare.id },
    })
    expect(second.ok ? null : second.error.code).toBe('CONFLICT')
    expect(spare.externalId).toBeNull()

    const admin = await connector.invoke('action', {
      service: service(),
      action: 'linkAccount',
      params: { accountId: sim.adminUserId },
    })
    expect(admin.ok ? null : admin.error.code).toBe('CONFLICT')
    const missing = await connector.invoke('action', {
      service: service(),
      action: 'linkAccount',
      params: { accountId: 999999 },
    })
    expect(missing.ok ? null : missing.error.code).toBe('NOT_FOUND')
    const neither = await connector.invoke('action', {
      service: service(),
      action: 'linkAccount',
      params: {},
    })
    expect(neither.ok ? null : neither.error.code).toBe('VALIDATION')
    const client = await connector.invoke('action', {
      service: service(),
      action: 'linkAccount',
      audience: 'client',
      params: { accountId: spare.id },
    })
    expect(client.ok ? null : client.error.code).toBe('UNSUPPORTED')
  })
})

describe('sso, client area and usage', () => {
  it('gives client and admin login URLs that sign in within their minute', async () => {
    const s = service()
    await ok(connector.invoke('create', { service: s }))
    const client = await ok<{ url: string; expiresAt: string }>(
      connector.invoke('sso', { service: s, audience: 'client' }),
    )
    expect(Date.parse(client.expiresAt) - Date.now()).toBeLessThanOrEqual(61_000)
    expect(await visit(sim, client.url)).toEqual({ status: 302, location: '/deployments/orders' })
    expect(await visit(sim, client.url)).toEqual({ status: 302, location: '/deployments/orders' })
    const admin = await ok<{ url: string }>(connector.invoke('sso', { service: s, audience: 'admin' }))
    expect(admin.url).toContain('from_admin=true')
    expect(await visit(sim, admin.url)).toEqual({ status: 302, location: '/deployments' })
    const token = new URL(admin.url).searchParams.get('token') as string
    expect(JSON.stringify(sink.entries)).not.toContain(token)
  })

  it('shows balance, run rate and services as exact values', async () => {
    const s = service()
    const created = await ok<{ accountId: string }>(connector.invoke('create', { service: s }))
    const user = sim.users.get(Number(created.accountId))
    if (!user) throw new Error('no user')
    user.runRate = '41.0400'
    user.services.deployments = 2
    user.services.container_services = 3
    user.services.containers = 5
    sim.addUsage(user.id, { total: '1.10' })
    sim.addUsage(user.id, { total: '2.25' })
    const area = await ok<{ fields: { key: string; value: unknown; unit?: string }[] }>(
      connector.invoke('clientArea', { service: s }),
    )
    const field = (key: string) => area.fields.find((f) => f.key === key)
    expect(field('balance')).toMatchObject({ value: '3.35', unit: 'GBP' })
    expect(field('runRate')).toMatchObject({ value: '41.0400', unit: 'GBP/month' })
    expect(field('projects')?.value).toBe(2)
    expect(field('services')?.value).toBe(3)
    expect(field('userGroup')?.value).toBe('starter')
    const usage = await ok<{ metrics: { name: string; value: unknown }[] }>(
      connector.invoke('usage', { service: s }),
    )
    expect(usage.metrics.find((m) => m.name === 'unprocessed_usage')?.value).toBe('3.35')
    expect(usage.metrics.find((m) => m.name === 'containers')?.value).toBe(5)
  })
})

describe('server operations', () => {
  it('lists every account on every page with the service ids it can match, skipping admins', async () => {
    const local = await startComputeStacksSimulator()
    local.seedUsers(130)
    local.addUser({ email: 'unlinked@example.com' })
    const localServer = {
      ...server,
      port: local.port,
      username: local.apiKey,
      password: local.apiSecret,
      options: { ca: local.cert },
    }
    const result = await ok<{ accounts: { accountId: string; serviceId?: string; status: string }[] }>(
      connector.invoke('listAccounts', { server: localServer }),
    )
    expect(result.accounts).toHaveLength(131)
    expect(result.accounts.filter((a) => a.serviceId !== undefined)).toHaveLength(130)
    expect(result.accounts.find((a) => a.serviceId === '1000129')?.status).toBe('active')
    await local.close()
  })

  it('tests the connection: credentials, version, locations, deprecation', async () => {
    const result = await ok<{
      version: string
      details: { locations: string[]; apiVersionDeprecated: boolean }
    }>(connector.invoke('testConnection', { server }))
    expect(result).toMatchObject({
      version: '9.3.1',
      details: { locations: ['Default'], apiVersionDeprecated: false },
    })
    const old = await ok<{ details: { apiVersionDeprecated: boolean } }>(
      connector.invoke('testConnection', {
        server: { ...server, options: { ...server.options, apiVersion: 60 } },
      }),
    )
    expect(old.details.apiVersionDeprecated).toBe(true)
    const extra = sim.addUser({ email: 'tc-admin@example.com', isAdmin: true })
    const credential = sim.addCredential(extra.id)
    const wrong = await connector.invoke('testConnection', {
      server: { ...server, username: credential.apiKey, password: 'not-the-secret' },
    })
    expect(wrong.ok ? null : wrong.error.code).toBe('AUTH')
    expect(JSON.stringify(wrong)).not.toContain('not-the-secret')
    const untrusted = await connector.invoke('testConnection', { server: { ...server, options: {} } })
    expect(untrusted.ok ? null : untrusted.error).toMatchObject({ code: 'CONNECTION', retryable: false })
    expect(untrusted.ok ? '' : untrusted.error.detail).toContain('TLS')
  })

  it('works over OAuth2 with the password grant', async () => {
    const oauth = {
      ...server,
      options: {
        ...server.options,
        auth: 'oauth2',
        oauthClientId: sim.oauthClientId,
        oauthClientSecret: sim.oauthClientSecret,
      },
    }
    const result = await ok<{ version: string }>(connector.invoke('testConnection', { server: oauth }))
    expect(result.version).toBe('9.3.1')
    expect(JSON.stringify(sink.entries)).not.toContain(sim.oauthClientSecret)
  })

  it('OAuth2 tokens are cached per server across invocations and refreshed once on a 401', async () => {
    const local = createConnector(computeStacksAccountConnector)
    const oauth = {
      ...server,
      options: {
        ...server.options,
        auth: 'oauth2',
        oauthClientId: sim.oauthClientId,
        oauthClientSecret: sim.oauthClientSecret,
      },
    }
    const tokenRequests = () => sim.requests.filter((r) => r.path.startsWith('/api/oauth/token')).length
    const before = tokenRequests()
    const s = service({ server: oauth })
    await ok(local.invoke('testConnection', { server: oauth }))
    await ok(local.invoke('create', { service: s }))
    await ok(local.invoke('suspend', { service: s }))
    expect(tokenRequests() - before).toBe(1)
    // The server forgets every token (a restart, a revocation): one 401, one new token, done.
    sim.tokens.clear()
    await ok(local.invoke('unsuspend', { service: s }))
    expect(tokenRequests() - before).toBe(2)
    expect(accountOf(s)?.active).toBe(true)
    // A fresh token that is refused as well is not fetched again and again.
    const admin = sim.users.get(sim.adminUserId)
    if (!admin) throw new Error('no admin')
    sim.tokens.clear()
    admin.isAdmin = false
    try {
      const refused = await local.invoke('suspend', { service: s })
      expect(refused.ok ? null : refused.error.code).toBe('AUTH')
      expect(tokenRequests() - before).toBe(3)
    } finally {
      admin.isAdmin = true
      await local.close()
    }
  })

  it('loads every user group into the dropdown', async () => {
    for (let i = 0; i < 130; i++) sim.addUserGroup(`tier-${String(i).padStart(3, '0')}`)
    const result = await connector.loadOptions('userGroup', server)
    expect(result.ok).toBe(true)
    const choices = result.ok ? result.data : []
    expect(choices).toHaveLength(sim.userGroups.size)
    expect(choices.find((c) => c.value === String(sim.defaultGroup().id))?.label).toBe('Default (default)')
    expect(choices.some((c) => c.label === 'Tier-129')).toBe(true)
  })
})
