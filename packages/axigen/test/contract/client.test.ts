import { inspect } from 'node:util'
import { createCallRecorder, MemoryLogSink } from '@panelkit/core'
import { generateTestCertificate, type TestCertificate } from '@panelkit/core/testing'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type AxigenClient, type AxigenClientOptions, createAxigenClient } from '../../src/index.ts'
import { type AxigenSimulator, startAxigenSimulator } from '../../src/testing/index.ts'
import { resetInsecureWarning, socketTransportFactory } from '../../src/transport/socket.ts'

const PASSWORD = 'Client-Test-Pass'
let sim: AxigenSimulator
let cert: TestCertificate
const clients: AxigenClient[] = []

beforeAll(async () => {
  cert = await generateTestCertificate()
  sim = await startAxigenSimulator({ admins: { admin: PASSWORD }, tls: { key: cert.key, cert: cert.cert } })
  sim.addDomain('example.org')
})
afterAll(async () => {
  await sim.close()
})
afterEach(async () => {
  sim.faults = {}
  await Promise.all(clients.splice(0).map((c) => c.close()))
})

function client(options: Partial<AxigenClientOptions> = {}): AxigenClient {
  const c = createAxigenClient({
    host: '127.0.0.1',
    port: sim.port,
    secure: false,
    username: 'admin',
    password: PASSWORD,
    ...options,
  })
  clients.push(c)
  return c
}

const code = async (p: Promise<unknown>) => {
  try {
    await p
    return 'resolved'
  } catch (error) {
    return (error as { code: string }).code
  }
}

describe('client against the simulator', () => {
  it('reuses one logged-in session for sequential commands', async () => {
    const c = client()
    const before = sim.connections
    for (let i = 0; i < 5; i++) await c.accounts.list('example.org')
    expect(sim.connections - before).toBe(1)
    expect(c.pool.stats.created).toBe(1)
  })

  it('bounds the pool and serves concurrent callers', async () => {
    const c = client({ pool: { max: 2 } })
    const before = sim.connections
    const results = await Promise.all(Array.from({ length: 12 }, () => c.domains.list()))
    expect(results.every((r) => r.some((d) => d.name === 'example.org'))).toBe(true)
    expect(sim.connections - before).toBeLessThanOrEqual(2)
  })

  it('goes BACK to the root after an -ERR inside a context and reuses the session', async () => {
    const c = client({ pool: { max: 1 } })
    expect(await code(c.accounts.show('example.org', 'ghost'))).toBe('PANELKIT_ERR_COMMAND')
    const before = sim.connections
    expect(await c.accounts.list('example.org')).toContain('postmaster')
    expect(sim.connections).toBe(before)
    const transcript = sim.transcripts.at(-1) ?? []
    expect(transcript.filter((e) => e.from === 'client').map((e) => e.text)).toContain('BACK')
  })

  it('enforces maxAccounts without counting the postmaster', async () => {
    const d = sim.addDomain('limited.example')
    d.adminLimits = { maxAccounts: 2 }
    const c = client({ pool: { max: 1 } })
    await c.accounts.add('limited.example', { name: 'one', password: 'Pass-One-1' })
    await c.accounts.add('limited.example', { name: 'two', password: 'Pass-Two-1' })
    const third = await c.accounts.add('limited.example', { name: 'three', password: 'Pass-Three-1' }).then(
      () => undefined,
      (e: unknown) => e as { code?: string; message?: string },
    )
    expect(third?.code).toBe('PANELKIT_ERR_COMMAND')
    expect(third?.message).toContain('maxAccounts')
    expect([...d.accounts.keys()].sort()).toEqual(['one', 'postmaster', 'two'])
    // Other tests expect example.org to be the only domain.
    sim.domains.delete('limited.example')
  })

  it('discards uncommitted edits when it backs out of a failing script', async () => {
    const c = client()
    sim.faults.failCommand = { match: /^SET totalMessageSize/, text: 'injected', times: 1 }
    expect(
      await code(
        c.accounts.add('example.org', {
          name: 'halfway',
          password: 'x-pass',
          quotas: { totalMessageSize: 10 },
        }),
      ),
    ).toBe('PANELKIT_ERR_COMMAND')
    expect(sim.account('example.org', 'halfway')).toBeUndefined()
  })

  it('reconnects and logs in again after the server closed an idle session', async () => {
    const idle = await startAxigenSimulator({ admins: { admin: PASSWORD }, idleTimeoutMs: 80 })
    idle.addDomain('example.org')
    try {
      const c = client({ port: idle.port })
      await c.domains.list()
      await new Promise((r) => setTimeout(r, 200))
      expect(idle.openConnections).toBe(0)
      expect(await c.domains.list()).toHaveLength(1)
      expect(idle.connections).toBe(2)
    } finally {
      await idle.close()
    }
  })

  it('a connection closed mid-reply is a CONNECTION error and the next command works', async () => {
    const c = client({ pool: { max: 1 } })
    sim.faults.closeMidReply = { match: /^LIST AllDomains/, times: 1 }
    expect(await code(c.domains.list())).toBe('PANELKIT_ERR_CONNECTION')
    expect(await c.domains.list()).toHaveLength(1)
  })

  it('a slow command hits the per-command timeout, and the session is replaced', async () => {
    const c = client({ timeoutMs: 100, pool: { max: 1 } })
    await c.domains.list()
    sim.faults.slowCommands = { match: /^LIST AllDomains/, delayMs: 400 }
    expect(await code(c.domains.list())).toBe('PANELKIT_ERR_TIMEOUT')
    sim.faults = {}
    expect(await c.domains.list()).toHaveLength(1)
  })

  it('still honours the deprecated commandTimeoutMs', async () => {
    const c = client({ commandTimeoutMs: 100, pool: { max: 1 } })
    await c.domains.list()
    sim.faults.slowCommands = { match: /^LIST AllDomains/, delayMs: 400 }
    expect(await code(c.domains.list())).toBe('PANELKIT_ERR_TIMEOUT')
    sim.faults = {}
  })

  it('waits through a delayed prompt', async () => {
    const c = client()
    sim.faults.delayPromptMs = 30
    expect(await c.domains.list()).toHaveLength(1)
  })

  it('an abort signal stops a command', async () => {
    const c = client()
    sim.faults.slowCommands = { match: /^LIST AllDomains/, delayMs: 300 }
    const controller = new AbortController()
    const p = c.run(
      {
        action: 'LIST',
        access: 'read',
        steps: [{ command: { line: 'LIST AllDomains', masked: 'LIST AllDomains' } }],
        parse: () => 1,
      },
      { signal: controller.signal },
    )
    setTimeout(() => controller.abort(), 30)
    expect(await code(p)).toBe('PANELKIT_ERR_ABORTED')
  })

  it('a refused login is an AUTH error that names the fix, without the password', async () => {
    const c = client({ password: 'wrong-password-123' })
    try {
      await c.domains.list()
      expect.unreachable()
    } catch (error) {
      expect((error as { code: string }).code).toBe('PANELKIT_ERR_AUTH')
      expect((error as Error).message).toMatch(/username or password is wrong/)
      expect((error as Error).message).not.toContain('wrong-password-123')
    }
  })

  it('closes the connection after too many failed logins', async () => {
    const { default: net } = await import('node:net')
    const socket = net.connect(sim.port, '127.0.0.1')
    let text = ''
    socket.on('data', (d) => {
      text += d.toString()
    })
    const closed = new Promise((r) => socket.on('close', r))
    for (let i = 0; i < 3; i++) socket.write('USER admin\r\nnope\r\n')
    await closed
    expect(text).toContain('-ERR: Too many authentication errors')
  })

  it('drops after N bytes are a CONNECTION error', async () => {
    sim.faults.dropAfterBytes = 20
    const c = client()
    expect(await code(c.domains.list())).toBe('PANELKIT_ERR_CONNECTION')
  })

  it('refuses control characters before connecting, the login password included', async () => {
    expect(() =>
      createAxigenClient({
        host: '127.0.0.1',
        port: sim.port,
        secure: false,
        username: 'admin',
        password: 'a\r\nEXIT',
      }),
    ).toThrow(expect.objectContaining({ code: 'PANELKIT_ERR_VALIDATION' }))
    const c = client()
    const before = sim.connections
    expect(
      await code(
        c.accounts.add('example.org', { name: 'x', password: 'p\nDELETE Domain name "example.org"' }),
      ),
    ).toBe('PANELKIT_ERR_VALIDATION')
    expect(sim.connections).toBe(before)
    expect(sim.domains.has('example.org')).toBe(true)
  })

  it('logs scripts with secrets masked, and sends no write under dry-run', async () => {
    const sink = new MemoryLogSink()
    const recorder = createCallRecorder({ connector: 'test', sink, dryRun: true })
    const c = client({ recorder })
    const writes = sim.writes
    await c.accounts.add('example.org', { name: 'dry', password: 'Dry-Run-Secret' })
    await c.accounts.list('example.org')
    expect(sim.writes).toBe(writes)
    expect(sim.account('example.org', 'dry')).toBeUndefined()
    expect(recorder.writes).toHaveLength(1)
    const log = JSON.stringify(sink.entries)
    expect(log).toContain('password ***')
    expect(log).not.toContain('Dry-Run-Secret')
    expect(sink.entries.map((e) => `${e.action}:${e.outcome}`)).toEqual([
      'ADD Account:dry-run',
      'LOGIN:ok',
      'LIST Accounts:ok',
    ])
  })
})

describe('TLS', () => {
  it('verifies the certificate with a CA', async () => {
    const c = client({ port: sim.tlsPort, secure: true, ca: cert.cert })
    expect(await c.domains.list()).toHaveLength(1)
  })

  it('one factory builds its TLS context once and still verifies every connection with it', async () => {
    const trusted = socketTransportFactory({
      host: '127.0.0.1',
      port: sim.tlsPort,
      secure: true,
      ca: cert.cert,
    })
    const first = await trusted()
    const second = await trusted()
    expect(first.closed || second.closed).toBe(false)
    first.destroy()
    second.destroy()
    // A CA that did not issue the server certificate is refused on the first and on a later connection.
    const other = await generateTestCertificate()
    const untrusted = socketTransportFactory({
      host: '127.0.0.1',
      port: sim.tlsPort,
      secure: true,
      ca: other.cert,
    })
    for (let i = 0; i < 2; i++) {
      await expect(untrusted()).rejects.toMatchObject({ details: { diagnosis: 'certificate' } })
    }
  })

  it('refuses an untrusted certificate with an actionable message', async () => {
    const c = client({ port: sim.tlsPort, secure: true })
    await expect(c.domains.list()).rejects.toThrow(/not trusted.*tls\.ca option.*tls\.fingerprint/s)
  })

  it('accepts a pinned fingerprint and refuses a wrong one', async () => {
    expect(sim.fingerprint).toBe(cert.fingerprint256)
    const ok = client({ port: sim.tlsPort, secure: true, tls: { fingerprint: sim.fingerprint ?? '' } })
    expect(await ok.domains.list()).toHaveLength(1)
    const wrong = client({ port: sim.tlsPort, secure: true, tls: { fingerprint: 'AB:'.repeat(31) + 'AB' } })
    await expect(wrong.domains.list()).rejects.toThrow(/does not match the pinned SHA-256 fingerprint/)
  })

  it('still honours the deprecated top-level fingerprint256', async () => {
    const pinned = client({ port: sim.tlsPort, secure: true, fingerprint256: cert.fingerprint256 })
    expect(await pinned.domains.list()).toHaveLength(1)
    const wrong = client({ port: sim.tlsPort, secure: true, fingerprint256: 'AB:'.repeat(31) + 'AB' })
    await expect(wrong.domains.list()).rejects.toThrow(/does not match the pinned SHA-256 fingerprint/)
  })

  it('warns once for the insecure option', async () => {
    resetInsecureWarning()
    const warnings: string[] = []
    const a = client({ port: sim.tlsPort, secure: true, insecure: true, onWarning: (m) => warnings.push(m) })
    const b = client({ port: sim.tlsPort, secure: true, insecure: true, onWarning: (m) => warnings.push(m) })
    await a.domains.list()
    await b.domains.list()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/verification is disabled/)
  })

  it('TLS against the plain port says the port speaks plain text', async () => {
    const c = client({ port: sim.port, secure: true, ca: cert.cert })
    await expect(c.domains.list()).rejects.toThrow(/answered in plain text/)
  })

  it('plain text against the TLS port times out waiting for the banner and says TLS may be expected', async () => {
    const c = client({ port: sim.tlsPort, secure: false, greetingTimeoutMs: 150 })
    await expect(c.domains.list()).rejects.toThrow(/no Axigen banner.*expects TLS/s)
  })
})

/** JSON.stringify that skips repeated objects (a pool holds sockets and back references). */
function safeJson(value: unknown): string {
  const seen = new WeakSet<object>()
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'function') return undefined
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return undefined
      seen.add(v)
    }
    return v
  })
}

describe('secrets and input at the client surface', () => {
  it('a logged client, its pool and its sessions never print the admin password', async () => {
    const c = client()
    await c.domains.list()
    const printed = [
      inspect(c, { depth: Number.POSITIVE_INFINITY, showHidden: true }),
      inspect(c, { depth: Number.POSITIVE_INFINITY, customInspect: false }),
      safeJson(c.pool),
    ].join('\n')
    expect(printed).toContain('admin')
    expect(printed).not.toContain(PASSWORD)
    // and it still logs in after being printed
    expect(await client().domains.list()).toHaveLength(1)
  })

  it('empty names, whitespace in names and negative or fractional quotas are VALIDATION naming the field; nothing is sent', async () => {
    const c = client()
    await c.domains.list()
    const before = sim.commands
    const cases: [Promise<unknown>, string][] = [
      [c.accounts.add('example.org', { name: '', password: 'Pw-12345' }), 'account'],
      [c.accounts.add('example.org', { name: 'a b', password: 'Pw-12345' }), 'account'],
      [c.accounts.remove('', 'bob'), 'domain'],
      [c.accounts.update('example.org', 'bob', { quotas: { messageSize: -5 } }), 'quotas.messageSize'],
      [c.accounts.update('example.org', 'bob', { quotas: { mboxCount: 1.5 } }), 'quotas.mboxCount'],
      [c.domains.configure('example.org', { adminLimits: { maxAccounts: -1 } }), 'adminLimits.maxAccounts'],
      [c.accounts.addAlias('example.org', 'bob', ' '), 'alias'],
    ]
    for (const [p, field] of cases) {
      const error = await p.then(
        () => undefined,
        (e: unknown) => e as { kind?: string; field?: string },
      )
      expect(error?.kind, field).toBe('VALIDATION')
      expect(error?.field, field).toBe(field)
    }
    expect(sim.commands).toBe(before)
  })
})
