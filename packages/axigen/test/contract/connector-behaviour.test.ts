import net from 'node:net'
import { createConnector } from '@panelkit/core'
import { generateTestCertificate } from '@panelkit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { axigenAccountConnector, axigenDomainConnector, parseMarker } from '../../src/index.ts'
import { type AxigenSimulator, startAxigenSimulator } from '../../src/testing/index.ts'
import { VARIANTS, variantName } from '../helpers/contract-fixtures.ts'

// Every behaviour below holds against the default simulator and against each legal variation.
for (const variation of VARIANTS) {
  describe(`connector behaviour against ${variantName(variation)}`, () => {
    const markerAttribute = variation?.serverOptions.markerAttribute ?? 'notes'
    const PASSWORD = 'Behaviour-Admin-9'
    let sim: AxigenSimulator
    let tlsPort = 0
    const accounts = createConnector(axigenAccountConnector)
    const domains = createConnector(axigenDomainConnector)
    let server: {
      hostname: string
      port: number
      secure: boolean
      username: string
      password: string
      options: Record<string, string>
    }

    beforeAll(async () => {
      const cert = await generateTestCertificate()
      sim = await startAxigenSimulator({
        admins: { admin: PASSWORD },
        tls: { key: cert.key, cert: cert.cert },
        ...(variation ? { variations: variation.variations } : {}),
      })
      tlsPort = sim.tlsPort
      const d = sim.addDomain('corp.example')
      d.classes.set('premium', {
        name: 'premium',
        services: ['imap', 'smtp', 'webmail', 'activesync'],
        quotas: {},
      })
      server = {
        hostname: '127.0.0.1',
        port: sim.port,
        secure: false,
        username: 'admin',
        password: PASSWORD,
        options: { ...variation?.serverOptions },
      }
    })
    afterAll(async () => {
      await accounts.close()
      await domains.close()
      await sim.close()
    })

    const mailbox = (id: number, settings: Record<string, unknown> = {}) => ({
      serviceId: id,
      clientId: 1,
      username: `m${id}`,
      password: `Pw-${id}-secret`,
      server,
      settings: { domain: 'corp.example', ...settings },
      client: { email: 'c@example.com', firstName: 'Kim', lastName: 'Lee' },
    })

    describe('mailbox suspension restores exactly the services the account had', () => {
      it('explicit services come back as they were', async () => {
        const service = mailbox(1, { services: 'imap smtp' })
        expect((await accounts.invoke('create', { service })).ok).toBe(true)
        expect(sim.account('corp.example', 'm1')?.services).toEqual(['imap', 'smtp'])
        const s = await accounts.invoke('suspend', { service })
        expect(s.ok && s.data.changed).toBe(true)
        expect(sim.account('corp.example', 'm1')?.services).toEqual([])
        expect(parseMarker(sim.account('corp.example', 'm1')?.contact[markerAttribute])?.suspended).toEqual([
          'imap',
          'smtp',
        ])
        const u = await accounts.invoke('unsuspend', { service })
        expect(u.ok && u.data.changed).toBe(true)
        expect(sim.account('corp.example', 'm1')?.services).toEqual(['imap', 'smtp'])
        expect(
          parseMarker(sim.account('corp.example', 'm1')?.contact[markerAttribute])?.suspended,
        ).toBeUndefined()
      })

      it('inherited services are inherited again (not frozen into an explicit list)', async () => {
        const service = mailbox(2, { accountClass: 'premium' })
        expect((await accounts.invoke('create', { service })).ok).toBe(true)
        expect(sim.account('corp.example', 'm2')?.services).toBeUndefined()
        await accounts.invoke('suspend', { service })
        await accounts.invoke('suspend', { service })
        expect(sim.account('corp.example', 'm2')?.services).toEqual([])
        await accounts.invoke('unsuspend', { service })
        expect(sim.account('corp.example', 'm2')?.services).toBeUndefined()
        expect(sim.account('corp.example', 'm2')?.accountClass).toBe('premium')
      })

      it('a dry-run suspend sends no write', async () => {
        const service = mailbox(3)
        await accounts.invoke('create', { service })
        const writes = sim.writes
        const r = await accounts.invoke('suspend', { service }, { dryRun: true })
        expect(r.ok).toBe(true)
        expect(r.dryRun?.writes.map((w) => w.action)).toEqual(['SUSPEND Account'])
        expect(sim.writes).toBe(writes)
        expect(sim.account('corp.example', 'm3')?.services).toBeUndefined()
      })
    })

    describe('a lifecycle operation visits its domain once', () => {
      const sent = () =>
        sim.transcripts
          .flat()
          .filter((e) => e.from === 'client')
          .map((e) => e.text)
      /** The commands one call sends, and whether each enters a domain from the root. */
      const during = async (run: () => Promise<{ ok: boolean }>) => {
        const before = sent().length
        const r = await run()
        expect(r.ok).toBe(true)
        const commands = sent().slice(before)
        return {
          commands,
          entries: commands.filter((c) => /^(UPDATE|EDIT) Domain /.test(c)).length,
        }
      }

      it('create, suspend, unsuspend and terminate each enter the domain once and end at the root', async () => {
        const service = mailbox(30, { services: 'imap smtp' })
        const create = await during(() => accounts.invoke('create', { service }))
        expect(create.entries).toBe(1)
        expect(create.commands.at(-1)).toBe('COMMIT')
        // 10 commands, and 3 for the services this product sets (CONFIG Limits, SET services, DONE).
        expect(create.commands.length).toBe(13)
        expect(sim.account('corp.example', 'm30')?.services).toEqual(['imap', 'smtp'])
        const suspend = await during(() => accounts.invoke('suspend', { service }))
        // The read (exists? marker, services) and the write it decided, in one visit: the account is
        // opened once and written while still open.
        expect(suspend.entries).toBe(1)
        expect(suspend.commands.filter((c) => c.startsWith('UPDATE Account')).length).toBe(1)
        // The services are set in the CONFIG Limits the read left open: entered once, no BACK between.
        expect(suspend.commands.filter((c) => c === 'CONFIG Limits').length).toBe(1)
        const limits = suspend.commands.indexOf('CONFIG Limits')
        expect(suspend.commands.slice(limits, limits + 4)).toEqual([
          'CONFIG Limits',
          'SHOW',
          expect.stringMatching(/^SET services /),
          'DONE',
        ])
        // No listing first: the account is opened straight away (14 commands; 15 with LIST Accounts).
        expect(suspend.commands.some((c) => c.startsWith('LIST Accounts'))).toBe(false)
        expect(suspend.commands.length).toBe(14)
        expect(sim.account('corp.example', 'm30')?.services).toEqual([])
        // Nothing to do: the visit reads and leaves with BACK, writing nothing.
        const writes = sim.writes
        const again = await during(() => accounts.invoke('suspend', { service }))
        expect(again.entries).toBe(1)
        expect(again.commands.at(-1)).toBe('BACK')
        expect(sim.writes).toBe(writes)
        const unsuspend = await during(() => accounts.invoke('unsuspend', { service }))
        expect(unsuspend.entries).toBe(1)
        expect(unsuspend.commands.filter((c) => c === 'CONFIG Limits').length).toBe(1)
        expect(unsuspend.commands.length).toBe(14)
        expect(sim.account('corp.example', 'm30')?.services).toEqual(['imap', 'smtp'])
        const terminate = await during(() => accounts.invoke('terminate', { service }))
        expect(terminate.entries).toBe(1)
        expect(terminate.commands).not.toContain('CONFIG Limits')
        expect(terminate.commands.some((c) => c.startsWith('LIST Accounts'))).toBe(false)
        expect(terminate.commands.length).toBe(8)
        expect(sim.account('corp.example', 'm30')).toBeUndefined()
        // Already gone: the refused UPDATE Account is looked up with a listing (a second entry), which
        // tells a missing mailbox from any other refusal; nothing is written.
        const writes2 = sim.writes
        const gone = await during(() => accounts.invoke('terminate', { service }))
        expect(gone.entries).toBe(2)
        expect(gone.commands.filter((c) => c.startsWith('LIST Accounts')).length).toBe(1)
        expect(gone.commands.at(-1)).toBe('BACK')
        expect(sim.writes).toBe(writes2)
      })

      it('a dry-run write inside a visit is not sent and the session is back at the root for the next call', async () => {
        const service = mailbox(31)
        await accounts.invoke('create', { service })
        const writes = sim.writes
        const dry = await during(() => accounts.invoke('suspend', { service }, { dryRun: true }))
        expect(dry.commands.some((c) => c.startsWith('SET services'))).toBe(false)
        expect(dry.commands.at(-1)).toBe('BACK')
        expect(sim.writes).toBe(writes)
        const real = await accounts.invoke('suspend', { service })
        expect(real.ok && real.data.changed).toBe(true)
        expect(sim.account('corp.example', 'm31')?.services).toEqual([])
      })

      it('a mailbox of another service is refused inside the visit, before any write', async () => {
        const service = mailbox(32)
        await accounts.invoke('create', { service })
        const writes = sim.writes
        const other = { ...service, serviceId: 33 }
        for (const op of ['create', 'suspend', 'terminate', 'changePassword'] as const) {
          const r = await accounts.invoke(op, { service: other })
          expect(r.ok).toBe(false)
          if (!r.ok) expect(r.error.code).toBe('CONFLICT')
        }
        expect(sim.writes).toBe(writes)
        expect(sim.account('corp.example', 'm32')).toBeDefined()
      })

      it('a refused UPDATE Account of a mailbox that exists keeps the refusal; a missing one is not found', async () => {
        const service = mailbox(34, { services: 'imap' })
        await accounts.invoke('create', { service })
        const writes = sim.writes
        for (const op of ['suspend', 'terminate', 'changePassword'] as const) {
          sim.faults.failCommand = { match: /^UPDATE Account /, text: 'injected refusal', times: 1 }
          const r = await accounts.invoke(op, { service })
          // Looked up, found: the server's refusal, not "not found" and not "already gone".
          expect(r.ok).toBe(false)
          if (!r.ok) {
            expect(r.error.code).toBe('COMMAND')
            expect(r.error.detail).toContain('injected refusal')
          }
        }
        expect(sim.writes).toBe(writes)
        expect(sim.account('corp.example', 'm34')?.services).toEqual(['imap'])
        const missing = mailbox(35)
        for (const op of ['suspend', 'unsuspend', 'changePassword'] as const) {
          const r = await accounts.invoke(op, { service: missing })
          expect(r.ok).toBe(false)
          if (!r.ok) expect(r.error.code).toBe('NOT_FOUND')
        }
        const gone = await accounts.invoke('terminate', { service: missing })
        expect(gone.ok && gone.data.changed).toBe(false)
        expect(sim.writes).toBe(writes)
      })
    })

    describe('mailbox package, usage and import', () => {
      it('changePackage re-applies quotas, class and services', async () => {
        const service = mailbox(4, { mailboxSizeMb: 100 })
        await accounts.invoke('create', { service })
        const next = {
          ...service,
          settings: { ...service.settings, mailboxSizeMb: 200, accountClass: 'premium', services: 'imap' },
        }
        const r = await accounts.invoke('changePackage', { service: next })
        expect(r.ok && r.data.applied).toEqual(['quotas', 'accountClass', 'services'])
        const a = sim.account('corp.example', 'm4')
        expect(a?.quotas.totalMessageSize).toBe(200 * 1024)
        expect(a?.accountClass).toBe('premium')
        const again = await accounts.invoke('changePackage', { service: next })
        expect(again.ok && again.data.changed).toBe(false)
      })

      it('usage reads the registry and the quota', async () => {
        const service = mailbox(5, { mailboxSizeMb: 10, maxMessages: 500 })
        await accounts.invoke('create', { service })
        const a = sim.account('corp.example', 'm5')
        if (a) a.usage = { mboxSizeKb: 5120, messageCount: 42, folderCount: 7 }
        const r = await accounts.invoke('usage', { service })
        expect(r.ok && r.data.metrics).toEqual([
          { name: 'mailbox_size', value: 5, unit: 'MB', limit: 10 },
          { name: 'messages', value: 42, unit: 'messages', limit: 500 },
        ])
      })

      it('listAccounts reports the owning service and the state', async () => {
        const r = await accounts.invoke('listAccounts', { server, settings: { domain: 'corp.example' } })
        expect(r.ok).toBe(true)
        const m1 = r.ok ? r.data.accounts.find((a) => a.username === 'm1') : undefined
        expect(m1).toMatchObject({ serviceId: '1', status: 'active', email: 'm1@corp.example' })
      })

      it('import reads accounts in batched scripts spread over the pooled sessions', async () => {
        sim.addDomain('bulk.example')
        for (let i = 0; i < 60; i++) {
          const a = sim.addAccount('bulk.example', `u${i}`)
          if (i === 7) a.contact[markerAttribute] = 'panelkit:v1 service=907'
          if (i === 8) {
            a.contact[markerAttribute] = 'panelkit:v1 service=908 suspended=inherit'
            a.services = []
          }
        }
        const clientLines = () => sim.transcripts.flat().filter((e) => e.from === 'client')
        const fullShowsBefore = clientLines().filter((e) => e.text === 'SHOW RegistryInformation').length
        const r = await accounts.invoke('listAccounts', { server, settings: { domain: 'bulk.example' } })
        expect(r.ok).toBe(true)
        const found = r.ok ? r.data.accounts : []
        expect(found).toHaveLength(61) // and the postmaster
        expect(found.find((a) => a.username === 'u7')).toMatchObject({ serviceId: '907', status: 'active' })
        expect(found.find((a) => a.username === 'u8')).toMatchObject({
          serviceId: '908',
          status: 'suspended',
        })
        expect(found.find((a) => a.username === 'u9')?.serviceId).toBeUndefined()
        // No full SHOW per account; 61 accounts in batches of 25 = three scripts entering the domain once
        // each, plus the listing itself.
        expect(clientLines().filter((e) => e.text === 'SHOW RegistryInformation')).toHaveLength(
          fullShowsBefore,
        )
        expect(clientLines().filter((e) => e.text === 'UPDATE Domain name "bulk.example"')).toHaveLength(4)
        // The batches ran side by side on more than one pooled session.
        const sessionsUsed = sim.transcripts.filter((t) =>
          t.some((e) => e.from === 'client' && /^UPDATE Account name "u\d+"$/.test(e.text)),
        )
        expect(sessionsUsed.length).toBeGreaterThan(1)
        sim.domains.delete('bulk.example')
      })

      it('loads the target domain dropdown from the server', async () => {
        const r = await accounts.loadOptions('domain', server)
        expect(r.ok && r.data.map((c) => c.value)).toContain('corp.example')
      })

      it('the class dropdown lists the classes of the chosen domain only', async () => {
        const other = sim.addDomain('other.example')
        other.classes.set('archive', { name: 'archive', services: ['imap'], quotas: {} })
        const corp = await accounts.loadOptions('accountClass', server, {
          settings: { domain: 'corp.example' },
        })
        const corpValues = corp.ok ? corp.data.map((c) => c.value) : []
        expect(corpValues).toContain('premium')
        expect(corpValues).not.toContain('archive')
        expect(corpValues[0]).toBe('')
        const picked = await accounts.loadOptions('accountClass', server, {
          settings: { domain: 'Other.Example' },
        })
        const pickedValues = picked.ok ? picked.data.map((c) => c.value) : []
        expect(pickedValues).toContain('archive')
        expect(pickedValues).not.toContain('premium')
        // No domain chosen yet: every domain's classes, each labelled with its domains.
        const all = await accounts.loadOptions('accountClass', server)
        expect(all.ok && all.data.find((c) => c.value === 'archive')?.label).toBe('archive (other.example)')
        expect(all.ok && all.data.find((c) => c.value === 'premium')?.label).toBe('premium (corp.example)')
        const gone = await accounts.loadOptions('accountClass', server, {
          settings: { domain: 'gone.example' },
        })
        expect(gone.ok).toBe(false)
        if (!gone.ok) {
          expect(gone.error.code).toBe('NOT_FOUND')
          expect(gone.error.detail).toMatch(/pick the target domain again/)
        }
        sim.domains.delete('other.example')
      })

      it('a missing target domain is NOT_FOUND with the fix', async () => {
        const r = await accounts.invoke('create', { service: mailbox(6, { domain: 'gone.example' }) })
        expect(r.ok).toBe(false)
        if (!r.ok) {
          expect(r.error.code).toBe('NOT_FOUND')
          expect(r.error.detail).toMatch(/pick the target domain again/)
        }
      })
    })

    describe('domain product', () => {
      // Built lazily: the server is only known once the simulator listens.
      let service: ReturnType<typeof brand>
      const brand = () => ({
        serviceId: 77,
        clientId: 2,
        domain: 'brand.example',
        password: 'Postmaster-Pw-1',
        server,
        settings: { groupware: false, maxAccounts: 3, migrationSource: 'imap.old.example:993' },
        client: { email: 'o@example.com' },
      })
      beforeAll(() => {
        service = brand()
      })

      it('creates with storage limits, admin limits and migration, and changePackage re-applies', async () => {
        const r = await domains.invoke('create', { service })
        expect(r.ok).toBe(true)
        expect(r.runs?.[0]?.steps.map((s) => s.outcome)).toEqual(['success', 'success', 'success'])
        const d = sim.domains.get('brand.example')
        expect(d?.adminLimits.maxAccounts).toBe(3)
        if (variation?.serverOptions.migrationAttributes === 'remoteImapHost')
          expect(d?.migration).toMatchObject({ remoteImapHost: 'imap.old.example', remoteImapPort: '993' })
        else expect(d?.migration.remoteServer).toBe('imap.old.example:993')
        expect(d?.messagesLocations).toEqual(['/var/opt/axigen/domains/brand.example/messages'])
        const up = await domains.invoke('changePackage', {
          service: { ...service, settings: { ...service.settings, groupware: true, maxAccounts: 10 } },
        })
        expect(up.ok && up.data.applied).toEqual(['groupware', 'adminLimits'])
        expect(sim.domains.get('brand.example')).toMatchObject({
          groupware: true,
          enabled: true,
          adminLimits: { maxAccounts: 10 },
        })
      })

      it('changePassword sets the postmaster password', async () => {
        const r = await domains.invoke('changePassword', {
          service: { ...service, password: 'New-Postmaster-2' },
        })
        expect(r.ok).toBe(true)
        expect(sim.account('brand.example', 'postmaster')?.password).toBe('New-Postmaster-2')
      })

      it('usage and clientArea count accounts, storage and messages', async () => {
        sim.addAccount('brand.example', 'one').usage = { mboxSizeKb: 1024, messageCount: 3, folderCount: 5 }
        sim.addAccount('brand.example', 'two').usage = { mboxSizeKb: 2048, messageCount: 4, folderCount: 5 }
        const r = await domains.invoke('usage', { service })
        expect(r.ok && r.data.metrics).toEqual([
          { name: 'storage', value: 3, unit: 'MB' },
          { name: 'accounts', value: 2, unit: 'accounts', limit: 3 },
          { name: 'messages', value: 7, unit: 'messages' },
        ])
        const area = await domains.invoke('clientArea', { service })
        expect(area.ok && area.data.fields.find((f) => f.key === 'accounts')).toMatchObject({
          value: 2,
          limit: 3,
        })
      })

      it('an unmarked existing domain is never adopted by create: CONFLICT with the way out, nothing changed', async () => {
        const legacy = sim.addDomain('legacy.example')
        const before = JSON.stringify([...legacy.accounts.values()].map((a) => a.contact))
        const r = await domains.invoke('create', {
          service: { ...service, serviceId: 78, domain: 'legacy.example' },
        })
        expect(r.ok).toBe(false)
        if (!r.ok) {
          expect(r.error.code).toBe('CONFLICT')
          expect(r.error.detail).toMatch(/no panelkit marker.*Link existing domain.*linkExistingDomain/)
        }
        expect(JSON.stringify([...legacy.accounts.values()].map((a) => a.contact))).toBe(before)
        expect(legacy.adminLimits).toEqual({})
        // Adopting is the operator's explicit act; after it, create converges and applies the plan.
        const link = await domains.invoke('action', {
          service: { ...service, serviceId: 78, domain: 'legacy.example' },
          action: 'linkExistingDomain',
          audience: 'admin',
          params: {},
        })
        expect(link.ok).toBe(true)
        expect(
          parseMarker(sim.account('legacy.example', 'postmaster')?.contact[markerAttribute])?.serviceId,
        ).toBe('78')
        const again = await domains.invoke('create', {
          service: { ...service, serviceId: 78, domain: 'legacy.example' },
        })
        expect(again.ok && again.data.created).toBe(false)
        expect(sim.domains.get('legacy.example')?.adminLimits.maxAccounts).toBe(3)
        // Someone else's marked domain stays theirs, even through the link action.
        const taken = await domains.invoke('action', {
          service: { ...service, serviceId: 79, domain: 'legacy.example' },
          action: 'linkExistingDomain',
          audience: 'admin',
          params: {},
        })
        expect(!taken.ok && taken.error.code).toBe('CONFLICT')
        sim.domains.delete('legacy.example')
      })

      it('terminate keeps a copy by default and deletes the domain', async () => {
        const r = await domains.invoke('terminate', { service })
        expect(r.ok && r.data.changed).toBe(true)
        expect(sim.domains.has('brand.example')).toBe(false)
        const line = sim.transcripts
          .flat()
          .find((e) => e.from === 'client' && e.text.startsWith('DELETE Domain'))
        expect(line?.text).toBe('DELETE Domain name "brand.example"')
      })
    })

    describe('testConnection diagnoses', () => {
      const diagnose = async (s: Record<string, unknown>) => {
        const r = await domains.invoke('testConnection', { server: { ...server, ...s } })
        return r.ok ? `ok ${r.data.version}` : `${r.error.code}: ${r.error.detail}`
      }

      it('succeeds with the version', async () => {
        expect(await diagnose({})).toBe('ok 10.6.30')
      })

      it('connection refused', async () => {
        const probe = net.createServer()
        const port = await new Promise<number>((r) =>
          probe.listen(0, '127.0.0.1', () => r((probe.address() as net.AddressInfo).port)),
        )
        await new Promise((r) => probe.close(r))
        expect(await diagnose({ port })).toMatch(/^CONNECTION: .*refused.*CLI service is running/)
      })

      it('a silent port times out with the firewall hint', async () => {
        const silent = await startAxigenSimulator()
        silent.faults.silent = true
        try {
          expect(await diagnose({ port: silent.port, options: { greetingTimeoutMs: 150 } })).toMatch(
            /^TIMEOUT: .*no Axigen banner/,
          )
        } finally {
          await silent.close()
        }
      })

      it('TLS expected, plain found', async () => {
        expect(await diagnose({ secure: true, options: { insecure: true } })).toMatch(
          /^CONNECTION: .*answered in plain text.*turn Secure off/,
        )
      })

      it('plain expected, TLS found', async () => {
        expect(await diagnose({ port: tlsPort, options: { greetingTimeoutMs: 150 } })).toMatch(
          /^CONNECTION: .*speaks TLS, but Secure is off/,
        )
      })

      it('server.options fingerprint pins the TLS listener (fingerprint256 still works)', async () => {
        const pinned = { port: tlsPort, secure: true }
        expect(await diagnose({ ...pinned, options: { fingerprint: sim.fingerprint } })).toBe('ok 10.6.30')
        expect(await diagnose({ ...pinned, options: { fingerprint256: sim.fingerprint } })).toBe('ok 10.6.30')
        expect(await diagnose({ ...pinned, options: { fingerprint: 'AB:'.repeat(31) + 'AB' } })).toMatch(
          /^CONNECTION: .*pinned SHA-256 fingerprint/,
        )
      })

      it('authentication failed', async () => {
        expect(await diagnose({ password: 'not-the-password' })).toMatch(
          /^AUTH: .*username or password is wrong.*WebAdmin/,
        )
      })
    })
  })
}
