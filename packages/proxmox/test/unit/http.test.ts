import { createCallRecorder, MemoryLogSink } from '@panelkit/core'
import { MockAgent } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createProxmoxClient } from '../../src/client.ts'
import { ENDPOINTS } from '../../src/endpoints/catalog.ts'
import { ProxmoxApiError } from '../../src/errors.ts'

const ORIGIN = 'https://pve.test:8006'
const json = { headers: { 'content-type': 'application/json;charset=UTF-8' } }
const TICKET = 'PVE:root@pam:65A1B2C3::c2lnbmF0dXJl'

function setup(options: { token?: boolean; now?: () => number } = {}) {
  const agent = new MockAgent()
  agent.disableNetConnect()
  const pool = agent.get(ORIGIN)
  const sink = new MemoryLogSink(1000)
  const client = createProxmoxClient({
    baseUrl: ORIGIN,
    dispatcher: agent,
    credentials: options.token
      ? { type: 'token', tokenId: 'root@pam!ci', secret: '11111111-2222-3333-4444-555555555555' }
      : { type: 'password', username: 'root@pam', password: 'hunter2-root' },
    recorder: createCallRecorder({ connector: 'unit', sink }),
    lockRetry: { initialDelayMs: 1, maxDelayMs: 2 },
    networkRetry: { initialDelayMs: 1, maxDelayMs: 2 },
    ...(options.now ? { now: options.now } : {}),
  })
  return { agent, pool, client, sink }
}

const agents: MockAgent[] = []
afterEach(async () => {
  for (const a of agents.splice(0)) await a.close()
})

describe('HTTP layer', () => {
  it('token auth: header, no CSRF, DELETE parameters in the query string and no body', async () => {
    const { agent, pool, client } = setup({ token: true })
    agents.push(agent)
    let seen: Record<string, string> = {}
    pool
      .intercept({
        path: (p) =>
          p.startsWith('/api2/json/nodes/pve1/qemu/100?') &&
          p.includes('purge=1') &&
          p.includes('destroy-unreferenced-disks=1'),
        method: 'DELETE',
        headers: (h) => {
          seen = h as Record<string, string>
          return true
        },
        body: (b) => !b || b === 'null',
      })
      .reply(200, { data: 'UPID:pve1:00000001:00000002:00000003:qmdestroy:100:root@pam!ci:' }, json)
    const upid = await client.api.vmDestroy({
      node: 'pve1',
      vmid: 100,
      purge: true,
      'destroy-unreferenced-disks': true,
    })
    expect(upid).toMatch(/^UPID:pve1:/)
    expect(seen.authorization).toBe('PVEAPIToken=root@pam!ci=11111111-2222-3333-4444-555555555555')
    expect(seen.csrfpreventiontoken).toBeUndefined()
  })

  it('ticket auth: logs in once, sends the cookie, CSRF only on writes, form bodies with 1/0', async () => {
    const { agent, pool, client } = setup()
    agents.push(agent)
    let loginBody = ''
    pool
      .intercept({
        path: '/api2/json/access/ticket',
        method: 'POST',
        body: (b) => {
          loginBody = b
          return true
        },
      })
      .reply(
        200,
        { data: { username: 'root@pam', ticket: TICKET, CSRFPreventionToken: '65A1B2C3:csrf' } },
        json,
      )
    let getHeaders: Record<string, string> = {}
    let postHeaders: Record<string, string> = {}
    pool
      .intercept({
        path: '/api2/json/version',
        method: 'GET',
        headers: (h) => {
          getHeaders = h as Record<string, string>
          return true
        },
      })
      .reply(200, { data: { version: '9.1.5' } }, json)
    let configBody = ''
    pool
      .intercept({
        path: '/api2/json/nodes/pve1/qemu/100/config',
        method: 'POST',
        headers: (h) => {
          postHeaders = h as Record<string, string>
          return true
        },
        body: (b) => {
          configBody = b
          return true
        },
      })
      .reply(200, { data: null }, json)
    await client.api.version({})
    await client.api.vmConfigUpdate({
      node: 'pve1',
      vmid: 100,
      onboot: true,
      protection: false,
      cores: 2,
      net0: 'virtio=BC:24:11:00:00:01,bridge=vmbr0',
    })
    expect(loginBody).toBe('username=root%40pam&password=hunter2-root')
    expect(getHeaders.cookie).toBe(`PVEAuthCookie=${encodeURIComponent(TICKET)}`)
    expect(getHeaders.csrfpreventiontoken).toBeUndefined()
    expect(postHeaders.csrfpreventiontoken).toBe('65A1B2C3:csrf')
    expect(configBody).toBe(
      'onboot=1&protection=0&cores=2&net0=virtio%3DBC%3A24%3A11%3A00%3A00%3A01%2Cbridge%3Dvmbr0',
    )
  })

  it('carries status, message and per-parameter errors', async () => {
    const { agent, pool, client } = setup({ token: true })
    agents.push(agent)
    pool.intercept({ path: '/api2/json/nodes/pve1/qemu/100/clone', method: 'POST' }).reply(
      400,
      {
        data: null,
        message: 'Parameter verification failed.\n',
        errors: { newid: 'property is missing and it is not optional' },
      },
      json,
    )
    const error = await client.api.vmClone({ node: 'pve1', vmid: 100, newid: 101 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProxmoxApiError)
    const e = error as ProxmoxApiError
    expect(e.status).toBe(400)
    expect(e.code).toBe('PANELKIT_ERR_HTTP')
    expect(e.apiMessage).toBe('Parameter verification failed.')
    expect(e.errors).toEqual({ newid: 'property is missing and it is not optional' })
    expect(e.retryable).toBe(false)
    expect(e.message).toContain('newid: property is missing')
  })

  it('retries lock errors with backoff and then succeeds', async () => {
    const { agent, pool, client } = setup({ token: true })
    agents.push(agent)
    const lock = {
      data: null,
      message: "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout\n",
    }
    pool
      .intercept({ path: '/api2/json/nodes/pve1/qemu/100/config', method: 'PUT' })
      .reply(500, lock, json)
      .times(2)
    pool
      .intercept({ path: '/api2/json/nodes/pve1/qemu/100/config', method: 'PUT' })
      .reply(200, { data: null }, json)
    await expect(client.api.vmConfigSet({ node: 'pve1', vmid: 100, cores: 2 })).resolves.toBeNull()
  })

  it('never replays a clone after a network error, but does repeat a GET', async () => {
    const { agent, pool, client } = setup({ token: true })
    agents.push(agent)
    let clones = 0
    pool
      .intercept({
        path: '/api2/json/nodes/pve1/qemu/9000/clone',
        method: 'POST',
        body: () => {
          clones++
          return true
        },
      })
      .replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      .persist()
    const error = await client.api.vmClone({ node: 'pve1', vmid: 9000, newid: 101 }).catch((e: unknown) => e)
    expect(clones).toBe(1)
    expect(error).toMatchObject({ code: 'PANELKIT_ERR_CONNECTION' })
    pool
      .intercept({ path: '/api2/json/version', method: 'GET' })
      .replyWithError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))
    pool
      .intercept({ path: '/api2/json/version', method: 'GET' })
      .reply(200, { data: { version: '9.1.5' } }, json)
    await expect(client.api.version({})).resolves.toMatchObject({ version: '9.1.5' })
  })

  it('a per-call idempotent: false never resends a config write after a reset; by default only a non-allocating one is', async () => {
    const { agent, pool, client } = setup({ token: true })
    agents.push(agent)
    let writes = 0
    pool
      .intercept({
        path: '/api2/json/nodes/pve1/qemu/100/config',
        method: 'POST',
        body: () => {
          writes++
          return true
        },
      })
      .replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      .persist()
    // A write that allocates a volume (scsi1: local-lvm:8) must not run twice.
    const params = { node: 'pve1', vmid: 100, scsi1: 'local-lvm:8' }
    const error = await client.api.vmConfigUpdate(params, { idempotent: false }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'PANELKIT_ERR_CONNECTION' })
    expect(writes).toBe(1)
    // By default an allocating write is not resent either (the endpoint's own rule) …
    writes = 0
    await client.api.vmConfigUpdate(params).catch((e: unknown) => e)
    expect(writes).toBe(1)
    // … while one that only sets values is (three attempts in all).
    writes = 0
    await client.api
      .vmConfigUpdate({ node: 'pve1', vmid: 100, description: 'resent' })
      .catch((e: unknown) => e)
    expect(writes).toBe(3)
  })

  it('warns once that credentials travel in clear over plain HTTP (secure: false)', async () => {
    const warnings: string[] = []
    const client = createProxmoxClient({
      baseUrl: 'http://pve.test:8006',
      dispatcher: new MockAgent(),
      credentials: { type: 'password', username: 'root@pam', password: 'hunter2-root' },
      warn: (m) => warnings.push(m),
    })
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/plain HTTP.*clear text/)
    expect(warnings[0]).not.toContain('hunter2-root')
    await client.close()
  })

  it('re-logs in once on any 401 and retries; a second 401 is an AuthError', async () => {
    const { agent, pool, client } = setup()
    agents.push(agent)
    pool
      .intercept({ path: '/api2/json/access/ticket', method: 'POST' })
      .reply(200, { data: { username: 'root@pam', ticket: TICKET, CSRFPreventionToken: 'c' } }, json)
      .times(3)
    pool.intercept({ path: '/api2/json/nodes', method: 'GET' }).reply(401, '')
    pool
      .intercept({ path: '/api2/json/nodes', method: 'GET' })
      .reply(200, { data: [{ node: 'pve1', status: 'online' }] }, json)
    await expect(client.api.nodes({})).resolves.toHaveLength(1)
    pool.intercept({ path: '/api2/json/nodes', method: 'GET' }).reply(401, '').times(2)
    await expect(client.api.nodes({})).rejects.toMatchObject({ code: 'PANELKIT_ERR_AUTH', retryable: false })
  })

  it('renews the ticket after an hour by posting it as the password', async () => {
    let now = 1_000_000
    const { agent, pool, client, sink } = setup({ now: () => now })
    agents.push(agent)
    // The mock may evaluate a body matcher more than once per request: count distinct bodies.
    const bodies = new Set<string>()
    pool
      .intercept({
        path: '/api2/json/access/ticket',
        method: 'POST',
        body: (b) => {
          bodies.add(b)
          return true
        },
      })
      .reply(200, { data: { username: 'root@pam', ticket: TICKET, CSRFPreventionToken: 'c' } }, json)
      .times(2)
    pool
      .intercept({ path: '/api2/json/version', method: 'GET' })
      .reply(200, { data: { version: '9' } }, json)
      .times(3)
    await client.api.version({})
    now += 59 * 60_000
    await client.api.version({})
    expect(bodies.size).toBe(1)
    now += 2 * 60_000
    await client.api.version({})
    expect(bodies.size).toBe(2)
    expect(new URLSearchParams([...bodies][1]).get('password')).toBe(TICKET)
    expect(JSON.stringify(sink.entries)).not.toContain('hunter2-root')
    expect(JSON.stringify(sink.entries)).not.toContain('c2lnbmF0dXJl')
  })

  it('refuses bad parameters before sending anything', async () => {
    const { agent, client } = setup({ token: true })
    agents.push(agent)
    await expect(client.api.vmConfigSet({ node: 'pve1', vmid: 'abc' as never })).rejects.toMatchObject({
      code: 'PANELKIT_ERR_VALIDATION',
    })
    await expect(client.call(ENDPOINTS.vmStatus, { node: '', vmid: 100 })).rejects.toMatchObject({
      code: 'PANELKIT_ERR_VALIDATION',
    })
    await expect(
      client.api.vmConfigSet({ node: 'pve1', vmid: 100, bogus: 1 } as never),
    ).rejects.toMatchObject({ code: 'PANELKIT_ERR_VALIDATION' })
  })
})
