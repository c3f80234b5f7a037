import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProxmoxClient, type ProxmoxClientOptions } from '../../src/client.ts'
import { ENDPOINTS } from '../../src/endpoints/catalog.ts'
import { ProxmoxApiError } from '../../src/errors.ts'
import { createHttpTransport, createTlsAgent } from '../../src/http.ts'
import { ProxmoxSimulator } from '../../src/testing/index.ts'

const ROOT = { type: 'password', username: 'root@pam', password: 'sim-root-password' } as const
let sim: ProxmoxSimulator
const clients: { close(): Promise<void> }[] = []

function client(options: Partial<ProxmoxClientOptions> = {}) {
  const c = createProxmoxClient({
    baseUrl: sim.url,
    credentials: ROOT,
    tls: { fingerprint: sim.fingerprint256 },
    tasks: { pollMs: 1, maxPollMs: 10 },
    lockRetry: { initialDelayMs: 2, maxDelayMs: 20 },
    networkRetry: { initialDelayMs: 1, maxDelayMs: 5 },
    ...options,
  })
  clients.push(c)
  return c
}

/** Raw HTTP for checks the client would never make (missing CSRF, bad types). */
async function raw(
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  headers: Record<string, string> = {},
  body?: string,
) {
  const transport = createHttpTransport({ baseUrl: sim.url, tls: { fingerprint: sim.fingerprint256 } })
  try {
    const request: Parameters<typeof transport.request>[0] = { method, path: `/api2/json${path}`, headers }
    if (body !== undefined) request.body = body
    return await transport.request(request)
  } finally {
    await transport.close()
  }
}

async function ticket() {
  const r = await raw('POST', '/access/ticket', {}, 'username=root%40pam&password=sim-root-password')
  return JSON.parse(r.text).data as { ticket: string; CSRFPreventionToken: string }
}

beforeAll(async () => {
  sim = await new ProxmoxSimulator({
    taskDurations: { default: 1 },
    tokens: { 'root@pam!ci': '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f' },
  }).start()
})
afterAll(async () => {
  for (const c of clients) await c.close()
  await sim.close()
})

describe('TLS', () => {
  it('verifies certificates by default and explains how to trust the cluster', async () => {
    const c = client({ tls: {} })
    const error = await c.api.version({}).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'PANELKIT_ERR_CONNECTION', retryable: false })
    expect((error as Error).message).toMatch(/TLS verification failed/)
  })

  it('trusts a given CA', async () => {
    await expect(client({ tls: { ca: sim.certificate } }).api.version({})).resolves.toMatchObject({
      version: '9.1.5',
    })
  })

  it('pins a SHA-256 fingerprint and refuses any other certificate', async () => {
    await expect(
      client({ tls: { fingerprint: sim.fingerprint256.toLowerCase().replaceAll(':', '') } }).api.version({}),
    ).resolves.toBeDefined()
    const wrong = client({ tls: { fingerprint: 'AA:'.repeat(31) + 'AA' } })
    const error = await wrong.api.version({}).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'PANELKIT_ERR_CONNECTION', retryable: false })
    expect((error as Error).message).toMatch(/fingerprint mismatch/)
  })

  it('insecure mode works and warns once', async () => {
    const warnings: string[] = []
    const c = client({ tls: { insecure: true }, warn: (m) => warnings.push(m) })
    await c.api.version({})
    await c.api.nodes({})
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/verification is disabled/)
  })

  it('createTlsAgent refuses a malformed fingerprint', () => {
    expect(() => createTlsAgent({ fingerprint: 'AB:CD' })).toThrow(/32 bytes/)
  })
})

describe('authentication', () => {
  it('an expired ticket gets one fresh login (9.1.5 says only "Authentication failed!")', async () => {
    const c = client()
    await c.api.version({})
    const logins = sim.stats.logins
    sim.clockOffsetMs += 3 * 3600_000
    try {
      await expect(c.api.nodes({})).resolves.toHaveLength(3)
      expect(sim.stats.logins).toBe(logins + 1)
      expect(sim.stats.unauthorized).toBeGreaterThan(0)
    } finally {
      sim.clockOffsetMs -= 3 * 3600_000
    }
  })

  it('401 texts and bodies of both eras: the client re-logs in whatever the reason says', async () => {
    const t = await ticket()
    const cookie = { cookie: `PVEAuthCookie=${encodeURIComponent(t.ticket)}` }
    const saved = { ...sim.behaviour }
    const eras = [
      { authFailureText: 'unified', authFailureBody: 'empty', reason: 'Authentication failed!' },
      {
        authFailureText: 'legacy',
        authFailureBody: 'null',
        reason: 'permission denied - invalid PVE ticket',
      },
    ] as const
    try {
      for (const era of eras) {
        sim.behaviour.authFailureText = era.authFailureText
        sim.behaviour.authFailureBody = era.authFailureBody
        const c = client()
        await c.api.version({})
        sim.clockOffsetMs += 3 * 3600_000
        try {
          const refused = await raw('GET', '/nodes', cookie)
          expect(refused.status).toBe(401)
          expect(refused.reason).toBe(era.reason)
          expect(refused.text).toBe(era.authFailureBody === 'empty' ? '' : '{"data":null}')
          const logins = sim.stats.logins
          await expect(c.api.nodes({})).resolves.toHaveLength(3)
          expect(sim.stats.logins).toBe(logins + 1)
        } finally {
          sim.clockOffsetMs -= 3 * 3600_000
        }
      }
      expect((await raw('GET', '/nodes')).reason).toBe('No ticket')
    } finally {
      Object.assign(sim.behaviour, saved)
    }
  })

  it('renews an hour-old ticket by posting it as the password', async () => {
    let now = Date.now()
    const c = client({ now: () => now })
    await c.api.version({})
    const renewals = sim.stats.renewals
    now += 61 * 60_000
    await c.api.version({})
    expect(sim.stats.renewals).toBe(renewals + 1)
  })

  it('API tokens write without CSRF; a wrong secret is an AuthError', async () => {
    const token = client({
      credentials: { type: 'token', tokenId: 'root@pam!ci', secret: '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f' },
    })
    await expect(
      token.api.firewallSetOptions({ node: 'pve1', vmid: 9000, enable: false }),
    ).resolves.toBeNull()
    const bad = client({ credentials: { type: 'token', tokenId: 'root@pam!ci', secret: 'wrong' } })
    await expect(bad.api.version({})).rejects.toMatchObject({ code: 'PANELKIT_ERR_AUTH' })
    const wrongPassword = client({ credentials: { ...ROOT, password: 'nope' } })
    await expect(wrongPassword.api.version({})).rejects.toMatchObject({ code: 'PANELKIT_ERR_AUTH' })
  })

  it('the simulator enforces CSRF on ticket writes', async () => {
    const t = await ticket()
    const cookie = `PVEAuthCookie=${encodeURIComponent(t.ticket)}`
    const denied = await raw('POST', '/nodes/pve1/qemu/9000/config', { cookie }, 'cores=2')
    expect(denied.status).toBe(401)
    expect(denied.reason).toBe('Permission denied - invalid csrf token')
    const none = await raw('GET', '/version')
    expect(none.status).toBe(401)
    expect(none.reason).toBe('No ticket')
  })
})

describe('simulator protocol', () => {
  it('validates parameters from the official schema with the server texts', async () => {
    const t = await ticket()
    const headers = {
      cookie: `PVEAuthCookie=${encodeURIComponent(t.ticket)}`,
      csrfpreventiontoken: t.CSRFPreventionToken,
    }
    const r = await raw(
      'POST',
      '/nodes/pve1/qemu/9000/clone',
      headers,
      'newid=abc&full=true&format=xyz&bogus=1',
    )
    expect(r.status).toBe(400)
    expect(r.reason).toBe('Parameter verification failed.')
    expect(JSON.parse(r.text).errors).toEqual({
      newid: "type check ('integer') failed - got 'abc'",
      full: "type check ('boolean') failed - got 'true'",
      format: "value 'xyz' does not have a value in the enumeration 'raw, qcow2, vmdk'",
      bogus: 'property is not defined in schema and the schema does not allow additional properties',
    })
    const missing = await raw('POST', '/nodes/pve1/qemu/9000/clone', headers, 'name=x')
    expect(JSON.parse(missing.text).errors).toEqual({ newid: 'property is missing and it is not optional' })
  })

  it('answers like pveproxy for unknown paths, bodies on DELETE and the nextid string', async () => {
    const t = await ticket()
    const cookie = { cookie: `PVEAuthCookie=${encodeURIComponent(t.ticket)}` }
    expect((await raw('GET', '/nodes/pve1/nothing', cookie)).status).toBe(501)
    const del = await raw(
      'DELETE',
      '/nodes/pve1/qemu/9000',
      { ...cookie, csrfpreventiontoken: t.CSRFPreventionToken },
      'purge=1',
    )
    expect(del.status).toBe(501)
    const next = await raw('GET', '/cluster/nextid', cookie)
    expect(JSON.parse(next.text).data).toMatch(/^\d+$/)
    expect(typeof (await client().nextId())).toBe('number')
    // nextid reserves nothing: parallel callers get the same id, and only the clone settles who wins.
    const c = client()
    const [x, y] = await Promise.all([c.nextId(), c.nextId()])
    expect(x).toBe(y)
    const taken = await c.call(ENDPOINTS.nextId, { vmid: 9000 }).catch((e: unknown) => e)
    expect(taken).toMatchObject({ status: 400, errors: { vmid: 'VM 9000 already exists' } })
  })

  it('errors carry the reason phrase on old servers and the body message on new ones', async () => {
    const c = client()
    const upid = await c.call(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9000,
      newid: 990,
      full: true,
      storage: 'local-lvm',
    })
    await c.waitForTask(upid)
    await c.run(ENDPOINTS.vmStart, { node: 'pve1', vmid: 990 })
    const error = (await c.api
      .vmDestroy({ node: 'pve1', vmid: 990 })
      .catch((e: unknown) => e)) as ProxmoxApiError
    expect(error).toBeInstanceOf(ProxmoxApiError)
    expect(error.reason).toBe('VM 990 is running - destroy failed')
    expect(error.apiMessage).toBe('VM 990 is running - destroy failed')
    expect(error.failure).toBe('running')
    sim.behaviour.messageInBody = false
    try {
      const old = (await c.api
        .vmDestroy({ node: 'pve1', vmid: 990 })
        .catch((e: unknown) => e)) as ProxmoxApiError
      expect(old.apiMessage).toBeUndefined()
      expect(old.reason).toBe('VM 990 is running - destroy failed')
      expect(old.message).toContain('destroy failed')
    } finally {
      sim.behaviour.messageInBody = true
    }
    await c.run(ENDPOINTS.vmStop, { node: 'pve1', vmid: 990 })
    await c.run(ENDPOINTS.vmDestroy, { node: 'pve1', vmid: 990, purge: true })
    expect(sim.vms.has(990)).toBe(false)
  })

  it('a VM locked by a running clone refuses changes with the real text, and the client waits it out', async () => {
    const c = client({ lockRetry: { initialDelayMs: 10, maxDelayMs: 40, maxAttempts: 40 } })
    sim.faults.slowTaskFactor = 100
    try {
      await c.call(ENDPOINTS.vmClone, {
        node: 'pve1',
        vmid: 9000,
        newid: 991,
        full: true,
        storage: 'local-lvm',
      })
      expect(sim.vms.get(991)?.lock).toBe('clone')
      await expect(c.api.vmConfigSet({ node: 'pve1', vmid: 991, cores: 3 })).resolves.toBeNull()
      expect(sim.vms.get(991)?.config.cores).toBe('3')
      const strict = client({ lockRetry: { maxAttempts: 1 } })
      await strict.call(ENDPOINTS.vmClone, {
        node: 'pve1',
        vmid: 9000,
        newid: 992,
        full: true,
        storage: 'local-lvm',
      })
      await expect(strict.api.vmConfigSet({ node: 'pve1', vmid: 992, cores: 3 })).rejects.toMatchObject({
        apiMessage: 'VM is locked (clone)',
        retryable: true,
      })
    } finally {
      sim.faults.slowTaskFactor = 1
      sim.finishAllTasks()
    }
  })

  it('task waiting checks the exit status, honours timeouts and AbortSignal', async () => {
    const c = client()
    await c.run(ENDPOINTS.vmClone, { node: 'pve1', vmid: 9000, newid: 989, full: true, storage: 'local-lvm' })
    sim.failTask({ type: 'qmstart', exitstatus: 'start failed: no space left', id: 989 })
    const failing = await c.run(ENDPOINTS.vmStart, { node: 'pve1', vmid: 989 }).catch((e: unknown) => e)
    expect(failing).toMatchObject({
      code: 'PANELKIT_ERR_COMMAND',
      exitstatus: 'start failed: no space left',
      retryable: false,
    })
    sim.faults.slowTaskFactor = 1000
    try {
      const upid = await c.call(ENDPOINTS.vmClone, {
        node: 'pve1',
        vmid: 9000,
        newid: 993,
        full: true,
        storage: 'local-lvm',
      })
      await expect(c.waitForTask(upid, { timeoutMs: 30 })).rejects.toMatchObject({
        code: 'PANELKIT_ERR_TIMEOUT',
      })
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 20)
      await expect(c.waitForTask(upid, { signal: controller.signal })).rejects.toMatchObject({
        code: 'PANELKIT_ERR_ABORTED',
      })
      const log = await c.api.taskLog({ node: 'pve1', upid })
      expect(Array.isArray(log)).toBe(true)
    } finally {
      sim.faults.slowTaskFactor = 1
      sim.finishAllTasks()
    }
  })

  it('a task ending in "WARNINGS: n" is a success that reports its warning count', async () => {
    const c = client()
    await c.run(ENDPOINTS.vmClone, { node: 'pve1', vmid: 9000, newid: 987, full: true, storage: 'local-lvm' })
    sim.warnTask({ type: 'qmstart', id: 987, warnings: 2 })
    const result = await c.run(ENDPOINTS.vmStart, { node: 'pve1', vmid: 987 })
    expect(result).toMatchObject({ exitstatus: 'WARNINGS: 2', warnings: 2 })
    expect(sim.vms.get(987)?.status).toBe('running')
    await c.run(ENDPOINTS.vmStop, { node: 'pve1', vmid: 987 })
  })

  it('a clone refused with a lock error is resent; the lost answer to the resend is not', async () => {
    const c = client()
    const route = 'POST /nodes/{node}/qemu/{vmid}/clone'
    const before = sim.stats.byRoute.get(route) ?? 0
    const isClone = (m: string, p: string) => m === 'POST' && p.endsWith('/clone')
    sim.failNext({ status: 500, message: 'VM is locked (backup)', match: isClone })
    sim.dropResponseNext({ match: isClone })
    const error = await c.api.vmClone({ node: 'pve1', vmid: 9000, newid: 986 }).catch((e: unknown) => e)
    // The refusal means nothing happened, so one resend is safe; after a lost answer, nobody knows.
    expect(error).toMatchObject({ code: 'PANELKIT_ERR_CONNECTION' })
    expect(sim.stats.byRoute.get(route)).toBe(before + 2)
    expect(sim.vms.has(986)).toBe(true)
    sim.finishAllTasks()
  })

  it('5xx and dropped connections: reads are repeated, a clone is not', async () => {
    const c = client()
    sim.failNext({
      status: 503,
      message: 'Service Unavailable',
      match: (m, p) => m === 'GET' && p === '/nodes',
    })
    await expect(c.api.nodes({})).resolves.toHaveLength(3)
    sim.dropNext(1)
    await expect(c.api.version({})).resolves.toBeDefined()
    const before = sim.stats.byRoute.get('POST /nodes/{node}/qemu/{vmid}/clone') ?? 0
    sim.failNext({
      status: 596,
      message: 'Broken pipe',
      match: (m, p) => m === 'POST' && p.endsWith('/clone'),
    })
    await expect(c.api.vmClone({ node: 'pve1', vmid: 9000, newid: 994 })).rejects.toMatchObject({
      status: 596,
      retryable: true,
    })
    expect(sim.stats.byRoute.get('POST /nodes/{node}/qemu/{vmid}/clone')).toBe(before + 1)
  })

  it('a lock storm: concurrent config changes all converge', async () => {
    const c = client({ lockRetry: { initialDelayMs: 2, maxDelayMs: 20, maxAttempts: 30 } })
    const ids = [995, 996, 997, 998]
    for (const id of ids)
      await c
        .run(ENDPOINTS.vmClone, { node: 'pve2', vmid: 9001, newid: id, target: 'pve2' })
        .catch(() => undefined)
    for (const id of ids)
      if (!sim.vms.has(id))
        sim.addVm({ vmid: id, node: 'pve2', config: { name: `storm${id}`, cores: '1', memory: '512' } })
    sim.lockStorm({ probability: 0.6, durationMs: 2000 })
    try {
      const changes = Array.from({ length: 40 }, (_, i) => ({
        vmid: ids[i % ids.length] as number,
        cores: (i % 8) + 1,
      }))
      const results = await Promise.allSettled(
        changes.map((ch) =>
          c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve2', vmid: ch.vmid, cores: ch.cores }),
        ),
      )
      expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    } finally {
      sim.clearFaults()
    }
  })
})
