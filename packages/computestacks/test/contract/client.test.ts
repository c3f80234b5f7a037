import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createOAuth2TokenCache } from '../../src/index.ts'
import { type ComputeStacksSimulator, startComputeStacksSimulator } from '../../src/testing/index.ts'
import { clientFor, raw, visit } from './helpers.ts'

let sim: ComputeStacksSimulator

beforeAll(async () => {
  sim = await startComputeStacksSimulator({ userGroups: ['starter', 'pro'] })
})
afterAll(async () => {
  await sim.close()
})

describe('versions and headers', () => {
  it('answers a deprecated version with API-Deprecated and refuses an obsolete one with 422', async () => {
    const deprecated = await raw(sim, '/api/admin/locations', { accept: 'application/json; api_version=60' })
    expect(deprecated.status).toBe(200)
    expect(deprecated.headers['api-deprecated']).toBe('true')
    const current = await raw(sim, '/api/admin/locations')
    expect(current.headers['api-deprecated']).toBeUndefined()
    const obsolete = await raw(sim, '/api/admin/locations', { accept: 'application/json; api_version=50' })
    expect(obsolete.status).toBe(422)
    expect(obsolete.headers['api-version-supported']).toBe('false')
    expect(obsolete.json).toEqual({ errors: ['You requested an unsupported version (50)'] })
  })

  it('the client reports deprecation, and an unsupported version as UNSUPPORTED', async () => {
    const seen: number[] = []
    const old = clientFor(sim, { apiVersion: 65, onDeprecated: (i) => seen.push(i.apiVersion) })
    const version = await old.client.version()
    expect(version.version).toBe('9.3.1')
    expect(version.apiAvailableVersions).toContain(80)
    expect(seen).toEqual([65])
    const gone = clientFor(sim, { apiVersion: 40 })
    await expect(gone.client.locations.list()).rejects.toMatchObject({ kind: 'UNSUPPORTED' })
    await Promise.all([old.client.close(), gone.client.close()])
  })
})

describe('envelopes and status codes', () => {
  it('sends an empty 404 for a missing user and an enveloped 404 for an unknown route', async () => {
    const missing = await raw(sim, '/api/admin/users/987654')
    expect(missing.status).toBe(404)
    expect(missing.text).toBe('')
    const unknown = await raw(sim, '/api/admin/nothing-here')
    expect(unknown.json).toEqual({ errors: ['Unknown API Call. Please check the documentation.'] })
    const noAuth = await raw(sim, '/api/admin/users', { auth: null })
    expect(noAuth.status).toBe(401)
    expect(noAuth.json).toEqual({ errors: ['Not Authorized'] })
    const oldAuth = await raw(sim, '/api/auth', { method: 'POST', body: {} })
    expect(oldAuth.status).toBe(400)
  })

  it('hides the support admins from lookups', async () => {
    const { client } = clientFor(sim)
    expect(await client.users.findByEmail('hello@computestacks.com')).toBeUndefined()
    await client.close()
  })

  it('refuses a non-admin credential on the admin API', async () => {
    const user = sim.addUser({ email: 'plain@example.com' })
    const credential = sim.addCredential(user.id)
    const { client } = clientFor(sim, { auth: { type: 'basic', ...credential } })
    await expect(client.locations.list()).rejects.toMatchObject({ kind: 'AUTH' })
    // The version endpoint needs any valid credential, not an admin.
    expect((await client.version()).version).toBe('9.3.1')
    await client.close()
  })
})

describe('Basic authentication lock-out', () => {
  it('locks the owning user after five bad secrets, even for the right secret, until the lock expires', async () => {
    const admin = sim.addUser({ email: 'second-admin@example.com', isAdmin: true })
    const credential = sim.addCredential(admin.id)
    const bad = clientFor(sim, {
      auth: { type: 'basic', apiKey: credential.apiKey, apiSecret: 'wrong-secret' },
    })
    for (let i = 0; i < 5; i++)
      await expect(bad.client.locations.list()).rejects.toMatchObject({ kind: 'AUTH' })
    expect(sim.users.get(admin.id)?.lockedAt).not.toBeNull()
    const good = clientFor(sim, { auth: { type: 'basic', ...credential } })
    await expect(good.client.locations.list()).rejects.toMatchObject({ kind: 'AUTH' })
    sim.advance(4 * 3600_000 + 1000)
    expect(await good.client.locations.list()).toHaveLength(1)
    expect(sim.users.get(admin.id)?.failedAttempts).toBe(0)
    // The bad attempts were not retried: exactly one request each.
    expect(bad.sink.entries).toHaveLength(5)
    await Promise.all([bad.client.close(), good.client.close()])
  })
})

describe('users', () => {
  it('creates, finds (whatever the case of the email), updates, suspends and deletes', async () => {
    const { client } = clientFor(sim)
    const created = await client.users.create({
      email: 'Mixed.Case@Example.COM',
      firstName: 'Mixed',
      lastName: 'Case',
      password: 'Long-enough-1',
      currency: 'EUR',
      companyName: 'Case Ltd',
      whmcs: { clientId: '12', serviceId: '34' },
    })
    expect(created.email).toBe('mixed.case@example.com')
    expect(created.currency).toBe('EUR')
    expect(sim.users.get(created.id)?.labels).toEqual({ whmcs: { client_id: 12, service_id: 34 } })
    expect((await client.users.findByEmail('Mixed.Case@Example.COM'))?.id).toBe(created.id)
    expect((await client.users.get({ whmcsServiceId: 34 })).id).toBe(created.id)
    expect((await client.users.get({ whmcsClientId: '12' })).id).toBe(created.id)
    const shown = await client.users.get(created.id, { balance: true })
    expect(shown.unprocessedUsage).toBe('0.0')
    expect(shown.runRate).toBe('0')
    expect(shown.services?.containers).toBe(0)
    await expect(
      client.users.create({ email: 'mixed.case@example.com', firstName: 'A', lastName: 'B' }),
    ).rejects.toMatchObject({
      kind: 'CONFLICT',
      message: expect.stringContaining('Email has already been taken'),
    })
    const suspended = await client.users.suspend(created.id)
    expect(suspended.active).toBe(false)
    expect(sim.users.get(created.id)?.active).toBe(false)
    expect((await client.users.unsuspend({ email: 'mixed.case@example.com' })).active).toBe(true)
    await client.users.update(created.id, { password: 'Another-pass-2', userGroupId: 2 })
    expect(sim.users.get(created.id)?.password).toBe('Another-pass-2')
    expect(sim.users.get(created.id)?.userGroupId).toBe(2)
    await expect(client.users.update(created.id, { userGroupId: 999 })).rejects.toMatchObject({
      kind: 'VALIDATION',
      message: expect.stringContaining('User group must exist'),
    })
    await client.users.delete(created.id)
    expect(sim.users.has(created.id)).toBe(false)
    await expect(client.users.get(created.id)).rejects.toMatchObject({ kind: 'NOT_FOUND' })
    await client.close()
  })

  it('falls back to the default currency for unpriced codes, as the server does', async () => {
    const { client } = clientFor(sim)
    const user = await client.users.create({
      email: 'yen@example.com',
      firstName: 'Y',
      lastName: 'En',
      currency: 'JPY',
    })
    expect(user.currency).toBe('USD')
    await client.close()
  })

  it('issues API credentials whose secret works and is masked in the log', async () => {
    const { client, sink } = clientFor(sim)
    const admin = sim.addUser({ email: 'third-admin@example.com', isAdmin: true })
    const credential = await client.users.createApiCredential(admin.id, 'billing')
    expect(credential.apiSecret).toBeTruthy()
    expect(JSON.stringify(sink.entries)).not.toContain(credential.apiSecret as string)
    const other = clientFor(sim, {
      auth: { type: 'basic', apiKey: credential.apiKey, apiSecret: credential.apiSecret as string },
    })
    expect(await other.client.locations.list()).toHaveLength(1)
    await Promise.all([client.close(), other.client.close()])
  })
})

describe('pagination', () => {
  it('uses a default page of 30 with Link, Total and Per-Page headers', async () => {
    const local = await startComputeStacksSimulator()
    local.seedUsers(70)
    const first = await raw(local, '/api/admin/users')
    expect(first.json?.users).toHaveLength(30)
    expect(first.headers['per-page']).toBe('30')
    // Every user, the two hidden support admins included (CTL users_controller.rb#index: User.sorted).
    expect(first.headers.total).toBe(String(local.users.size))
    // api-pagination only merges `page` into the query the request had.
    expect(first.headers.link).toMatch(/\/api\/admin\/users\?page=2>; rel="next"/)
    const last = await raw(local, '/api/admin/users?page=3')
    expect(last.headers.link).not.toMatch(/rel="next"/)
    await local.close()
  })

  it('the iterators visit every page, one request per page', async () => {
    const local = await startComputeStacksSimulator()
    local.seedUsers(95)
    for (let i = 0; i < 40; i++) local.addUserGroup(`group-${i}`)
    const { client, sink } = clientFor(local, { perPage: 20 })
    const ids = new Set<number>()
    for await (const user of client.users.list()) ids.add(user.id)
    expect(ids.size).toBe(local.users.size)
    expect(sink.entries.filter((e) => e.action === 'GET /api/admin/users')).toHaveLength(5)
    const groups = []
    for await (const group of client.userGroups.list({ perPage: 15 })) groups.push(group)
    expect(groups).toHaveLength(41)
    const pages = []
    for await (const page of client.users.pages({ perPage: 50 })) pages.push(page.items.length)
    expect(pages).toEqual([50, 48])
    await client.close()
    await local.close()
  })
})

describe('pagination, property-based', () => {
  it('every user is seen exactly once, whatever the page size and the collection size', async () => {
    const local = await startComputeStacksSimulator()
    const { client } = clientFor(local)
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 1, max: 35 }),
        async (extra, perPage) => {
          local.seedUsers(extra, `p${local.users.size}-`)
          const expected = [...local.users.values()].map((u) => u.id)
          const seen: number[] = []
          for await (const user of client.users.list({ perPage })) seen.push(user.id)
          expect(seen).toHaveLength(expected.length)
          expect(new Set(seen)).toEqual(new Set(expected))
        },
      ),
      { numRuns: 15 },
    )
    await client.close()
    await local.close()
  })
})

describe('rate limits and faults', () => {
  it('throttles past the limit with RateLimit headers and no Retry-After', async () => {
    const local = await startComputeStacksSimulator({ rateLimit: { limit: 3, windowMs: 300_000 } })
    const { client } = clientFor(local, { retry: false })
    for (let i = 0; i < 3; i++) await client.locations.list()
    const error = await client.locations.list().catch((e) => e)
    expect(error.kind).toBe('RATE_LIMITED')
    expect(error.retryAfterMs).toBeGreaterThan(0)
    expect(error.retryAfterMs).toBeLessThanOrEqual(300_000)
    const throttled = local.requests.at(-1)
    expect(throttled?.status).toBe(429)
    await client.close()
    await local.close()
  })

  it('waits out a short window and succeeds (Retry-After honoured)', async () => {
    const local = await startComputeStacksSimulator({
      // Long enough that four requests on a loaded machine fall in one window, short enough to wait out.
      rateLimit: { limit: 2, windowMs: 2_000 },
      behaviour: { retryAfterOn429: true },
    })
    const { client, sink } = clientFor(local, { retry: { maxAttempts: 4, initialDelayMs: 1, maxDelayMs: 2 } })
    for (let i = 0; i < 4; i++) await client.locations.list()
    expect(sink.entries.some((e) => e.error?.code === 'PANELKIT_ERR_RATE_LIMITED')).toBe(true)
    expect(sink.entries.filter((e) => e.outcome === 'ok')).toHaveLength(4)
    await client.close()
    await local.close()
  })

  it('rides out 5xx, 429 bursts and dropped connections on reads', async () => {
    const { client, sink } = clientFor(sim)
    sim.inject({ type: 'status', status: 502, times: 1, match: { path: '/api/admin/locations' } })
    sim.inject({ type: 'throttle', retryAfterSeconds: 0, times: 1, match: { path: '/api/admin/locations' } })
    sim.inject({ type: 'drop', times: 1, match: { path: '/api/admin/locations' } })
    expect(await client.locations.list()).toHaveLength(1)
    expect(sink.entries.map((e) => e.error?.code ?? 'ok')).toEqual([
      'PANELKIT_ERR_HTTP',
      'PANELKIT_ERR_RATE_LIMITED',
      'PANELKIT_ERR_CONNECTION',
      'ok',
    ])
    await client.close()
  })

  it('does not repeat a create after a 5xx or a lost response', async () => {
    const { client, sink } = clientFor(sim)
    sim.inject({ type: 'status', status: 500, match: { method: 'POST', path: '/api/admin/users' } })
    await expect(
      client.users.create({ email: 'once@example.com', firstName: 'O', lastName: 'Nce' }),
    ).rejects.toMatchObject({ kind: 'HTTP', retryable: true })
    sim.inject({ type: 'drop', afterHandling: true, match: { method: 'POST', path: '/api/admin/users' } })
    await expect(
      client.users.create({ email: 'once@example.com', firstName: 'O', lastName: 'Nce' }),
    ).rejects.toMatchObject({ kind: 'CONNECTION' })
    expect(sim.userByEmail('once@example.com')).toBeDefined()
    expect(sink.entries.filter((e) => e.action === 'POST /api/admin/users')).toHaveLength(2)
    await client.close()
  })

  it('times out a slow answer', async () => {
    const { client } = clientFor(sim, { timeoutMs: 100, retry: false })
    sim.inject({ type: 'delay', ms: 400, match: { path: '/api/admin/locations' } })
    await expect(client.locations.list()).rejects.toMatchObject({ kind: 'TIMEOUT', retryable: true })
    await client.close()
  })
})

describe('SSO tokens', () => {
  it('turn into a login URL that works again and again within its minute, and not after', async () => {
    const { client, sink } = clientFor(sim)
    const user = sim.addUser({ email: 'sso+tag@example.com' })
    const token = await client.users.ssoToken(user.id)
    expect(token.username).toBe('sso+tag@example.com')
    expect(JSON.stringify(sink.entries)).not.toContain(token.token)
    const url = client.loginUrl(token)
    expect(url).toContain('username=sso%2Btag%40example.com')
    expect(await visit(sim, url)).toEqual({ status: 302, location: '/deployments/orders' })
    // The controller never clears the token after use (application_controller.rb#auth_from_token!).
    expect(await visit(sim, url)).toEqual({ status: 302, location: '/deployments/orders' })
    const admin = await client.users.ssoToken(user.id)
    // A new token replaces the previous one.
    expect((await visit(sim, url)).location).toMatch(/^\/login/)
    expect(await visit(sim, client.loginUrl(admin, { admin: true }))).toEqual({
      status: 302,
      location: '/deployments',
    })
    expect(sim.ssoLogins.filter((l) => l.userId === user.id).map((l) => l.fromAdmin)).toEqual([
      false,
      false,
      true,
    ])
    const late = await client.users.ssoToken(user.id)
    sim.advance(59_000)
    expect((await visit(sim, client.loginUrl(late))).location).toBe('/deployments/orders')
    sim.advance(2_000)
    expect((await visit(sim, client.loginUrl(late))).location).toMatch(/^\/login/)
    await client.close()
  })
})

describe('OAuth2', () => {
  it('client credentials get a token without a user: fine for /version, refused on the admin API', async () => {
    const { client } = clientFor(sim, {
      auth: { type: 'oauth2', clientId: sim.oauthClientId, clientSecret: sim.oauthClientSecret },
    })
    expect((await client.version()).version).toBe('9.3.1')
    await expect(client.locations.list()).rejects.toMatchObject({ kind: 'AUTH' })
    await client.close()
  })

  it('the password grant with an API key acts as that admin and renews an expired token', async () => {
    const { client, sink } = clientFor(sim, {
      auth: {
        type: 'oauth2',
        clientId: sim.oauthClientId,
        clientSecret: sim.oauthClientSecret,
        grant: 'password',
        apiKey: sim.apiKey,
        apiSecret: sim.apiSecret,
      },
    })
    expect(await client.locations.list()).toHaveLength(1)
    // Expire every token server-side while the client still believes in its own.
    for (const token of sim.tokens.values()) token.expiresAt = 0
    expect(await client.locations.list()).toHaveLength(1)
    expect(sink.entries.filter((e) => e.action === 'POST /api/oauth/token')).toHaveLength(2)
    const log = JSON.stringify(sink.entries)
    for (const token of sim.tokens.keys()) expect(log).not.toContain(token)
    expect(log).not.toContain(sim.oauthClientSecret)
    await client.close()
  })

  it('refreshes a refused token once even with retries off, and shares a token cache between clients', async () => {
    const tokenCache = createOAuth2TokenCache()
    const auth = {
      type: 'oauth2' as const,
      clientId: sim.oauthClientId,
      clientSecret: sim.oauthClientSecret,
      grant: 'password' as const,
      apiKey: sim.apiKey,
      apiSecret: sim.apiSecret,
      tokenCache,
    }
    const tokenRequests = () => sim.requests.filter((r) => r.path.startsWith('/api/oauth/token')).length
    const before = tokenRequests()
    const a = clientFor(sim, { auth, retry: false })
    const b = clientFor(sim, { auth, retry: false })
    expect(await a.client.locations.list()).toHaveLength(1)
    expect(await b.client.locations.list()).toHaveLength(1)
    expect(tokenRequests() - before).toBe(1)
    sim.tokens.clear()
    expect(await b.client.locations.list()).toHaveLength(1)
    expect(tokenRequests() - before).toBe(2)
    // The token b fetched is masked in a's log as well.
    expect(await a.client.locations.list()).toHaveLength(1)
    const token = tokenCache.current?.token ?? 'missing'
    expect(JSON.stringify(a.sink.entries)).not.toContain(token)
    expect(a.client.http.options.recorder.redactor.redact(`x ${token} y`)).not.toContain(token)
    await a.client.close()
    await b.client.close()
  })

  it('a wrong client secret is an AUTH error naming the OAuth error', async () => {
    const { client } = clientFor(sim, {
      auth: { type: 'oauth2', clientId: sim.oauthClientId, clientSecret: 'nope' },
    })
    await expect(client.version()).rejects.toMatchObject({
      kind: 'AUTH',
      message: expect.stringContaining('invalid_client'),
    })
    await client.close()
  })
})

describe('billing and catalogue', () => {
  it('exposes every amount as an exact decimal string, whichever form it arrived in', async () => {
    const { client } = clientFor(sim)
    const plan = await client.billingPlans.get(1)
    const prices = plan.resources[0]?.phases[0]?.prices ?? []
    expect(prices.length).toBeGreaterThan(1)
    for (const price of prices) expect(price.price).toBe('0.0069')
    const plans = []
    for await (const p of client.billingPlans.list()) plans.push(p.name)
    expect(plans).toEqual(['Default'])
    const user = sim.addUser({ email: 'usage@example.com', runRate: '12.3400' })
    sim.addUsage(user.id, { total: '0.10' })
    sim.addUsage(user.id, { total: 0.2 })
    sim.addUsage(user.id, { total: '5', processed: true })
    const shown = await client.users.get(user.id, { balance: true })
    expect(shown.unprocessedUsage).toBe('0.30')
    expect(shown.runRate).toBe('12.3400')
    const rows = []
    for await (const row of client.users.billingUsages(user.id)) rows.push(row.total)
    expect(rows).toEqual(['0.10', '0.2', '5'])
    await client.close()
  })
})
