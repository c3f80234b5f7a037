import { createCallRecorder, MemoryLogSink } from '@panelkit/core'
import { MockAgent } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createComputeStacksClient } from '../../src/index.ts'

const ORIGIN = 'https://cs.example.com'
const KEY = 'key-abc'
const SECRET = 'Secret-Value-123'

function setup(
  options: { retry?: false | { maxAttempts?: number; initialDelayMs?: number }; apiVersion?: number } = {},
) {
  const agent = new MockAgent()
  agent.disableNetConnect()
  const sink = new MemoryLogSink()
  const recorder = createCallRecorder({ connector: 'test', sink })
  const deprecated: string[] = []
  const client = createComputeStacksClient({
    host: 'cs.example.com',
    auth: { type: 'basic', apiKey: KEY, apiSecret: SECRET },
    dispatcher: agent,
    recorder,
    retry: options.retry ?? { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 5 },
    ...(options.apiVersion ? { apiVersion: options.apiVersion } : {}),
    onDeprecated: (info) => deprecated.push(`${info.apiVersion} ${info.path}`),
  })
  return { agent, pool: agent.get(ORIGIN), client, sink, deprecated }
}

const user = (id: number, extra: Record<string, unknown> = {}) => ({
  id,
  email: `u${id}@example.com`,
  fname: 'U',
  lname: String(id),
  active: true,
  labels: {},
  ...extra,
})

let agents: MockAgent[] = []
afterEach(async () => {
  for (const a of agents) await a.close()
  agents = []
})

describe('HTTP layer (MockAgent as dispatcher)', () => {
  it('sends the version in Accept, Basic credentials and JSON; reads the user envelope', async () => {
    const { agent, pool, client } = setup()
    agents.push(agent)
    let seen: Record<string, string> = {}
    pool.intercept({ path: '/api/admin/users/7', method: 'GET' }).reply((opts) => {
      seen = opts.headers as Record<string, string>
      return { statusCode: 200, data: { user: user(7, { run_rate: 0, unprocessed_usage: '1.50' }) } }
    })
    const found = await client.users.get(7)
    expect(found.id).toBe(7)
    expect(found.runRate).toBe('0')
    expect(found.unprocessedUsage).toBe('1.50')
    expect(seen.accept).toBe('application/json; api_version=80')
    expect(seen.authorization).toBe(`Basic ${Buffer.from(`${KEY}:${SECRET}`).toString('base64')}`)
  })

  it('maps the empty 404, 401, 422, 400 and 406 with the server messages kept', async () => {
    const { agent, pool, client } = setup()
    agents.push(agent)
    pool.intercept({ path: '/api/admin/users/1', method: 'GET' }).reply(404, '')
    pool.intercept({ path: '/api/admin/users/2', method: 'GET' }).reply(401, { errors: ['Not Authorized'] })
    pool
      .intercept({ path: '/api/admin/users', method: 'POST' })
      .reply(422, { errors: ['Password is too short (minimum is 8 characters)', "Fname can't be blank"] })
    pool.intercept({ path: '/api/admin/users/3', method: 'GET' }).reply(400, { errors: 'bad request' })
    pool
      .intercept({ path: '/api/admin/users/4', method: 'GET' })
      .reply(406, 'Unknown format. Only JSON and XML are permitted.', {
        headers: { 'content-type': 'text/plain' },
      })
    await expect(client.users.get(1)).rejects.toMatchObject({ code: 'PANELKIT_ERR_NOT_FOUND' })
    await expect(client.users.get(2)).rejects.toMatchObject({
      kind: 'AUTH',
      message: expect.stringContaining('Not Authorized'),
    })
    const invalid = await client.users
      .create({ email: 'a@example.com', firstName: 'A', lastName: 'B', password: 'longenough' })
      .catch((e) => e)
    expect(invalid.kind).toBe('VALIDATION')
    expect(invalid.message).toContain('Password is too short')
    expect(invalid.issues.map((i: { path: string }) => i.path)).toEqual(['password', 'fname'])
    await expect(client.users.get(3)).rejects.toMatchObject({
      kind: 'COMMAND',
      message: expect.stringContaining('bad request'),
    })
    await expect(client.users.get(4)).rejects.toMatchObject({
      kind: 'PROTOCOL',
      message: expect.stringContaining('Unknown format'),
    })
  })

  it('maps "Email has already been taken" to CONFLICT and an unsupported version to UNSUPPORTED', async () => {
    const { agent, pool, client } = setup({ apiVersion: 50 })
    agents.push(agent)
    pool
      .intercept({ path: '/api/admin/users', method: 'POST' })
      .reply(422, { errors: ['Email has already been taken', 'Email has already been taken'] })
    pool
      .intercept({ path: '/api/admin/locations', method: 'GET' })
      .reply(
        422,
        { errors: ['You requested an unsupported version (50)'] },
        { headers: { 'API-Version-Supported': 'false' } },
      )
    await expect(
      client.users.create({ email: 'a@example.com', firstName: 'A', lastName: 'B' }),
    ).rejects.toMatchObject({ kind: 'CONFLICT', retryable: false })
    await expect(client.locations.list()).rejects.toMatchObject({
      kind: 'UNSUPPORTED',
      message: expect.stringContaining('unsupported version (50)'),
    })
  })

  it('reports a deprecated version once and still returns the data', async () => {
    const { agent, pool, client, deprecated } = setup({ apiVersion: 60 })
    agents.push(agent)
    pool
      .intercept({ path: '/api/admin/locations', method: 'GET' })
      .reply(200, { locations: [{ id: 1, name: 'Default' }] }, { headers: { 'API-Deprecated': 'true' } })
      .times(2)
    expect((await client.locations.list())[0]?.name).toBe('Default')
    await client.locations.list()
    expect(deprecated).toEqual(['60 /api/admin/locations'])
  })

  it('honours Retry-After on 429 and retries GETs after a 5xx, but never a POST after a 5xx', async () => {
    const { agent, pool, client, sink } = setup({ retry: { maxAttempts: 3, initialDelayMs: 1 } })
    agents.push(agent)
    pool
      .intercept({ path: '/api/admin/locations', method: 'GET' })
      .reply(429, 'Throttled\n', { headers: { 'Retry-After': '0.2' } })
    pool.intercept({ path: '/api/admin/locations', method: 'GET' }).reply(503, { errors: ['maintenance'] })
    pool.intercept({ path: '/api/admin/locations', method: 'GET' }).reply(200, { locations: [] })
    const started = performance.now()
    expect(await client.locations.list()).toEqual([])
    expect(performance.now() - started).toBeGreaterThanOrEqual(190)
    expect(sink.entries.map((e) => e.outcome)).toEqual(['error', 'error', 'ok'])

    pool
      .intercept({ path: '/api/admin/users', method: 'POST' })
      .reply(500, { errors: ['undefined method for nil'] })
    const failure = await client.users
      .create({ email: 'a@example.com', firstName: 'A', lastName: 'B' })
      .catch((e) => e)
    expect(failure).toMatchObject({ kind: 'HTTP', status: 500, retryable: true })
    expect(failure.message).toContain('undefined method for nil')
    expect(sink.entries.filter((e) => e.action === 'POST /api/admin/users')).toHaveLength(1)
  })

  it('gives up on a 429 that asks for longer than maxRetryAfterMs, keeping the wait', async () => {
    const { agent, pool, client } = setup()
    agents.push(agent)
    const reset = Math.floor(Date.now() / 1000) + 240
    pool.intercept({ path: '/api/admin/locations', method: 'GET' }).reply(429, 'Throttled\n', {
      headers: { 'RateLimit-Reset': String(reset), 'RateLimit-Remaining': '0' },
    })
    const error = await client.locations.list().catch((e) => e)
    expect(error.kind).toBe('RATE_LIMITED')
    expect(error.retryable).toBe(true)
    expect(error.retryAfterMs).toBeGreaterThan(200_000)
  })

  it('turns a non-JSON success and a schema mismatch into PROTOCOL errors', async () => {
    const { agent, pool, client } = setup({ retry: false })
    agents.push(agent)
    pool
      .intercept({ path: '/api/admin/users/5', method: 'GET' })
      .reply(200, '<html>', { headers: { 'content-type': 'application/json' } })
    pool.intercept({ path: '/api/admin/users/6', method: 'GET' }).reply(200, { user: { id: 'six' } })
    await expect(client.users.get(5)).rejects.toMatchObject({ kind: 'PROTOCOL' })
    await expect(client.users.get(6)).rejects.toMatchObject({
      kind: 'PROTOCOL',
      message: expect.stringContaining('unexpected response'),
    })
  })

  it('never logs the API secret, the Basic header or a password sent in a body', async () => {
    const { agent, pool, client, sink } = setup({ retry: false })
    agents.push(agent)
    pool
      .intercept({ path: '/api/admin/users/9', method: 'PATCH' })
      .reply(422, { errors: [`Password ${'Pass-Word-42'} rejected`] })
    const error = await client.users.update(9, { password: 'Pass-Word-42' }).catch((e) => e)
    const text = JSON.stringify(sink.entries)
    expect(text).not.toContain('Pass-Word-42')
    expect(text).not.toContain(SECRET)
    expect(text).not.toContain(Buffer.from(`${KEY}:${SECRET}`).toString('base64'))
    expect(sink.entries[0]?.request).toMatchObject({ method: 'PATCH', path: '/api/admin/users/9' })
    expect(error.kind).toBe('VALIDATION')
  })

  it('encodes email lookups as strict base64 and tries the lower-cased address first', async () => {
    const { agent, pool, client } = setup()
    agents.push(agent)
    const b64 = (s: string) => encodeURIComponent(Buffer.from(s).toString('base64'))
    pool
      .intercept({ path: `/api/admin/users/${b64('jane+x@example.com')}?find_by_email=true`, method: 'GET' })
      .reply(404, '')
    pool
      .intercept({ path: `/api/admin/users/${b64('Jane+X@Example.com')}?find_by_email=true`, method: 'GET' })
      .reply(200, { user: user(3, { email: 'Jane+X@Example.com' }) })
    const found = await client.users.findByEmail('Jane+X@Example.com')
    expect(found?.id).toBe(3)
  })

  it('refuses bad input before sending anything', async () => {
    const { agent, client, sink } = setup()
    agents.push(agent)
    const error = await client.users
      .create({ email: 'nope', firstName: '', lastName: 'B', password: 'short' })
      .catch((e) => e)
    expect(error.kind).toBe('VALIDATION')
    expect(error.issues.map((i: { path: string }) => i.path).sort()).toEqual([
      'user.email',
      'user.firstName',
      'user.password',
    ])
    await expect(client.users.update({ whmcsServiceId: 'abc' }, { active: true })).rejects.toThrow(/numeric/)
    expect(sink.entries).toHaveLength(0)
  })
})
