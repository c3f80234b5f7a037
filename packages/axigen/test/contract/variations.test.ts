import net from 'node:net'
import { createConnector } from '@panelkit/core'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type AxigenClient,
  type AxigenClientOptions,
  axigenAccountConnector,
  axigenDomainConnector,
  createAxigenClient,
  parseMarker,
} from '../../src/index.ts'
import {
  type AxigenSimulator,
  NAMED_VARIATIONS,
  type SimulatorVariations,
  startAxigenSimulator,
} from '../../src/testing/index.ts'
import { resetInsecureWarning } from '../../src/transport/socket.ts'

const PASSWORD = 'Variation-Pass-7'
const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()))
})

async function simulator(variations: SimulatorVariations = {}): Promise<AxigenSimulator> {
  const sim = await startAxigenSimulator({ admins: { admin: PASSWORD }, variations })
  open.push(sim)
  return sim
}

function client(sim: AxigenSimulator, options: Partial<AxigenClientOptions> = {}): AxigenClient {
  const c = createAxigenClient({
    host: '127.0.0.1',
    port: sim.port,
    secure: false,
    username: 'admin',
    password: PASSWORD,
    ...options,
  })
  open.push(c)
  return c
}

const failure = async (p: Promise<unknown>) => {
  try {
    await p
  } catch (error) {
    return error as { code: string; kind: string; message: string; details?: Record<string, unknown> }
  }
  throw new Error('expected a rejection')
}

describe('tables are read by tokens, never by header offsets', () => {
  for (const tableLayout of ['aligned', 'header-width', 'tabs'] as const) {
    it(`${tableLayout}: names wider than the header come back whole`, async () => {
      const sim = await simulator({ tableLayout, accountsColumns: ['status', 'size'] })
      sim.addDomain('a-much-longer-domain-name.example')
      sim.addDomain('x.test', { enabled: false })
      sim.addAccount('x.test', 'a-much-longer-account-name')
      const c = client(sim)
      expect(await c.domains.list()).toEqual([
        { name: 'a-much-longer-domain-name.example', enabled: true },
        { name: 'x.test', enabled: false },
      ])
      expect((await c.accounts.list('x.test')).sort()).toEqual(['a-much-longer-account-name', 'postmaster'])
    })
  }

  it('the enabled state comes from LIST Domains, not a column: a size where the status was', async () => {
    const sim = await simulator({ allDomainsColumns: ['status', 'used'] })
    sim.addDomain('on.example')
    sim.addDomain('off.example', { enabled: false })
    const list = await client(sim).domains.list()
    expect(list.find((d) => d.name === 'off.example')?.enabled).toBe(false)
    expect(list.find((d) => d.name === 'on.example')?.enabled).toBe(true)
  })
})

describe('version and health check', () => {
  it('reads the version before login, once per session, and never sends GET VERSION after login', async () => {
    const sim = await simulator({ refuseVersionAfterLogin: true })
    const c = client(sim, { pool: { max: 1, healthCheckAfterMs: 0 } })
    expect((await c.server.version())?.version).toBe('10.6.30')
    await new Promise((r) => setTimeout(r, 5))
    await c.domains.list()
    await new Promise((r) => setTimeout(r, 5))
    expect((await c.server.version())?.version).toBe('10.6.30')
    // The health check (HELP) passed on a server that refuses GET VERSION after login: one session.
    expect(c.pool.stats.created).toBe(1)
    const sent = sim.transcripts
      .flat()
      .filter((e) => e.from === 'client')
      .map((e) => e.text)
    expect(sent.filter((l) => l === 'GET VERSION')).toHaveLength(1)
    expect(sent).toContain('HELP')
  })

  it('testConnection succeeds on a server that refuses GET VERSION after login', async () => {
    const sim = await simulator({ refuseVersionAfterLogin: true })
    const domains = createConnector(axigenDomainConnector)
    open.push(domains)
    const r = await domains.invoke('testConnection', {
      server: { hostname: '127.0.0.1', port: sim.port, secure: false, username: 'admin', password: PASSWORD },
    })
    expect(r.ok && r.data.version).toBe('10.6.30')
  })
})

describe('login refusals', () => {
  it('-ERR and a close after the password is AUTH, not CONNECTION', async () => {
    const sim = await simulator({ closeAfterFailedLogin: true })
    const e = await failure(client(sim, { password: 'not-it' }).domains.list())
    expect(e.kind).toBe('AUTH')
    expect(e.message).toMatch(/username or password is wrong/)
    expect(e.message).not.toContain('not-it')
  })
})

describe('defaults a stock server answers', () => {
  it('plain text on 7000 by default, with a once-per-process warning that the password travels in clear', () => {
    resetInsecureWarning()
    const warnings: string[] = []
    const a = createAxigenClient({
      host: 'mail.example.invalid',
      username: 'admin',
      password: 'x',
      onWarning: (m) => warnings.push(m),
    })
    const b = createAxigenClient({
      host: 'mail.example.invalid',
      username: 'admin',
      password: 'x',
      onWarning: (m) => warnings.push(m),
    })
    open.push(a, b)
    expect(a.port).toBe(7000)
    expect(a.secure).toBe(false)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/plain text.*in clear.*TLS/)
    expect(warnings[0]).not.toContain('x"')
  })

  it('Secure without a port: the diagnosis says 7001 is not an Axigen default and names the fix', async () => {
    const domains = createConnector(axigenDomainConnector)
    open.push(domains)
    // The diagnosis needs a refused 7001: the first loopback address where nothing listens on it (any
    // 127.x address is this machine; a listener of the machine's own usually holds only 127.0.0.1).
    const refuses = (host: string) =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(7001, host)
        s.on('connect', () => {
          s.destroy()
          resolve(false)
        })
        s.on('error', () => resolve(true))
      })
    let hostname: string | undefined
    for (const candidate of ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      if (await refuses(candidate)) {
        hostname = candidate
        break
      }
    }
    if (!hostname) throw new Error('something on this machine listens on port 7001 of every loopback address')
    const r = await domains.invoke('testConnection', {
      server: { hostname, secure: true, username: 'admin', password: PASSWORD },
    })
    expect(r.ok).toBe(false)
    if (!r.ok) {
      expect(r.error.code).toBe('CONNECTION')
      expect(r.error.detail).toMatch(
        /tried 7001, which is not an Axigen default.*plain text on 7000.*turn Secure off/,
      )
    }
  })
})

describe('simulator COMMIT takes effect at once and returns to the previous context', () => {
  it('an account committed in a domain context is there for UPDATE, and a later BACK keeps it', async () => {
    const sim = await simulator()
    sim.addDomain('commit.example')
    const socket = net.connect(sim.port, '127.0.0.1')
    open.push({ close: async () => void socket.destroy() })
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      text += d
    })
    const until = async (prompt: string) => {
      for (let i = 0; i < 200 && !text.endsWith(prompt); i++) await new Promise((r) => setTimeout(r, 5))
      const out = text
      text = ''
      return out
    }
    const send = async (line: string, prompt: string) => {
      socket.write(`${line}\r\n`)
      return until(prompt)
    }
    await until('<login> ')
    await send('USER admin', '<password> ')
    await send(PASSWORD, '<#> ')
    await send('UPDATE Domain name "commit.example"', '<domain#> ')
    await send('ADD Account name "john" password "Pw-1"', '<domain-account#> ')
    expect(await send('COMMIT', '<domain#> ')).toMatch(/\+OK: committing changes/)
    expect(sim.account('commit.example', 'john')).toBeDefined()
    expect(await send('UPDATE Account name "john"', '<domain-account#> ')).toMatch(/^\+OK/)
    await send('BACK', '<domain#> ')
    expect(await send('ADD Account name "john" password "x"', '<domain#> ')).toMatch(
      /^-ERR: .*already exists/,
    )
    await send('BACK', '<#> ')
    expect(sim.account('commit.example', 'john')).toBeDefined()
  })
})

describe('unconfirmed attributes: a refusal is a COMMAND error naming the option, and nothing is half done', () => {
  const variation = (name: string) => {
    const v = NAMED_VARIATIONS.find((x) => x.name === name)
    if (!v) throw new Error(`no variation ${name}`)
    return v
  }
  const server = (sim: AxigenSimulator) => ({
    hostname: '127.0.0.1',
    port: sim.port,
    secure: false,
    username: 'admin',
    password: PASSWORD,
  })
  const mailbox = (sim: AxigenSimulator, settings: Record<string, unknown> = {}) => ({
    serviceId: 41,
    clientId: 1,
    username: 'refused',
    password: 'Refused-Pw-1',
    server: server(sim),
    settings: { domain: 'corp.example', ...settings },
    client: { email: 'c@example.com', firstName: 'Kim', lastName: 'Lee' },
  })

  for (const [name, option, run] of [
    ['ContactInfo notes refused', 'markerAttribute', {}],
    ['SET accountClassName refused', 'classAssignment', { accountClass: 'premium' }],
  ] as const) {
    it(`${name}: mailbox create names ${option}; no mailbox is left`, async () => {
      const sim = await simulator(variation(name).variations)
      sim
        .addDomain('corp.example')
        .classes.set('premium', { name: 'premium', services: undefined, quotas: {} })
      const accounts = createConnector(axigenAccountConnector)
      open.push(accounts)
      const r = await accounts.invoke('create', { service: mailbox(sim, run) })
      expect(r.ok).toBe(false)
      if (!r.ok) {
        expect(r.error.code).toBe('COMMAND')
        expect(r.error.detail).toContain(`server option ${option}`)
      }
      expect(sim.account('corp.example', 'refused')).toBeUndefined()
    })
  }

  it('ContactInfo notes refused: domain create names markerAttribute and removes the domain it made', async () => {
    const sim = await simulator(variation('ContactInfo notes refused').variations)
    const domains = createConnector(axigenDomainConnector)
    open.push(domains)
    const service = {
      serviceId: 44,
      clientId: 1,
      domain: 'unmarkable.example',
      password: 'Postmaster-Pw-7',
      server: server(sim),
      settings: { maxAccounts: 3 },
      client: { email: 'o@example.com' },
    }
    const r = await domains.invoke('create', { service })
    expect(!r.ok && r.error.code).toBe('COMMAND')
    if (!r.ok) expect(r.error.detail).toContain('server option markerAttribute')
    expect(sim.domains.has('unmarkable.example')).toBe(false)
    const fixed = { ...service, server: { ...service.server, options: { markerAttribute: 'department' } } }
    const again = await domains.invoke('create', { service: fixed })
    expect(again.ok && again.data.created).toBe(true)
    expect(parseMarker(sim.account('unmarkable.example', 'postmaster')?.contact.department)?.serviceId).toBe(
      '44',
    )
  })

  it('SET services () refused: suspend names emptyServiceList; the mailbox is untouched', async () => {
    const sim = await simulator(variation('SET services () refused').variations)
    sim.addDomain('corp.example')
    const accounts = createConnector(axigenAccountConnector)
    open.push(accounts)
    const service = mailbox(sim, { services: 'imap smtp' })
    expect((await accounts.invoke('create', { service })).ok).toBe(true)
    const before = JSON.stringify(sim.account('corp.example', 'refused'))
    const r = await accounts.invoke('suspend', { service })
    expect(!r.ok && r.error.code).toBe('COMMAND')
    if (!r.ok) expect(r.error.detail).toContain('server option emptyServiceList')
    expect(JSON.stringify(sim.account('corp.example', 'refused'))).toBe(before)
    // With the option the operator is told to set, the same server suspends.
    const fixed = { ...service, server: { ...service.server, options: { emptyServiceList: '( )' } } }
    const ok = await accounts.invoke('suspend', { service: fixed })
    expect(ok.ok && ok.data.changed).toBe(true)
    expect(sim.account('corp.example', 'refused')?.services).toEqual([])
  })

  it('SET remoteServer refused: domain create names migrationAttributes; a retry with it completes', async () => {
    const sim = await simulator(variation('SET remoteServer refused').variations)
    const domains = createConnector(axigenDomainConnector)
    open.push(domains)
    const service = {
      serviceId: 42,
      clientId: 1,
      domain: 'migrating.example',
      password: 'Postmaster-Pw-9',
      server: server(sim),
      settings: { migrationSource: 'imap.old.example:993', maxAccounts: 7 },
      client: { email: 'o@example.com' },
    }
    const r = await domains.invoke('create', { service })
    expect(!r.ok && r.error.code).toBe('COMMAND')
    if (!r.ok) expect(r.error.detail).toContain('server option migrationAttributes')
    // The admin-limits and migration script was refused as a whole: no limit half applied.
    expect(sim.domains.get('migrating.example')?.adminLimits).toEqual({})
    const fixed = {
      ...service,
      server: { ...service.server, options: { migrationAttributes: 'remoteImapHost' } },
    }
    const again = await domains.invoke('create', { service: fixed })
    expect(again.ok).toBe(true)
    expect(sim.domains.get('migrating.example')).toMatchObject({
      adminLimits: { maxAccounts: 7 },
      migration: { remoteImapHost: 'imap.old.example', remoteImapPort: '993' },
    })
    expect(parseMarker(sim.account('migrating.example', 'postmaster')?.contact.notes)?.serviceId).toBe('42')
  })
})

describe('an existing mailbox without our marker', () => {
  it('create is CONFLICT naming the link action; the action links it; someone else keeps theirs', async () => {
    const sim = await simulator()
    sim.addDomain('corp.example')
    const byHand = sim.addAccount('corp.example', 'legacy')
    const accounts = createConnector(axigenAccountConnector)
    open.push(accounts)
    const service = {
      serviceId: 45,
      clientId: 1,
      username: 'legacy',
      password: 'Legacy-Pw-1',
      server: { hostname: '127.0.0.1', port: sim.port, secure: false, username: 'admin', password: PASSWORD },
      settings: { domain: 'corp.example' },
      client: { email: 'c@example.com' },
    }
    const before = JSON.stringify(byHand)
    const r = await accounts.invoke('create', { service })
    expect(!r.ok && r.error.code).toBe('CONFLICT')
    if (!r.ok) expect(r.error.detail).toMatch(/Link existing mailbox.*linkExistingMailbox/)
    expect(JSON.stringify(sim.account('corp.example', 'legacy'))).toBe(before)
    const link = await accounts.invoke('action', {
      service,
      action: 'linkExistingMailbox',
      audience: 'admin',
      params: {},
    })
    expect(link.ok).toBe(true)
    expect(parseMarker(sim.account('corp.example', 'legacy')?.contact.notes)?.serviceId).toBe('45')
    expect(sim.account('corp.example', 'legacy')?.password).toBe('account-secret')
    const again = await accounts.invoke('create', { service })
    expect(again.ok && again.data.created).toBe(false)
    const other = await accounts.invoke('action', {
      service: { ...service, serviceId: 46 },
      action: 'linkExistingMailbox',
      audience: 'admin',
      params: {},
    })
    expect(!other.ok && other.error.code).toBe('CONFLICT')
  })
})

describe('a disabled domain the server will not open with UPDATE', () => {
  it('is read and deleted through EDIT Domain: repeated suspend, unsuspend and terminate work', async () => {
    const sim = await simulator({ refuseUpdateOnDisabledDomain: true })
    const domains = createConnector(axigenDomainConnector)
    open.push(domains)
    const service = {
      serviceId: 43,
      clientId: 1,
      domain: 'sleepy.example',
      password: 'Postmaster-Pw-8',
      server: {
        hostname: '127.0.0.1',
        port: sim.port,
        secure: false,
        username: 'admin',
        password: PASSWORD,
      },
      settings: { maxAccounts: 2 },
      client: { email: 'o@example.com' },
    }
    expect((await domains.invoke('create', { service })).ok).toBe(true)
    expect((await domains.invoke('suspend', { service })).ok).toBe(true)
    const again = await domains.invoke('suspend', { service })
    expect(again.ok && again.data.changed).toBe(false)
    const usage = await domains.invoke('usage', { service })
    expect(usage.ok).toBe(true)
    expect(
      (await domains.invoke('changePassword', { service: { ...service, password: 'New-Pm-Pw-2' } })).ok,
    ).toBe(true)
    expect(sim.account('sleepy.example', 'postmaster')?.password).toBe('New-Pm-Pw-2')
    const sent = sim.transcripts
      .flat()
      .filter((e) => e.from === 'client')
      .map((e) => e.text)
    expect(sent).toContain('EDIT Domain name "sleepy.example"')
    const t = await domains.invoke('terminate', { service })
    expect(t.ok && t.data.changed).toBe(true)
    expect(sim.domains.has('sleepy.example')).toBe(false)
  })
})

describe('a mailbox in a disabled domain the server will not open with UPDATE', () => {
  it('is read and written in one visit through EDIT Domain: suspend, unsuspend and terminate work', async () => {
    const sim = await simulator({ refuseUpdateOnDisabledDomain: true })
    sim.addDomain('quiet.example')
    const accounts = createConnector(axigenAccountConnector)
    open.push(accounts)
    const service = {
      serviceId: 51,
      clientId: 1,
      username: 'kim',
      password: 'Mailbox-Pw-51',
      server: { hostname: '127.0.0.1', port: sim.port, secure: false, username: 'admin', password: PASSWORD },
      settings: { domain: 'quiet.example', services: 'imap' },
      client: { email: 'k@example.com' },
    }
    expect((await accounts.invoke('create', { service })).ok).toBe(true)
    const domain = sim.domains.get('quiet.example')
    if (!domain) throw new Error('the domain is missing')
    domain.enabled = false
    const s = await accounts.invoke('suspend', { service })
    expect(s.ok && s.data.changed).toBe(true)
    expect(sim.account('quiet.example', 'kim')?.services).toEqual([])
    const u = await accounts.invoke('unsuspend', { service })
    expect(u.ok && u.data.changed).toBe(true)
    expect(sim.account('quiet.example', 'kim')?.services).toEqual(['imap'])
    const sent = sim.transcripts
      .flat()
      .filter((e) => e.from === 'client')
      .map((e) => e.text)
    expect(sent).toContain('EDIT Domain name "quiet.example"')
    const t = await accounts.invoke('terminate', { service })
    expect(t.ok && t.data.changed).toBe(true)
    expect(sim.account('quiet.example', 'kim')).toBeUndefined()
  })

  it('terminate in a domain that no longer exists changes nothing and succeeds', async () => {
    const sim = await simulator()
    const accounts = createConnector(axigenAccountConnector)
    open.push(accounts)
    const service = {
      serviceId: 52,
      clientId: 1,
      username: 'lee',
      server: { hostname: '127.0.0.1', port: sim.port, secure: false, username: 'admin', password: PASSWORD },
      settings: { domain: 'vanished.example' },
      client: { email: 'l@example.com' },
    }
    const t = await accounts.invoke('terminate', { service })
    expect(t.ok && t.data.changed).toBe(false)
    const s = await accounts.invoke('suspend', { service })
    expect(!s.ok && s.error.code).toBe('NOT_FOUND')
  })
})
