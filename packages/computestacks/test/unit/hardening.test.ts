import type { PanelkitError } from '@panelkit/core'
import { MockAgent } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { type ComputeStacksClientOptions, createComputeStacksClient } from '../../src/index.ts'

/** Input refused before sending, echoing servers, and answers that are garbage or too large. */

const ORIGIN = 'https://cs.example.com'
const SECRET = 'Cs-Secret-Value-456'
const json = { headers: { 'content-type': 'application/json' } }
let agents: MockAgent[] = []
afterEach(async () => {
  for (const a of agents) await a.close()
  agents = []
})

function setup(extra: Partial<ComputeStacksClientOptions> = {}) {
  const agent = new MockAgent()
  agent.disableNetConnect()
  agents.push(agent)
  const client = createComputeStacksClient({
    host: 'cs.example.com',
    auth: { type: 'basic', apiKey: 'key-abc', apiSecret: SECRET },
    dispatcher: agent,
    retry: { maxAttempts: 1 },
    ...extra,
  })
  return { pool: agent.get(ORIGIN), client }
}

const fail = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a failure')
    },
    (e: PanelkitError) => e,
  )

describe('misbehaving servers', () => {
  it('an answer over maxResponseBytes is a PROTOCOL error and the next call works', async () => {
    const { pool, client } = setup({ maxResponseBytes: 64 * 1024 })
    pool
      .intercept({ path: /^\/api\/admin\/users\/7/, method: 'GET' })
      .reply(200, { user: { id: 7, email: 'a@example.com', pad: 'x'.repeat(300_000) } }, json)
    pool
      .intercept({ path: /^\/api\/admin\/users\/7/, method: 'GET' })
      .reply(
        200,
        { user: { id: 7, email: 'a@example.com', fname: 'A', lname: 'B', active: true, labels: {} } },
        json,
      )
    const error = await fail(client.users.get(7))
    expect(error.kind).toBe('PROTOCOL')
    expect(error.message).toMatch(/more than 65536 bytes/)
    await expect(client.users.get(7)).resolves.toMatchObject({ id: 7 })
  })

  it('an HTML page at 200 is a PROTOCOL error', async () => {
    const { pool, client } = setup()
    pool
      .intercept({ path: /^\/api\/admin\/users\/7/, method: 'GET' })
      .reply(200, '<html>maintenance</html>', { headers: { 'content-type': 'text/html' } })
    expect((await fail(client.users.get(7))).kind).toBe('PROTOCOL')
  })

  it('an error page echoing the Authorization header carries no API secret', async () => {
    const { pool, client } = setup()
    pool
      .intercept({ path: /^\/api\/admin\/users\/7/, method: 'GET' })
      .reply((opts) => ({ statusCode: 400, data: `bad request; headers ${JSON.stringify(opts.headers)}` }))
    const error = await fail(client.users.get(7))
    const basic = Buffer.from(`key-abc:${SECRET}`).toString('base64')
    const printed = `${error.message}\n${JSON.stringify(error)}\n${JSON.stringify((error as { body?: unknown }).body)}\n${error.stack}`
    expect(printed).toContain('bad request')
    expect(printed).not.toContain(basic)
    expect(printed).not.toContain(SECRET)
  })
})

describe('input refused before sending', () => {
  it('empty, negative or fractional ids, empty external ids and malformed emails name the field', async () => {
    const { client } = setup()
    // No interceptor: anything sent would fail with a MockAgent error, not VALIDATION.
    const cases: Promise<unknown>[] = [
      client.users.get(-1),
      client.users.get(1.5),
      client.users.get({ id: 0 }),
      client.users.get({ externalId: '' }),
      client.users.delete({ externalId: ' ' }),
      client.users.suspend({ email: '' }),
      client.users.findByEmail('not-an-email'),
      client.users.ssoToken({ externalId: 'ab\u0000c' }),
    ]
    for (const [i, p] of cases.entries()) {
      const error = await fail(p)
      expect(error.kind, String(i)).toBe('VALIDATION')
      expect((error as { field?: string }).field, String(i)).toBe('selector')
    }
  })
})
