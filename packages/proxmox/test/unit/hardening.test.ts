import type { PanelkitError } from '@panelkit/core'
import { MockAgent } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createProxmoxClient, type ProxmoxClientOptions } from '../../src/client.ts'

/** Input refused before sending, echoing servers, and answers that are garbage or too large. */

const ORIGIN = 'https://pve.test:8006'
const SECRET = '99999999-8888-7777-6666-555555555555'
const json = { headers: { 'content-type': 'application/json;charset=UTF-8' } }
const agents: MockAgent[] = []
afterEach(async () => {
  for (const a of agents.splice(0)) await a.close()
})

function setup(extra: Partial<ProxmoxClientOptions> = {}) {
  const agent = new MockAgent()
  agent.disableNetConnect()
  agents.push(agent)
  const pool = agent.get(ORIGIN)
  let sent = 0
  pool.intercept({ path: () => true, method: () => true }).reply(() => {
    sent++
    return { statusCode: 500, data: 'unexpected' }
  })
  const client = createProxmoxClient({
    baseUrl: ORIGIN,
    dispatcher: agent,
    credentials: { type: 'token', tokenId: 'root@pam!ci', secret: SECRET },
    lockRetry: { initialDelayMs: 1, maxDelayMs: 2 },
    networkRetry: { maxAttempts: 1 },
    ...extra,
  })
  return { agent, pool, client, sent: () => sent }
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
    const agent = new MockAgent()
    agent.disableNetConnect()
    agents.push(agent)
    const pool = agent.get(ORIGIN)
    pool
      .intercept({ path: '/api2/json/version', method: 'GET' })
      .reply(200, { data: { version: 'x'.repeat(300_000) } }, json)
    pool
      .intercept({ path: '/api2/json/version', method: 'GET' })
      .reply(200, { data: { version: '9.1.5' } }, json)
    const client = createProxmoxClient({
      baseUrl: ORIGIN,
      dispatcher: agent,
      credentials: { type: 'token', tokenId: 'root@pam!ci', secret: SECRET },
      maxResponseBytes: 64 * 1024,
    })
    const error = await fail(client.api.version({}))
    expect(error.kind).toBe('PROTOCOL')
    expect(error.message).toMatch(/more than 65536 bytes/)
    await expect(client.api.version({})).resolves.toMatchObject({ version: '9.1.5' })
  })

  it('an HTML page at 200 is a PROTOCOL error', async () => {
    const agent = new MockAgent()
    agent.disableNetConnect()
    agents.push(agent)
    agent
      .get(ORIGIN)
      .intercept({ path: '/api2/json/version', method: 'GET' })
      .reply(200, '<html><body>login</body></html>', { headers: { 'content-type': 'text/html' } })
    const client = createProxmoxClient({
      baseUrl: ORIGIN,
      dispatcher: agent,
      credentials: { type: 'token', tokenId: 'root@pam!ci', secret: SECRET },
    })
    expect((await fail(client.api.version({}))).kind).toBe('PROTOCOL')
  })

  it('a proxy error page echoing the Authorization header carries no token secret', async () => {
    const agent = new MockAgent()
    agent.disableNetConnect()
    agents.push(agent)
    agent
      .get(ORIGIN)
      .intercept({ path: '/api2/json/version', method: 'GET' })
      .reply((opts) => ({
        statusCode: 502,
        data: `Bad gateway. Request headers: ${JSON.stringify(opts.headers)}`,
      }))
    const client = createProxmoxClient({
      baseUrl: ORIGIN,
      dispatcher: agent,
      credentials: { type: 'token', tokenId: 'root@pam!ci', secret: SECRET },
      networkRetry: { maxAttempts: 1 },
    })
    const error = await fail(client.api.version({}))
    expect(error.kind).toBe('HTTP')
    const printed = `${error.message}\n${JSON.stringify(error)}\n${JSON.stringify((error as { body?: unknown }).body)}\n${error.stack}`
    expect(printed).toContain('Bad gateway')
    expect(printed).not.toContain(SECRET)
  })
})

describe('input refused before sending', () => {
  it('non-integer, negative or out-of-range VMIDs, bad node names and control characters name the field', async () => {
    const { client, sent } = setup()
    const cases: [Promise<unknown>, string][] = [
      [client.api.vmStatus({ node: 'pve1', vmid: 'abc' as unknown as number }), 'vmid'],
      [client.api.vmStatus({ node: 'pve1', vmid: 1.5 }), 'vmid'],
      [client.api.vmStatus({ node: 'pve1', vmid: -100 }), 'vmid'],
      [client.api.vmStatus({ node: 'pve1', vmid: 99 }), 'vmid'],
      [client.api.vmStatus({ node: '', vmid: 100 }), 'node'],
      [client.api.vmStatus({ node: '../cluster', vmid: 100 }), 'node'],
      [client.api.vmConfigSet({ node: 'pve1', vmid: 100, name: 'web\u001b[2J' }), 'name'],
      [client.api.vmClone({ node: 'pve1', vmid: 9000, newid: 0 }), 'newid'],
    ]
    for (const [p, field] of cases) {
      const error = await fail(p)
      expect(error.kind, field).toBe('VALIDATION')
      expect((error as { field?: string }).field, field).toBe(field)
    }
    expect(sent()).toBe(0)
  })
})
